/* SPDX-License-Identifier: Apache-2.0 */
/* Upstreams and the upstream table.
 *
 * A struct upstream is one apiserver address with its live state: health,
 * active connections, counters. It is shared by every thread that uses it and
 * refcounted atomically; its mutable fields are atomics written without locks
 * (health by the control thread, counters by the workers).
 *
 * A struct upstream_table is an immutable, whole set of entries (upstream +
 * where it came from) with a generation number. The control thread builds a
 * new table for every change and hands one reference to each worker
 * (handoff.h); a worker picks from the table it holds. An address that stays
 * in the next table keeps the same struct upstream, so its state and its open
 * connections survive the swap.
 *
 * Invariants:
 * - A table never changes after upstream_table_new() returns.
 * - A table holds one reference on each of its upstreams.
 * - upstream->draining_since_ms != 0 only while the upstream is in no current
 *   table; it is set and cleared by the control thread. */
#ifndef PROXY_UPSTREAM_H
#define PROXY_UPSTREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "tier.h"
#include "zone.h"

#define UPSTREAM_MAX ADDR_SET_MAX /* entries of a table: the one address bound */
#define UPSTREAM_LATENCY_BUCKETS 12
#define UPSTREAM_REASON_MAX 96

/* Bit flags: an address may come from several sources at once. */
enum upstream_source {
    UPSTREAM_SRC_SEED = 1 << 0,
    UPSTREAM_SRC_FILE = 1 << 1,
    UPSTREAM_SRC_DISCOVERED = 1 << 2,
    UPSTREAM_SRC_STATE = 1 << 3,
};
#define UPSTREAM_SRC_BITS 4 /* the flags above are bits 0..3 */

enum upstream_health {
    UPSTREAM_UNKNOWN = 0, /* no check has concluded yet: usable */
    UPSTREAM_HEALTHY,
    UPSTREAM_UNHEALTHY,
    UPSTREAM_HEALTH_COUNT
};

enum upstream_fail {
    UPSTREAM_FAIL_REFUSED = 0,
    UPSTREAM_FAIL_TIMEOUT,
    UPSTREAM_FAIL_UNREACHABLE,
    UPSTREAM_FAIL_OTHER,
    /* This host ran short (EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL:
     * no fd, buffer or ephemeral port): no verdict about the upstream, so
     * neither a passive hold nor a failed health check. */
    UPSTREAM_FAIL_LOCAL,
    UPSTREAM_FAIL_COUNT
};

