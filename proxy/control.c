/* SPDX-License-Identifier: Apache-2.0 */
/* The control thread; see control.h. */
#define LOG_MODULE "control"
#include "control.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "admin.h"
#include "discovery.h"
#include "health.h"
#include "listener.h"
#include "migrate.h"
#include "log.h"
#include "module.h"
#include "registry.h"
#include "resolve.h"
#include "sharewatch.h"
#include "snapshot.h"
#include "sockopt.h"
#include "statefile.h"
#include "upfile.h"
#include "upstream.h"
#include "watcher.h"
#include "worker.h"

/* File-change events arrive in bursts (editors, ConfigMap symlink swaps). */
#define FILE_DEBOUNCE_MS 100
/* How often removed upstreams are checked for being fully drained. */
#define TICK_MS 200

/* One source of addresses (seeds, the upstreams file, ...). */
struct source {
    struct addr a[UPSTREAM_MAX];
    size_t n;
};

struct control {
    const struct config *cfg;
    uv_loop_t loop;
    struct worker_shared sh;
    struct worker *workers;
    unsigned n_workers;
    /* Workers whose mailbox is ready; the admin thread reads it (GET
     * /connections) while start-up counts it up. */
    _Atomic unsigned n_started;
    uv_async_t done;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_fs_event_t file_watch;
    uv_timer_t file_debounce;
    uv_timer_t shutdown_timer;
    uv_timer_t tick;
    struct sharewatch sharers; /* who else listens on --listen */
    char *file_dir, *file_base;
    struct source seeds, file, state, disc;
    /* The upstreams file: file is file_ips plus file_named, the addresses
     * of its names from the last finished lookup (file_job: the one under
     * way, which file_async reports; file_reload). One lookup at a time:
     * the names of a newer file wait in file_names_next. */
    struct source file_ips, file_named;
    struct resolve_job *file_job;
    struct config_seed *file_names_next; /* UPSTREAM_MAX of room, or NULL */
    size_t n_file_names_next;
    uv_async_t file_async;
    struct zone_info disc_zone[WATCHER_MAX_ADDRS]; /* of disc.a[i] */
    struct source written; /* what the state file holds now */
    struct snapshot_state_file state_stats; /* under lock */
    /* The state file is written on libuv's threadpool, one write at a time
     * and never under the lock (state_save): queued is what the file will
     * hold once the writes are done, next the newest set not yet handed to
     * the writer, doing what the writer writes. */
    struct source state_queued, state_next, state_doing;
    bool state_has_next, state_busy;
    int state_rc;
    char state_err[CONFIG_ERR_BYTES];
    uv_work_t state_work;
    struct registry *reg; /* the sources' table and its upstreams; under lock */
    struct registry_change changes[REGISTRY_MAX]; /* of the last rebuild */
    struct upstream *checked[REGISTRY_MAX]; /* reg_prune: the ones health checks follow */
    struct upstream *pruned[REGISTRY_MAX];  /* reg_prune: the ones it unregistered */
    uint64_t swaps;
    uint64_t start_unix_ms;
    uv_mutex_t lock; /* table and reg, for snapshots taken by other threads */
    struct admin *admin;
    const struct admin_ops *admin_ops; /* the module's, with --admin */
    struct health *health; /* NULL with --health-check none */
    struct watcher *watcher; /* NULL with --discovery off */
    struct discovery discovery; /* what the watcher hands over */
    unsigned peak_active;     /* most open sessions since the last malloc_trim */
};

static void health_changed(void *arg, struct upstream *up, enum upstream_health from,
                           enum upstream_health to, const char *why);

/* --- sources ------------------------------------------------------------ */

static int seeds_resolve(const struct config *cfg, const struct config_seed *sd, size_t n,
                         struct source *out, const char *who, bool fatal)
{
    char err[CONFIG_ERR_BYTES];

    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        if (resolve_seed(&sd[i], out->a, UPSTREAM_MAX, &out->n, err, sizeof(err)) == 0)
            continue;
        if (fatal) {
            fprintf(stderr, "apilb: %s=%s:%u: %s\n", who, sd[i].host, sd[i].port, err);
            return -EINVAL;
        }
        log_warn("upstream name does not resolve", "source=%s err=\"%s\"", who, log_quote(err));
    }
    return 0;
}

/* Reads the upstreams file: its IP entries into ips, its host names into
 * names[0..*n_names) (UPSTREAM_MAX of room). Returns 0, or a negative errno
 * after saying why (on stderr when fatal, else in the log). */
static int file_entries(const struct config *cfg, struct source *ips, struct config_seed *names,
                        size_t *n_names, bool fatal)
{
    struct config_seed *sd;
    char err[CONFIG_ERR_BYTES];
    int n;

    sd = malloc(sizeof(*sd) * UPSTREAM_MAX);
    if (sd == NULL)
        return -ENOMEM;
    n = upfile_read(cfg->upstreams_file, sd, UPSTREAM_MAX, err, sizeof(err));
    if (n < 0) {
        if (fatal)
            fprintf(stderr, "apilb: %s\n", err);
        else
            log_error("upstreams file not applied", "err=\"%s\"", log_quote(err));
        free(sd);
        return n;
    }
    ips->n = 0;
    *n_names = 0;
    for (int i = 0; i < n; i++) {
        struct addr a;

        if (addr_from_ip(sd[i].host, sd[i].port, &a) == 0)
            ips->a[ips->n++] = a;
        else
            names[(*n_names)++] = sd[i];
    }
    free(sd);
    return 0;
}

