/* SPDX-License-Identifier: Apache-2.0 */
/* nodezone: the node's zone label from a Node object, bounded. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_run.h"
#include "nodezone.h"

static char err[256];
static char zone[ZONE_NAME_MAX + 1];

static int parse(const char *s)
{
    err[0] = '\0';
    return nodezone_parse(s, strlen(s), zone, err, sizeof(err));
}

/* The label of a Node as the API returns it. */
START_TEST(reads_the_label)
{
    ck_assert_int_eq(parse("{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"n\","
                           "\"labels\":{\"kubernetes.io/hostname\":\"n\","
                           "\"topology.kubernetes.io/zone\":\"eu-west-1a\"}},\"status\":{}}"),
                     0);
    ck_assert_str_eq(zone, "eu-west-1a");
}
END_TEST

/* No labels, no zone label, an empty one: -ENOENT and no zone. */
START_TEST(missing_label)
{
    ck_assert_int_eq(parse("{\"kind\":\"Node\",\"metadata\":{\"name\":\"n\"}}"), -ENOENT);
    ck_assert_str_eq(zone, "");
    ck_assert_str_eq(err, "the node has no label topology.kubernetes.io/zone");
    ck_assert_int_eq(parse("{\"kind\":\"Node\",\"metadata\":{\"labels\":{\"a\":\"b\"}}}"), -ENOENT);
    ck_assert_int_eq(
        parse(
            "{\"kind\":\"Node\",\"metadata\":{\"labels\":{\"topology.kubernetes.io/zone\":\"\"}}}"),
        -ENOENT);
}
END_TEST

/* Not a Node, not JSON, a label that is no label value: -EINVAL, named. */
START_TEST(bad_bodies)
{
    ck_assert_int_eq(parse("{\"kind\":\"Status\",\"code\":403}"), -EINVAL);
    ck_assert_str_eq(err, "the answer is not a Node object (kind Status)");
    ck_assert_int_eq(parse("<html>"), -EINVAL);
    ck_assert_str_eq(err, "the answer is not a JSON object");
    ck_assert_int_eq(parse("{\"kind\":\"Node\",,}"), -EINVAL);
    ck_assert_int_eq(
        parse("{\"kind\":\"Node\",\"metadata\":{\"labels\":{\"topology.kubernetes.io/zone\":7}}}"),
        -EINVAL);
    ck_assert_str_eq(err, "label topology.kubernetes.io/zone is not a string");
    ck_assert_int_eq(parse("{\"kind\":\"Node\",\"metadata\":{\"labels\":{"
                           "\"topology.kubernetes.io/zone\":\"a/../b\"}}}"),
                     -EINVAL);
    ck_assert_str_eq(err, "label topology.kubernetes.io/zone is not a label value");
    ck_assert_str_eq(zone, "");
}
END_TEST

/* A body that would build a huge tree is refused before it is built. */
START_TEST(huge_tree_refused)
{
    const char *head = "{\"kind\":\"Node\",\"status\":{\"images\":[";
    size_t n = 100000, len = 0;
    char *b = malloc(strlen(head) + 3 * n + 8);

    ck_assert_ptr_nonnull(b);
    len += (size_t)sprintf(b, "%s", head);
    for (size_t i = 0; i < n; i++, len += 3)
        memcpy(b + len, "[],", 3);
    memcpy(b + len - 1, "]}}", 4);
    len += 2;
    ck_assert_int_eq(nodezone_parse(b, len, zone, err, sizeof(err)), -E2BIG);
    ck_assert_str_eq(err, "more than 65536 JSON values");
    free(b);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("nodezone", &tc);

    tcase_add_test(tc, reads_the_label);
    tcase_add_test(tc, missing_label);
    tcase_add_test(tc, bad_bodies);
    tcase_add_test(tc, huge_tree_refused);
    return check_run(s);
}
