/* SPDX-License-Identifier: Apache-2.0 */
/* The state file's writer; see statesave.h. */
#define LOG_MODULE "control"
#include "statesave.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "statefile.h"

int statesave_init(struct statesave *s, const char *path, uv_loop_t *loop, uv_mutex_t *lock)
{
    memset(s, 0, sizeof(*s));
    s->path = path;
    s->loop = loop;
    s->lock = lock;
    s->stats.enabled = path != NULL;
    s->stats.last_ok = true;
    if (path == NULL)
        return 0;
    s->written = calloc((size_t)UPSTREAM_MAX * 4, sizeof(struct addr));
    if (s->written == NULL)
        return -ENOMEM;
    s->queued = s->written + UPSTREAM_MAX;
    s->next = s->queued + UPSTREAM_MAX;
    s->doing = s->next + UPSTREAM_MAX;
    return 0;
}

void statesave_fini(struct statesave *s)
{
    free(s->written);
    s->written = s->queued = s->next = s->doing = NULL;
}

size_t statesave_load(struct statesave *s, struct addr *out)
{
    char err[CONFIG_ERR_BYTES];
    int n;

    if (s->path == NULL)
        return 0;
    n = statefile_read(s->path, out, UPSTREAM_MAX, err, sizeof(err));
    if (n == -ENOENT) {
        log_info("no state file yet", "file=\"%s\"", s->path);
        return 0;
    }
    if (n < 0) {
        log_warn("state file ignored", "file=\"%s\" err=\"%s\"", log_quote(s->path),
                 log_quote(err));
        return 0;
    }
    memcpy(s->written, out, (size_t)n * sizeof(*out));
    memcpy(s->queued, out, (size_t)n * sizeof(*out));
    s->n_written = s->n_queued = (size_t)n;
    log_info("state file loaded", "file=\"%s\" upstreams=%d", s->path, n);
    return (size_t)n;
}

void statesave_note(struct statesave *s, const struct upstream_table *t)
{
    bool same;

    if (s->path == NULL)
        return;
    s->n_next = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].sources & (UPSTREAM_SRC_FILE | UPSTREAM_SRC_DISCOVERED))
            s->next[s->n_next++] = t->e[i].up->addr;
    same = s->n_next == s->n_queued;
    for (size_t i = 0; same && i < s->n_next; i++)
        same = addr_cmp(&s->next[i], &s->queued[i]) == 0;
    s->has_next = s->n_next > 0 && !same;
    if (s->has_next) {
        memcpy(s->queued, s->next, s->n_next * sizeof(*s->next));
        s->n_queued = s->n_next;
    }
}

/* uv_work_cb: a thread of libuv's pool; touches only doing, rc and err,
 * which the loop leaves alone while busy. */
static void write_cb(uv_work_t *w)
{
    struct statesave *s = w->data;

    s->rc = statefile_write(s->path, s->doing, s->n_doing, s->err, sizeof(s->err));
}

/* A write that did not happen: said, and the next change tries again
 * (unless a newer set waits already). */
static void write_failed(struct statesave *s, const char *why)
{
    uv_mutex_lock(s->lock);
    s->stats.last_ok = false;
    s->stats.failures++;
    uv_mutex_unlock(s->lock);
    log_warn_limited("state-write", 10000, "state file not written", "file=\"%s\" err=\"%s\"",
                     log_quote(s->path), log_quote(why));
    if (!s->has_next) {
        memcpy(s->queued, s->written, s->n_written * sizeof(*s->written));
        s->n_queued = s->n_written;
    }
}

/* uv_after_work_cb: the loop learns how the write went. */
static void written_cb(uv_work_t *w, int status)
{
    struct statesave *s = w->data;

    s->busy = false;
    if (status != 0 || s->rc != 0) {
        write_failed(s, status != 0 ? uv_strerror(status) : s->err);
        statesave_flush(s);
        return;
    }
    memcpy(s->written, s->doing, s->n_doing * sizeof(*s->doing));
    s->n_written = s->n_doing;
    uv_mutex_lock(s->lock);
    s->stats.last_ok = true;
    s->stats.writes++;
    s->stats.last_write_unix_ms = clock_wall_ms();
    uv_mutex_unlock(s->lock);
    log_info("state file written", "file=\"%s\" upstreams=%zu", s->path, s->n_written);
    statesave_flush(s);
}

void statesave_flush(struct statesave *s)
{
    int rc;

    if (!s->has_next || s->busy)
        return;
    memcpy(s->doing, s->next, s->n_next * sizeof(*s->next));
    s->n_doing = s->n_next;
    s->has_next = false;
    s->work.data = s;
    rc = uv_queue_work(s->loop, &s->work, write_cb, written_cb);
    if (rc != 0) {
        write_failed(s, uv_strerror(rc));
        return;
    }
    s->busy = true;
}
