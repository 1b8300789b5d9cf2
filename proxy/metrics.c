/* SPDX-License-Identifier: Apache-2.0 */
/* Prometheus exposition; see metrics.h. */
#include "metrics.h"

#include <assert.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "worker.h"
#include "balance.h"

static void head(struct strbuf *b, const char *name, const char *type, const char *help)
{
    strbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{upstream="..."[,extra]} value */
static void up_sample(struct strbuf *b, const char *name, const struct upstream *up,
                      const char *extra, uint64_t v)
{
    strbuf_printf(b, "%s{upstream=\"", name);
    strbuf_label_escape(b, up->name);
    strbuf_printf(b, "\"%s%s} %" PRIu64 "\n", extra[0] ? "," : "", extra, v);
}

/* A family of one sample without labels: its HELP and TYPE lines, then
 * "name value". */
static void scalar(struct strbuf *b, const char *name, const char *type, const char *help,
                   uint64_t v)
{
    head(b, name, type, help);
    strbuf_printf(b, "%s %" PRIu64 "\n", name, v);
}

/* --close-spread and the loss probe: the paced closes and dials. */
static void pacing_metrics(const struct worker_shared *sh, struct strbuf *b)
{
    scalar(b, "apilb_closes_spread_pending", "gauge",
           "Connections of unhealthy upstreams waiting for their turn to close (--close-spread).",
           SNAPSHOT_LOAD(sh->closes_pending));
    scalar(b, "apilb_connections_closed_spread_total", "counter",
           "Connections of unhealthy upstreams closed at their turn in the --close-spread window.",
           SNAPSHOT_LOAD(sh->closed_by_spread));
    scalar(b, "apilb_dials_paced_pending", "gauge",
           "New connections waiting for their turn to dial after an upstream dropped connections.",
           SNAPSHOT_LOAD(sh->dials_pending));
    scalar(b, "apilb_dial_pacing_windows_total", "counter",
           "Paced-dial windows opened: an upstream lost many of its connections within a second, "
           "or ended one and refused the probe that followed.",
           SNAPSHOT_LOAD(sh->pace_windows));
    head(b, "apilb_loss_probes_total", "counter",
         "Connects made to an upstream that ended a lasting connection, by verdict: gone "
         "(refused, reset, unreachable: dials are paced), alive, unknown (no answer in 250 ms).");
    for (int v = 0; v < LOSSPROBE_N_VERDICTS; v++)
        strbuf_printf(b, "apilb_loss_probes_total{verdict=\"%s\"} %" PRIu64 "\n",
                      lossprobe_verdict_name((enum lossprobe_verdict)v),
                      SNAPSHOT_LOAD(sh->loss_probes[v]));
    scalar(b, "apilb_dials_paced_total", "counter",
           "New connections whose dial was put off into the paced-dial window (--redial-spread).",
           SNAPSHOT_LOAD(sh->dials_paced));
}

static void process_metrics(const struct snapshot *s, struct strbuf *b)
{
    const struct worker_shared *sh = s->sh;

    head(b, "apilb_build_info", "gauge", "Version of apilb, as a label.");
    strbuf_printf(b, "apilb_build_info{version=\"%s\"} 1\n", APILB_VERSION);
    head(b, "apilb_start_time_seconds", "gauge", "Start time of the process since the epoch.");
    strbuf_printf(b, "apilb_start_time_seconds %.3f\n", (double)s->start_unix_ms / 1000.0);
    scalar(b, "apilb_workers", "gauge", "Event-loop worker threads.", s->workers);
    scalar(b, "apilb_connections_accepted_total", "counter", "Client connections accepted.",
           SNAPSHOT_LOAD(sh->accepted));
    head(b, "apilb_connections_refused_total", "counter",
         "Client connections closed without being proxied, by reason.");
    strbuf_printf(b, "apilb_connections_refused_total{reason=\"limit\"} %" PRIu64 "\n",
                  SNAPSHOT_LOAD(sh->refused_limit));
    strbuf_printf(b, "apilb_connections_refused_total{reason=\"no_upstream\"} %" PRIu64 "\n",
                  SNAPSHOT_LOAD(sh->refused_no_upstream));
    scalar(b, "apilb_active_connections", "gauge", "Client connections open now.",
           SNAPSHOT_LOAD(sh->active));
    scalar(b, "apilb_accept_errors_total", "counter",
           "accept(2) failures (EMFILE and the like); accepting pauses briefly after each.",
           SNAPSHOT_LOAD(sh->accept_errors));
    head(b, "apilb_connections_failed_by_upstream_total", "counter",
         "Client connections that ended because their upstream reset or failed them, by phase "
         "(before its first byte or after); the sum over every upstream, pruned ones included.");
    strbuf_printf(b,
                  "apilb_connections_failed_by_upstream_total{phase=\"before_answer\"} %" PRIu64
                  "\n",
                  SNAPSHOT_LOAD(sh->failed_by_upstream[0]));
    strbuf_printf(b,
                  "apilb_connections_failed_by_upstream_total{phase=\"after_answer\"} %" PRIu64
                  "\n",
                  SNAPSHOT_LOAD(sh->failed_by_upstream[1]));
    scalar(b, "apilb_connections_closed_max_age_total", "counter",
           "Connections closed by --max-connection-age.", SNAPSHOT_LOAD(sh->closed_by_age));
    pacing_metrics(sh, b);
    scalar(b, "apilb_health_closes_held", "gauge",
           "1 while every upstream is unhealthy: their connections are kept, not closed.",
           SNAPSHOT_LOAD(sh->health_closes_held) ? 1 : 0);
    scalar(b, "apilb_send_batching", "gauge",
           "Workers that make the sends of a batch of events in one system call (io_uring); "
           "0 when io_uring is not available (one by one).",
           SNAPSHOT_LOAD(sh->send_batching));
    scalar(b, "apilb_sends_batched_total", "counter",
           "Sends made together with the others of their batch of events.",
           SNAPSHOT_LOAD(sh->sends_batched));
    scalar(b, "apilb_send_batches_total", "counter",
           "System calls that made the batched sends (sends per batch: the ratio).",
           SNAPSHOT_LOAD(sh->send_batches));
    scalar(b, "apilb_listener_foreign_sharers", "gauge",
           "Sockets of other programs in the SO_REUSEPORT groups of the --listen and admin "
           "addresses: they get a share of new connections (docs/security.md).",
           SNAPSHOT_LOAD(sh->listener_foreign_sharers));
    scalar(b, "apilb_listener_apilb_sharers", "gauge",
           "Sockets of another apilb there (an upgrade in progress).",
           SNAPSHOT_LOAD(sh->listener_apilb_sharers));
    scalar(b, "apilb_table_generation", "gauge", "Generation of the current upstream table.",
           s->generation);
    scalar(b, "apilb_table_swaps_total", "counter", "Upstream tables published to the workers.",
           s->table_swaps);
    head(b, "apilb_upstreams", "gauge",
         "Upstreams known (in the table or draining) and usable now.");
}

/* The most label values a family of up_families has (connect failures). */
#define UP_VALUES_MAX UPSTREAM_FAIL_COUNT

/* The offset of a counter of struct upstream, which must be an
 * _Atomic uint64_t (anything else fails to compile). */
#define UP_COUNTER(f)                                                                              \
    (offsetof(struct upstream, f) +                                                                \
     0 * sizeof(_Generic(&((struct upstream *)0)->f, _Atomic uint64_t * : 1)))

/* One metric family with a sample per upstream: with a label taking
 * n_values values (value(k) names the k-th) a sample per value, else one.
 * A sample is the counter of struct upstream at field[k] (UP_COUNTER; k is
 * the label value's index, 0 without a label), or what get() computes from
 * the upstream when the family has one. Or, for the shapes that are
 * neither, render() writes the whole family. */
struct up_family {
    const char *name, *type, *help;
    const char *label;
    const char *(*value)(int k);
    int n_values;
    size_t field[UP_VALUES_MAX];
    uint64_t (*get)(const struct snapshot_upstream *su, uint64_t now_ms, int k);
    void (*render)(const struct snapshot *s, struct strbuf *b);
};

static uint64_t up_value(const struct up_family *f, const struct snapshot_upstream *su,
                         uint64_t now_ms, int k)
{
    if (f->get != NULL)
        return f->get(su, now_ms, k);
    /* Offset 0 is the address, never a counter: a value the table missed. */
    assert(k < UP_VALUES_MAX && f->field[k] != 0);
    return atomic_load_explicit((const _Atomic uint64_t *)(const void *)((const char *)su->up +
                                                                         f->field[k]),
                                memory_order_relaxed);
}

static void up_family(const struct up_family *f, const struct snapshot *s, uint64_t now_ms,
                      struct strbuf *b)
{
    if (f->render != NULL) {
        f->render(s, b);
        return;
    }
    head(b, f->name, f->type, f->help);
    for (size_t i = 0; i < s->n; i++) {
        for (int k = 0; k < (f->label != NULL ? f->n_values : 1); k++) {
            char extra[64] = "";

            if (f->label != NULL)
                snprintf(extra, sizeof(extra), "%s=\"%s\"", f->label, f->value(k));
            up_sample(b, f->name, s->u[i].up, extra, up_value(f, &s->u[i], now_ms, k));
        }
    }
}

static const char *health_value(int k)
{
    return upstream_health_name((enum upstream_health)k);
}

static const char *fail_value(int k)
{
    return upstream_fail_name((enum upstream_fail)k);
}

static const char *check_value(int k)
{
    static const char *const names[] = {"success", "failure", "local_error"};

    return names[k];
}

static const char *closed_value(int k)
{
    static const char *const names[] = {"unhealthy", "drained", "unacked", "rebalance"};

    return names[k];
}

static const char *phase_value(int k)
{
    static const char *const names[] = {"before_answer", "after_answer"};

    return names[k];
}

/* The samples that are no counter of their own: computed, or (active) an
 * _Atomic unsigned. */
static uint64_t get_health(const struct snapshot_upstream *su, uint64_t now_ms, int k)
{
    (void)now_ms;
    return SNAPSHOT_LOAD(su->up->health) == k;
}

static uint64_t get_usable(const struct snapshot_upstream *su, uint64_t now_ms, int k)
{
    (void)k;
    return su->in_table && upstream_usable(su->up, now_ms);
}

static uint64_t get_draining(const struct snapshot_upstream *su, uint64_t now_ms, int k)
{
    (void)now_ms, (void)k;
    return !su->in_table;
}

static uint64_t get_active(const struct snapshot_upstream *su, uint64_t now_ms, int k)
{
    (void)now_ms, (void)k;
    return SNAPSHOT_LOAD(su->up->active);
}

static void zone_info(const struct snapshot *s, struct strbuf *b)
{
    head(b, "apilb_upstream_zone_info", "gauge",
         "1 per upstream with a known zone (EndpointSlice endpoints[].zone, or --upstream-zone).");
    for (size_t i = 0; i < s->n; i++) {
        char extra[16 + ZONE_NAME_MAX];

        if (!s->u[i].in_table || s->u[i].zone.name[0] == '\0')
            continue;
        /* A label value by the watcher's validation: nothing to escape. */
        snprintf(extra, sizeof(extra), "zone=\"%s\"", s->u[i].zone.name);
        up_sample(b, "apilb_upstream_zone_info", s->u[i].up, extra, 1);
    }
}

/* --prefer: each upstream's measured round trip and tier (docs/zones.md). */
static void prefer_metrics(const struct snapshot *s, struct strbuf *b)
{
    head(b, "apilb_upstream_rtt_seconds", "gauge",
         "Measured round trip to each upstream (the smallest of its last 16 TCP handshakes, data "
         "path and health checks); absent before the fourth.");
    for (size_t i = 0; i < s->n; i++) {
        uint32_t rtt = upstream_rtt_us(s->u[i].up);

        if (!s->u[i].in_table || rtt == 0)
            continue;
        strbuf_puts(b, "apilb_upstream_rtt_seconds{upstream=\"");
        strbuf_label_escape(b, s->u[i].up->name);
        strbuf_printf(b, "\"} %.6f\n", rtt / 1e6);
    }
    head(b, "apilb_upstream_tier", "gauge",
         "--prefer tier of each upstream: 0 is tried first, then 1, ...");
    for (size_t i = 0; i < s->n; i++)
        if (s->u[i].in_table)
            up_sample(b, "apilb_upstream_tier", s->u[i].up, "", SNAPSHOT_LOAD(s->u[i].up->tier));
}

/* --slow-start (upstream.c) per upstream; the --rebalance sheds are a reason
 * of apilb_upstream_closed_connections_total. */
static void balance_metrics(const struct snapshot *s, uint64_t now_ms, struct strbuf *b)
{
    unsigned dur = s->sh->cfg->slow_start_ms;

    head(b, "apilb_upstream_slow_start_weight", "gauge",
         "Share of its turn an upstream in slow start takes (--slow-start): rising from 0.05 "
         "to 1 after it turns healthy again or is added; 1 when not in slow start.");
    for (size_t i = 0; i < s->n; i++) {
        strbuf_puts(b, "apilb_upstream_slow_start_weight{upstream=\"");
        strbuf_label_escape(b, s->u[i].up->name);
        strbuf_printf(b, "\"} %.3f\n",
                      upstream_slow_start_weight(s->u[i].up, dur, now_ms) /
                          (double)BALANCE_WEIGHT_FULL);
    }
    head(b, "apilb_upstream_slow_start_passed_total", "counter",
         "New connections for which slow start left an upstream out of the pick.");
    for (size_t i = 0; i < s->n; i++)
        up_sample(b, "apilb_upstream_slow_start_passed_total", s->u[i].up, "",
                  SNAPSHOT_LOAD(s->u[i].up->slow_start_passed));
}

/* name{upstream="..."} seconds, from a sum of microseconds. */
static void up_seconds(struct strbuf *b, const char *name, const struct upstream *up,
                       uint64_t sum_us)
{
    strbuf_printf(b, "%s{upstream=\"", name);
    strbuf_label_escape(b, up->name);
    strbuf_printf(b, "\"} %.6f\n", (double)sum_us / 1e6);
}

static void connect_histogram(const struct snapshot *s, struct strbuf *b)
{
    head(b, "apilb_upstream_connect_duration_seconds", "histogram",
         "Time to establish a connection to the upstream.");
    for (size_t i = 0; i < s->n; i++) {
        const struct upstream *up = s->u[i].up;
        uint64_t cum = 0;

        for (int k = 0; k <= UPSTREAM_LATENCY_BUCKETS; k++) {
            char extra[32];

            cum += SNAPSHOT_LOAD(up->connect_latency[k]);
            if (k < UPSTREAM_LATENCY_BUCKETS)
                snprintf(extra, sizeof(extra), "le=\"%g\"", upstream_latency_bounds_s[k]);
            else
                snprintf(extra, sizeof(extra), "le=\"+Inf\"");
            up_sample(b, "apilb_upstream_connect_duration_seconds_bucket", up, extra, cum);
        }
        up_seconds(b, "apilb_upstream_connect_duration_seconds_sum", up,
                   SNAPSHOT_LOAD(up->connect_latency_sum_us));
        up_sample(b, "apilb_upstream_connect_duration_seconds_count", up, "", cum);
    }
}

static void check_seconds(const struct snapshot *s, struct strbuf *b)
{
    head(b, "apilb_upstream_health_check_seconds_total", "counter",
         "Time spent in active health checks (divide by the checks for the mean).");
    for (size_t i = 0; i < s->n; i++)
        up_seconds(b, "apilb_upstream_health_check_seconds_total", s->u[i].up,
                   SNAPSHOT_LOAD(s->u[i].up->health_latency_sum_us));
}

static void answer_seconds(const struct snapshot *s, struct strbuf *b)
{
    head(b, "apilb_upstream_answer_seconds", "gauge",
         "How long the upstream took to answer the last time: a passed TLS health check, or a "
         "proxied client's first bytes; 0 before the first (a paced dial waits at most 9 s less "
         "twice the slowest).");
    for (size_t i = 0; i < s->n; i++)
        up_seconds(b, "apilb_upstream_answer_seconds", s->u[i].up,
                   (uint64_t)SNAPSHOT_LOAD(s->u[i].up->answer_ms) * 1000u);
}

/* The per-upstream families, in the order /metrics lists them. */
static const struct up_family up_families[] = {
    {.name = "apilb_upstream_health",
     .type = "gauge",
     .help = "Health of each upstream: 1 for its current state, 0 for the others.",
     .label = "state",
     .value = health_value,
     .n_values = UPSTREAM_HEALTH_COUNT,
     .get = get_health},
    {.name = "apilb_upstream_usable",
     .type = "gauge",
     .help = "1 when new connections may go to the upstream (healthy or unknown, not held down "
             "after a failed dial, not draining).",
     .get = get_usable},
    {.name = "apilb_upstream_draining",
     .type = "gauge",
     .help = "1 while a removed upstream drains.",
     .get = get_draining},
    {.render = prefer_metrics},
    {.render = zone_info},
    {.name = "apilb_upstream_active_connections",
     .type = "gauge",
     .help = "Proxied connections open now.",
     .get = get_active},
    {.name = "apilb_upstream_connections_total",
     .type = "counter",
     .help = "Connections established.",
     .field = {UP_COUNTER(conns_total)}},
    {.name = "apilb_upstream_connect_failures_total",
     .type = "counter",
     .help = "Failed connects of the data path, by reason.",
     .label = "reason",
     .value = fail_value,
     .n_values = UPSTREAM_FAIL_COUNT,
     .field = {UP_COUNTER(connect_fail[UPSTREAM_FAIL_REFUSED]),
               UP_COUNTER(connect_fail[UPSTREAM_FAIL_TIMEOUT]),
               UP_COUNTER(connect_fail[UPSTREAM_FAIL_UNREACHABLE]),
               UP_COUNTER(connect_fail[UPSTREAM_FAIL_OTHER]),
               UP_COUNTER(connect_fail[UPSTREAM_FAIL_LOCAL])}},
    {.render = connect_histogram},
    {.name = "apilb_upstream_sent_bytes_total",
     .type = "counter",
     .help = "Bytes relayed from clients to the upstream.",
     .field = {UP_COUNTER(bytes_to)}},
    {.name = "apilb_upstream_received_bytes_total",
     .type = "counter",
     .help = "Bytes relayed from the upstream to clients.",
     .field = {UP_COUNTER(bytes_from)}},
    /* health_checks[]: [0] failed, [1] passed, [2] local; listed success first. */
    {.name = "apilb_upstream_health_checks_total",
     .type = "counter",
     .help = "Active health checks, by result (local_error: not run to a verdict, this host ran "
             "short).",
     .label = "result",
     .value = check_value,
     .n_values = 3,
     .field = {UP_COUNTER(health_checks[1]), UP_COUNTER(health_checks[0]),
               UP_COUNTER(health_checks[2])}},
    {.render = check_seconds},
    {.render = answer_seconds},
    {.name = "apilb_upstream_closed_connections_total",
     .type = "counter",
     .help = "Open connections apilb closed, by reason (upstream turned unhealthy, drained after "
             "removal, sent bytes unacknowledged for --upstream-user-timeout, shed by "
             "--rebalance).",
     .label = "reason",
     .value = closed_value,
     .n_values = 4,
     .field = {UP_COUNTER(closed_by_health), UP_COUNTER(closed_by_drain),
               UP_COUNTER(closed_unacked), UP_COUNTER(closed_by_rebalance)}},
    {.name = "apilb_upstream_failed_connections_total",
     .type = "counter",
     .help = "Connections that ended because the upstream reset or failed them, by phase: before "
             "its first byte (not replayed: only a TLS ClientHello is) or after.",
     .label = "phase",
     .value = phase_value,
     .n_values = 2,
     .field = {UP_COUNTER(failed_conns[0]), UP_COUNTER(failed_conns[1])}},
};

static void upstream_metrics(const struct snapshot *s, uint64_t now_ms, struct strbuf *b)
{
    strbuf_printf(b, "apilb_upstreams{state=\"known\"} %zu\n", s->n);
    strbuf_printf(b, "apilb_upstreams{state=\"usable\"} %zu\n", snapshot_usable(s, now_ms));
    for (size_t i = 0; i < sizeof(up_families) / sizeof(up_families[0]); i++)
        up_family(&up_families[i], s, now_ms, b);
    balance_metrics(s, now_ms, b);
}

static void state_file_metrics(const struct snapshot_state_file *f, struct strbuf *b)
{
    head(b, "apilb_state_file_write_ok", "gauge",
         "1 when the last state file write succeeded (or none was needed yet), 0 when it failed.");
    strbuf_printf(b, "apilb_state_file_write_ok %d\n", f->last_ok);
    head(b, "apilb_state_file_writes_total", "counter", "State file writes, by result.");
    strbuf_printf(b, "apilb_state_file_writes_total{result=\"success\"} %" PRIu64 "\n", f->writes);
    strbuf_printf(b, "apilb_state_file_writes_total{result=\"failure\"} %" PRIu64 "\n",
                  f->failures);
    head(b, "apilb_state_file_last_write_timestamp_seconds", "gauge",
         "Time of the last successful state file write since the epoch; 0: none yet.");
    strbuf_printf(b, "apilb_state_file_last_write_timestamp_seconds %.3f\n",
                  (double)f->last_write_unix_ms / 1000.0);
}

static void watcher_metrics(const struct snapshot *s, struct strbuf *b)
{
    const struct watcher_stats *w = &s->watcher.stats;

    head(b, "apilb_watcher_state", "gauge",
         "State of the discovery watcher: 1 for the current one.");
    for (int k = 0; k < WATCHER_STATE_COUNT; k++)
        strbuf_printf(b, "apilb_watcher_state{state=\"%s\"} %d\n", watcher_state_name(k),
                      w->state == k);
    head(b, "apilb_watcher_last_sync_timestamp_seconds", "gauge",
         "Last successful list or watch event, since the epoch.");
    strbuf_printf(b, "apilb_watcher_last_sync_timestamp_seconds %.3f\n",
                  (double)w->last_sync_unix_ms / 1000.0);
    head(b, "apilb_watcher_requests_total", "counter", "LIST and WATCH requests started.");
    strbuf_printf(b, "apilb_watcher_requests_total{verb=\"list\"} %" PRIu64 "\n", w->lists);
    strbuf_printf(b, "apilb_watcher_requests_total{verb=\"watch\"} %" PRIu64 "\n", w->watches);
    head(b, "apilb_watcher_events_total", "counter", "Watch events, by type.");
    strbuf_printf(b, "apilb_watcher_events_total{type=\"change\"} %" PRIu64 "\n", w->events);
    strbuf_printf(b, "apilb_watcher_events_total{type=\"bookmark\"} %" PRIu64 "\n", w->bookmarks);
    head(b, "apilb_watcher_relists_total", "counter", "Relists after 410 Gone / Expired.");
    strbuf_printf(b, "apilb_watcher_relists_total %" PRIu64 "\n", w->relists_410);
    head(b, "apilb_watcher_errors_total", "counter",
         "Watcher errors by kind: connect (connection, TLS), http (error statuses and ERROR "
         "events), parse (unusable bytes or objects), stall (silent watches).");
    for (int k = 0; k < WATCHER_ERR_KINDS; k++)
        strbuf_printf(b, "apilb_watcher_errors_total{kind=\"%s\"} %" PRIu64 "\n",
                      watcher_error_name((enum watcher_error)k), w->errors_by_kind[k]);
    head(b, "apilb_watcher_resource_version_age_seconds", "gauge",
         "Time since the watched resourceVersion last moved (events or bookmarks).");
    strbuf_printf(b, "apilb_watcher_resource_version_age_seconds %.3f\n",
                  w->rv_changed_unix_ms == 0
                      ? 0.0
                      : (double)(clock_wall_ms() - w->rv_changed_unix_ms) / 1000.0);
    head(b, "apilb_watcher_publishes_total", "counter", "Upstream sets handed to the proxy.");
    strbuf_printf(b, "apilb_watcher_publishes_total %" PRIu64 "\n", w->publishes);
    head(b, "apilb_watcher_credential_reloads_total", "counter",
         "Token, certificate or CA files re-read after a change or a 401.");
    strbuf_printf(b, "apilb_watcher_credential_reloads_total %" PRIu64 "\n", w->credential_reloads);
}

void metrics_render(const struct snapshot *s, uint64_t now_ms, struct strbuf *out)
{
    process_metrics(s, out);
    upstream_metrics(s, now_ms, out);
    if (s->watcher.enabled)
        watcher_metrics(s, out);
    if (s->state_file.enabled)
        state_file_metrics(&s->state_file, out);
}
