/* SPDX-License-Identifier: Apache-2.0 */
/* The watcher thread: LIST then WATCH the apiservers of the cluster; see
 * watcher.h. One blocking libcurl transfer at a time on this thread; the
 * progress callback runs at least once a second during a transfer and does
 * the timed work (stop, stall watchdog, debounced publish, credential file
 * changes). */
#define LOG_MODULE "watcher"
#include "watcher.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "clock.h"
#include "credcurl.h"
#include "endpoints.h"
#include "eventstream.h"
#include "filewatch.h"
#include "jsonlimit.h"
#include "kubeconfig.h"
#include "log.h"
#include "nodezone.h"

#define LIST_MAX_BYTES (8u << 20)
#define LIST_TIMEOUT_MS 30000
#define ROUTE_TRIES 3
#define TOKEN_MAX 16384
#define TLS_MEMO_MAX 32

enum mode {
    MODE_SLICES = 0,
    MODE_ENDPOINTS,
};

/* Why a watch ended, as set by the callbacks. */
enum stop_reason {
    END_NONE = 0,
    END_STOP,    /* watcher_stop() */
    END_STALL,   /* no byte for stall_ms */
    END_RELIST,  /* ERROR event 410 / too large RV */
    END_ERROR,   /* ERROR event of another kind */
    END_GARBAGE, /* not JSON, or an event we cannot use */
    END_CREDS,   /* a credential file changed */
};

/* The name an apiserver's certificate was last verified for. */
struct tls_memo {
    struct addr a;
    char name[ADDR_HOST_MAX];
};

struct watcher {
    struct watcher_config cfg;
    struct kube_creds creds;
    watcher_publish_fn publish;
    watcher_route_fn route;
    void *arg;
    pthread_t thread;
    _Atomic bool stop;
    pthread_mutex_t mu; /* stats, and the condition for sleeping */
    pthread_cond_t cv;
    struct watcher_stats stats;

    enum mode mode;
    bool auto_mode;
    char rv[64];
    struct endpoints_cache cache;
    struct watcher_endpoint published[ADDR_SET_MAX];
    size_t n_published;
    bool have_published;
    struct watcher_endpoint pending[ADDR_SET_MAX];
    size_t n_pending;
    uint64_t pending_since_ms; /* 0 = nothing pending */
    /* The pending set looks like half of a slice replacement (two slices of
     * one family disagree, or a family vanished): held since then (0: not). */
    uint64_t held_since_ms;
    char held_why[600];
    struct watcher_endpoint scratch[ADDR_SET_MAX];
    bool warned_empty;
    struct backoff backoff;
    struct filewatch files;        /* the kubeconfig (or service account) and its files */
    bool reload;                   /* re-read the credentials before the next request */
    char *ca_seen;                 /* the CA bundle last handed to ca_changed */
    struct watcher_auth auth_seen; /* the client credentials last handed to auth_changed */

    /* --node-name (node_fetch) */
    char node_zone[ZONE_NAME_MAX + 1]; /* the node object's zone last handed to node_zone */
    bool node_zone_told;               /* node_zone was called at all */
    char node_why[1024];               /* the last warning about the node object */

    /* The running request. */
    struct eventstream es;
    char *body;
    size_t body_len;
    uint64_t last_byte_ms;
    unsigned watch_events;
    enum stop_reason end;
    int transfer_err; /* the last transfer's CURLcode as a negative errno */
    uint64_t retry_after_ms;
    struct addr routed; /* the apiserver of the last request */
    bool routed_ok;     /* routed is set (else the kubeconfig's server) */
    struct addr avoid;  /* it answered Retry-After: others first */
    bool avoiding;
    struct tls_memo memo[TLS_MEMO_MAX]; /* see tls_names() */
    size_t n_memo;
    const char *try_name;         /* the name the running transfer verifies, until */
    const struct addr *try_route; /* header_cb has seen it verified (borrowed) */
};

static void set_state(struct watcher *w, enum watcher_state s)
{
    pthread_mutex_lock(&w->mu);
    w->stats.state = (int)s;
    pthread_mutex_unlock(&w->mu);
}

#define STAT_ADD(w, field)                                                                         \
    do {                                                                                           \
        pthread_mutex_lock(&(w)->mu);                                                              \
        (w)->stats.field++;                                                                        \
        pthread_mutex_unlock(&(w)->mu);                                                            \
    } while (0)

static void count_error(struct watcher *w, enum watcher_error kind)
{
    pthread_mutex_lock(&w->mu);
    w->stats.errors++;
    w->stats.errors_by_kind[kind]++;
    pthread_mutex_unlock(&w->mu);
}

static const char *mode_name(enum mode m)
{
    return m == MODE_SLICES ? "endpointslices" : "endpoints";
}

/* Sleeps up to ms, waking early on watcher_stop(). Returns false if stopped. */
static bool nap(struct watcher *w, uint64_t ms)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!atomic_load(&w->stop)) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&w->mu);
    return !atomic_load(&w->stop);
}

/* --- publishing ----------------------------------------------------------- */

/* "10.0.0.1:6443,..." into set; "10.0.0.1:6443=zone-a,..." into zones for
 * the endpoints that have a zone ("" when none has). */
static void format_set(const struct watcher_endpoint *e, size_t n, char *set, char *zones,
                       size_t len)
{
    size_t off = 0, zoff = 0;

    set[0] = zones[0] = '\0';
    for (size_t i = 0; i < n && off + ADDR_STRLEN + 2 < len; i++) {
        char name[ADDR_STRLEN];

        addr_format(&e[i].addr, name, sizeof(name));
        off += (size_t)snprintf(set + off, len - off, "%s%s", i ? "," : "", name);
        if (e[i].zone.name[0] != '\0' && zoff + ADDR_STRLEN + ZONE_NAME_MAX + 2 < len)
            zoff += (size_t)snprintf(zones + zoff, len - zoff, "%s%s=%s", zoff ? "," : "", name,
                                     e[i].zone.name);
    }
}

/* How long a set that looks like half of a slice replacement is held. */
static uint64_t hold_ms(const struct watcher *w)
{
    return 10u * (uint64_t)w->cfg.debounce_ms;
}

/* Publishes the pending set once it has been stable for the debounce time
 * and, when it looks like half of a replacement, once the hold is over. */
static void publish_due(struct watcher *w)
{
    char set[1024], zones[1024];
    uint64_t now = clock_now_ms();

    if (w->pending_since_ms == 0 || now - w->pending_since_ms < w->cfg.debounce_ms)
        return;
    if (w->held_since_ms != 0) {
        if (now - w->held_since_ms < hold_ms(w))
            return;
        log_warn("EndpointSlices still disagree: applying what they list",
                 "source=%s held_ms=%" PRIu64 " why=\"%s\" resource_version=%s", mode_name(w->mode),
                 now - w->held_since_ms, log_quote(w->held_why), log_quote(w->rv));
        w->held_since_ms = 0;
    }
    w->pending_since_ms = 0;
    if (w->have_published && endpoints_same(w->pending, w->n_pending, w->published, w->n_published))
        return;
    memcpy(w->published, w->pending, w->n_pending * sizeof(w->pending[0]));
    w->n_published = w->n_pending;
    w->have_published = true;
    format_set(w->published, w->n_published, set, zones, sizeof(set));
    log_info("apiservers discovered",
             "source=%s upstreams=%zu set=\"%s\" zones=\"%s\" resource_version=%s",
             mode_name(w->mode), w->n_published, set, zones, log_quote(w->rv));
    STAT_ADD(w, publishes);
    w->publish(w->arg, w->published, w->n_published, w->rv);
}

