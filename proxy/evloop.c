/* SPDX-License-Identifier: Apache-2.0 */
/* A worker's event loop; see evloop.h. */
#define LOG_MODULE "evloop"
#include "evloop.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static void send_answered(struct sendq_op *op, void *arg)
{
    evloop_again(arg, op->data);
}

/* Each outcome is said once per process (the workers start alike, as a
 * rule: one line). */
static void sends_init(struct evloop *l, bool batch_sends)
{
    static atomic_bool said_yes, said_no;
    int rc;

    if (!batch_sends) {
        /* l->sends stays zeroed (evloop_init): no ring, nothing queued. */
        if (!atomic_exchange(&said_no, true))
            log_info("sends are made one by one", "reason=--io-uring=false");
        return;
    }
    rc = sendq_init(&l->sends, send_answered, l);
    if (rc == 0 && !atomic_exchange(&said_yes, true))
        log_info("sends of a batch of events are made together", "via=io_uring");
    if (rc != 0 && !atomic_exchange(&said_no, true))
        log_info("sends are made one by one: io_uring is not available", "err=\"%s\"",
                 strerror(-rc));
}

int evloop_init(struct evloop *l, uv_loop_t *uv, bool batch_sends)
{
    struct epoll_event e = {.events = EPOLLIN};

    memset(l, 0, sizeof(*l));
    l->uv = uv;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd == -1)
        return -errno;
    /* uv's own epoll set is readable when one of its handles has an event;
     * the loop itself marks that entry. */
    e.data.ptr = l;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, uv_backend_fd(uv), &e) == -1) {
        int err = -errno;

        close(l->epfd);
        l->epfd = -1;
        return err;
    }
    sends_init(l, batch_sends);
    return 0;
}

void evloop_destroy(struct evloop *l)
{
    evloop_flush(l);
    sendq_destroy(&l->sends);
    if (l->epfd >= 0)
        close(l->epfd);
    l->epfd = -1;
}

int evloop_set(struct evloop *l, struct ev_io *io, unsigned events)
{
    struct epoll_event e = {0};
    int op;

    if (io->events == events)
        return 0;
    if ((events & (EVLOOP_READ | EVLOOP_WRITE)) == 0)
        op = EPOLL_CTL_DEL; /* an error or hang-up would be reported even
                               with no events asked for, over and over */
    else
        op = io->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    e.events = ((events & EVLOOP_READ) ? EPOLLIN : 0) | ((events & EVLOOP_WRITE) ? EPOLLOUT : 0);
    if (events & EVLOOP_EDGE)
        e.events |= EPOLLET | EPOLLRDHUP;
    e.data.ptr = io;
    if (epoll_ctl(l->epfd, op, io->fd, &e) == -1)
        return -errno;
    io->events = events;
    return 0;
}

static void unlink_again(struct ev_io **head, struct ev_io *io)
{
    for (struct ev_io **p = head; *p != NULL; p = &(*p)->again_next) {
        if (*p == io) {
            *p = io->again_next;
            return;
        }
    }
}

void evloop_forget(struct evloop *l, struct ev_io *io)
{
    if (l->sends.n > 0 && sendq_holds(&l->sends, io->fd))
        evloop_flush(l);
    for (int i = l->i_batch; i < l->n_batch; i++) {
        if (l->batch[i].data.ptr == io)
            l->batch[i].data.ptr = NULL;
    }
    if (io->again) {
        unlink_again(&l->again, io);
        unlink_again(&l->again_run, io);
        io->again = false;
    }
    io->events = 0;
}

void evloop_again(struct evloop *l, struct ev_io *io)
{
    if (io->again)
        return;
    io->again = true;
    io->again_next = l->again;
    l->again = io;
}

/* Calls back what asked to be called again (and what those ask for again
 * waits for the next turn). */
