/* SPDX-License-Identifier: Apache-2.0 */
/* The pure balancing arithmetic (proxy/balance.h): mass failures, the
 * ramp's weight, the fair-share limit and what a rebalance round sheds; and
 * when a ramp starts (upstream_ramp_returned, proxy/upstream.h). */
#include <check.h>
#include <stdint.h>

#include "balance.h"
#include "check_run.h"
#include "check_table.h"

START_TEST(single_close_is_never_mass)
{
    ck_assert(!balance_lost_is_mass(1, 1));
    ck_assert(!balance_lost_is_mass(1, 100));
    ck_assert(!balance_lost_is_mass(0, 0));
}
END_TEST

START_TEST(mass_is_a_quarter_or_four)
{
    ck_assert(balance_lost_is_mass(2, 2));  /* both of its two */
    ck_assert(balance_lost_is_mass(2, 8));  /* a quarter */
    ck_assert(!balance_lost_is_mass(2, 9)); /* two of nine: its own closes */
    ck_assert(!balance_lost_is_mass(3, 30));
    ck_assert(balance_lost_is_mass(4, 1000)); /* four in a second: a mass */
}
END_TEST

START_TEST(ramp_rises_from_floor_to_full)
{
    ck_assert_uint_eq(balance_ramp_weight(1000, 1000, 10000, BALANCE_WEIGHT_FLOOR),
                      BALANCE_WEIGHT_FLOOR);
    ck_assert_uint_eq(balance_ramp_weight(1000, 6000, 10000, BALANCE_WEIGHT_FLOOR),
                      BALANCE_WEIGHT_FLOOR + (BALANCE_WEIGHT_FULL - BALANCE_WEIGHT_FLOOR) / 2);
    ck_assert_uint_eq(balance_ramp_weight(1000, 10999, 10000, BALANCE_WEIGHT_FLOOR), 999);
    ck_assert_uint_eq(balance_ramp_weight(1000, 11000, 10000, BALANCE_WEIGHT_FLOOR),
                      BALANCE_WEIGHT_FULL);
    /* --prefer-ramp's, from 0: the elapsed fraction. */
    ck_assert_uint_eq(balance_ramp_weight(1000, 1000, 10000, 0), 0);
    ck_assert_uint_eq(balance_ramp_weight(1000, 1500, 10000, 0), 50);
    ck_assert_uint_eq(balance_ramp_weight(1000, 6000, 10000, 0), 500);
    /* Monotonic in between. */
    for (uint64_t t = 1000, last = 0; t < 11000; t += 37) {
        unsigned w = balance_ramp_weight(1000, t, 10000, BALANCE_WEIGHT_FLOOR);

        ck_assert_uint_ge(w, last);
        last = w;
    }
}
END_TEST

START_TEST(ramp_off_or_none_is_full)
{
    ck_assert_uint_eq(balance_ramp_weight(0, 5000, 10000, BALANCE_WEIGHT_FLOOR),
                      BALANCE_WEIGHT_FULL);
    ck_assert_uint_eq(balance_ramp_weight(1000, 1000, 0, BALANCE_WEIGHT_FLOOR),
                      BALANCE_WEIGHT_FULL);
    /* A clock read before the start (another thread's) is the floor, not a wrap. */
    ck_assert_uint_eq(balance_ramp_weight(5000, 4000, 10000, BALANCE_WEIGHT_FLOOR),
                      BALANCE_WEIGHT_FLOOR);
    ck_assert_uint_eq(balance_ramp_weight(5000, 4000, 10000, 0), 0);
    /* A floor beyond full is full. */
    ck_assert_uint_eq(balance_ramp_weight(5000, 5000, 10000, 5000), BALANCE_WEIGHT_FULL);
}
END_TEST

START_TEST(fair_limit_is_five_percent_over_or_one_over_the_least)
{
    ck_assert_uint_eq(balance_fair_limit(60, 3, 0), 21); /* 20 + 5 % */
    ck_assert_uint_eq(balance_fair_limit(60, 3, 16), 21);
    ck_assert_uint_eq(balance_fair_limit(600, 3, 0), 210);
    /* Small shares: one over the least loaded. 2/1/0 sheds one, 2/1/1
     * none, 1/1/0 none (nothing better exists). */
    ck_assert_uint_eq(balance_fair_limit(3, 3, 0), 1);
    ck_assert_uint_eq(balance_fair_limit(4, 3, 1), 2);
    ck_assert_uint_eq(balance_fair_limit(2, 3, 0), 1);
    ck_assert_uint_eq(balance_fair_limit(0, 3, 0), 1);
    ck_assert_uint_eq(balance_fair_limit(7, 0, 7), 8); /* no usable one: as if one */
}
END_TEST

