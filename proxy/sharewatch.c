/* SPDX-License-Identifier: Apache-2.0 */
/* Periodic check of the listeners' SO_REUSEPORT groups; see sharewatch.h. */
#define LOG_MODULE "listener"
#include "sharewatch.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

/* Thread pool: the /proc reads. */
static void scan_cb(uv_work_t *req)
{
    struct sharewatch *w = req->data;

    for (size_t i = 0; i < w->n; i++) {
        struct sharewatch_addr *s = &w->addrs[i];

        s->n_found = listener_others(&s->a, s->ours, s->n_ours, s->found, SHAREWATCH_MAX_OTHERS);
    }
}

/* Whether o belongs to another apilb (an upgrade), as far as apilb can tell:
 * its comm says so, or its owner is hidden and it is young. A program can
 * name itself apilb; the dedicated uid is the defence, this is a tripwire. */
static bool is_apilb(const struct sharewatch *w, const struct sharewatch_other *o, uint64_t now)
{
    if (o->o.pid >= 0)
        return strcmp(o->o.comm, "apilb") == 0;
    return now - o->first_seen_ms < w->upgrade_ms;
}

static void report(const struct sharewatch *w, const struct sharewatch_addr *s,
                   const struct sharewatch_other *o, bool apilb)
{
    unsigned window_s = (unsigned)(w->upgrade_ms / 1000u);

    if (apilb && o->o.pid >= 0)
        log_info("another apilb listens on this address too (an upgrade in progress)",
                 "addr=%s pid=%ld", s->name, o->o.pid);
    else if (apilb)
        log_info("another process listens on this address too, its owner hidden (another PID "
                 "namespace): an apilb upgrade, if it ends within --listener-grace",
                 "addr=%s inode=%lu uid=%lu window=%us", s->name, o->o.inode, o->o.uid, window_s);
    else if (o->o.pid >= 0)
        log_warn("another program listens on apilb's address with SO_REUSEPORT and gets a share "
                 "of its new connections: it runs as apilb's uid; give apilb a uid of its own "
                 "(docs/security.md)",
                 "addr=%s pid=%ld comm=\"%s\" uid=%lu inode=%lu", s->name, o->o.pid,
                 log_quote(o->o.comm), o->o.uid, o->o.inode);
    else
        log_warn("a process whose owner is hidden (another PID namespace) has listened on "
                 "apilb's address with SO_REUSEPORT for --listener-grace and gets a share "
                 "of its new connections: an apilb upgrade that does not end, or another program "
                 "of apilb's uid (docs/security.md)",
                 "addr=%s uid=%lu inode=%lu window=%us", s->name, o->o.uid, o->o.inode, window_s);
}

/* Control thread: carries the first-seen times over by inode, reports what
 * is new (or what has just stopped looking like an upgrade) and what left. */
static void apply(struct sharewatch *w, uint64_t now)
{
    unsigned foreign = 0, apilb = 0;

    for (size_t i = 0; i < w->n; i++) {
        struct sharewatch_addr *s = &w->addrs[i];
        struct sharewatch_other next[SHAREWATCH_MAX_OTHERS];

        for (size_t k = 0; k < s->n_seen; k++) {
            bool still = false;

            for (size_t j = 0; j < s->n_found && !still; j++)
                still = s->found[j].inode == s->seen[k].o.inode;
            if (!still)
                log_info("the other listener on this address is gone", "addr=%s inode=%lu", s->name,
                         s->seen[k].o.inode);
        }
        for (size_t j = 0; j < s->n_found; j++) {
            struct sharewatch_other *o = &next[j];
            bool known = false, was_apilb = false, now_apilb;

            *o = (struct sharewatch_other){.o = s->found[j], .first_seen_ms = now};
            for (size_t k = 0; k < s->n_seen; k++) {
                if (s->seen[k].o.inode != o->o.inode)
                    continue;
                o->first_seen_ms = s->seen[k].first_seen_ms;
                known = true;
                was_apilb = s->seen[k].as_apilb;
            }
            now_apilb = is_apilb(w, o, now);
            o->as_apilb = now_apilb;
            if (now_apilb)
                apilb++;
            else
                foreign++;
            /* New, or no longer taken for an upgrade: say so. */
            if (!known || (was_apilb && !now_apilb))
                report(w, s, o, now_apilb);
        }
        memcpy(s->seen, next, sizeof(next[0]) * s->n_found);
        s->n_seen = s->n_found;
    }
    atomic_store(&w->sh->listener_foreign_sharers, foreign);
    atomic_store(&w->sh->listener_apilb_sharers, apilb);
}

static void scanned_cb(uv_work_t *req, int status)
{
    struct sharewatch *w = req->data;

    w->busy = false;
    if (status != 0 || uv_is_closing((uv_handle_t *)&w->timer))
        return; /* shutting down */
    apply(w, uv_now(w->timer.loop));
}

static void timer_cb(uv_timer_t *t)
{
    struct sharewatch *w = t->data;

    if (w->busy)
        return; /* a slow /proc: the next tick looks again */
    w->work.data = w;
    if (uv_queue_work(t->loop, &w->work, scan_cb, scanned_cb) == 0)
        w->busy = true;
}

/* Adds the address of fds[0] (every fd on it: fds[k * stride]) to w. */
static int add_addr(struct sharewatch *w, const int *fds, size_t n_fds, size_t stride)
{
    struct sharewatch_addr *s = &w->addrs[w->n];
    int rc;

    s->a.len = sizeof(s->a.ss);
    if (getsockname(fds[0], (struct sockaddr *)&s->a.ss, &s->a.len) == -1)
        return -errno;
    addr_format(&s->a, s->name, sizeof(s->name));
    for (size_t k = 0; k < n_fds; k++) {
        rc = listener_inode(fds[k * stride], &s->ours[s->n_ours]);
        if (rc < 0)
            return rc;
        s->n_ours++;
    }
    w->n++;
    return 0;
}

int sharewatch_init(struct sharewatch *w, uv_loop_t *loop, const int *fds, unsigned n_workers,
                    size_t n_listen, int admin_fd, unsigned interval_ms, unsigned upgrade_ms,
                    struct worker_shared *sh)
{
    int rc = 0;

    assert(n_workers <= SHAREWATCH_MAX_WORKERS && n_listen <= CONFIG_MAX_LISTEN);
    memset(w, 0, sizeof(*w));
    w->sh = sh;
    w->upgrade_ms = upgrade_ms;
    for (size_t i = 0; i < n_listen && rc == 0; i++)
        rc = add_addr(w, fds + i, n_workers, n_listen);
    if (rc == 0 && admin_fd >= 0)
        rc = add_addr(w, &admin_fd, 1, 1);
    if (rc < 0)
        return rc;
    rc = uv_timer_init(loop, &w->timer);
    if (rc < 0)
        return rc;
    w->timer.data = w;
    return interval_ms > 0 ? uv_timer_start(&w->timer, timer_cb, interval_ms, interval_ms) : 0;
}
