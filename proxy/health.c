/* SPDX-License-Identifier: Apache-2.0 */
/* Active health checks; see health.h. */
#define LOG_MODULE "health"
#include "health.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "clock.h"
#include "filewatch.h"
#include "healthauth.h"
#include "log.h"
#include "rand.h"
#include "sockopt.h"

/* The name apiserver certificates always carry (kubeadm, RKE, k3s). */
#define HEALTH_SERVER_NAME "kubernetes"
/* A failing /readyz lists every check (about 2 KiB on kube-apiserver). */
#define RESP_MAX 8192

enum probe_step {
    STEP_CONNECT = 0,
    STEP_HANDSHAKE,
    STEP_WRITE,
    STEP_READ,
};

struct checker;

/* One check: a connection that lives for one attempt. */
struct probe {
    uv_poll_t poll;
    int fd;
    SSL *ssl;
    struct checker *ck;
    enum probe_step step;
    char *req;   /* may hold the bearer token: wiped before free */
    bool authed; /* presents the credentials of --health-auth kubeconfig */
    size_t req_len, req_off;
    char resp[RESP_MAX];
    size_t resp_len;
};

struct checker {
    struct health *h;
    struct upstream *up; /* reference */
    uv_timer_t timer;    /* next check, or the deadline of the running one */
    struct probe *probe; /* NULL between checks */
    uint64_t started_us;
    struct health_run run; /* rise/fall counters */
    uint64_t fails_seen;   /* data-path connect failures already counted */
    bool not_ready;        /* the running check's readyz answered an error status */
    bool shutting_down;    /* ... and said "[-]shutdown" */
    bool timed_out;        /* the running check timed out */
    struct checker *next;
};

struct health {
    uv_loop_t *loop;
    const struct config *cfg;
    health_changed_fn changed;
    void *arg;
    SSL_CTX *ctx;
    char *cluster_ca;          /* the cluster CA bundle trusted now (NULL: none yet) */
    struct health_auth auth;   /* --health-auth kubeconfig: what checks present */
    bool verify;               /* certificates are verified (a CA is known) */
    struct filewatch ca_watch; /* --health-ca */
    struct checker *list;
    uint64_t rng;
};

static void check_start(struct checker *ck);
static int request_build(struct health *h, struct probe *p);
static void health_ca_reload(struct health *h);
static void probe_cb(uv_poll_t *p, int status, int events);
static void health_done(struct checker *ck, bool ok, const char *why);

static unsigned rnd(struct health *h, unsigned n)
{
    uint64_t x = rand_next(&h->rng);

    return n == 0 ? 0 : (unsigned)(x % n);
}

/* The interval with +-10% jitter, so checks of many nodes do not align. */
static uint64_t next_delay(struct health *h)
{
    unsigned iv = h->cfg->health_interval_ms;
    unsigned j = iv / 5;

    return iv - iv / 10 + rnd(h, j + 1);
}

static void timer_cb(uv_timer_t *t)
{
    struct checker *ck = t->data;

    if (ck->probe != NULL) {
        /* The deadline of the running check. */
        struct probe *p = ck->probe;
        static const char *const what[] = {"connect", "tls handshake", "send", "response"};
        char why[64];

        snprintf(why, sizeof(why), "%s timeout", what[p->step]);
        ck->timed_out = true;
        health_done(ck, false, why);
        return;
    }
    check_start(ck);
}

static void probe_closed(uv_handle_t *hd)
{
    free(hd->data);
}

static void probe_free(struct probe *p)
{
    if (p->req != NULL) {
        OPENSSL_cleanse(p->req, p->req_len);
        free(p->req);
        p->req = NULL;
    }
    if (p->ssl != NULL)
        SSL_free(p->ssl);
    p->poll.data = p;
    uv_close((uv_handle_t *)&p->poll, probe_closed);
    close(p->fd);
}

static void set_health(struct checker *ck, enum upstream_health to, const char *why)
{
    enum upstream_health from = (enum upstream_health)atomic_load(&ck->up->health);

    if (from == to)
        return;
    atomic_store(&ck->up->health, (int)to);
    ck->h->changed(ck->h->arg, ck->up, from, to, why);
}

