/* SPDX-License-Identifier: Apache-2.0 */
/* Table mailbox; see handoff.h. */
#include "handoff.h"

#include "upstream.h"

void handoff_init(struct handoff *h, uv_async_t *wake)
{
    atomic_init(&h->pending, NULL);
    h->wake = wake;
}

void handoff_publish(struct handoff *h, struct upstream_table *t)
{
    struct upstream_table *old = atomic_exchange_explicit(&h->pending, t, memory_order_acq_rel);

    upstream_table_unref(old);
    uv_async_send(h->wake);
}

struct upstream_table *handoff_take(struct handoff *h)
{
    return atomic_exchange_explicit(&h->pending, NULL, memory_order_acq_rel);
}

void handoff_destroy(struct handoff *h)
{
    upstream_table_unref(handoff_take(h));
}
