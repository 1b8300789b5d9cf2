/* SPDX-License-Identifier: Apache-2.0 */
/* What the admin endpoint sees; see adminview.h. */
#define LOG_MODULE "control"
#include "adminview.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "discovery.h"
#include "log.h"
#include "module.h"
#include "prefer.h"

/* How long the workers' loops may take, together, to list their sessions
 * for the admin endpoint before the answer says partial (the admin thread
 * waits, and the kubelet's probes behind it). */
#define CONNECTIONS_WAIT_MS 250

/* Fills su from up and its entry in t (NULL: no table). Under the lock. */
static void upstream_fill(const struct adminview *v, struct snapshot_upstream *su,
                          struct upstream *up, const struct upstream_table *t)
{
    long k = t != NULL ? upstream_table_find(t, &up->addr) : -1;

    su->up = up;
    upstream_ref(su->up);
    su->in_table = k >= 0;
    su->sources = k >= 0 ? t->e[k].sources : 0;
    su->fallback = k >= 0 && t->e[k].fallback;
    su->health_since_unix_ms = up->health_since_unix_ms;
    memcpy(su->health_reason, up->health_reason, sizeof(su->health_reason));
    su->zone_from = "";
    if (k >= 0)
        prefer_zone_of(v->cfg, &t->e[k], &su->zone, &su->zone_from);
}

/* snapshot_fn. Any thread. */
static int snapshot_cb(void *arg, struct snapshot *out)
{
    struct adminview *v = arg;
    const struct upstream_table *t;
    struct upstream *const *ups;
    struct watcher *wt;
    size_t n_ups;

    memset(out, 0, sizeof(*out));
    uv_mutex_lock(v->lock);
    t = registry_table(v->reg);
    ups = registry_upstreams(v->reg, &n_ups);
    out->u = calloc(n_ups ? n_ups : 1, sizeof(*out->u));
    if (out->u == NULL) {
        uv_mutex_unlock(v->lock);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n_ups; i++)
        upstream_fill(v, &out->u[out->n++], ups[i], t);
    out->generation = t != NULL ? t->generation : 0;
    out->table_swaps = *v->swaps;
    out->state_file = *v->state_stats;
    wt = *v->watcher;
    uv_mutex_unlock(v->lock);
    out->start_unix_ms = v->start_unix_ms;
    out->sh = v->sh;
    out->workers = v->n_workers;
    out->health_check = (int)v->cfg->health_check;
    if (wt != NULL)
        discovery_stats(wt, &out->watcher);
    return 0;
}

/* connections_fn: each worker's list in turn, from offset on. */
static int connections_cb(void *arg, size_t offset, struct session_info *out, size_t max, size_t *n,
                          size_t *total, bool *partial)
{
    struct adminview *v = arg;
    uint64_t deadline = clock_now_ms() + CONNECTIONS_WAIT_MS;
    unsigned started = atomic_load(v->n_started);

    *n = 0;
    *total = 0;
    *partial = false;
    for (unsigned i = 0; i < started; i++) {
        size_t got = 0, had = 0, skip = offset > *total ? offset - *total : 0;
        uint64_t now = clock_now_ms();

        if (now >= deadline || worker_list_sessions(&(*v->workers)[i], skip, out + *n, max - *n,
                                                    &got, &had, (unsigned)(deadline - now)) != 0) {
            *partial = true;
            continue;
        }
        *n += got;
        *total += had;
    }
    return 0;
}

int adminview_start(struct adminview *v, char *err, size_t err_len)
{
    struct addr listen = v->cfg->admin_listen;
    char why[CONFIG_ERR_BYTES], name[ADDR_STRLEN];
    int rc;

    if (!v->cfg->admin_enabled)
        return 0;
    v->ops = module_load(ADMIN_MODULE, ADMIN_OPS_SYMBOL, why, sizeof(why));
    if (v->ops == NULL) {
        snprintf(err, err_len, "admin endpoint: %s", why);
        return -ENOENT;
    }
    rc = v->ops->start(&listen, snapshot_cb, connections_cb, v, &v->admin, err, err_len);
    if (rc != 0) {
        v->admin = NULL;
        return rc < 0 ? rc : -EINVAL;
    }
    log_info("admin endpoint listening", "addr=%s", addr_format(&listen, name, sizeof(name)));
    return 0;
}

int adminview_listen_fd(const struct adminview *v)
{
    return v->admin != NULL ? v->ops->listen_fd(v->admin) : -1;
}

void adminview_stop(struct adminview *v)
{
    if (v->admin != NULL)
        v->ops->stop(v->admin);
    v->admin = NULL;
}
