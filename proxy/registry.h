/* SPDX-License-Identifier: Apache-2.0 */
/* The upstream registry: which apiservers apilb knows, from which sources,
 * and the table they make. Pure: sources in, a table and the changes out; no
 * libuv, no locks, no I/O, no logging (the caller logs the changes, sets
 * what needs the system, such as upstream->is_local, and publishes the
 * table). The caller serialises every call (control.c holds its lock).
 *
 * The rules (each has a unit test in tests/unit/test_registry.c):
 * - An address comes from one or more sources: the upstreams file and
 *   discovery first, then the state file (only while discovery has given
 *   nothing: it stands in for it after a restart), then the seeds, which
 *   become a fallback (the last resort) once discovery or the state file
 *   has given addresses.
 * - An empty set is never applied while a table exists (the current one is
 *   kept); with none yet, nothing is published.
 * - An upstream that leaves the table drains: draining_since_ms is set, it
 *   takes no new connections, and it stays registered while anything else
 *   (a session, a health checker, a snapshot) holds it. One that comes back
 *   stops draining. One that nothing else holds is pruned.
 * - The registry holds at most REGISTRY_MAX upstreams (table entries and
 *   draining ones); an address that does not fit is refused, counted in the
 *   changes, never dropped silently. */
#ifndef PROXY_REGISTRY_H
#define PROXY_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "upstream.h"
#include "zone.h"

#define REGISTRY_MAX (UPSTREAM_MAX * 2)

enum registry_source {
    REGISTRY_SEEDS = 0,
    REGISTRY_FILE,
    REGISTRY_DISCOVERED,
    REGISTRY_STATE,
    REGISTRY_SOURCE_COUNT
};

/* What a rebuild did. */
enum registry_result {
    REGISTRY_PUBLISHED = 0, /* a new table: registry_table() */
    REGISTRY_UNCHANGED,     /* the sources make the current table again */
    REGISTRY_NONE_YET,      /* no address and no table yet */
    REGISTRY_EMPTY_REFUSED, /* no address: the current table is kept */
    REGISTRY_NO_MEMORY,
};

enum registry_change_kind {
    REGISTRY_ADDED = 0, /* new in the table (also: first registered) */
    REGISTRY_READDED,   /* was draining, back in the table */
    REGISTRY_REMOVED,   /* left the table: draining from now */
};

struct registry_change {
    enum registry_change_kind kind;
    struct upstream *up; /* borrowed: valid until the next registry call */
    bool is_new;         /* first registered by this rebuild (set is_local) */
    unsigned sources;    /* enum upstream_source bits in the new table; 0: removed */
};

/* Why an address was left out of a rebuild. */
enum registry_refusal {
    REGISTRY_TABLE_FULL = 0, /* the table has UPSTREAM_MAX entries already */
    REGISTRY_FULL,           /* REGISTRY_MAX registered (or ENOMEM): draining ones hold it */
};

/* The changes of one rebuild; the arrays are the caller's. */
struct registry_changes {
    struct registry_change *c; /* room for REGISTRY_MAX */
    size_t n;
    size_t refused;            /* addresses left out: registry or table full */
    struct addr first_refused; /* the first of them, for the log line */
    enum registry_refusal first_refused_why;
};

struct registry;

/* Returns a new, empty registry, or NULL on ENOMEM. */
struct registry *registry_new(void);

/* Drops every reference the registry holds (its upstreams and table). */
void registry_free(struct registry *r);

/* Replaces one source's addresses with a[0..n) (copied; duplicates are
 * fine). zones, when not NULL, gives the zone of a[i]; only discovery knows
 * zones, so they are kept for REGISTRY_DISCOVERED alone (a table entry takes
 * its discovered address's zone, others have none). Returns 0, or -E2BIG
 * when n > UPSTREAM_MAX (the source is left as it was: the caller refuses
 * the set with a log line). */
int registry_set(struct registry *r, enum registry_source s, const struct addr *a,
                 const struct zone_info *zones, size_t n) __attribute__((warn_unused_result));

/* Addresses the source holds now. */
size_t registry_source_size(const struct registry *r, enum registry_source s);

/* Builds the table the sources make. On REGISTRY_PUBLISHED the new table
 * (generation one more than the last) is registry_table() and ch lists what
 * changed, removed upstreams marked draining at now_ms (never 0); a change
 * of sources, fallback or zone alone is a new table too. ch->n is 0 on every
 * other result, but ch->refused may count addresses left out. On
 * REGISTRY_NO_MEMORY nothing changed (upstreams it registered are dropped). */
enum registry_result registry_rebuild(struct registry *r, uint64_t now_ms,
                                      struct registry_changes *ch);

/* The current table (borrowed; take a reference to keep it), or NULL. */
struct upstream_table *registry_table(const struct registry *r);

/* Every registered upstream, table entries and draining ones, in the order
 * they were registered; *n receives the count. Borrowed. */
struct upstream *const *registry_upstreams(const struct registry *r, size_t *n);

/* Writes to out[0..max) the upstreams that health checks should follow: those
 * in the table, and draining ones that still carry connections (their
 * connections' fate follows their health). Returns the count. */
size_t registry_checked(const struct registry *r, struct upstream **out, size_t max);

/* Unregisters draining upstreams that nothing else holds (the registry's is
 * their last reference), writing them to out[0..max) with that reference,
 * which the caller drops (upstream_unref) after logging. Returns the count. */
size_t registry_prune(struct registry *r, struct upstream **out, size_t max);

#endif
