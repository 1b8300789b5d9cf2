/* SPDX-License-Identifier: Apache-2.0 */
/* A per-worker pool of non-blocking pipes for splice(2). A session borrows a
 * pipe only while bytes are in flight in one direction and returns it empty,
 * so idle connections hold no pipe (and no file descriptors beyond their two
 * sockets). Loop thread of the owning worker only. */
#ifndef PROXY_PIPEPOOL_H
#define PROXY_PIPEPOOL_H

#include <stddef.h>

#define PIPEPOOL_KEEP 64

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
