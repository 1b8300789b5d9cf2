/* SPDX-License-Identifier: Apache-2.0 */
/* --prefer on the control thread: every tick, the tiers (tier.h) of the
 * current table's apiservers from their measured round trips or zones,
 * stored in each struct upstream for the workers' upstream_pick(); every
 * change of tier is logged with its reason, and an apiserver that moves
 * to a nearer tier starts its ramp (one that comes back starts it in
 * upstream_ramp_returned, for every --prefer).
 * Control (loop) thread, except prefer_zone_of (any thread). */
#ifndef PROXY_PREFER_H
#define PROXY_PREFER_H

#include <stdint.h>

#include "config.h"
#include "tier.h"
#include "upstream.h"

struct prefer {
    const struct config *cfg; /* borrowed; outlives the prefer */
    struct tier_params params;
    char node_zone[ZONE_NAME_MAX + 1]; /* from the node object (--node-name), "" for none */
};

/* Sets up pf for cfg (logs a warning for --prefer zone without --zone).
 * Loop thread. */
void prefer_init(struct prefer *pf, const struct config *cfg);

/* The label that gives a node's zone. */
#define NODE_ZONE_LABEL "topology.kubernetes.io/zone"

/* A discovery_sink.node_zone (arg a struct prefer): the node object's zone
 * ("" for none), for the ticks that follow. Loop thread. */
void prefer_node_zone_cb(void *arg, const char *zone);

/* Re-derives the tiers of t's upstreams at now_ms (clock_now_ms()) and
 * logs the changes. t may be NULL (nothing to do). Loop thread. */
void prefer_update(struct prefer *pf, const struct upstream_table *t, uint64_t now_ms);

/* The zone of table entry e: the one the cluster publishes, else the
 * --upstream-zone of its address (exact, then without the port), else
 * empty. *from is "cluster", "flag" or "" (may be NULL). Any thread
 * holding e's table. */
void prefer_zone_of(const struct config *cfg, const struct upstream_entry *e, struct zone_info *out,
                    const char **from);

#endif
