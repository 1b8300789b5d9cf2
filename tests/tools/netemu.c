/* SPDX-License-Identifier: Apache-2.0 */
/* netemu: a stand-in for tc netem on kernels without sch_netem. It creates
 * two TUN devices, A and B, each in a network namespace given by path
 * (/proc/PID/ns/net; default: its own), and forwards every IP packet read
 * from one to the other after holding it for a configured delay, plus an
 * optional uniform jitter, or drops it with a configured probability; each
 * direction (ab: A to B, ba: B to A) has its own settings. The caller gives
 * the devices their point-to-point addresses and brings them up.
 *
 * Held packets wait in one min-heap ordered by release time; a timerfd armed
 * at the earliest release (absolute CLOCK_MONOTONIC, timer slack 1 ns) lets
 * them go within tens of microseconds of their time (SCHED_FIFO where
 * permitted, so that busy processes do not delay them). The heap is bounded
 * (--limit packets, as netem's limit): a packet beyond it is dropped.
 *
 * Settings change at run time through lines on stdin:
 *   set ab|ba|both [delay=DUR] [jitter=DUR] [drop=P]
 *   stats
 * each answered by one line on stdout ("ok", "stats ...", "error: ...").
 * "ready A B" is printed once both devices exist. Single-threaded. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define PKT_MAX 65535

enum dir { DIR_AB = 0, DIR_BA, DIR_COUNT };

struct shape {
    uint64_t delay_ns;
    uint64_t jitter_ns;
    double drop; /* 0..1 */
};

struct pkt {
    uint64_t release_ns;
    uint64_t seq; /* FIFO among equal release times */
    enum dir dir;
    size_t len;
    unsigned char *data;
};

struct heap {
    struct pkt *p;
    size_t n, cap;
};

struct counters {
    uint64_t passed, dropped, overflow;
};

static struct shape shape[DIR_COUNT];
static struct counters count[DIR_COUNT];
static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t rand_next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double rand_unit(void)
{
    return (double)(rand_next() >> 11) / (double)(1ull << 53);
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* "200us", "2ms", "0.15ms", "1s", "500ns" -> *out ns; 0 or -EINVAL. */
static int parse_dur(const char *s, uint64_t *out)
{
    char *end = NULL;
    double v, mul;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || !(v >= 0))
        return -EINVAL;
    if (strcmp(end, "ns") == 0)
        mul = 1;
    else if (strcmp(end, "us") == 0)
        mul = 1e3;
    else if (strcmp(end, "ms") == 0)
        mul = 1e6;
    else if (strcmp(end, "s") == 0)
        mul = 1e9;
    else
        return -EINVAL;
    if (v * mul > 60e9)
        return -EINVAL;
    *out = (uint64_t)(v * mul + 0.5);
    return 0;
}

/* "0.25" or "25%" -> *out in 0..1; 0 or -EINVAL. */
static int parse_prob(const char *s, double *out)
{
    char *end = NULL;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s)
        return -EINVAL;
    if (strcmp(end, "%") == 0)
        v /= 100;
    else if (*end != '\0')
        return -EINVAL;
    if (!(v >= 0 && v <= 1))
        return -EINVAL;
    *out = v;
    return 0;
}

static bool heap_less(const struct pkt *a, const struct pkt *b)
{
    return a->release_ns < b->release_ns || (a->release_ns == b->release_ns && a->seq < b->seq);
}

