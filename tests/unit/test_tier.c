/* SPDX-License-Identifier: Apache-2.0 */
/* Preference tiers (proxy/tier.h) and the tiered pick in front of the
 * balancer (upstream_picker_prefer, proxy/upstream.h). */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "check_run.h"
#include "check_table.h"
#include "config.h"
#include "prefer.h"
#include "tier.h"
#include "upstream.h"

static void assign(enum tier_mode mode, const uint32_t *rtt, const int *prev, size_t n,
                   unsigned *tier, enum tier_why *why)
{
    struct tier_params p = tier_params_default(mode);
    struct tier_member m[8];

    memset(m, 0, sizeof(m));
    for (size_t i = 0; i < n; i++) {
        m[i].rtt_us = rtt[i];
        m[i].has_prev = prev != NULL && prev[i] >= 0;
        m[i].prev_tier = prev != NULL && prev[i] >= 0 ? (unsigned)prev[i] : 0;
    }
    tier_assign(&p, m, n, tier, why);
}

START_TEST(near_ones_share_far_one_does_not)
{
    /* The example: 0.3 and 0.4 ms share the best tier, 3 ms not. */
    uint32_t rtt[] = {300, 3000, 400};
    unsigned tier[3];
    enum tier_why why[3];

    assign(TIER_MODE_NEAREST, rtt, NULL, 3, tier, why);
    ck_assert_uint_eq(tier[0], 0);
    ck_assert_uint_eq(tier[2], 0);
    ck_assert_uint_eq(tier[1], 1);
    ck_assert_int_eq(why[0], TIER_WHY_BASE);
    ck_assert_int_eq(why[2], TIER_WHY_JOINED);
    ck_assert_int_eq(why[1], TIER_WHY_BASE); /* the base of tier 1 */
}
END_TEST

START_TEST(tiers_are_relative)
{
    /* 0.2, 2, 2.2 ms: two tiers; 20, 30 ms: the far ones of a WAN share. */
    uint32_t rtt[] = {200, 2000, 2200, 20000, 30000};
    unsigned tier[5];

    assign(TIER_MODE_NEAREST, rtt, NULL, 5, tier, NULL);
    ck_assert_uint_eq(tier[0], 0);
    ck_assert_uint_eq(tier[1], 1);
    ck_assert_uint_eq(tier[2], 1);
    ck_assert_uint_eq(tier[3], 2);
    ck_assert_uint_eq(tier[4], 2); /* 30 <= 20 * 2 + 0.5 */
}
END_TEST

START_TEST(hysteresis_keeps_a_jittery_member)
{
    /* 1.2 ms against a base of 0.3: beyond join (1.1), within stay (1.9). */
    uint32_t rtt[] = {300, 1200};
    int was0[] = {0, 0}, was1[] = {0, 1};
    unsigned tier[2];
    enum tier_why why[2];

    assign(TIER_MODE_NEAREST, rtt, was0, 2, tier, why);
    ck_assert_uint_eq(tier[1], 0);
    ck_assert_int_eq(why[1], TIER_WHY_STAYED);
    /* The same round trip does not pull a member up into tier 0. */
    assign(TIER_MODE_NEAREST, rtt, was1, 2, tier, why);
    ck_assert_uint_eq(tier[1], 1);
    /* Beyond stay (1.9 ms) it leaves. */
    rtt[1] = 2000;
    assign(TIER_MODE_NEAREST, rtt, was0, 2, tier, why);
    ck_assert_uint_eq(tier[1], 1);
}
END_TEST

START_TEST(unmeasured_is_tier_zero)
{
    uint32_t rtt[] = {0, 5000, 100};
    unsigned tier[3];
    enum tier_why why[3];

    assign(TIER_MODE_NEAREST, rtt, NULL, 3, tier, why);
    ck_assert_uint_eq(tier[0], 0);
    ck_assert_int_eq(why[0], TIER_WHY_UNMEASURED);
    ck_assert_uint_eq(tier[2], 0);
    ck_assert_uint_eq(tier[1], 1);
}
END_TEST

