/* SPDX-License-Identifier: Apache-2.0 */
/* The upstream registry (proxy/registry.h): the rules, one test each. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "registry.h"
#include "check_run.h"

static struct registry *r;
static struct registry_change changes[REGISTRY_MAX];
static struct registry_changes ch = {.c = changes};

static void setup(void)
{
    r = registry_new();
    ck_assert_ptr_nonnull(r);
}

static void teardown(void)
{
    registry_free(r);
}

/* Sets source s to the comma-separated addresses in list ("" for none). */
static void set(enum registry_source s, const char *list)
{
    struct addr a[16];
    char buf[512], *save = NULL;
    size_t n = 0;

    snprintf(buf, sizeof(buf), "%s", list);
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        const char *why;

        ck_assert_int_eq(addr_parse(tok, -1, &a[n++], &why), 0);
    }
    ck_assert_int_eq(registry_set(r, s, a, NULL, n), 0);
}

/* The table as "addr[sources][*fallback] ..." for comparison. */
static const char *table_str(void)
{
    static char out[1024];
    const struct upstream_table *t = registry_table(r);
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; t != NULL && i < t->n; i++) {
        char src[64];

        upstream_sources_format(t->e[i].sources, src, sizeof(src));
        len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s[%s]%s", i ? " " : "",
                                t->e[i].up->name, src, t->e[i].fallback ? "*" : "");
    }
    return out;
}

static struct upstream *registered(const char *name)
{
    size_t n;
    struct upstream *const *ups = registry_upstreams(r, &n);

    for (size_t i = 0; i < n; i++)
        if (strcmp(ups[i]->name, name) == 0)
            return ups[i];
    return NULL;
}

START_TEST(nothing_yet_then_published)
{
    ck_assert_int_eq(registry_rebuild(r, 1000, &ch), REGISTRY_NONE_YET);
    ck_assert_ptr_null(registry_table(r));
    set(REGISTRY_SEEDS, "10.0.0.2:6443,10.0.0.1:6443");
    ck_assert_int_eq(registry_rebuild(r, 1000, &ch), REGISTRY_PUBLISHED);
    ck_assert_str_eq(table_str(), "10.0.0.1:6443[seed] 10.0.0.2:6443[seed]");
    ck_assert_uint_eq(registry_table(r)->generation, 1);
    ck_assert_uint_eq(ch.n, 2);
    ck_assert_int_eq(ch.c[0].kind, REGISTRY_ADDED);
    ck_assert(ch.c[0].is_new && ch.c[1].is_new);
    /* The same sources again: nothing to publish. */
    ck_assert_int_eq(registry_rebuild(r, 2000, &ch), REGISTRY_UNCHANGED);
    ck_assert_uint_eq(ch.n, 0);
    ck_assert_uint_eq(registry_table(r)->generation, 1);
}
END_TEST

START_TEST(seeds_become_fallback)
{
    set(REGISTRY_SEEDS, "10.0.0.1:6443,10.0.0.9:6443");
    ck_assert_int_eq(registry_rebuild(r, 1000, &ch), REGISTRY_PUBLISHED);
    ck_assert_str_eq(table_str(), "10.0.0.1:6443[seed] 10.0.0.9:6443[seed]");
    /* Discovery answers: seeds it does not list are the last resort; the
     * one it lists is a discovered entry that is also a seed. */
    set(REGISTRY_DISCOVERED, "10.0.0.1:6443,10.0.0.2:6443");
    ck_assert_int_eq(registry_rebuild(r, 2000, &ch), REGISTRY_PUBLISHED);
    ck_assert_str_eq(table_str(), "10.0.0.1:6443[seed,discovered] 10.0.0.2:6443[discovered] "
                                  "10.0.0.9:6443[seed]*");
    ck_assert_uint_eq(ch.n, 1);
    ck_assert_str_eq(ch.c[0].up->name, "10.0.0.2:6443");
    ck_assert_int_eq(ch.c[0].kind, REGISTRY_ADDED);
}
END_TEST

START_TEST(state_stands_in_until_discovery)
{
    set(REGISTRY_SEEDS, "10.0.0.9:6443");
    set(REGISTRY_STATE, "10.0.0.1:6443,10.0.0.2:6443");
    ck_assert_int_eq(registry_rebuild(r, 1000, &ch), REGISTRY_PUBLISHED);
    ck_assert_str_eq(table_str(), "10.0.0.1:6443[state] 10.0.0.2:6443[state] 10.0.0.9:6443[seed]*");
    set(REGISTRY_DISCOVERED, "10.0.0.3:6443");
    ck_assert_int_eq(registry_rebuild(r, 2000, &ch), REGISTRY_PUBLISHED);
    ck_assert_str_eq(table_str(), "10.0.0.3:6443[discovered] 10.0.0.9:6443[seed]*");
    ck_assert_uint_eq(ch.n, 3); /* 10.0.0.3 added, 10.0.0.1 and .2 removed */
    ck_assert_uint_ne(atomic_load(&registered("10.0.0.1:6443")->draining_since_ms), 0);
}
END_TEST

