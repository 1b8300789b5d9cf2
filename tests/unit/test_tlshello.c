/* SPDX-License-Identifier: Apache-2.0 */
/* tlshello: only the start of a ClientHello counts as replayable. */
#include <check.h>
#include <stddef.h>
#include <string.h>

#include "check_run.h"
#include "tlshello.h"

/* A ClientHello of body_len bytes in one record (body bytes are filler). */
static size_t hello(unsigned char *p, size_t body_len)
{
    size_t rec = 4 + body_len;

    p[0] = 22, p[1] = 3, p[2] = 1, p[3] = (unsigned char)(rec >> 8), p[4] = (unsigned char)rec;
    p[5] = 1, p[6] = 0, p[7] = (unsigned char)(body_len >> 8), p[8] = (unsigned char)body_len;
    memset(p + 9, 0x42, body_len);
    return 5 + rec;
}

/* Every prefix of a ClientHello is replayable, the empty one too. */
START_TEST(every_prefix_of_a_hello)
{
    unsigned char p[600];
    size_t n = hello(p, 500);

    for (size_t i = 0; i <= n; i++)
        ck_assert_msg(tlshello_prefix(p, i), "prefix of %zu bytes refused", i);
}
END_TEST

/* A ClientHello split over two records is still one. */
START_TEST(hello_across_records)
{
    unsigned char p[700], q[720];
    size_t n = hello(p, 500), first = 100;

    /* record 1: header + p[5..5+first), record 2: header + the rest. */
    memcpy(q, p, 5 + first);
    q[3] = 0, q[4] = (unsigned char)first;
    memcpy(q + 5 + first, p, 5);
    q[5 + first + 3] = (unsigned char)((n - 5 - first) >> 8);
    q[5 + first + 4] = (unsigned char)(n - 5 - first);
    memcpy(q + 10 + first, p + 5 + first, n - 5 - first);
    ck_assert(tlshello_prefix(q, n + 5));
}
END_TEST

/* Plaintext, bytes after the hello, other record types, other handshake
 * messages and bad record headers are not replayable. */
START_TEST(anything_else_is_not)
{
    unsigned char p[700];
    size_t n = hello(p, 500);
    static const unsigned char early_data[] = {23, 3, 3, 0, 5, 1, 2, 3, 4, 5};
    static const unsigned char ccs[] = {20, 3, 3, 0, 1, 1};

    ck_assert(!tlshello_prefix((const unsigned char *)"GET / HTTP/1.1\r\n", 16));
    ck_assert(!tlshello_prefix((const unsigned char *)"P", 1));
    memcpy(p + n, early_data, sizeof(early_data));
    ck_assert(!tlshello_prefix(p, n + sizeof(early_data)));
    ck_assert(!tlshello_prefix(p, n + 1)); /* the start of that record already */
    memcpy(p + n, ccs, sizeof(ccs));
    ck_assert(!tlshello_prefix(p, n + sizeof(ccs)));
    /* A second handshake message in the same record. */
    n = hello(p, 500);
    p[4] = (unsigned char)(p[4] + 4);
    memcpy(p + n, "\x10\x00\x00\x00", 4);
    ck_assert(!tlshello_prefix(p, n + 4));
    n = hello(p, 500);
    p[5] = 2; /* ServerHello */
    ck_assert(!tlshello_prefix(p, n));
    n = hello(p, 500);
    p[1] = 2; /* SSL 2-era version */
    ck_assert(!tlshello_prefix(p, 2));
    p[1] = 3, p[2] = 9;
    ck_assert(!tlshello_prefix(p, 3));
    p[2] = 1, p[3] = 0x50; /* 20 KiB record */
    ck_assert(!tlshello_prefix(p, n));
    p[3] = 0, p[4] = 0; /* empty record */
    ck_assert(!tlshello_prefix(p, 5));
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("tlshello", &tc);

    tcase_add_test(tc, every_prefix_of_a_hello);
    tcase_add_test(tc, hello_across_records);
    tcase_add_test(tc, anything_else_is_not);
    return check_run(s);
}
