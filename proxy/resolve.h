/* SPDX-License-Identifier: Apache-2.0 */
/* Turns seeds (host names or IPs, as the user wrote them) into addresses.
 * resolve_seed blocks (getaddrinfo): at start only. On the running control
 * loop names are looked up by a resolve_job, on a thread of its own, so a
 * DNS server that never answers stalls no signal, snapshot or health check. */
#ifndef PROXY_RESOLVE_H
#define PROXY_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "addr.h"
#include "config.h"

/* Appends the addresses of sd (every A/AAAA record of a name) to out[*n..max),
 * skipping duplicates. Returns 0, -E2BIG with a sentence in err naming how
 * many and max when they do not all fit (none is appended then: never a
 * part), or another negative value with a sentence in err when the name does
 * not resolve. */
int resolve_seed(const struct config_seed *sd, struct addr *out, size_t max, size_t *n, char *err,
                 size_t err_len) __attribute__((warn_unused_result));

struct resolve_job;

/* Starts looking up sd[0..n) (copied; n <= UPSTREAM_MAX) on a new detached
 * thread; names that do not resolve are logged there and skipped. When the
 * lookups are done, uv_async_send(done) wakes the loop, unless the job was
 * released first. Returns 0 with *out (the caller releases it), or a
 * negative errno (-ENOMEM, -EAGAIN: no thread) with nothing started. Loop
 * thread; done must stay open until resolve_job_release. */
int resolve_job_start(const struct config_seed *sd, size_t n, uv_async_t *done,
                      struct resolve_job **out) __attribute__((warn_unused_result));

/* When j is done, copies its addresses into out (at most UPSTREAM_MAX) and
 * returns true; false while it still looks up. Loop thread. */
bool resolve_job_take(struct resolve_job *j, struct addr *out, size_t *n)
    __attribute__((warn_unused_result));

/* The loop is done with j (NULL is ignored): j never touches done again,
 * and is freed now or by its thread when the lookup in progress returns. */
void resolve_job_release(struct resolve_job *j);

#endif
