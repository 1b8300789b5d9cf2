/* SPDX-License-Identifier: Apache-2.0 */
/* The upstreams file; see upfile.h. */
#include "upfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileread.h"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

int upfile_parse(const char *text, size_t len, struct config_seed *out, size_t max, char *err,
                 size_t err_len)
{
    size_t n = 0, line_no = 0, pos = 0;

    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl != NULL ? (size_t)(nl - line) : len - pos;
        const char *hash = memchr(line, '#', ll);
        char item[ADDR_HOST_MAX + 16];
        struct config_seed sd;
        const char *why;
        size_t b = 0, e;
        bool dup = false;

        pos += ll + (nl != NULL);
        line_no++;
        e = hash != NULL ? (size_t)(hash - line) : ll;
        while (b < e && is_space(line[b]))
            b++;
        while (e > b && is_space(line[e - 1]))
            e--;
        if (b == e)
            continue;
        if (memchr(line + b, '\0', e - b) != NULL) {
            snprintf(err, err_len, "line %zu: contains a NUL byte", line_no);
            return -EINVAL;
        }
        if (e - b >= sizeof(item)) {
            snprintf(err, err_len, "line %zu: '%.40s...' is too long", line_no, line + b);
            return -EINVAL;
        }
        memcpy(item, line + b, e - b);
        item[e - b] = '\0';
        if (addr_split(item, UPFILE_DEFAULT_PORT, sd.host, &sd.port, &why) < 0) {
            snprintf(err, err_len, "line %zu: '%s': %s", line_no, item, why);
            return -EINVAL;
        }
        for (size_t i = 0; i < n; i++)
            dup = dup || (out[i].port == sd.port && strcmp(out[i].host, sd.host) == 0);
        if (dup)
            continue;
        if (n == max) {
            snprintf(err, err_len, "line %zu: more than %zu upstreams", line_no, max);
            return -EINVAL;
        }
        out[n++] = sd;
    }
    return (int)n;
}

int upfile_read(const char *path, struct config_seed *out, size_t max, char *err, size_t err_len)
{
    char sub[CONFIG_ERR_BYTES];
    char *buf;
    size_t len;
    int rc = fileread_all(path, UPFILE_MAX_BYTES, &buf, &len);

    if (rc == -EFBIG) {
        snprintf(err, err_len, "--upstreams-file=%s: larger than %u bytes", path, UPFILE_MAX_BYTES);
        return rc;
    }
    if (rc < 0) {
        snprintf(err, err_len, "--upstreams-file=%s: cannot open: %s", path, strerror(-rc));
        return rc;
    }
    rc = upfile_parse(buf, len, out, max, sub, sizeof(sub));
    if (rc < 0)
        snprintf(err, err_len, "--upstreams-file=%s: %s", path, sub);
    free(buf);
    return rc;
}
