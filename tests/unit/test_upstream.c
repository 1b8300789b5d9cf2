/* SPDX-License-Identifier: Apache-2.0 */
/* Upstream tables and the balancing algorithms (proxy/upstream.h). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "resolve.h"
#include "upstream.h"
#include "check_run.h"

#define N 3

static struct upstream *ups[N + 1];
static struct upstream_table *t;

static void setup(void)
{
    struct upstream_entry e[N + 1];
    /* Given out of order: the table sorts them. */
    static const char *const addrs[] = {"10.0.0.3:6443", "10.0.0.1:6443", "10.0.0.2:6443",
                                        "10.0.0.9:6443"};

    for (int i = 0; i <= N; i++) {
        struct addr a;
        const char *why;

        ck_assert_int_eq(addr_parse(addrs[i], -1, &a, &why), 0);
        ups[i] = upstream_new(&a);
        e[i].up = ups[i];
        e[i].sources = UPSTREAM_SRC_SEED;
        e[i].fallback = i == N; /* 10.0.0.9 is a last-resort seed */
    }
    t = upstream_table_new(e, N + 1, 7);
    ck_assert_ptr_nonnull(t);
}

static void teardown(void)
{
    upstream_table_unref(t);
    for (int i = 0; i <= N; i++)
        upstream_unref(ups[i]);
}

static int idx_of(const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->e[i].up->name, name) == 0)
            return (int)i;
    return -1;
}

START_TEST(table_sorted_and_refcounted)
{
    ck_assert_uint_eq(t->n, 4);
    ck_assert_uint_eq(t->generation, 7);
    ck_assert_str_eq(t->e[0].up->name, "10.0.0.1:6443");
    ck_assert_str_eq(t->e[3].up->name, "10.0.0.9:6443");
    ck_assert_uint_eq(atomic_load(&ups[0]->refs), 2); /* ours + the table's */
    upstream_table_ref(t);
    upstream_table_unref(t);
    ck_assert_uint_eq(atomic_load(&ups[0]->refs), 2);
    ck_assert_int_eq(upstream_table_find(t, &ups[2]->addr), 1);
    struct addr other;
    const char *why;
    ck_assert_int_eq(addr_parse("10.0.0.4:6443", -1, &other, &why), 0);
    ck_assert_int_eq(upstream_table_find(t, &other), -1);
}
END_TEST

START_TEST(least_conn_takes_minimum)
{
    struct upstream_picker p;

    upstream_picker_init(&p, UPSTREAM_BALANCE_LEAST_CONN, 42);
    atomic_store(&t->e[0].up->active, 5);
    atomic_store(&t->e[1].up->active, 1);
    atomic_store(&t->e[2].up->active, 3);
    for (int i = 0; i < 50; i++) {
        struct upstream_tried tried = {0, 0};

        ck_assert_int_eq(upstream_pick(&p, t, &tried, 0), 1);
    }
}
END_TEST

START_TEST(least_conn_ties_random)
{
    struct upstream_picker p;
    int seen[4] = {0};

    upstream_picker_init(&p, UPSTREAM_BALANCE_LEAST_CONN, 42);
    for (int i = 0; i < 3000; i++) {
        struct upstream_tried tried = {0, 0};
        long k = upstream_pick(&p, t, &tried, 0);

        ck_assert(k >= 0 && k < 3);
        seen[k]++;
    }
    for (int k = 0; k < 3; k++)
        ck_assert_msg(seen[k] > 800 && seen[k] < 1200, "tie share %d of 3000 for %d", seen[k], k);
    ck_assert_int_eq(seen[3], 0); /* the fallback is never picked while primaries work */
}
END_TEST

