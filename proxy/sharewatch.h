/* SPDX-License-Identifier: Apache-2.0 */
/* Who else listens on apilb's --listen and admin addresses, checked every
 * --listener-check-interval (issue 24 F8). SO_REUSEPORT lets any socket of
 * apilb's uid join the group of 127.0.0.1:443, and the kernel then gives it a
 * share of the kubelet's new connections; apilb cannot stop that, but it says
 * so: a warning naming the process (pid, comm) and the gauges
 * apilb_listener_foreign_sharers / apilb_listener_apilb_sharers. Another
 * apilb (an upgrade: the new one starts beside the old) is not foreign. A
 * socket whose owner /proc does not show (another pod: another PID
 * namespace) counts as apilb for --listener-grace (2m), about what
 * an upgrade's overlap takes, and as foreign after that. Control thread; the
 * /proc reads run on libuv's thread pool. */
#ifndef PROXY_SHAREWATCH_H
#define PROXY_SHAREWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "addr.h"
#include "config.h"
#include "listener.h"
#include "worker.h"

#define SHAREWATCH_MAX_WORKERS 64 /* --workers' limit */
#define SHAREWATCH_MAX_OTHERS 16  /* per address; more are not looked at */

struct sharewatch_other {
    struct listener_other o;
    uint64_t first_seen_ms;
    bool as_apilb; /* what the last check took it for (reported then) */
};

struct sharewatch_addr {
    struct addr a;
    char name[ADDR_STRLEN];
    unsigned long ours[SHAREWATCH_MAX_WORKERS]; /* our sockets' inodes */
    size_t n_ours;
    struct sharewatch_other seen[SHAREWATCH_MAX_OTHERS]; /* as of the last check */
    size_t n_seen;
    struct listener_other found[SHAREWATCH_MAX_OTHERS]; /* the scan's, thread pool */
    size_t n_found;
};

struct sharewatch {
    uv_timer_t timer;
    uv_work_t work;
    bool busy;           /* a scan is on the thread pool */
    uint64_t upgrade_ms; /* a hidden owner counts as apilb this long */
    struct worker_shared *sh;
    size_t n;
    struct sharewatch_addr addrs[CONFIG_MAX_LISTEN + 1]; /* and the admin listener */
};

/* Initialises w (caller allocates; it must outlive the loop's run) for the
 * listeners fds[w * n_listen + i] (worker w, address i; borrowed, read once
 * here) and the admin endpoint's admin_fd (-1: none; a share of its
 * connections is a share of the kubelet's probes) and, when interval_ms > 0,
 * starts checking every interval_ms. A socket whose owner is hidden counts
 * as another apilb for upgrade_ms after it was first seen, then as foreign.
 * Results go to sh's listener gauges. The timer is a handle of loop: closing
 * every handle (uv_walk) stops it; a scan under way finishes first. Returns 0
 * or a negative errno. Control thread. */
int sharewatch_init(struct sharewatch *w, uv_loop_t *loop, const int *fds, unsigned n_workers,
                    size_t n_listen, int admin_fd, unsigned interval_ms, unsigned upgrade_ms,
                    struct worker_shared *sh) __attribute__((warn_unused_result));

#endif
