/* SPDX-License-Identifier: Apache-2.0 */
/* The admin endpoint (--admin-listen): GET /healthz, /readyz, /upstreams
 * (JSON) and /metrics (Prometheus text 0.0.4). A small HTTP/1.1 server (one
 * request per connection, bounded head, 16 connections, 10 s each) on its own
 * thread and libuv loop; it reads the daemon's state only through a snapshot
 * function, so it never blocks a proxy loop. */
#ifndef PROXY_ADMIN_H
#define PROXY_ADMIN_H

#include <stddef.h>

#include "addr.h"
#include "snapshot.h"

struct admin;

/* Binds *listen (port 0: the kernel chooses and *listen is updated) and
 * starts serving. Returns 0, or a negative errno with one line in err. */
int admin_start(struct addr *listen, snapshot_fn snap, void *arg, struct admin **out, char *err,
                size_t err_len) __attribute__((warn_unused_result));

/* Parses the request line of an HTTP/1.x request head: "METHOD /path[?query]
 * HTTP/1.x". Copies the method and the path (query dropped) NUL-terminated.
 * Returns 0, or -EINVAL when the line is malformed, a part does not fit, or
 * the path holds control characters or spaces. */
int admin_parse_head(const char *head, size_t len, char *method, size_t method_len, char *path,
                     size_t path_len);

/* Stops serving and frees a. */
void admin_stop(struct admin *a);

#endif
