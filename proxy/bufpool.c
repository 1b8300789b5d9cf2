/* SPDX-License-Identifier: Apache-2.0 */
#include "bufpool.h"

#include <stdlib.h>

void bufpool_init(struct bufpool *p, size_t bytes)
{
    p->bytes = bytes;
    p->n = 0;
}

void *bufpool_get(struct bufpool *p)
{
    if (p->n > 0)
        return p->spare[--p->n];
    return malloc(p->bytes);
}

void bufpool_put(struct bufpool *p, void *buf)
{
    if (buf == NULL)
        return;
    if (p->n < BUFPOOL_KEEP)
        p->spare[p->n++] = buf;
    else
        free(buf);
}

void bufpool_destroy(struct bufpool *p)
{
    while (p->n > 0)
        free(p->spare[--p->n]);
}