struct upstream {
    struct addr addr;
    char name[ADDR_STRLEN];
    bool is_local; /* on this host: sockopt_local() on its connections (set by control.c) */
    _Atomic unsigned refs;
    _Atomic int health;                     /* enum upstream_health; control thread writes */
    _Atomic uint64_t passive_down_until_ms; /* dial failed: avoid until then */
    _Atomic uint64_t draining_since_ms;     /* removed from the table at this time */
    /* Unhealthy because its /readyz says "[-]shutdown" (kube-apiserver in
     * its shutdown delay, still serving): it takes no new connections and
     * its open ones drain from this time, like a removed one's, instead of
     * being closed at once. 0 otherwise. Control thread writes. */
    _Atomic uint64_t unready_since_ms;
    _Atomic unsigned active; /* open proxied connections, all workers */
    _Atomic uint64_t conns_total;
    _Atomic uint64_t connect_fail[UPSTREAM_FAIL_COUNT];
    _Atomic uint64_t connect_latency[UPSTREAM_LATENCY_BUCKETS + 1]; /* histogram, +Inf last */
    _Atomic uint64_t connect_latency_sum_us;
    _Atomic uint64_t bytes_to;   /* client -> upstream */
    _Atomic uint64_t bytes_from; /* upstream -> client */
    /* [0] failed, [1] passed, [2] not run to a verdict: a local shortage
     * (upstream_fail_is_local) when the probe's socket or connect failed. */
    _Atomic uint64_t health_checks[3];
    _Atomic uint64_t health_latency_sum_us;
    _Atomic uint64_t closed_by_health; /* connections closed because it failed */
    _Atomic uint64_t closed_by_drain;
    _Atomic uint64_t closed_unacked; /* sent bytes unacknowledged (--upstream-ack-timeout) */
    /* Connections that ended because the upstream reset or failed them,
     * [0] before its first byte (a plaintext client is not replayed
     * elsewhere), [1] after. */
    _Atomic uint64_t failed_conns[2];
    /* Lasting connections it ended while their clients were still there
     * (session.c, note_lost), counted from lost_burst_from_ms for
     * BALANCE_LOST_BURST_MS: a mass failure opens the paced-dial window.
     * Workers write. */
    _Atomic uint64_t lost_burst_from_ms;
    _Atomic unsigned lost_in_burst;
    /* The one ramp of an upstream that came back: when it began
     * (clock_now_ms; 0 = none). Started by upstream_ramp_returned (turned
     * healthy again or joined a table after the first, while another
     * upstream carried the load) and by prefer.c for a move to a nearer
     * tier; control thread writes. The pick weighs it by
     * balance_ramp_weight: over --slow-start with --prefer none, over
     * --prefer-ramp with tiers; --rebalance waits for it. */
    _Atomic uint64_t ramp_from_ms;
    /* The last return, ramped or not (after a full outage none ramps):
     * --rebalance's episode and rank (session.c). 0 = none. */
    _Atomic uint64_t returned_ms;
    _Atomic uint64_t slow_start_passed;   /* new connections the ramp passed it over for */
    _Atomic uint64_t closed_by_rebalance; /* shed by --rebalance */
    /* The last health change: when (wall clock, ms since the epoch; 0: none
     * yet) and why. Written by the control thread under the lock its
     * snapshots take (control.c), read only in those snapshots. */
    uint64_t health_since_unix_ms;
    char health_reason[UPSTREAM_REASON_MAX];
    /* --prefer: round trips (us; 0 = empty slot) of the data path's TCP
     * handshakes and the health checks' connects, the last
     * TIER_RTT_SAMPLES of them (any thread writes a slot,
     * upstream_rtt_sample), and the tier prefer.c derives from them
     * (control thread writes; workers read in upstream_pick). */
    _Atomic uint32_t rtt_us[TIER_RTT_SAMPLES];
    _Atomic unsigned rtt_next;
    _Atomic unsigned tier;
    /* How long it took, the last time, to answer: a passed TLS health
     * check (connect, TLS handshake, request), or the first answer to a proxied
     * client's first bytes (a TLS ServerHello). Milliseconds; 0 = not yet.
     * Any thread writes (upstream_answer_sample); pace_dial reads. */
    _Atomic uint32_t answer_ms;
    /* prefer.c's, control thread only: a tier was set; it came from a
     * measurement (hysteresis holds only such a tier). */
    bool tier_set, tier_measured;
    /* The ramp's, control thread only (upstream_ramp_stopped/_returned):
     * since when it carries load (0: since the first table), and whether
     * it stopped (turned unhealthy or left the table), since stopped_ms. */
    uint64_t carrying_since_ms, stopped_ms;
    bool stopped;
};

struct upstream_entry {
    struct upstream *up; /* one reference held by the table */
    unsigned sources;    /* enum upstream_source bits */
    bool fallback;       /* seed kept only as the last resort */
    /* Its zone and zone hints as discovery publishes them (empty for other
     * sources): in the table, not in struct upstream, because a new table
     * is the only way they change. */
    struct zone_info zone;
};

struct upstream_table {
    _Atomic unsigned refs;
    uint64_t generation;
    size_t n;
    struct upstream_entry e[]; /* sorted by address */
};

/* Upper bounds (seconds) of the connect-latency histogram buckets. */
extern const double upstream_latency_bounds_s[UPSTREAM_LATENCY_BUCKETS];

/* Returns a new upstream (refcount 1) for addr, or NULL on ENOMEM. Any thread;
 * the caller owns the reference. */
struct upstream *upstream_new(const struct addr *addr);

