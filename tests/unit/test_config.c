/* SPDX-License-Identifier: Apache-2.0 */
/* Flags, environment and their validation (proxy/config.h). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "check_run.h"

static char err[CONFIG_ERR_BYTES];
static struct config cfg;

#define ARGV(...) ((char *const[]){"apilb", __VA_ARGS__, NULL})
#define NARGS(...) ((int)(sizeof((char *const[]){"apilb", __VA_ARGS__}) / sizeof(char *)))
#define NOENV ((char *const[]){NULL})

static int parse(int argc, char *const argv[], char *const env[])
{
    config_free(&cfg);
    return config_parse(&cfg, argc, argv, env, 8, NULL, err);
}

#define OK(...) ck_assert_msg(parse(NARGS(__VA_ARGS__), ARGV(__VA_ARGS__), NOENV) == 0, "%s", err)

/* An error names the option and the value. */
#define BAD(opt, val, ...)                                                                         \
    do {                                                                                           \
        ck_assert_int_eq(parse(NARGS(__VA_ARGS__), ARGV(__VA_ARGS__), NOENV), -EINVAL);            \
        ck_assert_msg(strstr(err, opt) != NULL && strstr(err, val) != NULL,                        \
                      "error '%s' does not name '%s' and '%s'", err, opt, val);                    \
    } while (0)

static void teardown(void)
{
    config_free(&cfg);
}

/* The only file question config_parse() asks goes to its exists callback:
 * the token under --service-account-dir makes --in-cluster the default. */
static const char *asked;
static bool token_there(const char *path)
{
    asked = path;
    return strcmp(path, "/sa/token") == 0;
}

START_TEST(in_cluster_default_asks_the_caller)
{
    char *const argv[] = {"apilb", "--service-account-dir", "/sa", NULL};
    char *const elsewhere[] = {"apilb",      "--service-account-dir", "/none",
                               "--upstream", "10.0.0.1:6443",         NULL};

    config_free(&cfg);
    ck_assert_msg(config_parse(&cfg, 3, argv, NOENV, 2, token_there, err) == 0, "%s", err);
    ck_assert_str_eq(asked, "/sa/token");
    ck_assert(cfg.in_cluster);
    ck_assert_int_eq(cfg.discovery, WATCHER_DISCOVERY_AUTO);
    config_free(&cfg);
    ck_assert_msg(config_parse(&cfg, 5, elsewhere, NOENV, 2, token_there, err) == 0, "%s", err);
    ck_assert(!cfg.in_cluster);
    ck_assert_int_eq(cfg.discovery, WATCHER_DISCOVERY_OFF);
}
END_TEST

START_TEST(defaults)
{
    char buf[ADDR_STRLEN];

    OK("--upstream", "10.0.0.1:6443");
    ck_assert_uint_eq(cfg.n_listen, 1);
    ck_assert_str_eq(addr_format(&cfg.listen[0], buf, sizeof(buf)), "127.0.0.1:443");
    ck_assert_uint_eq(cfg.connect_timeout_ms, 1000);
    ck_assert_int_eq(cfg.balance, UPSTREAM_BALANCE_LEAST_CONN);
    ck_assert_uint_eq(cfg.workers, 4); /* 8 CPUs, at most 4 */
    ck_assert_uint_eq(cfg.shutdown_timeout_ms, 30000);
    ck_assert_uint_eq(cfg.drain_timeout_ms, 300000);
    ck_assert_int_eq(cfg.health_check, CONFIG_HEALTH_READYZ);
    ck_assert(cfg.admin_enabled);
    ck_assert_str_eq(addr_format(&cfg.admin_listen, buf, sizeof(buf)), "127.0.0.1:9444");
    ck_assert(cfg.close_unhealthy);
    ck_assert(cfg.io_uring);
    ck_assert_uint_eq(cfg.max_connection_age_ms, 0);
    ck_assert_uint_eq(cfg.listener_grace_ms, 120000);
}
END_TEST

