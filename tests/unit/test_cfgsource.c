/* SPDX-License-Identifier: Apache-2.0 */
/* The configured sources (proxy/cfgsource.h): seeds and the upstreams file
 * into addresses, and a reload's hand-over, with IP literals only (no DNS). */
#include <check.h>
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
    for (size_t i = 0; i < n; i++) {
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

/* A reload applies the new IPs at once; a bad file keeps the old set and
 * applies nothing. */
START_TEST(reload_applies_or_keeps)
{
    uv_loop_t loop;
    char err[256] = "";
    size_t n;

    ck_assert_int_eq(uv_loop_init(&loop), 0);
    write_file("10.0.0.1:6443\n");
    ck_assert_int_eq(cfgsource_init(&f, path, apply_cb, NULL), 0);
    ck_assert_int_eq(cfgsource_load(&f, err, sizeof(err)), 0);
    cfgsource_attach(&f, &loop);
    write_file("10.0.0.3:6443\n10.0.0.1:6443\n");
    cfgsource_reload(&f, "sighup");
    ck_assert_int_eq(n_applied, 1);
    ck_assert_str_eq(applied, "10.0.0.3:6443 10.0.0.1:6443");
    ck_assert_str_eq(applied_why, "sighup");
    write_file("not an address\n");
    cfgsource_reload(&f, "file-change");
    ck_assert_int_eq(n_applied, 1);
    ck_assert_str_eq(addrs_str(cfgsource_addrs(&f, &n), f.n_merged), "10.0.0.3:6443 10.0.0.1:6443");
    cfgsource_stop(&f);
    uv_close((uv_handle_t *)&f.async, NULL);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
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
    return check_run(s);
}
