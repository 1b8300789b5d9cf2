/* SPDX-License-Identifier: Apache-2.0 */
/* The upstream table on the control loop: the registry (registry.h, pure)
 * driven under the control lock. A source that changes is handed to the
 * registry, the table rebuilt, its changes logged (reglog.h), a new table
 * published to every started worker and noted for the state file
 * (statesave.h); removed upstreams that have drained are pruned and the
 * health checks told which upstreams to follow. Control loop unless said. */
#ifndef PROXY_CTLTABLE_H
#define PROXY_CTLTABLE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "addr.h"
#include "cfgsource.h"
#include "config.h"
#include "healthlink.h"
#include "registry.h"
#include "statesave.h"
#include "worker.h"
#include "zone.h"

/* The pointers are borrowed from the control, which outlives the table. */
struct ctltable {
    const struct config *cfg;
    uv_mutex_t *lock;     /* the control lock: reg and swaps */
    struct registry *reg; /* owned: the sources, the table, the upstreams */
    uint64_t swaps;       /* tables published */
    struct worker *const *workers;
    const _Atomic unsigned *n_started; /* workers that get each table */
    struct statesave *state;
    struct healthlink *health;
    struct registry_change changes[REGISTRY_MAX]; /* of the last rebuild */
    struct upstream *checked[REGISTRY_MAX];       /* of the last prune */
    struct upstream *pruned[REGISTRY_MAX];
};

/* Readies t with a new registry. Returns 0 or -ENOMEM. */
int ctltable_init(struct ctltable *t) __attribute__((warn_unused_result));

/* Frees the registry (the workers have stopped). */
void ctltable_fini(struct ctltable *t);

/* At start, before any thread: the seeds (a name that does not resolve is
 * logged) and the upstreams file f (one that does not is an error). Nothing
 * is built yet. Returns 0, or a negative errno with one line in err. */
int ctltable_load(struct ctltable *t, struct cfgsource *f, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* At start: the state file's last set, which stands in for discovery until
 * it answers (a missing or bad file is logged and reads as empty). */
void ctltable_load_state(struct ctltable *t);

/* Replaces source s with a[0..n) (zones of a[i], or NULL), rebuilds the
 * table for reason, writes the state file if it changed and prunes. */
void ctltable_set(struct ctltable *t, enum registry_source s, const struct addr *a,
                  const struct zone_info *zones, size_t n, const char *reason);

/* Rebuilds the table for reason (the sources as they are). */
void ctltable_rebuild(struct ctltable *t, const char *reason);

/* Prunes drained upstreams and syncs the health checks (each tick). */
void ctltable_prune(struct ctltable *t);

/* The table now (borrowed: the loop's; other threads hold the lock). */
struct upstream_table *ctltable_current(const struct ctltable *t);

/* up came back for reason ("healthy-again", "added", "readded"): starts its
 * ramp when another upstream of the current table carried the load
 * meanwhile (upstream_ramp_returned; may_ramp false records only that it
 * carries load again) and logs the ramp in the --prefer mode's terms, or
 * that none started. Control loop (with or without the lock). */
void ctltable_returned(struct ctltable *t, struct upstream *up, bool may_ramp, const char *reason);

/* cfgsource_apply_fn for arg, a struct ctltable: the file's new set. */
void ctltable_file_cb(void *arg, const struct addr *a, size_t n, const char *why);

/* discovery_sink.addrs for arg, a struct ctltable: the discovered set. */
void ctltable_discovered_cb(void *arg, const struct addr *a, const struct zone_info *z, size_t n);

/* watcher_route_fn for arg, a struct ctltable: the address the watcher
 * dials next, from the current table (upstream_route). Watcher thread. */
int ctltable_route_cb(void *arg, unsigned attempt, const struct addr *avoid, struct addr *out);

#endif