struct health_verdict health_verdict(struct health_run *run, enum upstream_health cur,
                                     const struct health_result *r, unsigned rise, unsigned fall)
{
    struct health_verdict v = {.to = cur, .unready = HEALTH_UNREADY_KEEP};

    if (r->ok) {
        run->fail_run = 0;
        run->ok_run++;
        if (cur == UPSTREAM_UNKNOWN || (cur == UPSTREAM_UNHEALTHY && run->ok_run >= rise))
            v.to = UPSTREAM_HEALTHY;
        /* Still unhealthy until rise: a draining one keeps draining. */
        if (v.to != UPSTREAM_UNHEALTHY)
            v.unready = HEALTH_UNREADY_CLEAR;
        return v;
    }
    run->ok_run = 0;
    run->fail_run++;
    /* An apiserver whose /readyz says it is shutting down still serves
     * what it has for its shutdown delay: drain it. Any other failure (not
     * ready for another reason, no answer in time) closes its connections.
     * A refused or reset check changes neither (a shutting-down apiserver
     * closes its listener before its last requests finish). */
    if (r->shutting_down)
        v.unready = HEALTH_UNREADY_START;
    else if (r->timed_out || r->not_ready)
        v.unready = HEALTH_UNREADY_CLEAR;
    if (cur != UPSTREAM_UNHEALTHY && run->fail_run >= fall)
        v.to = UPSTREAM_UNHEALTHY;
    return v;
}

/* Applies one result (ok, and the running check's flags) to the rise/fall
 * counters and the health state: health_verdict() decides. */
static void count_result(struct checker *ck, bool ok, const char *why)
{
    struct upstream *up = ck->up;
    enum upstream_health cur = (enum upstream_health)atomic_load(&up->health);
    const struct health_result r = {.ok = ok,
                                    .not_ready = ck->not_ready,
                                    .shutting_down = ck->shutting_down,
                                    .timed_out = ck->timed_out};
    struct health_verdict v;

    v = health_verdict(&ck->run, cur, &r, ck->h->cfg->rise, ck->h->cfg->fall);
    if (ok) {
        atomic_store(&up->passive_down_until_ms, 0);
        set_health(ck, v.to, why);
    } else {
        log_debug("health check failed", "upstream=%s reason=\"%s\" consecutive=%u", up->name, why,
                  ck->run.fail_run);
    }
    /* After the change when it passed, before it when it failed: the
     * callback sees the drain state that goes with the new health. */
    if (v.unready == HEALTH_UNREADY_CLEAR)
        atomic_store(&up->unready_since_ms, 0);
    else if (v.unready == HEALTH_UNREADY_START && atomic_load(&up->unready_since_ms) == 0)
        atomic_store(&up->unready_since_ms, clock_now_ms());
    if (!ok)
        set_health(ck, v.to, why);
}

/* Ends the running check with its result and schedules the next one. */
static void health_done(struct checker *ck, bool ok, const char *why)
{
    struct health *h = ck->h;
    struct upstream *up = ck->up;
    uint64_t took = clock_now_us() - ck->started_us;

    if (ck->probe != NULL) {
        probe_free(ck->probe);
        ck->probe = NULL;
    }
    atomic_fetch_add_explicit(&up->health_checks[ok ? 1 : 0], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&up->health_latency_sum_us, took, memory_order_relaxed);
    if (ok && h->cfg->health_check != CONFIG_HEALTH_TCP)
        upstream_answer_sample(up, took); /* a TLS handshake, and a request */
    count_result(ck, ok, why);
    uv_timer_start(&ck->timer, timer_cb, next_delay(h), 0);
}

static void probe_want(struct probe *p, int events)
{
    uv_poll_start(&p->poll, events, probe_cb);
}

static void tls_error(char *buf, size_t len, const char *what, SSL *ssl)
{
    unsigned long e = ERR_get_error();
    long v = SSL_get_verify_result(ssl);

    if (v != X509_V_OK)
        snprintf(buf, len, "%s: certificate: %s", what, X509_verify_cert_error_string(v));
    else if (e != 0)
        snprintf(buf, len, "%s: %s", what, ERR_reason_error_string(e));
    else
        snprintf(buf, len, "%s: connection closed", what);
    ERR_clear_error();
}

/* Parses "HTTP/1.x NNN" once the status line is complete. Returns the code,
 * 0 when more is needed, -1 when it is not HTTP. */
