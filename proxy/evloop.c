/* SPDX-License-Identifier: Apache-2.0 */
/* A worker's event loop; see evloop.h. */
#define LOG_MODULE "evloop"
#include "evloop.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

int evloop_init(struct evloop *l, uv_loop_t *uv)
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
    return 0;
}

void evloop_destroy(struct evloop *l)
{
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
    while ((io = l->again_run) != NULL && !l->stopped) {
        l->again_run = io->again_next;
        io->again = false;
        io->cb(io, 0);
    }
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
        while (l->i_batch < n && !l->stopped) {
            struct epoll_event *e = &l->batch[l->i_batch++];

            if (e->data.ptr != NULL)
                deliver(e->data.ptr, e->events);
        }
        l->n_batch = 0;
        l->i_batch = 0;
        run_again(l);
        /* Timers due (or handles started above): run uv without waiting. */
        uv_update_time(l->uv);
        if (uv_backend_timeout(l->uv) == 0)
            uv_run(l->uv, UV_RUN_NOWAIT);
    }
}

void evloop_stop(struct evloop *l)
{
    l->stopped = true;
}
