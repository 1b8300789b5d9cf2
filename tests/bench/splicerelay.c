/* SPDX-License-Identifier: Apache-2.0 */
/* The benchmark's bulk floor: the cheapest zero-copy relay in user space, to
 * show what no proxy in user space can beat on this machine for one stream.
 *
 *   splicerelay LISTEN_ADDR LISTEN_PORT UPSTREAM_ADDR UPSTREAM_PORT
 *
 * Two threads per connection, one per direction, each blocking in splice(2):
 * socket -> pipe (512 KiB, like apilb's) -> socket, and nothing else: no
 * event loop, no readiness bookkeeping, no balancing, no limits. A thread per
 * direction is what makes it the floor for one stream and useless for
 * thousands, which is why apilb does not work this way. Not a proxy, a
 * measuring stick. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "benchnet.h"

#define PIPE_BYTES (512 * 1024)

struct conn {
    int fd[2];          /* client, upstream */
    atomic_int running; /* directions still moving bytes */
};

struct dir {
    struct conn *c;
    int from, to;
};

/* Moves from -> to until FIN or an error, passes the FIN on; the last
 * direction to end closes the connection. */
static void *pump(void *arg)
{
    struct dir *d = arg;
    struct conn *c = d->c;
    int p[2];

    if (pipe2(p, O_CLOEXEC) == 0) {
        (void)fcntl(p[1], F_SETPIPE_SZ, PIPE_BYTES); /* else the 64 KiB default */
        for (;;) {
            ssize_t n = splice(d->from, NULL, p[1], NULL, PIPE_BYTES, SPLICE_F_MOVE);

            if (n <= 0)
                break;
            while (n > 0) {
                ssize_t m = splice(p[0], NULL, d->to, NULL, (size_t)n, SPLICE_F_MOVE);

                if (m <= 0)
                    goto out;
                n -= m;
            }
        }
    out:
        close(p[0]);
        close(p[1]);
    }
    shutdown(d->to, SHUT_WR);
    free(d);
    if (atomic_fetch_sub(&c->running, 1) == 1) {
        close(c->fd[0]);
        close(c->fd[1]);
        free(c);
    }
    return NULL;
}

static void relay_start(int cfd, const struct sockaddr_in *up)
{
    int ufd = benchnet_dial(up);
    struct conn *c = calloc(1, sizeof(*c));
    pthread_t t;

    if (c == NULL || ufd < 0) {
        fprintf(stderr, "splicerelay: upstream: %s\n", strerror(errno));
        if (ufd >= 0)
            close(ufd);
        close(cfd);
        free(c);
        return;
    }
    benchnet_nodelay(cfd);
    benchnet_unpaced(cfd);
    benchnet_unpaced(ufd);
    c->fd[0] = cfd;
    c->fd[1] = ufd;
    atomic_init(&c->running, 2);
    for (int i = 0; i < 2; i++) {
        struct dir *d = malloc(sizeof(*d));

        if (d == NULL) {
            fprintf(stderr, "splicerelay: out of memory\n");
            exit(1);
        }
        *d = (struct dir){.c = c, .from = c->fd[i], .to = c->fd[1 - i]};
        if (pthread_create(&t, NULL, pump, d) != 0) {
            fprintf(stderr, "splicerelay: cannot start a thread\n");
            exit(1);
        }
        pthread_detach(t);
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in la, ua;
    int lfd;

    if (argc != 5 || benchnet_addr(argv[1], argv[2], &la) != 0 ||
        benchnet_addr(argv[3], argv[4], &ua) != 0) {
        fprintf(stderr, "usage: splicerelay LISTEN_ADDR PORT UPSTREAM_ADDR PORT (IPv4)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* splice(2) to a closed peer: EPIPE, not death */
    lfd = benchnet_listen(&la);
    if (lfd < 0)
        return perror("splicerelay: listen"), 1;
    for (;;) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

        if (cfd >= 0)
            relay_start(cfd, &ua);
        else if (errno != EINTR && errno != ECONNABORTED)
            return perror("splicerelay: accept"), 1;
    }
}