static int status_code(const char *b, size_t n)
{
    const char *eol = memchr(b, '\n', n);
    int code;

    if (eol == NULL)
        return n >= RESP_MAX - 1 ? -1 : 0;
    if (n < 12 || memcmp(b, "HTTP/1.", 7) != 0 || b[8] != ' ')
        return -1;
    if (sscanf(b + 9, "%3d", &code) != 1 || code < 100 || code > 599)
        return -1;
    return code;
}

/* The probe functions below return true to go on with the probe's next
 * step at once, false when the probe waits for its socket (probe_want) or
 * has ended (health_done: the probe is gone). */

/* After an SSL call failed with SSL_get_error() err: a probe that only
 * has to wait waits for its socket (true); anything else is an error. */
static bool probe_wait(struct probe *p, int err)
{
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
        return false;
    probe_want(p, err == SSL_ERROR_WANT_READ ? UV_READABLE : UV_WRITABLE);
    return true;
}

/* STEP_CONNECT: the connect's outcome; a tcp check ends here, the others
 * begin the TLS handshake. */
static bool probe_connect(struct checker *ck, struct probe *p)
{
    socklen_t len = sizeof(int);
    char why[160];
    int err;

    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        err = errno;
    if (err != 0) {
        snprintf(why, sizeof(why), "connect: %s", strerror(err));
        health_done(ck, false, why);
        return false;
    }
    /* The TCP handshake is the check's round trip (--prefer); the TLS
     * handshake after it adds the apiserver's crypto time. */
    upstream_rtt_sample(ck->up, clock_now_us() - ck->started_us);
    if (ck->h->cfg->health_check == CONFIG_HEALTH_TCP) {
        health_done(ck, true, "connect ok");
        return false;
    }
    p->ssl = SSL_new(ck->h->ctx);
    if (p->ssl == NULL || SSL_set_fd(p->ssl, p->fd) != 1) {
        health_done(ck, false, "tls: out of memory");
        return false;
    }
    SSL_set_tlsext_host_name(p->ssl, HEALTH_SERVER_NAME);
    if (ck->h->verify)
        SSL_set1_host(p->ssl, HEALTH_SERVER_NAME);
    /* Credentials go only to a peer whose certificate is verified: never
     * to whoever answers on an upstream's address. */
    p->authed = ck->h->cfg->health_auth == CONFIG_HEALTH_AUTH_KUBECONFIG && ck->h->verify;
    if (p->authed && health_auth_attach(&ck->h->auth, p->ssl) != 0) {
        health_done(ck, false, "tls: cannot use the client certificate");
        return false;
    }
    p->step = STEP_HANDSHAKE;
    return true;
}

/* STEP_HANDSHAKE: the TLS handshake; a tls check ends here, readyz builds
 * its request. */
static bool probe_handshake(struct checker *ck, struct probe *p)
{
    char why[160];
    int rc;

    rc = SSL_connect(p->ssl);
    if (rc != 1) {
        if (probe_wait(p, SSL_get_error(p->ssl, rc)))
            return false;
        tls_error(why, sizeof(why), "tls", p->ssl);
        health_done(ck, false, why);
        return false;
    }
    if (ck->h->cfg->health_check == CONFIG_HEALTH_TLS) {
        health_done(ck, true, "tls ok");
        return false;
    }
    if (request_build(ck->h, p) != 0) {
        health_done(ck, false, "readyz: out of memory");
        return false;
    }
    p->step = STEP_WRITE;
    return true;
}

/* STEP_WRITE: sends the readyz request, then reads. */
static bool probe_write(struct checker *ck, struct probe *p)
{
    char why[160];
    int rc;

    rc = SSL_write(p->ssl, p->req + p->req_off, (int)(p->req_len - p->req_off));
    if (rc <= 0) {
        if (probe_wait(p, SSL_get_error(p->ssl, rc)))
            return false;
        tls_error(why, sizeof(why), "send", p->ssl);
        health_done(ck, false, why);
        return false;
    }
    p->req_off += (size_t)rc;
    if (p->req_off == p->req_len)
        p->step = STEP_READ;
    return true;
}

/* The verdict on a complete readyz status code (the response read so far
 * in p->resp; ended: the peer closed). Returns false when decided, true
 * when the body of a failure is still to be read. */
