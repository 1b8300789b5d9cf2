/* SPDX-License-Identifier: Apache-2.0 */
/* A slow disk for tests, by LD_PRELOAD: fsync(2) of a regular file takes
 * SLOW_FSYNC_MS milliseconds, and while it waits the file SLOW_FSYNC_MARK
 * exists (created when the wait begins, removed when it ends), so a test can
 * act while a sync is under way. Built by the test that uses it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int fsync(int fd)
{
    static int (*real)(int);
    const char *ms = getenv("SLOW_FSYNC_MS"), *mark = getenv("SLOW_FSYNC_MARK");
    struct stat st;

    if (real == NULL)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    if (ms != NULL && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        long v = strtol(ms, NULL, 10);
        struct timespec ts = {.tv_sec = v / 1000, .tv_nsec = v % 1000 * 1000000L};
        int m = mark != NULL ? open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600) : -1;

        if (m >= 0)
            close(m);
        while (nanosleep(&ts, &ts) == -1)
            ;
        if (mark != NULL)
            unlink(mark);
    }
    return real(fd);
}
