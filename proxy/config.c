/* SPDX-License-Identifier: Apache-2.0 */
/* Option table and parsing; see config.h. Every option is one row of opts[]:
 * the flag, its environment variable, how to parse it and its help line. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define MAX_DURATION_MS (24u * 3600u * 1000u)

enum opt_type {
    OPT_LISTEN = 0, /* repeatable numeric ADDR:PORT */
    OPT_SEED,       /* repeatable HOST:PORT */
    OPT_STRING,
    OPT_BOOL, /* flag without value; env takes true/false */
    OPT_DURATION,
    OPT_DURATION0, /* duration, 0 allowed (= off) */
    OPT_UINT,
    OPT_ENUM,
    OPT_ADMIN, /* ADDR:PORT or "off" */
    OPT_LOGLEVEL,
    OPT_LOGFORMAT,
    OPT_UPSTREAM_ZONE, /* repeatable ADDR=ZONE */
    OPT_ZONE,          /* a label value */
};

struct opt {
    const char *name; /* without the leading "--" */
    const char *env;  /* environment variable, or NULL */
    enum opt_type type;
    size_t off;
    unsigned min, max;
    const char *const *choices; /* OPT_ENUM: NULL-terminated, index = value */
    const char *arg;            /* placeholder in --help */
    const char *def;            /* default as text, NULL for none */
    const char *help;
};

static const char *const balance_names[] = {"least-conn", "round-robin", "random", NULL};
static const char *const health_names[] = {"readyz", "tls", "tcp", "none", NULL};
static const char *const health_auth_names[] = {"none", "kubeconfig", NULL};
static const char *const prefer_names[] = {"nearest", "zone", "none", NULL};
static const char *const discovery_names[] = {"auto", "endpointslices", "endpoints", "off", NULL};

#define O(field) offsetof(struct config, field)