static bool readyz_verdict(struct checker *ck, struct probe *p, int code, bool ended)
{
    char why[160];

    if (code == 200 || ((code == 401 || code == 403) && !p->authed)) {
        /* Anonymous: 401/403 say the apiserver answers but not whether it
         * is ready (its etcd may be gone). */
        snprintf(why, sizeof(why), "readyz: HTTP %d", code);
        health_done(ck, true, why);
        return false;
    }
    if (code == 401 || code == 403) {
        snprintf(why, sizeof(why), "readyz: HTTP %d: %s", code,
                 code == 401 ? "the apiserver refused apilb's credentials (--health-auth)"
                             : "apilb's credentials may not GET /readyz (--health-auth)");
        health_done(ck, false, why);
        return false;
    }
    /* A failure: read the body for the check that failed. */
    if (!ended && p->resp_len < RESP_MAX - 1)
        return true;
    ck->not_ready = true;
    ck->shutting_down = strstr(p->resp, "[-]shutdown ") != NULL;
    snprintf(why, sizeof(why), "readyz: HTTP %d%s", code,
             ck->shutting_down ? " (shutting down)" : "");
    health_done(ck, false, why);
    return false;
}

/* STEP_READ: reads the response until its status (and, for a failure,
 * its body) decides. */
static bool probe_read(struct checker *ck, struct probe *p)
{
    bool ended = false;
    int rc, code;

    rc = SSL_read(p->ssl, p->resp + p->resp_len, (int)(RESP_MAX - 1 - p->resp_len));
    if (rc <= 0) {
        if (probe_wait(p, SSL_get_error(p->ssl, rc)))
            return false;
        ended = true; /* closed (we asked for Connection: close) */
    } else {
        p->resp_len += (size_t)rc;
    }
    p->resp[p->resp_len] = '\0';
    code = status_code(p->resp, p->resp_len);
    if (code == 0 && ended) {
        health_done(ck, false, "readyz: connection closed before a status line");
        return false;
    }
    if (code == 0)
        return true;
    if (code < 0) {
        health_done(ck, false, "readyz: not an HTTP response");
        return false;
    }
    return readyz_verdict(ck, p, code, ended);
}

/* Advances the probe as far as the socket allows, one step function per
 * state of the table in health.h. */
static void probe_step(struct checker *ck)
{
    struct probe *p = ck->probe;
    bool more = true;

    while (more) {
        switch (p->step) {
        case STEP_CONNECT:
            more = probe_connect(ck, p);
            break;
        case STEP_HANDSHAKE:
            more = probe_handshake(ck, p);
            break;
        case STEP_WRITE:
            more = probe_write(ck, p);
            break;
        case STEP_READ:
            more = probe_read(ck, p);
            break;
        }
    }
}

/* The request of a readyz check: the exact path /readyz (the one exempt
 * from API priority and fairness and matched by the apiserver's
 * anonymous-endpoint conditions), with the bearer token of --health-auth
 * kubeconfig when the probe presents credentials (p->authed) and there is
 * one. Returns 0 or -ENOMEM. */
static int request_build(struct health *h, struct probe *p)
{
    static const char fmt[] = "GET /readyz HTTP/1.1\r\nHost: %s\r\n"
                              "User-Agent: apilb/%s\r\nAccept: */*\r\n"
                              "%s%s%s"
                              "Connection: close\r\n\r\n";
    const char *tok = p->authed ? h->auth.token : NULL;
    size_t n = sizeof(fmt) + strlen(HEALTH_SERVER_NAME) + strlen(APILB_VERSION) + 32 +
               (tok != NULL ? strlen(tok) : 0);

    p->req = malloc(n);
    if (p->req == NULL)
        return -ENOMEM;
    p->req_len = (size_t)snprintf(p->req, n, fmt, HEALTH_SERVER_NAME, APILB_VERSION,
                                  tok != NULL ? "Authorization: Bearer " : "",
                                  tok != NULL ? tok : "", tok != NULL ? "\r\n" : "");
    return 0;
}

static void probe_cb(uv_poll_t *hd, int status, int events)
{
    struct probe *p = hd->data;

    if (p->ck->probe != p)
        return;
    probe_step(p->ck);
}