/* out = a, then what of b is not in a. */
static void source_merge(struct source *out, const struct source *a, const struct source *b)
{
    *out = *a;
    for (size_t i = 0; i < b->n && out->n < UPSTREAM_MAX; i++) {
        size_t k = 0;

        while (k < a->n && addr_cmp(&a->a[k], &b->a[i]) != 0)
            k++;
        if (k == a->n)
            out->a[out->n++] = b->a[i];
    }
}

/* At start (and --check-config): the whole file, names looked up here,
 * blocking, before the loop runs; a name that does not resolve is a
 * configuration error when fatal. ips and named may be NULL. */
static int file_load(const struct config *cfg, struct source *out, struct source *ips,
                     struct source *named, bool fatal)
{
    struct source *own = malloc(sizeof(*own) * 2);
    struct config_seed *names = malloc(sizeof(*names) * UPSTREAM_MAX);
    size_t n_names;
    int rc = -ENOMEM;

    if (own != NULL && names != NULL)
        rc = file_entries(cfg, &own[0], names, &n_names, fatal);
    if (rc == 0)
        rc = seeds_resolve(cfg, names, n_names, &own[1], "--upstreams-file", fatal);
    if (rc == 0) {
        source_merge(out, &own[0], &own[1]);
        if (ips != NULL)
            *ips = own[0];
        if (named != NULL)
            *named = own[1];
    }
    free(own);
    free(names);
    return rc;
}

/* Hands the credentials of --health-auth kubeconfig to h at start (or in
 * --check-config). Returns 0, or -1 after printing one line. */
static int health_auth_start(const struct config *cfg, struct health *h,
                             const struct watcher_auth *a)
{
    const char *why;

    if (health_set_auth(h, a->cert_pem, a->key_pem, a->token, &why) == 0)
        return 0;
    fprintf(stderr, "apilb: --health-auth=kubeconfig: the %s credentials cannot be used: %s\n",
            cfg->kubeconfig != NULL ? "kubeconfig's" : "service account's", why);
    return -1;
}

int control_check(const struct config *cfg)
{
    struct source *s = malloc(sizeof(*s));
    int rc = 0;

    if (s == NULL)
        return EXIT_CONFIG;
    if (cfg->health_check != CONFIG_HEALTH_NONE) {
        struct health *h = NULL;
        struct watcher_auth a;
        char err[CONFIG_ERR_BYTES];

        if (health_new(NULL, cfg, NULL, health_changed, NULL, &h, err, sizeof(err)) != 0) {
            fprintf(stderr, "apilb: %s\n", err);
            free(s);
            return EXIT_CONFIG;
        }
        if (discovery_auth_load(cfg, &a) < 0 || health_auth_start(cfg, h, &a) < 0)
            rc = EXIT_CONFIG;
        discovery_auth_free(cfg, &a);
        health_free(h);
    }
    if (rc != 0 || discovery_cluster_ca(cfg, NULL) < 0)
        rc = EXIT_CONFIG;
    else if (seeds_resolve(cfg, cfg->seeds, cfg->n_seeds, s, cfg->seeds_from, true) < 0)
        rc = EXIT_CONFIG;
    else if (cfg->upstreams_file != NULL && file_load(cfg, s, NULL, NULL, true) < 0)
        rc = EXIT_CONFIG;
    free(s);
    return rc;
}

/* --- the registry and tables ---------------------------------------------- */

/* Drops registry entries that are in no table and carry no connection.
 *
 * A removed upstream is checked only while it still carries connections
 * (their fate follows its health). Once it has none its checker stops, and
 * with it the checker's reference: the entry is freed on a later tick, when
 * the registry's is the last (no table, session or checker holds it). */
static void reg_prune(struct control *c)
{
    size_t n_pruned, n_checked;

    uv_mutex_lock(&c->lock);
    n_pruned = registry_prune(c->reg, c->pruned, REGISTRY_MAX);
    n_checked = registry_checked(c->reg, c->checked, REGISTRY_MAX);
    uv_mutex_unlock(&c->lock);
    for (size_t i = 0; i < n_pruned; i++) {
        log_info("upstream drained", "upstream=%s", c->pruned[i]->name);
        upstream_unref(c->pruned[i]);
    }
    if (c->health != NULL)
        health_sync(c->health, c->checked, n_checked);
}

/* Notes the learned part of t (file and discovered entries) for the state
 * file when it changed. No disk I/O here: this runs under c->lock, which
 * /readyz snapshots and the watcher's routing take; state_flush() writes
 * once the lock is released. Loop thread. */
static void state_save(struct control *c, const struct upstream_table *t)
{
    struct source *now = &c->state_next;
    bool same;

    if (c->cfg->state_file == NULL)
        return;
    now->n = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].sources & (UPSTREAM_SRC_FILE | UPSTREAM_SRC_DISCOVERED))
            now->a[now->n++] = t->e[i].up->addr;
    same = now->n == c->state_queued.n;
    for (size_t i = 0; same && i < now->n; i++)
        same = addr_cmp(&now->a[i], &c->state_queued.a[i]) == 0;
    c->state_has_next = now->n > 0 && !same;
    if (c->state_has_next)
        c->state_queued = *now;
}

/* uv_work_cb: a thread of libuv's pool; touches only state_doing, state_rc
 * and state_err, which the loop leaves alone while state_busy. */
static void state_write_cb(uv_work_t *w)
{
    struct control *c = w->data;

    c->state_rc = statefile_write(c->cfg->state_file, c->state_doing.a, c->state_doing.n,
                                  c->state_err, sizeof(c->state_err));
}

