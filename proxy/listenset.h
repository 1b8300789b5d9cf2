/* SPDX-License-Identifier: Apache-2.0 */
/* The listening sockets of --listen: one per address for each worker
 * (SO_REUSEPORT), opened at start before any thread, with the lines an
 * operator needs about them (queue hand-over, other programs on the port).
 * Main thread. */
#ifndef PROXY_LISTENSET_H
#define PROXY_LISTENSET_H

#include <stddef.h>

#include "addr.h"

/* Opens listen[0..n_listen) once per worker into fds[w * n_listen + i]
 * (room for n_workers * n_listen); a port of 0 is the kernel's choice,
 * the same for every worker. Returns 0, or a negative errno with nothing
 * left open and err naming the address and why (who holds it, when the
 * kernel says in use). */
int listenset_open(const struct addr *listen, size_t n_listen, unsigned n_workers, int *fds,
                   char *err, size_t err_len) __attribute__((warn_unused_result));

#endif