static const struct opt opts[] = {
    {"listen", "APILB_LISTEN", OPT_LISTEN, O(listen), 0, 0, NULL, "ADDR:PORT", "127.0.0.1:443",
     "address to accept clients on; repeatable; IPv6 as [::1]:443"},
    {"upstream", "APILB_UPSTREAMS", OPT_SEED, O(seeds), 0, 0, NULL, "HOST:PORT", NULL,
     "seed/static apiserver; repeatable; env is comma-separated"},
    {"upstreams-file", "APILB_UPSTREAMS_FILE", OPT_STRING, O(upstreams_file), 0, 0, NULL, "PATH",
     NULL, "one HOST:PORT per line, '#' comments; re-read when it changes and on SIGHUP"},
    {"kubeconfig", "APILB_KUBECONFIG", OPT_STRING, O(kubeconfig), 0, 0, NULL, "PATH", NULL,
     "watch the cluster's apiservers with these credentials"},
    {"in-cluster", "APILB_IN_CLUSTER", OPT_BOOL, O(in_cluster), 0, 0, NULL, NULL,
     "when the token exists", "use the pod's service account"},
    {"service-account-dir", "APILB_SERVICE_ACCOUNT_DIR", OPT_STRING, O(sa_dir), 0, 0, NULL, "DIR",
     DEFAULT_SA_DIR, "where --in-cluster finds token, ca.crt and namespace"},
    {"kubelet-kubeconfig", "APILB_KUBELET_KUBECONFIG", OPT_STRING, O(kubelet_kubeconfig), 0, 0,
     NULL, "PATH", NULL,
     "apilb preflight: whether this kubelet kubeconfig points at apilb with the cluster's CA"},
    {"discovery", "APILB_DISCOVERY", OPT_ENUM, O(discovery), 0, 0, discovery_names, "MODE", "auto",
     "auto | endpointslices | endpoints | off"},
    {"discovery-debounce", "APILB_DISCOVERY_DEBOUNCE", OPT_DURATION0, O(discovery_debounce_ms), 0,
     60000, NULL, "DUR", "1s",
     "a discovered apiserver set must be stable this long before it is applied"},
    {"watch-timeout", "APILB_WATCH_TIMEOUT", OPT_DURATION0, O(watch_timeout_ms), 1000, 3600000,
     NULL, "DUR", "0", "server-side timeout of each watch; 0 = random 5m..10m like client-go"},
    {"watch-stall", "APILB_WATCH_STALL", OPT_DURATION, O(watch_stall_ms), 1000, 3600000, NULL,
     "DUR", "90s", "a watch that receives no byte for this long is reconnected"},
    {"state-file", "APILB_STATE_FILE", OPT_STRING, O(state_file), 0, 0, NULL, "PATH", NULL,
     "last known good upstream set, written atomically, read at start"},
    {"admin-listen", "APILB_ADMIN_LISTEN", OPT_ADMIN, O(admin_listen), 0, 0, NULL, "ADDR:PORT",
     "127.0.0.1:9444", "GET /healthz /readyz /metrics /upstreams; 'off' disables"},
    {"connect-timeout", "APILB_CONNECT_TIMEOUT", OPT_DURATION, O(connect_timeout_ms), 10, 60000,
     NULL, "DUR", "1s", "upstream connect timeout; on failure the next upstream is tried"},
    {"health-check", "APILB_HEALTH_CHECK", OPT_ENUM, O(health_check), 0, 0, health_names, "KIND",
     "readyz", "readyz | tls | tcp | none"},
    {"health-interval", "APILB_HEALTH_INTERVAL", OPT_DURATION, O(health_interval_ms), 100, 3600000,
     NULL, "DUR", "5s", "from the end of one check of an upstream to the next (jittered)"},
    {"health-timeout", "APILB_HEALTH_TIMEOUT", OPT_DURATION, O(health_timeout_ms), 50, 60000, NULL,
     "DUR", "2s", "one active check's deadline"},
    {"rise", "APILB_RISE", OPT_UINT, O(rise), 1, 100, NULL, "N", "2",
     "consecutive passed checks that make an upstream healthy"},
    {"fall", "APILB_FALL", OPT_UINT, O(fall), 1, 100, NULL, "N", "2",
     "consecutive failed checks that make an upstream unhealthy"},
    {"health-ca", "APILB_HEALTH_CA", OPT_STRING, O(health_ca), 0, 0, NULL, "PATH", NULL,
     "CA bundle to verify apiserver certificates in readyz/tls checks"},
    {"health-auth", "APILB_HEALTH_AUTH", OPT_ENUM, O(health_auth), 0, 0, health_auth_names, "MODE",
     "none",
     "none | kubeconfig: readyz checks present the discovery credentials (401/403 then fail)"},
    {"close-unhealthy", "APILB_CLOSE_UNHEALTHY", OPT_BOOL, O(close_unhealthy), 0, 0, NULL, NULL,
     "true",
     "close open connections of an upstream that turns unhealthy (--close-unhealthy=false keeps them)"},
    {"access-log", "APILB_ACCESS_LOG", OPT_BOOL, O(access_log), 0, 0, NULL, NULL, "false",
     "one line per closed connection (client, upstream, reason, duration, bytes each way) at "
     "info level"},
    {"drain-timeout", "APILB_DRAIN_TIMEOUT", OPT_DURATION0, O(drain_timeout_ms), 0, MAX_DURATION_MS,
     NULL, "DUR", "5m", "how long connections to a removed upstream may live"},
    {"shutdown-timeout", "APILB_SHUTDOWN_TIMEOUT", OPT_DURATION0, O(shutdown_timeout_ms), 0,
     MAX_DURATION_MS, NULL, "DUR", "30s",
     "on SIGTERM: stop accepting, drain this long, then close"},
    {"max-connection-age", "APILB_MAX_CONNECTION_AGE", OPT_DURATION0, O(max_connection_age_ms), 0,
     MAX_DURATION_MS, NULL, "DUR", "0",
     "close connections older than this (with jitter) to rebalance; 0 = off"},
    {"upstream-ack-timeout", "APILB_UPSTREAM_ACK_TIMEOUT", OPT_DURATION0,
     O(upstream_ack_timeout_ms), 500, 600000, NULL, "DUR", "5s",
     "an upstream connection that acknowledges nothing of the bytes sent to it for this long is "
     "dead: the client gets a reset and new connections avoid that upstream; 0 = off (the "
     "kernel retransmits for about 15m)"},
    {"close-spread", "APILB_CLOSE_SPREAD", OPT_DURATION0, O(close_spread_ms), 0, 60000, NULL, "DUR",
     "5s",
     "close the connections of an upstream that turns unhealthy at random times over this "
     "window (their clients dial again as their turns come); 0 = at once"},
    {"redial-spread", "APILB_REDIAL_SPREAD", OPT_DURATION0, O(redial_spread_ms), 0, 60000, NULL,
     "DUR", "8s",
     "after an upstream fails (many of its connections lost at once, or one lost and a connect "
     "to it refused), make new dials at random times over this window, so that a fleet's nodes "
     "do not all reach the survivors in one second (a wait is at most 9 s less twice the "
     "upstreams' last answer time, so that a client's 10 s TLS handshake fits); 0 = at once"},
    {"slow-start", "APILB_SLOW_START", OPT_DURATION0, O(slow_start_ms), 0, 600000, NULL, "DUR",
     "30s",
     "an upstream that turns healthy again or is added later gets a share of the new connections "
     "rising linearly from 5 % to full over this long, not all of them; 0 = off"},
    {"rebalance", "APILB_REBALANCE", OPT_BOOL, O(rebalance), 0, 0, NULL, NULL, "true",
     "close idle connections of upstreams over their fair share, a few at a time, so clients "
     "reconnect to the one that came back (--rebalance=false keeps them)"},
    {"balance", "APILB_BALANCE", OPT_ENUM, O(balance), 0, 0, balance_names, "ALGO", "least-conn",
     "least-conn | round-robin | random"},
    {"prefer", "APILB_PREFER", OPT_ENUM, O(prefer), 0, 0, prefer_names, "MODE", "nearest",
     "nearest | zone | none"},
    {"zone", "APILB_ZONE", OPT_ZONE, O(zone), 0, 0, NULL, "NAME", NULL,
     "this node's zone (topology.kubernetes.io/zone), for --prefer zone"},
    {"node-name", "NODE_NAME", OPT_STRING, O(node_name), 0, 0, NULL, "NAME", NULL,
     "this node's name: --prefer zone without --zone reads the node object's zone label"},
    {"upstream-zone", "APILB_UPSTREAM_ZONES", OPT_UPSTREAM_ZONE, O(upstream_zones), 0, 0, NULL,
     "ADDR=ZONE", NULL,
     "the zone of an apiserver the cluster publishes none for (ADDR: IP or IP:PORT); "
     "repeatable; env is comma-separated"},
    {"prefer-spill-factor", "APILB_PREFER_SPILL_FACTOR", OPT_UINT, O(prefer_spill_factor), 0, 1000,
     NULL, "N", "16",
     "new connections spill to the next tier while the preferred tier's apiservers average more "
     "than N times (the others' average + 1) active connections; 0 = only when none is usable"},
    {"prefer-ramp", "APILB_PREFER_RAMP", OPT_DURATION0, O(prefer_ramp_ms), 0, 600000, NULL, "DUR",
     "10s",
     "an apiserver back in the preferred tier (recovered, or nearer) gets its share of new "
     "connections gradually over this long; 0 = at once"},
    {"workers", "APILB_WORKERS", OPT_UINT, O(workers), 1, 64, NULL, "N", NULL,
     "event-loop threads (default: CPUs, at most 4)"},
    {"io-uring", "APILB_IO_URING", OPT_BOOL, O(io_uring), 0, 0, NULL, NULL, "true",
     "make the sends of a round of ready sockets in one io_uring submission (--io-uring=false: "
     "one send(2) each)"},
    {"max-connections", "APILB_MAX_CONNECTIONS", OPT_UINT, O(max_connections), 1, 10000000, NULL,
     "N", "100000", "client connections beyond this are refused"},
    {"listener-check-interval", "APILB_LISTENER_CHECK_INTERVAL", OPT_DURATION0,
     O(listener_check_interval_ms), 100, 3600000, NULL, "DUR", "30s",
     "how often apilb looks for other processes listening on its --listen and admin addresses; "
     "0 = only at start"},
    {"listener-grace", "APILB_LISTENER_GRACE", OPT_DURATION, O(listener_grace_ms), 1000, 3600000,
     NULL, "DUR", "2m",
     "another listener whose owner is hidden (another PID namespace) counts as an apilb upgrade "
     "this long, then as foreign"},
    {"log-level", "APILB_LOG_LEVEL", OPT_LOGLEVEL, O(log_level), 0, 0, NULL, "LEVEL", "info",
     "error | warn | info | debug"},
    {"log-format", "APILB_LOG_FORMAT", OPT_LOGFORMAT, O(log_format), 0, 0, NULL, "FORMAT", "text",
     "text (logfmt) | json"},
    {"check-config", NULL, OPT_BOOL, O(check_config), 0, 0, NULL, NULL, NULL,
     "print the effective configuration and exit 0, or exit 1 with why"},
    {"version", NULL, OPT_BOOL, O(show_version), 0, 0, NULL, NULL, NULL, "print the version"},
    {"help", NULL, OPT_BOOL, O(show_help), 0, 0, NULL, NULL, NULL, "print this help"},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static void errf(char err[CONFIG_ERR_BYTES], const char *fmt, ...) PRINTF_LIKE(2, 3);
static void errf(char err[CONFIG_ERR_BYTES], const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, CONFIG_ERR_BYTES, fmt, ap);
    va_end(ap);
}

