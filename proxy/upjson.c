/* SPDX-License-Identifier: Apache-2.0 */
#include "upjson.h"

#include <inttypes.h>

/* ,"watcher":{...} when discovery runs. */
static void watcher_json(const struct snapshot_watcher *w, struct strbuf *b)
{
    const struct watcher_stats *ws = &w->stats;

    if (!w->enabled)
        return;
    strbuf_printf(b,
                  ",\"watcher\":{\"state\":\"%s\",\"source\":\"%s\",\"last_sync\":%.3f,"
                  "\"resource_version\":\"",
                  watcher_state_name(ws->state), ws->source != NULL ? ws->source : "",
                  (double)ws->last_sync_unix_ms / 1000.0);
    strbuf_json_escape(b, ws->resource_version);
    strbuf_printf(b,
                  "\",\"lists\":%" PRIu64 ",\"watches\":%" PRIu64 ",\"events\":%" PRIu64
                  ",\"errors\":%" PRIu64 ",\"publishes\":%" PRIu64 "}",
                  ws->lists, ws->watches, ws->events, ws->errors, ws->publishes);
}

/* ,"zone":"a"|null,"hints":{"for_zones":["a",...]}|null: what discovery
 * publishes (EndpointSlice endpoints[].zone and hints.forZones). */
static void render_zone(const struct zone_info *z, struct strbuf *b)
{
    if (z->name[0] != '\0') {
        strbuf_puts(b, ",\"zone\":\"");
        strbuf_json_escape(b, z->name);
        strbuf_puts(b, "\"");
    } else {
        strbuf_puts(b, ",\"zone\":null");
    }
    if (z->n_for_zones == 0) {
        strbuf_puts(b, ",\"hints\":null");
        return;
    }
    strbuf_puts(b, ",\"hints\":{\"for_zones\":[");
    for (unsigned i = 0; i < z->n_for_zones; i++) {
        strbuf_puts(b, i ? ",\"" : "\"");
        strbuf_json_escape(b, z->for_zones[i]);
        strbuf_puts(b, "\"");
    }
    strbuf_puts(b, "]}");
}

void upjson_render(const struct snapshot *s, uint64_t now_ms, struct strbuf *b)
{
    strbuf_printf(b, "{\"generation\":%" PRIu64 ",\"usable\":%zu,\"upstreams\":[", s->generation,
                  snapshot_usable(s, now_ms));
    for (size_t i = 0; i < s->n; i++) {
        const struct snapshot_upstream *su = &s->u[i];
        const struct upstream *up = su->up;
        uint64_t since = SNAPSHOT_LOAD(up->draining_since_ms);
        bool first = true;
        double mean_us;

        strbuf_printf(b, "%s{\"address\":\"", i ? "," : "");
        strbuf_json_escape(b, up->name);
        strbuf_puts(b, "\",\"sources\":[");
        for (unsigned k = 0; k < UPSTREAM_SRC_BITS; k++) {
            if (su->sources & (1u << k)) {
                strbuf_printf(b, "%s\"%s\"", first ? "" : ",", upstream_source_name(1u << k));
                first = false;
            }
        }
        strbuf_printf(b,
                      "],\"fallback\":%s,\"health\":\"%s\",\"usable\":%s,\"active\":%u,"
                      "\"draining\":%s,\"draining_seconds\":%.3f,\"connections_total\":%" PRIu64
                      ",\"connect_failures\":{",
                      su->fallback ? "true" : "false",
                      upstream_health_name((enum upstream_health)SNAPSHOT_LOAD(up->health)),
                      su->in_table && upstream_usable(up, now_ms) ? "true" : "false",
                      SNAPSHOT_LOAD(up->active), su->in_table ? "false" : "true",
                      !su->in_table && since != 0 && now_ms > since
                          ? (double)(now_ms - since) / 1000.0
                          : 0.0,
                      SNAPSHOT_LOAD(up->conns_total));
        for (int k = 0; k < UPSTREAM_FAIL_COUNT; k++)
            strbuf_printf(b, "%s\"%s\":%" PRIu64, k ? "," : "",
                          upstream_fail_name((enum upstream_fail)k),
                          SNAPSHOT_LOAD(up->connect_fail[k]));
        strbuf_printf(b,
                      "},\"bytes_to_upstream\":%" PRIu64 ",\"bytes_from_upstream\":%" PRIu64
                      ",\"health_checks\":{\"success\":%" PRIu64 ",\"failure\":%" PRIu64 "}",
                      SNAPSHOT_LOAD(up->bytes_to), SNAPSHOT_LOAD(up->bytes_from),
                      SNAPSHOT_LOAD(up->health_checks[1]), SNAPSHOT_LOAD(up->health_checks[0]));
        strbuf_puts(b, ",\"health_reason\":\"");
        strbuf_json_escape(b, su->health_reason);
        strbuf_printf(b, "\",\"health_since\":%.3f,\"connect_seconds_avg\":",
                      (double)su->health_since_unix_ms / 1000.0);
        if (upstream_connect_mean_us(up, &mean_us))
            strbuf_printf(b, "%.6f", mean_us / 1e6);
        else
            strbuf_puts(b, "null");
        render_zone(&su->zone, b);
        strbuf_printf(b, ",\"zone_source\":\"%s\",\"tier\":%u,\"rtt_seconds\":", su->zone_from,
                      SNAPSHOT_LOAD(up->tier));
        if (upstream_rtt_us(up) != 0)
            strbuf_printf(b, "%.6f", upstream_rtt_us(up) / 1e6);
        else
            strbuf_puts(b, "null");
        strbuf_puts(b, "}");
    }
    strbuf_puts(b, "]");
    watcher_json(&s->watcher, b);
    strbuf_puts(b, "}\n");
}

void upjson_connections(const struct session_info *c, size_t n, size_t total, size_t offset,
                        size_t limit, bool partial, struct strbuf *b)
{
    strbuf_printf(b,
                  "{\"total\":%zu,\"offset\":%zu,\"limit\":%zu,\"partial\":%s,"
                  "\"connections\":[",
                  total, offset, limit, partial ? "true" : "false");
    for (size_t i = 0; i < n; i++) {
        char client[ADDR_STRLEN] = "";

        if (c[i].client.len != 0)
            addr_format(&c[i].client, client, sizeof(client));
        strbuf_printf(b, "%s{\"sid\":%" PRIu64 ",\"client\":\"%s\",\"upstream\":\"", i ? "," : "",
                      c[i].sid, client);
        strbuf_json_escape(b, c[i].upstream);
        strbuf_printf(b,
                      "\",\"state\":\"%s\",\"age_seconds\":%.3f,\"bytes_in\":%" PRIu64
                      ",\"bytes_out\":%" PRIu64 "}",
                      c[i].state, (double)c[i].age_ms / 1000.0, c[i].bytes_in, c[i].bytes_out);
    }
    strbuf_puts(b, "]}\n");
}

int upjson_readyz(const struct snapshot *s, uint64_t now_ms, struct strbuf *b)
{
    size_t usable = snapshot_usable(s, now_ms), in_table = 0;

    for (size_t i = 0; i < s->n; i++)
        in_table += s->u[i].in_table;
    if (usable > 0) {
        strbuf_printf(b, "ok: %zu of %zu upstreams usable\n", usable, in_table);
        return 200;
    }
    if (in_table == 0)
        strbuf_puts(b, "not ready: no upstream known\n");
    else
        strbuf_printf(b,
                      "not ready: none of %zu upstreams is usable (unhealthy, failing to "
                      "connect or draining)\n",
                      in_table);
    return 503;
}