/* Whether the merged set looks like half of a slice replacement, with why
 * (for the log). The apiserver's reconciler writes a family's whole set
 * into one slice and replaces a slice by adding the new one and deleting
 * the old, or the other way round: two slices of one family that disagree
 * mean the old one is still there; a family that vanishes while another
 * stays means its slice was deleted before its successor was added. */
static bool looks_transient(struct watcher *w, const struct endpoints_split *split, size_t n,
                            char *why, size_t len)
{
    int lost;

    if (split->found) {
        snprintf(why, len, "EndpointSlices %s and %s (%s) list different apiservers", split->a,
                 split->b, split->family == AF_INET ? "IPv4" : "IPv6");
        return true;
    }
    /* One Endpoints object changes whole: no replacement to wait for. */
    lost = w->have_published && w->mode == MODE_SLICES
               ? endpoints_family_lost(w->published, w->n_published, w->scratch, n)
               : 0;
    if (lost != 0) {
        snprintf(why, len, "no %s apiserver is listed any more", lost == AF_INET ? "IPv4" : "IPv6");
        return true;
    }
    return false;
}

/* Recomputes the set from the cache after a change. */
static void cache_changed(struct watcher *w)
{
    struct watcher_endpoint *now = w->scratch;
    struct endpoints_split split;
    size_t n = endpoints_cache_merge(&w->cache, now, ADDR_SET_MAX, &split);
    char why[sizeof(w->held_why)];
    bool transient;

    pthread_mutex_lock(&w->mu);
    w->stats.last_sync_unix_ms = clock_wall_ms();
    snprintf(w->stats.resource_version, sizeof(w->stats.resource_version), "%s", w->rv);
    pthread_mutex_unlock(&w->mu);
    if (n == 0) {
        if (!w->warned_empty)
            log_warn("the cluster lists no ready apiserver: keeping the current upstreams",
                     "source=%s resource_version=%s", mode_name(w->mode), log_quote(w->rv));
        w->warned_empty = true;
        w->pending_since_ms = 0; /* an empty set is never applied */
        w->held_since_ms = 0;
        return;
    }
    w->warned_empty = false;
    if (n > ADDR_SET_MAX) {
        log_warn_limited("set-over-bound", 60000,
                         "the cluster lists more apiservers than apilb keeps: set refused, "
                         "keeping the current upstreams",
                         "source=%s addresses=%zu max=%d resource_version=%s", mode_name(w->mode),
                         n, ADDR_SET_MAX, log_quote(w->rv));
        count_error(w, WATCHER_ERR_PARSE);
        w->pending_since_ms = 0; /* nor is a set over the bound */
        w->held_since_ms = 0;
        return;
    }
    transient = looks_transient(w, &split, n, why, sizeof(why));
    if (!transient) {
        w->held_since_ms = 0;
    } else if (w->held_since_ms == 0) {
        w->held_since_ms = clock_now_ms();
        snprintf(w->held_why, sizeof(w->held_why), "%s", why);
        log_info("EndpointSlice replacement in flight: holding the current upstreams",
                 "source=%s why=\"%s\" hold_ms=%" PRIu64 " resource_version=%s", mode_name(w->mode),
                 log_quote(why), hold_ms(w), log_quote(w->rv));
    }
    if (w->pending_since_ms != 0 && endpoints_same(now, n, w->pending, w->n_pending))
        return; /* already waiting for this one */
    if (w->have_published && endpoints_same(now, n, w->published, w->n_published)) {
        w->pending_since_ms = 0; /* flapped back: nothing to do */
        w->held_since_ms = 0;
        return;
    }
    memcpy(w->pending, now, n * sizeof(now[0]));
    w->n_pending = n;
    w->pending_since_ms = clock_now_ms();
    publish_due(w);
}

/* --- credentials files ------------------------------------------------------ */

/* Follows the files the credentials come from. */
static void follow_files(struct watcher *w)
{
    char path[4096];

    filewatch_free(&w->files);
    filewatch_init(&w->files);
    if (w->cfg.kubeconfig != NULL) {
        filewatch_add(&w->files, w->cfg.kubeconfig);
    } else {
        snprintf(path, sizeof(path), "%s/token", w->cfg.sa_dir);
        filewatch_add(&w->files, path);
        snprintf(path, sizeof(path), "%s/ca.crt", w->cfg.sa_dir);
        filewatch_add(&w->files, path);
    }
    filewatch_add(&w->files, w->creds.ca_file);
    filewatch_add(&w->files, w->creds.cert_file);
    filewatch_add(&w->files, w->creds.key_file);
    filewatch_add(&w->files, w->creds.token_file);
}

/* Tells the proxy about a CA bundle it has not seen (health checks verify
 * apiservers with it), the first one too: a CA file that was missing when
 * the proxy started and appeared later (static-pod mode writes the token
 * before ca.crt) must reach the checks. The proxy ignores a bundle equal to
 * the one it already trusts (the one it read at start). */
static void ca_announce(struct watcher *w)
{
    char *ca = kube_creds_ca(&w->creds);

    if (ca == NULL || (w->ca_seen != NULL && strcmp(ca, w->ca_seen) == 0)) {
        free(ca);
        return;
    }
    if (w->cfg.ca_changed != NULL)
        w->cfg.ca_changed(w->arg, ca);
    free(w->ca_seen);
    w->ca_seen = ca;
}

