/* SPDX-License-Identifier: Apache-2.0 */
/* Reading a whole small file (upstreams file, state file, kubeconfig, token,
 * CA bundle) with a bound on its size. */
#ifndef PROXY_FILEREAD_H
#define PROXY_FILEREAD_H

#include <stddef.h>

/* Reads the file at path into a malloc'd, NUL-terminated buffer: *out (the
 * caller frees it) and *len (without the NUL). Returns 0, -EFBIG when the
 * file holds more than max bytes, -ENOMEM, or the -errno of open or read.
 * Opens with O_NONBLOCK, so a FIFO in its place cannot hang the caller. */
int fileread_all(const char *path, size_t max, char **out, size_t *len)
    __attribute__((warn_unused_result));

#endif
