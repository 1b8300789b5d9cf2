/* SPDX-License-Identifier: Apache-2.0 */
#include "filewatch.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define WATCH_MASK                                                                                 \
    (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CLOSE_WRITE | IN_MODIFY |            \
     IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

static void stamp(const char *path, struct filewatch_stamp *s)
{
    struct stat st;

    memset(s, 0, sizeof(*s));
    if (stat(path, &st) != 0)
        return;
    s->exists = true;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->size = st.st_size;
    s->mtime = st.st_mtim;
}

static bool same_stamp(const struct filewatch_stamp *a, const struct filewatch_stamp *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* Watches the directory that holds path (a copy is cut at its last '/'). */
static void watch_dir_of(struct filewatch *fw, const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int wd;

    if (fw->n_wds == sizeof(fw->wds) / sizeof(fw->wds[0]))
        return;
    if (slash == NULL) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t len = (size_t)(slash - path);

        if (len >= sizeof(dir))
            return;
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    wd = inotify_add_watch(fw->fd, dir, WATCH_MASK);
    if (wd < 0)
        return; /* the stat fallback still sees changes */
    for (size_t i = 0; i < fw->n_wds; i++) {
        if (fw->wds[i] == wd)
            return; /* the same directory twice */
    }
    fw->wds[fw->n_wds++] = wd;
}

/* (Re)builds the watches: each path's directory and its target's directory,
 * which moves with every `..data` swap. */
static void rewatch(struct filewatch *fw)
{
    char real[PATH_MAX];

    if (fw->fd < 0)
        return;
    for (size_t i = 0; i < fw->n_wds; i++)
        inotify_rm_watch(fw->fd, fw->wds[i]);
    fw->n_wds = 0;
    for (size_t i = 0; i < fw->n; i++) {
        watch_dir_of(fw, fw->paths[i]);
        if (realpath(fw->paths[i], real) != NULL && strcmp(real, fw->paths[i]) != 0)
            watch_dir_of(fw, real);
    }
}

void filewatch_init(struct filewatch *fw)
{
    memset(fw, 0, sizeof(*fw));
    fw->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
}

int filewatch_add(struct filewatch *fw, const char *path)
{
    if (path == NULL)
        return 0;
    if (fw->n == FILEWATCH_MAX)
        return -ENOSPC;
    fw->paths[fw->n] = strdup(path);
    if (fw->paths[fw->n] == NULL)
        return -ENOMEM;
    stamp(path, &fw->stamps[fw->n]);
    fw->n++;
    rewatch(fw);
    return 0;
}

/* Drains the inotify queue. True when anything happened (or it overflowed). */
static bool drain(struct filewatch *fw)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;
    ssize_t n;

    if (fw->fd < 0)
        return false;
    while ((n = read(fw->fd, buf, sizeof(buf))) > 0)
        any = true;
    return any;
}

bool filewatch_changed(struct filewatch *fw, uint64_t now_ms)
{
    bool changed = false;

    if (drain(fw))
        fw->dirty = true;
    if (!fw->dirty && now_ms - fw->last_poll_ms < FILEWATCH_POLL_MS)
        return false;
    fw->last_poll_ms = now_ms;
    fw->dirty = false;
    for (size_t i = 0; i < fw->n; i++) {
        struct filewatch_stamp now;

        stamp(fw->paths[i], &now);
        if (!now.exists) {
            /* Mid-swap: wait for the new file, and stay dirty meanwhile so
             * its arrival is seen at once. */
            fw->dirty = true;
            continue;
        }
        if (!fw->stamps[i].exists || !same_stamp(&now, &fw->stamps[i])) {
            fw->stamps[i] = now;
            changed = true;
        }
    }
    if (changed)
        rewatch(fw);
    return changed;
}

bool filewatch_notifies(const struct filewatch *fw)
{
    return fw->fd >= 0 && fw->n_wds > 0;
}

void filewatch_free(struct filewatch *fw)
{
    if (fw->fd >= 0)
        close(fw->fd);
    for (size_t i = 0; i < fw->n; i++)
        free(fw->paths[i]);
    memset(fw, 0, sizeof(*fw));
    fw->fd = -1;
}
