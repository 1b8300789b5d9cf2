/* SPDX-License-Identifier: Apache-2.0 */
/* --check-config: what the running daemon would load at start, checked
 * without starting it: the health checks' TLS settings and credentials,
 * the discovery credentials, the seeds (every name must resolve) and the
 * upstreams file. Main thread; starts no other. */
#ifndef PROXY_CONFIGCHECK_H
#define PROXY_CONFIGCHECK_H

#include <stddef.h>

#include "config.h"

/* Checks cfg the way the daemon would start with it. Returns 0, or a
 * negative errno with one line in err naming what is wrong. */
int configcheck_run(const struct config *cfg, char *err, size_t err_len)
    __attribute__((warn_unused_result));

#endif