START_TEST(round_robin_cycles)
{
    struct upstream_picker p;
    long first, prev;

    upstream_picker_init(&p, UPSTREAM_BALANCE_ROUND_ROBIN, 1);
    {
        struct upstream_tried tried = {0, 0};
        first = prev = upstream_pick(&p, t, &tried, 0);
    }
    for (int i = 1; i < 30; i++) {
        struct upstream_tried tried = {0, 0};
        long k = upstream_pick(&p, t, &tried, 0);

        ck_assert_int_eq(k, (prev + 1) % 3);
        prev = k;
    }
    ck_assert(first >= 0 && first < 3);
}
END_TEST

START_TEST(random_covers_all)
{
    struct upstream_picker p;
    int seen[4] = {0};

    upstream_picker_init(&p, UPSTREAM_BALANCE_RANDOM, 9);
    atomic_store(&t->e[0].up->active, 100); /* random ignores load */
    for (int i = 0; i < 3000; i++) {
        struct upstream_tried tried = {0, 0};

        seen[upstream_pick(&p, t, &tried, 0)]++;
    }
    for (int k = 0; k < 3; k++)
        ck_assert_msg(seen[k] > 800 && seen[k] < 1200, "random share %d for %d", seen[k], k);
}
END_TEST

START_TEST(tried_never_repeats_then_all_once)
{
    for (int algo = 0; algo < 3; algo++) {
        struct upstream_picker p;
        struct upstream_tried tried = {0, 0};
        int seen[4] = {0};

        upstream_picker_init(&p, (enum upstream_balance)algo, 5);
        for (int i = 0; i < 4; i++) {
            long k = upstream_pick(&p, t, &tried, 0);

            ck_assert(k >= 0);
            seen[k]++;
        }
        for (int k = 0; k < 4; k++)
            ck_assert_int_eq(seen[k], 1);
        ck_assert_int_eq(upstream_pick(&p, t, &tried, 0), -1);
        ck_assert_uint_eq(tried.count, 4);
    }
}
END_TEST

START_TEST(passes_skip_unusable_then_fallback_then_any)
{
    struct upstream_picker p;
    struct upstream_tried tried = {0, 0};
    int a1 = idx_of("10.0.0.1:6443"), a2 = idx_of("10.0.0.2:6443"), a3 = idx_of("10.0.0.3:6443");
    int fb = idx_of("10.0.0.9:6443");

    upstream_picker_init(&p, UPSTREAM_BALANCE_ROUND_ROBIN, 3);
    atomic_store(&t->e[a1].up->health, UPSTREAM_UNHEALTHY);
    upstream_dial_failed(t->e[a2].up, UPSTREAM_FAIL_REFUSED, 1000, 2000);
    atomic_store(&t->e[a3].up->draining_since_ms, 1);
    ck_assert(!upstream_usable(t->e[a2].up, 2999));
    ck_assert(upstream_usable(t->e[a2].up, 3000)); /* the hold expires */
    ck_assert_uint_eq(atomic_load(&t->e[a2].up->connect_fail[UPSTREAM_FAIL_REFUSED]), 1);
    /* Nothing primary is usable: the fallback seed first, then everything. */
    ck_assert_int_eq(upstream_pick(&p, t, &tried, 2000), fb);
    ck_assert_uint_eq(upstream_table_usable(t, 2000), 1);
    for (int i = 0; i < 3; i++)
        ck_assert_int_ne(upstream_pick(&p, t, &tried, 2000), -1);
    ck_assert_int_eq(upstream_pick(&p, t, &tried, 2000), -1);
    /* Once the primary recovers it wins over the fallback again. */
    atomic_store(&t->e[a1].up->health, UPSTREAM_HEALTHY);
    {
        struct upstream_tried fresh = {0, 0};
        ck_assert_int_eq(upstream_pick(&p, t, &fresh, 2000), a1);
    }
    upstream_dial_ok(t->e[a2].up, 1500);
    ck_assert(upstream_usable(t->e[a2].up, 2000)); /* a good dial ends the hold */
    ck_assert_uint_eq(atomic_load(&t->e[a2].up->conns_total), 1);
    ck_assert_uint_eq(atomic_load(&t->e[a2].up->connect_latency[2]), 1); /* 1.5 ms bucket */
}
END_TEST

