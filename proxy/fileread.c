/* SPDX-License-Identifier: Apache-2.0 */
#include "fileread.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int fileread_all(const char *path, size_t max, char **out, size_t *len)
{
    size_t n = 0;
    ssize_t r = 0;
    char *buf;
    int fd, rc = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd == -1)
        return -errno;
    buf = malloc(max + 1);
    if (buf == NULL) {
        close(fd);
        return -ENOMEM;
    }
    /* One byte more than max tells a file that is too large. */
    while (n <= max && (r = read(fd, buf + n, max + 1 - n)) > 0)
        n += (size_t)r;
    if (r < 0)
        rc = -errno;
    else if (n > max)
        rc = -EFBIG;
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}
