/* SPDX-License-Identifier: Apache-2.0 */
/* The upstreams file parser and reader (proxy/upfile.h). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "upfile.h"
#include "check_run.h"

static char err[256];

#define PARSE(text, out, max) upfile_parse(text, strlen(text), out, max, err, sizeof(err))

START_TEST(upfile_valid)
{
    struct config_seed s[8];
    const char *text = "# control plane\n"
                       "\n"
                       "10.0.0.1:6443\r\n"
                       "  10.0.0.2:6443   # second\n"
                       "[fd00::3]:6443\n"
                       "cp-4.example.com\n"
                       "10.0.0.1:6443\n" /* duplicate */
                       "10.0.0.5:443";   /* no final newline */

    ck_assert_int_eq(PARSE(text, s, 8), 5);
    ck_assert_str_eq(s[0].host, "10.0.0.1");
    ck_assert_str_eq(s[1].host, "10.0.0.2");
    ck_assert_str_eq(s[2].host, "fd00::3");
    ck_assert_str_eq(s[3].host, "cp-4.example.com");
    ck_assert_uint_eq(s[3].port, UPFILE_DEFAULT_PORT);
    ck_assert_uint_eq(s[4].port, 443);
    ck_assert_int_eq(PARSE("", s, 8), 0);
    ck_assert_int_eq(PARSE("# only comments\n\n", s, 8), 0);
}
END_TEST

START_TEST(upfile_errors_name_the_line)
{
    struct config_seed s[2];

    ck_assert_int_eq(PARSE("10.0.0.1:6443\n10.0.0.2:99999\n", s, 2), -EINVAL);
    ck_assert_msg(strstr(err, "line 2") && strstr(err, "99999"), "%s", err);
    ck_assert_int_eq(PARSE("[fd00::1:6443\n", s, 2), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "line 1"));
    ck_assert_int_eq(PARSE("10.0.0.1:1\n10.0.0.2:2\n10.0.0.3:3\n", s, 2), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "more than 2"));
    ck_assert_int_eq(upfile_parse("10.0.0.1:6443\n1\0.0.0.2:1\n", 25, s, 2, err, sizeof(err)),
                     -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "NUL"));
    {
        char longline[600];

        memset(longline, 'a', sizeof(longline) - 1);
        longline[sizeof(longline) - 1] = '\0';
        ck_assert_int_eq(PARSE(longline, s, 2), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "too long"));
    }
}
END_TEST

START_TEST(upfile_read_files)
{
    struct config_seed s[4];
    char path[] = "/tmp/apilb-upfile-XXXXXX";
    int fd = mkstemp(path);
    FILE *f;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "10.0.0.1:6443\n", 14), 14);
    close(fd);
    ck_assert_int_eq(upfile_read(path, s, 4, err, sizeof(err)), 1);
    /* Larger than the bound: refused, named. */
    f = fopen(path, "w");
    for (unsigned i = 0; i < UPFILE_MAX_BYTES / 16 + 2; i++)
        fputs("# padding......\n", f);
    fclose(f);
    ck_assert_int_eq(upfile_read(path, s, 4, err, sizeof(err)), -EFBIG);
    ck_assert_ptr_nonnull(strstr(err, path));
    unlink(path);
    ck_assert_int_lt(upfile_read(path, s, 4, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "cannot open"));
}

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("upfile", &tc);

    tcase_add_test(tc, upfile_valid);
    tcase_add_test(tc, upfile_errors_name_the_line);
    tcase_add_test(tc, upfile_read_files);
    return check_run(s);
}
