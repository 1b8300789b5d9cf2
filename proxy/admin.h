/* SPDX-License-Identifier: Apache-2.0 */
/* The admin endpoint (--admin-listen): GET /healthz, /readyz, /upstreams
 * (JSON) and /metrics (Prometheus text 0.0.4). It runs on its own thread and
 * reads the daemon's state only through a snapshot function, so it never
 * blocks a proxy loop. */
#ifndef PROXY_ADMIN_H
#define PROXY_ADMIN_H

#include <stddef.h>

#include "addr.h"
#include "snapshot.h"

/* GET /connections pages: limit defaults to 100, at most 1000. */
#define ADMIN_CONNECTIONS_DEFAULT 100
#define ADMIN_CONNECTIONS_MAX 1000
#define ADMIN_CONNECTIONS_MAX_OFFSET 10000000

struct admin;

/* Binds *listen (port 0: the kernel chooses and *listen is updated) and
 * starts serving. Returns 0, or a negative errno with one line in err. */
int admin_start(struct addr *listen, snapshot_fn snap, connections_fn conns, void *arg,
                struct admin **out, char *err, size_t err_len) __attribute__((warn_unused_result));

/* Stops serving and frees a. */
void admin_stop(struct admin *a);

/* The listening socket (borrowed: valid until admin_stop()), for looking at
 * who else listens on the admin address (sharewatch.h). Any thread. */
int admin_listen_fd(const struct admin *a);

/* The admin module (see module.h): the executable reaches the functions
 * above only through this table, exported by apilb-admin.so. */
#define ADMIN_MODULE "apilb-admin.so"
#define ADMIN_OPS_SYMBOL "apilb_admin_ops"
struct admin_ops {
    int (*start)(struct addr *listen, snapshot_fn snap, connections_fn conns, void *arg,
                 struct admin **out, char *err, size_t err_len);
    void (*stop)(struct admin *a);
    int (*listen_fd)(const struct admin *a);
};
extern const struct admin_ops apilb_admin_ops;

#endif