int config_duration_parse(const char *s, unsigned max_ms, bool allow_zero, unsigned *ms)
{
    unsigned long long v = 0, mult;
    const char *p = s;

    if (s == NULL || *s == '\0')
        return -EINVAL;
    if (strcmp(s, "0") == 0) {
        if (!allow_zero)
            return -ERANGE;
        *ms = 0;
        return 0;
    }
    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    while (isdigit((unsigned char)*p)) {
        v = v * 10 + (unsigned)(*p - '0');
        if (v > MAX_DURATION_MS)
            return -ERANGE;
        p++;
    }
    if (strcmp(p, "ms") == 0)
        mult = 1;
    else if (strcmp(p, "s") == 0)
        mult = 1000;
    else if (strcmp(p, "m") == 0)
        mult = 60000;
    else if (strcmp(p, "h") == 0)
        mult = 3600000;
    else
        return -EINVAL;
    v *= mult;
    if (v > max_ms || (v == 0 && !allow_zero))
        return -ERANGE;
    *ms = (unsigned)v;
    return 0;
}

void config_duration_format(unsigned ms, char *buf, size_t len)
{
    if (ms == 0)
        snprintf(buf, len, "0");
    else if (ms % 3600000 == 0)
        snprintf(buf, len, "%uh", ms / 3600000);
    else if (ms % 60000 == 0)
        snprintf(buf, len, "%um", ms / 60000);
    else if (ms % 1000 == 0)
        snprintf(buf, len, "%us", ms / 1000);
    else
        snprintf(buf, len, "%ums", ms);
}

static const struct opt *find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

static bool parse_bool(const char *v, bool *out)
{
    if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0) {
        *out = false;
        return true;
    }
    return false;
}

/* Where a value came from, for error messages: "--name" or "ENV". */
static void origin(const struct opt *o, bool from_env, char *buf, size_t len)
{
    if (from_env)
        snprintf(buf, len, "%s", o->env);
    else
        snprintf(buf, len, "--%s", o->name);
}