START_TEST(small_share_targets_add_up_by_rank)
{
    /* One connection, three upstreams: the first-ranked holds it. */
    ck_assert_uint_eq(balance_target(1, 3, 0), 1);
    ck_assert_uint_eq(balance_target(1, 3, 1), 0);
    ck_assert_uint_eq(balance_target(1, 3, 2), 0);
    /* Five over three: 2, 2, 1; the targets always add up to the total. */
    ck_assert_uint_eq(balance_target(5, 3, 0), 2);
    ck_assert_uint_eq(balance_target(5, 3, 1), 2);
    ck_assert_uint_eq(balance_target(5, 3, 2), 1);
    for (unsigned total = 0; total < 12; total++) {
        unsigned sum = 0;

        for (unsigned r = 0; r < 3; r++)
            sum += balance_target(total, 3, r);
        ck_assert_uint_eq(sum, total);
    }
}
END_TEST

START_TEST(shed_nothing_within_limit)
{
    ck_assert_uint_eq(balance_shed_count(33, 33, 33, 0), 0);
    ck_assert_uint_eq(balance_shed_count(10, 33, 10, 0), 0);
    ck_assert_uint_eq(balance_shed_count(50, 33, 0, 0), 0);
}
END_TEST

START_TEST(shed_a_share_of_the_excess_per_round)
{
    /* 80 over a limit of 16, all on this worker: 64 / 8 = 8 a round. */
    ck_assert_uint_eq(balance_shed_count(80, 16, 80, 0), 8);
    ck_assert_uint_eq(balance_shed_count(80, 16, 80, 12345), 8);
    /* Half of them on this worker: half as many. */
    ck_assert_uint_eq(balance_shed_count(80, 16, 40, 1), 4);
    /* Never more than the worker holds. */
    ck_assert_uint_le(balance_shed_count(1000, 0, 3, 0), 3);
}
END_TEST

START_TEST(small_excess_is_shed_at_random_rounds)
{
    /* 2 connections, limit 1: an excess of 1, 1/8 of a connection a round,
     * so one round in about 8 sheds one: the jitter that keeps a fleet's
     * nodes apart. */
    unsigned shed = 0;

    for (uint64_t draw = 0; draw < 1600; draw++)
        shed += balance_shed_count(2, 1, 2, draw * 2654435761u);
    ck_assert_uint_gt(shed, 140);
    ck_assert_uint_lt(shed, 260);
}
END_TEST

START_TEST(shed_order_is_quietest_first)
{
    uint64_t quiet[] = {500, 100, 900, 100, 300};
    size_t order[5];

    balance_shed_order(quiet, 5, order);
    ck_assert_uint_eq(order[0], 1);
    ck_assert_uint_eq(order[1], 3); /* ties by index */
    ck_assert_uint_eq(order[2], 4);
    ck_assert_uint_eq(order[3], 0);
    ck_assert_uint_eq(order[4], 2);
    balance_shed_order(quiet, 0, order);
}
END_TEST

START_TEST(shed_moment_is_just_after_an_answer_or_long_silence)
{
    uint64_t asked = 100000, ans = asked + 20, slow = asked + 4000;

    ck_assert(!balance_shed_moment(asked, ans, ans));
    ck_assert(!balance_shed_moment(asked, ans, ans + BALANCE_SHED_AFTER_MIN_MS - 1));
    ck_assert(balance_shed_moment(asked, ans, ans + BALANCE_SHED_AFTER_MIN_MS));
    ck_assert(balance_shed_moment(asked, ans, ans + BALANCE_SHED_AFTER_MAX_MS));
    /* A kubelet's next lease renewal is 10 s after its last: not near it. */
    ck_assert(!balance_shed_moment(asked, ans, ans + BALANCE_SHED_AFTER_MAX_MS + 1));
    ck_assert(!balance_shed_moment(asked, ans, ans + 9900));
    /* A slow answer: the moment follows it, not the request. */
    ck_assert(!balance_shed_moment(asked, slow, asked + 1000));
    ck_assert(balance_shed_moment(asked, slow, slow + 500));
    /* Not answered yet (the answer before the request is an older one). */
    ck_assert(!balance_shed_moment(asked, asked - 3000, asked + 500));
    ck_assert(!balance_shed_moment(asked, ans, asked + BALANCE_SHED_SILENT_MS - 1));
    ck_assert(balance_shed_moment(asked, ans, asked + BALANCE_SHED_SILENT_MS));
    ck_assert(balance_shed_moment(asked, asked - 3000, asked + 3600000));
    ck_assert(!balance_shed_moment(asked, ans, asked - 5)); /* a clock read behind */
}
END_TEST

START_TEST(pace_hold_leaves_the_handshake_its_time)
{
    /* 10 s of client-go's TLS handshake, 1 s margin, twice the answer. */
    ck_assert_uint_eq(balance_pace_hold_max(0), 9000);
    ck_assert_uint_eq(balance_pace_hold_max(20), 8960);
    ck_assert_uint_eq(balance_pace_hold_max(500), 8000); /* the default window still whole */
    ck_assert_uint_eq(balance_pace_hold_max(3000), 3000);
    ck_assert_uint_eq(balance_pace_hold_max(4500), 0);
    ck_assert_uint_eq(balance_pace_hold_max(60000), 0);
    ck_assert_uint_eq(balance_pace_hold_max(UINT32_MAX), 0);
}
END_TEST

/* --- when a ramp starts (upstream_ramp_returned) -------------------------- */