static void state_written_cb(uv_work_t *w, int status);

/* A write that did not happen: said, and the next change tries again
 * (unless a newer set waits already). */
static void state_write_failed(struct control *c, const char *why)
{
    uv_mutex_lock(&c->lock);
    c->state_stats.last_ok = false;
    c->state_stats.failures++;
    uv_mutex_unlock(&c->lock);
    log_warn_limited("state-write", 10000, "state file not written", "file=\"%s\" err=\"%s\"",
                     log_quote(c->cfg->state_file), log_quote(why));
    if (!c->state_has_next)
        c->state_queued = c->written;
}

/* Hands the newest noted set to the writer unless a write is under way
 * (then state_written_cb comes back here): one write at a time, so an
 * older set never lands after a newer one, and sets noted during a write
 * are coalesced into the newest. Loop thread, without c->lock. */
static void state_flush(struct control *c)
{
    int rc;

    if (!c->state_has_next || c->state_busy)
        return;
    c->state_doing = c->state_next;
    c->state_has_next = false;
    c->state_work.data = c;
    rc = uv_queue_work(&c->loop, &c->state_work, state_write_cb, state_written_cb);
    if (rc != 0) {
        state_write_failed(c, uv_strerror(rc));
        return;
    }
    c->state_busy = true;
}

/* uv_after_work_cb: the loop learns how the write went. */
static void state_written_cb(uv_work_t *w, int status)
{
    struct control *c = w->data;

    c->state_busy = false;
    if (status == 0 && c->state_rc == 0) {
        c->written = c->state_doing;
        uv_mutex_lock(&c->lock);
        c->state_stats.last_ok = true;
        c->state_stats.writes++;
        c->state_stats.last_write_unix_ms = (uint64_t)time(NULL) * 1000u;
        uv_mutex_unlock(&c->lock);
        log_info("state file written", "file=\"%s\" upstreams=%zu", c->cfg->state_file,
                 c->written.n);
    } else {
        state_write_failed(c, status != 0 ? uv_strerror(status) : c->state_err);
    }
    state_flush(c);
}

static void state_load(struct control *c)
{
    char err[CONFIG_ERR_BYTES];
    int n = statefile_read(c->cfg->state_file, c->state.a, UPSTREAM_MAX, err, sizeof(err));

    c->state.n = 0;
    if (n == -ENOENT) {
        log_info("no state file yet", "file=\"%s\"", c->cfg->state_file);
        return;
    }
    if (n < 0) {
        log_warn("state file ignored", "file=\"%s\" err=\"%s\"", log_quote(c->cfg->state_file), log_quote(err));
        return;
    }
    c->state.n = (size_t)n;
    c->written = c->state;
    c->state_queued = c->state;
    log_info("state file loaded", "file=\"%s\" upstreams=%d", c->cfg->state_file, n);
}

static void kick_all(struct control *c)
{
    for (unsigned i = 0; i < c->n_started; i++)
        if (!atomic_load(&c->workers[i].finished))
            worker_kick(&c->workers[i]);
}

/* Hands the sources to the registry. Under c->lock. */
static int sources_apply(struct control *c)
{
    int rc = registry_set(c->reg, REGISTRY_SEEDS, c->seeds.a, NULL, c->seeds.n);

    if (rc == 0)
        rc = registry_set(c->reg, REGISTRY_FILE, c->file.a, NULL, c->file.n);
    if (rc == 0)
        rc = registry_set(c->reg, REGISTRY_DISCOVERED, c->disc.a, c->disc_zone, c->disc.n);
    if (rc == 0)
        rc = registry_set(c->reg, REGISTRY_STATE, c->state.a, NULL, c->state.n);
    return rc;
}

/* Says what a rebuild left out (never a silent loss). */
static void refusals_log(struct control *c, const struct registry_changes *ch)
{
    char name[ADDR_STRLEN];
    size_t known;

    if (ch->refused == 0)
        return;
    addr_format(&ch->first_refused, name, sizeof(name));
    if (ch->first_refused_why == REGISTRY_TABLE_FULL) {
        log_warn_limited("table-full", 10000, "upstream table full: address left out",
                         "upstream=%s max=%d", name, UPSTREAM_MAX);
        return;
    }
    /* Full of removed upstreams that still carry connections (or out of
     * memory). */
    (void)registry_upstreams(c->reg, &known);
    log_warn_limited("registry-full", 10000,
                     "upstream registry full: address left out until removed upstreams drain",
                     "upstream=%s known=%zu max=%zu", name, known, (size_t)REGISTRY_MAX);
}

/* Logs each upstream that came, came back or left; a new one learns
 * whether it is local here, before any worker sees it. */
static void changes_log(const struct registry_changes *ch, const char *reason)
{
    for (size_t i = 0; i < ch->n; i++) {
        struct upstream *up = ch->c[i].up;
        char src[64];

        if (ch->c[i].is_new) /* getifaddrs(3) is a netlink dump: not per connection */
            up->is_local = sockopt_addr_is_local(&up->addr);
        if (ch->c[i].kind == REGISTRY_REMOVED) {
            log_info("upstream removed", "upstream=%s reason=%s active=%u draining=true",
                     up->name, reason, atomic_load(&up->active));
            continue;
        }
        upstream_sources_format(ch->c[i].sources, src, sizeof(src));
        log_info("upstream added", "upstream=%s source=%s reason=%s", up->name, src, reason);
    }
}