static int add_seed(struct config *cfg, const char *who, const char *v, int default_port,
                    char err[CONFIG_ERR_BYTES])
{
    struct config_seed *sd;
    const char *why;

    if (cfg->n_seeds == CONFIG_MAX_SEEDS) {
        errf(err, "%s=%s: at most %d upstreams may be given", who, v, CONFIG_MAX_SEEDS);
        return -EINVAL;
    }
    sd = &cfg->seeds[cfg->n_seeds];
    if (addr_split(v, default_port, sd->host, &sd->port, &why) < 0) {
        errf(err, "%s=%s: %s", who, v, why);
        return -EINVAL;
    }
    cfg->n_seeds++;
    return 0;
}

/* add_seed() or add_upstream_zone(): one element of a list. */
typedef int add_item_fn(struct config *cfg, const char *who, const char *v, int default_port,
                        char err[CONFIG_ERR_BYTES]);

/* Splits a comma-separated list and calls add() for each element. */
static int add_list(struct config *cfg, const char *who, const char *list, int default_port,
                    add_item_fn *add, char err[CONFIG_ERR_BYTES])
{
    char item[ADDR_HOST_MAX + CONFIG_ZONE_MAX + 20];
    const char *p = list;

    while (*p != '\0') {
        const char *e = strchr(p, ',');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);

        while (n > 0 && isspace((unsigned char)*p)) {
            p++;
            n--;
        }
        while (n > 0 && isspace((unsigned char)p[n - 1]))
            n--;
        if (n >= sizeof(item)) {
            errf(err, "%s: element '%.40s...' is too long", who, p);
            return -EINVAL;
        }
        if (n > 0) {
            memcpy(item, p, n);
            item[n] = '\0';
            if (add(cfg, who, item, default_port, err) < 0)
                return -EINVAL;
        }
        if (e == NULL)
            break;
        p = e + 1;
    }
    return 0;
}

/* A Kubernetes label value, non-empty: what a zone name is. */
static bool zone_name_ok(const char *v)
{
    size_t n = strlen(v);

    if (n == 0 || n > CONFIG_ZONE_MAX || !isalnum((unsigned char)v[0]) ||
        !isalnum((unsigned char)v[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)v[i]) && v[i] != '-' && v[i] != '_' && v[i] != '.')
            return false;
    return true;
}

/* ADDR=ZONE with ADDR a numeric IP or IP:PORT (an add_item_fn: no
 * default port). */
static int add_upstream_zone(struct config *cfg, const char *who, const char *v, int default_port,
                             char err[CONFIG_ERR_BYTES])
{
    const char *eq = strrchr(v, '=');
    char host[ADDR_HOST_MAX], a[ADDR_HOST_MAX];
    struct config_upstream_zone *z;
    const char *why = NULL;
    unsigned port = 0;
    size_t n;

    if (cfg->n_upstream_zones == CONFIG_MAX_UPSTREAM_ZONES) {
        errf(err, "%s=%s: at most %d may be given", who, v, CONFIG_MAX_UPSTREAM_ZONES);
        return -EINVAL;
    }
    z = &cfg->upstream_zones[cfg->n_upstream_zones];
    if (eq == NULL || eq == v || (size_t)(eq - v) >= sizeof(a)) {
        errf(err, "%s=%s: must be ADDR=ZONE (ADDR an IP or IP:PORT)", who, v);
        return -EINVAL;
    }
    memcpy(a, v, (size_t)(eq - v));
    a[eq - v] = '\0';
    /* A bare IP (v6 with or without brackets) matches any port. */
    n = strlen(a);
    if (a[0] == '[' && a[n - 1] == ']') {
        memcpy(host, a + 1, n - 2);
        host[n - 2] = '\0';
    } else {
        memcpy(host, a, n + 1);
    }
    if (addr_from_ip(host, 0, &z->addr) != 0 &&
        (addr_split(a, -1, host, &port, &why) < 0 || addr_from_ip(host, port, &z->addr) < 0)) {
        port = UINT_MAX;
        if (strchr(a, ':') == NULL)
            why = NULL; /* not an address at all, not one without a port */
    }
    if (port == UINT_MAX) {
        errf(err, "%s=%s: %s must be a numeric IP or IP:PORT%s%s", who, v, a,
             why != NULL ? ": " : "", why != NULL ? why : "");
        return -EINVAL;
    }
    if (!zone_name_ok(eq + 1)) {
        errf(err, "%s=%s: zone '%s' must be a label value (1..63 letters, digits, '-', '_', '.')",
             who, v, eq + 1);
        return -EINVAL;
    }
    z->any_port = port == 0;
    snprintf(z->zone, sizeof(z->zone), "%s", eq + 1);
    cfg->n_upstream_zones++;
    return 0;
}

/* --node-name: a DNS subdomain (what the API requires of a node's name),
 * so it can go into a request path as it is. */
static bool node_name_ok(const char *v)
{
    size_t n = strlen(v);

    if (n == 0 || n > 253 || !isalnum((unsigned char)v[0]) || !isalnum((unsigned char)v[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)v[i]) || isdigit((unsigned char)v[i]) || v[i] == '-' ||
              v[i] == '.'))
            return false;
    return true;
}

