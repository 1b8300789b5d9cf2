/* SPDX-License-Identifier: Apache-2.0 */
/* The process's one pseudo-random generator, one 64-bit mixer and one
 * spreading hash, for jitter, ranks and fallbacks only (never for secrets:
 * getrandom(2) is for those). Each user keeps its own state, so no thread
 * shares one. Any thread. */
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

/* splitmix64's output for the state x (Steele, Lea and Flood, 2014, with
 * Vigna's constants): x plus the golden-ratio step 0x9e3779b97f4a7c15, then
 * the finaliser. A bijection of the 64-bit values, so distinct inputs give
 * distinct outputs, and one flipped input bit flips about half the output
 * bits: consecutive inputs (ids, milliseconds, pids) land far apart.
 * rand_mix64(0) is 0xe220a8397b1dcdaf, splitmix64's first output from seed 0,
 * so the result can seed rand_next except for one input. Pure; any thread. */
static inline uint64_t rand_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

#endif
