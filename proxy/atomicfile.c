/* SPDX-License-Identifier: Apache-2.0 */
/* See atomicfile.h. */
#include "atomicfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "rand.h"

/* Tries with new random names this often when one exists already (someone
 * else's temporary file, or a planted entry). */
#define NAME_TRIES 16

/* 64 unpredictable bits. getrandom(2) does not fail on a booted system;
 * should it (no entropy yet at early boot), time and pid still make the name
 * unlikely to collide, and O_EXCL keeps a collision harmless. */
static uint64_t random_bits(void)
{
    uint64_t v;
    struct timespec ts;

    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
        return v;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return rand_mix64(rand_mix64((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
                      (uint64_t)getpid());
}

int atomicfile_open(struct atomicfile *f, const char *path, mode_t mode)
{
    const char *slash = strrchr(path, '/'), *name = slash != NULL ? slash + 1 : path;
    char dir[PATH_MAX];
    size_t dir_len;
    int rc = -EEXIST;

    f->dir_fd = -1;
    f->fd = -1;
    f->tmp[0] = '\0';
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else {
        dir_len = slash == path ? 1 : (size_t)(slash - path);
        if (dir_len >= sizeof(dir))
            return -ENAMETOOLONG;
        memcpy(dir, path, dir_len);
        dir[dir_len] = '\0';
    }
    if (name[0] == '\0')
        return -EISDIR;
    /* The name, with room for ".tmp." and 16 digits. */
    if (strlen(name) + 21 > NAME_MAX)
        return -ENAMETOOLONG;
    snprintf(f->base, sizeof(f->base), "%s", name);
    f->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->dir_fd == -1)
        return -errno;
    for (int i = 0; i < NAME_TRIES && rc == -EEXIST; i++) {
        if ((size_t)snprintf(f->tmp, sizeof(f->tmp), "%s.tmp.%016llx", f->base,
                             (unsigned long long)random_bits()) >= sizeof(f->tmp)) {
            rc = -ENAMETOOLONG; /* not reached: the length was checked */
            break;
        }
        f->fd =
            openat(f->dir_fd, f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        rc = f->fd == -1 ? -errno : 0;
    }
    if (rc != 0) {
        close(f->dir_fd);
        f->dir_fd = -1;
        f->tmp[0] = '\0';
    }
    return rc;
}

int atomicfile_commit(struct atomicfile *f, const char **step)
{
    int rc = 0;

    *step = "sync";
    if (fsync(f->fd) == -1)
        rc = -errno;
    if (close(f->fd) == -1 && rc == 0) {
        *step = "close";
        rc = -errno;
    }
    f->fd = -1;
    if (rc == 0 && renameat(f->dir_fd, f->tmp, f->dir_fd, f->base) == -1) {
        *step = "rename";
        rc = -errno;
    }
    if (rc != 0) {
        (void)unlinkat(f->dir_fd, f->tmp, 0);
    } else if (fsync(f->dir_fd) == -1) {
        *step = "sync the directory";
        rc = -errno;
    }
    close(f->dir_fd);
    f->dir_fd = -1;
    return rc;
}

void atomicfile_abort(struct atomicfile *f)
{
    if (f->fd != -1)
        close(f->fd);
    f->fd = -1;
    if (f->dir_fd != -1) {
        (void)unlinkat(f->dir_fd, f->tmp, 0);
        close(f->dir_fd);
    }
    f->dir_fd = -1;
}

int atomicfile_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t w = write(fd, p, len);

        if (w == -1) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}
