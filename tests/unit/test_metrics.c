/* SPDX-License-Identifier: Apache-2.0 */
/* /metrics (proxy/metrics.h): each per-upstream counter lands in its own
 * family and label value. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_run.h"
#include "config.h"
#include "metrics.h"
#include "worker.h"

/* Renders one upstream in the table whose counters all differ. */
static char *render_one(void)
{
    static struct config cfg;
    static struct worker_shared sh;
    struct snapshot_upstream su;
    struct snapshot s;
    struct strbuf b;
    struct addr a;
    const char *why;
    size_t len;
    char *text;

    memset(&s, 0, sizeof(s));
    memset(&su, 0, sizeof(su));
    ck_assert_int_eq(addr_parse("10.0.0.1:6443", -1, &a, &why), 0);
    su.up = upstream_new(&a);
    ck_assert_ptr_nonnull(su.up);
    su.in_table = true;
    atomic_store(&su.up->health, UPSTREAM_HEALTHY);
    atomic_store(&su.up->active, 54);
    atomic_store(&su.up->conns_total, 51);
    atomic_store(&su.up->bytes_to, 52);
    atomic_store(&su.up->bytes_from, 53);
    for (int k = 0; k < UPSTREAM_FAIL_COUNT; k++)
        atomic_store(&su.up->connect_fail[k], 31 + (uint64_t)k);
    atomic_store(&su.up->health_checks[0], 21); /* failed */
    atomic_store(&su.up->health_checks[1], 22); /* passed */
    atomic_store(&su.up->health_checks[2], 23); /* local */
    atomic_store(&su.up->closed_by_health, 11);
    atomic_store(&su.up->closed_by_drain, 12);
    atomic_store(&su.up->closed_unacked, 13);
    atomic_store(&su.up->closed_by_rebalance, 14);
    atomic_store(&su.up->failed_conns[0], 41);
    atomic_store(&su.up->failed_conns[1], 42);
    sh.cfg = &cfg;
    s.n = 1;
    s.u = &su;
    s.sh = &sh;
    strbuf_init(&b);
    metrics_render(&s, 1000, &b);
    text = strbuf_take(&b, &len);
    ck_assert_ptr_nonnull(text);
    upstream_unref(su.up);
    return text;
}

/* The line of text that starts with key[0..n), or NULL. */
static const char *sample_line(const char *text, const char *key, size_t n)
{
    for (const char *line = text; *line != '\0'; line += strcspn(line, "\n") + 1) {
        if (strncmp(line, key, n) == 0)
            return line;
        if (line[strcspn(line, "\n")] == '\0')
            break;
    }
    return NULL;
}

START_TEST(upstream_counters_in_their_samples)
{
    static const char *const want[] = {
        "apilb_upstream_health{upstream=\"10.0.0.1:6443\",state=\"healthy\"} 1\n",
        "apilb_upstream_health{upstream=\"10.0.0.1:6443\",state=\"unknown\"} 0\n",
        "apilb_upstream_usable{upstream=\"10.0.0.1:6443\"} 1\n",
        "apilb_upstream_draining{upstream=\"10.0.0.1:6443\"} 0\n",
        "apilb_upstream_active_connections{upstream=\"10.0.0.1:6443\"} 54\n",
        "apilb_upstream_connections_total{upstream=\"10.0.0.1:6443\"} 51\n",
        "apilb_upstream_sent_bytes_total{upstream=\"10.0.0.1:6443\"} 52\n",
        "apilb_upstream_received_bytes_total{upstream=\"10.0.0.1:6443\"} 53\n",
        "apilb_upstream_connect_failures_total{upstream=\"10.0.0.1:6443\",reason=\"refused\"} 31\n",
        "apilb_upstream_connect_failures_total{upstream=\"10.0.0.1:6443\",reason=\"timeout\"} 32\n",
        "apilb_upstream_connect_failures_total{upstream=\"10.0.0.1:6443\",reason=\"unreachable\"} "
        "33\n",
        "apilb_upstream_connect_failures_total{upstream=\"10.0.0.1:6443\",reason=\"other\"} 34\n",
        "apilb_upstream_connect_failures_total{upstream=\"10.0.0.1:6443\",reason=\"local\"} 35\n",
        "apilb_upstream_health_checks_total{upstream=\"10.0.0.1:6443\",result=\"success\"} 22\n",
        "apilb_upstream_health_checks_total{upstream=\"10.0.0.1:6443\",result=\"failure\"} 21\n",
        "apilb_upstream_health_checks_total{upstream=\"10.0.0.1:6443\",result=\"local_error\"} 23\n",
        "apilb_upstream_closed_connections_total{upstream=\"10.0.0.1:6443\",reason=\"unhealthy\"} "
        "11\n",
        "apilb_upstream_closed_connections_total{upstream=\"10.0.0.1:6443\",reason=\"drained\"} 12\n",
        "apilb_upstream_closed_connections_total{upstream=\"10.0.0.1:6443\",reason=\"unacked\"} 13\n",
        "apilb_upstream_closed_connections_total{upstream=\"10.0.0.1:6443\",reason=\"rebalance\"} "
        "14\n",
        "apilb_upstream_failed_connections_total{upstream=\"10.0.0.1:6443\",phase=\"before_answer\"} "
        "41\n",
        "apilb_upstream_failed_connections_total{upstream=\"10.0.0.1:6443\",phase=\"after_answer\"} "
        "42\n",
    };
    char *text = render_one();

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        /* The sample's line, found by its name and labels, must hold the value. */
        size_t key = (size_t)(strrchr(want[i], ' ') - want[i]) + 1;
        const char *got = sample_line(text, want[i], key);

        ck_assert_msg(got != NULL && strncmp(got, want[i], strlen(want[i])) == 0,
                      "want %.*s, got %.*s", (int)strlen(want[i]) - 1, want[i],
                      got != NULL ? (int)strcspn(got, "\n") : 4, got != NULL ? got : "none");
    }
    free(text);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("metrics", &tc);

    tcase_add_test(tc, upstream_counters_in_their_samples);
    return check_run(s);
}