#define NU 3
#define SLOW_START_MS 30000u
static struct upstream *ups[NU];
static struct upstream_table *tab;

/* Three upstreams in a table, every one carrying load since the first. */
static void ramp_setup(void)
{
    check_table_new(ups, NU, &tab);
}

static void ramp_teardown(void)
{
    check_table_free(ups, NU, tab);
}

/* up turns unhealthy at from_ms (what healthlink.c records). */
static void down(struct upstream *up, uint64_t from_ms)
{
    atomic_store(&up->health, UPSTREAM_UNHEALTHY);
    upstream_ramp_stopped(up, from_ms);
}

/* up turns healthy again at now_ms: whether its ramp started. */
static bool back(struct upstream *up, uint64_t now_ms)
{
    atomic_store(&up->health, UPSTREAM_HEALTHY);
    return upstream_ramp_returned(tab, up, true, now_ms);
}

/* One down while the others carry the load: slow start holds it at 5 %. */
START_TEST(ramp_when_others_carried_the_load)
{
    down(ups[0], 1000);
    ck_assert(back(ups[0], 5000));
    ck_assert_uint_eq(upstream_slow_start_weight(ups[0], SLOW_START_MS, 5000),
                      BALANCE_WEIGHT_FLOOR);
    ck_assert_uint_eq(atomic_load(&ups[0]->returned_ms), 5000);
    ck_assert_uint_eq(upstream_slow_start_weight(ups[1], SLOW_START_MS, 5000), BALANCE_WEIGHT_FULL);
}
END_TEST

/* Slow start after every upstream was down: the first one back must not be
 * held at 5 % (nobody carried the load; the others, back later, would take
 * its share), nor the ones back after it from the same outage. */
START_TEST(slow_start_no_ramp_after_all_down)
{
    bool ramped;

    for (int i = 0; i < NU; i++)
        down(ups[i], 1000 + (uint64_t)i);
    ramped = back(ups[1], 4000);
    ck_assert_uint_eq(upstream_slow_start_weight(ups[1], SLOW_START_MS, 4000), BALANCE_WEIGHT_FULL);
    ck_assert(!ramped);
    ck_assert(!back(ups[0], 4500));
    ck_assert(!back(ups[2], 6000));
    for (int i = 0; i < NU; i++)
        ck_assert_uint_eq(upstream_slow_start_weight(ups[i], SLOW_START_MS, 6000),
                          BALANCE_WEIGHT_FULL);
    /* The return is still one for --rebalance's episode. */
    ck_assert_uint_eq(atomic_load(&ups[2]->returned_ms), 6000);
    /* Later, one down alone: it ramps again. */
    down(ups[2], 7000);
    ck_assert(back(ups[2], 8000));
    ck_assert_uint_eq(upstream_slow_start_weight(ups[2], SLOW_START_MS, 8000),
                      BALANCE_WEIGHT_FLOOR);
}
END_TEST

/* Joined later: a ramp when another carried load, none with may_ramp false
 * (discovery's first answer: nothing connected) and none when every other
 * is down or a fallback seed. */
START_TEST(ramp_for_one_added_later)
{
    ck_assert(upstream_ramp_returned(tab, ups[0], true, 2000));
    ck_assert(!upstream_ramp_returned(tab, ups[1], false, 2000));
    ck_assert_uint_eq(atomic_load(&ups[1]->ramp_from_ms), 0);
    ck_assert_uint_eq(atomic_load(&ups[1]->returned_ms), 0);
    down(ups[0], 3000);
    down(ups[1], 3000);
    tab->e[1].fallback = true;
    atomic_store(&ups[1]->health, UPSTREAM_HEALTHY);
    ups[1]->stopped = false;
    ck_assert(!upstream_ramp_returned(tab, ups[2], true, 4000));
}
END_TEST

int main(void)
{
    const TTest *const ramp_tests[] = {ramp_when_others_carried_the_load,
                                       slow_start_no_ramp_after_all_down, ramp_for_one_added_later};
    TCase *tc;
    Suite *s = check_suite("balance", &tc);

    tcase_add_test(tc, single_close_is_never_mass);
    tcase_add_test(tc, mass_is_a_quarter_or_four);
    tcase_add_test(tc, ramp_rises_from_floor_to_full);
    tcase_add_test(tc, ramp_off_or_none_is_full);
    tcase_add_test(tc, fair_limit_is_five_percent_over_or_one_over_the_least);
    tcase_add_test(tc, small_share_targets_add_up_by_rank);
    tcase_add_test(tc, shed_nothing_within_limit);
    tcase_add_test(tc, shed_a_share_of_the_excess_per_round);
    tcase_add_test(tc, small_excess_is_shed_at_random_rounds);
    tcase_add_test(tc, shed_order_is_quietest_first);
    tcase_add_test(tc, shed_moment_is_just_after_an_answer_or_long_silence);
    tcase_add_test(tc, pace_hold_leaves_the_handshake_its_time);
    check_tcase(s, "ramp", ramp_setup, ramp_teardown, ramp_tests,
                sizeof(ramp_tests) / sizeof(ramp_tests[0]));
    return check_run(s);
}
