/* SPDX-License-Identifier: Apache-2.0 */
/* The admin endpoint on libmicrohttpd's own thread; see admin.h. */
#define LOG_MODULE "admin"
#include "admin.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "migrate.h"
#include "statusview.h"
#include "strbuf.h"
#include "upjson.h"
#include "worker.h"

#define ADMIN_MAX_CONNECTIONS 16
#define ADMIN_TIMEOUT_S 10
#define ADMIN_CONN_MEMORY (32u * 1024u)

struct admin {
    struct MHD_Daemon *d;
    snapshot_fn snap;
    void *arg;
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

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    struct admin *a = cls;
    struct strbuf b;
    struct snapshot s;
    uint64_t now = worker_now_ms();
    unsigned code = MHD_HTTP_OK;
    const char *type = "text/plain; charset=utf-8";

    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* a body is ignored (and bounded by the memory limit) */
        return MHD_YES;
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
    if (strcmp(url, "/readyz") != 0 && strcmp(url, "/upstreams") != 0 &&
        strcmp(url, "/metrics") != 0 && strcmp(url, "/status") != 0) {
        strbuf_puts(&b, "not found: try /healthz /readyz /upstreams /status /metrics\n");
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
        statusview_render(&s, now, (uint64_t)time(NULL) * 1000u, &b);
    } else {
        metrics_render(&s, now, &b);
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

int admin_start(struct addr *listen, snapshot_fn snap, void *arg, struct admin **out, char *err,
                size_t err_len)
{
    struct admin *a;
    char name[ADDR_STRLEN];
    int fd;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;

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
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        close(fd);
        snprintf(err, err_len, "--admin-listen=%s: out of memory", name);
        return -ENOMEM;
    }
    a->snap = snap;
    a->arg = arg;
    if (listen->ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    a->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, a, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                            NULL, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)ADMIN_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)ADMIN_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                            (size_t)ADMIN_CONN_MEMORY, MHD_OPTION_END);
    if (a->d == NULL) {
        close(fd);
        free(a);
        snprintf(err, err_len, "--admin-listen=%s: cannot start the HTTP server", name);
        return -EIO;
    }
    *out = a;
    return 0;
}

void admin_stop(struct admin *a)
{
    if (a == NULL)
        return;
    MHD_stop_daemon(a->d); /* also closes the listening socket */
    free(a);
}

const struct admin_ops apilb_admin_ops = {
    .start = admin_start,
    .stop = admin_stop,
};
