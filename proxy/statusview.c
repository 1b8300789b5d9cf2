/* SPDX-License-Identifier: Apache-2.0 */
/* The /status table; see statusview.h. */
#include "statusview.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define REASON_COLUMN 36

/* Copies s into out (size len) with every byte outside printable ASCII
 * replaced by '?', cut to fit with "..." when longer. */
static void clean(const char *s, char *out, size_t len)
{
    size_t n = 0, max = len - 1;

    for (; s[n] != '\0' && n < max; n++)
        out[n] = s[n] >= 0x20 && s[n] < 0x7f ? s[n] : '?';
    out[n] = '\0';
    if (s[n] != '\0' && max >= 3)
        memcpy(out + max - 3, "...", 4);
}

/* "3m12s"-style age of ms milliseconds. */
static void age(uint64_t ms, char *buf, size_t len)
{
    uint64_t s = ms / 1000;

    if (s < 60)
        snprintf(buf, len, "%" PRIu64 "s", s);
    else if (s < 3600)
        snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s / 60 % 60);
    else
        snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s / 3600 % 24);
}

static void row(const struct snapshot_upstream *su, uint64_t now_ms, uint64_t now_unix_ms,
                struct strbuf *b)
{
    const struct upstream *up = su->up;
    char src[64], state[48], reason[REASON_COLUMN + 1], since[32] = "-", conn[32] = "-";
    char zone[17];
    uint64_t drain = SNAPSHOT_LOAD(up->draining_since_ms);
    double mean_us;

    upstream_sources_format(su->sources, src, sizeof(src));
    if (!su->in_table)
        snprintf(src, sizeof(src), "-");
    if (!su->in_table) {
        char a[32];

        age(drain != 0 && now_ms > drain ? now_ms - drain : 0, a, sizeof(a));
        snprintf(state, sizeof(state), "draining %s", a);
    } else {
        snprintf(state, sizeof(state), "%s", su->fallback ? "fallback" : "in table");
    }
    clean(su->health_reason[0] != '\0' ? su->health_reason : "-", reason, sizeof(reason));
    clean(su->zone.name[0] != '\0' ? su->zone.name : "-", zone, sizeof(zone));
    if (su->health_since_unix_ms != 0 && now_unix_ms >= su->health_since_unix_ms)
        age(now_unix_ms - su->health_since_unix_ms, since, sizeof(since));
    if (upstream_connect_mean_us(up, &mean_us))
        snprintf(conn, sizeof(conn), "%.2fms", mean_us / 1000.0);
    strbuf_printf(b, "%-24s %-20s %-14s %-10s %-*s %-7s %6u %8s  %s\n", up->name, src, state,
                  upstream_health_name((enum upstream_health)SNAPSHOT_LOAD(up->health)),
                  REASON_COLUMN, reason, since, SNAPSHOT_LOAD(up->active), conn, zone);
}

static void watcher_line(const struct snapshot_watcher *w, uint64_t now_unix_ms, struct strbuf *b)
{
    const struct watcher_stats *ws = &w->stats;
    char rv[40], last[40] = "never";

    if (!w->enabled) {
        strbuf_puts(b, "\nWATCHER  off (static upstreams)\n");
        return;
    }
    clean(ws->resource_version[0] != '\0' ? ws->resource_version : "-", rv, sizeof(rv));
    if (ws->last_sync_unix_ms != 0) {
        age(now_unix_ms > ws->last_sync_unix_ms ? now_unix_ms - ws->last_sync_unix_ms : 0, last,
            sizeof(last) - 4);
        strcat(last, " ago");
    }
    strbuf_printf(b,
                  "\nWATCHER  %s  source %s  last sync %s  resourceVersion %s  errors %" PRIu64
                  "  publishes %" PRIu64 "\n",
                  watcher_state_name(ws->state), ws->source != NULL ? ws->source : "-", last, rv,
                  ws->errors, ws->publishes);
}

void statusview_render(const struct snapshot *s, uint64_t now_ms, uint64_t now_unix_ms,
                       struct strbuf *b)
{
    strbuf_printf(b, "%-24s %-20s %-14s %-10s %-*s %-7s %6s %8s  %s\n", "UPSTREAM", "SOURCES",
                  "STATE", "HEALTH", REASON_COLUMN, "REASON", "SINCE", "ACTIVE", "CONNECT", "ZONE");
    for (size_t i = 0; i < s->n; i++)
        row(&s->u[i], now_ms, now_unix_ms, b);
    if (s->n == 0)
        strbuf_puts(b, "(no upstream known yet)\n");
    strbuf_printf(b, "\nTABLE    generation %" PRIu64 "  %zu usable of %zu known\n", s->generation,
                  snapshot_usable(s, now_ms), s->n);
    watcher_line(&s->watcher, now_unix_ms, b);
}
