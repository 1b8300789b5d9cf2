/* SPDX-License-Identifier: Apache-2.0 */
/* The discovery glue; see discovery.h. */
#define LOG_MODULE "control"
#include "discovery.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

/* The module, loaded on first use; NULL with the reason in err. */
static const struct watcher_ops *module_get(char *err, size_t err_len)
{
    static const struct watcher_ops *ops;
    static const char prefix[] = "discovery: ";

    if (ops != NULL || err_len <= sizeof(prefix))
        return ops;
    memcpy(err, prefix, sizeof(prefix));
    ops = module_load(WATCHER_MODULE, WATCHER_OPS_SYMBOL, err + sizeof(prefix) - 1,
                      err_len - sizeof(prefix) + 1);
    return ops;
}

const struct watcher_ops *discovery_module(void)
{
    char err[CONFIG_ERR_BYTES];

    return module_get(err, sizeof(err));
}

int discovery_cluster_ca(const struct config *cfg, char **pem, char *err, size_t err_len)
{
    const struct watcher_ops *ops;

    if (pem != NULL)
        *pem = NULL;
    if (cfg->discovery == WATCHER_DISCOVERY_OFF)
        return 0;
    if ((ops = module_get(err, err_len)) == NULL)
        return -ENOENT;
    if (ops->cluster_ca(cfg->kubeconfig, cfg->sa_dir, pem, err, err_len) < 0)
        return -EINVAL;
    return 0;
}

int discovery_auth_load(const struct config *cfg, struct watcher_auth *out, char *err,
                        size_t err_len)
{
    const struct watcher_ops *ops;
    char why[CONFIG_ERR_BYTES];

    memset(out, 0, sizeof(*out));
    if (cfg->health_auth != CONFIG_HEALTH_AUTH_KUBECONFIG)
        return 0;
    if ((ops = module_get(err, err_len)) == NULL)
        return -ENOENT;
    if (ops->auth_load(cfg->kubeconfig, cfg->sa_dir, out, why, sizeof(why)) < 0) {
        snprintf(err, err_len, "--health-auth=kubeconfig: %s", why);
        return -EINVAL;
    }
    if (out->cert_pem == NULL && out->token == NULL) {
        snprintf(err, err_len,
                 "--health-auth=kubeconfig: the %s credentials have neither a "
                 "client certificate nor a token",
                 cfg->kubeconfig != NULL ? "kubeconfig's" : "service account's");
        return -EINVAL;
    }
    return 0;
}

void discovery_auth_free(const struct config *cfg, struct watcher_auth *a)
{
    if (cfg->health_auth == CONFIG_HEALTH_AUTH_KUBECONFIG && discovery_module() != NULL)
        discovery_module()->auth_free(a);
}

/* watcher_publish_fn: runs on the watcher thread; hands the set (addresses
 * and their zones) over. */
static void publish_cb(void *arg, const struct watcher_endpoint *eps, size_t n, const char *rv)
{
    struct discovery *d = arg;

    (void)rv;
    uv_mutex_lock(&d->lock);
    assert(n <= ADDR_SET_MAX); /* the watcher refuses larger sets */
    d->n_pending = n;
    for (size_t i = 0; i < d->n_pending; i++) {
        d->pending[i] = eps[i].addr;
        d->pending_zone[i] = eps[i].zone;
    }
    d->ready = true;
    uv_mutex_unlock(&d->lock);
    uv_async_send(&d->async);
}

/* watcher_config.ca_changed: runs on the watcher thread. */
static void ca_changed_cb(void *arg, const char *ca_pem)
{
    struct discovery *d = arg;
    char *copy = strdup(ca_pem);

    if (copy == NULL)
        return;
    uv_mutex_lock(&d->lock);
    free(d->ca);
    d->ca = copy;
    uv_mutex_unlock(&d->lock);
    uv_async_send(&d->async);
}

/* watcher_config.auth_changed (--health-auth kubeconfig): runs on the
 * watcher thread. */
static void auth_changed_cb(void *arg, const struct watcher_auth *auth)
{
    struct discovery *d = arg;
    struct watcher_auth copy = {NULL, NULL, NULL};

    if ((auth->cert_pem != NULL && (copy.cert_pem = strdup(auth->cert_pem)) == NULL) ||
        (auth->key_pem != NULL && (copy.key_pem = strdup(auth->key_pem)) == NULL) ||
        (auth->token != NULL && (copy.token = strdup(auth->token)) == NULL)) {
        discovery_module()->auth_free(&copy);
        return;
    }
    uv_mutex_lock(&d->lock);
    discovery_module()->auth_free(&d->auth);
    d->auth = copy;
    d->auth_ready = true;
    uv_mutex_unlock(&d->lock);
    uv_async_send(&d->async);
}