START_TEST(forms_and_repeats)
{
    char buf[ADDR_STRLEN];

    OK("--listen=127.0.0.1:8443", "--listen", "[::1]:8443", "--upstream", "10.0.0.1:6443",
       "--upstream=[fd00::1]:6443", "--connect-timeout=250ms", "--balance", "round-robin",
       "--workers", "2", "--admin-listen", "off", "--health-check=tcp", "--rise", "3");
    ck_assert_uint_eq(cfg.n_listen, 2);
    ck_assert_str_eq(addr_format(&cfg.listen[1], buf, sizeof(buf)), "[::1]:8443");
    ck_assert_uint_eq(cfg.n_seeds, 2);
    ck_assert_str_eq(cfg.seeds[1].host, "fd00::1");
    ck_assert_uint_eq(cfg.connect_timeout_ms, 250);
    ck_assert_int_eq(cfg.balance, UPSTREAM_BALANCE_ROUND_ROBIN);
    ck_assert_uint_eq(cfg.workers, 2);
    ck_assert(!cfg.admin_enabled);
    ck_assert_int_eq(cfg.health_check, CONFIG_HEALTH_TCP);
    ck_assert_uint_eq(cfg.rise, 3);
    OK("--upstream", "cp.example.com:6443", "--balance=random", "--close-unhealthy=false",
       "--io-uring=false");
    ck_assert_str_eq(cfg.seeds[0].host, "cp.example.com");
    ck_assert_int_eq(cfg.balance, UPSTREAM_BALANCE_RANDOM);
    ck_assert(!cfg.close_unhealthy);
    ck_assert(!cfg.io_uring);
}
END_TEST

START_TEST(environment)
{
    char *const env[] = {"APILB_UPSTREAMS= 10.0.0.1:6443 ,[fd00::2]:6443,10.0.0.3:6443",
                         "APILB_CONNECT_TIMEOUT=2s",
                         "APILB_BALANCE=random",
                         "APILB_LOG_FORMAT=json",
                         "APILB_LISTEN=127.0.0.1:1443,[::1]:1443",
                         "APILB_MAX_CONNECTIONS=500",
                         "APILB_ADMIN_LISTEN=off",
                         NULL};
    char *const argv[] = {"apilb", "--balance", "least-conn", NULL};

    ck_assert_msg(parse(3, argv, env) == 0, "%s", err);
    ck_assert_uint_eq(cfg.n_seeds, 3);
    ck_assert_str_eq(cfg.seeds[1].host, "fd00::2");
    ck_assert_str_eq(cfg.seeds_from, "APILB_UPSTREAMS");
    ck_assert_uint_eq(cfg.connect_timeout_ms, 2000);
    ck_assert_int_eq(cfg.balance, UPSTREAM_BALANCE_LEAST_CONN); /* the flag wins */
    ck_assert_int_eq(cfg.log_format, LOG_FORMAT_JSON);
    ck_assert_uint_eq(cfg.n_listen, 2);
    ck_assert_uint_eq(cfg.max_connections, 500);
    ck_assert(!cfg.admin_enabled);
}
END_TEST

START_TEST(cp_hosts)
{
    char *const env[] = {"CP_HOSTS=10.0.0.1,10.0.0.2, 10.0.0.3", NULL};
    char *const env2[] = {"CP_HOSTS=10.0.0.1", "APILB_UPSTREAMS=10.9.9.9:6443", NULL};
    char *const argv[] = {"apilb", NULL};

    ck_assert_msg(parse(1, argv, env) == 0, "%s", err);
    ck_assert_uint_eq(cfg.n_seeds, 3);
    ck_assert_uint_eq(cfg.seeds[2].port, 6443);
    ck_assert_str_eq(cfg.seeds[2].host, "10.0.0.3");
    ck_assert_str_eq(cfg.seeds_from, "CP_HOSTS");
    ck_assert_msg(parse(1, argv, env2) == 0, "%s", err);
    ck_assert_uint_eq(cfg.n_seeds, 1);
    ck_assert_str_eq(cfg.seeds[0].host, "10.9.9.9");
}
END_TEST

