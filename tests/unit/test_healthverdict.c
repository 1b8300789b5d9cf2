/* SPDX-License-Identifier: Apache-2.0 */
/* The rise/fall and drain rules of the health checks (health_verdict() in
 * proxy/health.h), one row of its table per test. */
#include <check.h>

#include "check_run.h"
#include "health.h"

static const struct health_result OK = {.ok = true};
static const struct health_result REFUSED = {.ok = false};
static const struct health_result TIMEOUT = {.ok = false, .timed_out = true};
static const struct health_result NOT_READY = {.ok = false, .not_ready = true};
static const struct health_result SHUTDOWN = {.ok = false,
                                              .not_ready = true,
                                              .shutting_down = true};

/* Applies r n times from health cur with --rise 2 --fall 3; returns the
 * verdict of the last one and leaves the health in *cur. */
static struct health_verdict apply(struct health_run *run, enum upstream_health *cur,
                                   const struct health_result *r, unsigned n)
{
    struct health_verdict v = {.to = *cur};

    while (n-- > 0) {
        v = health_verdict(run, *cur, r, 2, 3);
        *cur = v.to;
    }
    return v;
}

START_TEST(first_pass_makes_unknown_healthy)
{
    struct health_run run = {0};
    enum upstream_health cur = UPSTREAM_UNKNOWN;
    struct health_verdict v = apply(&run, &cur, &OK, 1);

    ck_assert_int_eq(v.to, UPSTREAM_HEALTHY);
    ck_assert_int_eq(v.unready, HEALTH_UNREADY_CLEAR);
    ck_assert_uint_eq(run.ok_run, 1);
    ck_assert_uint_eq(run.fail_run, 0);
}
END_TEST

/* From HEALTHY and from UNKNOWN alike; further failures keep it there. */
START_TEST(unhealthy_at_fall_not_before)
{
    static const enum upstream_health from[] = {UPSTREAM_HEALTHY, UPSTREAM_UNKNOWN};
    struct health_run run = {0};
    enum upstream_health cur = from[_i];

    ck_assert_int_eq(apply(&run, &cur, _i == 0 ? &REFUSED : &TIMEOUT, 2).to, from[_i]);
    ck_assert_uint_eq(run.fail_run, 2);
    ck_assert_int_eq(apply(&run, &cur, &REFUSED, 1).to, UPSTREAM_UNHEALTHY);
    ck_assert_int_eq(apply(&run, &cur, &REFUSED, 1).to, UPSTREAM_UNHEALTHY);
    ck_assert_uint_eq(run.fail_run, 4);
}
END_TEST

START_TEST(healthy_again_at_rise_not_before)
{
    struct health_run run = {0};
    enum upstream_health cur = UPSTREAM_HEALTHY;
    struct health_verdict v;

    apply(&run, &cur, &REFUSED, 3);
    ck_assert_int_eq(cur, UPSTREAM_UNHEALTHY);
    v = apply(&run, &cur, &OK, 1);
    ck_assert_int_eq(v.to, UPSTREAM_UNHEALTHY);
    /* Still unhealthy: a draining one keeps draining. */
    ck_assert_int_eq(v.unready, HEALTH_UNREADY_KEEP);
    ck_assert_uint_eq(run.fail_run, 0);
    v = apply(&run, &cur, &OK, 1);
    ck_assert_int_eq(v.to, UPSTREAM_HEALTHY);
    ck_assert_int_eq(v.unready, HEALTH_UNREADY_CLEAR);
}
END_TEST

START_TEST(a_pass_restarts_the_fall_count)
{
    struct health_run run = {0};
    enum upstream_health cur = UPSTREAM_HEALTHY;

    apply(&run, &cur, &REFUSED, 2);
    apply(&run, &cur, &OK, 1);
    ck_assert_int_eq(apply(&run, &cur, &REFUSED, 2).to, UPSTREAM_HEALTHY);
    ck_assert_int_eq(apply(&run, &cur, &REFUSED, 1).to, UPSTREAM_UNHEALTHY);
}
END_TEST

START_TEST(drain_mark_by_kind_of_failure)
{
    struct health_run run = {0};
    enum upstream_health cur = UPSTREAM_HEALTHY;

    /* "[-]shutdown": drain, from the first such answer (before --fall). */
    ck_assert_int_eq(apply(&run, &cur, &SHUTDOWN, 1).unready, HEALTH_UNREADY_START);
    /* Not ready for another reason, or no answer: close, not drain. */
    ck_assert_int_eq(apply(&run, &cur, &NOT_READY, 1).unready, HEALTH_UNREADY_CLEAR);
    ck_assert_int_eq(apply(&run, &cur, &TIMEOUT, 1).unready, HEALTH_UNREADY_CLEAR);
    /* Refused or reset: a stopping apiserver closes its listener first. */
    ck_assert_int_eq(apply(&run, &cur, &REFUSED, 1).unready, HEALTH_UNREADY_KEEP);
    ck_assert_int_eq(cur, UPSTREAM_UNHEALTHY);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("healthverdict", &tc);

    tcase_add_test(tc, first_pass_makes_unknown_healthy);
    tcase_add_loop_test(tc, unhealthy_at_fall_not_before, 0, 2);
    tcase_add_test(tc, healthy_again_at_rise_not_before);
    tcase_add_test(tc, a_pass_restarts_the_fall_count);
    tcase_add_test(tc, drain_mark_by_kind_of_failure);
    return check_run(s);
}