/* Builds a table from the sources and, when it differs from the current
 * one, publishes it. An empty result is never applied. */
static void table_rebuild_locked(struct control *c, const char *reason)
{
    struct registry_changes ch = {.c = c->changes};
    struct upstream_table *t;
    enum registry_result res;

    if (sources_apply(c) != 0)
        return; /* no source holds more than UPSTREAM_MAX */
    /* Marks first, so a worker that sees the new table also sees them. */
    res = registry_rebuild(c->reg, worker_now_ms(), &ch);
    refusals_log(c, &ch);
    if (res == REGISTRY_NONE_YET)
        log_info("no upstream known yet", "reason=%s discovery=%s", reason,
                 c->cfg->discovery != CONFIG_DISCOVERY_OFF ? "waiting" : "off");
    else if (res == REGISTRY_EMPTY_REFUSED)
        log_error("no upstreams left: keeping the current table", "reason=%s", reason);
    if (res != REGISTRY_PUBLISHED)
        return;
    t = registry_table(c->reg);
    c->swaps++;
    changes_log(&ch, reason);
    for (unsigned i = 0; i < c->n_started; i++) {
        upstream_table_ref(t);
        worker_publish(&c->workers[i], t);
    }
    /* Logged once handed over: a connection made after this line is
     * accepted after the workers' kick (evloop runs uv first). */
    log_info("upstream table published", "generation=%" PRIu64 " upstreams=%zu reason=%s",
             t->generation, t->n, reason);
    state_save(c, t);
}

static void table_rebuild(struct control *c, const char *reason)
{
    uv_mutex_lock(&c->lock);
    table_rebuild_locked(c, reason);
    uv_mutex_unlock(&c->lock);
    state_flush(c);
    reg_prune(c);
}

/* --- discovery ------------------------------------------------------------- */

/* discovery_sink.addrs: the newest discovered set becomes the discovered
 * source. Loop thread. */
static void disc_addrs(void *arg, const struct addr *a, const struct zone_info *z, size_t n)
{
    struct control *c = arg;

    memcpy(c->disc.a, a, n * sizeof(*a));
    memcpy(c->disc_zone, z, n * sizeof(*z));
    c->disc.n = n;
    table_rebuild(c, "discovery");
}

/* discovery_sink.ca: a rotated cluster CA for the health checks. */
static void disc_ca(void *arg, const char *pem)
{
    struct control *c = arg;

    if (c->health != NULL)
        (void)health_set_ca(c->health, pem);
}

/* discovery_sink.auth: rotated client credentials for the health checks. */
static void disc_auth(void *arg, const struct watcher_auth *a)
{
    struct control *c = arg;
    const char *why;

    if (c->health != NULL && health_set_auth(c->health, a->cert_pem, a->key_pem, a->token,
                                             &why) != 0)
        log_warn("credentials for the health checks cannot be used: keeping the old ones",
                 "err=\"%s\"", why);
}

/* watcher_route_fn: the address the watcher dials next, from the current
 * table (upstream_route). Watcher thread. */
static int disc_route(void *arg, unsigned attempt, const struct addr *avoid, struct addr *out)
{
    struct control *c = arg;
    int rc;

    uv_mutex_lock(&c->lock);
    rc = upstream_route(registry_table(c->reg), attempt, avoid, worker_now_ms(), out);
    uv_mutex_unlock(&c->lock);
    return rc;
}

/* Starts the watcher; the admin thread may be taking a snapshot already. */
static int watcher_run(struct control *c)
{
    struct watcher *w;
    int rc = discovery_start(&c->discovery, c->cfg, &w);

    if (rc != 0)
        return rc;
    uv_mutex_lock(&c->lock);
    c->watcher = w;
    uv_mutex_unlock(&c->lock);
    return 0;
}

/* snapshot_fn for the admin endpoint. Any thread. */
static int control_snapshot(void *arg, struct snapshot *out)
{
    struct control *c = arg;
    struct watcher *wt;
    const struct upstream_table *t;
    struct upstream *const *ups;
    size_t n_ups;

    memset(out, 0, sizeof(*out));
    uv_mutex_lock(&c->lock);
    t = registry_table(c->reg);
    ups = registry_upstreams(c->reg, &n_ups);
    out->u = calloc(n_ups ? n_ups : 1, sizeof(*out->u));
    if (out->u == NULL) {
        uv_mutex_unlock(&c->lock);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n_ups; i++) {
        struct snapshot_upstream *su = &out->u[out->n++];
        long k = t != NULL ? upstream_table_find(t, &ups[i]->addr) : -1;

        su->up = ups[i];
        upstream_ref(su->up);
        su->in_table = k >= 0;
        su->sources = k >= 0 ? t->e[k].sources : 0;
        su->fallback = k >= 0 && t->e[k].fallback;
        su->health_since_unix_ms = su->up->health_since_unix_ms;
        memcpy(su->health_reason, su->up->health_reason, sizeof(su->health_reason));
        if (k >= 0)
            su->zone = t->e[k].zone;
    }
    out->generation = t != NULL ? t->generation : 0;
    out->table_swaps = c->swaps;
    out->state_file = c->state_stats;
    wt = c->watcher; /* set once after start; freed only once admin has stopped */
    uv_mutex_unlock(&c->lock);
    out->start_unix_ms = c->start_unix_ms;
    out->sh = &c->sh;
    out->workers = c->n_workers;
    out->health_check = (int)c->cfg->health_check;
    if (wt != NULL)
        discovery_stats(wt, &out->watcher);
    return 0;
}

