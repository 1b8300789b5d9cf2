/* SPDX-License-Identifier: Apache-2.0 */
/* The upstreams file (--upstreams-file): one HOST:PORT per line (IPv6 as
 * [fd00::1]:6443; a bare host gets port 6443), '#' starts a comment, blank
 * lines are ignored. Parsing is pure; reading is bounded. Main thread. */
#ifndef PROXY_UPFILE_H
#define PROXY_UPFILE_H

#include <stddef.h>

#include "config.h"

#define UPFILE_MAX_BYTES (1u << 20)
#define UPFILE_DEFAULT_PORT 6443

/* Parses text[0..len) into out[0..max). Returns the number of entries, or
 * -EINVAL with one line in err naming the line number, its text and the rule.
 * Duplicates are kept once. */
int upfile_parse(const char *text, size_t len, struct config_seed *out, size_t max, char *err,
                 size_t err_len) __attribute__((warn_unused_result));

/* Reads path (at most UPFILE_MAX_BYTES) and parses it. Errors name the file. */
int upfile_read(const char *path, struct config_seed *out, size_t max, char *err, size_t err_len)
    __attribute__((warn_unused_result));

#endif
