/* SPDX-License-Identifier: Apache-2.0 */
/* --prefer on the control thread; see prefer.h. */
#define LOG_MODULE "prefer"
#include "prefer.h"

#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

void prefer_init(struct prefer *pf, const struct config *cfg)
{
    pf->cfg = cfg;
    pf->params = tier_params_default(cfg->prefer);
    pf->node_zone[0] = '\0';
    if (cfg->prefer == TIER_MODE_ZONE && cfg->zone != NULL)
        log_info("node zone", "zone=%s from=flag", cfg->zone);
    else if (cfg->prefer == TIER_MODE_ZONE && cfg->node_name != NULL &&
             cfg->discovery != WATCHER_DISCOVERY_OFF)
        log_info("node zone: reading the node object's " NODE_ZONE_LABEL " label", "node=%s",
                 cfg->node_name);
    else if (cfg->prefer == TIER_MODE_ZONE)
        log_warn("--prefer zone without --zone: this node's zone is unknown, every apiserver is "
                 "in tier 0",
                 "prefer=zone");
}

void prefer_node_zone_cb(void *arg, const char *zone)
{
    struct prefer *pf = arg;

    snprintf(pf->node_zone, sizeof(pf->node_zone), "%s", zone);
}

/* Same IP, whatever the ports. */
static bool same_host(const struct addr *a, const struct addr *b)
{
    if (a->ss.ss_family != b->ss.ss_family)
        return false;
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)&b->ss)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr,
                  &((const struct sockaddr_in6 *)&b->ss)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

void prefer_zone_of(const struct config *cfg, const struct upstream_entry *e, struct zone_info *out,
                    const char **from)
{
    const struct config_upstream_zone *hit = NULL;

    *out = e->zone;
    if (from != NULL)
        *from = out->name[0] != '\0' || out->n_for_zones > 0 ? "cluster" : "";
    if (out->name[0] != '\0')
        return;
    for (size_t i = 0; i < cfg->n_upstream_zones && hit == NULL; i++)
        if (!cfg->upstream_zones[i].any_port &&
            addr_cmp(&cfg->upstream_zones[i].addr, &e->up->addr) == 0)
            hit = &cfg->upstream_zones[i];
    for (size_t i = 0; i < cfg->n_upstream_zones && hit == NULL; i++)
        if (cfg->upstream_zones[i].any_port &&
            same_host(&cfg->upstream_zones[i].addr, &e->up->addr))
            hit = &cfg->upstream_zones[i];
    if (hit == NULL)
        return;
    snprintf(out->name, sizeof(out->name), "%s", hit->zone);
    if (from != NULL)
        *from = "flag";
}

void prefer_update(struct prefer *pf, const struct upstream_table *t, uint64_t now_ms)
{
    struct tier_member m[UPSTREAM_MAX];
    unsigned tier[UPSTREAM_MAX];
    enum tier_why why[UPSTREAM_MAX];
    uint32_t base_us[TIER_MAX + 1] = {0};
    const char *node_zone = pf->cfg->zone != NULL ? pf->cfg->zone : pf->node_zone;

    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++) {
        struct upstream *up = t->e[i].up;
        struct zone_info z;

        prefer_zone_of(pf->cfg, &t->e[i], &z, NULL);
        m[i].rtt_us = upstream_rtt_us(up);
        m[i].same_zone = node_zone[0] == '\0' || tier_zone_matches(&z, node_zone);
        /* Tier 0 while unmeasured is no place to hold by hysteresis. */
        m[i].has_prev = up->tier_set && up->tier_measured;
        m[i].prev_tier = atomic_load(&up->tier);
    }
    tier_assign(&pf->params, m, t->n, tier, why);
    for (size_t i = 0; i < t->n; i++)
        if (m[i].rtt_us != 0 && (base_us[tier[i]] == 0 || m[i].rtt_us < base_us[tier[i]]))
            base_us[tier[i]] = m[i].rtt_us;
    for (size_t i = 0; i < t->n; i++) {
        struct upstream *up = t->e[i].up;
        unsigned old = atomic_load(&up->tier);
        const char *reason = pf->cfg->prefer == TIER_MODE_ZONE && node_zone[0] == '\0'
                                 ? tier_why_name(TIER_WHY_NO_NODE_ZONE)
                                 : tier_why_name(why[i]);

        if (!up->tier_set || old != tier[i]) {
            char from[16] = "none";

            if (up->tier_set)
                snprintf(from, sizeof(from), "%u", old);
            log_info("upstream tier changed",
                     "upstream=%s from=%s to=%u reason=%s rtt_ms=%.3f tier_base_ms=%.3f", up->name,
                     from, tier[i], reason, m[i].rtt_us / 1e3, base_us[tier[i]] / 1e3);
            atomic_store(&up->tier, tier[i]);
            /* Nearer than before: its share comes back gradually (the
             * tier it left carried its load). A return (healthy again,
             * added) ramps by upstream_ramp_returned, not here. */
            if (up->tier_set && tier[i] < old && pf->cfg->prefer_ramp_ms > 0)
                upstream_ramp_begin(up, now_ms);
        }
        up->tier_set = true;
        up->tier_measured = why[i] != TIER_WHY_UNMEASURED;
    }
}