START_TEST(empty_set_refused)
{
    set(REGISTRY_FILE, "10.0.0.1:6443");
    ck_assert_int_eq(registry_rebuild(r, 1000, &ch), REGISTRY_PUBLISHED);
    set(REGISTRY_FILE, "");
    ck_assert_int_eq(registry_rebuild(r, 2000, &ch), REGISTRY_EMPTY_REFUSED);
    ck_assert_str_eq(table_str(), "10.0.0.1:6443[file]");
    ck_assert_uint_eq(atomic_load(&registered("10.0.0.1:6443")->draining_since_ms), 0);
}
END_TEST

START_TEST(readded_stops_draining)
{
    struct upstream *a;

    set(REGISTRY_FILE, "10.0.0.1:6443,10.0.0.2:6443");
    ck_assert_int_eq(registry_rebuild(r, 1000, &ch), REGISTRY_PUBLISHED);
    a = registered("10.0.0.2:6443");
    upstream_ref(a); /* a session still on it */
    set(REGISTRY_FILE, "10.0.0.1:6443");
    ck_assert_int_eq(registry_rebuild(r, 2000, &ch), REGISTRY_PUBLISHED);
    ck_assert_uint_eq(ch.n, 1);
    ck_assert_int_eq(ch.c[0].kind, REGISTRY_REMOVED);
    ck_assert_uint_eq(atomic_load(&a->draining_since_ms), 2000);
    set(REGISTRY_FILE, "10.0.0.1:6443,10.0.0.2:6443");
    ck_assert_int_eq(registry_rebuild(r, 3000, &ch), REGISTRY_PUBLISHED);
    ck_assert_uint_eq(ch.n, 1);
    ck_assert_int_eq(ch.c[0].kind, REGISTRY_READDED);
    ck_assert(!ch.c[0].is_new);
    ck_assert_ptr_eq(ch.c[0].up, a); /* the same upstream: its connections and state */
    ck_assert_uint_eq(atomic_load(&a->draining_since_ms), 0);
    upstream_unref(a);
}
END_TEST

START_TEST(drained_pruned_only_when_unheld)
{
    struct upstream *out[4], *a;

    set(REGISTRY_FILE, "10.0.0.1:6443,10.0.0.2:6443");
    ck_assert_int_eq(registry_rebuild(r, 1000, &ch), REGISTRY_PUBLISHED);
    a = registered("10.0.0.2:6443");
    set(REGISTRY_FILE, "10.0.0.1:6443");
    ck_assert_int_eq(registry_rebuild(r, 2000, &ch), REGISTRY_PUBLISHED);
    /* Held by the old table until the workers let it go: not pruned. */
    upstream_ref(a);
    ck_assert_uint_eq(registry_prune(r, out, 4), 0);
    upstream_unref(a);
    /* A session is still open on it: health checks keep following it. */
    atomic_store(&a->active, 1);
    ck_assert_uint_eq(registry_checked(r, out, 4), 2);
    atomic_store(&a->active, 0);
    ck_assert_uint_eq(registry_checked(r, out, 4), 1);
    ck_assert_str_eq(out[0]->name, "10.0.0.1:6443");
    /* Nothing else holds it: pruned, with the registry's reference. */
    ck_assert_uint_eq(registry_prune(r, out, 4), 1);
    ck_assert_ptr_eq(out[0], a);
    ck_assert_ptr_null(registered("10.0.0.2:6443"));
    upstream_unref(out[0]);
    /* The table's entry is never pruned. */
    ck_assert_uint_eq(registry_prune(r, out, 4), 0);
}
END_TEST