/* --node-name, when given, is a node name: 0, or -EINVAL with err set. */
static int node_name_check(const struct config *cfg, char err[CONFIG_ERR_BYTES])
{
    if (cfg->node_name == NULL || node_name_ok(cfg->node_name))
        return 0;
    errf(err, "--node-name=%s: must be a node name (lowercase letters, digits, '-', '.')",
         cfg->node_name);
    return -EINVAL;
}

/* --zone (a label value) and --upstream-zone (ADDR=ZONE, a list in the
 * environment). */
static int set_zone_option(struct config *cfg, enum opt_type type, const char *v, bool from_env,
                           const char *who, char err[CONFIG_ERR_BYTES])
{
    if (type == OPT_UPSTREAM_ZONE)
        return from_env ? add_list(cfg, who, v, 0, add_upstream_zone, err)
                        : add_upstream_zone(cfg, who, v, 0, err);
    if (!zone_name_ok(v)) {
        errf(err,
             "%s=%s: must be a label value: 1..63 letters, digits, '-', '_', '.', "
             "starting and ending with a letter or digit",
             who, v);
        return -EINVAL;
    }
    free(cfg->zone);
    cfg->zone = strdup(v);
    return cfg->zone == NULL ? -ENOMEM : 0;
}

/* The environment variable may list several, comma-separated. */
static int set_listen(struct config *cfg, const char *who, const char *v, bool from_env,
                      char err[CONFIG_ERR_BYTES])
{
    const char *p = v, *why;
    char item[ADDR_HOST_MAX + 16];

    while (*p != '\0') {
        const char *e = from_env ? strchr(p, ',') : NULL;
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);

        if (n >= sizeof(item)) {
            errf(err, "%s=%s: address is too long", who, v);
            return -EINVAL;
        }
        memcpy(item, p, n);
        item[n] = '\0';
        if (cfg->n_listen == CONFIG_MAX_LISTEN) {
            errf(err, "%s=%s: at most %d listen addresses", who, v, CONFIG_MAX_LISTEN);
            return -EINVAL;
        }
        if (addr_parse(item, ADDR_PORT_ZERO_OK, &cfg->listen[cfg->n_listen], &why) < 0) {
            errf(err, "%s=%s: %s", who, item, why);
            return -EINVAL;
        }
        cfg->n_listen++;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return 0;
}

static int set_string(char **sp, const char *who, const char *v, char err[CONFIG_ERR_BYTES])
{
    if (*v == '\0') {
        errf(err, "%s: must not be empty", who);
        return -EINVAL;
    }
    free(*sp);
    *sp = strdup(v);
    return *sp == NULL ? -ENOMEM : 0;
}

static int set_duration(unsigned *field, const struct opt *o, const char *who, const char *v,
                        char err[CONFIG_ERR_BYTES])
{
    bool zero_ok = o->type == OPT_DURATION0;
    char lo[16], hi[16];
    unsigned ms;
    int rc = config_duration_parse(v, o->max, zero_ok, &ms);

    if (rc == 0 && ms < o->min && !(zero_ok && ms == 0))
        rc = -ERANGE;
    if (rc == -EINVAL) {
        errf(err, "%s=%s: must be a duration like 500ms, 2s, 5m", who, v);
        return rc;
    }
    if (rc < 0) {
        config_duration_format(o->min, lo, sizeof(lo));
        config_duration_format(o->max, hi, sizeof(hi));
        errf(err, "%s=%s: must be %s%s..%s", who, v, zero_ok ? "0 or " : "",
             zero_ok && o->min == 0 ? "1ms" : lo, hi);
        return -EINVAL; /* the contract: every configuration error is -EINVAL */
    }
    *field = ms;
    return 0;
}

static int set_uint(unsigned *field, const struct opt *o, const char *who, const char *v,
                    char err[CONFIG_ERR_BYTES])
{
    unsigned long long n = 0;
    bool ok = *v != '\0';

    for (const char *p = v; *p != '\0' && ok; p++) {
        if (!isdigit((unsigned char)*p) || n > 100000000ull)
            ok = false;
        else
            n = n * 10 + (unsigned)(*p - '0');
    }
    if (!ok || n < o->min || n > o->max) {
        errf(err, "%s=%s: must be a whole number %u..%u", who, v, o->min, o->max);
        return -EINVAL;
    }
    *field = (unsigned)n;
    return 0;
}

static int set_enum(int *field, const struct opt *o, const char *who, const char *v,
                    char err[CONFIG_ERR_BYTES])
{
    for (int i = 0; o->choices[i] != NULL; i++) {
        if (strcmp(v, o->choices[i]) == 0) {
            *field = i;
            return 0;
        }
    }
    errf(err, "%s=%s: must be one of %s", who, v, o->help);
    return -EINVAL;
}

static int set_admin(struct config *cfg, const char *who, const char *v, char err[CONFIG_ERR_BYTES])
{
    const char *why;

    if (strcmp(v, "off") == 0) {
        cfg->admin_enabled = false;
        return 0;
    }
    if (addr_parse(v, ADDR_PORT_ZERO_OK, &cfg->admin_listen, &why) < 0) {
        errf(err, "%s=%s: %s (or 'off')", who, v, why);
        return -EINVAL;
    }
    cfg->admin_enabled = true;
    return 0;
}

