/* SPDX-License-Identifier: Apache-2.0 */
/* The state file; see statefile.h. */
#include "statefile.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomicfile.h"
#include "fileread.h"

#define HEADER "# apilb state v1\n"

/* FNV-1a, enough to tell a torn or edited file from a whole one. */
static uint32_t checksum(const char *p, size_t n)
{
    uint32_t h = 2166136261u;

    while (n-- > 0) {
        h ^= (unsigned char)*p++;
        h *= 16777619u;
    }
    return h;
}

int statefile_parse(const char *text, size_t len, struct addr *out, size_t max, char *err,
                    size_t err_len)
{
    size_t pos = sizeof(HEADER) - 1, n = 0, line_no = 1;

    if (len < pos || memcmp(text, HEADER, pos) != 0) {
        snprintf(err, err_len, "not an apilb state file (no '# apilb state v1' header)");
        return -EINVAL;
    }
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll;
        char buf[ADDR_STRLEN + 32];
        const char *why;

        line_no++;
        if (nl == NULL) {
            snprintf(err, err_len, "line %zu: truncated (no newline)", line_no);
            return -EINVAL;
        }
        ll = (size_t)(nl - line);
        if (memchr(line, '\0', ll) != NULL) {
            snprintf(err, err_len, "line %zu: contains a NUL byte", line_no);
            return -EINVAL;
        }
        if (ll >= sizeof(buf)) {
            snprintf(err, err_len, "line %zu: too long", line_no);
            return -EINVAL;
        }
        memcpy(buf, line, ll);
        buf[ll] = '\0';
        if (strncmp(buf, "end ", 4) == 0) {
            char expect[64];

            /* The trailer must be exactly what statefile_format() writes. */
            snprintf(expect, sizeof(expect), "end %zu %08x", n, checksum(text, pos));
            if (strcmp(buf, expect) != 0) {
                snprintf(err, err_len, "checksum or count mismatch (torn or edited file)");
                return -EINVAL;
            }
            if (pos + ll + 1 != len) {
                snprintf(err, err_len, "line %zu: data after the trailer", line_no + 1);
                return -EINVAL;
            }
            return (int)n;
        }
        if (strncmp(buf, "upstream ", 9) != 0) {
            snprintf(err, err_len, "line %zu: expected 'upstream ADDR' or 'end'", line_no);
            return -EINVAL;
        }
        if (n == max) {
            snprintf(err, err_len, "more than %zu upstreams", max);
            return -EINVAL;
        }
        if (addr_parse(buf + 9, -1, &out[n], &why) < 0) {
            snprintf(err, err_len, "line %zu: '%s': %s", line_no, buf + 9, why);
            return -EINVAL;
        }
        {
            char canon[ADDR_STRLEN];

            if (strcmp(addr_format(&out[n], canon, sizeof(canon)), buf + 9) != 0) {
                snprintf(err, err_len, "line %zu: '%s' is not written the way apilb writes it",
                         line_no, buf + 9);
                return -EINVAL;
            }
        }
        n++;
        pos += ll + 1;
    }
    snprintf(err, err_len, "truncated (no 'end' trailer)");
    return -EINVAL;
}

int statefile_format(const struct addr *a, size_t n, char *buf, size_t len)
{
    size_t pos;
    int w;

    if (len < sizeof(HEADER))
        return -ENOSPC;
    memcpy(buf, HEADER, sizeof(HEADER) - 1);
    pos = sizeof(HEADER) - 1;
    for (size_t i = 0; i < n; i++) {
        char name[ADDR_STRLEN];

        w = snprintf(buf + pos, len - pos, "upstream %s\n", addr_format(&a[i], name, sizeof(name)));
        if (w < 0 || (size_t)w >= len - pos)
            return -ENOSPC;
        pos += (size_t)w;
    }
    w = snprintf(buf + pos, len - pos, "end %zu %08x\n", n, checksum(buf, pos));
    if (w < 0 || (size_t)w >= len - pos)
        return -ENOSPC;
    return (int)(pos + (size_t)w);
}

int statefile_read(const char *path, struct addr *out, size_t max, char *err, size_t err_len)
{
    char *buf;
    size_t len;
    int rc = fileread_all(path, STATEFILE_MAX_BYTES, &buf, &len);

    if (rc == -EFBIG) {
        snprintf(err, err_len, "larger than %u bytes", STATEFILE_MAX_BYTES);
        return rc;
    }
    if (rc < 0) {
        snprintf(err, err_len, "cannot open: %s", strerror(-rc));
        return rc;
    }
    rc = statefile_parse(buf, len, out, max, err, err_len);
    free(buf);
    return rc;
}

int statefile_write(const char *path, const struct addr *a, size_t n, char *err, size_t err_len)
{
    char *buf = malloc(STATEFILE_MAX_BYTES);
    struct atomicfile f;
    const char *step = "write";
    int len, rc;

    if (buf == NULL) {
        snprintf(err, err_len, "out of memory");
        return -ENOMEM;
    }
    len = statefile_format(a, n, buf, STATEFILE_MAX_BYTES);
    if (len < 0) {
        free(buf);
        snprintf(err, err_len, "too many upstreams for the state file");
        return len;
    }
    rc = atomicfile_open(&f, path, 0644);
    if (rc != 0) {
        snprintf(err, err_len, "cannot create a temporary file beside %s: %s", path, strerror(-rc));
        free(buf);
        return rc;
    }
    rc = atomicfile_write_all(f.fd, buf, (size_t)len);
    free(buf);
    if (rc != 0)
        atomicfile_abort(&f);
    else
        rc = atomicfile_commit(&f, &step);
    if (rc != 0)
        snprintf(err, err_len, "cannot %s %s: %s", step, path, strerror(-rc));
    return rc;
}