START_TEST(full_registry_refuses_and_counts)
{
    static struct addr a[UPSTREAM_MAX];
    struct upstream *held[REGISTRY_MAX];
    size_t n_held = 0, n;
    struct upstream *const *ups;

    /* Two sets of UPSTREAM_MAX whose upstreams stay held (connections open):
     * the registry fills with draining ones. */
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < UPSTREAM_MAX; i++) {
            char s[32];
            const char *why;

            snprintf(s, sizeof(s), "10.%d.%zu.%zu:6443", round, i / 256, i % 256);
            ck_assert_int_eq(addr_parse(s, -1, &a[i], &why), 0);
        }
        ck_assert_int_eq(registry_set(r, REGISTRY_FILE, a, NULL, UPSTREAM_MAX), 0);
        ck_assert_int_eq(registry_rebuild(r, 1000 + round, &ch), REGISTRY_PUBLISHED);
        ck_assert_uint_eq(ch.refused, 0);
        ups = registry_upstreams(r, &n);
        for (size_t i = n_held; i < n; i++)
            upstream_ref(held[n_held++] = ups[i]);
    }
    ck_assert_uint_eq(n_held, REGISTRY_MAX);
    /* A new address finds no room: refused and counted, the table kept. */
    {
        const char *why;
        char name[ADDR_STRLEN];

        ck_assert_int_eq(addr_parse("10.9.9.9:6443", -1, &a[0], &why), 0);
        ck_assert_int_eq(registry_set(r, REGISTRY_FILE, a, NULL, 1), 0);
        ck_assert_int_eq(registry_rebuild(r, 3000, &ch), REGISTRY_EMPTY_REFUSED);
        ck_assert_uint_eq(ch.refused, 1);
        ck_assert_int_eq(ch.first_refused_why, REGISTRY_FULL);
        ck_assert_str_eq(addr_format(&ch.first_refused, name, sizeof(name)), "10.9.9.9:6443");
    }
    /* Once the held ones are let go and pruned, it gets in. */
    for (size_t i = 0; i < n_held; i++)
        upstream_unref(held[i]);
    {
        static struct upstream *out[REGISTRY_MAX];
        size_t pruned = registry_prune(r, out, REGISTRY_MAX);

        ck_assert_uint_eq(pruned, UPSTREAM_MAX); /* the first round; the second is the table */
        for (size_t i = 0; i < pruned; i++)
            upstream_unref(out[i]);
    }
    ck_assert_int_eq(registry_rebuild(r, 4000, &ch), REGISTRY_PUBLISHED);
    ck_assert_str_eq(table_str(), "10.9.9.9:6443[file]");
    ck_assert_uint_eq(ch.refused, 0);
}
END_TEST

START_TEST(oversized_source_refused)
{
    static struct addr a[UPSTREAM_MAX + 1];

    set(REGISTRY_FILE, "10.0.0.1:6443");
    ck_assert_int_eq(registry_set(r, REGISTRY_FILE, a, NULL, UPSTREAM_MAX + 1), -E2BIG);
    ck_assert_uint_eq(registry_source_size(r, REGISTRY_FILE), 1);
}
END_TEST

/* Discovery's zones ride in the table; a zone that changes alone makes a
 * new table (the change detection the zone-aware routing relies on). */
START_TEST(discovered_zones_carried)
{
    struct addr a[2];
    struct zone_info z[2];
    const char *why;
    const struct upstream_table *t;

    memset(z, 0, sizeof(z));
    ck_assert_int_eq(addr_parse("10.0.0.1:6443", -1, &a[0], &why), 0);
    ck_assert_int_eq(addr_parse("10.0.0.2:6443", -1, &a[1], &why), 0);
    snprintf(z[0].name, sizeof(z[0].name), "zone-a");
    snprintf(z[1].name, sizeof(z[1].name), "zone-b");
    set(REGISTRY_FILE, "10.0.0.1:6443");
    ck_assert_int_eq(registry_set(r, REGISTRY_DISCOVERED, a, z, 2), 0);
    ck_assert_int_eq(registry_rebuild(r, 1000, &ch), REGISTRY_PUBLISHED);
    t = registry_table(r);
    ck_assert_str_eq(table_str(), "10.0.0.1:6443[file,discovered] 10.0.0.2:6443[discovered]");
    ck_assert_str_eq(t->e[0].zone.name, "zone-a"); /* the file's entry takes discovery's zone */
    ck_assert_str_eq(t->e[1].zone.name, "zone-b");
    ck_assert_int_eq(registry_rebuild(r, 1001, &ch), REGISTRY_UNCHANGED);
    snprintf(z[1].name, sizeof(z[1].name), "zone-c");
    ck_assert_int_eq(registry_set(r, REGISTRY_DISCOVERED, a, z, 2), 0);
    ck_assert_int_eq(registry_rebuild(r, 1002, &ch), REGISTRY_PUBLISHED);
    ck_assert_uint_eq(ch.n, 0); /* no upstream came or went */
    ck_assert_str_eq(registry_table(r)->e[1].zone.name, "zone-c");
    /* Without zones the discovered entries have none. */
    ck_assert_int_eq(registry_set(r, REGISTRY_DISCOVERED, a, NULL, 2), 0);
    ck_assert_int_eq(registry_rebuild(r, 1003, &ch), REGISTRY_PUBLISHED);
    ck_assert_str_eq(registry_table(r)->e[0].zone.name, "");
}
END_TEST

/* A table of UPSTREAM_MAX refuses the next address as "table full", apart
 * from a full registry, so the log line can say which limit was hit. */
