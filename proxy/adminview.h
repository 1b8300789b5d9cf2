/* SPDX-License-Identifier: Apache-2.0 */
/* What the admin endpoint sees of the control thread: the module started
 * and stopped, and its two callbacks, the snapshot (GET /healthz, /readyz,
 * /upstreams, /metrics) and the open sessions (GET /connections). The
 * callbacks run on the admin thread and read the control's state only
 * through the pointers below, under its lock where said. */
#ifndef PROXY_ADMINVIEW_H
#define PROXY_ADMINVIEW_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "admin.h"
#include "config.h"
#include "registry.h"
#include "snapshot.h"
#include "watcher.h"
#include "worker.h"

/* Every pointer is borrowed from the control, valid until adminview_stop. */
struct adminview {
    const struct config *cfg;
    uv_mutex_t *lock;
    const struct registry *reg;                    /* under *lock */
    const uint64_t *swaps;                         /* under *lock */
    const struct snapshot_state_file *state_stats; /* under *lock */
    struct watcher *const *watcher; /* under *lock; set once, freed after adminview_stop */
    struct worker_shared *sh;
    struct worker *const *workers;
    const _Atomic unsigned *n_started; /* workers whose mailbox is ready */
    unsigned n_workers;
    uint64_t start_unix_ms;
    const struct admin_ops *ops; /* the module's, once started */
    struct admin *admin;         /* NULL: not running */
};

/* Loads the admin module and starts the endpoint on cfg->admin_listen
 * (nothing without --admin). Returns 0, or a negative errno with one line
 * in err. Loop thread, before the workers start. */
int adminview_start(struct adminview *v, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* The endpoint's listening socket (borrowed), or -1 when it does not run. */
int adminview_listen_fd(const struct adminview *v);

/* Stops the endpoint if it runs; first at shutdown (its snapshots read the
 * watcher's stats). Loop thread. */
void adminview_stop(struct adminview *v);

#endif
