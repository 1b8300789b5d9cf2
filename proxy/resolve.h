/* SPDX-License-Identifier: Apache-2.0 */
/* Turns seeds (host names or IPs, as the user wrote them) into addresses.
 * Blocking (getaddrinfo); main thread, at start and on reload only. */
#ifndef PROXY_RESOLVE_H
#define PROXY_RESOLVE_H

#include <stddef.h>

#include "addr.h"
#include "config.h"

/* Appends the addresses of sd (every A/AAAA record of a name) to out[*n..max),
 * skipping duplicates. Returns 0, or a negative value with a sentence in err
 * when the name does not resolve. */
int resolve_seed(const struct config_seed *sd, struct addr *out, size_t max, size_t *n,
                 char *err, size_t err_len) __attribute__((warn_unused_result));

#endif
