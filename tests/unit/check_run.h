/* SPDX-License-Identifier: Apache-2.0 */
/* The one way every unit suite runs: a suite with one test case "core". */
#ifndef TESTS_UNIT_CHECK_RUN_H
#define TESTS_UNIT_CHECK_RUN_H

#include <check.h>
#include <stddef.h>

/* A suite named name with its test case "core" in *tc, for tests to be added. */
static inline Suite *check_suite(const char *name, TCase **tc)
{
    Suite *s = suite_create(name);

    *tc = tcase_create("core");
    suite_add_tcase(s, *tc);
    return s;
}

/* A test case name of s running tests[0..n) each between setup and
 * teardown (a checked fixture; either may be NULL). */
static inline TCase *check_tcase(Suite *s, const char *name, SFun setup, SFun teardown,
                                 const TTest *const *tests, size_t n)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, setup, teardown);
    for (size_t i = 0; i < n; i++)
        tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return tc;
}

/* Runs s; the process exit status: 0 when every test passed. */
static inline int check_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

#endif
