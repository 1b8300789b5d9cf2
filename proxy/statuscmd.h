/* SPDX-License-Identifier: Apache-2.0 */
/* `apilb status [--admin ADDR:PORT] [-o table|json]`: asks a running apilb's
 * admin endpoint what it is doing (GET /status, or /upstreams for json) and
 * prints the answer. The answer is checked before it is printed: an HTTP
 * 200, at most STATUSCMD_MAX_BYTES, printable text for the table (the
 * operator's terminal never receives control bytes) and valid JSON for json.
 * Anything else is one line on stderr naming what was wrong. */
#ifndef PROXY_STATUSCMD_H
#define PROXY_STATUSCMD_H

#include <stdio.h>

#define STATUSCMD_MAX_BYTES (1u << 20)
#define STATUSCMD_TIMEOUT_MS 5000

/* Runs the command with argv[0] == "status"; env for APILB_ADMIN_LISTEN.
 * Returns the exit status: 0 printed, 1 bad arguments, 2 the admin
 * endpoint could not be asked or its answer was refused. */
int statuscmd_main(int argc, char **argv, char **env, FILE *out, FILE *errout);

#endif