static bool same_str(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

/* Hands the client credentials to the proxy (health checks that present
 * them) when they differ from what it was handed last: a rotated token,
 * kubelet's renewed client certificate. A part that cannot be read now
 * (a file between its unlink and rename) waits for the next reload. */
static void auth_announce(struct watcher *w)
{
    struct watcher_auth a;
    const char *what;
    int rc;

    if (w->cfg.auth_changed == NULL)
        return;
    rc = kube_creds_client(&w->creds, &a.cert_pem, &a.key_pem, &a.token, &what);
    if (rc < 0) {
        log_warn("client credentials for the health checks cannot be read: keeping the old ones",
                 "source=%s part=\"%s\" err=\"%s\"", w->creds.source, what, strerror(-rc));
        return;
    }
    if (same_str(a.cert_pem, w->auth_seen.cert_pem) && same_str(a.key_pem, w->auth_seen.key_pem) &&
        same_str(a.token, w->auth_seen.token)) {
        watcher_auth_free(&a);
        return;
    }
    w->cfg.auth_changed(w->arg, &a);
    watcher_auth_free(&w->auth_seen);
    w->auth_seen = a;
}

/* Re-reads the kubeconfig (or service account): a rotated token, client
 * certificate or CA, or an edited kubeconfig. Unusable new credentials are
 * logged and the old ones kept. Watcher thread, between requests. */
static void creds_reload(struct watcher *w)
{
    struct kube_creds fresh;
    char err[512];
    int rc;

    w->reload = false;
    rc = w->cfg.kubeconfig != NULL
             ? kube_creds_load_kubeconfig(w->cfg.kubeconfig, &fresh, err, sizeof(err))
             : kube_creds_load_incluster(w->cfg.sa_dir, &fresh, err, sizeof(err));
    if (rc < 0) {
        log_warn("credentials changed but cannot be used: keeping the old ones",
                 "source=%s err=\"%s\"", w->creds.source, log_quote(err));
        return;
    }
    if (fresh.insecure && !w->creds.insecure)
        log_warn("INSECURE: the kubeconfig now disables TLS verification of the apiserver "
                 "(insecure-skip-tls-verify)",
                 "kubeconfig=\"%s\"", log_quote(w->cfg.kubeconfig));
    kube_creds_free(&w->creds);
    w->creds = fresh;
    follow_files(w);
    STAT_ADD(w, credential_reloads);
    log_info("credentials re-read", "source=%s server=\"%s:%u\" tls_name=%s", w->creds.source,
             log_quote(w->creds.origin), w->creds.port, w->creds.tls_name);
    ca_announce(w);
    auth_announce(w);
}

/* --- one HTTP request --------------------------------------------------------- */

static int on_event(void *arg, json_t *ev);
static void tls_verified(struct watcher *w, const struct addr *route, const char *name);

static size_t write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct watcher *w = arg;
    size_t n = size * nmemb;

    w->last_byte_ms = clock_now_ms();
    if (w->body != NULL) { /* LIST: collect */
        if (w->body_len + n > LIST_MAX_BYTES) {
            w->end = END_GARBAGE;
            return 0;
        }
        memcpy(w->body + w->body_len, data, n);
        w->body_len += n;
        return n;
    }
    if (w->end != END_NONE)
        return 0;
    switch (eventstream_feed(&w->es, data, n, on_event, w)) {
    case 0:
        return n;
    case -EMSGSIZE:
        log_warn("watch event refused: far larger than any EndpointSlice or Endpoints object: "
                 "re-listing",
                 "source=%s err=\"%s\"", mode_name(w->mode), log_quote(w->es.why));
        w->end = END_GARBAGE;
        return 0;
    case -E2BIG:
    case -EBADMSG:
        log_warn("watch stream is not valid JSON: re-listing", "source=%s", mode_name(w->mode));
        w->end = END_GARBAGE;
        return 0;
    default:
        if (w->end == END_NONE)
            w->end = END_ERROR;
        return 0;
    }
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct watcher *w = arg;
    size_t n = size * nmemb;

    /* A status line: the handshake, and so the name, verified. Said now,
     * not when the transfer ends (a watch lasts minutes). */
    if (w->try_name != NULL && n > 5 && strncmp(data, "HTTP/", 5) == 0) {
        tls_verified(w, w->try_route, w->try_name);
        w->try_name = NULL;
    }
    if (n > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
        long s = strtol(data + 12, NULL, 10);

        if (s > 0 && s < 3600)
            w->retry_after_ms = (uint64_t)s * 1000u;
    }
    return n;
}

static int progress_cb(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct watcher *w = arg;
    uint64_t now = clock_now_ms();

    if (atomic_load(&w->stop)) {
        w->end = END_STOP;
        return 1;
    }
    if (w->end != END_NONE)
        return 1;
    if (w->body == NULL && w->last_byte_ms != 0 && now - w->last_byte_ms > w->cfg.stall_ms) {
        w->end = END_STALL;
        return 1;
    }
    publish_due(w);
    if (filewatch_changed(&w->files, now)) {
        log_info("credential files changed: reconnecting with them", "source=%s", w->creds.source);
        w->reload = true;
        w->end = END_CREDS;
        return 1;
    }
    return 0;
}

static void format_host(const char *host, char *buf, size_t len)
{
    if (strchr(host, ':') != NULL)
        snprintf(buf, len, "[%s]", host);
    else
        snprintf(buf, len, "%s", host);
}

/* --- which name an apiserver is verified for -------------------------------------
 *
 * The watcher dials an address from the upstream table (CONNECT_TO) and
 * verifies the certificate for a name, never for nothing:
 * - tls-server-name (or in-cluster's kubernetes.default.svc), when set, for
 *   every apiserver: the operator said which name the certificates carry;
 * - the kubeconfig server's host when dialling that very address;
 * - any other apiserver for a name it must carry, because kubeadm and k3s
 *   issue each apiserver its own certificate (its own address and the
 *   kubernetes names, not the other apiservers' addresses): first DNS
 *   `kubernetes`, which every kubeadm, RKE and k3s serving certificate
 *   carries whichever of the node's addresses was dialled; then the address
 *   itself, as the cluster publishes it (an EndpointSlice address is the
 *   apiserver's advertise address, which kubeadm puts in its certificate),
 *   for certificates without the kubernetes names; last the kubeconfig
 *   server's host (a load balancer's DNS name that every certificate was
 *   also issued for, e.g. kubeadm's controlPlaneEndpoint).
 * A name that fails verification costs one more handshake with the next;
 * the one that verified is remembered per address and tried first. */

enum tls_kind {
    TLS_CONFIGURED = 0, /* tls-server-name, or the kubeconfig server's host */
    TLS_KUBERNETES,
    TLS_ADDRESS,
    TLS_KINDS
};

/* Whether a is the kubeconfig server's own address (its host is that IP). */
static bool is_origin(const struct watcher *w, const struct addr *a)
{
    struct addr o;

    return addr_from_ip(w->creds.origin, addr_port(a), &o) == 0 && addr_cmp(&o, a) == 0;
}

/* Writes the host of a (no port, no brackets) into buf[ADDR_HOST_MAX]. */
static void addr_host(const struct addr *a, char *buf)
{
    char s[ADDR_STRLEN], *p = s, *colon;

    addr_format(a, s, sizeof(s));
    colon = strrchr(s, ':');
    *colon = '\0';
    if (*p == '[') {
        p++;
        p[strlen(p) - 1] = '\0';
    }
    snprintf(buf, ADDR_HOST_MAX, "%s", p);
}

static struct tls_memo *memo_find(struct watcher *w, const struct addr *a)
{
    for (size_t i = 0; i < w->n_memo; i++)
        if (addr_cmp(&w->memo[i].a, a) == 0)
            return &w->memo[i];
    return NULL;
}

/* Fills names[] with the names to verify the apiserver at route for (NULL:
 * the kubeconfig's server itself), best first; returns how many. */
