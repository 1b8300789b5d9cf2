/* SPDX-License-Identifier: Apache-2.0 */
/* `apilb preflight`; see preflight.h. Every check prints its line as soon
 * as it is decided, so a slow one shows where it waits. */
#include "preflight.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apicheck.h"
#include "certcheck.h"
#include "fileread.h"
#include "listener.h"
#include "module.h"
#include "resolve.h"
#include "statefile.h"
#include "upfile.h"
#include "upstream.h"
#include "watcher.h"

#define CA_MAX (1u << 20)

struct preflight {
    const struct config *cfg;
    FILE *out;
    unsigned n_ok, n_warn, n_fail;
    unsigned timeout_ms;
    struct addr ups[UPSTREAM_MAX]; /* every apiserver apilb would use */
    size_t n_ups;
    const struct apicheck_ops *api; /* NULL until needed and loaded */
    bool api_tried;
    struct apicheck *creds; /* NULL without usable credentials */
    char *ca;               /* the cluster CA (PEM) apiservers are verified with */
    const char *ca_from;    /* where it came from, for messages */
    struct apicheck_kubeconfig kubelet;
    bool have_kubelet;
    char name[ADDR_HOST_MAX]; /* what kubelet verifies through apilb */
};

static void say(struct preflight *p, const char *status, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void say(struct preflight *p, const char *status, const char *fmt, ...)
{
    va_list ap;

    if (strcmp(status, "ok") == 0)
        p->n_ok++;
    else if (strcmp(status, "warn") == 0)
        p->n_warn++;
    else if (strcmp(status, "FAIL") == 0)
        p->n_fail++;
    fprintf(p->out, "%-4s ", status);
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    fflush(p->out);
}

/* The discovery module, loaded once; NULL after a FAIL line. */
static const struct apicheck_ops *api(struct preflight *p)
{
    char err[CONFIG_ERR_BYTES];

    if (!p->api_tried) {
        p->api_tried = true;
        p->api = module_load(WATCHER_MODULE, APICHECK_OPS_SYMBOL, err, sizeof(err));
        if (p->api == NULL)
            say(p, "FAIL", "discovery module: %s", err);
        else if (p->api->global_init() != 0) {
            say(p, "FAIL", "discovery module: cannot initialise libcurl");
            p->api = NULL;
        }
    }
    return p->api;
}

static void add_up(struct preflight *p, const struct addr *a)
{
    for (size_t i = 0; i < p->n_ups; i++)
        if (addr_cmp(&p->ups[i], a) == 0)
            return;
    if (p->n_ups < UPSTREAM_MAX)
        p->ups[p->n_ups++] = *a;
}

/* --- listen addresses ------------------------------------------------------ */

static void check_listen(struct preflight *p)
{
    for (size_t i = 0; i < p->cfg->n_listen; i++) {
        struct addr a = p->cfg->listen[i];
        char name[ADDR_STRLEN], who[256];
        int fd = listener_open(&a);

        addr_format(&p->cfg->listen[i], name, sizeof(name));
        if (fd >= 0) {
            /* Bound beside it (SO_REUSEPORT): a running apilb of this user,
             * or another program that would share the connections. */
            close(fd);
            listener_sharers(&p->cfg->listen[i], who, sizeof(who));
            if (who[0] != '\0') {
                say(p, "FAIL",
                    "listen %s: shared with %s: connections would go to it too "
                    "(SO_REUSEPORT); stop it or choose another --listen",
                    name, who);
                continue;
            }
            listener_holder(&p->cfg->listen[i], who, sizeof(who));
            if (strstr(who, "(apilb)") != NULL)
                say(p, "ok", "listen %s: held by apilb itself (%s)", name, who);
            else
                say(p, "ok", "listen %s: free", name);
        } else if (fd == -EADDRINUSE) {
            listener_holder(&p->cfg->listen[i], who, sizeof(who));
            if (strstr(who, "(apilb)") != NULL)
                say(p, "ok", "listen %s: held by apilb itself (%s)", name, who);
            else
                say(p, "FAIL", "listen %s: in use by %s: stop it or choose another --listen", name,
                    who[0] ? who : "another program (not visible from here)");
        } else if (fd == -EACCES && addr_port(&a) < 1024) {
            say(p, "warn",
                "listen %s: not tested: ports below 1024 need root or "
                "CAP_NET_BIND_SERVICE (run preflight as root)",
                name);
        } else {
            say(p, "FAIL", "listen %s: cannot listen: %s", name, strerror(-fd));
        }
    }
}

/* --- where the apiservers come from ---------------------------------------- */

static void seeds_of(struct preflight *p, const struct config_seed *sd, size_t n, const char *who)
{
    struct addr a[UPSTREAM_MAX];
    char err[CONFIG_ERR_BYTES], list[1024];
    size_t got = 0;

    for (size_t i = 0; i < n; i++)
        if (resolve_seed(&sd[i], a, UPSTREAM_MAX, &got, err, sizeof(err)) < 0)
            say(p, "warn", "%s=%s:%u: %s", who, sd[i].host, sd[i].port, err);
    for (size_t i = 0; i < got; i++)
        add_up(p, &a[i]);
    addr_join(a, got, ", ", list, sizeof(list));
    if (got > 0)
        say(p, "ok", "%s: %zu apiserver%s (%s)", who, got, got == 1 ? "" : "s", list);
}

static void load_sources(struct preflight *p)
{
    const struct config *cfg = p->cfg;
    char err[CONFIG_ERR_BYTES];

    if (cfg->n_seeds > 0)
        seeds_of(p, cfg->seeds, cfg->n_seeds, cfg->seeds_from);
    if (cfg->upstreams_file != NULL) {
        struct config_seed *sd = malloc(sizeof(*sd) * UPSTREAM_MAX);
        int n = sd != NULL ? upfile_read(cfg->upstreams_file, sd, UPSTREAM_MAX, err, sizeof(err))
                           : -ENOMEM;

        if (n < 0)
            say(p, "FAIL", "%s", sd != NULL ? err : "--upstreams-file: out of memory");
        else
            seeds_of(p, sd, (size_t)n, "--upstreams-file");
        free(sd);
    }
    if (cfg->state_file != NULL) {
        struct addr a[UPSTREAM_MAX];
        char list[1024];
        int n = statefile_read(cfg->state_file, a, UPSTREAM_MAX, err, sizeof(err));

        if (n == -ENOENT) {
            say(p, "warn",
                "--state-file=%s: does not exist yet (apilb writes it once it "
                "knows the apiservers)",
                cfg->state_file);
        } else if (n < 0) {
            say(p, "warn", "--state-file=%s: apilb would ignore it: %s", cfg->state_file, err);
        } else {
            for (int i = 0; i < n; i++)
                add_up(p, &a[i]);
            addr_join(a, (size_t)n, ", ", list, sizeof(list));
            say(p, "ok", "--state-file: %d apiserver%s (%s)", n, n == 1 ? "" : "s", list);
        }
    }
}

/* Reads the credentials and lists the apiservers the cluster publishes. */
static void discover(struct preflight *p)
{
    const struct config *cfg = p->cfg;
    char err[APICHECK_MSG_BYTES], server[ADDR_HOST_MAX + 64], list[1024];
    struct addr found[UPSTREAM_MAX];
    size_t n = 0;
    bool slices = cfg->discovery != WATCHER_DISCOVERY_ENDPOINTS;
    int rc;

    if (cfg->discovery == WATCHER_DISCOVERY_OFF || api(p) == NULL)
        return;
    rc = p->api->open(cfg->kubeconfig, cfg->sa_dir, p->timeout_ms, &p->creds, err, sizeof(err));
    if (rc < 0) {
        say(p, "FAIL", "credentials: %s", err);
        p->creds = NULL;
        return;
    }
    p->api->describe(p->creds, server, sizeof(server));
    say(p, "ok", "credentials: %s%s: server %s", cfg->kubeconfig ? "--kubeconfig=" : "--in-cluster",
        cfg->kubeconfig ? cfg->kubeconfig : "", server);
    rc = p->api->discover(p->creds, slices, p->ups, p->n_ups, found, UPSTREAM_MAX, &n, err,
                          sizeof(err));
    if (rc == -EACCES && cfg->discovery == WATCHER_DISCOVERY_AUTO) {
        say(p, "warn", "discovery: EndpointSlices: %s: apilb falls back to Endpoints", err);
        slices = false;
        rc = p->api->discover(p->creds, slices, p->ups, p->n_ups, found, UPSTREAM_MAX, &n, err,
                              sizeof(err));
    }
    if (rc < 0) {
        say(p, "FAIL", "discovery: LIST %s: %s", slices ? "endpointslices" : "endpoints", err);
        return;
    }
    for (size_t i = 0; i < n; i++)
        add_up(p, &found[i]);
    addr_join(found, n, ", ", list, sizeof(list));
    if (n == 0)
        say(p, "FAIL", "discovery: the cluster lists no ready apiserver in default/kubernetes");
    else
        say(p, "ok", "discovery: the cluster lists %zu apiserver%s (%s)", n, n == 1 ? "" : "s",
            list);
}

/* --- the cluster CA and the name kubelet verifies ----------------------------- */

/* Whether host:port (from a kubeconfig's server:) reaches one of the
 * listen addresses. */
static bool points_at_apilb(const struct config *cfg, const char *host, unsigned port)
{
    struct addr a;
    bool localhost = strcmp(host, "localhost") == 0;

    if (!localhost && addr_from_ip(host, port, &a) < 0)
        return false;
    for (size_t i = 0; i < cfg->n_listen; i++) {
        const struct addr *l = &cfg->listen[i];
        struct addr any;
        bool wildcard =
            addr_from_ip(l->ss.ss_family == AF_INET ? "0.0.0.0" : "::", addr_port(l), &any) == 0 &&
            addr_cmp(&any, l) == 0;

        if (addr_port(l) != port)
            continue;
        if (localhost ? addr_is_loopback(l) || wildcard
                      : addr_cmp(&a, l) == 0 || (wildcard && a.ss.ss_family == l->ss.ss_family))
            return true;
    }
    return false;
}

static void read_kubelet(struct preflight *p)
{
    char err[CONFIG_ERR_BYTES];

    if (p->cfg->kubelet_kubeconfig == NULL || api(p) == NULL)
        return;
    if (p->api->kubeconfig_read(p->cfg->kubelet_kubeconfig, &p->kubelet, err, sizeof(err)) < 0)
        say(p, "FAIL", "%s", err);
    else
        p->have_kubelet = true;
}

/* The CA apiservers are verified with: --health-ca, else the credentials',
 * else the kubelet's. */
static void pick_ca(struct preflight *p)
{
    const struct config *cfg = p->cfg;
    size_t len;
    int rc;

    if (cfg->health_ca != NULL) {
        rc = fileread_all(cfg->health_ca, CA_MAX, &p->ca, &len);
        if (rc < 0) {
            say(p, "FAIL", "--health-ca=%s: cannot read: %s", cfg->health_ca, strerror(-rc));
            p->ca = NULL;
        }
        p->ca_from = "--health-ca";
    } else if (p->creds != NULL && (p->ca = p->api->ca(p->creds)) != NULL) {
        p->ca_from = cfg->kubeconfig != NULL ? "--kubeconfig" : "--in-cluster";
    } else if (p->have_kubelet && p->kubelet.ca_pem != NULL) {
        p->ca = strdup(p->kubelet.ca_pem);
        p->ca_from = "--kubelet-kubeconfig";
    }
    if (p->ca == NULL && cfg->health_ca == NULL)
        say(p, "warn",
            "cluster CA: none known (give --health-ca, credentials or "
            "--kubelet-kubeconfig): apiserver certificates are not verified");
}

/* The name kubelet verifies through apilb: its tls-server-name, else the
 * host of its server: once that points at apilb (the listen address when it
 * does not yet). */
static void pick_name(struct preflight *p)
{
    char ip[ADDR_STRLEN], *colon;

    if (p->have_kubelet && p->kubelet.tls_name[0] != '\0') {
        snprintf(p->name, sizeof(p->name), "%s", p->kubelet.tls_name);
        return;
    }
    if (p->have_kubelet && points_at_apilb(p->cfg, p->kubelet.host, p->kubelet.port)) {
        snprintf(p->name, sizeof(p->name), "%s", p->kubelet.host);
        return;
    }
    addr_format(&p->cfg->listen[0], ip, sizeof(ip));
    colon = strrchr(ip, ':');
    *colon = '\0';
    if (strcmp(ip, "0.0.0.0") == 0)
        snprintf(ip, sizeof(ip), "127.0.0.1");
    if (strcmp(ip, "[::]") == 0)
        snprintf(ip, sizeof(ip), "::1");
    snprintf(p->name, sizeof(p->name), "%.*s", (int)strcspn(ip + (ip[0] == '['), "]"),
             ip + (ip[0] == '['));
}

/* --- the apiservers ------------------------------------------------------------- */

static void check_tls(struct preflight *p)
{
    char lacking[1024] = "";
    size_t off = 0;

    if (p->n_ups == 0) {
        say(p, "FAIL",
            "apiservers: none known (give --upstream, --upstreams-file, --state-file "
            "or credentials)");
        return;
    }
    for (size_t i = 0; i < p->n_ups; i++) {
        char a[ADDR_STRLEN], detail[1024];
        enum certcheck_result r =
            certcheck_probe(&p->ups[i], p->ca, p->name, p->timeout_ms, detail, sizeof(detail));

        addr_format(&p->ups[i], a, sizeof(a));
        switch (r) {
        case CERTCHECK_OK:
            say(p, "ok", "tls %s: trusted by the cluster CA (%s), covers %s", a, p->ca_from,
                p->name);
            break;
        case CERTCHECK_UNVERIFIED:
            say(p, "warn", "tls %s: covers %s; chain not verified (no cluster CA)", a, p->name);
            break;
        case CERTCHECK_NAME:
            say(p, "FAIL", "tls %s: certificate does not cover %s (it has %s)", a, p->name, detail);
            if (off + ADDR_STRLEN + 2 < sizeof(lacking))
                off += (size_t)snprintf(lacking + off, sizeof(lacking) - off, "%s%s",
                                        off ? ", " : "", a);
            break;
        case CERTCHECK_UNTRUSTED:
            say(p, "FAIL", "tls %s: certificate not trusted by the cluster CA (%s): %s", a,
                p->ca_from, detail);
            break;
        case CERTCHECK_UNREACHABLE:
        case CERTCHECK_HANDSHAKE:
            say(p, "FAIL", "tls %s: no answer: %s", a, detail);
            break;
        }
    }
    if (lacking[0] != '\0')
        say(p, "fix",
            "kubelet verifies %s through apilb and %s do%s not carry it: add %s to "
            "apiServer.certSANs (kubeadm ClusterConfiguration) and regenerate the apiserver "
            "certificates (kubeadm init phase certs apiserver), or set tls-server-name: "
            "kubernetes in the kubelet's kubeconfig",
            p->name, lacking, strchr(lacking, ',') != NULL ? "" : "es", p->name);
}

static void check_rbac(struct preflight *p)
{
    static const char *const what[][3] = {
        {"list", "discovery.k8s.io", "endpointslices"},
        {"watch", "discovery.k8s.io", "endpointslices"},
        {"list", "", "endpoints"},
        {"watch", "", "endpoints"},
    };
    bool denied = false;

    for (size_t i = 0; i < sizeof(what) / sizeof(what[0]); i++) {
        char msg[APICHECK_MSG_BYTES], res[64];
        bool allowed = false;
        int rc = p->api->access(p->creds, p->ups, p->n_ups, what[i][0], what[i][1], what[i][2],
                                &allowed, msg, sizeof(msg));

        snprintf(res, sizeof(res), "%s%s%s", what[i][2], what[i][1][0] ? "." : "", what[i][1]);
        if (rc < 0)
            say(p, "FAIL", "rbac %s %s in default: cannot ask (SelfSubjectAccessReview): %s",
                what[i][0], res, msg);
        else if (!allowed)
            say(p, "FAIL", "rbac %s %s in default: denied%s%s%s", what[i][0], res,
                msg[0] ? " (" : "", msg, msg[0] ? ")" : "");
        else
            say(p, "ok", "rbac %s %s in default: allowed", what[i][0], res);
        denied |= rc == 0 && !allowed;
    }
    if (denied)
        say(p, "fix",
            "grant apilb's identity get, list and watch on endpointslices "
            "(discovery.k8s.io) and endpoints in namespace default (the chart's Role; "
            "docs/security.md)");
}

/* --prefer zone with --node-name and no --zone: the watcher reads the
 * node object (docs/zones.md). */
static void check_rbac_nodes(struct preflight *p)
{
    char msg[APICHECK_MSG_BYTES];
    bool allowed = false;
    int rc;

    if (p->cfg->prefer != TIER_MODE_ZONE || p->cfg->zone != NULL || p->cfg->node_name == NULL)
        return;
    rc = p->api->access(p->creds, p->ups, p->n_ups, "get", "", "nodes", &allowed, msg, sizeof(msg));
    if (rc < 0) {
        say(p, "FAIL", "rbac get nodes: cannot ask (SelfSubjectAccessReview): %s", msg);
    } else if (allowed) {
        say(p, "ok", "rbac get nodes: allowed (--node-name %s)", p->cfg->node_name);
    } else {
        say(p, "FAIL", "rbac get nodes: denied%s%s%s", msg[0] ? " (" : "", msg, msg[0] ? ")" : "");
        say(p, "fix",
            "grant apilb's identity get on nodes (the chart's ClusterRole with prefer=zone and no "
            "zone), or give --zone; without it the node has no zone (docs/zones.md)");
    }
}

static void check_readyz(struct preflight *p)
{
    for (size_t i = 0; i < p->n_ups; i++) {
        char a[ADDR_STRLEN], msg[APICHECK_MSG_BYTES];
        long code = p->api->readyz(p->creds, &p->ups[i], msg, sizeof(msg));

        addr_format(&p->ups[i], a, sizeof(a));
        if (code == 200)
            say(p, "ok", "readyz %s: HTTP 200", a);
        else if (code > 0)
            say(p, "FAIL", "readyz %s: HTTP %ld%s%s%s", a, code, msg[0] ? " (failed: " : "", msg,
                msg[0] ? ")" : "");
        else
            say(p, "FAIL", "readyz %s: no answer: %s", a, msg);
    }
}

static void check_kubelet(struct preflight *p)
{
    const char *path = p->cfg->kubelet_kubeconfig;
    char host[ADDR_HOST_MAX + 2], want[ADDR_STRLEN];

    if (!p->have_kubelet)
        return;
    snprintf(host, sizeof(host), strchr(p->kubelet.host, ':') ? "[%s]" : "%s", p->kubelet.host);
    addr_format(&p->cfg->listen[0], want, sizeof(want));
    if (points_at_apilb(p->cfg, p->kubelet.host, p->kubelet.port))
        say(p, "ok", "kubelet kubeconfig %s: server https://%s:%u is apilb's listener", path, host,
            p->kubelet.port);
    else
        say(p, "FAIL",
            "kubelet kubeconfig %s: server https://%s:%u is not apilb's listener; "
            "set server: https://%s",
            path, host, p->kubelet.port, want);
    if (p->kubelet.ca_pem == NULL)
        say(p, "warn",
            "kubelet kubeconfig %s: names no certificate-authority (kubelet would "
            "trust the system CAs)",
            path);
    else if (p->ca == NULL || strcmp(p->ca_from, "--kubelet-kubeconfig") == 0)
        say(p, "warn",
            "kubelet kubeconfig %s: its CA is not compared: apilb knows no other "
            "cluster CA (give --health-ca or credentials)",
            path);
    else if (certcheck_ca_shared(p->kubelet.ca_pem, p->ca))
        say(p, "ok", "kubelet kubeconfig %s: its CA is the cluster CA (%s)", path, p->ca_from);
    else
        say(p, "FAIL", "kubelet kubeconfig %s: its CA is not the cluster CA apilb uses (%s)", path,
            p->ca_from);
}

int preflight_run(const struct config *cfg, FILE *out)
{
    struct preflight *p = calloc(1, sizeof(*p));
    int rc;

    if (p == NULL) {
        fprintf(stderr, "apilb: out of memory\n");
        return EXIT_FAILURE;
    }
    p->cfg = cfg;
    p->out = out;
    p->ca_from = "";
    p->timeout_ms = cfg->connect_timeout_ms + cfg->health_timeout_ms;
    check_listen(p);
    load_sources(p);
    discover(p);
    read_kubelet(p);
    pick_ca(p);
    pick_name(p);
    check_tls(p);
    if (p->creds != NULL) {
        check_rbac(p);
        check_rbac_nodes(p);
        check_readyz(p);
    }
    check_kubelet(p);
    fprintf(out, "preflight: %u ok, %u warning%s, %u failed\n", p->n_ok, p->n_warn,
            p->n_warn == 1 ? "" : "s", p->n_fail);
    rc = p->n_fail == 0 ? 0 : 1;
    if (p->api != NULL) {
        p->api->close(p->creds);
        p->api->global_cleanup();
    }
    free(p->kubelet.ca_pem);
    free(p->ca);
    free(p);
    return rc;
}
