/* SPDX-License-Identifier: Apache-2.0 */
/* Address parsing and formatting (proxy/addr.h). */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "addr.h"
#include "check_run.h"

START_TEST(split_forms)
{
    char host[ADDR_HOST_MAX];
    unsigned port = 0;
    const char *why = NULL;

    ck_assert_int_eq(addr_split("10.0.0.1:6443", -1, host, &port, &why), 0);
    ck_assert_str_eq(host, "10.0.0.1");
    ck_assert_uint_eq(port, 6443);
    ck_assert_int_eq(addr_split("[fd00::1]:443", -1, host, &port, &why), 0);
    ck_assert_str_eq(host, "fd00::1");
    ck_assert_uint_eq(port, 443);
    ck_assert_int_eq(addr_split("cp-1.example.com:6443", -1, host, &port, &why), 0);
    ck_assert_str_eq(host, "cp-1.example.com");
    /* A bare host takes the default port only when one is given. */
    ck_assert_int_eq(addr_split("10.0.0.2", 6443, host, &port, &why), 0);
    ck_assert_uint_eq(port, 6443);
    ck_assert_int_eq(addr_split("10.0.0.2", -1, host, &port, &why), -EINVAL);
    ck_assert_ptr_nonnull(why);
    ck_assert_int_eq(addr_split("[fd00::2]", 6443, host, &port, &why), 0);
    ck_assert_str_eq(host, "fd00::2");
    ck_assert_int_eq(addr_split("fd00::3", 6443, host, &port, &why), 0);
    ck_assert_str_eq(host, "fd00::3");
    ck_assert_uint_eq(port, 6443);
}
END_TEST

START_TEST(split_bad_ports)
{
    static const char *const bad[] = {"10.0.0.1:0",      "10.0.0.1:65536",  "10.0.0.1:",
                                      "10.0.0.1:https",  "10.0.0.1:123456", "10.0.0.1:-1",
                                      "[fd00::1]:99999", "[fd00::1]",       ":443",
                                      "[]:443",          "[fd00::1:443",    ""};
    char host[ADDR_HOST_MAX];
    unsigned port;
    const char *why;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        ck_assert_msg(addr_split(bad[i], -1, host, &port, &why) == -EINVAL, "accepted '%s'",
                      bad[i]);
        ck_assert_msg(why != NULL && why[0] != '\0', "no reason for '%s'", bad[i]);
    }
}
END_TEST

START_TEST(port_zero_only_for_binding)
{
    struct addr a;
    const char *why;

    ck_assert_int_eq(addr_parse("127.0.0.1:0", -1, &a, &why), -EINVAL);
    ck_assert_int_eq(addr_parse("127.0.0.1:0", ADDR_PORT_ZERO_OK, &a, &why), 0);
    ck_assert_uint_eq(addr_port(&a), 0);
    ck_assert_int_eq(addr_parse("[::1]:0", ADDR_PORT_ZERO_OK, &a, &why), 0);
    ck_assert_int_eq(a.ss.ss_family, AF_INET6);
}
END_TEST

START_TEST(too_long_host)
{
    char s[ADDR_HOST_MAX + 32], host[ADDR_HOST_MAX];
    unsigned port;
    const char *why;

    memset(s, 'a', ADDR_HOST_MAX + 10);
    strcpy(s + ADDR_HOST_MAX + 10, ":443");
    ck_assert_int_eq(addr_split(s, -1, host, &port, &why), -EINVAL);
}
END_TEST

START_TEST(parse_needs_numeric)
{
    struct addr a;
    const char *why = NULL;

    ck_assert_int_eq(addr_parse("kubernetes:443", -1, &a, &why), -EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "numeric"));
    ck_assert_int_eq(addr_parse("300.1.1.1:443", -1, &a, &why), -EINVAL);
}
END_TEST

START_TEST(format_round_trip)
{
    static const char *const in[] = {"127.0.0.1:443", "10.255.0.9:6443", "[::1]:443",
                                     "[fd00::1:2]:6443", "[2001:db8::8a2e:370:7334]:1"};
    char buf[ADDR_STRLEN];
    struct addr a, b;
    const char *why;

    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        ck_assert_int_eq(addr_parse(in[i], -1, &a, &why), 0);
        ck_assert_str_eq(addr_format(&a, buf, sizeof(buf)), in[i]);
        ck_assert_int_eq(addr_parse(buf, -1, &b, &why), 0);
        ck_assert_int_eq(addr_cmp(&a, &b), 0);
    }
    /* Non-canonical IPv6 is formatted canonically. */
    ck_assert_int_eq(addr_parse("[fd00:0:0::1]:443", -1, &a, &why), 0);
    ck_assert_str_eq(addr_format(&a, buf, sizeof(buf)), "[fd00::1]:443");
}
END_TEST

START_TEST(compare_orders)
{
    struct addr a, b, c;
    const char *why;

    ck_assert_int_eq(addr_parse("10.0.0.1:443", -1, &a, &why), 0);
    ck_assert_int_eq(addr_parse("10.0.0.1:444", -1, &b, &why), 0);
    ck_assert_int_eq(addr_parse("[::1]:443", -1, &c, &why), 0);
    ck_assert_int_lt(addr_cmp(&a, &b), 0);
    ck_assert_int_gt(addr_cmp(&b, &a), 0);
    ck_assert_int_ne(addr_cmp(&a, &c), 0);
    ck_assert_int_eq(addr_cmp(&a, &a), 0);
    ck_assert(addr_is_loopback(&c));
    ck_assert(!addr_is_loopback(&a));
}
END_TEST

/* A list for messages: separated, and never a torn address at the end. */
START_TEST(join_whole_addresses)
{
    struct addr a[2];
    char buf[ADDR_STRLEN * 3], small[ADDR_STRLEN + 8];

    ck_assert_int_eq(addr_from_ip("10.0.0.1", 6443, &a[0]), 0);
    ck_assert_int_eq(addr_from_ip("fd00::1", 443, &a[1]), 0);
    ck_assert_str_eq(addr_join(a, 2, ", ", buf, sizeof(buf)), "10.0.0.1:6443, [fd00::1]:443");
    ck_assert_str_eq(addr_join(a, 2, ", ", small, sizeof(small)), "10.0.0.1:6443");
    ck_assert_str_eq(addr_join(a, 0, ", ", buf, sizeof(buf)), "");
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("addr", &tc);

    tcase_add_test(tc, split_forms);
    tcase_add_test(tc, split_bad_ports);
    tcase_add_test(tc, port_zero_only_for_binding);
    tcase_add_test(tc, too_long_host);
    tcase_add_test(tc, parse_needs_numeric);
    tcase_add_test(tc, format_round_trip);
    tcase_add_test(tc, compare_orders);
    tcase_add_test(tc, join_whole_addresses);
    return check_run(s);
}
