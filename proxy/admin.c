/* SPDX-License-Identifier: Apache-2.0 */
/* The admin endpoint on a thread of its own that drives libmicrohttpd; see
 * admin.h.
 *
 * Admission (issue 24 F4). The kubelet's liveness and readiness probes come
 * here, often from 127.0.0.1 like any local process, so no client may be able
 * to hold the port shut. This thread owns the listening socket and accepts
 * itself, handing each connection to libmicrohttpd (external polling, epoll):
 *   - every connection has a deadline: ADMIN_HEADER_MS to send a whole
 *     request header (from accept, or from the end of the previous request on
 *     a kept-alive connection), ADMIN_ANSWER_MS to take the answer;
 *     libmicrohttpd's own timeout only counts inactivity, which a client
 *     sending one byte every few seconds resets for as long as it likes;
 *   - at most ADMIN_PER_ADDR of the ADMIN_MAX_CONNECTIONS connections come
 *     from one client address;
 *   - a new connection is never refused for want of a slot: over either limit
 *     the oldest connection of that address (or of all) is closed instead,
 *     one that is still sending its header first. A probe sends its request
 *     at once and is answered in the same loop turn that accepts it, so only
 *     connections that have held a slot longer than it can make way for it.
 * libmicrohttpd's MHD_OPTION_PER_IP_CONNECTION_LIMIT refuses the newest
 * connection, the probe; its connection limit makes new connections wait
 * behind the held ones. Neither is used for the policy. */
#define LOG_MODULE "admin"
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "clock.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "migrate.h"
#include "statusview.h"
#include "strbuf.h"
#include "upjson.h"

#define ADMIN_MAX_CONNECTIONS 32
#define ADMIN_PER_ADDR 8
#define ADMIN_HEADER_MS 3000u
#define ADMIN_ANSWER_MS 10000u
/* Connections accepted per loop turn before libmicrohttpd reads them: fewer
 * than ADMIN_PER_ADDR, so a connection is never closed to make room for one
 * accepted after it in the same turn. */
#define ADMIN_ACCEPT_BATCH 7
/* Closed connections stay in libmicrohttpd until its next turn: room for a
 * whole table of them plus a batch. */
#define ADMIN_SLOTS (2 * ADMIN_MAX_CONNECTIONS + ADMIN_ACCEPT_BATCH)
#define ADMIN_TIMEOUT_S 10 /* libmicrohttpd's inactivity timeout: a backstop */
#define ADMIN_CONN_MEMORY (32u * 1024u)
#define ADMIN_ACCEPT_PAUSE_MS 100 /* after EMFILE and the like */

enum admin_close {
    ADMIN_CLOSE_DEADLINE = 0, /* past its deadline */
    ADMIN_CLOSE_EVICTED,      /* made room for a newer connection */
    ADMIN_CLOSE_REFUSED,      /* libmicrohttpd took no more */
    ADMIN_CLOSE_COUNT
};

/* One admin connection. ctl is a dup(2) of the descriptor libmicrohttpd
 * owns: shutdown(ctl) ends the connection whatever libmicrohttpd has done
 * with its own descriptor (no reuse of a closed number), and ctl is closed
 * when libmicrohttpd reports the connection closed. */
struct admin_conn {
    int fd;  /* libmicrohttpd's; -1: the slot is free */
    int ctl; /* ours */
    struct addr peer;
    uint64_t since_ms; /* start of the header (or answer) phase */
    uint64_t order;    /* the same, as a sequence number: ties broken */
    bool answering;    /* the header is in: the answer is being sent */
    bool closing;      /* shut down by us; libmicrohttpd has yet to close it */
    bool linked;       /* libmicrohttpd reported it started */
    bool served;       /* a request has been answered: kept alive since */
};

struct admin {
    struct MHD_Daemon *d;
    snapshot_fn snap;
    connections_fn list_conns;
    void *arg;
    int listen_fd;
    int stop_fd; /* eventfd: admin_stop() wakes the thread */
    int mhd_fd;  /* libmicrohttpd's epoll descriptor */
    uv_thread_t thread;
    uint64_t accept_resume_ms; /* accepting paused until then (EMFILE) */
    uint64_t order;            /* the last admin_conn.order given */
    struct admin_conn conns[ADMIN_SLOTS];
    uint64_t closed[ADMIN_CLOSE_COUNT]; /* admin thread only */
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type,
                             struct strbuf *body)
{
    size_t len;
    char *p = strbuf_take(body, &len);
    struct MHD_Response *r;
    enum MHD_Result rc;