static size_t tls_names(struct watcher *w, const struct addr *route,
                        char names[TLS_KINDS][ADDR_HOST_MAX])
{
    static const enum tls_kind order[] = {TLS_KUBERNETES, TLS_ADDRESS, TLS_CONFIGURED};
    struct tls_memo *m;
    size_t n = 0;

    if (route == NULL || w->creds.tls_name_set || w->creds.insecure || is_origin(w, route)) {
        snprintf(names[n++], ADDR_HOST_MAX, "%s", w->creds.tls_name);
        return n;
    }
    m = memo_find(w, route);
    if (m != NULL)
        snprintf(names[n++], ADDR_HOST_MAX, "%s", m->name);
    for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
        char name[ADDR_HOST_MAX];
        bool dup = false;

        if (order[k] == TLS_KUBERNETES)
            snprintf(name, sizeof(name), "kubernetes");
        else if (order[k] == TLS_ADDRESS)
            addr_host(route, name);
        else
            snprintf(name, sizeof(name), "%s", w->creds.tls_name);
        for (size_t i = 0; i < n; i++)
            dup = dup || strcmp(names[i], name) == 0;
        if (!dup)
            snprintf(names[n++], ADDR_HOST_MAX, "%s", name);
    }
    return n;
}

/* Remembers that the apiserver at route was verified for name, and logs it
 * when that is new for the address. */
static void tls_verified(struct watcher *w, const struct addr *route, const char *name)
{
    struct tls_memo *m;
    char up[ADDR_STRLEN];
    const char *why;

    if (route == NULL)
        return;
    m = memo_find(w, route);
    if (m != NULL && strcmp(m->name, name) == 0)
        return;
    if (m == NULL) {
        /* Few apiservers: a full memo (a churning table) starts over. */
        if (w->n_memo == TLS_MEMO_MAX)
            w->n_memo = 0;
        m = &w->memo[w->n_memo++];
        m->a = *route;
    }
    snprintf(m->name, sizeof(m->name), "%s", name);
    if (w->creds.tls_name_set)
        why = w->cfg.kubeconfig != NULL ? "tls-server-name" : "in-cluster";
    else if (strcmp(name, w->creds.tls_name) == 0)
        why = "kubeconfig-server";
    else if (strcmp(name, "kubernetes") == 0)
        why = "kubernetes";
    else
        why = "own-address";
    log_info("apiserver certificate verified", "upstream=%s tls_name=%s because=%s",
             addr_format(route, up, sizeof(up)), log_quote(name), why);
}

/* The boundary to curl's errors: rc as a negative errno (0 for CURLE_OK).
 * -EKEYREJECTED is a certificate not verified (for the name asked, or not
 * from the CA), -EPROTO another TLS failure, -ECANCELED a transfer our own
 * callbacks ended (w->end says why); the curl text goes to the errbuf. */
static int curl_errno(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
        return -EHOSTUNREACH;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    case CURLE_PEER_FAILED_VERIFICATION:
        return -EKEYREJECTED;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CLIENTCERT:
        return -EPROTO;
    case CURLE_WRITE_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
        return -ECANCELED;
    default:
        return -EIO;
    }
}

/* The CURLOPT_CONNECT_TO entry of a transfer to host (the name verified):
 * dial the upstream at route from the table directly (NULL: the
 * kubeconfig's server). */
static void connect_to_entry(const struct watcher *w, const struct addr *route, const char *host,
                             char *out, size_t len)
{
    char dial[ADDR_HOST_MAX + 2];

    if (route != NULL) {
        char ip[ADDR_HOST_MAX];

        addr_host(route, ip);
        format_host(ip, dial, sizeof(dial));
        snprintf(out, len, "%s:%u:%s:%u", host, w->creds.port, dial, addr_port(route));
    } else {
        format_host(w->creds.origin, dial, sizeof(dial));
        snprintf(out, len, "%s:%u:%s:%u", host, w->creds.port, dial, w->creds.port);
    }
}

/* The Authorization header for the credentials' bearer token: new (wipe
 * and free it with auth_free), or NULL when there is none (or no memory). */
static char *auth_header(struct watcher *w)
{
    char *token = malloc(TOKEN_MAX), *auth = NULL;

    if (token != NULL && kube_creds_token(&w->creds, token, TOKEN_MAX) > 0) {
        auth = malloc(TOKEN_MAX + 32);
        if (auth != NULL)
            snprintf(auth, TOKEN_MAX + 32, "Authorization: Bearer %s", token);
    }
    if (token != NULL) {
        explicit_bzero(token, TOKEN_MAX);
        free(token);
    }
    return auth;
}

static void auth_free(char *auth)
{
    if (auth == NULL)
        return;
    explicit_bzero(auth, TOKEN_MAX + 32);
    free(auth);
}

/* The options every transfer has: HTTPS/1.1 only, a fresh connection, our
 * timeouts, keepalive, the credentials and the callbacks (a LIST also has
 * an overall deadline). */
static void easy_setup(struct watcher *w, CURL *c, bool watch, char *errbuf)
{
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)w->cfg.connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 10L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "apilb/" APILB_VERSION);
    credcurl_apply(c, &w->creds);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, w);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, w);
    if (!watch)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)LIST_TIMEOUT_MS);
}

/* What a finished transfer (rc, HTTP status code) tells the caller; keeps
 * rc as w->transfer_err. An answer cut off after its status (our callbacks
 * ended it, or a partial body) still has that status. */
static int transfer_result(struct watcher *w, CURLcode rc, long code, long *status, char *errbuf)
{
    w->transfer_err = curl_errno(rc);
    if (rc != CURLE_OK && rc != CURLE_WRITE_ERROR && rc != CURLE_ABORTED_BY_CALLBACK) {
        if (errbuf[0] == '\0')
            snprintf(errbuf, CURL_ERROR_SIZE, "%s", curl_easy_strerror(rc));
        if (!(rc == CURLE_PARTIAL_FILE && code != 0))
            return w->transfer_err;
    }
    if (code <= 0)
        return w->transfer_err != 0 ? w->transfer_err : -EPROTO;
    *status = code;
    return 0;
}

/* One transfer to the apiserver at route (NULL: the kubeconfig's server),
 * verifying its certificate for name. Returns 0 with the HTTP status in
 * *status, or a negative errno (curl_errno) with errbuf filled and *status
 * 0. */
static int perform(struct watcher *w, const char *path, bool watch, const struct addr *route,
                   const char *name, long *status, char *errbuf)
{
    char url[1024], host[ADDR_HOST_MAX + 2], connect_to[2 * ADDR_HOST_MAX + 32];
    struct curl_slist *hdrs = NULL, *ct = NULL;
    char *auth;
    CURL *c;
    CURLcode rc;
    long code = 0;

    *status = 0;
    c = curl_easy_init();
    if (c == NULL) {
        snprintf(errbuf, CURL_ERROR_SIZE, "%s", curl_easy_strerror(CURLE_OUT_OF_MEMORY));
        return -ENOMEM;
    }
    format_host(name, host, sizeof(host));
    snprintf(url, sizeof(url), "https://%s:%u%s", host, w->creds.port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    connect_to_entry(w, route, host, connect_to, sizeof(connect_to));
    ct = curl_slist_append(NULL, connect_to);
    curl_easy_setopt(c, CURLOPT_CONNECT_TO, ct);
    easy_setup(w, c, watch, errbuf);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    auth = auth_header(w);
    if (auth != NULL)
        hdrs = curl_slist_append(hdrs, auth);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    w->end = END_NONE;
    w->retry_after_ms = 0;
    w->last_byte_ms = clock_now_ms();
    w->watch_events = 0;
    errbuf[0] = '\0';
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 200 && code < 300)
        w->avoiding = false; /* an apiserver answers: route as usual again */
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    curl_slist_free_all(ct);
    auth_free(auth);
    return transfer_result(w, rc, code, status, errbuf);
}