/* How long the workers' loops may take, together, to list their sessions
 * for the admin endpoint before the answer says partial (the admin thread
 * waits, and the kubelet's probes behind it). */
#define CONNECTIONS_WAIT_MS 250

/* connections_fn: each worker's list in turn, from offset on. */
static int control_connections(void *arg, size_t offset, struct session_info *out, size_t max,
                               size_t *n, size_t *total, bool *partial)
{
    struct control *c = arg;
    uint64_t deadline = worker_now_ms() + CONNECTIONS_WAIT_MS;
    unsigned started = atomic_load(&c->n_started);

    *n = 0;
    *total = 0;
    *partial = false;
    for (unsigned i = 0; i < started; i++) {
        size_t got = 0, had = 0, skip = offset > *total ? offset - *total : 0;
        uint64_t now = worker_now_ms();

        if (now >= deadline ||
            worker_list_sessions(&c->workers[i], skip, out + *n, max - *n, &got, &had,
                                 (unsigned)(deadline - now)) != 0) {
            *partial = true;
            continue;
        }
        *n += got;
        *total += had;
    }
    return 0;
}

/* --- the upstreams file ----------------------------------------------------- */

/* Starts looking names[0..n) up (copied) off the loop. */
static void file_lookup_start(struct control *c, const struct config_seed *names, size_t n)
{
    int rc = resolve_job_start(names, n, &c->file_async, &c->file_job);

    if (rc != 0)
        log_warn("upstream names not looked up: keeping their last addresses",
                 "n=%zu err=\"%s\"", n, strerror(-rc));
    else
        log_debug("looking up the upstreams file's names", "n=%zu", n);
}

/* Drops the lookup under way and the names waiting for it (the file has no
 * names now, or apilb stops). Before file_async closes. */
static void file_lookup_stop(struct control *c)
{
    resolve_job_release(c->file_job);
    c->file_job = NULL;
    free(c->file_names_next);
    c->file_names_next = NULL;
}

/* Applies the file's IP entries at once, with the addresses its names had
 * at the last lookup, and looks the names up again off the loop
 * (file_resolved_cb applies them): a DNS server that does not answer holds
 * only that lookup. While one is under way the names wait for it (the
 * newest file's), so a resolver that hangs never piles up threads. */
static void file_reload(struct control *c, const char *why)
{
    struct source *ips = malloc(sizeof(*ips));
    struct config_seed *names = malloc(sizeof(*names) * UPSTREAM_MAX);
    size_t n_names = 0;

    if (ips == NULL || names == NULL || file_entries(c->cfg, ips, names, &n_names, false) != 0) {
        free(ips);
        free(names);
        return;
    }
    if (n_names == 0) {
        file_lookup_stop(c);
        c->file_named.n = 0;
    } else if (c->file_job != NULL) {
        free(c->file_names_next);
        c->file_names_next = names; /* file_resolved_cb starts it */
        c->n_file_names_next = n_names;
        names = NULL;
        log_debug("the upstreams file's names wait for the lookup under way", "n=%zu", n_names);
    } else {
        file_lookup_start(c, names, n_names);
    }
    c->file_ips = *ips;
    source_merge(&c->file, &c->file_ips, &c->file_named);
    free(ips);
    free(names);
    table_rebuild(c, why);
}

/* The file's names have been looked up: their addresses join its IPs, and
 * the names of a newer file, if any waited, are looked up next. */
static void file_resolved_cb(uv_async_t *h)
{
    struct control *c = h->data;
    struct config_seed *next = c->file_names_next;

    if (c->file_job == NULL ||
        !resolve_job_take(c->file_job, c->file_named.a, &c->file_named.n))
        return; /* a released lookup's wake-up, or not done yet */
    resolve_job_release(c->file_job);
    c->file_job = NULL;
    if (next != NULL) {
        c->file_names_next = NULL;
        file_lookup_start(c, next, c->n_file_names_next);
        free(next);
    }
    source_merge(&c->file, &c->file_ips, &c->file_named);
    table_rebuild(c, "file-names-resolved");
}

static void file_debounce_cb(uv_timer_t *t)
{
    file_reload(t->data, "file-change");
}

static void file_event_cb(uv_fs_event_t *h, const char *name, int events, int status)
{
    struct control *c = h->data;

    if (status < 0) {
        log_warn("watching the upstreams file failed", "dir=\"%s\" err=\"%s\"", c->file_dir,
                 uv_strerror(status));
        return;
    }
    /* Any change in the directory may be ours: a ConfigMap mount swaps a
     * "..data" symlink rather than touching the file's own name. */
    uv_timer_start(&c->file_debounce, file_debounce_cb, FILE_DEBOUNCE_MS, 0);
}

static int file_watch_start(struct control *c)
{
    char *d = strdup(c->cfg->upstreams_file), *b = strdup(c->cfg->upstreams_file);
    int rc;

    if (d == NULL || b == NULL) {
        free(d);
        free(b);
        return -ENOMEM;
    }
    c->file_dir = strdup(dirname(d));
    c->file_base = strdup(basename(b));
    free(d);
    free(b);
    if (c->file_dir == NULL || c->file_base == NULL)
        return -ENOMEM;
    uv_fs_event_init(&c->loop, &c->file_watch);
    c->file_watch.data = c;
    rc = uv_fs_event_start(&c->file_watch, file_event_cb, c->file_dir, 0);
    if (rc != 0)
        log_warn("cannot watch the upstreams file; SIGHUP still reloads it",
                 "dir=\"%s\" err=\"%s\"", c->file_dir, uv_strerror(rc));
    return 0;
}

