/* SPDX-License-Identifier: Apache-2.0 */
/* A per-worker pool of non-blocking pipes for splice(2). A session borrows a
 * pipe only while bytes are in flight in one direction and returns it empty,
 * so idle connections hold no pipe (and no file descriptors beyond their two
 * sockets). Loop thread of the owning worker only. */
#ifndef PROXY_PIPEPOOL_H
#define PROXY_PIPEPOOL_H

#include <stddef.h>

/* Pipes kept for reuse per worker. */
#define PIPEPOOL_KEEP 16

/* A pipe's capacity. Why: 512 KiB moves a loopback TCP receive queue in one
 * splice, where the default 64 KiB takes several (docs/performance.md#pipe-size,
 * half the CPU per GB). Pages are referenced only while bytes are in flight;
 * an empty pipe holds none. The pipes of an unprivileged user count against
 * fs.pipe-user-pages-soft (16384 pages): 2 workers x 16 pooled pipes x 128
 * pages is a quarter of it. When the size cannot be set, the pipe keeps the
 * default and still works. */
#define PIPEPOOL_PIPE_BYTES (512u * 1024u)

struct pipepool {
    int fds[PIPEPOOL_KEEP][2];
    size_t n;
    size_t created; /* pipes open now, in the pool or borrowed */
};

void pipepool_init(struct pipepool *p);

/* Fills fds[0] (read end) and fds[1] (write end) with an empty pipe. Returns
 * 0, or a negative errno (e.g. -EMFILE) when no pipe can be made. */
int pipepool_get(struct pipepool *p, int fds[2]) __attribute__((warn_unused_result));

/* Returns a pipe. is_empty false means it may hold bytes: it is closed rather
 * than reused. fds are set to -1. */
void pipepool_put(struct pipepool *p, int fds[2], int is_empty);

/* Closes every pooled pipe. */
void pipepool_destroy(struct pipepool *p);

#endif
