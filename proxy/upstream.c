/* SPDX-License-Identifier: Apache-2.0 */
/* Upstreams, tables and the balancing algorithms; see upstream.h. */
#include "upstream.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "rand.h"

const double upstream_latency_bounds_s[UPSTREAM_LATENCY_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005,
                                                                    0.01,   0.025, 0.05,   0.1,
                                                                    0.25,   0.5,   1,      2.5};

struct upstream *upstream_new(const struct addr *addr)
{
    struct upstream *up = calloc(1, sizeof(*up));

    if (up == NULL)
        return NULL;
    up->addr = *addr;
    addr_format(addr, up->name, sizeof(up->name));
    atomic_init(&up->refs, 1);
    return up;
}

void upstream_ref(struct upstream *up)
{
    atomic_fetch_add_explicit(&up->refs, 1, memory_order_relaxed);
}

void upstream_unref(struct upstream *up)
{
    if (up != NULL && atomic_fetch_sub_explicit(&up->refs, 1, memory_order_acq_rel) == 1)
        free(up);
}

bool upstream_usable(const struct upstream *up, uint64_t now_ms)
{
    return atomic_load_explicit(&up->health, memory_order_relaxed) != UPSTREAM_UNHEALTHY &&
           atomic_load_explicit(&up->passive_down_until_ms, memory_order_relaxed) <= now_ms &&
           atomic_load_explicit(&up->draining_since_ms, memory_order_relaxed) == 0;
}

void upstream_dial_failed(struct upstream *up, enum upstream_fail why, uint64_t now_ms,
                          unsigned hold_ms)
{
    atomic_fetch_add_explicit(&up->connect_fail[why], 1, memory_order_relaxed);
    if (why != UPSTREAM_FAIL_LOCAL)
        atomic_store_explicit(&up->passive_down_until_ms, now_ms + hold_ms, memory_order_relaxed);
}

bool upstream_fail_is_local(int err)
{
    switch (err) {
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
    case EADDRNOTAVAIL:
        return true;
    default:
        return false;
    }
}

void upstream_hold(struct upstream *up, uint64_t now_ms, unsigned hold_ms)
{
    atomic_store_explicit(&up->passive_down_until_ms, now_ms + hold_ms, memory_order_relaxed);
}

