/* SPDX-License-Identifier: Apache-2.0 */
/* The admin endpoint: a deliberately small HTTP/1.1 server on its own thread
 * and libuv loop; see admin.h.
 *
 * One request per connection: read the head (bounded), answer, close. Each
 * connection walks READING -> WRITING -> DRAINING -> closed:
 *   READING   read_cb() collects the request head; a whole head, a head
 *             over ADMIN_HEAD_MAX or a timeout leads to respond()
 *   WRITING   respond() queued the answer; write_cb() shuts down our side
 *   DRAINING  what the client still sends is read and dropped until its
 *             FIN (closing with unread bytes would send a RST that can
 *             destroy the answer in flight), or the deadline
 * ADMIN_MAX_CONNECTIONS at once; more are closed as they arrive. Every
 * connection has ADMIN_TIMEOUT_MS in all, so a slow client holds nothing
 * for long. */
#define LOG_MODULE "admin"
#include "admin.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "strbuf.h"
#include "upjson.h"
#include "worker.h"

#define ADMIN_MAX_CONNECTIONS 16
#define ADMIN_TIMEOUT_MS 10000
#define ADMIN_HEAD_MAX 8192

enum conn_state {
    C_READING = 0,
    C_WRITING,
    C_DRAINING,
    C_CLOSING,
};

struct admin {
    uv_loop_t loop;
    uv_tcp_t server;
    uv_async_t stop;
    uv_thread_t thread;
    snapshot_fn snap;
    void *arg;
    unsigned n_conns;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    uv_shutdown_t sd;
    struct admin *a;
    enum conn_state state;
    int open_handles;
    char *resp;                 /* the answer being written */
    size_t len;
    char head[ADMIN_HEAD_MAX];  /* last: not cleared on accept */
};

/* --- the request --------------------------------------------------------- */

static const char *reason(unsigned code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 431:
        return "Request Header Fields Too Large";
    default:
        return "Service Unavailable";
    }
}

int admin_parse_head(const char *head, size_t len, char *method, size_t method_len, char *path,
                     size_t path_len)
{
    const char *eol = memchr(head, '\n', len), *sp1, *sp2, *q;
    size_t n;

    if (eol == NULL)
        return -EINVAL;
    if (eol > head && eol[-1] == '\r')
        eol--;
    sp1 = memchr(head, ' ', (size_t)(eol - head));
    if (sp1 == NULL || sp1 == head)
        return -EINVAL;
    sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (sp2 == NULL || sp2 == sp1 + 1 || eol - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return -EINVAL;
    n = (size_t)(sp1 - head);
    if (n >= method_len)
        return -EINVAL;
    memcpy(method, head, n);
    method[n] = '\0';
    q = memchr(sp1 + 1, '?', (size_t)(sp2 - sp1 - 1)); /* a query is ignored */
    n = (size_t)((q != NULL ? q : sp2) - sp1 - 1);
    if (n >= path_len || sp1[1] != '/')
        return -EINVAL;
    memcpy(path, sp1 + 1, n);
    path[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)path[i] <= ' ' || path[i] == 0x7f)
            return -EINVAL;
    }
    return 0;
}

/* Builds the answer to the request in head into b; returns its status and
 * sets *type. */
static unsigned route(struct admin *a, const char *method, const char *path, struct strbuf *b,
                      const char **type)
{
    struct snapshot s;
    uint64_t now = worker_now_ms();
    unsigned code = 200;

    *type = "text/plain; charset=utf-8";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        strbuf_puts(b, "method not allowed: use GET\n");
        return 405;
    }
    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/livez") == 0) {
        strbuf_puts(b, "ok\n");
        return 200;
    }
    if (strcmp(path, "/readyz") != 0 && strcmp(path, "/upstreams") != 0 &&
        strcmp(path, "/metrics") != 0) {
        strbuf_puts(b, "not found: try /healthz /readyz /upstreams /metrics\n");
        return 404;
    }
    if (a->snap(a->arg, &s) != 0) {
        strbuf_puts(b, "out of memory\n");
        return 503;
    }
    if (strcmp(path, "/readyz") == 0) {
        code = (unsigned)upjson_readyz(&s, now, b);
    } else if (strcmp(path, "/upstreams") == 0) {
        upjson_render(&s, now, b);
        *type = "application/json";
    } else {
        metrics_render(&s, now, b);
        *type = "text/plain; version=0.0.4; charset=utf-8";
    }
    snapshot_release(&s);
    return code;
}

/* --- the connection ------------------------------------------------------- */

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;

    if (--c->open_handles > 0)
        return;
    c->a->n_conns--;
    free(c->resp);
    free(c);
}

static void conn_close(struct conn *c)
{
    if (c->state == C_CLOSING)
        return;
    c->state = C_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
    uv_close((uv_handle_t *)&c->timer, conn_closed);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    static char sink[4096]; /* DRAINING: bytes only to be dropped (one loop thread) */

    (void)suggested;
    if (c->state == C_READING) {
        buf->base = c->head + c->len;
        buf->len = sizeof(c->head) - c->len;
    } else {
        buf->base = sink;
        buf->len = sizeof(sink);
    }
}

static void shutdown_cb(uv_shutdown_t *sd, int status)
{
    struct conn *c = sd->data;

    if (status != 0)
        conn_close(c);
}

static void write_cb(uv_write_t *wr, int status)
{
    struct conn *c = wr->data;

    if (c->state == C_CLOSING)
        return;
    if (status != 0 || uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp, shutdown_cb) != 0) {
        conn_close(c);
        return;
    }
    c->state = C_DRAINING; /* reading goes on, into the sink, until the FIN */
}