/* Any thread. upstream_unref() frees at zero. */
void upstream_ref(struct upstream *up);
void upstream_unref(struct upstream *up);

/* Is it usable for new connections at now_ms (not unhealthy, not passively
 * down, not draining)? Any thread. */
bool upstream_usable(const struct upstream *up, uint64_t now_ms);

/* Records a connect failure of the data path: counts it and keeps new
 * connections away for hold_ms (not for UPSTREAM_FAIL_LOCAL: this host's
 * shortage says nothing about the upstream). Any thread. */
void upstream_dial_failed(struct upstream *up, enum upstream_fail why, uint64_t now_ms,
                          unsigned hold_ms);

/* A failure of the data path other than a dial (a connection the kernel
 * aborted): keeps new connections away for hold_ms. Any thread. */
void upstream_hold(struct upstream *up, uint64_t now_ms, unsigned hold_ms);

/* Records a connect success and its latency (also a round-trip sample).
 * Any thread. */
void upstream_dial_ok(struct upstream *up, uint64_t latency_us);

/* Records one round trip to up (a TCP handshake), in microseconds; 0 is
 * counted as 1. Any thread. */
void upstream_rtt_sample(struct upstream *up, uint64_t rtt_us);

/* Records how long up took to answer (answer_ms): a passed health check, or
 * the first answer to a proxied client's first bytes. Any thread. */
void upstream_answer_sample(struct upstream *up, uint64_t took_us);

/* The round-trip estimate of up (tier_rtt_estimate() of its samples), in
 * microseconds, or 0 before TIER_MIN_SAMPLES samples. Any thread. */
uint32_t upstream_rtt_us(const struct upstream *up);

/* Returns a new table (refcount 1) holding a reference on each entry's
 * upstream; entries are copied and sorted by address; n <= UPSTREAM_MAX.
 * NULL on ENOMEM. Any thread; the caller owns the result. */
struct upstream_table *upstream_table_new(const struct upstream_entry *e, size_t n,
                                          uint64_t generation);

/* Any thread; the last unref frees the table and drops its references. */
void upstream_table_ref(struct upstream_table *t);
void upstream_table_unref(struct upstream_table *t);

/* Index of addr in t, or -1. */
long upstream_table_find(const struct upstream_table *t, const struct addr *addr);

/* Balancing algorithms. */
enum upstream_balance {
    UPSTREAM_BALANCE_LEAST_CONN = 0,
    UPSTREAM_BALANCE_ROUND_ROBIN,
    UPSTREAM_BALANCE_RANDOM,
};

/* Per-worker balancer state. */
struct upstream_picker {
    enum upstream_balance algo;
    unsigned slow_start_ms; /* --slow-start; 0 (upstream_picker_init's) = off */
    uint64_t rng;           /* xorshift state, never 0 */
    unsigned rr_next;       /* round-robin cursor */
    bool tiers;             /* honour upstream->tier (upstream_picker_prefer) */
    unsigned spill_factor;
    unsigned ramp_ms;
};

/* The set of entries a connection has already tried, by table index. Entries
 * at index >= 64 are not tracked; the caller bounds its tries instead. */
struct upstream_tried {
    uint64_t mask;
    unsigned count;
};

void upstream_picker_init(struct upstream_picker *p, enum upstream_balance algo, uint64_t seed);

/* Makes p try the lowest tier first (--prefer other than none): the lowest
 * tier with a usable primary entry whose entries' mean active connections
 * are at most spill_factor * (the other usable entries' mean + 1)
 * (spill_factor 0: no limit); an entry whose ramp_from_ms is less than
 * ramp_ms ago is taken in that pass only with the probability of its
 * ramp weight from 0 (balance_ramp_weight). Loop thread of the worker
 * owning p. */
void upstream_picker_prefer(struct upstream_picker *p, unsigned spill_factor, unsigned ramp_ms);

/* The next number of p's generator (xorshift64, seeded per worker and
 * process): for draws that must differ between nodes, such as pacing.
 * Loop thread of the worker owning p. */
uint64_t upstream_picker_random(struct upstream_picker *p);