START_TEST(tiers_capped)
{
    uint32_t rtt[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 4000000};
    unsigned tier[8];

    /* 1 and 10 us share (10 <= 1 * 2 + 500), the rest climb one each. */
    assign(TIER_MODE_NEAREST, rtt, NULL, 8, tier, NULL);
    ck_assert_uint_eq(tier[1], 0);
    ck_assert_uint_eq(tier[2], 0);
    ck_assert_uint_eq(tier[3], 1);
    for (size_t i = 0; i < 8; i++)
        ck_assert_uint_le(tier[i], TIER_MAX);
}
END_TEST

START_TEST(zone_mode_and_none)
{
    struct tier_params p = tier_params_default(TIER_MODE_ZONE);
    struct tier_member m[3];
    unsigned tier[3];
    enum tier_why why[3];

    memset(m, 0, sizeof(m));
    m[0].same_zone = false;
    m[0].rtt_us = 100; /* nearer, but another zone: zone mode ignores it */
    m[1].same_zone = true;
    m[1].rtt_us = 3000;
    tier_assign(&p, m, 3, tier, why);
    ck_assert_uint_eq(tier[0], 1);
    ck_assert_uint_eq(tier[1], 0);
    ck_assert_uint_eq(tier[2], 1);
    ck_assert_int_eq(why[1], TIER_WHY_SAME_ZONE);
    p = tier_params_default(TIER_MODE_NONE);
    tier_assign(&p, m, 3, tier, why);
    ck_assert_uint_eq(tier[0] + tier[1] + tier[2], 0);
}
END_TEST

START_TEST(zone_matches_name_or_hint)
{
    struct zone_info z;

    memset(&z, 0, sizeof(z));
    strcpy(z.name, "eu-1a");
    ck_assert(tier_zone_matches(&z, "eu-1a"));
    ck_assert(!tier_zone_matches(&z, "eu-1b"));
    ck_assert(!tier_zone_matches(&z, ""));
    ck_assert(!tier_zone_matches(&z, NULL));
    z.n_for_zones = 1;
    strcpy(z.for_zones[0], "eu-1b");
    ck_assert(tier_zone_matches(&z, "eu-1b"));
}
END_TEST

START_TEST(estimate_is_window_minimum)
{
    uint32_t s[TIER_RTT_SAMPLES] = {0};

    ck_assert_uint_eq(tier_rtt_estimate(s, TIER_RTT_SAMPLES), 0);
    s[3] = 900;
    s[7] = 250;
    s[9] = 4000; /* a jitter spike changes nothing */
    ck_assert_uint_eq(tier_rtt_estimate(s, TIER_RTT_SAMPLES), 250);
}
END_TEST

/* --- the tiered pick ---------------------------------------------------- */

#define NU 3
static struct upstream *ups[NU];
static struct upstream_table *tab;

static void setup(void)
{
    check_table_new(ups, NU, &tab);
    /* 10.0.0.1 is near (tier 0), the others tier 1. */
    atomic_store(&tab->e[1].up->tier, 1);
    atomic_store(&tab->e[2].up->tier, 1);
}

static void teardown(void)
{
    check_table_free(ups, NU, tab);
}

static unsigned picks_of(struct upstream_picker *p, long want, unsigned n, uint64_t now_ms)
{
    unsigned hits = 0;

    for (unsigned k = 0; k < n; k++) {
        struct upstream_tried tried = {0};

        hits += upstream_pick(p, tab, &tried, now_ms) == want;
    }
    return hits;
}

START_TEST(pick_prefers_tier_zero)
{
    struct upstream_picker p;

    upstream_picker_init(&p, UPSTREAM_BALANCE_LEAST_CONN, 42);
    upstream_picker_prefer(&p, 16, 0);
    ck_assert_uint_eq(picks_of(&p, 0, 1000, 10000), 1000);
    /* Without the preference, least-conn spreads. */
    upstream_picker_init(&p, UPSTREAM_BALANCE_LEAST_CONN, 42);
    ck_assert_uint_lt(picks_of(&p, 0, 1000, 10000), 500);
}
END_TEST