/* --- signals and shutdown ------------------------------------------------------ */

static void shutdown_timer_cb(uv_timer_t *t)
{
    struct control *c = t->data;

    log_warn("shutdown timeout: closing open connections", "active=%u",
             atomic_load(&c->sh.active));
    atomic_store(&c->sh.phase, WORKER_CLOSING);
    kick_all(c);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct control *c = h->data;
    char dur[16];

    if (signum == SIGHUP) {
        if (c->cfg->upstreams_file != NULL) {
            log_info("SIGHUP: reloading the upstreams file", "file=\"%s\"", c->cfg->upstreams_file);
            file_reload(c, "sighup");
        } else {
            log_info("SIGHUP: no --upstreams-file to reload", "%s", "");
        }
        return;
    }
    if (atomic_load(&c->sh.phase) == WORKER_RUNNING) {
        config_duration_format(c->cfg->shutdown_timeout_ms, dur, sizeof(dur));
        log_info("shutting down: no new connections, draining open ones",
                 "signal=\"%s\" active=%u timeout=%s", strsignal(signum),
                 atomic_load(&c->sh.active), dur);
        atomic_store(&c->sh.phase, WORKER_DRAINING);
        uv_timer_start(&c->shutdown_timer, shutdown_timer_cb, c->cfg->shutdown_timeout_ms, 0);
    } else {
        log_warn("second signal: closing open connections now", "signal=\"%s\" active=%u",
                 strsignal(signum), atomic_load(&c->sh.active));
        atomic_store(&c->sh.phase, WORKER_CLOSING);
    }
    kick_all(c);
}

static void close_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void done_cb(uv_async_t *a)
{
    struct control *c = a->data;

    for (unsigned i = 0; i < c->n_workers; i++)
        if (!atomic_load(&c->workers[i].finished))
            return;
    health_free(c->health);
    c->health = NULL;
    file_lookup_stop(c); /* before file_async closes */
    uv_walk(&c->loop, close_cb, NULL);
}

/* Memory freed after a burst of connections stays in malloc's arenas (one
 * per worker thread) and would keep the RSS at the burst's peak for good.
 * Once the open sessions fall to half of the peak since the last trim, the
 * free pages go back to the kernel: a few madvise calls, at most once per
 * tick, and only after a real burst. */
#define TRIM_MIN_PEAK 64

static void memory_trim(struct control *c)
{
    unsigned active = atomic_load(&c->sh.active);

    if (active > c->peak_active)
        c->peak_active = active;
    if (c->peak_active >= TRIM_MIN_PEAK && active <= c->peak_active / 2) {
        malloc_trim(0);
        c->peak_active = active;
    }
}

static void tick_cb(uv_timer_t *t)
{
    struct control *c = t->data;
    struct upstream *const *ups;
    size_t n;

    memory_trim(c);
    reg_prune(c);
    ups = registry_upstreams(c->reg, &n); /* the loop is the only writer */
    if (c->health != NULL)
        for (size_t i = 0; i < n; i++)
            health_dial_failed(c->health, ups[i]);
}

static void health_changed(void *arg, struct upstream *up, enum upstream_health from,
                           enum upstream_health to, const char *why)
{
    struct control *c = arg;

    uv_mutex_lock(&c->lock);
    up->health_since_unix_ms = (uint64_t)time(NULL) * 1000u;
    snprintf(up->health_reason, sizeof(up->health_reason), "%s", why);
    uv_mutex_unlock(&c->lock);
    if (to == UPSTREAM_UNHEALTHY)
        log_warn("upstream health changed", "upstream=%s from=%s to=%s reason=\"%s\" active=%u%s",
                 up->name, upstream_health_name(from), upstream_health_name(to), log_quote(why),
                 atomic_load(&up->active),
                 !c->cfg->close_unhealthy                 ? ""
                 : atomic_load(&up->unready_since_ms) != 0 ? " draining=true"
                                                           : " closing=true");
    else
        log_info("upstream health changed", "upstream=%s from=%s to=%s reason=\"%s\"", up->name,
                 upstream_health_name(from), upstream_health_name(to), log_quote(why));
    kick_all(c); /* workers close the sessions of an unhealthy upstream */
}

/* --- start-up ---------------------------------------------------------------- */

