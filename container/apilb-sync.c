/* SPDX-License-Identifier: Apache-2.0 */
/* apilb-sync: keeps copies of files current, atomically. The Helm chart's
 * DaemonSet runs it to install the static-pod manifest on each node and to
 * hand the static pod the rotating service-account token and CA:
 *
 *     apilb-sync --interval=60s --owner=70443 SRC=DST [SRC=DST ...]
 *     apilb-sync --once --owner=70443 --dir=/var/lib/apilb
 *
 * Each --dir is created if missing (mode 0700) and handed to --owner with
 * mode 0700: a hostPath the kubelet created belongs to root, and apilb, which
 * runs as --owner, must write its state file there (the chart runs this as
 * an init container).
 * Every interval, each SRC that differs from its DST is written to a new
 * temporary file beside DST with an unpredictable name (owned by --owner,
 * mode 0640; a file under a "manifests" directory keeps 0644), synced and
 * renamed over DST. A missing
 * SRC is reported and retried. SIGTERM/SIGINT end it with status 0. With
 * --once it makes one pass and exits 0, or 1 if anything failed. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomicfile.h"

#define MAX_BYTES (1u << 20)
#define MAX_PAIRS 16
#define MAX_DIRS 8

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf;
    ssize_t r;

    *len = 0;
    if (fd == -1)
        return NULL;
    buf = malloc(MAX_BYTES + 1);
    while (buf != NULL && *len <= MAX_BYTES && (r = read(fd, buf + *len, MAX_BYTES + 1 - *len)) > 0)
        *len += (size_t)r;
    close(fd);
    if (buf != NULL && *len > MAX_BYTES) {
        free(buf);
        errno = EFBIG;
        return NULL;
    }
    return buf;
}

/* Returns 1 when dst was rewritten, 0 when it was current, -1 on error. The
 * temporary file is one this call created (atomicfile.h: O_EXCL|O_NOFOLLOW,
 * an unpredictable name), so the fchown to --owner can only reach it, never
 * a file that a link planted in dst's directory points to. */
static int sync_one(const char *src, const char *dst, long owner)
{
    size_t n, m;
    char *a = slurp(src, &n), *b;
    struct atomicfile f;
    const char *step = "write";
    int rc;
    mode_t mode = strstr(dst, "manifests/") != NULL ? 0644 : 0640;

    if (a == NULL) {
        fprintf(stderr, "apilb-sync: %s: %s\n", src, strerror(errno));
        return -1;
    }
    b = slurp(dst, &m);
    if (b != NULL && m == n && memcmp(a, b, n) == 0) {
        free(a);
        free(b);
        return 0;
    }
    free(b);
    rc = atomicfile_open(&f, dst, mode);
    if (rc != 0) {
        fprintf(stderr, "apilb-sync: %s: cannot create a temporary file beside it: %s\n", dst,
                strerror(-rc));
        free(a);
        return -1;
    }
    rc = atomicfile_write_all(f.fd, a, n);
    free(a);
    if (rc == 0 && fchmod(f.fd, mode) == -1) {
        step = "chmod";
        rc = -errno;
    }
    if (rc == 0 && owner >= 0 && fchown(f.fd, (uid_t)owner, (gid_t)owner) == -1) {
        step = "chown";
        rc = -errno;
    }
    if (rc != 0)
        atomicfile_abort(&f);
    else
        rc = atomicfile_commit(&f, &step);
    if (rc != 0) {
        fprintf(stderr, "apilb-sync: %s: cannot %s: %s\n", dst, step, strerror(-rc));
        return -1;
    }
    return 1;
}

/* Makes dir exist as a directory owned by owner (if >= 0), mode 0700.
 * Returns 0, or -1 after printing why. */
static int own_dir(const char *dir, long owner)
{
    struct stat st;

    if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
        fprintf(stderr, "apilb-sync: mkdir %s: %s\n", dir, strerror(errno));
        return -1;
    }
    /* lstat: a symlink planted at the path must not redirect the chown. */
    if (lstat(dir, &st) == -1) {
        fprintf(stderr, "apilb-sync: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "apilb-sync: %s: not a directory\n", dir);
        return -1;
    }
    if (owner >= 0 && (st.st_uid != (uid_t)owner || st.st_gid != (gid_t)owner) &&
        chown(dir, (uid_t)owner, (gid_t)owner) == -1) {
        fprintf(stderr, "apilb-sync: chown %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if ((st.st_mode & 07777) != 0700 && chmod(dir, 0700) == -1) {
        fprintf(stderr, "apilb-sync: chmod %s: %s\n", dir, strerror(errno));
        return -1;
    }
    return 0;
}

static long parse_seconds(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (end == s || v <= 0)
        return -1;
    if (strcmp(end, "s") == 0 || *end == '\0')
        return v;
    if (strcmp(end, "m") == 0)
        return v * 60;
    return -1;
}

int main(int argc, char **argv)
{
    const char *src[MAX_PAIRS], *dst[MAX_PAIRS], *dirs[MAX_DIRS];
    long interval = 60, owner = -1;
    int n = 0, n_dirs = 0;
    bool once = false;

    for (int i = 1; i < argc; i++) {
        char *eq;

        if (strncmp(argv[i], "--interval=", 11) == 0) {
            if ((interval = parse_seconds(argv[i] + 11)) < 0) {
                fprintf(stderr, "apilb-sync: %s: must be like 30s or 1m\n", argv[i]);
                return 1;
            }
        } else if (strncmp(argv[i], "--owner=", 8) == 0) {
            char *end;

            owner = strtol(argv[i] + 8, &end, 10);
            if (end == argv[i] + 8 || *end != '\0' || owner < 0 || owner > 2147483647L) {
                fprintf(stderr, "apilb-sync: %s: must be a numeric uid\n", argv[i]);
                return 1;
            }
        } else if (strcmp(argv[i], "--once") == 0) {
            once = true;
        } else if (strncmp(argv[i], "--dir=", 6) == 0 && argv[i][6] == '/' && n_dirs < MAX_DIRS) {
            dirs[n_dirs++] = argv[i] + 6;
        } else if ((eq = strchr(argv[i], '=')) != NULL && argv[i][0] != '-' && n < MAX_PAIRS) {
            *eq = '\0';
            src[n] = argv[i];
            dst[n] = eq + 1;
            n++;
        } else {
            fprintf(stderr, "usage: apilb-sync [--once] [--interval=60s] [--owner=UID] "
                            "[--dir=/ABS/PATH]... [SRC=DST]...\n");
            return 1;
        }
    }
    if (n == 0 && n_dirs == 0) {
        fprintf(stderr, "apilb-sync: nothing to do (give SRC=DST or --dir=PATH)\n");
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!stop) {
        int failed = 0;

        for (int i = 0; i < n_dirs; i++)
            failed |= own_dir(dirs[i], owner) != 0;
        for (int i = 0; i < n; i++) {
            int rc = sync_one(src[i], dst[i], owner);

            if (rc == 1)
                printf("apilb-sync: %s updated from %s\n", dst[i], src[i]);
            failed |= rc < 0;
        }
        fflush(stdout);
        if (once)
            return failed ? 1 : 0;
        for (long s = 0; s < interval && !stop; s++)
            sleep(1);
    }
    return 0;
}