    if (p == NULL)
        return MHD_NO;
    r = MHD_create_response_from_buffer(len, p, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(p);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

/* --- connections ------------------------------------------------------ */

static struct admin_conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci != NULL ? ci->socket_context : NULL;
}

static bool same_host(const struct addr *x, const struct addr *y)
{
    const struct sockaddr_in *x4 = (const void *)&x->ss, *y4 = (const void *)&y->ss;
    const struct sockaddr_in6 *x6 = (const void *)&x->ss, *y6 = (const void *)&y->ss;

    if (x->ss.ss_family != y->ss.ss_family)
        return false;
    if (x->ss.ss_family == AF_INET)
        return x4->sin_addr.s_addr == y4->sin_addr.s_addr;
    return memcmp(&x6->sin6_addr, &y6->sin6_addr, sizeof(x6->sin6_addr)) == 0;
}

/* Whether x goes before y when room is needed: one still sending its header
 * first, then the one whose phase began first. */
static bool older(const struct admin_conn *x, const struct admin_conn *y)
{
    return y == NULL || x->answering < y->answering ||
           (x->answering == y->answering && x->order < y->order);
}

static uint64_t deadline_of(const struct admin_conn *k)
{
    return k->since_ms + (k->answering ? ADMIN_ANSWER_MS : ADMIN_HEADER_MS);
}

/* Ends k: libmicrohttpd sees the shutdown at its next turn and closes it. */
static void conn_close(struct admin *a, struct admin_conn *k, enum admin_close why)
{
    char name[ADDR_STRLEN];
    static const char *const reason[ADMIN_CLOSE_COUNT] = {"deadline", "evicted", "refused"};

    (void)shutdown(k->ctl, SHUT_RDWR);
    k->closing = true;
    a->closed[why]++;
    if (k->served && !k->answering) { /* idle between requests: normal */
        log_debug("idle admin connection closed", "client=%s reason=%s",
                  addr_format(&k->peer, name, sizeof(name)), reason[why]);
        return;
    }
    log_warn_limited("admin-close", 10000,
                     "admin connection closed: a slow or idle client held it (the admin "
                     "endpoint keeps room for the kubelet's probes)",
                     "client=%s reason=%s phase=%s deadline_total=%" PRIu64
                     " evicted_total=%" PRIu64,
                     addr_format(&k->peer, name, sizeof(name)), reason[why],
                     k->answering ? "answer" : "header", a->closed[ADMIN_CLOSE_DEADLINE],
                     a->closed[ADMIN_CLOSE_EVICTED]);
}

static void conn_free(struct admin_conn *k)
{
    close(k->ctl);
    memset(k, 0, sizeof(*k));
    k->fd = k->ctl = -1;
}

/* Makes room for a connection from peer: closes the oldest connection of
 * that address when it has ADMIN_PER_ADDR, else the oldest of all when there
 * are ADMIN_MAX_CONNECTIONS; one still sending its header goes first. */
static void make_room(struct admin *a, const struct addr *peer)
{
    struct admin_conn *oldest_here = NULL, *oldest = NULL;
    unsigned here = 0, all = 0;

    for (size_t i = 0; i < ADMIN_SLOTS; i++) {
        struct admin_conn *k = &a->conns[i];

        if (k->fd < 0 || k->closing)
            continue;
        all++;
        if (older(k, oldest))
            oldest = k;
        if (!same_host(&k->peer, peer))
            continue;
        here++;
        if (older(k, oldest_here))
            oldest_here = k;
    }
    if (here >= ADMIN_PER_ADDR)
        conn_close(a, oldest_here, ADMIN_CLOSE_EVICTED);
    else if (all >= ADMIN_MAX_CONNECTIONS)
        conn_close(a, oldest, ADMIN_CLOSE_EVICTED);
}

/* Closes the connections past their deadline; returns the nearest deadline
 * of the others (UINT64_MAX: none). */
static uint64_t expire(struct admin *a, uint64_t now)
{
    uint64_t next = UINT64_MAX;

    for (size_t i = 0; i < ADMIN_SLOTS; i++) {
        struct admin_conn *k = &a->conns[i];
        uint64_t at;

        if (k->fd < 0 || k->closing)
            continue;
        at = deadline_of(k);
        if (at <= now)
            conn_close(a, k, ADMIN_CLOSE_DEADLINE);
        else if (at < next)
            next = at;
    }
    return next;
}

/* Accepts up to ADMIN_ACCEPT_BATCH connections and hands them over. */
static void accept_some(struct admin *a, uint64_t now)
{
    for (int n = 0; n < ADMIN_ACCEPT_BATCH; n++) {
        struct addr peer = {.len = sizeof(peer.ss)};
        struct admin_conn *k = NULL;
        int fd, ctl;

        fd = accept4(a->listen_fd, (struct sockaddr *)&peer.ss, &peer.len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warn_limited("admin-accept", 10000, "admin endpoint cannot accept",
                                 "err=\"%s\" pause_ms=%d", strerror(errno), ADMIN_ACCEPT_PAUSE_MS);
                a->accept_resume_ms = now + ADMIN_ACCEPT_PAUSE_MS;
            }
            return; /* EAGAIN, or the client gave up (ECONNABORTED) */
        }
        for (size_t i = 0; i < ADMIN_SLOTS && k == NULL; i++)
            if (a->conns[i].fd < 0)
                k = &a->conns[i];
        ctl = k != NULL ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
        if (ctl == -1) {
            /* Every slot holds a connection being closed (cannot happen
             * with ADMIN_SLOTS), or no descriptor is left for ctl. */
            close(fd);
            a->closed[ADMIN_CLOSE_REFUSED]++;
            continue;
        }
        make_room(a, &peer); /* k is not in the table yet: never the one closed */
        k->fd = fd;
        k->ctl = ctl;
        k->peer = peer;
        k->since_ms = now;
        k->order = ++a->order;
        if (MHD_add_connection(a->d, fd, (const struct sockaddr *)&peer.ss, peer.len) != MHD_YES) {
            /* libmicrohttpd closed fd; it reports no close for it unless
             * it reported the start. */
            a->closed[ADMIN_CLOSE_REFUSED]++;
            if (!k->linked)
                conn_free(k);
        }
    }
}

