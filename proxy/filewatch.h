/* SPDX-License-Identifier: Apache-2.0 */
/* Notices that files were replaced or rewritten: credential files (a projected
 * token swapped through its `..data` symlink, kubelet's
 * kubelet-client-current.pem symlink replaced, a CA bundle rewritten in place)
 * and the kubeconfig itself.
 *
 * inotify watches the directory holding each path and the directory of the
 * file it resolves to (a symlink swap renames an entry in the first, an
 * in-place rewrite closes the second), so a change is seen without polling;
 * filewatch_changed() then confirms it by comparing each file's inode, size
 * and mtime with what it saw last. Without inotify (limits, seccomp) the
 * same stat comparison runs at most every FILEWATCH_POLL_MS instead.
 *
 * A file that is missing for a moment (between the unlink and the rename of
 * a swap) is not a change: the change is reported once the new file exists.
 *
 * Not thread-safe: one owner thread per struct filewatch. */
#ifndef PROXY_FILEWATCH_H
#define PROXY_FILEWATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define FILEWATCH_MAX 8
#define FILEWATCH_POLL_MS 10000u

struct filewatch_stamp {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct filewatch {
    int fd; /* inotify, or -1 (stat polling only) */
    size_t n;
    char *paths[FILEWATCH_MAX];
    struct filewatch_stamp stamps[FILEWATCH_MAX];
    int wds[2 * FILEWATCH_MAX];
    size_t n_wds;
    bool dirty; /* inotify said something moved */
    uint64_t last_poll_ms;
};

void filewatch_init(struct filewatch *fw);

/* Starts following path (copied; NULL is ignored) and records it as it is now.
 * Returns 0, or -ENOSPC when FILEWATCH_MAX paths are followed, -ENOMEM. */
int filewatch_add(struct filewatch *fw, const char *path);

/* Non-blocking. True when a followed file now differs from what the last
 * call saw (and exists); the new state becomes the reference. now_ms is a
 * monotonic clock in milliseconds (for the polling fallback). */
bool filewatch_changed(struct filewatch *fw, uint64_t now_ms);

/* True when inotify is in use (for the log line at start). */
bool filewatch_notifies(const struct filewatch *fw);

void filewatch_free(struct filewatch *fw);

#endif
