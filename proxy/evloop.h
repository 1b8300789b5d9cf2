/* SPDX-License-Identifier: Apache-2.0 */
/* A worker's event loop: its sockets (listeners, clients, upstreams) sit in
 * one epoll set polled directly, and the worker's libuv loop (timers, the
 * cross-thread kick) is embedded as one more entry of that set, run only when
 * it has something to do.
 *
 * Why not uv_poll for the sockets: its setup and teardown add system calls
 * per socket that a proxy pays twice per connection; here a socket costs one
 * epoll_ctl to add and none to remove (close(2) drops it), so a session's
 * two edge-triggered sockets cost two (docs/performance.md#event-loop).
 *
 * Invariant: a descriptor in the set is never duplicated (no dup(2), no
 * fork(2)), so closing it removes it from the set. Call evloop_forget()
 * before closing, so events already fetched for it are not delivered.
 *
 * Level-triggered, or edge-triggered on request. One thread: the worker's. */
#ifndef PROXY_EVLOOP_H
#define PROXY_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <uv.h>

#include "sendq.h"

#define EVLOOP_READ 1u
#define EVLOOP_WRITE 2u
#define EVLOOP_ERROR 4u /* delivered only, with the events asked for */
#define EVLOOP_RDHUP 8u /* delivered only, with READ: the peer sent its FIN */
/* Asked with READ and/or WRITE: edge-triggered, each event reported once
 * when it happens (the callback keeps what is ready until a call says
 * EAGAIN); the peer's FIN is reported as RDHUP. Without it, level-triggered. */
#define EVLOOP_EDGE 16u
/* Events fetched per epoll_wait. */
#define EVLOOP_BATCH 128

struct ev_io;

/* Called with EVLOOP_READ and/or EVLOOP_WRITE. An error or hang-up on the
 * socket is reported as EVLOOP_ERROR with the events asked for: the next
 * read or write then fails and says why. */
typedef void (*ev_io_fn)(struct ev_io *io, unsigned events);

/* One socket. The caller embeds it and fills fd and cb; events starts 0. */
struct ev_io {
    int fd;
    unsigned events; /* what the set holds for fd; 0 = not in the set */
    ev_io_fn cb;
    struct ev_io *again_next; /* evloop_again() list */
    bool again;
};

struct evloop {
    int epfd;
    uv_loop_t *uv;
    struct epoll_event batch[EVLOOP_BATCH];
    int n_batch;                     /* events fetched by the last epoll_wait */
    int i_batch;                     /* the next to deliver */
    struct ev_io *again;             /* to call again before the next wait */
    struct ev_io *again_run;         /* being called again now */
    struct sendq sends;              /* sends made together at the end of a batch */
    bool queueing;                   /* a batch of more than one is being handled */
    _Atomic uint64_t *count_sends;   /* optional: sends made together, */
    _Atomic uint64_t *count_batches; /* and the flushes that made them */
    bool stopped;
};

/* Creates the epoll set and adds uv's backend to it, and with batch_sends
 * the send queue (without it, or when io_uring is not available, sends are
 * not queued: logged once per process). uv is borrowed and must outlive l.
 * Returns 0 or a negative errno. */
int evloop_init(struct evloop *l, uv_loop_t *uv, bool batch_sends)
    __attribute__((warn_unused_result));

/* Closes the epoll set (not the sockets, not uv). */
void evloop_destroy(struct evloop *l);

/* Makes the set wait for events (EVLOOP_READ | EVLOOP_WRITE) on io->fd; 0
 * takes it out. No system call when nothing changes. Returns 0 or a negative
 * errno (-ENOMEM, -ENOSPC: the user's epoll watch limit). */
int evloop_set(struct evloop *l, struct ev_io *io, unsigned events)
    __attribute__((warn_unused_result));

/* io->fd is about to be closed (or io freed): drops the events fetched for it
 * and not yet delivered, and makes a send queued on it. Does not touch the
 * set: close(2) does. */
void evloop_forget(struct evloop *l, struct ev_io *io);

/* Calls io->cb(io, 0) once more before the loop waits again: for a callback
 * that stopped with work left (edge-triggered sockets say nothing more). */
void evloop_again(struct evloop *l, struct ev_io *io);

/* True when a send asked for now would be queued (evloop_send): the loop
 * is handling more than one socket's events (or calling more than one
 * again), and io_uring is available. A lone event is answered at once, so a
 * single request/response is not delayed by the queue. */
static inline bool evloop_queueing(const struct evloop *l)
{
    return l->queueing;
}

/* Queues send(fd, buf, len, flags) to be made with the others of this batch
 * when the loop has delivered it (see sendq.h): op->busy until then; once
 * answered (op->res) io->cb(io, 0) is called again. Returns false when not
 * queued (not queueing now, or the queue is full): send directly. buf must
 * stay put until the answer; closing fd first is safe (evloop_forget makes
 * the queued sends). */
bool evloop_send(struct evloop *l, struct sendq_op *op, struct ev_io *io, int fd, const void *buf,
                 uint32_t len, int flags);

/* Makes the queued sends now (answers them). For closing a socket one may
 * be queued for, or dropping the bytes of one. */
void evloop_flush(struct evloop *l);

/* Delivers socket events and runs uv's due timers and wakeups until
 * evloop_stop(). */
void evloop_run(struct evloop *l);

/* Makes evloop_run() return after the current event. */
void evloop_stop(struct evloop *l);

#endif