/* Runs one request to the apiserver that route() gives for attempt, trying
 * the names it may be verified for (see above) while only the name fails
 * (-EKEYREJECTED). Returns 0 with the HTTP status in *status, or a negative
 * errno with errbuf filled and *status 0. */
static int request(struct watcher *w, const char *path, bool watch, unsigned attempt, long *status,
                   char *errbuf)
{
    char names[TLS_KINDS][ADDR_HOST_MAX], tried[CURL_ERROR_SIZE];
    struct addr route;
    size_t n, off = 0;
    int rc = -EIO;

    *status = 0;
    snprintf(errbuf, CURL_ERROR_SIZE, "no name to verify");

    w->routed_ok = w->route(w->arg, attempt, w->avoiding ? &w->avoid : NULL, &route) == 0;
    if (w->routed_ok)
        w->routed = route;
    n = tls_names(w, w->routed_ok ? &route : NULL, names);
    tried[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (w->body != NULL)
            w->body_len = 0;
        w->try_name = names[i];
        w->try_route = w->routed_ok ? &route : NULL;
        rc = perform(w, path, watch, w->try_route, names[i], status, errbuf);
        w->try_name = NULL;
        w->try_route = NULL;
        if (rc == 0)
            return 0;
        /* Only a certificate that is not for this name (or not from the
         * CA: then every name fails alike) is worth another handshake. */
        if (rc != -EKEYREJECTED || atomic_load(&w->stop))
            return rc;
        if (off < sizeof(tried))
            off +=
                (size_t)snprintf(tried + off, sizeof(tried) - off, "%s%s", i ? ", " : "", names[i]);
    }
    if (n > 1) {
        char last[CURL_ERROR_SIZE];

        snprintf(last, sizeof(last), "%s", errbuf);
        if (snprintf(errbuf, CURL_ERROR_SIZE, "certificate verified for none of %s: %s", tried,
                     last) >= CURL_ERROR_SIZE)
            memcpy(errbuf + CURL_ERROR_SIZE - 4, "...", 4);
    }
    return rc;
}

/* --- the protocol ------------------------------------------------------------- */

static const char *base_path(const struct watcher *w)
{
    return w->mode == MODE_SLICES
               ? "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
                 "?labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes"
               : "/api/v1/namespaces/default/endpoints?fieldSelector=metadata.name%3Dkubernetes";
}

/* The endpoints of one object into a[0..*n) and its family. Returns 0, or
 * -EINVAL for an object that is not used (logged; an FQDN slice is used as
 * one that lists nothing). */
static int object_endpoints(struct watcher *w, json_t *obj, const char **name,
                            struct watcher_endpoint *a, size_t *n, int *family)
{
    char err[160];
    json_t *meta = json_object_get(obj, "metadata");
    json_t *jn = json_object_get(meta, "name");
    int rc;

    *n = 0;
    *family = AF_UNSPEC;
    *name = NULL;
    if (!json_is_string(jn)) {
        log_warn_limited("object-no-name", 10000, "object without a name ignored", "source=%s",
                         mode_name(w->mode));
        return -EINVAL;
    }
    *name = json_string_value(jn);
    if (w->mode == MODE_ENDPOINTS && strcmp(*name, "kubernetes") != 0)
        return -EINVAL;
    rc = endpoints_extract(obj, w->mode == MODE_SLICES ? ENDPOINTS_SLICE : ENDPOINTS_V1, a,
                           ADDR_SET_MAX, n, family, err, sizeof(err));
    if (rc < 0) {
        log_warn_limited("object-bad", 10000, "object ignored", "source=%s name=\"%s\" err=\"%s\"",
                         mode_name(w->mode), log_quote(*name), log_quote(err));
        count_error(w, WATCHER_ERR_PARSE);
        return -EINVAL;
    }
    if (rc == 1 && log_enabled(LOG_INFO))
        log_emit_limited(LOG_INFO, LOG_MODULE, "fqdn-slice", 60000,
                         "EndpointSlice of addressType FQDN ignored (no semantics defined)",
                         "name=\"%s\"", log_quote(*name));
    return 0;
}

static bool set_rv(struct watcher *w, json_t *obj)
{
    json_t *rv = json_object_get(json_object_get(obj, "metadata"), "resourceVersion");

    if (!json_is_string(rv) || strlen(json_string_value(rv)) >= sizeof(w->rv))
        return false;
    if (strcmp(w->rv, json_string_value(rv)) != 0) {
        pthread_mutex_lock(&w->mu);
        w->stats.rv_changed_unix_ms = clock_wall_ms();
        pthread_mutex_unlock(&w->mu);
    }
    snprintf(w->rv, sizeof(w->rv), "%s", json_string_value(rv));
    return true;
}

/* An ERROR event (a Status object) ends the watch: 410 Gone (or Expired)
 * relists from the resourceVersion held, a resourceVersion too large (504)
 * relists from scratch, anything else backs off. */
static void error_event(struct watcher *w, json_t *obj)
{
    json_t *code = json_object_get(obj, "code"), *reason = json_object_get(obj, "reason");
    json_t *msg = json_object_get(obj, "message");
    long c = json_is_integer(code) ? (long)json_integer_value(code) : 0;
    const char *r = json_is_string(reason) ? json_string_value(reason) : "";
    const char *m = json_is_string(msg) ? json_string_value(msg) : "";

    if (c == 410 || strcmp(r, "Expired") == 0 || strcmp(r, "Gone") == 0) {
        log_info("watch expired (410): re-listing", "source=%s resource_version=%s",
                 mode_name(w->mode), log_quote(w->rv));
        STAT_ADD(w, relists_410);
        w->end = END_RELIST;
    } else if (c == 504 || strstr(m, "Too large resource version") != NULL) {
        log_info("resource version too large: re-listing from scratch", "source=%s",
                 mode_name(w->mode));
        w->rv[0] = '\0';
        w->end = END_RELIST;
    } else {
        log_warn("watch error event", "source=%s code=%ld reason=\"%s\" message=\"%s\"",
                 mode_name(w->mode), c, log_quote(r), log_quote(m));
        count_error(w, WATCHER_ERR_HTTP);
        w->end = END_ERROR;
    }
}