/* Sets option o from the text v (from the environment when from_env). */
static int set_value(struct config *cfg, const struct opt *o, const char *v, bool from_env,
                     char err[CONFIG_ERR_BYTES])
{
    char *field = (char *)cfg + o->off;
    char who[64];
    bool b;

    origin(o, from_env, who, sizeof(who));
    switch (o->type) {
    case OPT_LISTEN:
        return set_listen(cfg, who, v, from_env, err);
    case OPT_SEED:
        if (from_env)
            return add_list(cfg, who, v, -1, add_seed, err);
        return add_seed(cfg, who, v, -1, err);
    case OPT_STRING:
        return set_string((char **)field, who, v, err);
    case OPT_BOOL:
        if (!parse_bool(v, &b)) {
            errf(err, "%s=%s: must be true or false", who, v);
            return -EINVAL;
        }
        *(bool *)field = b;
        return 0;
    case OPT_DURATION:
    case OPT_DURATION0:
        return set_duration((unsigned *)field, o, who, v, err);
    case OPT_UINT:
        return set_uint((unsigned *)field, o, who, v, err);
    case OPT_ENUM:
        return set_enum((int *)field, o, who, v, err);
    case OPT_ADMIN:
        return set_admin(cfg, who, v, err);
    case OPT_LOGLEVEL:
        if (log_level_parse(v, &cfg->log_level) < 0) {
            errf(err, "%s=%s: must be one of error, warn, info, debug", who, v);
            return -EINVAL;
        }
        return 0;
    case OPT_LOGFORMAT:
        if (log_format_parse(v, &cfg->log_format) < 0) {
            errf(err, "%s=%s: must be text or json", who, v);
            return -EINVAL;
        }
        return 0;
    case OPT_ZONE:
    case OPT_UPSTREAM_ZONE:
        return set_zone_option(cfg, o->type, v, from_env, who, err);
    }
    return -EINVAL;
}

static const char *env_get(char *const env[], const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; env != NULL && env[i] != NULL; i++)
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
            return env[i] + n + 1;
    return NULL;
}

/* Sets the defaults that are not zero. */
static int set_defaults(struct config *cfg, unsigned n_cpus, char err[CONFIG_ERR_BYTES])
{
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];

        if (o->def == NULL || o->type == OPT_SEED ||
            (o->type == OPT_BOOL && strcmp(o->def, "true") != 0))
            continue;
        if (set_value(cfg, o, o->def, false, err) < 0)
            return -EINVAL;
    }
    cfg->n_listen = 0; /* The default listener applies only if none is given. */
    cfg->workers = n_cpus < 1 ? 1 : n_cpus > 4 ? 4 : n_cpus;
    return 0;
}

/* The subcommand, then flags: they win over the environment. Marks each
 * option given in given[] and whether --in-cluster was. */
static int parse_flags(struct config *cfg, int argc, char *const argv[], bool given[N_OPTS],
                       bool *in_cluster_given, char err[CONFIG_ERR_BYTES])
{
    if (argc > 1 && strcmp(argv[1], "preflight") == 0)
        cfg->preflight = true;
    for (int i = cfg->preflight ? 2 : 1; i < argc; i++) {
        const char *a = argv[i], *eq, *v;
        const struct opt *o;
        size_t idx;
        int rc;

        if (strncmp(a, "--", 2) != 0) {
            errf(err, "%s: unexpected argument (options start with --; see --help)", a);
            return -EINVAL;
        }
        eq = strchr(a + 2, '=');
        o = find_opt(a + 2, eq != NULL ? (size_t)(eq - a - 2) : strlen(a + 2));
        if (o == NULL) {
            errf(err, "%.*s: unknown option (see --help)",
                 (int)(eq != NULL ? (size_t)(eq - a) : strlen(a)), a);
            return -EINVAL;
        }
        idx = (size_t)(o - opts);
        if (o->type == OPT_BOOL && eq == NULL) {
            v = "true";
        } else if (eq != NULL) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            errf(err, "--%s: needs a value (%s)", o->name, o->arg != NULL ? o->arg : "");
            return -EINVAL;
        }
        if (given[idx] && o->type != OPT_LISTEN && o->type != OPT_SEED &&
            o->type != OPT_UPSTREAM_ZONE) {
            errf(err,
                 "--%s=%s: given more than once (only --listen, --upstream and "
                 "--upstream-zone repeat)",
                 o->name, v);
            return -EINVAL;
        }
        given[idx] = true;
        if (o->type == OPT_SEED)
            cfg->seeds_from = "--upstream";
        if (o->off == O(in_cluster))
            *in_cluster_given = true;
        rc = set_value(cfg, o, v, false, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Then the environment, for what no flag set, and RKE's CP_HOSTS. */
static int parse_env(struct config *cfg, char *const env[], const bool given[N_OPTS],
                     bool *in_cluster_given, char err[CONFIG_ERR_BYTES])
{
    const char *v;
    int rc;

    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];

        if (given[i] || o->env == NULL)
            continue;
        v = env_get(env, o->env);
        if (v == NULL && o->type == OPT_SEED)
            v = env_get(env, "APILB_UPSTREAM");
        if (v == NULL || *v == '\0')
            continue;
        if (o->type == OPT_SEED)
            cfg->seeds_from = "APILB_UPSTREAMS";
        if (o->off == O(in_cluster))
            *in_cluster_given = true;
        rc = set_value(cfg, o, v, true, err);
        if (rc < 0)
            return rc;
    }
    /* RKE's nginx-proxy compatibility: CP_HOSTS=host1,host2 on port 6443. */
    if (cfg->n_seeds == 0 && (v = env_get(env, "CP_HOSTS")) != NULL && *v != '\0') {
        cfg->seeds_from = "CP_HOSTS";
        return add_list(cfg, "CP_HOSTS", v, 6443, add_seed, err);
    }
    return 0;
}