void upstream_dial_ok(struct upstream *up, uint64_t latency_us)
{
    size_t b = 0;
    double s = (double)latency_us / 1e6;

    while (b < UPSTREAM_LATENCY_BUCKETS && s > upstream_latency_bounds_s[b])
        b++;
    atomic_fetch_add_explicit(&up->connect_latency[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&up->connect_latency_sum_us, latency_us, memory_order_relaxed);
    atomic_fetch_add_explicit(&up->conns_total, 1, memory_order_relaxed);
    upstream_rtt_sample(up, latency_us);
    /* A successful dial ends a passive hold early. */
    if (atomic_load_explicit(&up->passive_down_until_ms, memory_order_relaxed) != 0)
        atomic_store_explicit(&up->passive_down_until_ms, 0, memory_order_relaxed);
}

void upstream_rtt_sample(struct upstream *up, uint64_t rtt_us)
{
    unsigned slot = atomic_fetch_add_explicit(&up->rtt_next, 1, memory_order_relaxed);
    uint32_t v = rtt_us == 0 ? 1 : rtt_us > UINT32_MAX ? UINT32_MAX : (uint32_t)rtt_us;

    atomic_store_explicit(&up->rtt_us[slot % TIER_RTT_SAMPLES], v, memory_order_relaxed);
}

void upstream_answer_sample(struct upstream *up, uint64_t took_us)
{
    uint64_t ms = took_us / 1000;

    atomic_store_explicit(&up->answer_ms, ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms,
                          memory_order_relaxed);
}

uint32_t upstream_rtt_us(const struct upstream *up)
{
    uint32_t s[TIER_RTT_SAMPLES];

    if (atomic_load_explicit(&up->rtt_next, memory_order_relaxed) < TIER_MIN_SAMPLES)
        return 0;
    for (size_t i = 0; i < TIER_RTT_SAMPLES; i++)
        s[i] = atomic_load_explicit(&up->rtt_us[i], memory_order_relaxed);
    return tier_rtt_estimate(s, TIER_RTT_SAMPLES);
}

static int entry_cmp(const void *a, const void *b)
{
    const struct upstream_entry *x = a, *y = b;
    return addr_cmp(&x->up->addr, &y->up->addr);
}

struct upstream_table *upstream_table_new(const struct upstream_entry *e, size_t n,
                                          uint64_t generation)
{
    struct upstream_table *t;

    assert(n <= UPSTREAM_MAX); /* the registry refuses larger sets */
    t = malloc(sizeof(*t) + n * sizeof(t->e[0]));
    if (t == NULL)
        return NULL;
    atomic_init(&t->refs, 1);
    t->generation = generation;
    t->n = n;
    if (n > 0)
        memcpy(t->e, e, n * sizeof(t->e[0]));
    qsort(t->e, n, sizeof(t->e[0]), entry_cmp);
    for (size_t i = 0; i < n; i++)
        upstream_ref(t->e[i].up);
    return t;
}

void upstream_table_ref(struct upstream_table *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void upstream_table_unref(struct upstream_table *t)
{
    if (t == NULL || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < t->n; i++)
        upstream_unref(t->e[i].up);
    free(t);
}

long upstream_table_find(const struct upstream_table *t, const struct addr *addr)
{
    size_t lo = 0, hi = t->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = addr_cmp(&t->e[mid].up->addr, addr);

        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

void upstream_picker_init(struct upstream_picker *p, enum upstream_balance algo, uint64_t seed)
{
    p->algo = algo;
    p->slow_start_ms = 0;
    /* xorshift64 would stay at 0: seed 0 takes the mixer's output for 0. */
    p->rng = seed != 0 ? seed : rand_mix64(0);
    p->rr_next = (unsigned)(seed % 64);
    p->tiers = false;
    p->spill_factor = 0;
    p->ramp_ms = 0;
}

void upstream_picker_prefer(struct upstream_picker *p, unsigned spill_factor, unsigned ramp_ms)
{
    p->tiers = true;
    p->spill_factor = spill_factor;
    p->ramp_ms = ramp_ms;
}

uint64_t upstream_picker_random(struct upstream_picker *p)
{
    return rand_next(&p->rng);
}

static bool is_tried(const struct upstream_tried *tried, size_t i)
{
    return i < 64 && (tried->mask & (1ull << i)) != 0;
}

enum pass {
    PASS_PRIMARY = 0,
    PASS_FALLBACK,
    PASS_ANY,
};

/* The primary pass's restriction to one tier (NULL: none). */
struct tier_filter {
    unsigned tier;
    struct upstream_picker *p; /* for the ramp's draws */
};

/* An entry in its ramp (ramp_from_ms less than ramp_ms ago) passes with
 * the probability of its weight, from 0: one turned away goes to the next
 * tier. */
static bool ramp_admits(struct upstream_picker *p, const struct upstream *up, uint64_t now_ms)
{
    unsigned w = balance_ramp_weight(atomic_load_explicit(&up->ramp_from_ms, memory_order_relaxed),
                                     now_ms, p->ramp_ms, 0);

    return w >= BALANCE_WEIGHT_FULL || upstream_picker_random(p) % BALANCE_WEIGHT_FULL < w;
}

static bool eligible(const struct upstream_table *t, size_t i, enum pass pass,
                     const struct upstream_tried *tried, uint64_t now_ms,
                     const struct tier_filter *f)
{
    const struct upstream_entry *e = &t->e[i];

    if (is_tried(tried, i))
        return false;
    switch (pass) {
    case PASS_PRIMARY:
        if (e->fallback || !upstream_usable(e->up, now_ms))
            return false;
        if (f == NULL)
            return true;
        return atomic_load_explicit(&e->up->tier, memory_order_relaxed) == f->tier &&
               ramp_admits(f->p, e->up, now_ms);
    case PASS_FALLBACK:
        return e->fallback && upstream_usable(e->up, now_ms);
    case PASS_ANY:
        return true;
    }
    return false;
}

/* One pass of the configured algorithm over the eligible entries. */
static long pick_pass(struct upstream_picker *p, const struct upstream_table *t, enum pass pass,
                      const struct upstream_tried *tried, uint64_t now_ms,
                      const struct tier_filter *f)
{
    long best = -1;
    unsigned best_active = 0, ties = 0, n_elig = 0;

    switch (p->algo) {
    case UPSTREAM_BALANCE_LEAST_CONN:
        /* Least active connections; ties broken uniformly at random
         * (reservoir sampling), so equal upstreams share new connections. */
        for (size_t i = 0; i < t->n; i++) {
            unsigned a;

            if (!eligible(t, i, pass, tried, now_ms, f))
                continue;
            a = atomic_load_explicit(&t->e[i].up->active, memory_order_relaxed);
            if (best < 0 || a < best_active) {
                best = (long)i;
                best_active = a;
                ties = 1;
            } else if (a == best_active && upstream_picker_random(p) % ++ties == 0) {
                best = (long)i;
            }
        }
        return best;
    case UPSTREAM_BALANCE_ROUND_ROBIN:
        for (size_t k = 0; k < t->n; k++) {
            size_t i = (p->rr_next + k) % t->n;

            if (eligible(t, i, pass, tried, now_ms, f)) {
                p->rr_next = (unsigned)((i + 1) % t->n);
                return (long)i;
            }
        }
        return -1;
    case UPSTREAM_BALANCE_RANDOM:
        for (size_t i = 0; i < t->n; i++)
            if (eligible(t, i, pass, tried, now_ms, f) && upstream_picker_random(p) % ++n_elig == 0)
                best = (long)i;
        return best;
    }
    return -1;
}

/* Per tier: usable primary entries, how many of them are untried, and
 * their active connections. */
struct tier_load {
    unsigned usable, untried;
    uint64_t active;
};

/* The primary pass tier by tier: the lowest tier with an untried usable
 * entry that is not loaded beyond spill_factor of the others, then the
 * next. -1 when no tier gave one (the caller's passes follow). */
static long pick_tiered(struct upstream_picker *p, const struct upstream_table *t,
                        const struct upstream_tried *tried, uint64_t now_ms)
{
    struct tier_load load[TIER_MAX + 1] = {{0}};
    unsigned all_usable = 0;
    uint64_t all_active = 0;

    for (size_t i = 0; i < t->n; i++) {
        const struct upstream *up = t->e[i].up;
        unsigned k = atomic_load_explicit(&up->tier, memory_order_relaxed);
        unsigned a = atomic_load_explicit(&up->active, memory_order_relaxed);

        if (t->e[i].fallback || !upstream_usable(up, now_ms))
            continue;
        k = k > TIER_MAX ? TIER_MAX : k;
        load[k].usable++;
        load[k].untried += !is_tried(tried, i);
        load[k].active += a;
        all_usable++;
        all_active += a;
    }
    for (unsigned k = 0; k <= TIER_MAX; k++) {
        struct tier_filter f = {.tier = k, .p = p};
        unsigned others = all_usable - load[k].usable;
        long i;

        if (load[k].untried == 0)
            continue;
        uint64_t rest = all_active - load[k].active;

        /* mean(k) > factor * (mean(others) + 1), in integers. */
        if (p->spill_factor != 0 && others > 0 &&
            load[k].active * others > p->spill_factor * (rest + others) * load[k].usable)
            continue;
        i = pick_pass(p, t, PASS_PRIMARY, tried, now_ms, &f);
        if (i >= 0)
            return i;
    }
    return -1;
}

unsigned upstream_slow_start_weight(const struct upstream *up, unsigned slow_start_ms,
                                    uint64_t now_ms)
{
    return balance_ramp_weight(atomic_load_explicit(&up->ramp_from_ms, memory_order_relaxed),
                               now_ms, slow_start_ms, BALANCE_WEIGHT_FLOOR);
}

void upstream_ramp_stopped(struct upstream *up, uint64_t now_ms)
{
    if (up->stopped)
        return;
    up->stopped = true;
    up->stopped_ms = now_ms;
}

void upstream_ramp_begin(struct upstream *up, uint64_t now_ms)
{
    atomic_store_explicit(&up->ramp_from_ms, now_ms != 0 ? now_ms : 1, memory_order_relaxed);
}

bool upstream_ramp_returned(const struct upstream_table *t, struct upstream *up, bool may_ramp,
                            uint64_t now_ms)
{
    uint64_t left = up->stopped ? up->stopped_ms : now_ms;
    bool carried = false;

    /* Carried the load meanwhile: usable now, and carrying since before up
     * stopped. One back from the same outage only a moment earlier did
     * not: it carried nothing while up was away. */
    for (size_t i = 0; may_ramp && t != NULL && i < t->n && !carried; i++) {
        const struct upstream *o = t->e[i].up;

        carried = o != up && !t->e[i].fallback && !o->stopped && upstream_usable(o, now_ms) &&
                  o->carrying_since_ms <= left;
    }
    up->stopped = false;
    up->carrying_since_ms = now_ms;
    if (may_ramp)
        atomic_store_explicit(&up->returned_ms, now_ms != 0 ? now_ms : 1, memory_order_relaxed);
    if (carried)
        upstream_ramp_begin(up, now_ms);
    return carried;
}

/* The entries that slow start leaves out of this pick: each one in slow
 * start with the probability 1 - its weight. Only entries below 64 (those
 * that tried can mark); the rest take part always. None with --prefer's
 * tiers: their own ramp (--prefer-ramp) ramps an upstream that comes back,
 * and two ramps on top of each other would hold it back twice. */
static uint64_t slow_start_skips(struct upstream_picker *p, const struct upstream_table *t,
                                 uint64_t now_ms)
{
    uint64_t skip = 0;

    if (p->tiers)
        return 0;

    for (size_t i = 0; p->slow_start_ms != 0 && i < t->n && i < 64; i++) {
        unsigned w = upstream_slow_start_weight(t->e[i].up, p->slow_start_ms, now_ms);

        if (w < BALANCE_WEIGHT_FULL && upstream_picker_random(p) % BALANCE_WEIGHT_FULL >= w)
            skip |= 1ull << i;
    }
    return skip;
}

long upstream_pick(struct upstream_picker *p, const struct upstream_table *t,
                   struct upstream_tried *tried, uint64_t now_ms)
{
    long i = -1;
    uint64_t skip;
    struct upstream_tried ramp;

    if (t == NULL || t->n == 0)
        return -1;
    skip = slow_start_skips(p, t, now_ms);
    ramp = (struct upstream_tried){.mask = tried->mask | skip, .count = tried->count};
    /* Slow start first, as if its skipped entries were tried: tier by
     * tier, then flat; when it leaves nothing, it yields (the passes). */
    if (p->tiers)
        i = pick_tiered(p, t, &ramp, now_ms);
    if (i < 0 && skip != 0)
        i = pick_pass(p, t, PASS_PRIMARY, &ramp, now_ms, NULL);
    for (size_t k = 0; skip != 0 && i >= 0 && k < t->n && k < 64; k++)
        if (skip & (1ull << k) & ~tried->mask)
            atomic_fetch_add_explicit(&t->e[k].up->slow_start_passed, 1, memory_order_relaxed);
    for (int pass = PASS_PRIMARY; pass <= PASS_ANY && i < 0; pass++)
        i = pick_pass(p, t, (enum pass)pass, tried, now_ms, NULL);
    if (i >= 0) {
        if (i < 64)
            tried->mask |= 1ull << i;
        tried->count++;
    }
    return i;
}

/* Whether up is a candidate in pass 0 (usable, not avoid), 1 (usable) or
 * 2 (any) of upstream_route. */
static bool route_candidate(const struct upstream *up, int pass, const struct addr *avoid,
                            uint64_t now_ms)
{
    if (pass == 2)
        return true;
    if (!upstream_usable(up, now_ms))
        return false;
    return pass == 1 || addr_cmp(&up->addr, avoid) != 0;
}

int upstream_route(const struct upstream_table *t, unsigned attempt, const struct addr *avoid,
                   uint64_t now_ms, struct addr *out)
{
    size_t rot = attempt + (size_t)(now_ms / 1000);

    for (int pass = avoid != NULL ? 0 : 1; t != NULL && pass < 3; pass++) {
        size_t k = 0, want;

        for (size_t i = 0; i < t->n; i++)
            k += route_candidate(t->e[i].up, pass, avoid, now_ms);
        if (k == 0)
            continue;
        want = rot % k;
        for (size_t i = 0; i < t->n; i++) {
            if (route_candidate(t->e[i].up, pass, avoid, now_ms) && want-- == 0) {
                *out = t->e[i].up->addr;
                return 0;
            }
        }
    }
    return -ENOENT;
}

size_t upstream_table_usable(const struct upstream_table *t, uint64_t now_ms)
{
    size_t n = 0;

    for (size_t i = 0; t != NULL && i < t->n; i++)
        if (upstream_usable(t->e[i].up, now_ms))
            n++;
    return n;
}

const char *upstream_balance_name(enum upstream_balance b)
{
    switch (b) {
    case UPSTREAM_BALANCE_LEAST_CONN:
        return "least-conn";
    case UPSTREAM_BALANCE_ROUND_ROBIN:
        return "round-robin";
    case UPSTREAM_BALANCE_RANDOM:
        return "random";
    }
    return "?";
}

const char *upstream_health_name(enum upstream_health h)
{
    switch (h) {
    case UPSTREAM_UNKNOWN:
        return "unknown";
    case UPSTREAM_HEALTHY:
        return "healthy";
    case UPSTREAM_UNHEALTHY:
        return "unhealthy";
    case UPSTREAM_HEALTH_COUNT:
        break;
    }
    return "?";
}

const char *upstream_fail_name(enum upstream_fail why)
{
    static const char *const names[UPSTREAM_FAIL_COUNT] = {"refused", "timeout", "unreachable",
                                                           "other", "local"};

    return (unsigned)why < UPSTREAM_FAIL_COUNT ? names[why] : "?";
}

const char *upstream_source_name(unsigned bit)
{
    static const char *const names[UPSTREAM_SRC_BITS] = {"seed", "file", "discovered", "state"};

    for (unsigned b = 0; b < UPSTREAM_SRC_BITS; b++)
        if (bit == 1u << b)
            return names[b];
    return "?";
}

bool upstream_connect_mean_us(const struct upstream *up, double *us)
{
    uint64_t n = atomic_load_explicit(&up->conns_total, memory_order_relaxed);

    if (n == 0)
        return false;
    *us =
        (double)atomic_load_explicit(&up->connect_latency_sum_us, memory_order_relaxed) / (double)n;
    return true;
}

void upstream_sources_format(unsigned sources, char *buf, size_t len)
{
    size_t off = 0;

    buf[0] = '\0';
    for (unsigned b = 0; b < UPSTREAM_SRC_BITS; b++) {
        if ((sources & (1u << b)) == 0)
            continue;
        off += (size_t)snprintf(buf + off, off < len ? len - off : 0, "%s%s", off > 0 ? "," : "",
                                upstream_source_name(1u << b));
    }
}
