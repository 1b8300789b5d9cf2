/* SPDX-License-Identifier: Apache-2.0 */
/* The discovery glue: the watcher module (loaded on first use), the
 * credentials it validates at start, and the hand-over of what the watcher
 * thread learns (the apiservers with their zones, a rotated cluster CA,
 * rotated client credentials) to the control loop, newest wins. What the
 * loop does with them is the sink's (control.c): the glue never touches the
 * registry or the health checks itself. */
#ifndef PROXY_DISCOVERY_H
#define PROXY_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "snapshot.h"
#include "watcher.h"
#include "zone.h"

/* What the control loop does with what the watcher hands over. */
struct discovery_sink {
    /* Loop thread: the newest discovered set, a[0..n) with zones z (n > 0). */
    void (*addrs)(void *arg, const struct addr *a, const struct zone_info *z, size_t n);
    watcher_route_fn route; /* watcher thread: the address to dial next */
    void *arg;              /* of addrs and route: the table's */
    /* Loop thread: a rotated cluster CA (PEM), borrowed. */
    void (*ca)(void *arg, const char *pem);
    /* Loop thread: rotated client credentials (--health-auth kubeconfig), borrowed. */
    void (*auth)(void *arg, const struct watcher_auth *a);
    void *health_arg; /* of ca and auth: the health checks' */
    /* Loop thread: the node object's zone (--node-name), "" for none; borrowed. */
    void (*node_zone)(void *arg, const char *zone);
    void *zone_arg; /* of node_zone */
};

struct discovery {
    struct discovery_sink sink;
    uv_async_t async; /* the watcher handed something over */
    uv_mutex_t lock;  /* everything below */
    struct addr pending[ADDR_SET_MAX];
    struct zone_info pending_zone[ADDR_SET_MAX];
    size_t n_pending;
    bool ready;               /* pending holds a set the loop has not taken */
    char *ca;                 /* a rotated cluster CA, or NULL */
    struct watcher_auth auth; /* rotated credentials when auth_ready */
    bool auth_ready;
    char node_zone[ZONE_NAME_MAX + 1]; /* the node object's zone when zone_ready */
    bool zone_ready;
};

/* The discovery module, loaded on first use; NULL when it cannot be
 * (discovery_cluster_ca and discovery_auth_load, which load it first, say
 * why). Main thread first. */
const struct watcher_ops *discovery_module(void);

/* Loads the discovery credentials to validate them (nothing with
 * --discovery off); hands back the CA they trust as PEM text (caller frees)
 * when pem is not NULL. Returns 0, or -ENOENT (no module) or -EINVAL with
 * one line in err. */
int discovery_cluster_ca(const struct config *cfg, char **pem, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* --health-auth kubeconfig: reads the client credentials the health checks
 * present into *out (zeroed otherwise; release with discovery_auth_free).
 * Returns 0, or -ENOENT (no module) or -EINVAL with one line in err. */
int discovery_auth_load(const struct config *cfg, struct watcher_auth *out, char *err,
                        size_t err_len) __attribute__((warn_unused_result));

/* Releases what discovery_auth_load() read (nothing without --health-auth). */
void discovery_auth_free(const struct config *cfg, struct watcher_auth *a);

/* Readies d to hand over to sink (copied): its lock only; no loop yet. */
void discovery_init(struct discovery *d, const struct discovery_sink *sink);

/* Attaches d's wake-up to loop (closed with the loop's other handles). */
void discovery_attach(struct discovery *d, uv_loop_t *loop);

/* Starts the watcher for cfg (the module loaded and initialised) and sets
 * *out under lock (other threads read it there). Returns 0, or -EINVAL with
 * one line in err (bad credentials, a configuration error), *out untouched. */
int discovery_start(struct discovery *d, const struct config *cfg, uv_mutex_t *lock,
                    struct watcher **out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Fills *o from w's counters. Any thread while w runs. */
void discovery_stats(struct watcher *w, struct snapshot_watcher *o);

/* Frees what is still pending; after the loop and the watcher stopped. */
void discovery_fini(struct discovery *d);

#endif
