/* SPDX-License-Identifier: Apache-2.0 */
/* Load generator and backend for tests/bench/run.sh. One program, modes:
 *
 *   benchtool server ADDR PORT         backend: first byte picks the mode of a
 *                                      connection: 'S' source (send forever),
 *                                      'E' echo, 'C' 100-byte reply then close
 *                                      (server closes first), 'H' hold (never reads
 *                                      again: a stalled upstream), 'G' HTTP keep-alive
 *   benchtool bulk ADDR PORT SECONDS   one stream from a source: prints Gbit/s
 *   benchtool pingpong ADDR PORT N     N 64-byte round trips on one connection:
 *                                      prints p50 and p99 in microseconds
 *   benchtool connrate ADDR PORT SECONDS THREADS
 *                                      connect, 100 bytes each way, server closes:
 *                                      prints connections per second
 *   benchtool idle ADDR PORT N         opens N echo connections (one round trip
 *                                      each, so they are proxied), prints "ready",
 *                                      holds them until stdin closes
 *   benchtool stall ADDR PORT MIB      sends to a holding backend until the relay
 *                                      stops taking bytes for a second (or MIB
 *                                      MiB went): prints how many it took, what a
 *                                      stalled upstream can pin in the relay
 *   benchtool floor N                  what the CPU it runs on charges for a bare
 *                                      system call, and for a round trip between
 *                                      two processes over pipes (two process
 *                                      switches and four system calls): the floor
 *                                      under any user-space relay on one CPU
 *
 * Results are printed as "key=value" lines for run.sh. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchnet.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "benchtool: %s: %s\n", what, strerror(errno));
    exit(1);
}

static struct sockaddr_in target(const char *ip, const char *port)
{
    struct sockaddr_in sa;

    if (benchnet_addr(ip, port, &sa) != 0) {
        fprintf(stderr, "benchtool: %s: not an IPv4 address\n", ip);
        exit(2);
    }
    return sa;
}

static int read_full(int fd, char *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);

        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* --- the backend ---------------------------------------------------------- */

enum cmode { M_NEW = 0, M_SOURCE, M_ECHO, M_CLOSE, M_HOLD, M_HTTP };

struct conn {
    int fd;
    enum cmode mode;
    size_t got; /* close mode: bytes read so far */
};

static char junk[1 << 16];
static const char http_reply[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";

static void conn_close(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Serves one ready connection; returns false when it was closed. */
static void serve(int ep, struct conn *c, uint32_t ev)
{
    char buf[1 << 16];
    ssize_t n;

    if (c->mode == M_HOLD) { /* woken only by the peer's FIN or an error */
        conn_close(ep, c);
        return;
    }
    if (c->mode == M_SOURCE) {
        if (ev & (EPOLLERR | EPOLLHUP)) {
            conn_close(ep, c);
            return;
        }
        while ((n = send(c->fd, junk, sizeof(junk), MSG_DONTWAIT | MSG_NOSIGNAL)) > 0)
            ;
        if (n < 0 && errno != EAGAIN)
            conn_close(ep, c);
        return;
    }
    n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
        conn_close(ep, c);
        return;
    }
    if (n < 0)
        return;
    if (c->mode == M_NEW) {
        switch (buf[0]) {
        case 'S': {
            struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};

            c->mode = M_SOURCE;
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
            return;
        }
        case 'E':
            c->mode = M_ECHO;
            break;
        case 'C':
            c->mode = M_CLOSE;
            break;
        case 'H': {
            /* Edge-triggered FIN only: arriving bytes wake nobody. */
            struct epoll_event e = {.events = EPOLLRDHUP | EPOLLET, .data.ptr = c};

            c->mode = M_HOLD;
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
            return;
        }
        default:
            c->mode = M_HTTP;
            break;
        }
    }
    switch (c->mode) {
    case M_ECHO:
        (void)!send(c->fd, buf, (size_t)n, MSG_NOSIGNAL);
        break;
    case M_CLOSE:
        c->got += (size_t)n;
        if (c->got >= 100) {
            (void)!send(c->fd, junk, 100, MSG_NOSIGNAL);
            conn_close(ep, c); /* the server closes first */
        }
        break;
    case M_HTTP:
        /* One response per request (requests end with an empty line). */
        for (ssize_t i = 3; i < n; i++)
            if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n')
                (void)!send(c->fd, http_reply, sizeof(http_reply) - 1, MSG_NOSIGNAL);
        break;
    default:
        break;
    }
}