/* The check could not run because this host ran short (err, a positive
 * errno, from what): no verdict about the upstream. The counters and its
 * health stay as they are; it is logged (rate-limited), counted, and the
 * next check comes an interval later. */
static void check_skipped(struct checker *ck, const char *what, int err)
{
    struct upstream *up = ck->up;

    if (ck->probe != NULL) {
        probe_free(ck->probe);
        ck->probe = NULL;
    }
    atomic_fetch_add_explicit(&up->health_checks[2], 1, memory_order_relaxed);
    log_warn_limited("health-local", 10000,
                     "health check not run: this host is short of resources (no verdict about "
                     "the upstream)",
                     "upstream=%s err=\"%s: %s\"", up->name, what, strerror(err));
    uv_timer_start(&ck->timer, timer_cb, next_delay(ck->h), 0);
}

static void check_start(struct checker *ck)
{
    struct upstream *up = ck->up;
    struct probe *p;
    char why[96];
    int rc;

    health_ca_reload(ck->h);
    ck->started_us = clock_now_us();
    ck->not_ready = ck->shutting_down = ck->timed_out = false;
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        check_skipped(ck, "probe", ENOMEM);
        return;
    }
    p->ck = ck;
    p->fd = socket(up->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd == -1) {
        rc = errno;
        free(p);
        ck->probe = NULL;
        if (upstream_fail_is_local(rc)) {
            check_skipped(ck, "socket", rc);
            return;
        }
        snprintf(why, sizeof(why), "socket: %s", strerror(rc));
        health_done(ck, false, why);
        return;
    }
    sockopt_nodelay(p->fd); /* a probe lives well under the keepalive time */
    rc = uv_poll_init_socket(ck->h->loop, &p->poll, p->fd);
    if (rc != 0) {
        /* epoll_ctl: ENOMEM or ENOSPC (max_user_watches), ours either way. */
        close(p->fd);
        free(p);
        check_skipped(ck, "poll", -rc);
        return;
    }
    p->poll.data = p;
    ck->probe = p;
    uv_timer_start(&ck->timer, timer_cb, ck->h->cfg->health_timeout_ms, 0);
    if (connect(p->fd, (const struct sockaddr *)&up->addr.ss, up->addr.len) == -1 &&
        errno != EINPROGRESS) {
        rc = errno;
        if (upstream_fail_is_local(rc)) {
            check_skipped(ck, "connect", rc);
            return;
        }
        snprintf(why, sizeof(why), "connect: %s", strerror(rc));
        health_done(ck, false, why);
        return;
    }
    p->step = STEP_CONNECT;
    probe_want(p, UV_WRITABLE);
}

static uint64_t fails_of(const struct upstream *up)
{
    uint64_t n = 0;

    /* This host's own shortage says nothing about the upstream. */
    for (int i = 0; i < UPSTREAM_FAIL_COUNT; i++)
        if (i != UPSTREAM_FAIL_LOCAL)
            n += atomic_load_explicit(&up->connect_fail[i], memory_order_relaxed);
    return n;
}

static void checker_free(uv_handle_t *hd)
{
    struct checker *ck = hd->data;

    upstream_unref(ck->up);
    free(ck);
}

static void checker_stop(struct checker *ck)
{
    if (ck->probe != NULL) {
        probe_free(ck->probe);
        ck->probe = NULL;
    }
    uv_close((uv_handle_t *)&ck->timer, checker_free);
}

/* Adds the certificates of a PEM bundle in memory to the context's store. */
static int add_ca_pem(SSL_CTX *ctx, const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509 *x;
    int n = 0;

    if (bio == NULL)
        return 0;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        n += X509_STORE_add_cert(store, x) == 1;
        X509_free(x);
    }
    ERR_clear_error();
    BIO_free(bio);
    return n;
}

/* Builds the TLS client context: certificates verified against the file
 * ca_file (--health-ca) when given, else against the PEM bundle ca_pem (the
 * cluster CA), else not at all. Returns NULL with one line in err. */
