/* SPDX-License-Identifier: Apache-2.0 */
/* Replacing a file atomically: a new temporary file beside it, written,
 * synced and renamed over it, then the directory synced. The temporary name
 * is unpredictable ("<name>.tmp.<16 random hex digits>") and created with
 * O_CREAT|O_EXCL|O_NOFOLLOW through a descriptor of the directory, so a link
 * planted in the directory is never followed and two writers (two pods that
 * are both PID 1) never share a file. Used by the state file and apilb-sync;
 * no libuv, any thread (one struct atomicfile per writer). */
#ifndef PROXY_ATOMICFILE_H
#define PROXY_ATOMICFILE_H

#include <limits.h>
#include <sys/types.h>

struct atomicfile {
    int dir_fd;              /* the directory of the target, or -1 */
    int fd;                  /* the temporary file, open for writing, or -1 */
    char base[NAME_MAX + 1]; /* the target's name in that directory */
    char tmp[NAME_MAX + 1];  /* the temporary file's name there */
};

/* Creates the temporary file for replacing path with mode (before the
 * umask). Returns 0 (then f->fd is for writing and the caller ends with
 * atomicfile_commit or atomicfile_abort), or a negative errno with nothing
 * left open or created: -ENAMETOOLONG, or that of opening the directory or
 * creating the file. path is borrowed. */
int atomicfile_open(struct atomicfile *f, const char *path, mode_t mode)
    __attribute__((warn_unused_result));

/* Syncs and closes the temporary file, renames it over the target and syncs
 * the directory. Returns 0, or a negative errno; *step names the step that
 * failed ("write"... "sync the directory"). Before the rename, a failure
 * removes the temporary file. Closes everything either way. */
int atomicfile_commit(struct atomicfile *f, const char **step) __attribute__((warn_unused_result));

/* Closes and removes the temporary file (after a failed write). */
void atomicfile_abort(struct atomicfile *f);

/* Writes buf[0..len) to fd, retrying short writes and EINTR. Returns 0 or
 * a negative errno. */
int atomicfile_write_all(int fd, const void *buf, size_t len) __attribute__((warn_unused_result));

#endif
