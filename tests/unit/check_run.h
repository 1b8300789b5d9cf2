/* SPDX-License-Identifier: Apache-2.0 */
/* The one way every unit suite runs: a suite with one test case "core". */
#ifndef TESTS_UNIT_CHECK_RUN_H
#define TESTS_UNIT_CHECK_RUN_H

#include <check.h>

/* A suite named name with its test case "core" in *tc, for tests to be added. */
static inline Suite *check_suite(const char *name, TCase **tc)
{
    Suite *s = suite_create(name);

    *tc = tcase_create("core");
    suite_add_tcase(s, *tc);
    return s;
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
