/* SPDX-License-Identifier: Apache-2.0 */
/* The pure balancing arithmetic (proxy/balance.h): mass failures, the
 * slow-start weight, the fair-share limit and what a rebalance round sheds. */
#include <check.h>
#include <stdint.h>

#include "balance.h"
#include "check_run.h"

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

START_TEST(slow_start_ramps_from_floor_to_full)
{
    ck_assert_uint_eq(balance_slow_start_weight(1000, 1000, 10000), BALANCE_WEIGHT_FLOOR);
    ck_assert_uint_eq(balance_slow_start_weight(1000, 6000, 10000),
                      BALANCE_WEIGHT_FLOOR + (BALANCE_WEIGHT_FULL - BALANCE_WEIGHT_FLOOR) / 2);
    ck_assert_uint_eq(balance_slow_start_weight(1000, 10999, 10000), 999);
    ck_assert_uint_eq(balance_slow_start_weight(1000, 11000, 10000), BALANCE_WEIGHT_FULL);
    /* Monotonic in between. */
    for (uint64_t t = 1000, last = 0; t < 11000; t += 37) {
        unsigned w = balance_slow_start_weight(1000, t, 10000);

        ck_assert_uint_ge(w, last);
        last = w;
    }
}
END_TEST

START_TEST(slow_start_off_or_none_is_full)
{
    ck_assert_uint_eq(balance_slow_start_weight(0, 5000, 10000), BALANCE_WEIGHT_FULL);
    ck_assert_uint_eq(balance_slow_start_weight(1000, 1000, 0), BALANCE_WEIGHT_FULL);
    /* A clock read before the start (another thread's) is the floor, not a wrap. */
    ck_assert_uint_eq(balance_slow_start_weight(5000, 4000, 10000), BALANCE_WEIGHT_FLOOR);
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

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("balance", &tc);

    tcase_add_test(tc, single_close_is_never_mass);
    tcase_add_test(tc, mass_is_a_quarter_or_four);
    tcase_add_test(tc, slow_start_ramps_from_floor_to_full);
    tcase_add_test(tc, slow_start_off_or_none_is_full);
    tcase_add_test(tc, fair_limit_is_five_percent_over_or_one_over_the_least);
    tcase_add_test(tc, small_share_targets_add_up_by_rank);
    tcase_add_test(tc, shed_nothing_within_limit);
    tcase_add_test(tc, shed_a_share_of_the_excess_per_round);
    tcase_add_test(tc, small_excess_is_shed_at_random_rounds);
    tcase_add_test(tc, shed_order_is_quietest_first);
    return check_run(s);
}