/* Where the upstreams come from: the default listener, --in-cluster when
 * the service-account token exists (asked of exists), and the rules
 * between the credentials, discovery and the static sources. */
static int settle_sources(struct config *cfg, bool in_cluster_given, config_exists_fn exists,
                          char err[CONFIG_ERR_BYTES])
{
    const char *why;

    if (cfg->n_listen == 0) {
        if (addr_parse("127.0.0.1:443", -1, &cfg->listen[0], &why) < 0)
            return -EINVAL;
        cfg->n_listen = 1;
    }
    if (!in_cluster_given && cfg->kubeconfig == NULL && cfg->discovery != WATCHER_DISCOVERY_OFF &&
        cfg->sa_dir != NULL && exists != NULL) {
        char tok[4096];

        snprintf(tok, sizeof(tok), "%s/token", cfg->sa_dir);
        cfg->in_cluster = exists(tok);
    }
    if (node_name_check(cfg, err) < 0)
        return -EINVAL;
    if (cfg->kubelet_kubeconfig != NULL && !cfg->preflight) {
        errf(err, "--kubelet-kubeconfig=%s: only for apilb preflight", cfg->kubelet_kubeconfig);
        return -EINVAL;
    }
    if (cfg->kubeconfig != NULL && cfg->in_cluster && in_cluster_given) {
        errf(err, "--in-cluster: cannot be combined with --kubeconfig=%s (choose one)",
             cfg->kubeconfig);
        return -EINVAL;
    }
    if (cfg->kubeconfig != NULL)
        cfg->in_cluster = false;
    if (cfg->discovery == WATCHER_DISCOVERY_OFF)
        cfg->in_cluster = false;
    else if (cfg->kubeconfig == NULL && !cfg->in_cluster)
        cfg->discovery = WATCHER_DISCOVERY_OFF;
    if (cfg->n_seeds == 0 && cfg->upstreams_file == NULL && cfg->state_file == NULL &&
        cfg->discovery == WATCHER_DISCOVERY_OFF) {
        errf(err, "no upstreams: give --upstream, --upstreams-file, --kubeconfig or "
                  "--in-cluster");
        return -EINVAL;
    }
    return 0;
}

/* --health-interval and --health-timeout are independent: a check may take
 * longer than the interval; the next one starts an interval after it ends
 * (health.c). --health-auth=kubeconfig needs readyz checks and credentials. */
static int check_health(const struct config *cfg, char err[CONFIG_ERR_BYTES])
{
    if (cfg->health_auth != CONFIG_HEALTH_AUTH_KUBECONFIG)
        return 0;
    if (cfg->health_check != CONFIG_HEALTH_READYZ) {
        errf(err, "--health-auth=kubeconfig: needs --health-check=readyz (got %s)",
             health_names[cfg->health_check]);
        return -EINVAL;
    }
    if (cfg->discovery == WATCHER_DISCOVERY_OFF) {
        errf(err, "--health-auth=kubeconfig: needs credentials: --kubeconfig or "
                  "--in-cluster (and --discovery not off)");
        return -EINVAL;
    }
    return 0;
}

/* No --listen address twice, none the admin endpoint's. */
static int check_listen(const struct config *cfg, char err[CONFIG_ERR_BYTES])
{
    char buf[ADDR_STRLEN];

    for (size_t i = 0; i < cfg->n_listen; i++) {
        for (size_t j = 0; j < i; j++) {
            if (addr_cmp(&cfg->listen[i], &cfg->listen[j]) == 0) {
                errf(err, "--listen=%s: given twice",
                     addr_format(&cfg->listen[i], buf, sizeof(buf)));
                return -EINVAL;
            }
        }
        if (cfg->admin_enabled && addr_port(&cfg->admin_listen) != 0 &&
            addr_cmp(&cfg->listen[i], &cfg->admin_listen) == 0) {
            errf(err, "--admin-listen=%s: is also a --listen address",
                 addr_format(&cfg->admin_listen, buf, sizeof(buf)));
            return -EINVAL;
        }
    }
    return 0;
}