START_TEST(full_table_refusal_named)
{
    static struct addr a[UPSTREAM_MAX];
    char name[ADDR_STRLEN];

    for (size_t i = 0; i < UPSTREAM_MAX; i++) {
        char s[32];
        const char *why;

        snprintf(s, sizeof(s), "10.1.%zu.%zu:6443", i / 256, i % 256);
        ck_assert_int_eq(addr_parse(s, -1, &a[i], &why), 0);
    }
    ck_assert_int_eq(registry_set(r, REGISTRY_FILE, a, NULL, UPSTREAM_MAX), 0);
    set(REGISTRY_DISCOVERED, "10.2.0.1:6443");
    ck_assert_int_eq(registry_rebuild(r, 1000, &ch), REGISTRY_PUBLISHED);
    ck_assert_uint_eq(registry_table(r)->n, UPSTREAM_MAX);
    ck_assert_uint_eq(ch.refused, 1);
    ck_assert_int_eq(ch.first_refused_why, REGISTRY_TABLE_FULL);
    ck_assert_str_eq(addr_format(&ch.first_refused, name, sizeof(name)), "10.2.0.1:6443");
}
END_TEST

/* The registry owns its sources: registry_set copies the addresses (the
 * caller's array may change at once), replaces that source alone, and
 * every source stays as set until it is set again, so a caller sets only
 * what changed before a rebuild. */
START_TEST(sources_kept_until_set_again)
{
    struct addr a[2];
    const char *why;

    set(REGISTRY_SEEDS, "10.0.0.9:6443");
    set(REGISTRY_FILE, "10.0.0.1:6443");
    ck_assert_int_eq(registry_rebuild(r, 1000, &ch), REGISTRY_PUBLISHED);
    ck_assert_str_eq(table_str(), "10.0.0.1:6443[file] 10.0.0.9:6443[seed]");
    ck_assert_int_eq(addr_parse("10.0.0.2:6443", -1, &a[0], &why), 0);
    ck_assert_int_eq(registry_set(r, REGISTRY_DISCOVERED, a, NULL, 1), 0);
    ck_assert_int_eq(addr_parse("10.0.0.7:6443", -1, &a[0], &why), 0); /* the caller's again */
    ck_assert_int_eq(registry_rebuild(r, 2000, &ch), REGISTRY_PUBLISHED);
    ck_assert_str_eq(table_str(),
                     "10.0.0.1:6443[file] 10.0.0.2:6443[discovered] 10.0.0.9:6443[seed]*");
    /* The file emptied: discovery's set and the seeds stay. */
    set(REGISTRY_FILE, "");
    ck_assert_int_eq(registry_rebuild(r, 3000, &ch), REGISTRY_PUBLISHED);
    ck_assert_str_eq(table_str(), "10.0.0.2:6443[discovered] 10.0.0.9:6443[seed]*");
    ck_assert_uint_eq(registry_source_size(r, REGISTRY_SEEDS), 1);
    ck_assert_uint_eq(registry_source_size(r, REGISTRY_FILE), 0);
    ck_assert_uint_eq(registry_source_size(r, REGISTRY_DISCOVERED), 1);
    ck_assert_uint_eq(registry_source_size(r, REGISTRY_STATE), 0);
    /* Nothing set since: the same table. */
    ck_assert_int_eq(registry_rebuild(r, 4000, &ch), REGISTRY_UNCHANGED);
}
END_TEST

/* A refused set leaves the source's last one in force for the rebuild. */
START_TEST(refused_set_keeps_table)
{
    static struct addr a[UPSTREAM_MAX + 1];

    set(REGISTRY_DISCOVERED, "10.0.0.1:6443,10.0.0.2:6443");
    ck_assert_int_eq(registry_rebuild(r, 1000, &ch), REGISTRY_PUBLISHED);
    ck_assert_int_eq(registry_set(r, REGISTRY_DISCOVERED, a, NULL, UPSTREAM_MAX + 1), -E2BIG);
    ck_assert_int_eq(registry_rebuild(r, 2000, &ch), REGISTRY_UNCHANGED);
    ck_assert_str_eq(table_str(), "10.0.0.1:6443[discovered] 10.0.0.2:6443[discovered]");
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("registry", &tc);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, nothing_yet_then_published);
    tcase_add_test(tc, seeds_become_fallback);
    tcase_add_test(tc, state_stands_in_until_discovery);
    tcase_add_test(tc, empty_set_refused);
    tcase_add_test(tc, readded_stops_draining);
    tcase_add_test(tc, drained_pruned_only_when_unheld);
    tcase_add_test(tc, full_registry_refuses_and_counts);
    tcase_add_test(tc, oversized_source_refused);
    tcase_add_test(tc, discovered_zones_carried);
    tcase_add_test(tc, full_table_refusal_named);
    tcase_add_test(tc, sources_kept_until_set_again);
    tcase_add_test(tc, refused_set_keeps_table);
    return check_run(s);
}
