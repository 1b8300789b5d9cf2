/* SPDX-License-Identifier: Apache-2.0 */
/* A worker thread: accepts on its listeners and runs its sessions. */
#define LOG_MODULE "worker"
#include "worker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "loopclose.h"
#include "rand.h"
#include "session.h"
#include "sockopt.h"

/* Connections accepted per readiness callback before yielding. */
#define ACCEPT_BATCH 64
/* Pause after running out of descriptors, so the loop does not spin. */
#define ACCEPT_PAUSE_MS 100

static void timer_at(uv_timer_t *t, uv_timer_cb cb, uint64_t deadline_ms)
{
    uint64_t now = clock_now_ms();

    uv_timer_start(t, cb, deadline_ms > now ? deadline_ms - now : 0, 0);
}

static void listeners_poll(struct worker *w, bool on);

static void accept_resume_cb(uv_timer_t *t)
{
    struct worker *w = t->data;

    w->accept_paused = false;
    if (atomic_load(&w->sh->phase) == WORKER_RUNNING)
        listeners_poll(w, true);
}

/* Logs msg (rate-limited under key) with err, a negative errno, and stops
 * accepting for ACCEPT_PAUSE_MS; a pause already running is not extended. */
static void pause_accepts(struct worker *w, const char *key, const char *msg, int err)
{
    log_warn_limited(key, 1000, msg, "worker=%u err=\"%s\" pause_ms=%d", w->id, strerror(-err),
                     ACCEPT_PAUSE_MS);
    atomic_fetch_add_explicit(&w->sh->accept_errors, 1, memory_order_relaxed);
    if (w->accept_paused)
        return;
    w->accept_paused = true;
    listeners_poll(w, false);
    uv_timer_start(&w->accept_timer, accept_resume_cb, ACCEPT_PAUSE_MS, 0);
}

void worker_out_of_fds(struct worker *w, int err)
{
    pause_accepts(w, "dial-fd", "no descriptor for an upstream socket: pausing accepts", err);
}

/* Accepts up to budget connections from one listener. Returns false when
 * accepting must pause. */
static bool accept_some(struct worker *w, int lfd, unsigned budget)
{
    const struct config *cfg = w->sh->cfg;

    while (budget-- > 0) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            switch (errno) {
            case EAGAIN:
                return true;
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
                continue;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                pause_accepts(w, "accept-fd", "accept failed: pausing accepts", -errno);
                return false;
            default:
                atomic_fetch_add_explicit(&w->sh->accept_errors, 1, memory_order_relaxed);
                log_warn_limited("accept-error", 1000, "accept failed", "worker=%u err=\"%s\"",
                                 w->id, strerror(errno));
                return true;
            }
        }
        if (atomic_load_explicit(&w->sh->active, memory_order_relaxed) >= cfg->max_connections) {
            atomic_fetch_add_explicit(&w->sh->refused_limit, 1, memory_order_relaxed);
            log_warn_limited("max-connections", 1000,
                             "connection refused: --max-connections reached", "limit=%u",
                             cfg->max_connections);
            close(fd);
            continue;
        }
        atomic_fetch_add_explicit(&w->sh->accepted, 1, memory_order_relaxed);
        session_start(w, fd);
    }
    return true;
}

static void accept_cb(struct ev_io *io, unsigned events)
{
    struct worker_listener *l = (struct worker_listener *)io;

    (void)events;
    (void)accept_some(l->w, l->fd, ACCEPT_BATCH);
}

static void listeners_poll(struct worker *w, bool on)
{
    int rc;

    for (size_t i = 0; i < w->n_listeners; i++) {
        struct worker_listener *l = &w->listeners[i];

        if (l->fd < 0)
            continue;
        rc = evloop_set(&w->ev, &l->io, on ? EVLOOP_READ : 0);
        if (rc != 0)
            log_error("cannot poll a listening socket", "worker=%u err=\"%s\"", w->id,
                      strerror(-rc));
    }
}

/* Stops accepting: takes what already waits in the accept queue (those
 * clients completed their handshake and must not be reset), then closes. */
static void listeners_close(struct worker *w)
{
    for (size_t i = 0; i < w->n_listeners; i++) {
        struct worker_listener *l = &w->listeners[i];

        if (l->fd < 0)
            continue;
        if (!w->accept_paused)
            (void)accept_some(w, l->fd, 100000);
        evloop_forget(&w->ev, &l->io);
        close(l->fd);
        l->fd = -1;
    }
    uv_timer_stop(&w->accept_timer);
    w->listeners_closed = true;
}