static void heap_push(struct heap *h, struct pkt p)
{
    size_t i = h->n++;

    h->p[i] = p;
    while (i > 0 && heap_less(&h->p[i], &h->p[(i - 1) / 2])) {
        struct pkt t = h->p[i];

        h->p[i] = h->p[(i - 1) / 2];
        h->p[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static struct pkt heap_pop(struct heap *h)
{
    struct pkt top = h->p[0];
    size_t i = 0;

    h->p[0] = h->p[--h->n];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;

        if (l < h->n && heap_less(&h->p[l], &h->p[m]))
            m = l;
        if (r < h->n && heap_less(&h->p[r], &h->p[m]))
            m = r;
        if (m == i)
            break;
        struct pkt t = h->p[i];
        h->p[i] = h->p[m];
        h->p[m] = t;
        i = m;
    }
    return top;
}

/* Opens a TUN device named name (IFF_NO_PI) in the network namespace at
 * ns_path (NULL: this one), then returns to home. The device belongs to the
 * namespace of the process that opened /dev/net/tun. Returns the fd or
 * -errno, with what failed in *what. */
static int tun_open(const char *ns_path, int home, const char *name, const char **what)
{
    struct ifreq ifr;
    int fd = -1, ns = -1, rc;

    if (ns_path != NULL) {
        ns = open(ns_path, O_RDONLY | O_CLOEXEC);
        if (ns == -1) {
            *what = "open the namespace";
            return -errno;
        }
        if (setns(ns, CLONE_NEWNET) == -1) {
            rc = -errno;
            *what = "enter the namespace";
            close(ns);
            return rc;
        }
        close(ns);
    }
    fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    rc = fd == -1 ? -errno : 0;
    if (fd != -1) {
        memset(&ifr, 0, sizeof(ifr));
        ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (ioctl(fd, TUNSETIFF, &ifr) == -1) {
            rc = -errno;
            *what = "create the device (TUNSETIFF)";
            close(fd);
            fd = -1;
        }
    } else {
        *what = "open /dev/net/tun";
    }
    if (ns_path != NULL && setns(home, CLONE_NEWNET) == -1) {
        *what = "return to the home namespace";
        rc = -errno;
    }
    return rc < 0 ? rc : fd;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: netemu --tun-a NAME --tun-b NAME [--netns-a PATH] [--netns-b PATH]\n"
               "              [--delay DUR] [--delay-ab DUR] [--delay-ba DUR]\n"
               "              [--jitter DUR] [--jitter-ab DUR] [--jitter-ba DUR]\n"
               "              [--drop P] [--drop-ab P] [--drop-ba P] [--limit N] [--seed N]\n"
               "DUR: 150us, 0.2ms, 2ms, 1s (at most 60s); P: 0..1 or 0%%..100%%.\n"
               "--delay and --jitter are one way, per direction (a round trip pays both).\n"
               "stdin: 'set ab|ba|both [delay=DUR] [jitter=DUR] [drop=P]', 'stats'.\n");
}

static int bad(const char *opt, const char *val, const char *rule)
{
    fprintf(stderr, "netemu: %s=%s: %s\n", opt, val, rule);
    return 2;
}

/* Applies key=value to the shape of d; NULL or the rule broken. */
static const char *apply_kv(enum dir d, const char *key, const char *val)
{
    if (strcmp(key, "delay") == 0)
        return parse_dur(val, &shape[d].delay_ns) == 0 ? NULL
                                                       : "not a duration (150us, 2ms, <= 60s)";
    if (strcmp(key, "jitter") == 0)
        return parse_dur(val, &shape[d].jitter_ns) == 0 ? NULL
                                                        : "not a duration (150us, 2ms, <= 60s)";
    if (strcmp(key, "drop") == 0)
        return parse_prob(val, &shape[d].drop) == 0 ? NULL : "not a probability (0..1 or 0%..100%)";
    return "unknown setting (delay, jitter, drop)";
}

static void control_line(char *line)
{
    char *save = NULL, *tok = strtok_r(line, " \t\r\n", &save);
    enum dir from = DIR_AB, to = DIR_BA;
    struct shape old[DIR_COUNT];

    if (tok == NULL)
        return;
    if (strcmp(tok, "stats") == 0) {
        printf("stats ab_passed=%" PRIu64 " ab_dropped=%" PRIu64 " ab_overflow=%" PRIu64
               " ba_passed=%" PRIu64 " ba_dropped=%" PRIu64 " ba_overflow=%" PRIu64 "\n",
               count[DIR_AB].passed, count[DIR_AB].dropped, count[DIR_AB].overflow,
               count[DIR_BA].passed, count[DIR_BA].dropped, count[DIR_BA].overflow);
        fflush(stdout);
        return;
    }
    if (strcmp(tok, "set") != 0) {
        printf("error: %s: unknown command (set, stats)\n", tok);
        fflush(stdout);
        return;
    }
    tok = strtok_r(NULL, " \t\r\n", &save);
    if (tok != NULL && strcmp(tok, "ab") == 0)
        to = DIR_AB;
    else if (tok != NULL && strcmp(tok, "ba") == 0)
        from = DIR_BA;
    else if (tok == NULL || strcmp(tok, "both") != 0) {
        printf("error: set: direction must be ab, ba or both\n");
        fflush(stdout);
        return;
    }
    memcpy(old, shape, sizeof(old));
    while ((tok = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
        char *eq = strchr(tok, '=');
        const char *err = eq == NULL ? "not key=value" : NULL;

        if (eq != NULL) {
            *eq = '\0';
            for (int d = from; d <= (int)to && err == NULL; d++)
                err = apply_kv((enum dir)d, tok, eq + 1);
        }
        if (err != NULL) {
            memcpy(shape, old, sizeof(old));
            printf("error: %s%s%s: %s\n", tok, eq != NULL ? "=" : "", eq != NULL ? eq + 1 : "",
                   err);
            fflush(stdout);
            return;
        }
    }
    printf("ok\n");
    fflush(stdout);
}

/* Reads every packet waiting on fd (direction d) into the heap. */
static void take_packets(int fd, enum dir d, struct heap *h, size_t limit, uint64_t *seq)
{
    static unsigned char buf[PKT_MAX];

    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        uint64_t when;
        int64_t jit = 0;
        struct pkt p;

        if (n <= 0)
            return;
        if (shape[d].drop > 0 && rand_unit() < shape[d].drop) {
            count[d].dropped++;
            continue;
        }
        if (h->n >= limit) {
            count[d].overflow++;
            continue;
        }
        if (shape[d].jitter_ns > 0)
            jit =
                (int64_t)(rand_next() % (2 * shape[d].jitter_ns + 1)) - (int64_t)shape[d].jitter_ns;
        when = now_ns();
        if (jit < 0 && (uint64_t)-jit > shape[d].delay_ns)
            jit = -(int64_t)shape[d].delay_ns;
        p.release_ns = when + shape[d].delay_ns + (uint64_t)jit;
        p.seq = (*seq)++;
        p.dir = d;
        p.len = (size_t)n;
        p.data = malloc((size_t)n);
        if (p.data == NULL) {
            count[d].overflow++;
            continue;
        }
        memcpy(p.data, buf, (size_t)n);
        heap_push(h, p);
    }
}

static void arm(int tfd, const struct heap *h)
{
    struct itimerspec its;

    memset(&its, 0, sizeof(its));
    if (h->n > 0) {
        uint64_t t = h->p[0].release_ns;

        its.it_value.tv_sec = (time_t)(t / 1000000000ull);
        its.it_value.tv_nsec = (long)(t % 1000000000ull);
        if (t == 0)
            its.it_value.tv_nsec = 1;
    }
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* tc netem releases packets from the kernel's timers, whatever the load on
 * the machine; a user-space stand-in woken by a timerfd is late by as much as
 * the scheduler keeps it waiting behind busy processes (milliseconds with
 * four of them per CPU). SCHED_FIFO puts it ahead of them; it blocks in
 * epoll_wait between packets, so it takes no more CPU than it did. Without
 * the privilege it runs as before and says so. */
static void realtime(void)
{
    struct sched_param sp = {.sched_priority = 10};

    if (sched_setscheduler(0, SCHED_FIFO, &sp) == -1)
        fprintf(stderr, "netemu: SCHED_FIFO: %s; releases may be late on a busy machine\n",
                strerror(errno));
}

int main(int argc, char **argv)
{
    const char *ns_path[DIR_COUNT] = {NULL, NULL}, *tun[DIR_COUNT] = {NULL, NULL};
    size_t limit = 10000;
    int fd[DIR_COUNT] = {-1, -1}, home, ep, tfd;
    struct heap h = {0};
    uint64_t seq = 0;
    char line[512];
    size_t line_len = 0;

    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL, *err = NULL;

        if (strcmp(o, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (v == NULL) {
            fprintf(stderr, "netemu: %s: needs a value\n", o);
            usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(o, "--tun-a") == 0 || strcmp(o, "--tun-b") == 0) {
            if (strlen(v) == 0 || strlen(v) >= IFNAMSIZ)
                return bad(o, v, "a device name of 1..15 characters");
            tun[o[6] == 'a' ? DIR_AB : DIR_BA] = v;
        } else if (strcmp(o, "--netns-a") == 0 || strcmp(o, "--netns-b") == 0) {
            ns_path[o[8] == 'a' ? DIR_AB : DIR_BA] = v;
        } else if (strcmp(o, "--limit") == 0) {
            char *end = NULL;
            unsigned long n = strtoul(v, &end, 10);

            if (end == v || *end != '\0' || n < 1 || n > 1000000)
                return bad(o, v, "must be 1..1000000 packets");
            limit = n;
        } else if (strcmp(o, "--seed") == 0) {
            char *end = NULL;
            unsigned long long n = strtoull(v, &end, 10);

            if (end == v || *end != '\0' || n == 0)
                return bad(o, v, "must be a positive integer");
            rng = n;
        } else if (strncmp(o, "--delay", 7) == 0 || strncmp(o, "--jitter", 8) == 0 ||
                   strncmp(o, "--drop", 6) == 0) {
            const char *key = o + 2, *dash = strchr(key, '-');
            char k[8];
            size_t kl = dash != NULL ? (size_t)(dash - key) : strlen(key);
            int from = DIR_AB, to = DIR_BA;

            if (kl >= sizeof(k)) {
                fprintf(stderr, "netemu: %s: unknown option\n", o);
                usage(stderr);
                return 2;
            }
            memcpy(k, key, kl);
            k[kl] = '\0';
            if (dash != NULL && strcmp(dash, "-ab") == 0)
                to = DIR_AB;
            else if (dash != NULL && strcmp(dash, "-ba") == 0)
                from = DIR_BA;
            else if (dash != NULL) {
                fprintf(stderr, "netemu: %s: unknown option\n", o);
                usage(stderr);
                return 2;
            }
            for (int d = from; d <= to && err == NULL; d++)
                err = apply_kv((enum dir)d, k, v);
            if (err != NULL)
                return bad(o, v, err);
        } else {
            fprintf(stderr, "netemu: %s: unknown option\n", o);
            usage(stderr);
            return 2;
        }
    }
    if (tun[DIR_AB] == NULL || tun[DIR_BA] == NULL) {
        fprintf(stderr, "netemu: --tun-a and --tun-b are required\n");
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    realtime();
    home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home == -1) {
        fprintf(stderr, "netemu: /proc/self/ns/net: %s\n", strerror(errno));
        return 1;
    }
    for (int d = 0; d < DIR_COUNT; d++) {
        const char *what = "?";
        int r = tun_open(ns_path[d], home, tun[d], &what);

        if (r < 0) {
            fprintf(stderr, "netemu: %s %s%s%s: cannot %s: %s\n", d == 0 ? "--tun-a" : "--tun-b",
                    tun[d], ns_path[d] != NULL ? " in " : "", ns_path[d] != NULL ? ns_path[d] : "",
                    what, strerror(-r));
            return 1;
        }
        fd[d] = r;
    }
    h.cap = limit;
    h.p = calloc(limit, sizeof(*h.p));
    ep = epoll_create1(EPOLL_CLOEXEC);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (h.p == NULL || ep == -1 || tfd == -1) {
        fprintf(stderr, "netemu: setup: %s\n", strerror(errno));
        return 1;
    }
    {
        struct epoll_event ev = {.events = EPOLLIN};
        int fds[4] = {fd[DIR_AB], fd[DIR_BA], tfd, 0};

        for (int k = 0; k < 4; k++) {
            ev.data.u32 = (uint32_t)k;
            if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[k], &ev) == -1) {
                fprintf(stderr, "netemu: epoll_ctl: %s\n", strerror(errno));
                return 1;
            }
        }
    }
    printf("ready %s %s\n", tun[DIR_AB], tun[DIR_BA]);
    fflush(stdout);
    for (;;) {
        struct epoll_event evs[8];
        int n = epoll_wait(ep, evs, 8, -1);

        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            fprintf(stderr, "netemu: epoll_wait: %s\n", strerror(errno));
            return 1;
        }
        for (int k = 0; k < n; k++) {
            uint32_t which = evs[k].data.u32;

            if (which == 0)
                take_packets(fd[DIR_AB], DIR_AB, &h, limit, &seq);
            else if (which == 1)
                take_packets(fd[DIR_BA], DIR_BA, &h, limit, &seq);
            else if (which == 2) {
                uint64_t exp;

                if (read(tfd, &exp, sizeof(exp)) < 0 && errno != EAGAIN)
                    return 1;
            } else if (which == 3) {
                ssize_t r = read(0, line + line_len, sizeof(line) - 1 - line_len);

                if (r <= 0) {
                    /* The test closed our stdin: it is done with us. */
                    return 0;
                }
                line_len += (size_t)r;
                line[line_len] = '\0';
                for (char *nl; (nl = strchr(line, '\n')) != NULL;) {
                    *nl = '\0';
                    control_line(line);
                    line_len -= (size_t)(nl + 1 - line);
                    memmove(line, nl + 1, line_len + 1);
                }
                if (line_len == sizeof(line) - 1) {
                    printf("error: command line longer than %zu bytes\n", sizeof(line) - 2);
                    fflush(stdout);
                    line_len = 0;
                }
            }
        }
        /* Release everything due, then sleep until the next one. */
        for (uint64_t t = now_ns(); h.n > 0 && h.p[0].release_ns <= t; t = now_ns()) {
            struct pkt p = heap_pop(&h);
            enum dir out = p.dir == DIR_AB ? DIR_BA : DIR_AB;

            /* A full device queue drops the packet, as a real link would. */
            if (write(fd[out], p.data, p.len) == (ssize_t)p.len)
                count[p.dir].passed++;
            else
                count[p.dir].overflow++;
            free(p.data);
        }
        arm(tfd, &h);
    }
}
