/* SPDX-License-Identifier: Apache-2.0 */
/* Configuration: one table of options (flag, environment variable, type,
 * bounds, default, help) parsed once in main() from argv and the environment
 * into a struct config. Pure: no sockets, no DNS, no file reads (the upstreams
 * file is read by upfile.c; whether the service-account token exists is asked
 * of the caller's config_exists_fn). Main thread only. */
#ifndef PROXY_CONFIG_H
#define PROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "addr.h"
#include "log.h"
#include "tier.h"
#include "upstream.h"
#include "watchstats.h"

#define CONFIG_MAX_LISTEN 16
#define CONFIG_MAX_SEEDS ADDR_SET_MAX /* --upstream flags: the one address bound */
#define CONFIG_ERR_BYTES 512

enum config_health {
    CONFIG_HEALTH_READYZ = 0,
    CONFIG_HEALTH_TLS,
    CONFIG_HEALTH_TCP,
    CONFIG_HEALTH_NONE,
};

/* What the readyz checks present to the apiserver. */
enum config_health_auth {
    CONFIG_HEALTH_AUTH_NONE = 0,   /* anonymous: 401/403 count as alive */
    CONFIG_HEALTH_AUTH_KUBECONFIG, /* the discovery credentials: 401/403 fail */
};

#define CONFIG_MAX_UPSTREAM_ZONES 64
#define CONFIG_ZONE_MAX 63 /* a label value */

/* --upstream-zone ADDR=ZONE: the zone of an apiserver the cluster does not
 * publish one for; any_port when ADDR has no port. */
struct config_upstream_zone {
    struct addr addr;
    bool any_port;
    char zone[CONFIG_ZONE_MAX + 1];
};

/* A seed as the user wrote it: host may be a name (resolved by the caller). */
struct config_seed {
    char host[ADDR_HOST_MAX];
    unsigned port;
};

struct config {
    struct addr listen[CONFIG_MAX_LISTEN];
    size_t n_listen;
    struct config_seed seeds[CONFIG_MAX_SEEDS];
    size_t n_seeds;
    const char *seeds_from; /* "--upstream", "APILB_UPSTREAMS", "CP_HOSTS" or "" */
    char *upstreams_file;
    char *kubeconfig;
    bool in_cluster;
    char *sa_dir;             /* service-account directory (tests override it) */
    char *kubelet_kubeconfig; /* preflight: the kubelet's kubeconfig to judge */
    enum watcher_discovery discovery;
    unsigned discovery_debounce_ms;
    unsigned watch_timeout_ms; /* 0 = random 5m..10m */
    unsigned watch_stall_ms;
    char *state_file;
    struct addr admin_listen;
    bool admin_enabled; /* false with --admin-listen off */
    unsigned connect_timeout_ms;
    enum config_health health_check;
    unsigned health_interval_ms;
    unsigned health_timeout_ms;
    unsigned rise;
    unsigned fall;
    char *health_ca;
    enum config_health_auth health_auth;
    bool close_unhealthy;
    bool access_log; /* a line per closed connection at info level */
    unsigned drain_timeout_ms;
    unsigned shutdown_timeout_ms;
    unsigned max_connection_age_ms;   /* 0 = off */
    unsigned upstream_ack_timeout_ms; /* session_check_acks(); 0 = off */
    unsigned close_spread_ms;         /* an unhealthy one's closes; 0 = at once */
    unsigned redial_spread_ms;        /* dials after an upstream failed; 0 = at once */
    enum upstream_balance balance;
    unsigned slow_start_ms; /* a returning upstream's ramp (balance.h); 0 = off */
    bool rebalance;         /* shed the excess over the fair share (session.c) */
    enum tier_mode prefer;
    char *zone;      /* this node's zone, or NULL */
    char *node_name; /* --node-name: whose node object gives the zone, or NULL */
    struct config_upstream_zone upstream_zones[CONFIG_MAX_UPSTREAM_ZONES];
    size_t n_upstream_zones;
    unsigned prefer_spill_factor; /* 0 = the preferred tier never spills for load */
    unsigned prefer_ramp_ms;      /* 0 = a recovered apiserver gets its share at once */
    unsigned workers;
    bool io_uring; /* batch sends through io_uring (sendq.h) when it may */
    unsigned max_connections;
    unsigned listener_check_interval_ms; /* 0 = only at start (sharewatch.h) */
    unsigned listener_grace_ms;          /* a hidden owner is an upgrade this long */
    enum log_level log_level;
    enum log_format log_format;
    bool check_config;
    bool preflight; /* `apilb preflight [options]`: run the checks and exit */
    bool show_version;
    bool show_help;
};

/* Whether the file at path exists and can be read: the one question
 * config_parse() asks of the file system, so that the caller answers it. */
typedef bool (*config_exists_fn)(const char *path);

/* Parses argv (argv[0] skipped; a first argument "preflight" sets
 * cfg->preflight and the options follow it) and then environ-style variables from env
 * (NULL-terminated "NAME=value" array; flags win over the environment), fills
 * defaults, validates across fields. n_cpus is the CPU count for the default
 * of --workers; exists says whether the service-account token is there
 * (--in-cluster is the default then; NULL: it never is). On error returns
 * -EINVAL (or -ENOMEM) and writes one line naming the option, the value and
 * the rule into err. The caller owns *cfg and releases it with config_free(). */
int config_parse(struct config *cfg, int argc, char *const argv[], char *const env[],
                 unsigned n_cpus, config_exists_fn exists, char err[CONFIG_ERR_BYTES])
    __attribute__((warn_unused_result));

/* Frees the strings config_parse() allocated; *cfg is zeroed. */
void config_free(struct config *cfg);

/* Parses a duration: "500ms", "2s", "5m", "1h", or "0" (when allow_zero).
 * Returns 0 with *ms set, or -EINVAL / -ERANGE (over max_ms). */
int config_duration_parse(const char *s, unsigned max_ms, bool allow_zero, unsigned *ms)
    __attribute__((warn_unused_result));

/* Writes a duration the way config_duration_parse() reads it. */
void config_duration_format(unsigned ms, char *buf, size_t len);

/* Prints the effective configuration, one "name = value" line per option. */
void config_print(const struct config *cfg, FILE *out);

/* Prints --help text, generated from the option table. */
void config_usage(FILE *out);

/* The option names in the table, NULL-terminated (for the test that checks
 * every option is documented in README.md). */
const char *const *config_option_names(void);

#endif