/* libmicrohttpd's connection notifications (admin thread): link the
 * connection to its slot at the start, free the slot at the close. */
static void notify_cb(void *cls, struct MHD_Connection *c, void **socket_context,
                      enum MHD_ConnectionNotificationCode toe)
{
    struct admin *a = cls;
    const union MHD_ConnectionInfo *ci;
    struct admin_conn *k = *socket_context;

    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (k != NULL)
            conn_free(k);
        *socket_context = NULL;
        return;
    }
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    for (size_t i = 0; ci != NULL && i < ADMIN_SLOTS; i++) {
        k = &a->conns[i];
        if (k->fd == ci->connect_fd && !k->linked) {
            k->linked = true;
            *socket_context = k;
            return;
        }
    }
}

/* A request is done (answered or abandoned): a kept-alive connection gets a
 * new header deadline. */
static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct admin *a = cls;
    struct admin_conn *k = conn_of(c);

    (void)con_cls;
    (void)toe;
    if (k != NULL) {
        k->answering = false;
        k->served = true;
        k->since_ms = clock_now_ms();
        k->order = ++a->order;
    }
}

static void admin_metrics(const struct admin *a, struct strbuf *b)
{
    static const char *const reason[ADMIN_CLOSE_COUNT] = {"deadline", "evicted", "refused"};
    unsigned open = 0;

    for (size_t i = 0; i < ADMIN_SLOTS; i++)
        open += a->conns[i].fd >= 0 && !a->conns[i].closing;
    strbuf_printf(b,
                  "# HELP apilb_admin_connections Connections open to the admin endpoint.\n"
                  "# TYPE apilb_admin_connections gauge\napilb_admin_connections %u\n",
                  open);
    strbuf_puts(b, "# HELP apilb_admin_connections_closed_total Admin connections apilb closed: "
                   "past their deadline, to make room for a newer one, or not taken.\n"
                   "# TYPE apilb_admin_connections_closed_total counter\n");
    for (int i = 0; i < ADMIN_CLOSE_COUNT; i++)
        strbuf_printf(b, "apilb_admin_connections_closed_total{reason=\"%s\"} %" PRIu64 "\n",
                      reason[i], a->closed[i]);
}

/* --- requests ---------------------------------------------------------- */

/* A query argument as a number in [0, max], or def when absent; -1 when it
 * is not such a number. */
static long long query_number(struct MHD_Connection *c, const char *name, long long def,
                              long long max)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    char *end;
    long long n;

    if (v == NULL)
        return def;
    errno = 0;
    n = strtoll(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n > max)
        return -1;
    return n;
}

/* GET /connections?offset=N&limit=M: the open sessions, a page at a time. */
static enum MHD_Result connections(struct admin *a, struct MHD_Connection *c, struct strbuf *b)
{
    long long offset = query_number(c, "offset", 0, ADMIN_CONNECTIONS_MAX_OFFSET);
    long long limit = query_number(c, "limit", ADMIN_CONNECTIONS_DEFAULT, ADMIN_CONNECTIONS_MAX);
    struct session_info *out;
    size_t n, total;
    bool partial;

