/* SPDX-License-Identifier: Apache-2.0 */
/* A per-worker pool of the buffers a flow holds while dst has not taken its
 * bytes: a queued send (sendq.h) or a send that found no room. Why: under
 * load that is nearly every message, and a malloc(3)/free(3) of 16 KiB each
 * made glibc trim the heap over and over, each trim interrupting the other
 * CPUs to flush their TLBs (docs/performance.md#buffer-pool). Buffers come
 * back here and are reused; at most BUFPOOL_KEEP are kept, so an idle worker holds
 * at most that many after a burst. Loop thread of the owning worker only. */
#ifndef PROXY_BUFPOOL_H
#define PROXY_BUFPOOL_H

#include <stddef.h>

/* Buffers kept for reuse per worker: as many as one flush makes sends
 * (SENDQ_MAX); of 16 KiB, at most 2 MiB per worker. */
#define BUFPOOL_KEEP 128u

struct bufpool {
    size_t bytes; /* of each buffer */
    void *spare[BUFPOOL_KEEP];
    unsigned n;
};

/* An empty pool of buffers of bytes each. */
void bufpool_init(struct bufpool *p, size_t bytes);

/* A buffer of p->bytes (contents undefined), or NULL on ENOMEM. */
void *bufpool_get(struct bufpool *p);

/* Takes buf back (NULL is ignored): kept for reuse, or freed when the pool
 * is full. */
void bufpool_put(struct bufpool *p, void *buf);

/* Frees the kept buffers. */
void bufpool_destroy(struct bufpool *p);

#endif
