/* SPDX-License-Identifier: Apache-2.0 */
/* The state file's writer (proxy/statesave.h): what it notes, that it
 * writes on libuv's pool with a real loop, and what a failure leaves. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "check_run.h"
#include "registry.h"
#include "statefile.h"
#include "statesave.h"

static char dir[] = "/tmp/apilb-statesave-XXXXXX";
static char path[300];
static uv_loop_t loop;
static uv_mutex_t lock;
static struct statesave s;
static struct registry *r;
static struct registry_change changes[REGISTRY_MAX];
static struct registry_changes ch = {.c = changes};

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/apilb-statesave-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/state", dir);
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    uv_mutex_init(&lock);
    r = registry_new();
    ck_assert_ptr_nonnull(r);
}

static void teardown(void)
{
    statesave_fini(&s);
    registry_free(r);
    uv_mutex_destroy(&lock);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    unlink(path);
    rmdir(dir);
}

/* Sets source src to list (comma-separated) and returns the rebuilt table. */
static const struct upstream_table *table(enum registry_source src, const char *list)
{
    struct addr a[8];
    char buf[256], *save = NULL;
    size_t n = 0;

    snprintf(buf, sizeof(buf), "%s", list);
    for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        const char *why;

        ck_assert_int_eq(addr_parse(t, -1, &a[n++], &why), 0);
    }
    ck_assert_int_eq(registry_set(r, src, a, NULL, n), 0);
    (void)registry_rebuild(r, 1000, &ch);
    return registry_table(r);
}

/* The file as one line, "" when missing. */
static const char *file_str(void)
{
    static char out[512];
    struct addr a[8];
    char err[256];
    int n = statefile_read(path, a, 8, err, sizeof(err));
    size_t len = 0;

    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        char name[ADDR_STRLEN];

        len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s", i ? " " : "",
                                addr_format(&a[i], name, sizeof(name)));
    }
    return out;
}

START_TEST(only_learned_changes_noted)
{
    ck_assert_int_eq(statesave_init(&s, path, &loop, &lock), 0);
    statesave_note(&s, table(REGISTRY_SEEDS, "10.0.0.9:6443"));
    ck_assert(!s.has_next); /* seeds are configuration, not learned */
    statesave_note(&s, table(REGISTRY_FILE, "10.0.0.1:6443"));
    ck_assert(s.has_next);
    ck_assert_uint_eq(s.n_next, 1);
    ck_assert_uint_eq(s.n_queued, 1);
    statesave_note(&s, registry_table(r)); /* the same learned part again */
    ck_assert(!s.has_next);
}
END_TEST

START_TEST(written_on_the_pool)
{
    ck_assert_int_eq(statesave_init(&s, path, &loop, &lock), 0);
    statesave_note(&s, table(REGISTRY_DISCOVERED, "10.0.0.2:6443,10.0.0.1:6443"));
    statesave_flush(&s);
    ck_assert(s.busy);
    ck_assert_str_eq(file_str(), ""); /* not on the caller's thread */
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert(!s.busy);
    ck_assert_str_eq(file_str(), "10.0.0.1:6443 10.0.0.2:6443");
    ck_assert_uint_eq(s.stats.writes, 1);
    ck_assert(s.stats.last_ok);
    ck_assert_uint_ne(s.stats.last_write_unix_ms, 0);
    ck_assert_uint_eq(s.n_written, 2);
}
END_TEST

/* A write that fails is counted, and the same set is tried again at the
 * next change (queued falls back to what the file holds). */
START_TEST(failed_write_counted_and_retried)
{
    char bad[400];

    snprintf(bad, sizeof(bad), "%s/no-such-dir/state", dir);
    ck_assert_int_eq(statesave_init(&s, bad, &loop, &lock), 0);
    statesave_note(&s, table(REGISTRY_FILE, "10.0.0.1:6443"));
    statesave_flush(&s);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_uint_eq(s.stats.failures, 1);
    ck_assert(!s.stats.last_ok);
    ck_assert_uint_eq(s.n_queued, 0);
    statesave_note(&s, registry_table(r));
    ck_assert(s.has_next);
}
END_TEST

/* What the file held at start counts as written: the same set again is
 * not written. */
START_TEST(loaded_set_not_rewritten)
{
    struct addr a[UPSTREAM_MAX];
    const char *why;
    char err[256];

    ck_assert_int_eq(addr_parse("10.0.0.1:6443", -1, &a[0], &why), 0);
    ck_assert_int_eq(statefile_write(path, a, 1, err, sizeof(err)), 0);
    ck_assert_int_eq(statesave_init(&s, path, &loop, &lock), 0);
    ck_assert_uint_eq(statesave_load(&s, a), 1);
    statesave_note(&s, table(REGISTRY_DISCOVERED, "10.0.0.1:6443"));
    ck_assert(!s.has_next);
}
END_TEST

START_TEST(no_path_does_nothing)
{
    struct addr a[UPSTREAM_MAX];

    ck_assert_int_eq(statesave_init(&s, NULL, &loop, &lock), 0);
    ck_assert(!s.stats.enabled);
    ck_assert_uint_eq(statesave_load(&s, a), 0);
    statesave_note(&s, table(REGISTRY_FILE, "10.0.0.1:6443"));
    statesave_flush(&s);
    ck_assert(!s.busy);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *su = check_suite("statesave", &tc);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, only_learned_changes_noted);
    tcase_add_test(tc, written_on_the_pool);
    tcase_add_test(tc, failed_write_counted_and_retried);
    tcase_add_test(tc, loaded_set_not_rewritten);
    tcase_add_test(tc, no_path_does_nothing);
    return check_run(su);
}
