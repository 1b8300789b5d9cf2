/* SPDX-License-Identifier: Apache-2.0 */
#include "lossprobe.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "upstream.h"

const char *lossprobe_verdict_name(enum lossprobe_verdict v)
{
    switch (v) {
    case LOSSPROBE_ALIVE:
        return "alive";
    case LOSSPROBE_GONE:
        return "gone";
    default:
        return "unknown";
    }
}

enum lossprobe_verdict lossprobe_classify(int err)
{
    switch (err) {
    case 0:
        return LOSSPROBE_ALIVE;
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -ENETUNREACH:
    case -EHOSTUNREACH:
        return LOSSPROBE_GONE;
    default: /* a timeout, or this host's own failure (upstream_fail_is_local) */
        return LOSSPROBE_UNKNOWN;
    }
}

void lossprobe_init(struct lossprobe *p)
{
    p->io.fd = -1;
    p->io.events = 0;
    p->io.again = false;
    p->up = NULL;
    p->deadline_ms = 0;
    p->settling = false;
}

bool lossprobe_busy(const struct lossprobe *p)
{
    return p->io.fd >= 0;
}

int lossprobe_start(struct lossprobe *p, struct evloop *l, struct upstream *up, uint64_t now_ms,
                    ev_io_fn cb, enum lossprobe_verdict *verdict)
{
    int fd, rc;

    if (lossprobe_busy(p))
        return -EBUSY;
    fd = socket(up->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        *verdict = lossprobe_classify(-errno);
        return 1;
    }
    rc = connect(fd, (const struct sockaddr *)&up->addr.ss, up->addr.len) == 0 ? 0 : -errno;
    if (rc != 0 && rc != -EINPROGRESS) {
        *verdict = lossprobe_classify(rc);
        close(fd);
        return 1;
    }
    p->io.fd = fd;
    p->io.events = 0;
    p->io.cb = cb;
    /* Connected at once (loopback can): settle from now. */
    p->settling = rc == 0;
    rc = evloop_set(l, &p->io, p->settling ? EVLOOP_READ : EVLOOP_WRITE);
    if (rc != 0) {
        close(fd);
        p->io.fd = -1;
        *verdict = LOSSPROBE_UNKNOWN;
        return 1;
    }
    upstream_ref(up);
    p->up = up;
    p->deadline_ms = now_ms + (p->settling ? LOSSPROBE_SETTLE_MS : LOSSPROBE_TIMEOUT_MS);
    return 0;
}

/* Closes the probe's socket and drops its upstream; returns v. */
static int probe_done(struct lossprobe *p, struct evloop *l, enum lossprobe_verdict v)
{
    evloop_forget(l, &p->io);
    close(p->io.fd);
    p->io.fd = -1;
    p->io.events = 0;
    p->settling = false;
    upstream_unref(p->up);
    p->up = NULL;
    return (int)v;
}

int lossprobe_step(struct lossprobe *p, struct evloop *l, unsigned events, uint64_t now_ms)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (p->settling) {
        /* Anything on a socket we sent nothing on is its end: a reset
         * (the listener went away with the process) or a FIN. */
        if (events & (EVLOOP_READ | EVLOOP_ERROR))
            return probe_done(p, l, LOSSPROBE_GONE);
        return now_ms >= p->deadline_ms ? probe_done(p, l, LOSSPROBE_ALIVE) : -EINPROGRESS;
    }
    if (events & EVLOOP_ERROR) {
        if (getsockopt(p->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
            err = errno;
        return probe_done(p, l, lossprobe_classify(err != 0 ? -err : -ECONNREFUSED));
    }
    if (events & EVLOOP_WRITE) { /* writable without an error: connected */
        if (evloop_set(l, &p->io, EVLOOP_READ) != 0)
            return probe_done(p, l, LOSSPROBE_UNKNOWN);
        p->settling = true;
        p->deadline_ms = now_ms + LOSSPROBE_SETTLE_MS;
        return -EINPROGRESS;
    }
    return now_ms >= p->deadline_ms ? probe_done(p, l, LOSSPROBE_UNKNOWN) : -EINPROGRESS;
}

void lossprobe_cancel(struct lossprobe *p, struct evloop *l)
{
    if (lossprobe_busy(p))
        (void)probe_done(p, l, LOSSPROBE_UNKNOWN);
}