START_TEST(errors_name_option_and_value)
{
    BAD("--listen", "127.0.0.1:99999", "--listen", "127.0.0.1:99999", "--upstream", "1.2.3.4:5");
    BAD("--listen", "localhost:443", "--listen", "localhost:443", "--upstream", "1.2.3.4:5");
    BAD("--upstream", "10.0.0.1", "--upstream", "10.0.0.1");
    BAD("--connect-timeout", "5", "--upstream", "1.2.3.4:5", "--connect-timeout", "5");
    BAD("--connect-timeout", "-1s", "--upstream", "1.2.3.4:5", "--connect-timeout", "-1s");
    BAD("--connect-timeout", "1x", "--upstream", "1.2.3.4:5", "--connect-timeout", "1x");
    BAD("--drain-timeout", "99999999h", "--upstream", "1.2.3.4:5", "--drain-timeout", "99999999h");
    BAD("--balance", "fastest", "--upstream", "1.2.3.4:5", "--balance", "fastest");
    BAD("--workers", "0", "--upstream", "1.2.3.4:5", "--workers", "0");
    BAD("--workers", "many", "--upstream", "1.2.3.4:5", "--workers", "many");
    BAD("--log-level", "loud", "--upstream", "1.2.3.4:5", "--log-level", "loud");
    BAD("--log-format", "xml", "--upstream", "1.2.3.4:5", "--log-format", "xml");
    BAD("--health-check", "ping", "--upstream", "1.2.3.4:5", "--health-check", "ping");
    BAD("--frobnicate", "unknown", "--upstream", "1.2.3.4:5", "--frobnicate");
    BAD("--balance", "more than once", "--upstream", "1.2.3.4:5", "--balance", "random",
        "--balance", "random");
    BAD("--health-auth", "ldap", "--upstream", "1.2.3.4:5", "--health-auth", "ldap");
    BAD("stray", "unexpected", "stray");
    ck_assert_int_eq(parse(2, ARGV("--connect-timeout"), NOENV), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "needs a value"));
    ck_assert_int_eq(parse(1, (char *const[]){"apilb", NULL}, NOENV), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "no upstreams"));
    /* The environment is validated the same way and named. */
    ck_assert_int_eq(parse(1, (char *const[]){"apilb", NULL},
                           (char *const[]){"APILB_UPSTREAMS=10.0.0.1:6443",
                                           "APILB_CONNECT_TIMEOUT=soon", NULL}),
                     -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "APILB_CONNECT_TIMEOUT"));
    ck_assert_ptr_nonnull(strstr(err, "soon"));
}
END_TEST

/* Issue 21: --prefer, --zone, --upstream-zone (flags and environment). */
START_TEST(prefer_and_zones)
{
    OK("--upstream", "1.2.3.4:5");
    ck_assert_int_eq(cfg.prefer, TIER_MODE_NEAREST);
    ck_assert_uint_eq(cfg.prefer_spill_factor, 16);
    ck_assert_uint_eq(cfg.prefer_ramp_ms, 10000);
    config_free(&cfg);
    OK("--upstream", "1.2.3.4:5", "--prefer", "zone", "--zone", "eu-1a", "--upstream-zone",
       "10.0.0.1=eu-1a", "--upstream-zone", "[fd00::2]:6443=eu-1b");
    ck_assert_int_eq(cfg.prefer, TIER_MODE_ZONE);
    ck_assert_str_eq(cfg.zone, "eu-1a");
    ck_assert_uint_eq(cfg.n_upstream_zones, 2);
    ck_assert(cfg.upstream_zones[0].any_port);
    ck_assert(!cfg.upstream_zones[1].any_port);
    ck_assert_str_eq(cfg.upstream_zones[1].zone, "eu-1b");
    config_free(&cfg);
    BAD("--prefer", "far", "--upstream", "1.2.3.4:5", "--prefer", "far");
    BAD("--zone", "-a", "--upstream", "1.2.3.4:5", "--zone", "-a");
    BAD("--upstream-zone", "10.0.0.1", "--upstream", "1.2.3.4:5", "--upstream-zone", "10.0.0.1");
    BAD("--upstream-zone", "host=a", "--upstream", "1.2.3.4:5", "--upstream-zone", "host=a");
    BAD("--upstream-zone", "10.0.0.1=a b", "--upstream", "1.2.3.4:5", "--upstream-zone",
        "10.0.0.1=a b");
    ck_assert_int_eq(parse(1, (char *const[]){"apilb", NULL},
                           (char *const[]){"APILB_UPSTREAMS=10.0.0.1:6443",
                                           "APILB_UPSTREAM_ZONES=10.0.0.1=a,10.0.0.2=", NULL}),
                     -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "APILB_UPSTREAM_ZONES=10.0.0.2="));
}
END_TEST

