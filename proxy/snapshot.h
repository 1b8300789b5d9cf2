/* SPDX-License-Identifier: Apache-2.0 */
/* A consistent copy of what the admin endpoint shows: the upstream registry
 * (current table entries and draining upstreams) with a reference on each
 * upstream, and the process-wide counters. Built by the control thread's
 * snapshot function under its lock; read by the admin thread; released with
 * snapshot_release(). The upstream counters are atomics and are read live. */
#ifndef PROXY_SNAPSHOT_H
#define PROXY_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session.h"
#include "upstream.h"
#include "watchstats.h"

/* Reads a live counter of a snapshot (an atomic of struct upstream or
 * struct worker_shared): relaxed, as each counter stands alone. */
#define SNAPSHOT_LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

struct worker_shared;

struct snapshot_upstream {
    struct upstream *up; /* one reference, dropped by snapshot_release() */
    unsigned sources;    /* enum upstream_source bits; 0 when draining */
    bool fallback;
    bool in_table;                 /* false: removed, draining */
    uint64_t health_since_unix_ms; /* copied under the lock: see struct upstream */
    char health_reason[UPSTREAM_REASON_MAX];
    struct zone_info zone; /* the table entry's; empty when draining */
    const char *zone_from; /* "cluster", "flag" (--upstream-zone) or "" */
};

/* The watcher's counters as the proxy reports them (filled when discovery
 * runs). */
struct snapshot_watcher {
    bool enabled;
    struct watcher_stats stats;
};

/* The state file's writes (filled when --state-file is set). */
struct snapshot_state_file {
    bool enabled;
    bool last_ok; /* the last write succeeded, or none was needed yet */
    uint64_t writes, failures;
    uint64_t last_write_unix_ms; /* of the last successful write; 0: none yet */
};

struct snapshot {
    uint64_t generation;  /* of the current table */
    uint64_t table_swaps; /* tables published since start */
    uint64_t start_unix_ms;
    size_t n;
    struct snapshot_upstream *u;    /* sorted by address */
    const struct worker_shared *sh; /* live process-wide counters */
    unsigned workers;
    int health_check; /* enum config_health */
    struct snapshot_watcher watcher;
    struct snapshot_state_file state_file;
};

/* Fills *out; returns 0 or -ENOMEM. Any thread. */
typedef int (*snapshot_fn)(void *arg, struct snapshot *out);

/* GET /connections: the open sessions offset..offset+max of every worker
 * (their lists one after the other) into out[0..max). *n receives how many
 * were written, *total how many there are, *partial whether a worker did not
 * answer in time. Returns 0 or -ENOMEM. Any thread but a worker's. */
typedef int (*connections_fn)(void *arg, size_t offset, struct session_info *out, size_t max,
                              size_t *n, size_t *total, bool *partial);

/* Drops the references and frees the array. */
void snapshot_release(struct snapshot *s);

/* Upstreams usable for new connections now (what /readyz reports). */
size_t snapshot_usable(const struct snapshot *s, uint64_t now_ms);

#endif
