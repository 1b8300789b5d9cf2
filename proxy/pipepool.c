/* SPDX-License-Identifier: Apache-2.0 */
/* Pipe pool; see pipepool.h. */
#include "pipepool.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

void pipepool_init(struct pipepool *p)
{
    p->n = 0;
    p->created = 0;
}

int pipepool_get(struct pipepool *p, int fds[2])
{
    if (p->n > 0) {
        p->n--;
        fds[0] = p->fds[p->n][0];
        fds[1] = p->fds[p->n][1];
        return 0;
    }
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
        return -errno;
    (void)fcntl(fds[1], F_SETPIPE_SZ, (int)PIPEPOOL_PIPE_BYTES);
    p->created++;
    return 0;
}

void pipepool_put(struct pipepool *p, int fds[2], int is_empty)
{
    if (fds[0] < 0)
        return;
    if (is_empty && p->n < PIPEPOOL_KEEP) {
        p->fds[p->n][0] = fds[0];
        p->fds[p->n][1] = fds[1];
        p->n++;
    } else {
        close(fds[0]);
        close(fds[1]);
        p->created--;
    }
    fds[0] = -1;
    fds[1] = -1;
}

void pipepool_destroy(struct pipepool *p)
{
    while (p->n > 0) {
        p->n--;
        close(p->fds[p->n][0]);
        close(p->fds[p->n][1]);
        p->created--;
    }
}