/* Issue 19: any positive pair is accepted; a check may outlast the interval. */
START_TEST(health_interval_and_timeout_independent)
{
    OK("--upstream", "1.2.3.4:5", "--health-interval", "1s");
    ck_assert_uint_eq(cfg.health_interval_ms, 1000);
    ck_assert_uint_eq(cfg.health_timeout_ms, 2000);
    OK("--upstream", "1.2.3.4:5", "--health-interval", "500ms", "--health-timeout", "1s");
    ck_assert_uint_eq(cfg.health_interval_ms, 500);
    ck_assert_uint_eq(cfg.health_timeout_ms, 1000);
    OK("--upstream", "1.2.3.4:5", "--health-interval", "100ms", "--health-timeout", "1m");
    OK("--upstream", "1.2.3.4:5", "--health-interval", "1h", "--health-timeout", "50ms");
    ck_assert_int_eq(parse(1, (char *const[]){"apilb", NULL},
                           (char *const[]){"APILB_UPSTREAMS=10.0.0.1:6443",
                                           "APILB_HEALTH_INTERVAL=300ms", "APILB_HEALTH_TIMEOUT=3s",
                                           NULL}),
                     0);
    ck_assert_uint_eq(cfg.health_timeout_ms, 3000);
    /* Zero and absurd values keep their clear error. */
    BAD("--health-interval", "0", "--upstream", "1.2.3.4:5", "--health-interval", "0");
    BAD("--health-timeout", "0", "--upstream", "1.2.3.4:5", "--health-timeout", "0");
    BAD("--health-interval", "99ms", "--upstream", "1.2.3.4:5", "--health-interval", "99ms");
    BAD("--health-interval", "2h", "--upstream", "1.2.3.4:5", "--health-interval", "2h");
    BAD("--health-timeout", "10m", "--upstream", "1.2.3.4:5", "--health-timeout", "10m");
    BAD("--health-timeout", "-1s", "--upstream", "1.2.3.4:5", "--health-timeout", "-1s");
}
END_TEST

START_TEST(health_auth)
{
    OK("--upstream", "1.2.3.4:5");
    ck_assert_int_eq(cfg.health_auth, CONFIG_HEALTH_AUTH_NONE);
    OK("--kubeconfig", "/x/kubeconfig", "--health-auth", "kubeconfig");
    ck_assert_int_eq(cfg.health_auth, CONFIG_HEALTH_AUTH_KUBECONFIG);
    ck_assert_int_eq(parse(1, (char *const[]){"apilb", NULL},
                           (char *const[]){"APILB_KUBECONFIG=/x/k", "APILB_HEALTH_AUTH=kubeconfig",
                                           NULL}),
                     0);
    ck_assert_int_eq(cfg.health_auth, CONFIG_HEALTH_AUTH_KUBECONFIG);
    /* Credentials are needed, and a check that sends a request. */
    BAD("--health-auth=kubeconfig", "--kubeconfig", "--upstream", "1.2.3.4:5", "--health-auth",
        "kubeconfig");
    BAD("--health-auth=kubeconfig", "--health-check=readyz", "--kubeconfig", "/x/k",
        "--health-auth", "kubeconfig", "--health-check", "tcp");
    BAD("--health-auth=kubeconfig", "not off", "--kubeconfig", "/x/k", "--discovery", "off",
        "--upstream", "1.2.3.4:5", "--health-auth", "kubeconfig");
}
END_TEST

START_TEST(info_flags)
{
    OK("--version");
    ck_assert(cfg.show_version);
    OK("--help");
    ck_assert(cfg.show_help);
    OK("--check-config", "--upstream", "1.2.3.4:5");
    ck_assert(cfg.check_config);
}
END_TEST

