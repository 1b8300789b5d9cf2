/* SPDX-License-Identifier: Apache-2.0 */
/* The process's one pseudo-random generator and one spreading hash, for
 * jitter only (never for secrets: getrandom(2) is for those). Each user
 * keeps its own state, so no thread shares one. Any thread. */
#ifndef PROXY_RAND_H
#define PROXY_RAND_H

#include <stdint.h>

/* Advances *state by one step of xorshift64 (Marsaglia, shifts 13, 7, 17)
 * and returns the new state. *state must not be 0 (it would stay 0). */
static inline uint64_t rand_next(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

/* A fixed spread of id over 0..999 (Knuth's multiplicative hash): the same
 * id always gets the same share of a jitter window, and consecutive ids
 * land far apart. */
static inline uint64_t rand_jitter_permille(uint64_t id)
{
    return id * 2654435761u % 1000;
}

#endif
