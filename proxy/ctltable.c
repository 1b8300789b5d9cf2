/* SPDX-License-Identifier: Apache-2.0 */
/* The upstream table on the control loop; see ctltable.h. */
#define LOG_MODULE "control"
#include "ctltable.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "log.h"
#include "reglog.h"
#include "sockopt.h"

int ctltable_init(struct ctltable *t)
{
    t->reg = registry_new();
    return t->reg != NULL ? 0 : -ENOMEM;
}

void ctltable_fini(struct ctltable *t)
{
    registry_free(t->reg);
    t->reg = NULL;
}

struct upstream_table *ctltable_current(const struct ctltable *t)
{
    return registry_table(t->reg);
}

void ctltable_prune(struct ctltable *t)
{
    size_t n_pruned, n_checked;

    uv_mutex_lock(t->lock);
    n_pruned = registry_prune(t->reg, t->pruned, REGISTRY_MAX);
    n_checked = registry_checked(t->reg, t->checked, REGISTRY_MAX);
    uv_mutex_unlock(t->lock);
    for (size_t i = 0; i < n_pruned; i++) {
        log_info("upstream drained", "upstream=%s", t->pruned[i]->name);
        upstream_unref(t->pruned[i]);
    }
    if (t->health->h != NULL)
        health_sync(t->health->h, t->checked, n_checked);
}

/* Hands a new table to every started worker. */
static void publish(struct ctltable *t, struct upstream_table *tab, const char *reason)
{
    unsigned started = atomic_load(t->n_started);

    for (unsigned i = 0; i < started; i++) {
        upstream_table_ref(tab);
        worker_publish(&(*t->workers)[i], tab);
    }
    /* Logged once handed over: a connection made after this line is
     * accepted after the workers' kick (evloop runs uv first). */
    log_info("upstream table published", "generation=%" PRIu64 " upstreams=%zu reason=%s",
             tab->generation, tab->n, reason);
}

/* The open connections to tab's upstreams. */
static unsigned table_active(const struct upstream_table *tab)
{
    unsigned n = 0;

    for (size_t i = 0; i < tab->n; i++)
        n += atomic_load(&tab->e[i].up->active);
    return n;
}

/* Builds a table from the registry's sources and, when it differs from the
 * current one, publishes it. An empty result is never applied. Under the
 * lock. */
static void rebuild_locked(struct ctltable *t, const char *reason)
{
    struct registry_changes ch = {.c = t->changes};
    struct upstream_table *tab;
    enum registry_result res;

    /* Marks first, so a worker that sees the new table also sees them. */
    res = registry_rebuild(t->reg, clock_now_ms(), &ch);
    reglog_refusals(t->reg, &ch);
    if (res == REGISTRY_NONE_YET)
        log_info("no upstream known yet", "reason=%s discovery=%s", reason,
                 t->cfg->discovery != WATCHER_DISCOVERY_OFF ? "waiting" : "off");
    else if (res == REGISTRY_EMPTY_REFUSED)
        log_error("no upstreams left: keeping the current table", "reason=%s", reason);
    if (res != REGISTRY_PUBLISHED)
        return;
    tab = registry_table(t->reg);
    /* The ramp (and --rebalance after it) for what came while others
     * carried the load: not in the first table (every upstream is new),
     * nor while no connection is open (discovery's first answer). */
    for (size_t i = 0; t->swaps > 0 && i < ch.n; i++) {
        if (ch.c[i].kind == REGISTRY_REMOVED)
            upstream_ramp_stopped(ch.c[i].up, clock_now_ms());
        else
            ctltable_returned(t, ch.c[i].up, table_active(tab) != 0,
                              ch.c[i].kind == REGISTRY_READDED ? "readded" : "added");
    }
    t->swaps++;
    for (size_t i = 0; i < ch.n; i++) /* getifaddrs(3) is a netlink dump: not per connection */
        if (ch.c[i].is_new)
            ch.c[i].up->is_local = sockopt_addr_is_local(&ch.c[i].up->addr);
    reglog_changes(&ch, reason);
    publish(t, tab, reason);
    statesave_note(t->state, tab);
}

