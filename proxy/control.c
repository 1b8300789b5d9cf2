/* SPDX-License-Identifier: Apache-2.0 */
/* The control thread; see control.h. The shell only: struct control, the
 * threads, signals, timers, the upstreams file's watch and start/stop. The
 * parts it runs are beside it (docs/architecture.md, "Files by role"). */
#define LOG_MODULE "control"
#include "control.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "adminview.h"
#include "cfgsource.h"
#include "clock.h"
#include "discovery.h"
#include "healthlink.h"
#include "listenset.h"
#include "log.h"
#include "loopclose.h"
#include "memtrim.h"
#include "prefer.h"
#include "ctltable.h"
#include "sharewatch.h"
#include "sockopt.h"
#include "statesave.h"
#include "upstream.h"
#include "watcher.h"
#include "worker.h"

/* File-change events arrive in bursts (editors, ConfigMap symlink swaps). */
#define FILE_DEBOUNCE_MS 100
/* How often removed upstreams are checked for being fully drained. */
#define TICK_MS 200

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
    char *file_dir;            /* the upstreams file's directory, watched */
    struct cfgsource file;     /* the upstreams file */
    struct statesave state;    /* the state file's writer */
    /* The table, state.stats, watcher and upstreams' health reasons, for
     * the snapshots and routes other threads take. */
    uv_mutex_t lock;
    struct ctltable table; /* the registry, its table and its upstreams */
    struct adminview admin;
    struct healthlink health;
    struct watcher *watcher;    /* NULL with --discovery off */
    struct discovery discovery; /* what the watcher hands over */
    struct memtrim trim;
    struct prefer prefer; /* --prefer: the tiers, each tick */
};

static void kick_all(struct control *c)
{
    for (unsigned i = 0; i < c->n_started; i++)
        if (!atomic_load(&c->workers[i].finished))
            worker_kick(&c->workers[i]);
}

/* healthlink.kick. */
static void kick_cb(void *arg)
{
    kick_all(arg);
}

/* --- the upstreams file's watch ------------------------------------------- */

