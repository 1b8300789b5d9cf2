/* SPDX-License-Identifier: Apache-2.0 */
/* jsonlimit: the bound on JSON trees, checked on the bytes. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "eventstream.h"
#include "jsonlimit.h"
#include "check_run.h"

static char err[128];

static int scan(const char *s, size_t max_values, unsigned max_depth, size_t *end)
{
    err[0] = '\0';
    return jsonlimit_scan(s, strlen(s), max_values, max_depth, end, err, sizeof(err));
}

/* The end of the first value is found; brackets and commas inside strings
 * (escaped quotes too) count for nothing. */
START_TEST(finds_the_end)
{
    size_t end = 0;

    ck_assert_int_eq(scan("  {\"a\":[1,2]} {\"b\":1}", 100, 8, &end), 0);
    ck_assert_uint_eq(end, 13);
    ck_assert_int_eq(scan("{\"k\":\"}],[{\\\"\\\\\"}x", 100, 8, &end), 0);
    ck_assert_uint_eq(end, 17);
    ck_assert_int_eq(scan("[]", 1, 1, &end), 0);
    ck_assert_uint_eq(end, 2);
}
END_TEST

/* Incomplete text waits for more; a value that is no object or array is
 * refused. */
START_TEST(incomplete_and_not_a_container)
{
    size_t end = 0;

    ck_assert_int_eq(scan("{\"a\":[1,2]", 100, 8, &end), -EAGAIN);
    ck_assert_int_eq(scan("{\"a\":\"}", 100, 8, &end), -EAGAIN);
    ck_assert_int_eq(scan(" \n", 100, 8, &end), -EAGAIN);
    ck_assert_int_eq(scan("\"x\"", 100, 8, &end), -EBADMSG);
    ck_assert_int_eq(scan("42", 100, 8, &end), -EBADMSG);
}
END_TEST

/* [[],[],...] and [1,1,...] are counted by their brackets and commas, and
 * refused past the bound (even before the text ends); exactly at the bound
 * they pass. */
START_TEST(values_bounded)
{
    size_t n = 1000, end = 0;
    char *wide = malloc(3 * n + 2), *flat = malloc(2 * n + 2);

    ck_assert_ptr_nonnull(wide);
    ck_assert_ptr_nonnull(flat);
    wide[0] = flat[0] = '[';
    for (size_t i = 0; i < n; i++) {
        memcpy(wide + 1 + 3 * i, "[],", 3);
        memcpy(flat + 1 + 2 * i, "1,", 2);
    }
    wide[3 * n] = ']'; /* the last comma */
    wide[3 * n + 1] = '\0';
    flat[2 * n] = ']';
    flat[2 * n + 1] = '\0';
    /* 1 outer + 1000 inner arrays + 999 commas */
    ck_assert_int_eq(scan(wide, 2000, 8, &end), 0);
    ck_assert_int_eq(scan(wide, 1999, 8, &end), -E2BIG);
    ck_assert_str_eq(err, "more than 1999 JSON values");
    wide[3 * n] = '\0'; /* cut: still refused */
    ck_assert_int_eq(scan(wide, 1999, 8, &end), -E2BIG);
    ck_assert_int_eq(scan(flat, 1000, 8, &end), 0);
    ck_assert_int_eq(scan(flat, 999, 8, &end), -E2BIG);
    free(wide);
    free(flat);
}
END_TEST

START_TEST(depth_bounded)
{
    size_t end = 0;

    ck_assert_int_eq(scan("[[[{\"a\":[]}]]]", 100, 5, &end), 0);
    ck_assert_int_eq(scan("[[[{\"a\":[[]]}]]]", 100, 5, &end), -E2BIG);
    ck_assert_str_eq(err, "JSON nested deeper than 5");
}
END_TEST

/* The watch stream refuses an event of [[],[],...] under its 8 MiB cap
 * before building it, and says why. */
START_TEST(stream_refuses_wide_event)
{
    const char *head = "{\"type\":\"MODIFIED\",\"object\":{\"endpoints\":[";
    size_t n = 200000, len = 0;
    char *ev = malloc(strlen(head) + 3 * n + 8);
    struct eventstream es;

    ck_assert_ptr_nonnull(ev);
    len += (size_t)sprintf(ev, "%s", head);
    for (size_t i = 0; i < n; i++, len += 3)
        memcpy(ev + len, "[],", 3);
    memcpy(ev + len - 1, "]}}\n", 4);
    len += 3;
    eventstream_init(&es, EVENTSTREAM_MAX_BYTES);
    ck_assert_int_eq(eventstream_feed(&es, ev, len, NULL, NULL), -EMSGSIZE);
    ck_assert_str_eq(es.why, "more than 65536 JSON values");
    eventstream_free(&es);
    free(ev);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("jsonlimit", &tc);

    tcase_add_test(tc, finds_the_end);
    tcase_add_test(tc, incomplete_and_not_a_container);
    tcase_add_test(tc, values_bounded);
    tcase_add_test(tc, depth_bounded);
    tcase_add_test(tc, stream_refuses_wide_event);
    return check_run(s);
}