    if (offset < 0 || limit < 1) {
        strbuf_printf(b, "bad request: offset is 0..%d and limit 1..%d\n",
                      ADMIN_CONNECTIONS_MAX_OFFSET, ADMIN_CONNECTIONS_MAX);
        return reply(c, MHD_HTTP_BAD_REQUEST, "text/plain; charset=utf-8", b);
    }
    out = calloc((size_t)limit, sizeof(*out));
    if (out == NULL ||
        a->list_conns(a->arg, (size_t)offset, out, (size_t)limit, &n, &total, &partial) != 0) {
        free(out);
        strbuf_puts(b, "out of memory\n");
        return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", b);
    }
    upjson_connections(out, n, total, (size_t)offset, (size_t)limit, partial, b);
    free(out);
    if (strbuf_failed(b)) {
        strbuf_free(b);
        strbuf_puts(b, "out of memory\n");
        return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", b);
    }
    return reply(c, MHD_HTTP_OK, "application/json", b);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    struct admin *a = cls;
    struct strbuf b;
    struct snapshot s;
    uint64_t now = clock_now_ms();
    unsigned code = MHD_HTTP_OK;
    const char *type = "text/plain; charset=utf-8";

    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* a body is ignored (and bounded by the memory limit) */
        return MHD_YES;
    }
    if (*con_cls == NULL) { /* the header is in: the answer phase starts */
        struct admin_conn *k = conn_of(c);

        *con_cls = a;
        if (k != NULL) {
            k->answering = true;
            k->since_ms = now;
            k->order = ++a->order;
        }
    }
    strbuf_init(&b);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        strbuf_puts(&b, "method not allowed: use GET\n");
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, type, &b);
    }
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/livez") == 0) {
        strbuf_puts(&b, "ok\n");
        return reply(c, MHD_HTTP_OK, type, &b);
    }
    if (strcmp(url, "/connections") == 0)
        return connections(a, c, &b);
    if (strcmp(url, "/readyz") != 0 && strcmp(url, "/upstreams") != 0 &&
        strcmp(url, "/metrics") != 0 && strcmp(url, "/status") != 0) {
        strbuf_puts(&b, "not found: try /healthz /readyz /upstreams /status /connections "
                        "/metrics\n");
        return reply(c, MHD_HTTP_NOT_FOUND, type, &b);
    }
    if (a->snap(a->arg, &s) != 0) {
        strbuf_puts(&b, "out of memory\n");
        return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, type, &b);
    }
    if (strcmp(url, "/readyz") == 0) {
        code = (unsigned)upjson_readyz(&s, now, &b);
    } else if (strcmp(url, "/upstreams") == 0) {
        upjson_render(&s, now, &b);
        type = "application/json";
    } else if (strcmp(url, "/status") == 0) {
        statusview_render(&s, now, clock_wall_ms(), &b);
    } else {
        metrics_render(&s, now, &b);
        admin_metrics(a, &b);
        type = "text/plain; version=0.0.4; charset=utf-8";
    }
    snapshot_release(&s);
    if (strbuf_failed(&b)) {
        strbuf_free(&b);
        strbuf_puts(&b, "out of memory\n");
        code = MHD_HTTP_SERVICE_UNAVAILABLE;
    }
    return reply(c, code, type, &b);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[256];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_warn_limited("admin-http", 10000, "admin endpoint", "err=\"%s\"", log_quote(msg));
}

/* --- the thread ---------------------------------------------------------- */

static int poll_timeout(struct admin *a, uint64_t now, uint64_t next_deadline)
{
    MHD_UNSIGNED_LONG_LONG mhd_ms;
    uint64_t ms = UINT64_MAX;

    if (MHD_get_timeout(a->d, &mhd_ms) == MHD_YES)
        ms = (uint64_t)mhd_ms;
    if (next_deadline != UINT64_MAX)
        ms = next_deadline > now ? (next_deadline - now < ms ? next_deadline - now : ms) : 0;
    if (a->accept_resume_ms > now && a->accept_resume_ms - now < ms)
        ms = a->accept_resume_ms - now;
    return ms > 60000 ? 60000 : (int)ms;
}

/* One turn: wait for the stop eventfd, the listener, libmicrohttpd's epoll
 * descriptor or the nearest deadline; close what is past its deadline;
 * accept; then let libmicrohttpd read, answer and close. */
