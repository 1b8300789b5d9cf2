/* SPDX-License-Identifier: Apache-2.0 */
/* The state file's writer (--state-file): the learned part of each
 * published table (file and discovered entries), written on libuv's
 * threadpool one write at a time, never under the control lock, sets noted
 * during a write coalesced into the newest. Loop thread unless said. */
#ifndef PROXY_STATESAVE_H
#define PROXY_STATESAVE_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "addr.h"
#include "config.h"
#include "snapshot.h"
#include "upstream.h"

/* Four sets of at most UPSTREAM_MAX addresses each. */
struct statesave {
    const char *path; /* borrowed: the config's; NULL without --state-file */
    uv_loop_t *loop;
    uv_mutex_t *lock;                 /* the control lock: stats */
    struct snapshot_state_file stats; /* under *lock */
    /* written: what the file holds now; queued: what it will hold once the
     * writes are done; next: the newest set not yet handed to the writer;
     * doing: what the writer writes (the pool's while busy). */
    struct addr *written, *queued, *next, *doing;
    size_t n_written, n_queued, n_next, n_doing;
    bool has_next, busy;
    int rc;
    char err[CONFIG_ERR_BYTES];
    uv_work_t work;
};

/* Readies s for path (NULL: no state file, every call does nothing), its
 * stats under lock. Returns 0 or -ENOMEM. */
int statesave_init(struct statesave *s, const char *path, uv_loop_t *loop, uv_mutex_t *lock)
    __attribute__((warn_unused_result));

/* Frees the sets; after the loop closed (no write under way). */
void statesave_fini(struct statesave *s);

/* Reads the file at start into out[0..UPSTREAM_MAX), logging what it found;
 * a missing or bad file reads as empty. Returns the count. */
size_t statesave_load(struct statesave *s, struct addr *out);

/* Notes the learned part of t for the next write when it changed. No I/O:
 * under the control lock (statesave_flush writes once it is released). */
void statesave_note(struct statesave *s, const struct upstream_table *t);

/* Hands the newest noted set to the writer unless a write is under way
 * (its completion comes back here). Without the control lock. */
void statesave_flush(struct statesave *s);

#endif
