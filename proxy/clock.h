/* SPDX-License-Identifier: Apache-2.0 */
/* The process's one clock (curl's curlx_now): monotonic time for deadlines,
 * intervals and ages, and the wall clock only for what is shown to people or
 * written down (timestamps in /metrics, /status, the state file). The
 * monotonic readings share CLOCK_MONOTONIC with libuv's uv_hrtime() and
 * uv_now(), so they may be compared with a loop's time. Any thread. */
#ifndef PROXY_CLOCK_H
#define PROXY_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic microseconds since an arbitrary point (boot). */
static inline uint64_t clock_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Monotonic milliseconds since an arbitrary point (boot). */
static inline uint64_t clock_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Milliseconds since the epoch (CLOCK_REALTIME): it may jump, so never a
 * deadline. */
static inline uint64_t clock_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
