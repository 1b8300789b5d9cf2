/* SPDX-License-Identifier: Apache-2.0 */
/* Sends made together: the sends a worker queues while it handles one batch
 * of events go to the kernel in one system call (io_uring).
 *
 * Why: each send(2) wakes the peer reading the other connection, and on a
 * busy CPU the woken task runs at once, so the relay would be switched out
 * after nearly every send; made together, the switch comes once, after the
 * last send of the batch (docs/performance.md#send-batching).
 *
 * Each queued send is made before sendq_flush() returns and gives the result
 * send(2) would have (bytes sent, or a negative errno): the flags ask for
 * MSG_DONTWAIT, so no send waits for room and none is left behind in the
 * kernel. The caller keeps the bytes, and the descriptor open, until the
 * answer.
 *
 * Where io_uring cannot be had (a kernel before 5.6, a seccomp profile that
 * denies it, as the container runtimes' defaults do, or the
 * kernel.io_uring_disabled sysctl) sendq_init() fails and the caller sends
 * with send(2) as before. One thread: the worker's. */
#ifndef PROXY_SENDQ_H
#define PROXY_SENDQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sends one flush makes at most: sendq_add() refuses more. */
#define SENDQ_MAX 128u

/* One queued send, embedded by its owner, which must not move or free it
 * while busy. */
struct sendq_op {
    void *data;  /* the owner's, untouched */
    int32_t res; /* once answered: bytes sent, or a negative errno */
    bool busy;   /* queued, not answered yet */
};

/* Called for each answered op, in the order queued, from sendq_flush(). It
 * must not queue sends. */
typedef void (*sendq_answer_fn)(struct sendq_op *op, void *arg);

struct sendq_item;

struct sendq {
    void *ring;               /* struct io_uring, NULL when not available */
    struct sendq_item *items; /* [SENDQ_MAX] */
    unsigned n;               /* queued */
    uint32_t gen;             /* flushes so far: tags the answers of each */
    sendq_answer_fn answer;
    void *arg;
};

/* Sets up the ring. answer (with arg) is told of each answered op. Returns 0,
 * or a negative errno when io_uring cannot be used here (then q sends
 * nothing: sendq_add() always refuses, sendq_destroy() is still safe). */
int sendq_init(struct sendq *q, sendq_answer_fn answer, void *arg)
    __attribute__((warn_unused_result));

/* Closes the ring. Nothing may be queued (flush first). */
void sendq_destroy(struct sendq *q);

/* Queues send(fd, buf, len, flags | MSG_DONTWAIT | MSG_NOSIGNAL) for the next
 * flush and marks op busy. Returns true when queued; false when q is not
 * available or full (flush, or send directly). buf and fd stay valid until
 * op is answered. */
bool sendq_add(struct sendq *q, struct sendq_op *op, int fd, const void *buf, uint32_t len,
               int flags);

/* Makes every queued send, in the order queued, and answers each op (busy
 * cleared, res set, then the answer callback). Never blocks on a peer. */
void sendq_flush(struct sendq *q);

/* True when a send on fd is queued. */
bool sendq_holds(const struct sendq *q, int fd);

#endif