int config_parse(struct config *cfg, int argc, char *const argv[], char *const env[],
                 unsigned n_cpus, config_exists_fn exists, char err[CONFIG_ERR_BYTES])
{
    bool given[N_OPTS] = {false};
    bool in_cluster_given = false;
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    err[0] = '\0';
    cfg->seeds_from = "";
    rc = set_defaults(cfg, n_cpus, err);
    if (rc == 0)
        rc = parse_flags(cfg, argc, argv, given, &in_cluster_given, err);
    if (rc == 0)
        rc = parse_env(cfg, env, given, &in_cluster_given, err);
    if (rc < 0 || cfg->show_help || cfg->show_version)
        return rc;
    /* Defaults that depend on other fields, then cross-field rules. */
    rc = settle_sources(cfg, in_cluster_given, exists, err);
    if (rc == 0)
        rc = check_health(cfg, err);
    if (rc == 0)
        rc = check_listen(cfg, err);
    return rc;
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        if (opts[i].type == OPT_STRING || opts[i].type == OPT_ZONE) {
            char **sp = (char **)((char *)cfg + opts[i].off);
            free(*sp);
            *sp = NULL;
        }
    }
    memset(cfg, 0, sizeof(*cfg));
}

void config_print(const struct config *cfg, FILE *out)
{
    char buf[ADDR_STRLEN], d[16];

    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        const char *field = (const char *)cfg + o->off;

        switch (o->type) {
        case OPT_LISTEN:
            for (size_t j = 0; j < cfg->n_listen; j++)
                fprintf(out, "listen = %s\n", addr_format(&cfg->listen[j], buf, sizeof(buf)));
            break;
        case OPT_SEED:
            for (size_t j = 0; j < cfg->n_seeds; j++) {
                const struct config_seed *sd = &cfg->seeds[j];
                bool v6 = strchr(sd->host, ':') != NULL;

                fprintf(out, "upstream = %s%s%s:%u (from %s)\n", v6 ? "[" : "", sd->host,
                        v6 ? "]" : "", sd->port, cfg->seeds_from);
            }
            if (cfg->n_seeds == 0)
                fprintf(out, "upstream = (none)\n");
            break;
        case OPT_STRING: {
            const char *s = *(char *const *)field;
            fprintf(out, "%s = %s\n", o->name, s != NULL ? s : "(none)");
            break;
        }
        case OPT_BOOL:
            if (o->env != NULL)
                fprintf(out, "%s = %s\n", o->name, *(const bool *)field ? "true" : "false");
            break;
        case OPT_DURATION:
        case OPT_DURATION0:
            config_duration_format(*(const unsigned *)field, d, sizeof(d));
            fprintf(out, "%s = %s\n", o->name, d);
            break;
        case OPT_UINT:
            fprintf(out, "%s = %u\n", o->name, *(const unsigned *)field);
            break;
        case OPT_ENUM:
            fprintf(out, "%s = %s\n", o->name, o->choices[*(const int *)field]);
            break;
        case OPT_ADMIN:
            fprintf(out, "%s = %s\n", o->name,
                    cfg->admin_enabled ? addr_format(&cfg->admin_listen, buf, sizeof(buf)) : "off");
            break;
        case OPT_LOGLEVEL:
            fprintf(out, "%s = %s\n", o->name, log_level_name(cfg->log_level));
            break;
        case OPT_LOGFORMAT:
            fprintf(out, "%s = %s\n", o->name,
                    cfg->log_format == LOG_FORMAT_JSON ? "json" : "text");
            break;
        case OPT_ZONE:
            fprintf(out, "%s = %s\n", o->name, cfg->zone != NULL ? cfg->zone : "(none)");
            break;
        case OPT_UPSTREAM_ZONE:
            for (size_t j = 0; j < cfg->n_upstream_zones; j++) {
                const struct config_upstream_zone *z = &cfg->upstream_zones[j];

                addr_format(&z->addr, buf, sizeof(buf));
                if (z->any_port)
                    *strrchr(buf, ':') = '\0';
                fprintf(out, "%s = %s=%s\n", o->name, buf, z->zone);
            }
            break;
        }
    }
}

void config_usage(FILE *out)
{
    fprintf(out, "usage: apilb [options]\n"
                 "       apilb status [--admin ADDR:PORT] [-o table|json]   what a running "
                 "apilb does (its admin endpoint)\n"
                 "       apilb preflight [options]   check this node before pointing kubelet "
                 "at apilb:\n"
                 "                                   one line per check, exit 0 only if none "
                 "failed\n"
                 "                                   (docs/preflight.md)\n\n"
                 "Node-local TCP load balancer for the Kubernetes API.\n\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        char left[64];

        snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg != NULL ? " " : "",
                 o->arg != NULL ? o->arg : "");
        fprintf(out, "  %-30s %s", left, o->help);
        if (o->def != NULL)
            fprintf(out, " (default %s)", o->def);
        if (o->env != NULL)
            fprintf(out, " [%s]", o->env);
        fprintf(out, "\n");
    }
    fprintf(out, "\nCP_HOSTS=host1,host2 (port 6443) is accepted for RKE nginx-proxy "
                 "compatibility.\nDurations are written like 500ms, 2s, 5m.\n");
}

const char *const *config_option_names(void)
{
    static const char *names[N_OPTS + 1];

    for (size_t i = 0; i < N_OPTS; i++)
        names[i] = opts[i].name;
    names[N_OPTS] = NULL;
    return names;
}