static SSL_CTX *ctx_build(const char *ca_file, const char *ca_pem, bool *verify, char *err,
                          size_t err_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    *verify = false;
    if (ctx == NULL) {
        snprintf(err, err_len, "health checks: cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Every check is a full handshake that verifies the chain: a resumed
     * session carries no certificate, so an apiserver whose serving
     * certificate changed to one the CA does not sign would pass for as
     * long as its tickets are honoured (days, for Go), and a session from
     * a check that began before a CA change would carry the old trust
     * past it. No session is kept, and none is asked for. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (ca_file != NULL) {
        FILE *f = fopen(ca_file, "r");
        const char *why = f != NULL ? NULL : strerror(errno);

        if (f != NULL)
            fclose(f);
        if (why != NULL || SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            if (why == NULL)
                why = "no PEM certificate in it";
            snprintf(err, err_len, "--health-ca=%s: cannot load CA certificates: %s", ca_file, why);
            ERR_clear_error();
            SSL_CTX_free(ctx);
            return NULL;
        }
        *verify = true;
    } else if (ca_pem != NULL && add_ca_pem(ctx, ca_pem) > 0) {
        *verify = true;
    }
    SSL_CTX_set_verify(ctx, *verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    return ctx;
}

/* Puts ctx in place. Running probes keep the old one (SSL objects hold a
 * reference); the next check of each upstream uses the new one. */
static void ctx_swap(struct health *h, SSL_CTX *ctx, bool verify)
{
    if (h->ctx != NULL)
        SSL_CTX_free(h->ctx);
    h->ctx = ctx;
    h->verify = verify;
}

int health_new(uv_loop_t *loop, const struct config *cfg, const char *cluster_ca_pem,
               health_changed_fn changed, void *arg, struct health **out, char *err, size_t err_len)
{
    struct health *h = calloc(1, sizeof(*h));

    if (h == NULL) {
        snprintf(err, err_len, "health checks: out of memory");
        return -ENOMEM;
    }
    h->loop = loop;
    h->cfg = cfg;
    h->changed = changed;
    h->arg = arg;
    h->rng = clock_now_us() | 1;
    filewatch_init(&h->ca_watch);
    if (cfg->health_check == CONFIG_HEALTH_READYZ || cfg->health_check == CONFIG_HEALTH_TLS) {
        h->ctx = ctx_build(cfg->health_ca, cluster_ca_pem, &h->verify, err, err_len);
        if (h->ctx != NULL && cluster_ca_pem != NULL &&
            (h->cluster_ca = strdup(cluster_ca_pem)) == NULL) {
            snprintf(err, err_len, "health checks: out of memory");
            SSL_CTX_free(h->ctx);
            h->ctx = NULL;
        }
        if (h->ctx == NULL) {
            filewatch_free(&h->ca_watch);
            free(h);
            return -EINVAL;
        }
        if (cfg->health_ca != NULL && filewatch_add(&h->ca_watch, cfg->health_ca) != 0) {
            snprintf(err, err_len, "health checks: out of memory");
            health_free(h);
            return -ENOMEM;
        }
        if (!h->verify && loop != NULL)
            log_warn("health checks do not verify apiserver certificates (no --health-ca)",
                     "check=%s", cfg->health_check == CONFIG_HEALTH_READYZ ? "readyz" : "tls");
        if (!h->verify && loop != NULL && cfg->health_auth == CONFIG_HEALTH_AUTH_KUBECONFIG)
            log_warn("health checks present no credentials (and take 401/403 for alive) until a "
                     "CA verifies the apiservers (--health-ca, or the credentials' CA)",
                     "%s", "");
    }
    *out = h;
    return 0;
}

int health_set_ca(struct health *h, const char *ca_pem)
{
    char err[256], *copy;
    bool verify;
    SSL_CTX *ctx;

    if (h->ctx == NULL || h->cfg->health_ca != NULL)
        return 0; /* no TLS checks, or --health-ca decides */
    if (h->cluster_ca != NULL && strcmp(h->cluster_ca, ca_pem) == 0)
        return 0; /* the one read at start, announced by the watcher */
    copy = strdup(ca_pem);
    if (copy == NULL)
        return -ENOMEM;
    ctx = ctx_build(NULL, ca_pem, &verify, err, sizeof(err));
    if (ctx == NULL || !verify) {
        log_warn("new cluster CA has no usable certificate: health checks keep the old one",
                 "err=\"%s\"", ctx == NULL ? log_quote(err) : "no PEM certificate");
        if (ctx != NULL)
            SSL_CTX_free(ctx);
        free(copy);
        return -EINVAL;
    }
    ctx_swap(h, ctx, verify);
    free(h->cluster_ca);
    h->cluster_ca = copy;
    log_info("health checks use the new cluster CA", "%s", "");
    return 0;
}

int health_set_auth(struct health *h, const char *cert_pem, const char *key_pem, const char *token,
                    const char **why)
{
    bool first = !health_auth_present(&h->auth), changed;

    *why = NULL;
    if (h->cfg->health_auth != CONFIG_HEALTH_AUTH_KUBECONFIG)
        return 0;
    if (health_auth_set(&h->auth, cert_pem, key_pem, token, &changed, why) != 0)
        return -EINVAL;
    if (changed && h->loop != NULL)
        log_info(first ? "health checks present the discovery credentials"
                       : "health checks present the rotated discovery credentials",
                 "client_certificate=%s token=%s", h->auth.cert != NULL ? "yes" : "no",
                 h->auth.token != NULL ? "yes" : "no");
    return 0;
}

/* --health-ca rewritten or replaced: reload it (keeping the old trust when
 * the new file is unreadable). Called as each check starts: cheap, since
 * filewatch only reads its inotify descriptor unless something moved. */
static void health_ca_reload(struct health *h)
{
    char err[256];
    bool verify;
    SSL_CTX *ctx;

    if (h->cfg->health_ca == NULL || h->ctx == NULL ||
        !filewatch_changed(&h->ca_watch, clock_now_ms()))
        return;
    ctx = ctx_build(h->cfg->health_ca, NULL, &verify, err, sizeof(err));
    if (ctx == NULL) {
        log_warn("--health-ca changed but cannot be loaded: keeping the old CA", "err=\"%s\"",
                 log_quote(err));
        return;
    }
    ctx_swap(h, ctx, verify);
    log_info("--health-ca changed: health checks use the new CA", "path=\"%s\"",
             log_quote(h->cfg->health_ca));
}

void health_sync(struct health *h, struct upstream *const *ups, size_t n)
{
    struct checker **pp = &h->list, *ck;

    /* Stop the checkers of upstreams that left. */
    while ((ck = *pp) != NULL) {
        bool keep = false;

        for (size_t i = 0; i < n && !keep; i++)
            keep = ups[i] == ck->up;
        if (keep) {
            pp = &ck->next;
            continue;
        }
        *pp = ck->next;
        checker_stop(ck);
    }
    /* Start checkers for new ones, at a random offset within one interval. */
    for (size_t i = 0; i < n; i++) {
        bool have = false;

        for (ck = h->list; ck != NULL && !have; ck = ck->next)
            have = ck->up == ups[i];
        if (have)
            continue;
        ck = calloc(1, sizeof(*ck));
        if (ck == NULL)
            continue;
        ck->h = h;
        ck->up = ups[i];
        upstream_ref(ck->up);
        ck->fails_seen = fails_of(ck->up);
        uv_timer_init(h->loop, &ck->timer);
        ck->timer.data = ck;
        uv_timer_start(&ck->timer, timer_cb, rnd(h, h->cfg->health_interval_ms / 4 + 1), 0);
        ck->next = h->list;
        h->list = ck;
    }
}

void health_poll_dial_failures(struct health *h, struct upstream *up)
{
    struct checker *ck;

    for (ck = h->list; ck != NULL; ck = ck->next) {
        uint64_t f;

        if (ck->up != up)
            continue;
        f = fails_of(up);
        if (f == ck->fails_seen)
            return;
        ck->fails_seen = f;
        if (ck->probe != NULL)
            return; /* a check is running: its result decides */
        /* Counts as one failed check, then confirm with a real one now. */
        count_result(ck, false, "data-path connect failed");
        uv_timer_start(&ck->timer, timer_cb, 0, 0);
        return;
    }
}

void health_free(struct health *h)
{
    struct checker *ck, *nx;

    if (h == NULL)
        return;
    for (ck = h->list; ck != NULL; ck = nx) {
        nx = ck->next;
        checker_stop(ck);
    }
    if (h->ctx != NULL)
        SSL_CTX_free(h->ctx);
    free(h->cluster_ca);
    health_auth_destroy(&h->auth);
    filewatch_free(&h->ca_watch);
    free(h);
}
