/* SPDX-License-Identifier: Apache-2.0 */
#include "snapshot.h"

#include <stdlib.h>

void snapshot_release(struct snapshot *s)
{
    for (size_t i = 0; i < s->n; i++)
        upstream_unref(s->u[i].up);
    free(s->u);
    s->u = NULL;
    s->n = 0;
}

size_t snapshot_usable(const struct snapshot *s, uint64_t now_ms)
{
    size_t n = 0;

    for (size_t i = 0; i < s->n; i++)
        n += s->u[i].in_table && upstream_usable(s->u[i].up, now_ms);
    return n;
}