static void *server_loop(void *arg)
{
    int lfd = *(int *)arg, ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL}, evs[256];

    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);

        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                int fd;

                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    struct conn *c = calloc(1, sizeof(*c));
                    struct epoll_event ce = {.events = EPOLLIN, .data.ptr = c};

                    benchnet_nodelay(fd);
                    c->fd = fd;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
                }
                continue;
            }
            serve(ep, evs[i].data.ptr, evs[i].events);
        }
    }
    return NULL;
}

static int cmd_server(char **argv)
{
    struct sockaddr_in sa = target(argv[0], argv[1]);
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    pthread_t t[2];

    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4096) != 0)
        die("bind");
    printf("listening\n");
    fflush(stdout);
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, server_loop, &lfd);
    pthread_join(t[0], NULL);
    return 0;
}

/* --- clients --------------------------------------------------------------- */

static int cmd_bulk(char **argv)
{
    struct sockaddr_in sa = target(argv[0], argv[1]);
    double secs = atof(argv[2]), t0, t;
    char buf[1 << 17];
    unsigned long long total = 0;
    int fd = benchnet_dial(&sa);

    if (fd < 0 || write(fd, "S", 1) != 1)
        die("connect");
    t0 = now_s();
    do {
        ssize_t n = read(fd, buf, sizeof(buf));

        if (n <= 0)
            die("read");
        total += (unsigned long long)n;
        t = now_s();
    } while (t - t0 < secs);
    close(fd);
    printf("bytes=%llu\ngbps=%.3f\n", total, (double)total * 8 / (t - t0) / 1e9);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static int cmd_pingpong(char **argv)
{
    struct sockaddr_in sa = target(argv[0], argv[1]);
    int n = atoi(argv[2]), fd = benchnet_dial(&sa);
    double *lat = calloc((size_t)n, sizeof(double));
    char msg[64], back[64];

    if (fd < 0 || lat == NULL || write(fd, "E", 1) != 1)
        die("connect");
    memset(msg, 'p', sizeof(msg));
    /* The 'E' byte comes back first. */
    if (read_full(fd, back, 1) != 0)
        die("read");
    for (int i = -100; i < n; i++) { /* 100 rounds of warm-up */
        double t0 = now_s();

        if (write(fd, msg, sizeof(msg)) != (ssize_t)sizeof(msg) ||
            read_full(fd, back, sizeof(back)) != 0)
            die("round trip");
        if (i >= 0)
            lat[i] = (now_s() - t0) * 1e6;
    }
    qsort(lat, (size_t)n, sizeof(double), cmp_double);
    printf("p50_us=%.2f\np99_us=%.2f\n", lat[n / 2], lat[n * 99 / 100]);
    return 0;
}

struct rate_arg {
    struct sockaddr_in sa;
    double until;
    _Atomic unsigned long done, failed;
};

static void *rate_thread(void *arg)
{
    struct rate_arg *r = arg;
    char req[100], back[100];

    memset(req, 'C', sizeof(req));
    while (now_s() < r->until) {
        int fd = benchnet_dial(&r->sa);

        if (fd < 0 || write(fd, req, sizeof(req)) != (ssize_t)sizeof(req) ||
            read_full(fd, back, sizeof(back)) != 0) {
            atomic_fetch_add(&r->failed, 1);
            if (fd >= 0)
                close(fd);
            continue;
        }
        /* Wait for the server's FIN so the server side closed first. */
        (void)!read(fd, back, 1);
        close(fd);
        atomic_fetch_add(&r->done, 1);
    }
    return NULL;
}

static int cmd_connrate(char **argv)
{
    struct rate_arg r;
    double secs = atof(argv[2]), t0;
    int threads = atoi(argv[3]);
    pthread_t t[256];

    memset(&r, 0, sizeof(r));
    r.sa = target(argv[0], argv[1]);
    if (threads < 1 || threads > 256)
        threads = 8;
    t0 = now_s();
    r.until = t0 + secs;
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, rate_thread, &r);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("conns=%lu\nfailed=%lu\nconns_per_s=%.0f\n", r.done, r.failed,
           (double)r.done / (now_s() - t0));
    return 0;
}