static int open_listeners(struct control *c, int *fds)
{
    const struct config *cfg = c->cfg;
    struct addr listen[CONFIG_MAX_LISTEN];
    char name[ADDR_STRLEN], holder[128];

    memcpy(listen, cfg->listen, sizeof(listen));
    for (unsigned w = 0; w < c->n_workers; w++) {
        for (size_t i = 0; i < cfg->n_listen; i++) {
            int fd = listener_open(&listen[i]);

            if (fd >= 0) {
                fds[w * cfg->n_listen + i] = fd;
                continue;
            }
            addr_format(&listen[i], name, sizeof(name));
            if (fd == -EADDRINUSE) {
                listener_holder(&listen[i], holder, sizeof(holder));
                fprintf(stderr, "apilb: --listen=%s: address already in use%s%s%s\n", name,
                        holder[0] ? " (held by " : "", holder, holder[0] ? ")" : "");
            } else if (fd == -EACCES && addr_port(&listen[i]) < 1024) {
                fprintf(stderr,
                        "apilb: --listen=%s: permission denied (ports below 1024 need root "
                        "or CAP_NET_BIND_SERVICE)\n",
                        name);
            } else {
                fprintf(stderr, "apilb: --listen=%s: cannot listen: %s\n", name,
                        strerror(-fd));
            }
            for (size_t k = 0; k < w * cfg->n_listen + i; k++)
                close(fds[k]);
            return -1;
        }
    }
    for (size_t i = 0; i < cfg->n_listen; i++) {
        char others[256];
        int mig = migrate_enable(fds[i]); /* worker 0's socket: one per group */

        addr_format(&listen[i], name, sizeof(name));
        log_info("listening", "addr=%s workers=%u queue_handover=%s", name, c->n_workers,
                 mig == 0 ? "on" : "sysctl");
        if (mig != 0)
            log_info("connections still queued when apilb closes this listener are handed to "
                     "the next apilb only if net.ipv4.tcp_migrate_req=1 (docs/upgrade.md)",
                     "addr=%s err=\"%s\"", name, strerror(-mig));
        listener_sharers(&listen[i], others, sizeof(others));
        if (others[0] != '\0')
            log_warn("another program listens on this port too: connections may go to it "
                     "instead of apilb (a hostNetwork ingress controller?); choose another "
                     "--listen port (docs/kubelet.md)",
                     "addr=%s others=\"%s\"", name, log_quote(others));
    }
    return 0;
}

/* A control with its registry and locks, the sources not loaded yet; NULL
 * on ENOMEM. */
static struct control *control_new(const struct config *cfg)
{
    struct control *c = calloc(1, sizeof(*c));
    struct discovery_sink sink = {disc_addrs, disc_ca, disc_auth, disc_route, c};

    if (c == NULL || (c->reg = registry_new()) == NULL) {
        free(c);
        return NULL;
    }
    c->cfg = cfg;
    c->sh.cfg = cfg;
    c->n_workers = cfg->workers;
    c->start_unix_ms = (uint64_t)time(NULL) * 1000u;
    c->state_stats.enabled = cfg->state_file != NULL;
    c->state_stats.last_ok = true;
    atomic_store(&c->sh.next_session_id, 1);
    uv_mutex_init(&c->lock);
    discovery_init(&c->discovery, &sink);
    return c;
}

/* Frees what control_new() and the run allocated (the loop is closed). */
static void control_free(struct control *c)
{
    registry_free(c->reg);
    free(c->file_dir);
    free(c->file_base);
    free(c->workers);
    discovery_fini(&c->discovery);
    uv_mutex_destroy(&c->lock);
    free(c);
}

static void loopback_pacing_log(void)
{
    char def[SOCKOPT_CC_NAME_BYTES];
    int err;
    const char *cc = sockopt_local_init(def, &err);

    if (cc != NULL)
        log_info("loopback connections are not paced", "default=%s loopback=%s", def, cc);
    else if (err != 0)
        log_info("loopback connections stay paced: neither cubic nor reno may be set",
                 "default=%s err=\"%s\"", def, strerror(err));
}

/* Starts the admin endpoint when enabled. Returns 0, or -EINVAL after
 * printing one line. */
static int endpoint_start(struct control *c)
{
    struct addr admin_addr = c->cfg->admin_listen;
    char err[CONFIG_ERR_BYTES], name[ADDR_STRLEN];

    if (!c->cfg->admin_enabled)
        return 0;
    c->admin_ops = module_load(ADMIN_MODULE, ADMIN_OPS_SYMBOL, err, sizeof(err));
    if (c->admin_ops == NULL || c->admin_ops->start(&admin_addr, control_snapshot,
                                                    control_connections, c, &c->admin, err,
                                                    sizeof(err)) != 0) {
        fprintf(stderr, "apilb: %s%s\n", c->admin_ops == NULL ? "admin endpoint: " : "", err);
        return -EINVAL;
    }
    log_info("admin endpoint listening", "addr=%s",
             addr_format(&admin_addr, name, sizeof(name)));
    return 0;
}

/* Stops the admin endpoint if it runs; first at shutdown: its snapshots
 * read the watcher's stats. */
static void endpoint_stop(struct control *c)
{
    if (c->admin != NULL)
        c->admin_ops->stop(c->admin);
    c->admin = NULL;
}

/* Starts the health checks unless --health-check none. Returns 0, or
 * -EINVAL after printing one line. */
static int checks_start(struct control *c, const char *ca_pem, const struct watcher_auth *auth)
{
    char err[CONFIG_ERR_BYTES];

    if (c->cfg->health_check == CONFIG_HEALTH_NONE)
        return 0;
    if (health_new(&c->loop, c->cfg, ca_pem, health_changed, c, &c->health, err,
                   sizeof(err)) != 0) {
        fprintf(stderr, "apilb: %s\n", err);
        return -EINVAL;
    }
    return health_auth_start(c->cfg, c->health, auth) < 0 ? -EINVAL : 0;
}

/* Starts the workers on fds (theirs from now on). */
static void workers_start(struct control *c, int *fds)
{
    size_t per = c->cfg->n_listen;

    for (unsigned i = 0; i < c->n_workers; i++) {
        struct upstream_table *t = registry_table(c->reg);

        if (t != NULL)
            upstream_table_ref(t);
        if (worker_start(&c->workers[i], i, &c->sh, fds + (size_t)i * per, per, t, &c->done) !=
            0) {
            fprintf(stderr, "apilb: cannot start worker %u\n", i);
            abort(); /* threads are running; no clean way back */
        }
        c->n_started++;
    }
}

