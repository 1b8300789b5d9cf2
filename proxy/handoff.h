/* SPDX-License-Identifier: Apache-2.0 */
/* A one-slot mailbox that hands a whole upstream table from the control
 * thread to one worker loop. State, not deltas: a publish replaces whatever
 * the worker has not taken yet, and uv_async_send() coalescing is harmless.
 *
 * Protocol: handoff_publish() does old = exchange(pending, t), drops old (the
 * worker never saw it) and wakes the worker; the worker's async callback calls
 * handoff_take(), which does exchange(pending, NULL). No lock anywhere. */
#ifndef PROXY_HANDOFF_H
#define PROXY_HANDOFF_H

#include <stdatomic.h>
#include <uv.h>

struct upstream_table;

struct handoff {
    _Atomic(struct upstream_table *) pending;
    uv_async_t *wake; /* borrowed: the worker's async handle */
};

/* Caller allocates; wake is the worker's initialised async handle. */
void handoff_init(struct handoff *h, uv_async_t *wake);

/* Steals one reference on t. Any thread. */
void handoff_publish(struct handoff *h, struct upstream_table *t);

/* Returns the newest published table (the caller owns that reference) or
 * NULL. The worker's loop thread. */
struct upstream_table *handoff_take(struct handoff *h);

/* Drops a table that was published but never taken. After the worker thread
 * has been joined. */
void handoff_destroy(struct handoff *h);

#endif
