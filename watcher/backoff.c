/* SPDX-License-Identifier: Apache-2.0 */
#include "backoff.h"

#include "rand.h"

void backoff_init(struct backoff *b, uint64_t seed)
{
    b->next_ms = BACKOFF_INIT_MS;
    b->last_fail_ms = 0;
    b->rng = seed | 1;
}

uint64_t backoff_next(struct backoff *b, uint64_t now_ms, uint64_t retry_after_ms)
{
    uint64_t base, d;

    if (b->last_fail_ms != 0 && now_ms - b->last_fail_ms > BACKOFF_RESET_MS)
        b->next_ms = BACKOFF_INIT_MS;
    b->last_fail_ms = now_ms;
    base = b->next_ms;
    d = base + rand_next(&b->rng) % (base + 1);
    b->next_ms = base * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : base * 2;
    return retry_after_ms > d ? retry_after_ms : d;
}