/* The loop's own handles: wake-ups, signals, timers. */
static void handles_start(struct control *c)
{
    uv_async_init(&c->loop, &c->done, done_cb);
    c->done.data = c;
    discovery_attach(&c->discovery, &c->loop);
    uv_async_init(&c->loop, &c->file_async, file_resolved_cb);
    c->file_async.data = c;
    uv_signal_init(&c->loop, &c->sig_term);
    uv_signal_init(&c->loop, &c->sig_int);
    uv_signal_init(&c->loop, &c->sig_hup);
    c->sig_term.data = c->sig_int.data = c->sig_hup.data = c;
    uv_timer_init(&c->loop, &c->shutdown_timer);
    uv_timer_init(&c->loop, &c->file_debounce);
    uv_timer_init(&c->loop, &c->tick);
    c->shutdown_timer.data = c->file_debounce.data = c->tick.data = c;
}

/* Runs apilb from a started admin endpoint and health checks until every
 * worker finished; the workers own fds. Returns the exit code. */
static int serve(struct control *c, int *fds)
{
    const struct config *cfg = c->cfg;
    bool start_failed = false;
    int err = sharewatch_init(&c->sharers, &c->loop, fds, c->n_workers, cfg->n_listen,
                              c->admin != NULL ? c->admin_ops->listen_fd(c->admin) : -1,
                              cfg->listener_check_interval_ms, &c->sh);

    if (err != 0)
        log_warn("other listeners on apilb's addresses are looked for only at start",
                 "err=\"%s\"", strerror(-err));
    table_rebuild(c, "start");
    handles_start(c);
    workers_start(c, fds);
    uv_signal_start(&c->sig_term, signal_cb, SIGTERM);
    uv_signal_start(&c->sig_int, signal_cb, SIGINT);
    uv_signal_start(&c->sig_hup, signal_cb, SIGHUP);
    uv_timer_start(&c->tick, tick_cb, TICK_MS, TICK_MS);
    if (cfg->upstreams_file != NULL)
        (void)file_watch_start(c);
    if (cfg->discovery != CONFIG_DISCOVERY_OFF && watcher_run(c) != 0) {
        /* Bad credentials are a configuration error: stop what runs. */
        start_failed = true;
        atomic_store(&c->sh.phase, WORKER_CLOSING);
        kick_all(c);
    }
    if (!start_failed)
        log_info("started", "version=%s workers=%u upstreams=%zu balance=%d", APILB_VERSION,
                 c->n_workers, registry_table(c->reg) != NULL ? registry_table(c->reg)->n : 0,
                 (int)cfg->balance);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    endpoint_stop(c);
    if (c->watcher != NULL)
        discovery_module()->stop(c->watcher);
    c->watcher = NULL;
    for (unsigned i = 0; i < c->n_workers; i++)
        worker_join(&c->workers[i]);
    if (start_failed)
        return EXIT_CONFIG;
    log_info("stopped", "accepted=%" PRIu64, atomic_load(&c->sh.accepted));
    return 0;
}

int control_run(const struct config *cfg)
{
    struct control *c = control_new(cfg);
    char *ca_pem = NULL;                           /* the cluster CA, for health checks */
    struct watcher_auth auth = {NULL, NULL, NULL}; /* --health-auth kubeconfig */
    bool curl = cfg->discovery != CONFIG_DISCOVERY_OFF;
    size_t n_fds = (size_t)cfg->workers * cfg->n_listen; /* 0 once the workers own them */
    int *fds = NULL, rc = EXIT_CONFIG;

    if (c == NULL) {
        fprintf(stderr, "apilb: out of memory\n");
        return EXIT_RUNTIME;
    }
    if (seeds_resolve(cfg, cfg->seeds, cfg->n_seeds, &c->seeds, cfg->seeds_from, false) < 0 ||
        (cfg->upstreams_file != NULL &&
         file_load(cfg, &c->file, &c->file_ips, &c->file_named, true) < 0))
        goto free_control;
    if (discovery_cluster_ca(cfg, &ca_pem) < 0 || discovery_auth_load(cfg, &auth) < 0)
        goto free_credentials;
    rc = EXIT_RUNTIME;
    /* libcurl (and the TLS library under it) before any thread starts. */
    if (curl && discovery_module()->global_init() != 0) {
        fprintf(stderr, "apilb: cannot initialise libcurl\n");
        goto free_credentials;
    }
    if (cfg->state_file != NULL)
        state_load(c);
    c->workers = calloc(c->n_workers, sizeof(*c->workers));
    fds = calloc(n_fds, sizeof(int));
    if (c->workers == NULL || fds == NULL || uv_loop_init(&c->loop) != 0) {
        fprintf(stderr, "apilb: out of memory\n");
        goto cleanup_curl;
    }
    loopback_pacing_log();
    if (open_listeners(c, fds) < 0)
        goto close_loop;
    if (endpoint_start(c) < 0)
        goto close_listeners;
    rc = EXIT_CONFIG;
    if (checks_start(c, ca_pem, &auth) < 0)
        goto stop_admin;
    rc = serve(c, fds);
    n_fds = 0;
stop_admin:
    endpoint_stop(c);
close_listeners:
    for (size_t i = 0; i < n_fds; i++)
        close(fds[i]);
close_loop:
    file_lookup_stop(c);
    uv_walk(&c->loop, close_cb, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&c->loop);
cleanup_curl:
    if (curl)
        discovery_module()->global_cleanup();
free_credentials:
    free(ca_pem);
    discovery_auth_free(cfg, &auth);
free_control:
    free(fds);
    control_free(c);
    return rc;
}