static int on_event(void *arg, json_t *ev)
{
    struct watcher *w = arg;
    json_t *type = json_object_get(ev, "type"), *obj = json_object_get(ev, "object");
    const char *t = json_is_string(type) ? json_string_value(type) : "";
    const char *name = NULL;
    size_t n;
    int family;

    if (!json_is_object(obj)) {
        w->end = END_GARBAGE;
        return -1;
    }
    w->watch_events++;
    if (strcmp(t, "ERROR") == 0) {
        error_event(w, obj);
        return -1;
    }
    if (strcmp(t, "BOOKMARK") == 0) {
        if (set_rv(w, obj))
            STAT_ADD(w, bookmarks);
        return 0;
    }
    if (strcmp(t, "ADDED") != 0 && strcmp(t, "MODIFIED") != 0 && strcmp(t, "DELETED") != 0) {
        log_warn_limited("event-type", 10000, "unknown watch event ignored", "type=\"%s\"",
                         log_quote(t));
        return 0;
    }
    if (!set_rv(w, obj)) {
        log_warn("watch event without a string resourceVersion: re-listing", "type=%s", t);
        w->end = END_GARBAGE;
        return -1;
    }
    STAT_ADD(w, events);
    if (object_endpoints(w, obj, &name, w->scratch, &n, &family) < 0) {
        /* A deleted object goes, whatever its last content was. */
        if (strcmp(t, "DELETED") == 0 && name != NULL) {
            endpoints_cache_remove(&w->cache, name);
            cache_changed(w);
        }
        return 0;
    }
    if (strcmp(t, "DELETED") == 0)
        endpoints_cache_remove(&w->cache, name);
    else if (endpoints_cache_set(&w->cache, name, family, w->scratch, n) < 0)
        log_warn_limited("too-many-objects", 10000, "too many objects: ignored", "name=\"%s\"",
                         log_quote(name));
    cache_changed(w);
    return 0;
}

/* Parses a LIST body into the cache. Returns 0 or -EINVAL. */
static int apply_list(struct watcher *w)
{
    json_error_t e;
    json_t *root = json_loadb(w->body, w->body_len, 0, &e), *items, *it;
    size_t i;

    if (root == NULL || !set_rv(w, root)) {
        log_warn("LIST answer is not a list with a resourceVersion", "source=%s err=\"%s\"",
                 mode_name(w->mode), log_quote(root == NULL ? e.text : "no resourceVersion"));
        json_decref(root);
        return -EINVAL;
    }
    endpoints_cache_clear(&w->cache);
    items = json_object_get(root, "items");
    if (json_is_array(items)) {
        json_array_foreach(items, i, it)
        {
            const char *name;
            size_t n;
            int family;

            if (object_endpoints(w, it, &name, w->scratch, &n, &family) == 0 &&
                endpoints_cache_set(&w->cache, name, family, w->scratch, n) < 0)
                log_warn_limited("too-many-objects", 10000, "too many objects: ignored",
                                 "name=\"%s\"", log_quote(name));
        }
    }
    json_decref(root);
    STAT_ADD(w, lists);
    cache_changed(w);
    return 0;
}

/* Scans the answer in w->body (jsonlimit_scan): -E2BIG, with why, when its
 * tree would be too large to build. */
static int body_scan(const struct watcher *w, char *why, size_t why_len)
{
    size_t end;

    return jsonlimit_scan(w->body, w->body_len, JSONLIMIT_VALUES, JSONLIMIT_DEPTH, &end, why,
                          why_len);
}

/* Status body of a failed request, for the log. */
static void status_message(struct watcher *w, char *buf, size_t len)
{
    char why[128];
    json_t *root =
        body_scan(w, why, sizeof(why)) == 0 ? json_loadb(w->body, w->body_len, 0, NULL) : NULL;
    json_t *m = json_object_get(root, "message");

    snprintf(buf, len, "%s", json_is_string(m) ? json_string_value(m) : "");
    json_decref(root);
}

/* The apiserver the last request went to, for the log: its address, or the
 * kubeconfig server's host when no route was known. */
static const char *routed_name(const struct watcher *w, char *buf, size_t len)
{
    if (w->routed_ok)
        return addr_format(&w->routed, buf, len);
    snprintf(buf, len, "%s", w->creds.origin);
    return buf;
}

/* What a LIST or WATCH leads to (the edges of the diagram in watcher.h). */
enum watcher_next {
    NEXT_WATCH = 0, /* (again) WATCHING from the resourceVersion held */
    NEXT_RELIST,    /* LISTING now */
    NEXT_BACKOFF,   /* BACKOFF, then LISTING */
};

/* A LIST answered 200 with its body in w->body: applies it to the cache
 * unless it is far too large to parse. Frees the body. */
static enum watcher_next list_ok(struct watcher *w)
{
    char why[128];
    int rc = -EINVAL;

    if (body_scan(w, why, sizeof(why)) != -E2BIG) {
        rc = apply_list(w); /* which says what else may be wrong */
    } else {
        log_warn("LIST answer refused: far larger than any list of EndpointSlices or "
                 "Endpoints",
                 "source=%s bytes=%zu err=\"%s\"", mode_name(w->mode), w->body_len, log_quote(why));
        count_error(w, WATCHER_ERR_PARSE);
    }
    free(w->body);
    w->body = NULL;
    return rc == 0 ? NEXT_WATCH : NEXT_BACKOFF;
}

/* A LIST answered another HTTP status code; msg is its status message.
 * 403/404 for EndpointSlices in auto mode falls back to Endpoints, 410
 * relists from scratch, 401 re-reads the credentials. */
static enum watcher_next list_failed(struct watcher *w, long code, const char *msg)
{
    count_error(w, WATCHER_ERR_HTTP);
    if ((code == 403 || code == 404) && w->auto_mode && w->mode == MODE_SLICES) {
        log_warn("EndpointSlices not available: falling back to Endpoints",
                 "code=%ld message=\"%s\"", code, log_quote(msg));
        pthread_mutex_lock(&w->mu);
        w->mode = MODE_ENDPOINTS;
        pthread_mutex_unlock(&w->mu);
        snprintf(w->rv, sizeof(w->rv), "0");
        return NEXT_RELIST;
    }
    if (code == 410) {
        w->rv[0] = '\0';
        return NEXT_RELIST;
    }
    if (code == 401) {
        log_warn("apiserver rejected the credentials (401): re-reading them", "source=%s",
                 w->creds.source);
        w->reload = true;
        return NEXT_BACKOFF;
    }
    log_warn("LIST failed", "source=%s code=%ld message=\"%s\"", mode_name(w->mode), code,
             log_quote(msg));
    return NEXT_BACKOFF;
}

/* Hands zone to node_zone when it differs from the last one (logged). */
static void node_zone_tell(struct watcher *w, const char *zone)
{
    if (w->node_zone_told && strcmp(w->node_zone, zone) == 0)
        return;
    snprintf(w->node_zone, sizeof(w->node_zone), "%s", zone);
    w->node_zone_told = true;
    if (zone[0] != '\0') {
        w->node_why[0] = '\0';
        log_info("node zone", "zone=%s from=node-object node=%s", zone, w->cfg.node_name);
    }
    w->cfg.node_zone(w->arg, zone);
}

/* The node's zone is unknown for why (one warning per distinct reason). */
static void node_zone_unknown(struct watcher *w, const char *why)
{
    if (strcmp(w->node_why, why) != 0) {
        snprintf(w->node_why, sizeof(w->node_why), "%s", why);
        log_warn("node zone unknown: every apiserver is in tier 0", "node=%s err=\"%s\"",
                 w->cfg.node_name, log_quote(why));
    }
    node_zone_tell(w, "");
}

/* GET /api/v1/nodes/NAME (--node-name), once per LIST: its zone label to
 * node_zone. A refusal (403, 404) or a missing label leaves the node
 * zoneless; a connection failure or another error status keeps what was
 * known. Uses w->body (LIST_MAX_BYTES). */