static int cmd_idle(char **argv)
{
    struct sockaddr_in sa = target(argv[0], argv[1]);
    int n = atoi(argv[2]), *fds = calloc((size_t)n, sizeof(int));
    char b[2];

    for (int i = 0; i < n; i++) {
        fds[i] = benchnet_dial(&sa);
        if (fds[i] < 0 || write(fds[i], "Ex", 2) != 2 || read_full(fds[i], b, 2) != 0)
            die("idle connection");
    }
    printf("ready\n");
    fflush(stdout);
    while (read(0, b, 1) > 0)
        ;
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}

static int cmd_stall(char **argv)
{
    struct sockaddr_in sa = target(argv[0], argv[1]);
    unsigned long long cap = strtoull(argv[2], NULL, 10) << 20, sent = 0;
    struct timeval tv = {.tv_sec = 1};
    static char chunk[1 << 16];
    int fd = benchnet_dial(&sa);

    if (fd < 0 || write(fd, "H", 1) != 1)
        die("connect");
    /* A send that waits a second for room ends it. */
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    while (sent < cap) {
        ssize_t n = send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL);

        if (n <= 0)
            break;
        sent += (unsigned long long)n;
    }
    /* Reset, not FIN: a FIN would wait behind the bytes nobody reads and keep
     * the relay's session (and a draining apilb) alive. */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &(struct linger){.l_onoff = 1, .l_linger = 0},
               sizeof(struct linger));
    close(fd);
    printf("mib=%.1f\ncapped=%d\n", (double)sent / (1 << 20), sent >= cap);
    return 0;
}

static int cmd_floor(char **argv)
{
    int n = atoi(argv[0]), up[2], down[2];
    double t0, sys_us, rt_us;
    char c = 0;
    pid_t child;

    t0 = now_s();
    for (int i = 0; i < n; i++)
        (void)getppid();
    sys_us = (now_s() - t0) / n * 1e6;
    if (pipe(up) != 0 || pipe(down) != 0)
        die("pipe");
    child = fork();
    if (child == 0) {
        for (int i = 0; i < n; i++)
            if (read(up[0], &c, 1) != 1 || write(down[1], &c, 1) != 1)
                _exit(1);
        _exit(0);
    }
    t0 = now_s();
    for (int i = 0; i < n; i++)
        if (write(up[1], &c, 1) != 1 || read(down[0], &c, 1) != 1)
            die("pipe round trip");
    rt_us = (now_s() - t0) / n * 1e6;
    waitpid(child, NULL, 0);
    printf("syscall_us=%.2f\nprocess_round_trip_us=%.2f\n", sys_us, rt_us);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "server") == 0)
        return cmd_server(argv + 2);
    if (argc >= 5 && strcmp(argv[1], "bulk") == 0)
        return cmd_bulk(argv + 2);
    if (argc >= 5 && strcmp(argv[1], "pingpong") == 0)
        return cmd_pingpong(argv + 2);
    if (argc >= 6 && strcmp(argv[1], "connrate") == 0)
        return cmd_connrate(argv + 2);
    if (argc >= 5 && strcmp(argv[1], "idle") == 0)
        return cmd_idle(argv + 2);
    if (argc >= 5 && strcmp(argv[1], "stall") == 0)
        return cmd_stall(argv + 2);
    if (argc >= 3 && strcmp(argv[1], "floor") == 0)
        return cmd_floor(argv + 2);
    fprintf(
        stderr,
        "usage: benchtool server|bulk|pingpong|connrate|idle|stall|floor ... (see the source)\n");
    return 2;
}