START_TEST(pick_spills_when_tier_zero_unusable_or_tried)
{
    struct upstream_picker p;
    struct upstream_tried tried = {0};
    long first;

    upstream_picker_init(&p, UPSTREAM_BALANCE_ROUND_ROBIN, 7);
    upstream_picker_prefer(&p, 16, 0);
    first = upstream_pick(&p, tab, &tried, 10000);
    ck_assert_int_eq(first, 0);
    /* Its dial failed: the retry goes to tier 1. */
    ck_assert_int_ge(upstream_pick(&p, tab, &tried, 10000), 1);
    /* Held down: new connections go to tier 1 at once. */
    upstream_dial_failed(tab->e[0].up, UPSTREAM_FAIL_TIMEOUT, 10000, 5000);
    ck_assert_uint_eq(picks_of(&p, 0, 100, 10001), 0);
    ck_assert_uint_eq(picks_of(&p, 0, 100, 15001), 100);
}
END_TEST

START_TEST(pick_spills_for_load)
{
    struct upstream_picker p;

    upstream_picker_init(&p, UPSTREAM_BALANCE_LEAST_CONN, 9);
    upstream_picker_prefer(&p, 4, 0);
    /* 4 <= 4 * (0 + 1): still preferred; 5 is beyond. */
    atomic_store(&tab->e[0].up->active, 4);
    ck_assert_uint_eq(picks_of(&p, 0, 100, 10000), 100);
    atomic_store(&tab->e[0].up->active, 5);
    ck_assert_uint_eq(picks_of(&p, 0, 100, 10000), 0);
    /* The others' load raises the bound: 5 <= 4 * (1 + 1). */
    atomic_store(&tab->e[1].up->active, 1);
    atomic_store(&tab->e[2].up->active, 1);
    ck_assert_uint_eq(picks_of(&p, 0, 100, 10000), 100);
    /* Factor 0: never spills for load. */
    atomic_store(&tab->e[0].up->active, 1000);
    upstream_picker_prefer(&p, 0, 0);
    ck_assert_uint_eq(picks_of(&p, 0, 100, 10000), 100);
}
END_TEST

START_TEST(pick_ramps_a_recovered_one)
{
    struct upstream_picker p;
    unsigned early, mid, late;

    upstream_picker_init(&p, UPSTREAM_BALANCE_LEAST_CONN, 11);
    upstream_picker_prefer(&p, 16, 10000);
    atomic_store(&tab->e[0].up->ramp_from_ms, 20000);
    early = picks_of(&p, 0, 2000, 20500); /* 5 % through the ramp */
    mid = picks_of(&p, 0, 2000, 25000);   /* 50 % */
    late = picks_of(&p, 0, 2000, 30000);  /* over */
    ck_assert_uint_gt(early, 20);
    ck_assert_uint_lt(early, 250);
    ck_assert_uint_gt(mid, 850);
    ck_assert_uint_lt(mid, 1150);
    ck_assert_uint_eq(late, 2000);
}
END_TEST

START_TEST(rtt_samples_feed_the_estimate)
{
    struct upstream *up = tab->e[0].up;

    ck_assert_uint_eq(upstream_rtt_us(up), 0);
    upstream_dial_ok(up, 700);
    upstream_rtt_sample(up, 300);
    upstream_rtt_sample(up, 5000);
    /* Three samples are no estimate yet (one slow one would decide). */
    ck_assert_uint_eq(upstream_rtt_us(up), 0);
    upstream_rtt_sample(up, 900);
    ck_assert_uint_eq(upstream_rtt_us(up), 300);
    /* 16 newer samples replace a changed path's old minimum. */
    for (int i = 0; i < TIER_RTT_SAMPLES; i++)
        upstream_rtt_sample(up, 2000 + i);
    ck_assert_uint_eq(upstream_rtt_us(up), 2000);
    upstream_rtt_sample(up, 0);
    ck_assert_uint_eq(upstream_rtt_us(up), 1);
}
END_TEST

