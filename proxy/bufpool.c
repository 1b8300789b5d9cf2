/* SPDX-License-Identifier: Apache-2.0 */
#include "bufpool.h"

#include <stdlib.h>

/* A kept buffer is poisoned for AddressSanitizer, so a flow that uses its
 * buffer after giving it back is still caught as with free(3). */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define KEPT(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define TAKEN(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define KEPT(p, n) ((void)(p), (void)(n))
#define TAKEN(p, n) ((void)(p), (void)(n))
#endif

void bufpool_init(struct bufpool *p, size_t bytes)
{
    p->bytes = bytes;
    p->n = 0;
}

void *bufpool_get(struct bufpool *p)
{
    void *buf;

    if (p->n == 0)
        return malloc(p->bytes);
    buf = p->spare[--p->n];
    TAKEN(buf, p->bytes);
    return buf;
}

void bufpool_put(struct bufpool *p, void *buf)
{
    if (buf == NULL)
        return;
    if (p->n < BUFPOOL_KEEP) {
        KEPT(buf, p->bytes);
        p->spare[p->n++] = buf;
    } else {
        free(buf);
    }
}

void bufpool_destroy(struct bufpool *p)
{
    while (p->n > 0) {
        void *buf = p->spare[--p->n];

        TAKEN(buf, p->bytes);
        free(buf);
    }
}
