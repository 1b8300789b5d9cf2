/* SPDX-License-Identifier: Apache-2.0 */
/* Listening sockets. Every worker gets its own socket per --listen address,
 * all bound with SO_REUSEPORT, so the kernel spreads new connections over the
 * workers and a second apilb (same user) can bind beside this one for a
 * zero-downtime upgrade. Main thread, before the workers start. */
#ifndef PROXY_LISTENER_H
#define PROXY_LISTENER_H

#include <stddef.h>

#include "addr.h"

#define LISTENER_BACKLOG 4096

/* Opens a non-blocking listening socket on *a. A port of 0 is replaced in *a
 * by the port the kernel chose. Returns the fd or a negative errno. */
int listener_open(struct addr *a);

/* Describes who holds the TCP port of a ("pid 123 (nginx)"), as far as /proc
 * tells; writes "" when it cannot be found. */
void listener_holder(const struct addr *a, char *buf, size_t len);

/* Describes the other programs (not apilb) that listen on the TCP port of a
 * too, as "pid 12 (nginx), ..."; "" when none. With SO_REUSEPORT such a
 * program silently shares the port with apilb. */
void listener_sharers(const struct addr *a, char *buf, size_t len);

#endif