static void node_fetch(struct watcher *w)
{
    char path[300], errbuf[CURL_ERROR_SIZE], msg[256], why[1024], zone[ZONE_NAME_MAX + 1];
    long code = 0;
    int rc = -EIO;

    snprintf(path, sizeof(path), "/api/v1/nodes/%s", w->cfg.node_name);
    for (unsigned attempt = 0; attempt < ROUTE_TRIES && rc < 0; attempt++) {
        w->body_len = 0;
        rc = request(w, path, false, attempt, &code, errbuf);
        if (atomic_load(&w->stop))
            return;
    }
    if (rc < 0) {
        snprintf(why, sizeof(why), "GET %s: %s", path, errbuf);
        if (!w->node_zone_told)
            node_zone_unknown(w, why);
        return;
    }
    if (code != 200) {
        status_message(w, msg, sizeof(msg));
        snprintf(why, sizeof(why), "GET %s: %ld %s", path, code, msg);
        /* Only a refusal or no such node says the zone is gone; a 429,
         * 5xx or 401 (the LIST re-reads the credentials) keeps it. */
        if (code == 403 || code == 404 || !w->node_zone_told || w->node_zone[0] == '\0')
            node_zone_unknown(w, why);
        return;
    }
    if (nodezone_parse(w->body, w->body_len, zone, msg, sizeof(msg)) < 0) {
        snprintf(why, sizeof(why), "GET %s: %s", path, msg);
        node_zone_unknown(w, why);
        return;
    }
    node_zone_tell(w, zone);
}

/* LISTING: one LIST, over up to ROUTE_TRIES apiservers while they cannot
 * be reached. */
static enum watcher_next do_list(struct watcher *w)
{
    char path[512], errbuf[CURL_ERROR_SIZE], msg[256], up[ADDR_HOST_MAX];
    long code = 0;
    int rc = -EIO;

    set_state(w, WATCHER_LISTING);
    w->body = malloc(LIST_MAX_BYTES);
    if (w->body == NULL)
        return NEXT_BACKOFF;
    if (w->cfg.node_name != NULL && w->cfg.node_zone != NULL)
        node_fetch(w);
    for (unsigned attempt = 0; attempt < ROUTE_TRIES; attempt++) {
        snprintf(path, sizeof(path), "%s&resourceVersion=%s", base_path(w), w->rv);
        w->body_len = 0;
        rc = request(w, path, false, attempt, &code, errbuf);
        if (rc == 0 || atomic_load(&w->stop))
            break;
        log_warn("apiserver request failed", "source=%s upstream=%s attempt=%u err=\"%s\"",
                 mode_name(w->mode), routed_name(w, up, sizeof(up)), attempt + 1,
                 log_quote(errbuf));
        count_error(w, WATCHER_ERR_CONNECT);
    }
    if (rc == 0 && code == 200)
        return list_ok(w);
    status_message(w, msg, sizeof(msg));
    free(w->body);
    w->body = NULL;
    if (rc < 0)
        return NEXT_BACKOFF;
    return list_failed(w, code, msg);
}

/* How a watch that our callbacks ended goes on (w->end); NEXT_WATCH also
 * when it ended for no such reason (END_NONE: the answer decides). */
static enum watcher_next watch_ended(struct watcher *w, bool *decided)
{
    *decided = true;
    switch (w->end) {
    case END_STOP:
        return NEXT_BACKOFF;
    case END_RELIST:
        return NEXT_RELIST;
    case END_CREDS:
        return NEXT_WATCH;
    case END_STALL:
        log_warn("watch stalled: reconnecting", "source=%s stall_ms=%u resource_version=%s",
                 mode_name(w->mode), w->cfg.stall_ms, log_quote(w->rv));
        count_error(w, WATCHER_ERR_STALL);
        return NEXT_WATCH;
    case END_GARBAGE:
        count_error(w, WATCHER_ERR_PARSE);
        return NEXT_BACKOFF;
    case END_ERROR:
        return NEXT_BACKOFF; /* counted where the ERROR event was read */
    case END_NONE:
        break;
    }
    *decided = false;
    return NEXT_WATCH;
}

/* A WATCH that got no answer (rc, errbuf) or an error status code. */
static enum watcher_next watch_failed(struct watcher *w, int rc, long code, const char *errbuf)
{
    if (rc < 0) {
        char up[ADDR_HOST_MAX];

        log_warn("watch connection failed", "source=%s upstream=%s err=\"%s\"", mode_name(w->mode),
                 routed_name(w, up, sizeof(up)), log_quote(errbuf));
        count_error(w, WATCHER_ERR_CONNECT);
    } else {
        log_warn("WATCH failed", "source=%s code=%ld", mode_name(w->mode), code);
        count_error(w, WATCHER_ERR_HTTP);
        if (code == 401)
            w->reload = true;
    }
    return NEXT_BACKOFF;
}

/* WATCHING: one WATCH from w->rv, until the apiserver ends it
 * (timeoutSeconds), it stalls, or an event or the answer says otherwise. */
static enum watcher_next do_watch(struct watcher *w)
{
    char path[640], errbuf[CURL_ERROR_SIZE];
    unsigned timeout_s = w->cfg.watch_timeout_s;
    uint64_t started = clock_now_ms();
    enum watcher_next next;
    bool decided;
    long code;
    int rc;

    set_state(w, WATCHER_WATCHING);
    STAT_ADD(w, watches);
    if (timeout_s == 0) /* like client-go: random in [300, 600] */
        timeout_s = 300 + (unsigned)(started % 301);
    snprintf(path, sizeof(path),
             "%s&watch=true&allowWatchBookmarks=true&timeoutSeconds=%u&resourceVersion=%s",
             base_path(w), timeout_s, w->rv);
    eventstream_reset(&w->es);
    rc = request(w, path, true, 0, &code, errbuf);
    next = watch_ended(w, &decided);
    if (decided)
        return next;
    if (rc < 0 || code != 200)
        return rc == 0 && code == 410 ? NEXT_RELIST : watch_failed(w, rc, code, errbuf);
    if (w->transfer_err != 0) {
        /* Cut off mid-stream (no final chunk): what was whole is applied,
         * the torn event is dropped with the buffer. */
        log_warn("watch stream cut off: resuming from the last resourceVersion",
                 "source=%s resource_version=%s err=\"%s\"", mode_name(w->mode), log_quote(w->rv),
                 log_quote(errbuf));
        count_error(w, WATCHER_ERR_CONNECT);
    }
    /* Watch again at once, unless it ended at once. */
    if (clock_now_ms() - started < 1000 && w->watch_events == 0)
        return NEXT_BACKOFF;
    return NEXT_WATCH;
}

/* What the backoff must respect of the last answer's Retry-After. It is the
 * apiserver's word about itself (overloaded, or shutting down: "retry
 * elsewhere"): when another usable apiserver is there, the next attempt goes
 * to it after the usual backoff; only when the same one would be asked again
 * is Retry-After waited out. */
static uint64_t retry_wait(struct watcher *w)
{
    struct addr next;

    w->avoiding = false;
    if (w->retry_after_ms == 0 || !w->routed_ok)
        return w->retry_after_ms;
    w->avoid = w->routed;
    w->avoiding = true;
    if (w->route(w->arg, 0, &w->avoid, &next) != 0 || addr_cmp(&next, &w->avoid) == 0)
        return w->retry_after_ms;
    log_info("Retry-After from one apiserver: asking another without waiting it out",
             "retry_after_ms=%" PRIu64, w->retry_after_ms);
    return 0;
}

