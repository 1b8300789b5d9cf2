/* SPDX-License-Identifier: Apache-2.0 */
/* The listening sockets; see listenset.h. */
#define LOG_MODULE "control"
#include "listenset.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "listener.h"
#include "log.h"
#include "migrate.h"

/* Says in err why a could not be listened on (rc, a negative errno). */
static void open_failed(const struct addr *a, int rc, char *err, size_t err_len)
{
    char name[ADDR_STRLEN], holder[128];

    addr_format(a, name, sizeof(name));
    if (rc == -EADDRINUSE) {
        listener_holder(a, holder, sizeof(holder));
        snprintf(err, err_len, "--listen=%s: address already in use%s%s%s", name,
                 holder[0] ? " (held by " : "", holder, holder[0] ? ")" : "");
    } else if (rc == -EACCES && addr_port(a) < 1024) {
        snprintf(err, err_len,
                 "--listen=%s: permission denied (ports below 1024 need root "
                 "or CAP_NET_BIND_SERVICE)",
                 name);
    } else {
        snprintf(err, err_len, "--listen=%s: cannot listen: %s", name, strerror(-rc));
    }
}

/* Logs how a (worker 0's socket fd, one per group) listens. */
static void announce(const struct addr *a, int fd, unsigned n_workers)
{
    char name[ADDR_STRLEN], others[256];
    int mig = migrate_enable(fd);

    addr_format(a, name, sizeof(name));
    log_info("listening", "addr=%s workers=%u queue_handover=%s", name, n_workers,
             mig == 0 ? "on" : "sysctl");
    if (mig != 0)
        log_info("connections still queued when apilb closes this listener are handed to "
                 "the next apilb only if net.ipv4.tcp_migrate_req=1 (docs/upgrade.md)",
                 "addr=%s err=\"%s\"", name, strerror(-mig));
    listener_sharers(a, others, sizeof(others));
    if (others[0] != '\0')
        log_warn("another program listens on this port too: connections may go to it "
                 "instead of apilb (a hostNetwork ingress controller?); choose another "
                 "--listen port (docs/kubelet.md)",
                 "addr=%s others=\"%s\"", name, log_quote(others));
}

int listenset_open(const struct addr *listen, size_t n_listen, unsigned n_workers, int *fds,
                   char *err, size_t err_len)
{
    struct addr a[CONFIG_MAX_LISTEN];
    size_t k = 0;

    if (n_listen > CONFIG_MAX_LISTEN) {
        snprintf(err, err_len, "--listen: at most %d addresses", CONFIG_MAX_LISTEN);
        return -E2BIG;
    }
    memcpy(a, listen, n_listen * sizeof(*a));
    for (unsigned w = 0; w < n_workers; w++) {
        for (size_t i = 0; i < n_listen; i++, k++) {
            int fd = listener_open(&a[i]);

            if (fd >= 0) {
                fds[k] = fd;
                continue;
            }
            open_failed(&a[i], fd, err, err_len);
            while (k > 0)
                close(fds[--k]);
            return fd;
        }
    }
    for (size_t i = 0; i < n_listen; i++)
        announce(&a[i], fds[i], n_workers);
    return 0;
}
