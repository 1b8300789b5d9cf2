/* SPDX-License-Identifier: Apache-2.0 */
/* The health checks as the control thread runs them; see healthlink.h. */
#define LOG_MODULE "control"
#include "healthlink.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "clock.h"
#include "ctltable.h"
#include "log.h"
#include "worker.h"

/* health_changed_fn. */
static void changed_cb(void *arg, struct upstream *up, enum upstream_health from,
                       enum upstream_health to, const char *why)
{
    struct healthlink *l = arg;

    uv_mutex_lock(l->lock);
    up->health_since_unix_ms = clock_wall_ms();
    snprintf(up->health_reason, sizeof(up->health_reason), "%s", why);
    uv_mutex_unlock(l->lock);
    if (to == UPSTREAM_UNHEALTHY)
        log_warn("upstream health changed", "upstream=%s from=%s to=%s reason=\"%s\" active=%u%s",
                 up->name, upstream_health_name(from), upstream_health_name(to), log_quote(why),
                 atomic_load(&up->active),
                 !l->cfg->close_unhealthy                  ? ""
                 : atomic_load(&up->unready_since_ms) != 0 ? " draining=true"
                                                           : " closing=true");
    else
        log_info("upstream health changed", "upstream=%s from=%s to=%s reason=\"%s\"", up->name,
                 upstream_health_name(from), upstream_health_name(to), log_quote(why));
    /* The ramp of its return, and --rebalance's episode after it. */
    if (to == UPSTREAM_UNHEALTHY)
        upstream_ramp_stopped(up, clock_now_ms());
    else if (from == UPSTREAM_UNHEALTHY && to == UPSTREAM_HEALTHY)
        ctltable_returned(l->table, up, true, "healthy-again");
    l->kick(l->arg); /* workers close the sessions of an unhealthy upstream */
}

int healthlink_start(struct healthlink *l, uv_loop_t *loop, const char *ca_pem,
                     const struct watcher_auth *auth, char *err, size_t err_len)
{
    const char *why;
    int rc;

    l->h = NULL;
    if (l->cfg->health_check == CONFIG_HEALTH_NONE)
        return 0;
    rc = health_new(loop, l->cfg, ca_pem, changed_cb, l, &l->h, err, err_len);
    if (rc != 0)
        return rc < 0 ? rc : -EINVAL;
    rc = health_set_auth(l->h, auth->cert_pem, auth->key_pem, auth->token, &why);
    if (rc != 0)
        snprintf(err, err_len, "--health-auth=kubeconfig: the %s credentials cannot be used: %s",
                 l->cfg->kubeconfig != NULL ? "kubeconfig's" : "service account's", why);
    if (rc != 0 || loop == NULL)
        healthlink_stop(l);
    return rc != 0 ? -EINVAL : 0;
}

void healthlink_set_ca(struct healthlink *l, const char *pem)
{
    if (l->h != NULL)
        (void)health_set_ca(l->h, pem);
}

void healthlink_set_auth(struct healthlink *l, const struct watcher_auth *a)
{
    const char *why;

    if (l->h != NULL && health_set_auth(l->h, a->cert_pem, a->key_pem, a->token, &why) != 0)
        log_warn("credentials for the health checks cannot be used: keeping the old ones",
                 "err=\"%s\"", why);
}

void healthlink_ca_cb(void *arg, const char *pem)
{
    healthlink_set_ca(arg, pem);
}

void healthlink_auth_cb(void *arg, const struct watcher_auth *a)
{
    healthlink_set_auth(arg, a);
}

void healthlink_stop(struct healthlink *l)
{
    health_free(l->h);
    l->h = NULL;
}