/* watcher_config.node_zone: runs on the watcher thread. */
static void node_zone_cb(void *arg, const char *zone)
{
    struct discovery *d = arg;

    uv_mutex_lock(&d->lock);
    snprintf(d->node_zone, sizeof(d->node_zone), "%s", zone);
    d->zone_ready = true;
    uv_mutex_unlock(&d->lock);
    uv_async_send(&d->async);
}

static int route_cb(void *arg, unsigned attempt, const struct addr *avoid, struct addr *out)
{
    struct discovery *d = arg;

    return d->sink.route(d->sink.arg, attempt, avoid, out);
}

/* What the loop takes over from the watcher thread in one wake-up. */
struct handover {
    struct addr a[ADDR_SET_MAX];
    struct zone_info z[ADDR_SET_MAX];
    size_t n;
    char node_zone[ZONE_NAME_MAX + 1];
};

/* The control loop takes the newest set, cluster CA and credentials, and
 * hands them to the sink off the lock. */
static void async_cb(uv_async_t *h)
{
    struct discovery *d = h->data;
    struct handover *ho = malloc(sizeof(*ho));
    struct watcher_auth auth = {NULL, NULL, NULL};
    char *ca;
    bool ready, auth_ready, zone_ready;

    if (ho == NULL)
        return;
    uv_mutex_lock(&d->lock);
    ready = d->ready;
    ho->n = d->n_pending;
    memcpy(ho->a, d->pending, sizeof(ho->a));
    memcpy(ho->z, d->pending_zone, sizeof(ho->z));
    d->ready = false;
    zone_ready = d->zone_ready;
    memcpy(ho->node_zone, d->node_zone, sizeof(ho->node_zone));
    d->zone_ready = false;
    ca = d->ca;
    d->ca = NULL;
    auth_ready = d->auth_ready;
    if (auth_ready) {
        auth = d->auth;
        memset(&d->auth, 0, sizeof(d->auth));
        d->auth_ready = false;
    }
    uv_mutex_unlock(&d->lock);
    if (ca != NULL)
        d->sink.ca(d->sink.health_arg, ca);
    free(ca);
    if (auth_ready) {
        d->sink.auth(d->sink.health_arg, &auth);
        discovery_module()->auth_free(&auth);
    }
    if (zone_ready && d->sink.node_zone != NULL)
        d->sink.node_zone(d->sink.zone_arg, ho->node_zone);
    if (ready && ho->n > 0)
        d->sink.addrs(d->sink.arg, ho->a, ho->z, ho->n);
    free(ho);
}

void discovery_init(struct discovery *d, const struct discovery_sink *sink)
{
    d->sink = *sink;
    uv_mutex_init(&d->lock);
}

void discovery_attach(struct discovery *d, uv_loop_t *loop)
{
    uv_async_init(loop, &d->async, async_cb);
    d->async.data = d;
}

int discovery_start(struct discovery *d, const struct config *cfg, uv_mutex_t *lock,
                    struct watcher **out, char *err, size_t err_len)
{
    struct watcher_config wc;
    struct watcher *w = NULL;

    memset(&wc, 0, sizeof(wc));
    wc.kubeconfig = cfg->kubeconfig;
    wc.sa_dir = cfg->sa_dir;
    wc.discovery = cfg->discovery; /* never WATCHER_DISCOVERY_OFF: no watcher then */
    wc.connect_timeout_ms = cfg->connect_timeout_ms;
    wc.debounce_ms = cfg->discovery_debounce_ms;
    wc.watch_timeout_s = (cfg->watch_timeout_ms + 999) / 1000;
    wc.stall_ms = cfg->watch_stall_ms;
    wc.ca_changed = ca_changed_cb;
    if (cfg->health_auth == CONFIG_HEALTH_AUTH_KUBECONFIG)
        wc.auth_changed = auth_changed_cb;
    if (cfg->prefer == TIER_MODE_ZONE && cfg->zone == NULL && cfg->node_name != NULL) {
        wc.node_name = cfg->node_name;
        wc.node_zone = node_zone_cb;
    }
    if (discovery_module()->start(&wc, publish_cb, route_cb, d, &w, err, err_len) != 0)
        return -EINVAL;
    uv_mutex_lock(lock); /* the admin thread may be taking a snapshot already */
    *out = w;
    uv_mutex_unlock(lock);
    return 0;
}

void discovery_stats(struct watcher *w, struct snapshot_watcher *o)
{
    discovery_module()->stats_get(w, &o->stats);
    o->enabled = true;
}

void discovery_fini(struct discovery *d)
{
    free(d->ca);
    d->ca = NULL;
    if (d->auth_ready && discovery_module() != NULL)
        discovery_module()->auth_free(&d->auth);
    uv_mutex_destroy(&d->lock);
}