static void admin_thread(void *arg)
{
    struct admin *a = arg;
    uint64_t now = clock_now_ms(), next = UINT64_MAX;

    for (;;) {
        struct pollfd p[3] = {{.fd = a->stop_fd, .events = POLLIN},
                              {.fd = a->listen_fd, .events = POLLIN},
                              {.fd = a->mhd_fd, .events = POLLIN}};

        if (a->accept_resume_ms > now)
            p[1].fd = -1;
        if (poll(p, 3, poll_timeout(a, now, next)) == -1 && errno != EINTR) {
            log_error("admin endpoint stopped", "err=\"poll: %s\"", strerror(errno));
            return;
        }
        if (p[0].revents != 0)
            return;
        now = clock_now_ms();
        (void)expire(a, now);
        if (p[1].revents != 0)
            accept_some(a, now);
        (void)MHD_run(a->d);
        next = expire(a, now = clock_now_ms());
    }
}

int admin_start(struct addr *listen, snapshot_fn snap, connections_fn conns, void *arg,
                struct admin **out, char *err, size_t err_len)
{
    struct admin *a;
    char name[ADDR_STRLEN];
    int fd;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *di;
    int defer_s = (int)(ADMIN_HEADER_MS / 1000u);

    addr_format(listen, name, sizeof(name));
    fd = listener_open(listen);
    if (fd < 0) {
        char holder[128] = "";

        if (fd == -EADDRINUSE)
            listener_holder(listen, holder, sizeof(holder));
        snprintf(err, err_len, "--admin-listen=%s: %s%s%s%s", name, strerror(-fd),
                 holder[0] ? " (held by " : "", holder, holder[0] ? ")" : "");
        return fd;
    }
    /* Requests still queued here when this apilb closes go to the next
     * one's admin listener (an upgrade): a probe or a scrape sees no reset.
     * Where that needs a privilege apilb lacks, the data listeners' log line
     * says so already (queue_handover=sysctl), and the same applies here. */
    (void)migrate_enable(fd);
    /* The kernel hands over a connection only once its first bytes are in
     * (a client that sends nothing waits in the kernel, not in a slot, until
     * the deferral ends), so a probe's request is read in the loop turn that
     * accepts it: see ADMIN_ACCEPT_BATCH. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof(defer_s));
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        close(fd);
        snprintf(err, err_len, "--admin-listen=%s: out of memory", name);
        return -ENOMEM;
    }
    for (size_t i = 0; i < ADMIN_SLOTS; i++)
        a->conns[i].fd = a->conns[i].ctl = -1;
    a->snap = snap;
    a->list_conns = conns;
    a->arg = arg;
    a->listen_fd = fd;
    a->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (listen->ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    a->d =
        MHD_start_daemon(flags, 0, NULL, NULL, handle, a, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                         MHD_OPTION_NOTIFY_CONNECTION, notify_cb, a, MHD_OPTION_NOTIFY_COMPLETED,
                         completed_cb, a, MHD_OPTION_CONNECTION_LIMIT, (unsigned)ADMIN_SLOTS,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ADMIN_TIMEOUT_S,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)ADMIN_CONN_MEMORY,
                         MHD_OPTION_END);
    di = a->d != NULL ? MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (a->stop_fd == -1 || di == NULL) {
        snprintf(err, err_len, "--admin-listen=%s: cannot start the HTTP server", name);
        goto fail;
    }
    a->mhd_fd = di->epoll_fd;
    if (uv_thread_create(&a->thread, admin_thread, a) != 0) {
        snprintf(err, err_len, "--admin-listen=%s: cannot start a thread", name);
        goto fail;
    }
    *out = a;
    return 0;
fail:
    if (a->d != NULL)
        MHD_stop_daemon(a->d);
    if (a->stop_fd != -1)
        close(a->stop_fd);
    close(fd);
    free(a);
    return -EIO;
}

void admin_stop(struct admin *a)
{
    uint64_t one = 1;

    if (a == NULL)
        return;
    if (write(a->stop_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
        abort(); /* an eventfd write of 1 cannot fail short of a bug */
    uv_thread_join(&a->thread);
    MHD_stop_daemon(a->d); /* closes every connection; notify_cb frees their slots */
    close(a->listen_fd);
    close(a->stop_fd);
    free(a);
}

int admin_listen_fd(const struct admin *a)
{
    return a->listen_fd;
}

const struct admin_ops apilb_admin_ops = {
    .start = admin_start,
    .stop = admin_stop,
    .listen_fd = admin_listen_fd,
};
