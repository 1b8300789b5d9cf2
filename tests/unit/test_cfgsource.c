/* SPDX-License-Identifier: Apache-2.0 */
/* The configured sources (proxy/cfgsource.h): seeds and the upstreams file
 * into addresses, and a reload's hand-over, with IP literals only (no DNS). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cfgsource.h"
#include "check_run.h"
#include "upstream.h"

static char path[] = "/tmp/apilb-cfgsource-XXXXXX";
static struct cfgsource f;
static char applied[512], applied_why[32];
static int n_applied;

static void setup(void)
{
    int fd;

    snprintf(path, sizeof(path), "/tmp/apilb-cfgsource-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    n_applied = 0;
}

static void teardown(void)
{
    cfgsource_stop(&f);
    cfgsource_fini(&f);
    unlink(path);
}

static void write_file(const char *text)
{
    FILE *fp = fopen(path, "w");

    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    fclose(fp);
}

static const char *addrs_str(const struct addr *a, size_t n)
{
    static char out[512];
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n && len < sizeof(out) - 1; i++) {
        char name[ADDR_STRLEN];

        len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s", i ? " " : "",
                                addr_format(&a[i], name, sizeof(name)));
    }
    return out;
}

static void apply_cb(void *arg, const struct addr *a, size_t n, const char *why)
{
    (void)arg;
    snprintf(applied, sizeof(applied), "%s", addrs_str(a, n));
    snprintf(applied_why, sizeof(applied_why), "%s", why);
    n_applied++;
}

/* Loads a file of text at start and attaches f to a new loop. */
static void loaded_on(uv_loop_t *loop, const char *text)
{
    char err[256] = "";

    ck_assert_int_eq(uv_loop_init(loop), 0);
    write_file(text);
    ck_assert_int_eq(cfgsource_init(&f, path, apply_cb, NULL), 0);
    ck_assert_int_eq(cfgsource_load(&f, err, sizeof(err)), 0);
    cfgsource_attach(&f, loop);
}

/* Stops f's lookups and closes its loop, which must end with nothing left. */
static void stopped_on(uv_loop_t *loop)
{
    cfgsource_stop(&f);
    uv_close((uv_handle_t *)&f.async, NULL);
    ck_assert_int_eq(uv_run(loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(loop), 0);
}

START_TEST(seeds_resolved)
{
    struct config_seed sd[2] = {{"10.0.0.1", 6443}, {"fd00::2", 443}};
    struct addr a[UPSTREAM_MAX];
    char err[256] = "";
    size_t n = 0;

    ck_assert_int_eq(cfgsource_seeds(sd, 2, "--upstream", true, a, &n, err, sizeof(err)), 0);
    ck_assert_str_eq(addrs_str(a, n), "10.0.0.1:6443 [fd00::2]:443");
}
END_TEST

START_TEST(file_loaded)
{
    size_t n;
    char err[256] = "";

    write_file("10.0.0.2:6443\n10.0.0.1:6443\n");
    ck_assert_int_eq(cfgsource_init(&f, path, apply_cb, NULL), 0);
    ck_assert_int_eq(cfgsource_load(&f, err, sizeof(err)), 0);
    ck_assert_str_eq(addrs_str(cfgsource_addrs(&f, &n), f.n_merged), "10.0.0.2:6443 10.0.0.1:6443");
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(n_applied, 0); /* loading at start applies nothing itself */
}
END_TEST

/* A file that does not parse is an error naming the file. */
START_TEST(bad_file_named)
{
    char err[256] = "";

    write_file("10.0.0.1:99999\n");
    ck_assert_int_eq(cfgsource_init(&f, path, apply_cb, NULL), 0);
    ck_assert_int_lt(cfgsource_load(&f, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

/* The file's IPs and its names' addresses whose union is over the one
 * address bound: refused whole (nothing applied, the last set kept) with a
 * line naming the count and the bound, never cut to fit. The names'
 * addresses are planted as a finished lookup leaves them (no DNS here). */
START_TEST(union_over_bound_refused)
{
    uv_loop_t loop;
    size_t n;

    loaded_on(&loop, "10.0.0.1:6443\n");
    for (unsigned i = 0; i < UPSTREAM_MAX; i++) {
        char ip[32];

        snprintf(ip, sizeof(ip), "10.9.%u.%u", i / 256, i % 256);
        ck_assert_int_eq(addr_from_ip(ip, 6443, &f.named[i]), 0);
    }
    f.n_named = UPSTREAM_MAX;
    write_file("10.0.0.2:6443\nlocalhost:6443\n");
    cfgsource_reload(&f, "sighup");
    ck_assert_int_eq(n_applied, 0);
    ck_assert_str_eq(addrs_str(cfgsource_addrs(&f, &n), f.n_merged), "10.0.0.1:6443");
    stopped_on(&loop);
}
END_TEST

/* A reload applies the new IPs at once; a bad file keeps the old set and
 * applies nothing. */
START_TEST(reload_applies_or_keeps)
{
    uv_loop_t loop;
    size_t n;

    loaded_on(&loop, "10.0.0.1:6443\n");
    write_file("10.0.0.3:6443\n10.0.0.1:6443\n");
    cfgsource_reload(&f, "sighup");
    ck_assert_int_eq(n_applied, 1);
    ck_assert_str_eq(applied, "10.0.0.3:6443 10.0.0.1:6443");
    ck_assert_str_eq(applied_why, "sighup");
    write_file("not an address\n");
    cfgsource_reload(&f, "file-change");
    ck_assert_int_eq(n_applied, 1);
    ck_assert_str_eq(addrs_str(cfgsource_addrs(&f, &n), f.n_merged), "10.0.0.3:6443 10.0.0.1:6443");
    stopped_on(&loop);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("cfgsource", &tc);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, seeds_resolved);
    tcase_add_test(tc, file_loaded);
    tcase_add_test(tc, bad_file_named);
    tcase_add_test(tc, reload_applies_or_keeps);
    tcase_add_test(tc, union_over_bound_refused);
    return check_run(s);
}