void ctltable_returned(struct ctltable *t, struct upstream *up, bool may_ramp, const char *reason)
{
    const struct config *cfg = t->cfg;

    if (!upstream_ramp_returned(registry_table(t->reg), up, may_ramp, clock_now_ms())) {
        if (may_ramp)
            log_info("upstream back while no other carried the load: no ramp",
                     "upstream=%s reason=%s", up->name, reason);
        return;
    }
    /* One ramp, in the pick as --prefer has it (upstream_pick). */
    if (cfg->prefer != TIER_MODE_NONE && cfg->prefer_ramp_ms != 0)
        log_info("upstream usable again: ramping its share of new connections",
                 "upstream=%s reason=%s tier=%u ramp_ms=%u", up->name, reason,
                 atomic_load(&up->tier), cfg->prefer_ramp_ms);
    else if (cfg->prefer == TIER_MODE_NONE && cfg->slow_start_ms != 0)
        log_info("upstream in slow start", "upstream=%s reason=%s slow_start_ms=%u", up->name,
                 reason, cfg->slow_start_ms);
}

/* Replaces source s under the lock, rebuilding for reason unless NULL. */
static void set_locked(struct ctltable *t, enum registry_source s, const struct addr *a,
                       const struct zone_info *zones, size_t n, const char *reason)
{
    int rc;

    uv_mutex_lock(t->lock);
    rc = registry_set(t->reg, s, a, zones, n);
    if (rc == 0 && reason != NULL)
        rebuild_locked(t, reason);
    uv_mutex_unlock(t->lock);
    if (rc != 0) /* no source gives more than UPSTREAM_MAX */
        log_error("address set refused", "reason=%s n=%zu max=%d err=\"%s\"",
                  reason != NULL ? reason : "start", n, UPSTREAM_MAX, strerror(-rc));
}

void ctltable_set(struct ctltable *t, enum registry_source s, const struct addr *a,
                  const struct zone_info *zones, size_t n, const char *reason)
{
    set_locked(t, s, a, zones, n, reason);
    statesave_flush(t->state);
    ctltable_prune(t);
}

void ctltable_rebuild(struct ctltable *t, const char *reason)
{
    uv_mutex_lock(t->lock);
    rebuild_locked(t, reason);
    uv_mutex_unlock(t->lock);
    statesave_flush(t->state);
    ctltable_prune(t);
}

int ctltable_load(struct ctltable *t, struct cfgsource *f, char *err, size_t err_len)
{
    const struct config *cfg = t->cfg;
    struct addr *a = malloc(sizeof(*a) * UPSTREAM_MAX);
    size_t n = 0;
    int rc;

    if (a == NULL) {
        snprintf(err, err_len, "out of memory");
        return -ENOMEM;
    }
    rc = cfgsource_seeds(cfg->seeds, cfg->n_seeds, cfg->seeds_from, false, a, &n, err, err_len);
    if (rc == 0)
        set_locked(t, REGISTRY_SEEDS, a, NULL, n, NULL);
    free(a);
    if (rc == 0 && f->path != NULL)
        rc = cfgsource_load(f, err, err_len);
    if (rc == 0 && f->path != NULL) {
        const struct addr *fa = cfgsource_addrs(f, &n);

        set_locked(t, REGISTRY_FILE, fa, NULL, n, NULL);
    }
    return rc;
}

void ctltable_load_state(struct ctltable *t)
{
    struct addr *a;

    if (t->cfg->state_file == NULL)
        return;
    a = malloc(sizeof(*a) * UPSTREAM_MAX);
    if (a == NULL) {
        log_warn("state file ignored", "file=\"%s\" err=\"out of memory\"",
                 log_quote(t->cfg->state_file));
        return;
    }
    set_locked(t, REGISTRY_STATE, a, NULL, statesave_load(t->state, a), NULL);
    free(a);
}

void ctltable_file_cb(void *arg, const struct addr *a, size_t n, const char *why)
{
    ctltable_set(arg, REGISTRY_FILE, a, NULL, n, why);
}

void ctltable_discovered_cb(void *arg, const struct addr *a, const struct zone_info *z, size_t n)
{
    ctltable_set(arg, REGISTRY_DISCOVERED, a, z, n, "discovery");
}

int ctltable_route_cb(void *arg, unsigned attempt, const struct addr *avoid, struct addr *out)
{
    struct ctltable *t = arg;
    int rc;

    uv_mutex_lock(t->lock);
    rc = upstream_route(registry_table(t->reg), attempt, avoid, clock_now_ms(), out);
    uv_mutex_unlock(t->lock);
    return rc;
}
