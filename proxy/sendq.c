/* SPDX-License-Identifier: Apache-2.0 */
#define LOG_MODULE "sendq"
#include "sendq.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

struct sendq_item {
    struct sendq_op *op;
    struct io_uring_sqe *sqe;
    const void *buf;
    uint32_t len;
    int fd;
    int flags;
    int32_t res;
    bool answered;
};

int sendq_init(struct sendq *q, sendq_answer_fn answer, void *arg)
{
    struct io_uring_params p;
    struct io_uring_probe *probe;
    struct io_uring *ring;
    int rc;

    memset(q, 0, sizeof(*q));
    q->answer = answer;
    q->arg = arg;
    ring = calloc(1, sizeof(*ring));
    q->items = calloc(SENDQ_MAX, sizeof(*q->items));
    if (ring == NULL || q->items == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    /* Flags of 5.19 and 5.18; an older kernel refuses what it does not
     * know (EINVAL): fewer. Without SUBMIT_ALL a send refused when queued
     * ends the submission early: sendq_flush() makes the rest itself. */
    static const unsigned flags[] = {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
                                     IORING_SETUP_SUBMIT_ALL, 0};
    rc = -EINVAL;
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]) && rc == -EINVAL; i++) {
        memset(&p, 0, sizeof(p));
        p.flags = flags[i];
        rc = io_uring_queue_init_params(SENDQ_MAX, ring, &p);
    }
    if (rc < 0)
        goto fail;
    /* IORING_OP_SEND came with 5.6, the probe too. */
    probe = io_uring_get_probe_ring(ring);
    if (probe == NULL || !io_uring_opcode_supported(probe, IORING_OP_SEND)) {
        if (probe != NULL)
            io_uring_free_probe(probe);
        io_uring_queue_exit(ring);
        rc = -EOPNOTSUPP;
        goto fail;
    }
    io_uring_free_probe(probe);
    q->ring = ring;
    return 0;
fail:
    free(ring);
    free(q->items);
    q->items = NULL;
    return rc;
}

void sendq_destroy(struct sendq *q)
{
    if (q->ring != NULL) {
        io_uring_queue_exit(q->ring);
        free(q->ring);
    }
    free(q->items);
    q->ring = NULL;
    q->items = NULL;
    q->n = 0;
}

bool sendq_add(struct sendq *q, struct sendq_op *op, int fd, const void *buf, uint32_t len,
               int flags)
{
    struct io_uring_sqe *sqe;
    struct sendq_item *it;

    if (q->ring == NULL || q->n == SENDQ_MAX)
        return false;
    sqe = io_uring_get_sqe(q->ring);
    if (sqe == NULL && q->n == 0) {
        /* Full of the no-ops of a short submission (send_rest): they go
         * now (their answers are skipped by the next flush). */
        (void)io_uring_submit(q->ring);
        sqe = io_uring_get_sqe(q->ring);
    }
    if (sqe == NULL)
        return false;
    flags |= MSG_DONTWAIT | MSG_NOSIGNAL;
    io_uring_prep_send(sqe, fd, buf, len, flags);
    /* The flush's number and the index from 1: 0 marks a no-op, and an
     * answer of an earlier flush is never taken for one of this. */
    io_uring_sqe_set_data64(sqe, (uint64_t)q->gen << 32 | (q->n + 1));
    it = &q->items[q->n++];
    it->op = op;
    it->sqe = sqe;
    it->buf = buf;
    it->len = len;
    it->fd = fd;
    it->flags = flags;
    it->answered = false;
    op->busy = true;
    return true;
}

bool sendq_holds(const struct sendq *q, int fd)
{
    for (unsigned i = 0; i < q->n; i++) {
        if (q->items[i].fd == fd)
            return true;
    }
    return false;
}

/* The kernel did not take the last `left` sends (no memory for the requests,
 * or, without SUBMIT_ALL, one refused before them): they become no-ops in
 * the ring and are made here, one by one. */
static void send_rest(struct sendq *q, unsigned left, int rc)
{
    log_warn_limited("sendq-submit", 1000,
                     "io_uring took only part of the sends: the rest made one by one",
                     "sends=%u taken=%u err=\"%s\"", q->n, q->n - left,
                     rc < 0 ? strerror(-rc) : "none");
    for (unsigned i = q->n - left; i < q->n; i++) {
        struct sendq_item *it = &q->items[i];
        ssize_t n;

        io_uring_prep_nop(it->sqe);
        io_uring_sqe_set_data64(it->sqe, 0);
        do
            n = send(it->fd, it->buf, it->len, it->flags);
        while (n == -1 && errno == EINTR);
        it->res = n >= 0 ? (int32_t)n : -errno;
        it->answered = true;
    }
}

void sendq_flush(struct sendq *q)
{
    struct io_uring *ring = q->ring;
    unsigned need, n = q->n;
    int rc;

    if (n == 0)
        return;
    do
        rc = io_uring_submit(ring);
    while (rc == -EINTR);
    need = n;
    if (rc < 0 || (unsigned)rc < n) {
        /* What the kernel did not take is still in the ring, last. */
        unsigned left = io_uring_sq_ready(ring);

        if (left > n)
            left = n;
        if (left > 0)
            send_rest(q, left, rc);
        need -= left;
    }
    /* MSG_DONTWAIT: each send was made during the submission, its answer is
     * in the completion queue already; the wait below returns at once. */
    while (need > 0) {
        struct io_uring_cqe *cqe;
        uint64_t ud;
        uint32_t idx;

        rc = io_uring_wait_cqe(ring, &cqe);
        if (rc == -EINTR || rc == -EAGAIN)
            continue;
        if (rc < 0) {
            /* Not expected from a ring we own; the sends left are told
             * they failed and their sessions end. */
            log_error("io_uring completion failed", "err=\"%s\"", strerror(-rc));
            for (unsigned i = 0; i < n; i++) {
                if (!q->items[i].answered) {
                    q->items[i].res = rc;
                    q->items[i].answered = true;
                }
            }
            break;
        }
        ud = io_uring_cqe_get_data64(cqe);
        idx = (uint32_t)ud;
        if (ud >> 32 == q->gen && idx >= 1 && idx <= n && !q->items[idx - 1].answered) {
            q->items[idx - 1].res = cqe->res;
            q->items[idx - 1].answered = true;
            need--;
        }
        io_uring_cqe_seen(ring, cqe);
    }
    q->n = 0;
    q->gen++;
    for (unsigned i = 0; i < n; i++) {
        struct sendq_op *op = q->items[i].op;

        op->res = q->items[i].res;
        op->busy = false;
        q->answer(op, q->arg);
    }
}
