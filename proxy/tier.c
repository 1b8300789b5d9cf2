/* SPDX-License-Identifier: Apache-2.0 */
/* Preference tiers; see tier.h. */
#include "tier.h"

#include <string.h>

struct tier_params tier_params_default(enum tier_mode mode)
{
    struct tier_params p = {
        .mode = mode, .factor = 2, .stay_factor = 3, .offset_us = 500, .stay_offset_us = 1000};

    return p;
}

uint32_t tier_rtt_estimate(const uint32_t *s, size_t n)
{
    uint32_t best = 0;

    for (size_t i = 0; i < n; i++)
        if (s[i] != 0 && (best == 0 || s[i] < best))
            best = s[i];
    return best;
}

bool tier_zone_matches(const struct zone_info *z, const char *node_zone)
{
    if (node_zone == NULL || node_zone[0] == '\0')
        return false;
    if (strcmp(z->name, node_zone) == 0)
        return true;
    for (unsigned i = 0; i < z->n_for_zones && i < ZONE_HINTS_MAX; i++)
        if (strcmp(z->for_zones[i], node_zone) == 0)
            return true;
    return false;
}

static void set(unsigned *tier, enum tier_why *why, size_t i, unsigned t, enum tier_why w)
{
    tier[i] = t;
    if (why != NULL)
        why[i] = w;
}

/* nearest: tiers formed from the smallest unplaced round trip up. */
static void assign_nearest(const struct tier_params *p, const struct tier_member *m, size_t n,
                           unsigned *tier, enum tier_why *why)
{
    bool placed[1024] = {false};
    size_t left = 0;

    for (size_t i = 0; i < n; i++) {
        if (m[i].rtt_us == 0) {
            set(tier, why, i, 0, TIER_WHY_UNMEASURED);
            placed[i] = true;
        } else {
            left++;
        }
    }
    for (unsigned t = 0; left > 0; t++) {
        long base = -1;
        double join, stay;

        for (size_t i = 0; i < n; i++)
            if (!placed[i] && (base < 0 || m[i].rtt_us < m[base].rtt_us))
                base = (long)i;
        join = m[base].rtt_us * p->factor + p->offset_us;
        stay = m[base].rtt_us * p->stay_factor + p->stay_offset_us;
        for (size_t i = 0; i < n; i++) {
            bool was = m[i].has_prev && m[i].prev_tier == t;

            if (placed[i])
                continue;
            if ((long)i == base)
                set(tier, why, i, t, TIER_WHY_BASE);
            else if (t == TIER_MAX || m[i].rtt_us <= join)
                set(tier, why, i, t, TIER_WHY_JOINED);
            else if (was && m[i].rtt_us <= stay)
                set(tier, why, i, t, TIER_WHY_STAYED);
            else
                continue;
            placed[i] = true;
            left--;
        }
    }
}

void tier_assign(const struct tier_params *p, const struct tier_member *m, size_t n, unsigned *tier,
                 enum tier_why *why)
{
    if (n > 1024)
        n = 1024;
    switch (p->mode) {
    case TIER_MODE_NEAREST:
        assign_nearest(p, m, n, tier, why);
        return;
    case TIER_MODE_ZONE:
        for (size_t i = 0; i < n; i++)
            set(tier, why, i, m[i].same_zone ? 0 : 1,
                m[i].same_zone ? TIER_WHY_SAME_ZONE : TIER_WHY_OTHER_ZONE);
        return;
    case TIER_MODE_NONE:
        for (size_t i = 0; i < n; i++)
            set(tier, why, i, 0, TIER_WHY_NONE);
        return;
    }
}

const char *tier_why_name(enum tier_why w)
{
    static const char *const names[] = {"unmeasured", "base",       "joined",       "stayed",
                                        "same-zone",  "other-zone", "no-node-zone", "none"};

    return (unsigned)w < sizeof(names) / sizeof(names[0]) ? names[w] : "?";
}

const char *tier_mode_name(enum tier_mode m)
{
    return m == TIER_MODE_NEAREST ? "nearest" : m == TIER_MODE_ZONE ? "zone" : "none";
}
