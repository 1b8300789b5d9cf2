/* SPDX-License-Identifier: Apache-2.0 */
/* Pure balancing arithmetic; see balance.h. */
#include "balance.h"

#include <stdlib.h>

bool balance_lost_is_mass(unsigned lost, unsigned total)
{
    if (lost < 2)
        return false;
    return lost >= 4 || (uint64_t)lost * 4 >= total;
}

unsigned balance_ramp_weight(uint64_t from_ms, uint64_t now_ms, unsigned dur_ms, unsigned floor_w)
{
    uint64_t elapsed;

    if (from_ms == 0 || dur_ms == 0 || now_ms >= from_ms + dur_ms)
        return BALANCE_WEIGHT_FULL;
    if (floor_w > BALANCE_WEIGHT_FULL)
        floor_w = BALANCE_WEIGHT_FULL;
    elapsed = now_ms > from_ms ? now_ms - from_ms : 0;
    return floor_w + (unsigned)((uint64_t)(BALANCE_WEIGHT_FULL - floor_w) * elapsed / dur_ms);
}

unsigned balance_fair_limit(unsigned total_active, unsigned n_usable, unsigned min_active)
{
    uint64_t n = n_usable != 0 ? n_usable : 1;
    uint64_t over = (uint64_t)total_active * 21 / (n * 20);

    return (unsigned)(over > (uint64_t)min_active + 1 ? over : (uint64_t)min_active + 1);
}

unsigned balance_target(unsigned total_active, unsigned n_usable, unsigned rank)
{
    unsigned n = n_usable != 0 ? n_usable : 1;

    return total_active / n + (rank < total_active % n ? 1 : 0);
}

unsigned balance_shed_count(unsigned active, unsigned limit, unsigned mine, uint64_t draw)
{
    uint64_t num, den, k;

    if (active <= limit || mine == 0)
        return 0;
    if (mine > active)
        mine = active; /* counts read at different instants */
    num = (uint64_t)(active - limit) * mine;
    den = (uint64_t)active * BALANCE_SHED_DIVISOR;
    k = num / den + (draw % den < num % den ? 1 : 0);
    return (unsigned)(k < mine ? k : mine);
}

unsigned balance_pace_hold_max(uint32_t answer_ms)
{
    uint64_t budget = BALANCE_CLIENT_HANDSHAKE_MS - BALANCE_PACE_MARGIN_MS;
    uint64_t need = 2 * (uint64_t)answer_ms;

    return need >= budget ? 0 : (unsigned)(budget - need);
}

bool balance_shed_moment(uint64_t asked_ms, uint64_t answered_ms, uint64_t now_ms)
{
    if (now_ms < asked_ms || now_ms < answered_ms)
        return false; /* another thread's clock read */
    if (now_ms - asked_ms >= BALANCE_SHED_SILENT_MS)
        return true;
    return answered_ms >= asked_ms && now_ms - answered_ms >= BALANCE_SHED_AFTER_MIN_MS &&
           now_ms - answered_ms <= BALANCE_SHED_AFTER_MAX_MS;
}

/* qsort_r (glibc): the keys travel with the call, so workers sort at once. */
static int by_quiet(const void *a, const void *b, void *arg)
{
    const uint64_t *key = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;

    if (key[x] != key[y])
        return key[x] < key[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

void balance_shed_order(const uint64_t *quiet_since_ms, size_t n, size_t *order)
{
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    qsort_r(order, n, sizeof(*order), by_quiet, (void *)quiet_since_ms);
}
