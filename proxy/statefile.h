/* SPDX-License-Identifier: Apache-2.0 */
/* The state file (--state-file): the last good upstream set, so that a
 * restart with every seed gone still finds the apiservers. Text, one address
 * per line between a header and a trailer that carries the count and a
 * checksum, so a torn or foreign file is recognised and ignored:
 *
 *     # apilb state v1
 *     upstream 10.0.0.11:6443
 *     upstream [fd00::11]:6443
 *     end 2 3f1c9a02
 *
 * Written atomically (atomicfile.h): a new temporary file with an
 * unpredictable name in the same directory, fsync, rename, fsync of the
 * directory. Any thread, one writer at a time per path. */
#ifndef PROXY_STATEFILE_H
#define PROXY_STATEFILE_H

#include <stddef.h>

#include "addr.h"

#define STATEFILE_MAX_BYTES (256u * 1024u)

/* Parses text[0..len). Returns the number of addresses (0..max), or -EINVAL
 * with a sentence in err saying what is wrong. Pure. */
int statefile_parse(const char *text, size_t len, struct addr *out, size_t max, char *err,
                    size_t err_len) __attribute__((warn_unused_result));

/* Formats a[0..n) into buf; returns the length, or -ENOSPC. Pure. */
int statefile_format(const struct addr *a, size_t n, char *buf, size_t len)
    __attribute__((warn_unused_result));

/* Reads and parses path. -ENOENT when it does not exist. */
int statefile_read(const char *path, struct addr *out, size_t max, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Writes a[0..n) to path atomically. Returns 0 or a negative errno with err. */
int statefile_write(const char *path, const struct addr *a, size_t n, char *err, size_t err_len)
    __attribute__((warn_unused_result));

#endif