static void sweep_cb(uv_timer_t *t);

static void sweep(struct worker *w)
{
    uint64_t next = session_sweep(w, clock_now_ms());

    /* Keeps what the sweep's own steps scheduled (worker_schedule_sweep: a
     * dial put off again, a probe's verdict), if it is sooner. */
    if (next != 0)
        worker_schedule_sweep(w, next);
}

static void sweep_cb(uv_timer_t *t)
{
    sweep(t->data);
}

/* Answers a pending question, under query_mu so that its asker, which may
 * give up, never leaves while it is being written. */
static void answer_query(struct worker *w)
{
    uv_mutex_lock(&w->query_mu);
    if (w->query != NULL) {
        struct worker_query *q = w->query;

        q->n = session_list(w, q->skip, q->out, q->max, &q->total);
        q->done = true;
        w->query = NULL;
        uv_cond_broadcast(&w->query_cv);
    }
    uv_mutex_unlock(&w->query_mu);
}

int worker_list_sessions(struct worker *w, size_t skip, struct session_info *out, size_t max,
                         size_t *n, size_t *total, unsigned timeout_ms)
{
    struct worker_query q = {.skip = skip, .max = max, .out = out};
    uint64_t deadline = clock_now_us() + (uint64_t)timeout_ms * 1000u, now;

    if (atomic_load(&w->finished))
        return -ETIMEDOUT;
    uv_mutex_lock(&w->query_mu);
    /* Another asker's question first. */
    while (w->query != NULL && (now = clock_now_us()) < deadline)
        (void)uv_cond_timedwait(&w->query_cv, &w->query_mu, (deadline - now) * 1000u);
    if (w->query == NULL) {
        w->query = &q;
        uv_async_send(&w->kick);
        while (!q.done && (now = clock_now_us()) < deadline)
            (void)uv_cond_timedwait(&w->query_cv, &w->query_mu, (deadline - now) * 1000u);
        if (!q.done)
            w->query = NULL; /* not taken: the loop will not see it */
    }
    uv_mutex_unlock(&w->query_mu);
    if (!q.done)
        return -ETIMEDOUT;
    *n = q.n;
    *total = q.total;
    return 0;
}

static void kick_cb(uv_async_t *a)
{
    struct worker *w = a->data;
    struct upstream_table *t = handoff_take(&w->mailbox);
    int phase = atomic_load(&w->sh->phase);

    answer_query(w);

    if (t != NULL) {
        uint64_t seen = atomic_load(&w->sh->table_generation);

        if (w->table != NULL)
            upstream_table_unref(w->table);
        w->table = t;
        while (seen < t->generation &&
               !atomic_compare_exchange_weak(&w->sh->table_generation, &seen, t->generation))
            ;
    }
    if (phase != WORKER_RUNNING)
        listeners_close(w);
    sweep(w);
    if (phase != WORKER_RUNNING && w->n_sessions == 0)
        evloop_stop(&w->ev);
}

static void keepalive_cb(uv_timer_t *t)
{
    struct worker *w = t->data;

    session_keepalive(w, clock_now_ms());
}

static void ack_cb(uv_timer_t *t)
{
    struct worker *w = t->data;

    session_check_acks(w, clock_now_ms());
}

static void connect_cb(uv_timer_t *t)
{
    struct worker *w = t->data;
    uint64_t next = session_expire_connects(w, clock_now_ms());

    if (next != 0)
        timer_at(&w->connect_timer, connect_cb, next);
}

void worker_sessions_ended(struct worker *w)
{
    if (w->listeners_closed)
        evloop_stop(&w->ev);
}

void worker_schedule_sweep(struct worker *w, uint64_t deadline_ms)
{
    uint64_t now = clock_now_ms();
    uint64_t in = deadline_ms > now ? deadline_ms - now : 0;

    if (!uv_is_active((uv_handle_t *)&w->sweep_timer) || uv_timer_get_due_in(&w->sweep_timer) > in)
        uv_timer_start(&w->sweep_timer, sweep_cb, in, 0);
}

void worker_schedule_connects(struct worker *w, uint64_t deadline_ms)
{
    if (!uv_is_active((uv_handle_t *)&w->connect_timer))
        timer_at(&w->connect_timer, connect_cb, deadline_ms);
}

