/* SPDX-License-Identifier: Apache-2.0 */
/* apilb-sync: keeps copies of files current, atomically. The Helm chart's
 * DaemonSet runs it to install the static-pod manifest on each node and to
 * hand the static pod the rotating service-account token and CA:
 *
 *     apilb-sync --interval=60s --owner=65532 SRC=DST [SRC=DST ...]
 *
 * Every interval, each SRC that differs from its DST is written to a
 * temporary file beside DST (owned by --owner, mode 0640; a file under a
 * "manifests" directory keeps 0644), synced and renamed over DST. A missing
 * SRC is reported and retried. SIGTERM/SIGINT end it with status 0. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_BYTES (1u << 20)
#define MAX_PAIRS 16

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

/* Returns 1 when dst was rewritten, 0 when it was current, -1 on error. */
static int sync_one(const char *src, const char *dst, long owner)
{
    size_t n, m;
    char *a = slurp(src, &n), *b, tmp[4096];
    int fd, rc = -1;
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
    snprintf(tmp, sizeof(tmp), "%s.apilb-sync.tmp", dst);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd == -1) {
        fprintf(stderr, "apilb-sync: %s: %s\n", tmp, strerror(errno));
        free(a);
        return -1;
    }
    if (write(fd, a, n) == (ssize_t)n && fchmod(fd, mode) == 0 &&
        (owner < 0 || fchown(fd, (uid_t)owner, (gid_t)owner) == 0) && fsync(fd) == 0)
        rc = 1;
    else
        fprintf(stderr, "apilb-sync: %s: %s\n", tmp, strerror(errno));
    close(fd);
    if (rc == 1 && rename(tmp, dst) != 0) {
        fprintf(stderr, "apilb-sync: %s: %s\n", dst, strerror(errno));
        rc = -1;
    }
    if (rc != 1)
        unlink(tmp);
    free(a);
    return rc;
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
    const char *src[MAX_PAIRS], *dst[MAX_PAIRS];
    long interval = 60, owner = -1;
    int n = 0;

    for (int i = 1; i < argc; i++) {
        char *eq;

        if (strncmp(argv[i], "--interval=", 11) == 0) {
            if ((interval = parse_seconds(argv[i] + 11)) < 0) {
                fprintf(stderr, "apilb-sync: %s: must be like 30s or 1m\n", argv[i]);
                return 1;
            }
        } else if (strncmp(argv[i], "--owner=", 8) == 0) {
            owner = strtol(argv[i] + 8, NULL, 10);
        } else if ((eq = strchr(argv[i], '=')) != NULL && argv[i][0] != '-' && n < MAX_PAIRS) {
            *eq = '\0';
            src[n] = argv[i];
            dst[n] = eq + 1;
            n++;
        } else {
            fprintf(stderr, "usage: apilb-sync [--interval=60s] [--owner=UID] SRC=DST...\n");
            return 1;
        }
    }
    if (n == 0) {
        fprintf(stderr, "apilb-sync: nothing to sync (give SRC=DST)\n");
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!stop) {
        for (int i = 0; i < n; i++)
            if (sync_one(src[i], dst[i], owner) == 1)
                printf("apilb-sync: %s updated from %s\n", dst[i], src[i]);
        fflush(stdout);
        for (long s = 0; s < interval && !stop; s++)
            sleep(1);
    }
    return 0;
}