START_TEST(durations)
{
    static const struct {
        const char *s;
        unsigned ms;
    } ok[] = {{"500ms", 500},  {"2s", 2000}, {"5m", 300000},
              {"1h", 3600000}, {"0", 0},     {"1500ms", 1500}};
    static const char *const bad[] = {"5", "-1s", "1x", "", "s", "1.5s", "ms", "10000000000s"};
    unsigned ms;
    char buf[32];

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ck_assert_msg(config_duration_parse(ok[i].s, 86400000u, true, &ms) == 0, "%s", ok[i].s);
        ck_assert_uint_eq(ms, ok[i].ms);
        config_duration_format(ms, buf, sizeof(buf));
        ck_assert_int_eq(config_duration_parse(buf, 86400000u, true, &ms), 0);
        ck_assert_uint_eq(ms, ok[i].ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(config_duration_parse(bad[i], 86400000u, true, &ms) < 0, "accepted '%s'",
                      bad[i]);
    ck_assert_int_lt(config_duration_parse("0", 1000, false, &ms), 0);
    ck_assert_int_eq(config_duration_parse("2s", 1000, true, &ms), -ERANGE);
}
END_TEST

START_TEST(print_and_usage_cover_every_option)
{
    const char *const *names = config_option_names();
    char *text = NULL, *help = NULL;
    size_t len = 0, hlen = 0;
    FILE *f;

    OK("--upstream", "1.2.3.4:5");
    f = open_memstream(&text, &len);
    config_print(&cfg, f);
    fclose(f);
    f = open_memstream(&help, &hlen);
    config_usage(f);
    fclose(f);
    for (size_t i = 0; names[i] != NULL; i++) {
        char flag[64];

        snprintf(flag, sizeof(flag), "--%s", names[i]);
        ck_assert_msg(strstr(help, flag) != NULL, "--help lacks %s", flag);
    }
    ck_assert_ptr_nonnull(strstr(text, "connect-timeout = 1s"));
    ck_assert_ptr_nonnull(strstr(text, "balance = least-conn"));
    free(text);
    free(help);
}
END_TEST

START_TEST(readme_documents_every_option)
{
    const char *const *names = config_option_names();
    FILE *f = fopen(APILB_SOURCE_DIR "/README.md", "r");
    char *readme;
    long n;

    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    readme = calloc(1, (size_t)n + 1);
    ck_assert_uint_eq(fread(readme, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    for (size_t i = 0; names[i] != NULL; i++) {
        char flag[64];

        snprintf(flag, sizeof(flag), "`--%s", names[i]);
        ck_assert_msg(strstr(readme, flag) != NULL, "README.md does not document --%s", names[i]);
    }
    free(readme);
}
END_TEST

/* `apilb preflight [options]`: the word comes first, the options follow,
 * and --kubelet-kubeconfig means nothing to the daemon. */
START_TEST(preflight_subcommand)
{
    OK("preflight", "--upstream", "10.0.0.1:6443", "--kubelet-kubeconfig", "/k");
    ck_assert(cfg.preflight);
    ck_assert_str_eq(cfg.kubelet_kubeconfig, "/k");
    ck_assert_uint_eq(cfg.n_seeds, 1);
    OK("--upstream", "10.0.0.1:6443");
    ck_assert(!cfg.preflight);
    BAD("--kubelet-kubeconfig", "/k", "--upstream", "10.0.0.1:6443", "--kubelet-kubeconfig", "/k");
    ck_assert_ptr_nonnull(strstr(err, "only for apilb preflight"));
    BAD("preflight", "unexpected argument", "--upstream", "10.0.0.1:6443", "preflight");
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("config", &tc);

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, in_cluster_default_asks_the_caller);
    tcase_add_test(tc, forms_and_repeats);
    tcase_add_test(tc, environment);
    tcase_add_test(tc, cp_hosts);
    tcase_add_test(tc, errors_name_option_and_value);
    tcase_add_test(tc, info_flags);
    tcase_add_test(tc, health_interval_and_timeout_independent);
    tcase_add_test(tc, prefer_and_zones);
    tcase_add_test(tc, health_auth);
    tcase_add_test(tc, durations);
    tcase_add_test(tc, print_and_usage_cover_every_option);
    tcase_add_test(tc, readme_documents_every_option);
    tcase_add_test(tc, preflight_subcommand);
    return check_run(s);
}