static void file_debounce_cb(uv_timer_t *t)
{
    struct control *c = t->data;

    cfgsource_reload(&c->file, "file-change");
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

/* Watches the upstreams file's directory; a failure is logged (SIGHUP
 * still reloads). Returns 0 or -ENOMEM. */
static int file_watch_start(struct control *c)
{
    char *d = strdup(c->cfg->upstreams_file);
    int rc;

    if (d == NULL)
        return -ENOMEM;
    c->file_dir = strdup(dirname(d));
    free(d);
    if (c->file_dir == NULL)
        return -ENOMEM;
    uv_fs_event_init(&c->loop, &c->file_watch);
    c->file_watch.data = c;
    rc = uv_fs_event_start(&c->file_watch, file_event_cb, c->file_dir, 0);
    if (rc != 0)
        log_warn("cannot watch the upstreams file; SIGHUP still reloads it",
                 "dir=\"%s\" err=\"%s\"", c->file_dir, uv_strerror(rc));
    return 0;
}

/* --- signals, timers and shutdown ------------------------------------------ */

static void shutdown_timer_cb(uv_timer_t *t)
{
    struct control *c = t->data;

    log_warn("shutdown timeout: closing open connections", "active=%u", atomic_load(&c->sh.active));
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
            cfgsource_reload(&c->file, "sighup");
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

/* Closes what runs on the loop so that uv_run returns. */
static void handles_close(struct control *c)
{
    healthlink_stop(&c->health);
    cfgsource_stop(&c->file); /* before its wake-up closes */
    loopclose_handles(&c->loop);
}

static void done_cb(uv_async_t *a)
{
    struct control *c = a->data;

    for (unsigned i = 0; i < c->n_workers; i++)
        if (!atomic_load(&c->workers[i].finished))
            return;
    handles_close(c);
}

static void tick_cb(uv_timer_t *t)
{
    struct control *c = t->data;
    struct upstream *const *ups;
    size_t n;

    (void)memtrim_tick(&c->trim, atomic_load(&c->sh.active));
    ctltable_prune(&c->table);
    prefer_update(&c->prefer, registry_table(c->table.reg), clock_now_ms());
    ups = registry_upstreams(c->table.reg, &n); /* the loop is the only writer */
    if (c->health.h != NULL)
        for (size_t i = 0; i < n; i++)
            health_poll_dial_failures(c->health.h, ups[i]);
}

/* --- start and stop -------------------------------------------------------- */

/* Points the parts of c at each other. */
static void parts_init(struct control *c)
{
    c->table = (struct ctltable){.cfg = c->cfg,
                                 .lock = &c->lock,
                                 .workers = &c->workers,
                                 .n_started = &c->n_started,
                                 .state = &c->state,
                                 .health = &c->health};
    c->health = (struct healthlink){
        .cfg = c->cfg, .table = &c->table, .lock = &c->lock, .kick = kick_cb, .arg = c};
    c->admin = (struct adminview){
        .cfg = c->cfg,
        .lock = &c->lock,
        .swaps = &c->table.swaps,
        .state_stats = &c->state.stats,
        .watcher = &c->watcher,
        .sh = &c->sh,
        .workers = &c->workers,
        .n_started = &c->n_started,
        .n_workers = c->n_workers,
        .start_unix_ms = clock_wall_ms(),
    };
}

/* Frees what control_new() and the run allocated (the loop is closed). */
static void control_free(struct control *c)
{
    if (c == NULL)
        return;
    ctltable_fini(&c->table);
    cfgsource_fini(&c->file);
    statesave_fini(&c->state);
    free(c->file_dir);
    free(c->workers);
    discovery_fini(&c->discovery);
    uv_mutex_destroy(&c->lock);
    free(c);
}

/* A control with its parts, the sources not loaded yet; NULL on ENOMEM. */
static struct control *control_new(const struct config *cfg)
{
    struct control *c = calloc(1, sizeof(*c));
    struct discovery_sink sink = {ctltable_discovered_cb,
                                  ctltable_route_cb,
                                  NULL,
                                  healthlink_ca_cb,
                                  healthlink_auth_cb,
                                  NULL,
                                  prefer_node_zone_cb,
                                  NULL};

    if (c == NULL)
        return NULL;
    c->cfg = cfg;
    c->sh.cfg = cfg;
    c->sh.balance_salt = uv_hrtime() ^ ((uint64_t)getpid() << 32); /* --rebalance's ranks */
    c->n_workers = cfg->workers;
    atomic_store(&c->sh.next_session_id, 1);
    uv_mutex_init(&c->lock);
    parts_init(c);
    prefer_init(&c->prefer, cfg);
    sink.arg = &c->table;
    sink.health_arg = &c->health;
    sink.zone_arg = &c->prefer;
    discovery_init(&c->discovery, &sink);
    c->workers = calloc(c->n_workers, sizeof(*c->workers));
    if (c->workers == NULL || ctltable_init(&c->table) != 0 ||
        cfgsource_init(&c->file, cfg->upstreams_file, ctltable_file_cb, &c->table) != 0 ||
        statesave_init(&c->state, cfg->state_file, &c->loop, &c->lock) != 0) {
        control_free(c);
        return NULL;
    }
    c->admin.reg = c->table.reg;
    return c;
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

/* The loop's own handles: wake-ups, signals, timers. */
static void handles_init(struct control *c)
{
    uv_async_init(&c->loop, &c->done, done_cb);
    c->done.data = c;
    discovery_attach(&c->discovery, &c->loop);
    cfgsource_attach(&c->file, &c->loop);
    uv_signal_init(&c->loop, &c->sig_term);
    uv_signal_init(&c->loop, &c->sig_int);
    uv_signal_init(&c->loop, &c->sig_hup);
    c->sig_term.data = c->sig_int.data = c->sig_hup.data = c;
    uv_timer_init(&c->loop, &c->shutdown_timer);
    uv_timer_init(&c->loop, &c->file_debounce);
    uv_timer_init(&c->loop, &c->tick);
    c->shutdown_timer.data = c->file_debounce.data = c->tick.data = c;
}

/* Starts the workers on fds (theirs from now on). */
static void workers_start(struct control *c, int *fds)
{
    size_t per = c->cfg->n_listen;

    for (unsigned i = 0; i < c->n_workers; i++) {
        struct upstream_table *t = ctltable_current(&c->table);

        if (t != NULL)
            upstream_table_ref(t);
        if (worker_start(&c->workers[i], i, &c->sh, fds + (size_t)i * per, per, t, &c->done) != 0) {
            fprintf(stderr, "apilb: cannot start worker %u\n", i);
            abort(); /* threads are running; no clean way back */
        }
        c->n_started++;
    }
}

/* Builds the first table, starts the loop's handles, the workers on fds
 * (theirs from now on) and the watcher. Returns 0, or the watcher's
 * negative errno with one line in err (bad credentials: the workers are
 * told to close). */
static int control_start(struct control *c, int *fds, char *err, size_t err_len)
{
    const struct config *cfg = c->cfg;
    const struct upstream_table *t;
    int rc = sharewatch_init(&c->sharers, &c->loop, fds, c->n_workers, cfg->n_listen,
                             adminview_listen_fd(&c->admin), cfg->listener_check_interval_ms,
                             cfg->listener_grace_ms, &c->sh);

    if (rc != 0)
        log_warn("other listeners on apilb's addresses are looked for only at start", "err=\"%s\"",
                 strerror(-rc));
    ctltable_rebuild(&c->table, "start");
    handles_init(c);
    workers_start(c, fds);
    uv_signal_start(&c->sig_term, signal_cb, SIGTERM);
    uv_signal_start(&c->sig_int, signal_cb, SIGINT);
    uv_signal_start(&c->sig_hup, signal_cb, SIGHUP);
    uv_timer_start(&c->tick, tick_cb, TICK_MS, TICK_MS);
    if (cfg->upstreams_file != NULL)
        (void)file_watch_start(c);
    if (cfg->discovery != WATCHER_DISCOVERY_OFF) {
        rc = discovery_start(&c->discovery, cfg, &c->lock, &c->watcher, err, err_len);
        if (rc != 0) {
            atomic_store(&c->sh.phase, WORKER_CLOSING);
            kick_all(c);
            return rc;
        }
    }
    t = ctltable_current(&c->table);
    log_info("started", "version=%s workers=%u upstreams=%zu balance=%s", APILB_VERSION,
             c->n_workers, t != NULL ? t->n : 0, upstream_balance_name(cfg->balance));
    return 0;
}

/* After the loop returned: the admin endpoint first (its snapshots read
 * the watcher's stats), then the watcher, then the workers; says so when
 * the start had succeeded. */
static void control_stop(struct control *c, bool started)
{
    adminview_stop(&c->admin);
    if (c->watcher != NULL)
        discovery_module()->stop(c->watcher);
    c->watcher = NULL;
    for (unsigned i = 0; i < c->n_workers; i++)
        worker_join(&c->workers[i]);
    if (started)
        log_info("stopped", "accepted=%" PRIu64, atomic_load(&c->sh.accepted));
}

/* libcurl (and the TLS library under it) before any thread starts, with
 * discovery. Returns 0, or -EIO with one line in err. */
static int curl_init(const struct config *cfg, char *err, size_t err_len)
{
    if (cfg->discovery == WATCHER_DISCOVERY_OFF || discovery_module()->global_init() == 0)
        return 0;
    snprintf(err, err_len, "cannot initialise libcurl");
    return -EIO;
}

int control_run(const struct config *cfg)
{
    struct control *c = control_new(cfg);
    char err[CONFIG_ERR_BYTES] = "out of memory";
    char *ca_pem = NULL;                                 /* the cluster CA, for health checks */
    struct watcher_auth auth = {NULL, NULL, NULL};       /* --health-auth kubeconfig */
    size_t n_fds = (size_t)cfg->workers * cfg->n_listen; /* 0 once the workers own them */
    int *fds = NULL, code = c == NULL ? EXIT_RUNTIME : EXIT_CONFIG;

    if (c == NULL || ctltable_load(&c->table, &c->file, err, sizeof(err)) < 0)
        goto free_control;
    if (discovery_cluster_ca(cfg, &ca_pem, err, sizeof(err)) < 0 ||
        discovery_auth_load(cfg, &auth, err, sizeof(err)) < 0)
        goto free_credentials;
    code = EXIT_RUNTIME;
    if (curl_init(cfg, err, sizeof(err)) < 0)
        goto free_credentials;
    ctltable_load_state(&c->table);
    fds = calloc(n_fds, sizeof(int));
    if (fds == NULL || uv_loop_init(&c->loop) != 0)
        goto cleanup_curl;
    loopback_pacing_log();
    if (listenset_open(cfg->listen, cfg->n_listen, c->n_workers, fds, err, sizeof(err)) < 0)
        goto close_loop;
    if (adminview_start(&c->admin, err, sizeof(err)) < 0)
        goto close_listeners;
    code = EXIT_CONFIG;
    if (healthlink_start(&c->health, &c->loop, ca_pem, &auth, err, sizeof(err)) < 0)
        goto stop_admin;
    n_fds = 0;
    err[0] = '\0';
    if (control_start(c, fds, err, sizeof(err)) == 0)
        code = 0;
    uv_run(&c->loop, UV_RUN_DEFAULT);
    control_stop(c, code == 0);
stop_admin:
    adminview_stop(&c->admin);
close_listeners:
    for (size_t i = 0; i < n_fds; i++)
        close(fds[i]);
close_loop:
    handles_close(c);
    loopclose_all(&c->loop);
cleanup_curl:
    if (cfg->discovery != WATCHER_DISCOVERY_OFF)
        discovery_module()->global_cleanup();
free_credentials:
    free(ca_pem);
    discovery_auth_free(cfg, &auth);
free_control:
    free(fds);
    control_free(c);
    if (err[0] != '\0') /* the one line of a start that failed */
        fprintf(stderr, "apilb: %s\n", err);
    return code;
}
