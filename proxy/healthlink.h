/* SPDX-License-Identifier: Apache-2.0 */
/* The health checks as the control thread runs them: started with the
 * cluster CA and the client credentials, told of their rotations, and
 * their transitions recorded on the upstream (for /upstreams), logged and
 * passed on to the workers (which close an unhealthy upstream's sessions).
 * Control loop. */
#ifndef PROXY_HEALTHLINK_H
#define PROXY_HEALTHLINK_H

#include <uv.h>

#include "config.h"
#include "health.h"
#include "watcher.h"

struct ctltable;

struct healthlink {
    const struct config *cfg;
    struct ctltable *table;  /* borrowed: the ramp of a return (ctltable_returned) */
    uv_mutex_t *lock;        /* the control lock: an upstream's health_since, reason */
    void (*kick)(void *arg); /* after each transition: wake the workers */
    void *arg;
    struct health *h; /* NULL: not running (--health-check none) */
};

/* Starts the checks on loop unless --health-check none, verifying against
 * ca_pem (borrowed, may be NULL) and presenting auth (--health-auth
 * kubeconfig). loop NULL only validates (--check-config): l->h is freed
 * again. Returns 0, or -EINVAL with one line in err. */
int healthlink_start(struct healthlink *l, uv_loop_t *loop, const char *ca_pem,
                     const struct watcher_auth *auth, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* A rotated cluster CA (borrowed); nothing when not running. */
void healthlink_set_ca(struct healthlink *l, const char *pem);

/* Rotated client credentials (borrowed): unusable ones are logged and the
 * old ones kept; nothing when not running. */
void healthlink_set_auth(struct healthlink *l, const struct watcher_auth *a);

/* discovery_sink.ca and .auth for arg, a struct healthlink. */
void healthlink_ca_cb(void *arg, const char *pem);
void healthlink_auth_cb(void *arg, const struct watcher_auth *a);

/* Stops the checks (their handles close on the loop's next turn). */
void healthlink_stop(struct healthlink *l);

#endif
