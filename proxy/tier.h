/* SPDX-License-Identifier: Apache-2.0 */
/* Preference tiers: which apiservers new connections try first (--prefer).
 * Tier 0 is preferred; upstream_pick() tries the lowest tier that has a
 * usable, not overloaded apiserver and spills to the next one otherwise.
 *
 * nearest: tiers are relative round trips. The smallest round trip still to
 * be placed starts a tier; every apiserver within join = base * factor +
 * offset of it joins that tier, and one that was in the tier stays while it
 * is within stay = base * stay_factor + stay_offset (hysteresis: a jittery
 * link between the two bounds keeps its tier). An apiserver not measured
 * yet is in tier 0, so that it gets measured.
 * zone: tier 0 is the apiservers in this node's zone (or hinted for it),
 * tier 1 the rest; without a node zone, all are tier 0.
 * none: all are tier 0 (the balancer alone decides).
 * Pure: no loop, no clock; any thread. */
#ifndef PROXY_TIER_H
#define PROXY_TIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zone.h"

#define TIER_MAX 7 /* tiers 0..TIER_MAX; beyond, the last tier */
#define TIER_RTT_SAMPLES 16
/* An estimate needs this many samples: one slow handshake (the loop busy, the
 * machine loaded) must not put an apiserver in another tier. */
#define TIER_MIN_SAMPLES 4

enum tier_mode {
    TIER_MODE_NEAREST = 0,
    TIER_MODE_ZONE,
    TIER_MODE_NONE,
};

/* Relative tier bounds of nearest (defaults: tier_params_default()). */
struct tier_params {
    enum tier_mode mode;
    double factor, stay_factor;
    uint32_t offset_us, stay_offset_us;
};

/* One apiserver as tier_assign() sees it. */
struct tier_member {
    uint32_t rtt_us; /* estimate; 0 = not measured yet */
    bool same_zone;  /* zone mode: in (or hinted for) this node's zone */
    bool has_prev;   /* prev_tier is meaningful */
    unsigned prev_tier;
};

/* Why a member got its tier, for the log line of a change. */
enum tier_why {
    TIER_WHY_UNMEASURED = 0, /* nearest, no round trip yet: tier 0 */
    TIER_WHY_BASE,           /* nearest: the smallest round trip of its tier */
    TIER_WHY_JOINED,         /* nearest: within join of its tier's base */
    TIER_WHY_STAYED,         /* nearest: beyond join, within stay (hysteresis) */
    TIER_WHY_SAME_ZONE,      /* zone */
    TIER_WHY_OTHER_ZONE,     /* zone */
    TIER_WHY_NO_NODE_ZONE,   /* zone mode without --zone: tier 0 */
    TIER_WHY_NONE,           /* --prefer none */
};

/* The defaults for mode: factor 2, offset 0.5 ms; stay_factor 3, stay
 * offset 1 ms (0.3 and 0.4 ms share a tier, 3 ms does not). */
struct tier_params tier_params_default(enum tier_mode mode);

/* Assigns tier[i] and why[i] (why may be NULL) for m[0..n). n <= 1024. */
void tier_assign(const struct tier_params *p, const struct tier_member *m, size_t n, unsigned *tier,
                 enum tier_why *why);

/* The round-trip estimate of samples s[0..n) (0 = empty slot): their
 * minimum (jitter and queueing only add delay, so the window's minimum is
 * the path's own round trip, and a changed path shows after n samples), or
 * 0 when none. */
uint32_t tier_rtt_estimate(const uint32_t *s, size_t n);

/* Whether an apiserver with zone info z is in node_zone: its zone is it, or
 * its hints name it. False when node_zone is empty. */
bool tier_zone_matches(const struct zone_info *z, const char *node_zone);

/* "unmeasured", "base", ... for logs. */
const char *tier_why_name(enum tier_why w);

/* "nearest", "zone", "none". */
const char *tier_mode_name(enum tier_mode m);

#endif