/* Answers with code and the body in b (taken), then the connection ends. */
static void respond(struct conn *c, unsigned code, const char *type, bool head_only,
                    struct strbuf *b)
{
    size_t body_len = 0, len;
    char *body = strbuf_take(b, &body_len);
    struct strbuf r;
    uv_buf_t buf;

    strbuf_init(&r);
    strbuf_printf(&r,
                  "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                  "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                  code, reason(code), type, body_len,
                  code == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (!head_only && body != NULL)
        strbuf_add(&r, body, body_len);
    free(body);
    c->resp = strbuf_take(&r, &len);
    if (c->resp == NULL) {
        conn_close(c);
        return;
    }
    c->state = C_WRITING;
    buf = uv_buf_init(c->resp, (unsigned)len);
    c->wr.data = c;
    c->sd.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &buf, 1, write_cb) != 0)
        conn_close(c);
}

static void respond_text(struct conn *c, unsigned code, const char *text)
{
    struct strbuf b;

    strbuf_init(&b);
    strbuf_puts(&b, text);
    respond(c, code, "text/plain; charset=utf-8", false, &b);
}

static void serve(struct conn *c)
{
    char method[16], path[256];
    const char *type;
    struct strbuf b;
    unsigned code;

    if (admin_parse_head(c->head, c->len, method, sizeof(method), path, sizeof(path)) != 0) {
        respond_text(c, 400, "bad request: expected \"GET /path HTTP/1.1\"\n");
        return;
    }
    strbuf_init(&b);
    code = route(c->a, method, path, &b, &type);
    if (strbuf_failed(&b)) {
        strbuf_free(&b);
        respond_text(c, 503, "out of memory\n");
        return;
    }
    respond(c, code, type, strcmp(method, "HEAD") == 0, &b);
}

/* The head ends at the first empty line. */
static bool head_complete(const struct conn *c)
{
    for (size_t i = 0; i + 1 < c->len; i++) {
        if (c->head[i] != '\n')
            continue;
        if (c->head[i + 1] == '\n' ||
            (c->head[i + 1] == '\r' && i + 2 < c->len && c->head[i + 2] == '\n'))
            return true;
    }
    return false;
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = st->data;

    (void)buf;
    if (n < 0) {
        conn_close(c); /* EOF or error: whatever state, nothing more to do */
        return;
    }
    if (c->state != C_READING)
        return; /* DRAINING: dropped */
    c->len += (size_t)n;
    if (head_complete(c)) {
        serve(c);
    } else if (c->len == sizeof(c->head)) {
        respond_text(c, 431, "request head too large\n");
    }
}

static void timer_cb(uv_timer_t *t)
{
    struct conn *c = t->data;

    if (c->state == C_READING && c->len > 0)
        respond_text(c, 408, "request timeout\n");
    else
        conn_close(c);
    /* One more short wait for the answer to leave, then the end. */
    if (c->state != C_CLOSING)
        uv_timer_start(&c->timer, timer_cb, 1000, 0);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct admin *a = server->data;
    struct conn *c;

    if (status != 0)
        return;
    c = malloc(sizeof(*c));
    if (c == NULL)
        return; /* the connection waits in the backlog */
    memset(c, 0, offsetof(struct conn, head));
    c->a = a;
    uv_tcp_init(&a->loop, &c->tcp);
    uv_timer_init(&a->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    a->n_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || a->n_conns > ADMIN_MAX_CONNECTIONS) {
        log_warn_limited("admin-busy", 10000, "admin endpoint: too many connections, closing one",
                         "limit=%d", ADMIN_MAX_CONNECTIONS);
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, timer_cb, ADMIN_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0)
        conn_close(c);
}

/* --- the thread ------------------------------------------------------------ */

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP && h->data != NULL && h->data != arg) {
        conn_close(h->data);
        return;
    }
    if (h->type == UV_TIMER)
        return; /* closed with its connection */
    uv_close(h, NULL);
}

static void stop_cb(uv_async_t *as)
{
    struct admin *a = as->data;

    uv_walk(&a->loop, close_any, a);
}

static void admin_main(void *arg)
{
    struct admin *a = arg;

    uv_run(&a->loop, UV_RUN_DEFAULT);
}

int admin_start(struct addr *listen, snapshot_fn snap, void *arg, struct admin **out, char *err,
                size_t err_len)
{
    struct admin *a;
    char name[ADDR_STRLEN];
    int fd, rc;

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
    a = calloc(1, sizeof(*a));
    if (a == NULL || uv_loop_init(&a->loop) != 0) {
        close(fd);
        free(a);
        snprintf(err, err_len, "--admin-listen=%s: out of memory", name);
        return -ENOMEM;
    }
    a->snap = snap;
    a->arg = arg;
    uv_tcp_init(&a->loop, &a->server);
    uv_async_init(&a->loop, &a->stop, stop_cb);
    a->server.data = a->stop.data = a;
    rc = uv_tcp_open(&a->server, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->server, LISTENER_BACKLOG, on_connection);
    if (rc == 0)
        rc = uv_thread_create(&a->thread, admin_main, a);
    if (rc != 0) {
        snprintf(err, err_len, "--admin-listen=%s: cannot start the HTTP server: %s", name,
                 uv_strerror(rc));
        uv_close((uv_handle_t *)&a->server, NULL); /* closes fd */
        uv_close((uv_handle_t *)&a->stop, NULL);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&a->loop);
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void admin_stop(struct admin *a)
{
    if (a == NULL)
        return;
    uv_async_send(&a->stop);
    uv_thread_join(&a->thread);
    (void)uv_loop_close(&a->loop);
    free(a);
}
