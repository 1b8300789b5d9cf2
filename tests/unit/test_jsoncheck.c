/* SPDX-License-Identifier: Apache-2.0 */
/* The JSON syntax check (proxy/jsoncheck.h) and the status table's cleaning
 * of hostile strings (proxy/statusview.h). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsoncheck.h"
#include "statusview.h"
#include "check_run.h"

static int check_str(const char *s)
{
    char err[128];

    return jsoncheck(s, strlen(s), err, sizeof(err));
}

START_TEST(valid)
{
    static const char *const ok[] = {
        "{}",
        "[]",
        " {\"a\": [1, -2.5e+3, 0, true, false, null, \"x\\n\\u00e9\\\"\"]} \n",
        "\"only a string\"",
        "0",
        "-0.1",
        "[[[[]]]]",
        "{\"k\":{\"k\":{}}}",
        "{\"upstreams\":[{\"address\":\"10.0.0.1:6443\",\"connect_seconds_avg\":null}]}",
    };

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        ck_assert_msg(check_str(ok[i]) == 0, "refused %s", ok[i]);
}
END_TEST

START_TEST(invalid)
{
    static const char *const bad[] = {
        "",
        " ",
        "{",
        "}",
        "[1,]",
        "{\"a\":1,}",
        "{a:1}",
        "{\"a\" 1}",
        "[1 2]",
        "01",
        "1.",
        "-",
        "1e",
        "tru",
        "nul",
        "\"unterminated",
        "\"bad \\x escape\"",
        "\"\\u12\"",
        "\"tab\there\"",
        "{} {}",
        "[\"a\"]]",
        "+1",
        ".5",
        "'single'",
    };
    char err[128];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(check_str(bad[i]) == -EINVAL, "accepted %s", bad[i]);
    /* A NUL byte inside the buffer is not white space nor a value. */
    ck_assert_int_eq(jsoncheck("[1]\0", 4, err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(jsoncheck("[\"a\0b\"]", 7, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "not JSON: a control byte in a string at byte 4");
}
END_TEST

START_TEST(depth_bounded)
{
    char deep[2 * JSONCHECK_MAX_DEPTH + 3], err[128];

    memset(deep, '[', JSONCHECK_MAX_DEPTH);
    memset(deep + JSONCHECK_MAX_DEPTH, ']', JSONCHECK_MAX_DEPTH);
    ck_assert_int_eq(jsoncheck(deep, 2 * JSONCHECK_MAX_DEPTH, err, sizeof(err)), 0);
    memset(deep, '[', JSONCHECK_MAX_DEPTH + 1);
    memset(deep + JSONCHECK_MAX_DEPTH + 1, ']', JSONCHECK_MAX_DEPTH + 1);
    ck_assert_int_eq(jsoncheck(deep, 2 * JSONCHECK_MAX_DEPTH + 2, err, sizeof(err)), -EINVAL);
    ck_assert(strstr(err, "nested too deeply") != NULL);
}
END_TEST

START_TEST(status_table_is_printable)
{
    struct addr a;
    const char *why;
    struct snapshot s;
    struct snapshot_upstream su = {.in_table = true, .sources = UPSTREAM_SRC_DISCOVERED};
    struct strbuf b;
    size_t len;
    char *text;

    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(addr_parse("10.0.0.1:6443", -1, &a, &why), 0);
    su.up = upstream_new(&a);
    /* A reason as an apiserver could make it (its /readyz body). */
    snprintf(su.health_reason, sizeof(su.health_reason), "readyz: \x1b[2J\x1b]0;owned\x07 %s",
             "and a very long tail that does not fit the column at all");
    su.health_since_unix_ms = 1000;
    s.u = &su;
    s.n = 1;
    strbuf_init(&b);
    statusview_render(&s, 5000, 61000, &b);
    text = strbuf_take(&b, &len);
    for (size_t i = 0; i < len; i++)
        ck_assert_msg((text[i] >= 0x20 && text[i] < 0x7f) || text[i] == '\n', "byte %zu is 0x%02x",
                      i, (unsigned char)text[i]);
    ck_assert(strstr(text, "readyz: ?[2J?]0;owned? and a") != NULL);
    ck_assert(strstr(text, "...") != NULL); /* cut to its column */
    ck_assert(strstr(text, " 1m00s ") != NULL);
    ck_assert(strstr(text, "WATCHER  off") != NULL);
    free(text);
    upstream_unref(su.up);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("jsoncheck", &tc);

    tcase_add_test(tc, valid);
    tcase_add_test(tc, invalid);
    tcase_add_test(tc, depth_bounded);
    tcase_add_test(tc, status_table_is_printable);
    return check_run(s);
}