START_TEST(empty_table)
{
    struct upstream_picker p;
    struct upstream_tried tried = {0, 0};
    struct upstream_table *e = upstream_table_new(NULL, 0, 1);

    upstream_picker_init(&p, UPSTREAM_BALANCE_LEAST_CONN, 1);
    ck_assert_int_eq(upstream_pick(&p, e, &tried, 0), -1);
    ck_assert_int_eq(upstream_pick(&p, NULL, &tried, 0), -1);
    upstream_table_unref(e);
}
END_TEST

/* The watcher's route: usable and not the one to avoid, rotating with the
 * attempt; then usable; then anything; nothing without a table. */
START_TEST(route_avoids_then_usable_then_any)
{
    struct addr out, avoid;
    char name[ADDR_STRLEN];
    int a1 = idx_of("10.0.0.1:6443"), a2 = idx_of("10.0.0.2:6443");
    bool seen[N + 1] = {false};

    avoid = t->e[a1].up->addr;
    for (unsigned attempt = 0; attempt < 8; attempt++) {
        ck_assert_int_eq(upstream_route(t, attempt, &avoid, 5000, &out), 0);
        ck_assert_int_ne(addr_cmp(&out, &avoid), 0);
        seen[upstream_table_find(t, &out)] = true;
    }
    ck_assert(seen[a2] && seen[idx_of("10.0.0.3:6443")] && seen[idx_of("10.0.0.9:6443")]);
    /* The second rotates too: the same attempt a second later moves on. */
    ck_assert_int_eq(upstream_route(t, 0, &avoid, 5000, &out), 0);
    {
        struct addr later;

        ck_assert_int_eq(upstream_route(t, 0, &avoid, 6000, &later), 0);
        ck_assert_int_ne(addr_cmp(&out, &later), 0);
    }
    /* Only the avoided one is usable: it is taken rather than nothing. */
    for (size_t i = 0; i < t->n; i++)
        if ((int)i != a1)
            atomic_store(&t->e[i].up->health, UPSTREAM_UNHEALTHY);
    ck_assert_int_eq(upstream_route(t, 3, &avoid, 5000, &out), 0);
    ck_assert_str_eq(addr_format(&out, name, sizeof(name)), "10.0.0.1:6443");
    /* None usable: any entry, unhealthy or not. */
    atomic_store(&t->e[a1].up->draining_since_ms, 1);
    ck_assert_int_eq(upstream_route(t, 0, NULL, 5000, &out), 0);
    ck_assert_int_ge(upstream_table_find(t, &out), 0);
    ck_assert_int_eq(upstream_route(NULL, 0, NULL, 5000, &out), -ENOENT);
    {
        struct upstream_table *e = upstream_table_new(NULL, 0, 1);

        ck_assert_int_eq(upstream_route(e, 0, &avoid, 5000, &out), -ENOENT);
        upstream_table_unref(e);
    }
}
END_TEST

/* A seed whose addresses do not all fit is refused with a sentence naming
 * the bound, and adds none of them; a duplicate still fits. */