/* Picks the entry for the next connection attempt, skipping tried entries, in
 * three passes: usable primary entries (tier by tier with
 * upstream_picker_prefer), then usable fallback seeds, then any entry
 * ignoring health (health may be wrong under load). Before them, an entry
 * in slow start takes part only with the probability of its weight
 * (upstream_slow_start_weight), unless no other could be picked. Marks the
 * choice tried and returns its index, or -1 when every entry was tried.
 * Loop thread of the worker owning p. */
long upstream_pick(struct upstream_picker *p, const struct upstream_table *t,
                   struct upstream_tried *tried, uint64_t now_ms);

/* The slow-start weight of up at now_ms for a ramp of slow_start_ms
 * (balance_ramp_weight of its ramp_from_ms from BALANCE_WEIGHT_FLOOR):
 * BALANCE_WEIGHT_FULL when it is not ramping. Any thread. */
unsigned upstream_slow_start_weight(const struct upstream *up, unsigned slow_start_ms,
                                    uint64_t now_ms);

/* up stopped carrying load at now_ms: it turned unhealthy or left the
 * table (a later stop while stopped keeps the first). Control thread. */
void upstream_ramp_stopped(struct upstream *up, uint64_t now_ms);

/* The one place that decides whether a ramp starts: up (an entry of t, or
 * about to be) turned healthy again or joined t after the first table, at
 * now_ms. When may_ramp and another primary entry of t, usable now, has
 * carried load since before up stopped (for one never stopped: any usable
 * one), up's ramp begins (ramp_from_ms = now_ms) and true is returned.
 * After a full outage nothing ramps: whoever is back first has carried
 * nothing meanwhile, so those back later do not ramp behind it. With
 * may_ramp (false: discovery's first answer, nothing to protect) its
 * return is also noted for --rebalance (returned_ms). In every case up
 * carries load from now_ms. The caller logs. Control thread. */
bool upstream_ramp_returned(const struct upstream_table *t, struct upstream *up, bool may_ramp,
                            uint64_t now_ms);

/* Begins up's ramp at now_ms unconditionally (prefer.c: a move to a
 * nearer tier, where the old tier carried its load). Control thread. */
void upstream_ramp_begin(struct upstream *up, uint64_t now_ms);

/* The address the watcher dials next (its route), into *out: usable entries
 * other than avoid (NULL: none to avoid) first, then usable ones, then any,
 * rotating among the candidates of the first pass that has one with
 * attempt + now_ms / 1000. Returns 0, or -ENOENT when t is NULL or empty.
 * Pure; any thread holding t. */
int upstream_route(const struct upstream_table *t, unsigned attempt, const struct addr *avoid,
                   uint64_t now_ms, struct addr *out);

/* Number of entries usable now (for /readyz). */
size_t upstream_table_usable(const struct upstream_table *t, uint64_t now_ms);

/* "least-conn", "round-robin", "random" (the --balance values); "?" outside
 * the enum. A static string. */
const char *upstream_balance_name(enum upstream_balance b);

/* "unknown", "healthy", "unhealthy"; "?" outside the enum. A static string. */
const char *upstream_health_name(enum upstream_health h);

/* "refused", "timeout", "unreachable", "other", "local" (the reason labels of
 * the connect-failure metrics); "?" outside the enum. A static string. */
const char *upstream_fail_name(enum upstream_fail why);

/* The name of one source bit: "seed", "file", "discovered", "state"; "?" for
 * anything but a single flag of enum upstream_source. A static string. */
const char *upstream_source_name(unsigned bit);

/* The mean time up's established connections took to connect, in
 * microseconds, into *us; false (and *us untouched) before the first one.
 * Any thread (reads the atomics). */
bool upstream_connect_mean_us(const struct upstream *up, double *us);

/* Whether err (a positive errno from socket(2) or connect(2)) is this
 * host's own shortage rather than anything the upstream did. Any thread. */
bool upstream_fail_is_local(int err);

/* Writes "seed,file" style source names into buf. */
void upstream_sources_format(unsigned sources, char *buf, size_t len);

#endif