static void run_again(struct evloop *l)
{
    struct ev_io *io;

    /* A callback may ask again (next turn) or forget others of this list. */
    l->again_run = l->again;
    l->again = NULL;
    l->queueing = l->sends.ring != NULL && l->again_run != NULL && l->again_run->again_next != NULL;
    while ((io = l->again_run) != NULL && !l->stopped) {
        l->again_run = io->again_next;
        io->again = false;
        io->cb(io, 0);
    }
    l->queueing = false;
    /* Stopped midway: what is left waits in the list of the next turn. */
    while ((io = l->again_run) != NULL) {
        l->again_run = io->again_next;
        io->again_next = l->again;
        l->again = io;
    }
}

static void deliver(struct ev_io *io, uint32_t got)
{
    unsigned events = 0;

    if (got & (EPOLLERR | EPOLLHUP))
        events = (io->events & (EVLOOP_READ | EVLOOP_WRITE)) | EVLOOP_ERROR; /* the next
                                                      read or write says what */
    if (got & EPOLLIN)
        events |= EVLOOP_READ;
    if (got & EPOLLOUT)
        events |= EVLOOP_WRITE;
    if (got & EPOLLRDHUP)
        events |= EVLOOP_RDHUP | EVLOOP_READ;
    if ((events & (EVLOOP_READ | EVLOOP_WRITE)) == 0)
        events |= EVLOOP_READ | EVLOOP_WRITE;
    io->cb(io, events);
}

void evloop_run(struct evloop *l)
{
    l->stopped = false;
    /* Handles started before now reach uv's epoll set in its next run. */
    uv_run(l->uv, UV_RUN_NOWAIT);
    while (!l->stopped) {
        bool uv_ready = false;
        int n;

        /* uv's time is current here: updated below or by uv_run. */
        n = epoll_wait(l->epfd, l->batch, EVLOOP_BATCH,
                       l->again != NULL ? 0 : uv_backend_timeout(l->uv));
        if (n == -1) {
            if (errno == EINTR)
                continue;
            log_error("epoll_wait failed: worker stops", "err=\"%s\"", strerror(errno));
            break;
        }
        /* Timers started by the callbacks count from now, not from
         * before the wait (libuv does the same after its own poll). */
        uv_update_time(l->uv);
        l->n_batch = n;
        l->i_batch = 0;
        /* uv first: a kick (a new upstream table, a phase change) sent
         * before a client connected is seen before that client's accept. */
        for (int i = 0; i < n; i++) {
            if (l->batch[i].data.ptr == l) {
                l->batch[i].data.ptr = NULL;
                uv_ready = true;
            }
        }
        if (uv_ready)
            uv_run(l->uv, UV_RUN_NOWAIT);
        l->queueing = l->sends.ring != NULL && n - uv_ready > 1;
        while (l->i_batch < n && !l->stopped) {
            struct epoll_event *e = &l->batch[l->i_batch++];

            if (e->data.ptr != NULL)
                deliver(e->data.ptr, e->events);
        }
        l->queueing = false;
        l->n_batch = 0;
        l->i_batch = 0;
        /* The sends of the batch, then the sessions they answer (again). */
        evloop_flush(l);
        run_again(l);
        evloop_flush(l);
        /* Timers due (or handles started above): run uv without waiting. */
        uv_update_time(l->uv);
        if (uv_backend_timeout(l->uv) == 0)
            uv_run(l->uv, UV_RUN_NOWAIT);
    }
}

bool evloop_send(struct evloop *l, struct sendq_op *op, struct ev_io *io, int fd, const void *buf,
                 uint32_t len, int flags)
{
    if (!l->queueing)
        return false;
    op->data = io;
    if (sendq_add(&l->sends, op, fd, buf, len, flags))
        return true;
    /* Full: this batch's sends so far go now, and the queue starts again. */
    evloop_flush(l);
    return sendq_add(&l->sends, op, fd, buf, len, flags);
}

void evloop_flush(struct evloop *l)
{
    if (l->sends.n == 0)
        return;
    if (l->count_sends != NULL) {
        atomic_fetch_add_explicit(l->count_sends, l->sends.n, memory_order_relaxed);
        atomic_fetch_add_explicit(l->count_batches, 1, memory_order_relaxed);
    }
    sendq_flush(&l->sends);
}

void evloop_stop(struct evloop *l)
{
    l->stopped = true;
}
