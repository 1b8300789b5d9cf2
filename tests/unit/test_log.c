/* SPDX-License-Identifier: Apache-2.0 */
/* Log lines in both formats, escaping, levels and rate limiting
 * (proxy/log.h). */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "check_run.h"

static int fds[2];
static char out[65536];

static void setup(void)
{
    ck_assert_int_eq(pipe2(fds, O_NONBLOCK), 0);
    log_set_fd(fds[1]);
}

static void teardown(void)
{
    log_set_fd(2);
    close(fds[0]);
    close(fds[1]);
}

/* Everything logged since the last call. */
static const char *drain(void)
{
    ssize_t n = read(fds[0], out, sizeof(out) - 1);

    out[n > 0 ? n : 0] = '\0';
    return out;
}

START_TEST(text_is_logfmt)
{
    const char *s;

    log_setup(LOG_INFO, LOG_FORMAT_TEXT);
    log_info("upstream added", "upstream=%s err=\"%s\"", "10.0.0.1:6443",
             log_quote("a \"quoted\" word"));
    s = drain();
    ck_assert_msg(strncmp(s, "ts=", 3) == 0, "%s", s);
    ck_assert_ptr_nonnull(strstr(s, " level=info "));
    ck_assert_ptr_nonnull(strstr(s, " msg=\"upstream added\""));
    ck_assert_ptr_nonnull(strstr(s, " upstream=10.0.0.1:6443"));
    ck_assert_ptr_nonnull(strstr(s, "err=\"a \\\"quoted\\\" word\""));
    ck_assert_int_eq(s[strlen(s) - 1], '\n');
    ck_assert_ptr_eq(strchr(s, '\n'), s + strlen(s) - 1); /* one line */
}
END_TEST

START_TEST(json_objects)
{
    const char *s;

    log_setup(LOG_INFO, LOG_FORMAT_JSON);
    log_warn("state file ignored", "file=\"%s\" n=%d forged=\"%s\"", "/var/lib/apilb/state\nx", 3,
             log_quote("x\" level=\"error"));
    s = drain();
    ck_assert_msg(s[0] == '{' && strstr(s, "}\n") == s + strlen(s) - 2, "%s", s);
    ck_assert_ptr_nonnull(strstr(s, "\"level\":\"warn\""));
    ck_assert_ptr_nonnull(strstr(s, "\"msg\":\"state file ignored\""));
    ck_assert_ptr_nonnull(strstr(s, "\"file\":\"/var/lib/apilb/state\\nx\""));
    ck_assert_ptr_nonnull(strstr(s, "\"n\":3"));
    /* A quoted value cannot forge another field. */
    ck_assert_ptr_nonnull(strstr(s, "\"forged\":\"x\\\" level=\\\"error\""));
    ck_assert_ptr_null(strstr(s, "\"level\":\"error\""));
    ck_assert_ptr_eq(strchr(s, '\n'), s + strlen(s) - 1);
    log_setup(LOG_INFO, LOG_FORMAT_TEXT);
}
END_TEST

START_TEST(levels_filter)
{
    log_setup(LOG_WARN, LOG_FORMAT_TEXT);
    log_info("hidden", "%s", "");
    log_debug("hidden", "%s", "");
    ck_assert_str_eq(drain(), "");
    ck_assert(!log_enabled(LOG_INFO));
    log_error("shown", "%s", "");
    ck_assert_ptr_nonnull(strstr(drain(), "level=error"));
    log_setup(LOG_INFO, LOG_FORMAT_TEXT);
}
END_TEST

START_TEST(rate_limited)
{
    const char *s;
    int lines = 0;

    log_setup(LOG_INFO, LOG_FORMAT_TEXT);
    for (int i = 0; i < 100; i++)
        log_warn_limited("unit-test-key", 200, "dial failed", "i=%d", i);
    s = drain();
    for (const char *p = s; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    ck_assert_int_eq(lines, 1);
    usleep(250 * 1000);
    log_warn_limited("unit-test-key", 200, "dial failed", "i=%d", 100);
    s = drain();
    ck_assert_msg(strstr(s, "suppressed=99") != NULL, "%s", s);
}
END_TEST

/* A line longer than the buffer is shortened, never cut in the middle of a
 * value (a cut JSON line would not parse). Found by a helper's review. */
START_TEST(long_lines_stay_whole)
{
    char *big = malloc(6001);
    const char *s;
    size_t quotes = 0;

    memset(big, 'x', 6000);
    big[6000] = '\0';
    log_setup(LOG_INFO, LOG_FORMAT_JSON);
    log_info(big, "k=%d v=\"%s\"", 1, big + 3000);
    s = drain();
    ck_assert_msg(s[0] == '{' && strcmp(s + strlen(s) - 2, "}\n") == 0, "%.80s", s);
    ck_assert_ptr_nonnull(strstr(s, "\"truncated\":\"true\""));
    for (const char *p = s; *p; p++)
        quotes += *p == '"' && p[-1] != '\\';
    ck_assert_uint_eq(quotes % 2, 0);
    log_setup(LOG_INFO, LOG_FORMAT_TEXT);
    log_info(big, "k=%d", 1);
    s = drain();
    ck_assert_ptr_nonnull(strstr(s, " truncated=true\n"));
    ck_assert_uint_lt(strlen(s), 400);
    free(big);
}
END_TEST

START_TEST(parse_names)
{
    enum log_level l;
    enum log_format f;

    ck_assert_int_eq(log_level_parse("debug", &l), 0);
    ck_assert_int_eq(l, LOG_DEBUG);
    ck_assert_int_lt(log_level_parse("verbose", &l), 0);
    ck_assert_int_eq(log_format_parse("json", &f), 0);
    ck_assert_int_eq(f, LOG_FORMAT_JSON);
    ck_assert_int_lt(log_format_parse("yaml", &f), 0);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("log", &tc);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, text_is_logfmt);
    tcase_add_test(tc, json_objects);
    tcase_add_test(tc, levels_filter);
    tcase_add_test(tc, rate_limited);
    tcase_add_test(tc, long_lines_stay_whole);
    tcase_add_test(tc, parse_names);
    return check_run(s);
}