/* --- prefer.c: the tiers of a table, each tick ----------------------------- */

static struct config pcfg;
static struct prefer pf;

/* The pick's table, and prefer for it: --prefer nearest, a 10 s ramp. */
static void prefer_setup(void)
{
    setup();
    memset(&pcfg, 0, sizeof(pcfg));
    pcfg.prefer = TIER_MODE_NEAREST;
    pcfg.prefer_ramp_ms = 10000;
    prefer_init(&pf, &pcfg);
}

static void rtt(struct upstream *up, uint32_t us)
{
    for (int i = 0; i < TIER_RTT_SAMPLES; i++)
        upstream_rtt_sample(up, us);
}

START_TEST(prefer_update_assigns_and_ramps)
{
    rtt(tab->e[0].up, 200);
    rtt(tab->e[1].up, 2000);
    rtt(tab->e[2].up, 2100);
    atomic_store(&tab->e[1].up->tier, 0); /* the fixture's tiers do not count */
    atomic_store(&tab->e[2].up->tier, 0);
    prefer_update(&pf, tab, 1000);
    ck_assert_uint_eq(atomic_load(&tab->e[0].up->tier), 0);
    ck_assert_uint_eq(atomic_load(&tab->e[1].up->tier), 1);
    ck_assert_uint_eq(atomic_load(&tab->e[2].up->tier), 1);
    ck_assert_uint_eq(atomic_load(&tab->e[0].up->ramp_from_ms), 0); /* no ramp at start */
    /* A passive hold ends without a ramp: it kept its connections. */
    upstream_dial_failed(tab->e[0].up, UPSTREAM_FAIL_TIMEOUT, 1000, 500);
    prefer_update(&pf, tab, 1200);
    prefer_update(&pf, tab, 1600);
    ck_assert_uint_eq(atomic_load(&tab->e[0].up->ramp_from_ms), 0);
    /* Nearer than before (tier 1 to 0): its ramp starts at that tick. */
    rtt(tab->e[1].up, 250);
    prefer_update(&pf, tab, 2000);
    ck_assert_uint_eq(atomic_load(&tab->e[1].up->tier), 0);
    ck_assert_uint_eq(atomic_load(&tab->e[1].up->ramp_from_ms), 2000);
}
END_TEST

/* Every upstream down, then back: none ramps (the bug of d466cb8: those
 * back first ramped from 10 % while one added later took every new
 * connection). Now decided where every ramp starts, upstream_ramp_returned;
 * the pick shows it: the first one back is admitted at once. */
START_TEST(prefer_no_ramp_after_all_down)
{
    struct upstream_picker p;

    upstream_picker_init(&p, UPSTREAM_BALANCE_LEAST_CONN, 5);
    upstream_picker_prefer(&p, 16, pcfg.prefer_ramp_ms);
    for (int i = 0; i < NU; i++)
        upstream_ramp_stopped(tab->e[i].up, 1000);
    ck_assert(!upstream_ramp_returned(tab, tab->e[0].up, true, 1600));
    ck_assert(!upstream_ramp_returned(tab, tab->e[1].up, true, 1700));
    ck_assert(!upstream_ramp_returned(tab, tab->e[2].up, true, 1800));
    for (int i = 0; i < NU; i++)
        ck_assert_uint_eq(atomic_load(&tab->e[i].up->ramp_from_ms), 0);
    ck_assert_uint_eq(picks_of(&p, 0, 200, 1900), 200); /* tier 0, not held back */
    /* One down while the others carry on: it ramps when back. */
    upstream_ramp_stopped(tab->e[0].up, 2000);
    ck_assert(upstream_ramp_returned(tab, tab->e[0].up, true, 2200));
    ck_assert_uint_eq(atomic_load(&tab->e[0].up->ramp_from_ms), 2200);
    ck_assert_uint_lt(picks_of(&p, 0, 200, 2300), 40); /* 1 % into the ramp */
}
END_TEST

