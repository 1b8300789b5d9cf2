/* SPDX-License-Identifier: Apache-2.0 */
/* The benchmark's floor for latency and keep-alive requests: the cheapest
 * user-space TCP relay we could write, to show what no proxy in user space
 * can beat on this machine.
 *
 *   uringrelay LISTEN_ADDR LISTEN_PORT UPSTREAM_ADDR UPSTREAM_PORT
 *
 * One thread, one io_uring, one upstream, no balancing, no health, no
 * limits: not a proxy, a measuring stick. Each direction of a connection
 * keeps one recv posted; when it completes, a send of those bytes is
 * submitted linked to the next recv (the send's success posts nothing), so a
 * message costs the relay one system call per direction (io_uring_enter,
 * which both submits and sleeps) where an epoll relay makes three
 * (epoll_wait, recv, send). What is left is the two process switches per
 * round trip that any relay outside the kernel adds.
 *
 * A 16 KiB buffer per direction stays allocated for the connection's life,
 * which is why apilb does not work this way (see tests/bench/run.sh). */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "benchnet.h"

#define BUF_BYTES 16384
#define RING_ENTRIES 256
#define SEND_TAG 1ul /* low bit of user_data: a failed send */

struct dir {
    int from, to;
    struct dir *peer; /* the other direction of the connection */
    bool done;        /* from sent FIN or failed */
    char buf[BUF_BYTES];
};

static struct io_uring ring;

static void die(const char *what, int err)
{
    fprintf(stderr, "uringrelay: %s: %s\n", what, strerror(err));
    exit(1);
}

static struct io_uring_sqe *sqe(void)
{
    struct io_uring_sqe *s = io_uring_get_sqe(&ring);

    if (s == NULL) { /* full: hand what is queued to the kernel first */
        int rc = io_uring_submit(&ring);

        if (rc < 0)
            die("io_uring_submit", -rc);
        s = io_uring_get_sqe(&ring);
        if (s == NULL)
            die("io_uring_get_sqe", ENOSPC);
    }
    return s;
}

static void post_recv(struct dir *d)
{
    struct io_uring_sqe *s = sqe();

    io_uring_prep_recv(s, d->from, d->buf, sizeof(d->buf), 0);
    io_uring_sqe_set_data(s, d);
}

/* Sends n bytes of d->buf (MSG_WAITALL: the kernel finishes a short send
 * itself), then reads again; the recv starts only after the send. */
static void post_send(struct dir *d, int n)
{
    struct io_uring_sqe *s = sqe();

    io_uring_prep_send(s, d->to, d->buf, (size_t)n, MSG_WAITALL | MSG_NOSIGNAL);
    s->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(s, (unsigned long)d | SEND_TAG);
    post_recv(d);
}

static void post_accept(int lfd)
{
    struct io_uring_sqe *s = sqe();

    io_uring_prep_accept(s, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, 0);
}

static void dir_end(struct dir *d)
{
    d->done = true;
    shutdown(d->to, SHUT_WR);
    if (d->peer->done) { /* both ways ended */
        close(d->from);
        close(d->to);
        free(d->peer);
        free(d);
    }
}

static void relay_start(int cfd, const struct sockaddr_in *up)
{
    int ufd = benchnet_dial(up);
    struct dir *c2u, *u2c;

    if (ufd < 0) {
        fprintf(stderr, "uringrelay: upstream: %s\n", strerror(errno));
        if (ufd >= 0)
            close(ufd);
        close(cfd);
        return;
    }
    benchnet_nodelay(cfd);
    benchnet_unpaced(cfd);
    benchnet_unpaced(ufd);
    c2u = calloc(1, sizeof(*c2u));
    u2c = calloc(1, sizeof(*u2c));
    if (c2u == NULL || u2c == NULL)
        die("calloc", ENOMEM);
    *c2u = (struct dir){.from = cfd, .to = ufd, .peer = u2c};
    *u2c = (struct dir){.from = ufd, .to = cfd, .peer = c2u};
    post_recv(c2u);
    post_recv(u2c);
}

int main(int argc, char **argv)
{
    struct sockaddr_in la, ua;
    int lfd, rc;

    if (argc != 5 || benchnet_addr(argv[1], argv[2], &la) != 0 ||
        benchnet_addr(argv[3], argv[4], &ua) != 0) {
        fprintf(stderr, "usage: uringrelay LISTEN_ADDR PORT UPSTREAM_ADDR PORT (IPv4)\n");
        return 2;
    }
    lfd = benchnet_listen(&la);
    if (lfd < 0)
        die("listen", errno);
    rc = io_uring_queue_init(RING_ENTRIES, &ring, 0);
    if (rc < 0)
        die("io_uring_queue_init", -rc);
    post_accept(lfd);
    for (;;) {
        struct io_uring_cqe *c;
        unsigned head, seen = 0;

        rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -EINTR)
            die("io_uring_submit_and_wait", -rc);
        io_uring_for_each_cqe(&ring, head, c)
        {
            unsigned long tag = (unsigned long)io_uring_cqe_get_data64(c);
            struct dir *d = (struct dir *)(tag & ~SEND_TAG);

            seen++;
            if (d == NULL) { /* the accept */
                if (c->res >= 0)
                    relay_start(c->res, &ua);
                post_accept(lfd);
            } else if (tag & SEND_TAG) {
                continue; /* a failed send: its linked recv ends the direction */
            } else if (c->res > 0) {
                post_send(d, c->res);
            } else {
                dir_end(d); /* FIN, error, or -ECANCELED after a failed send */
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
}
