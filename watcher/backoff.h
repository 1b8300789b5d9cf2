/* SPDX-License-Identifier: Apache-2.0 */
/* Retry delays like client-go's reflector: 800 ms, doubling, at most 30 s,
 * plus 0-100 % random jitter, back to the start after 2 minutes without a
 * failure. A Retry-After from the server is honoured when longer. Pure. */
#ifndef WATCHER_BACKOFF_H
#define WATCHER_BACKOFF_H

#include <stdint.h>

#define BACKOFF_INIT_MS 800u
#define BACKOFF_MAX_MS 30000u
#define BACKOFF_RESET_MS 120000u

struct backoff {
    uint64_t next_ms;      /* base of the next delay */
    uint64_t last_fail_ms; /* when the last delay was taken */
    uint64_t rng;
};

void backoff_init(struct backoff *b, uint64_t seed);

/* The delay to wait after a failure at now_ms. */
uint64_t backoff_next(struct backoff *b, uint64_t now_ms, uint64_t retry_after_ms);

#endif