START_TEST(prefer_unmeasured_tier_not_held)
{
    /* The bug: tier 0 while unmeasured was held by hysteresis once
     * measured at 1.4 ms against 0.16 ms (within 3 x 0.16 + 1 ms). */
    rtt(tab->e[0].up, 160);
    atomic_store(&tab->e[1].up->tier, 0);
    atomic_store(&tab->e[2].up->tier, 0);
    prefer_update(&pf, tab, 1000); /* e[1], e[2] unmeasured: tier 0 */
    ck_assert_uint_eq(atomic_load(&tab->e[1].up->tier), 0);
    rtt(tab->e[1].up, 1400);
    rtt(tab->e[2].up, 1400);
    prefer_update(&pf, tab, 1200);
    ck_assert_uint_eq(atomic_load(&tab->e[1].up->tier), 1);
    /* A measured member of tier 0 is held there within the stay bound. */
    rtt(tab->e[1].up, 700);
    prefer_update(&pf, tab, 1400);
    ck_assert_uint_eq(atomic_load(&tab->e[1].up->tier), 0); /* joined: 0.7 <= 0.82 */
    rtt(tab->e[1].up, 1400);
    prefer_update(&pf, tab, 1600);
    ck_assert_uint_eq(atomic_load(&tab->e[1].up->tier), 0); /* stayed: 1.4 <= 1.48 */
}
END_TEST

START_TEST(prefer_zone_from_cluster_then_flag)
{
    struct zone_info z;
    const char *from;

    pcfg.prefer = TIER_MODE_ZONE;
    pcfg.zone = (char *)"b";
    ck_assert_int_eq(addr_from_ip("10.0.0.3", 0, &pcfg.upstream_zones[0].addr), 0);
    pcfg.upstream_zones[0].any_port = true;
    strcpy(pcfg.upstream_zones[0].zone, "b");
    pcfg.n_upstream_zones = 1;
    strcpy(tab->e[0].zone.name, "a");
    prefer_zone_of(&pcfg, &tab->e[2], &z, &from);
    ck_assert_str_eq(z.name, "b");
    ck_assert_str_eq(from, "flag");
    prefer_zone_of(&pcfg, &tab->e[0], &z, &from);
    ck_assert_str_eq(from, "cluster");
    prefer_zone_of(&pcfg, &tab->e[1], &z, &from);
    ck_assert_str_eq(from, "");
    prefer_init(&pf, &pcfg);
    prefer_update(&pf, tab, 1000);
    ck_assert_uint_eq(atomic_load(&tab->e[2].up->tier), 0);
    ck_assert_uint_eq(atomic_load(&tab->e[0].up->tier), 1);
    ck_assert_uint_eq(atomic_load(&tab->e[1].up->tier), 1);
}
END_TEST

int main(void)
{
    const TTest *const pick_tests[] = {pick_prefers_tier_zero,
                                       pick_spills_when_tier_zero_unusable_or_tried,
                                       pick_spills_for_load, pick_ramps_a_recovered_one,
                                       rtt_samples_feed_the_estimate};
    const TTest *const prefer_tests[] = {prefer_update_assigns_and_ramps,
                                         prefer_no_ramp_after_all_down,
                                         prefer_unmeasured_tier_not_held,
                                         prefer_zone_from_cluster_then_flag};
    TCase *tc;
    Suite *s = check_suite("tier", &tc);

    tcase_add_test(tc, near_ones_share_far_one_does_not);
    tcase_add_test(tc, tiers_are_relative);
    tcase_add_test(tc, hysteresis_keeps_a_jittery_member);
    tcase_add_test(tc, unmeasured_is_tier_zero);
    tcase_add_test(tc, tiers_capped);
    tcase_add_test(tc, zone_mode_and_none);
    tcase_add_test(tc, zone_matches_name_or_hint);
    tcase_add_test(tc, estimate_is_window_minimum);
    check_tcase(s, "pick", setup, teardown, pick_tests, sizeof(pick_tests) / sizeof(pick_tests[0]));
    check_tcase(s, "prefer", prefer_setup, teardown, prefer_tests,
                sizeof(prefer_tests) / sizeof(prefer_tests[0]));
    return check_run(s);
}