static void worker_main(void *arg)
{
    struct worker *w = arg;

    listeners_poll(w, true);
    uv_timer_start(&w->keepalive_timer, keepalive_cb, SOCKOPT_KEEPALIVE_AFTER_S * 1000u,
                   SOCKOPT_KEEPALIVE_AFTER_S * 1000u);
    if (w->sh->cfg->upstream_ack_timeout_ms != 0) {
        /* A fifth of the timeout (100 ms..1 s): a dead connection is found
         * within the timeout and one period. */
        uint64_t every = w->sh->cfg->upstream_ack_timeout_ms / 5;

        every = every < 100 ? 100 : every > 1000 ? 1000 : every;
        uv_timer_start(&w->ack_timer, ack_cb, every, every);
    }
    evloop_run(&w->ev);
    atomic_store(&w->finished, true);
    uv_async_send(w->done);
}

int worker_start(struct worker *w, unsigned id, struct worker_shared *sh, const int *fds,
                 size_t n_fds, struct upstream_table *first, uv_async_t *done)
{
    int rc;

    memset(w, 0, sizeof(*w));
    w->id = id;
    w->sh = sh;
    w->done = done;
    w->table = first;
    upstream_picker_init(&w->picker, sh->cfg->balance,
                         rand_mix64(clock_now_us() ^ ((uint64_t)id << 32) ^ (uint64_t)getpid()));
    if (sh->cfg->prefer != TIER_MODE_NONE)
        upstream_picker_prefer(&w->picker, sh->cfg->prefer_spill_factor, sh->cfg->prefer_ramp_ms);
    w->picker.slow_start_ms = sh->cfg->slow_start_ms;
    lossprobe_init(&w->probe);
    pipepool_init(&w->pipes);
    bufpool_init(&w->bufs, WORKER_SCRATCH_BYTES);
    rc = uv_loop_init(&w->loop);
    if (rc != 0)
        return rc;
    rc = evloop_init(&w->ev, &w->loop, sh->cfg->io_uring);
    if (rc != 0) {
        (void)uv_loop_close(&w->loop);
        return rc;
    }
    w->ev.count_sends = &sh->sends_batched;
    w->ev.count_batches = &sh->send_batches;
    if (w->ev.sends.ring != NULL)
        atomic_fetch_add(&sh->send_batching, 1);
    uv_mutex_init(&w->query_mu);
    uv_cond_init(&w->query_cv);
    uv_async_init(&w->loop, &w->kick, kick_cb);
    w->kick.data = w;
    handoff_init(&w->mailbox, &w->kick);
    uv_timer_init(&w->loop, &w->connect_timer);
    uv_timer_init(&w->loop, &w->accept_timer);
    uv_timer_init(&w->loop, &w->sweep_timer);
    uv_timer_init(&w->loop, &w->keepalive_timer);
    w->keepalive_timer.data = w;
    uv_timer_init(&w->loop, &w->ack_timer);
    w->ack_timer.data = w;
    w->connect_timer.data = w;
    w->accept_timer.data = w;
    w->sweep_timer.data = w;
    for (size_t i = 0; i < n_fds; i++) {
        struct worker_listener *l = &w->listeners[i];

        l->fd = fds[i];
        l->w = w;
        l->io.fd = l->fd;
        l->io.cb = accept_cb;
        w->n_listeners++;
    }
    return uv_thread_create(&w->thread, worker_main, w);
}

void worker_publish(struct worker *w, struct upstream_table *t)
{
    handoff_publish(&w->mailbox, t);
}

void worker_kick(struct worker *w)
{
    uv_async_send(&w->kick);
}

void worker_join(struct worker *w)
{
    uv_thread_join(&w->thread);
    w->joining = true;
    /* The loop was stopped; close what is left on this thread. */
    session_close_all(w);
    session_probe_cancel(w);
    for (size_t i = 0; i < w->n_listeners; i++) {
        if (w->listeners[i].fd >= 0) {
            close(w->listeners[i].fd);
            w->listeners[i].fd = -1;
        }
    }
    loopclose_all(&w->loop);
    evloop_destroy(&w->ev);
    handoff_destroy(&w->mailbox);
    uv_cond_destroy(&w->query_cv);
    uv_mutex_destroy(&w->query_mu);
    if (w->table != NULL)
        upstream_table_unref(w->table);
    w->table = NULL;
    pipepool_destroy(&w->pipes);
    bufpool_destroy(&w->bufs);
}