START_TEST(resolve_seed_refuses_over_max)
{
    static const char *const ips[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3"};
    struct config_seed sd = {.port = 6443};
    struct addr out[2];
    size_t n = 0;
    char err[128] = "";

    for (int i = 0; i < 2; i++) {
        snprintf(sd.host, sizeof(sd.host), "%s", ips[i]);
        ck_assert_int_eq(resolve_seed(&sd, out, 2, &n, err, sizeof(err)), 0);
    }
    snprintf(sd.host, sizeof(sd.host), "%s", ips[2]);
    ck_assert_int_eq(resolve_seed(&sd, out, 2, &n, err, sizeof(err)), -E2BIG);
    ck_assert_msg(strstr(err, "10.0.0.3") != NULL && strstr(err, "2 of an address set") != NULL,
                  "%s", err);
    ck_assert_uint_eq(n, 2);
    snprintf(sd.host, sizeof(sd.host), "%s", ips[0]);
    ck_assert_int_eq(resolve_seed(&sd, out, 2, &n, err, sizeof(err)), 0);
    ck_assert_uint_eq(n, 2);
}
END_TEST

/* An upstream just back (slow start at its floor, 5 %) with no connections,
 * the others with 100 each: least-conn alone gives it every new connection;
 * in slow start it takes about its weight's share of them. */
START_TEST(slow_start_bounds_share_of_empty_upstream)
{
    struct upstream_picker p;
    unsigned got = 0, passed;

    upstream_picker_init(&p, UPSTREAM_BALANCE_LEAST_CONN, 42);
    p.slow_start_ms = 10000;
    atomic_store(&t->e[1].up->active, 100);
    atomic_store(&t->e[2].up->active, 100);
    atomic_store(&t->e[0].up->ramp_from_ms, 5000);
    for (int k = 0; k < 2000; k++) {
        struct upstream_tried tried = {0};

        got += upstream_pick(&p, t, &tried, 5000) == 0;
    }
    passed = (unsigned)atomic_load(&t->e[0].up->slow_start_passed);
    ck_assert_uint_gt(got, 50); /* 5 % of 2000 = 100 */
    ck_assert_uint_lt(got, 160);
    ck_assert_uint_eq(passed, 2000 - got);
    /* At full weight (the ramp over), least-conn alone again. */
    got = 0;
    for (int k = 0; k < 100; k++) {
        struct upstream_tried tried = {0};

        got += upstream_pick(&p, t, &tried, 15000) == 0;
    }
    ck_assert_uint_eq(got, 100);
    /* Off (--slow-start 0): every one. */
    p.slow_start_ms = 0;
    got = 0;
    for (int k = 0; k < 100; k++) {
        struct upstream_tried tried = {0};

        got += upstream_pick(&p, t, &tried, 5000) == 0;
    }
    ck_assert_uint_eq(got, 100);
}
END_TEST

/* The only usable one takes every connection, in slow start or not; and a
 * retry after the others failed reaches it too. */
START_TEST(slow_start_yields_when_only_usable)
{
    struct upstream_picker p;
    struct upstream_tried tried = {0};

    upstream_picker_init(&p, UPSTREAM_BALANCE_LEAST_CONN, 7);
    p.slow_start_ms = 10000;
    atomic_store(&t->e[0].up->ramp_from_ms, 5000);
    atomic_store(&t->e[1].up->health, UPSTREAM_UNHEALTHY);
    atomic_store(&t->e[2].up->health, UPSTREAM_UNHEALTHY);
    for (int k = 0; k < 100; k++) {
        struct upstream_tried fresh = {0};

        ck_assert_int_eq(upstream_pick(&p, t, &fresh, 5000), 0);
    }
    atomic_store(&t->e[1].up->health, UPSTREAM_HEALTHY);
    tried.mask = 1ull << 1; /* 10.0.0.2 tried and failed */
    tried.count = 1;
    ck_assert_int_eq(upstream_pick(&p, t, &tried, 5000), 0);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("upstream", &tc);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, table_sorted_and_refcounted);
    tcase_add_test(tc, resolve_seed_refuses_over_max);
    tcase_add_test(tc, least_conn_takes_minimum);
    tcase_add_test(tc, least_conn_ties_random);
    tcase_add_test(tc, round_robin_cycles);
    tcase_add_test(tc, random_covers_all);
    tcase_add_test(tc, tried_never_repeats_then_all_once);
    tcase_add_test(tc, passes_skip_unusable_then_fallback_then_any);
    tcase_add_test(tc, empty_table);
    tcase_add_test(tc, route_avoids_then_usable_then_any);
    tcase_add_test(tc, slow_start_bounds_share_of_empty_upstream);
    tcase_add_test(tc, slow_start_yields_when_only_usable);
    return check_run(s);
}