/* BACKOFF: sleeps for the backoff (and what Retry-After asks, retry_wait)
 * in steps, so a pending set is still published on time; new credentials
 * end it early: they are worth trying at once. */
static void backoff_wait(struct watcher *w)
{
    uint64_t d, end;

    set_state(w, WATCHER_BACKOFF);
    d = backoff_next(&w->backoff, clock_now_ms(), retry_wait(w));
    end = clock_now_ms() + d;
    while (clock_now_ms() < end && !atomic_load(&w->stop)) {
        uint64_t left = end - clock_now_ms();

        publish_due(w);
        if (filewatch_changed(&w->files, clock_now_ms())) {
            log_info("credential files changed: retrying now", "source=%s", w->creds.source);
            w->reload = true;
            break;
        }
        if (!nap(w, left < 100 ? left : 100))
            break;
    }
}

/* The state machine drawn in watcher.h. */
static void *watcher_main(void *arg)
{
    struct watcher *w = arg;
    bool listed = false;

    while (!atomic_load(&w->stop)) {
        enum watcher_next next;

        if (w->reload)
            creds_reload(w);
        next = listed ? do_watch(w) : do_list(w);
        listed = next == NEXT_WATCH;
        if (next != NEXT_BACKOFF || atomic_load(&w->stop))
            continue;
        backoff_wait(w);
    }
    set_state(w, WATCHER_STOPPED);
    return NULL;
}

int watcher_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void watcher_global_cleanup(void)
{
    curl_global_cleanup();
}

int watcher_start(const struct watcher_config *cfg, watcher_publish_fn publish,
                  watcher_route_fn route, void *arg, struct watcher **out, char *err,
                  size_t err_len)
{
    struct watcher *w = calloc(1, sizeof(*w));
    int rc;

    if (w == NULL) {
        snprintf(err, err_len, "watcher: out of memory");
        return -ENOMEM;
    }
    w->cfg = *cfg;
    if (w->cfg.stall_ms == 0)
        w->cfg.stall_ms = 90000;
    rc = cfg->kubeconfig != NULL
             ? kube_creds_load_kubeconfig(cfg->kubeconfig, &w->creds, err, err_len)
             : kube_creds_load_incluster(cfg->sa_dir, &w->creds, err, err_len);
    if (rc < 0) {
        free(w);
        return rc;
    }
    if (w->creds.insecure)
        log_warn("INSECURE: the kubeconfig disables TLS verification of the apiserver "
                 "(insecure-skip-tls-verify); anyone on the path can impersonate it",
                 "kubeconfig=\"%s\"", log_quote(cfg->kubeconfig));
    w->publish = publish;
    w->route = route;
    w->arg = arg;
    w->mode = cfg->discovery == WATCHER_DISCOVERY_ENDPOINTS ? MODE_ENDPOINTS : MODE_SLICES;
    w->auto_mode = cfg->discovery == WATCHER_DISCOVERY_AUTO;
    /* Like client-go: the first LIST may come from the apiserver's watch
     * cache (cheap for a fleet of nodes starting at once); later ones
     * resume from the last resourceVersion, or read fresh ("") after 410. */
    snprintf(w->rv, sizeof(w->rv), "0");
    backoff_init(&w->backoff, (uint64_t)time(NULL) ^ (uint64_t)getpid());
    eventstream_init(&w->es, EVENTSTREAM_MAX_BYTES);
    filewatch_init(&w->files);
    follow_files(w);
    ca_announce(w); /* the bundle the proxy starts with */
    auth_announce(w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    log_info("watcher starting", "credentials=%s server=\"%s:%u\" tls_name=%s discovery=%s",
             w->creds.source, log_quote(w->creds.origin), w->creds.port, w->creds.tls_name,
             w->auto_mode ? "auto" : mode_name(w->mode));
    rc = pthread_create(&w->thread, NULL, watcher_main, w);
    if (rc != 0) {
        snprintf(err, err_len, "watcher: cannot start the thread: %s", strerror(rc));
        free(w->ca_seen);
        watcher_auth_free(&w->auth_seen);
        kube_creds_free(&w->creds);
        free(w);
        return -rc;
    }
    *out = w;
    return 0;
}

void watcher_stop(struct watcher *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->stop, true);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    endpoints_cache_clear(&w->cache);
    eventstream_free(&w->es);
    filewatch_free(&w->files);
    free(w->ca_seen);
    watcher_auth_free(&w->auth_seen);
    kube_creds_free(&w->creds);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

void watcher_stats_get(struct watcher *w, struct watcher_stats *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->stats;
    out->source = mode_name(w->mode);
    pthread_mutex_unlock(&w->mu);
}

int watcher_cluster_ca(const char *kubeconfig, const char *sa_dir, char **pem, char *err,
                       size_t err_len)
{
    struct kube_creds kc;
    int rc;

    if (pem != NULL)
        *pem = NULL;
    rc = kubeconfig != NULL ? kube_creds_load_kubeconfig(kubeconfig, &kc, err, err_len)
                            : kube_creds_load_incluster(sa_dir, &kc, err, err_len);
    if (rc < 0)
        return rc;
    if (pem != NULL)
        *pem = kube_creds_ca(&kc);
    kube_creds_free(&kc);
    return 0;
}

int watcher_auth_load(const char *kubeconfig, const char *sa_dir, struct watcher_auth *out,
                      char *err, size_t err_len)
{
    struct kube_creds kc;
    const char *what;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = kubeconfig != NULL ? kube_creds_load_kubeconfig(kubeconfig, &kc, err, err_len)
                            : kube_creds_load_incluster(sa_dir, &kc, err, err_len);
    if (rc < 0)
        return rc;
    rc = kube_creds_client(&kc, &out->cert_pem, &out->key_pem, &out->token, &what);
    if (rc < 0)
        snprintf(err, err_len, "%s: cannot read the %s: %s", kc.source, what, strerror(-rc));
    kube_creds_free(&kc);
    return rc;
}

void watcher_auth_free(struct watcher_auth *a)
{
    /* kubelet-client-current.pem holds the key beside the certificate. */
    if (a->cert_pem != NULL)
        explicit_bzero(a->cert_pem, strlen(a->cert_pem));
    if (a->key_pem != NULL)
        explicit_bzero(a->key_pem, strlen(a->key_pem));
    if (a->token != NULL)
        explicit_bzero(a->token, strlen(a->token));
    free(a->cert_pem);
    free(a->key_pem);
    free(a->token);
    memset(a, 0, sizeof(*a));
}

const struct watcher_ops apilb_watcher_ops = {
    .global_init = watcher_global_init,
    .global_cleanup = watcher_global_cleanup,
    .start = watcher_start,
    .stop = watcher_stop,
    .stats_get = watcher_stats_get,
    .cluster_ca = watcher_cluster_ca,
    .auth_load = watcher_auth_load,
    .auth_free = watcher_auth_free,
};
