/* SPDX-License-Identifier: Apache-2.0 */
/* The control thread (the process's main thread): owns the upstream
 * registry and builds every table from its sources (seeds, the upstreams
 * file, later discovery and the state file), publishes it to the workers,
 * marks removed upstreams as draining, and runs signals (SIGTERM/SIGINT
 * drain, SIGHUP reload) and the upstreams-file watch. */
#ifndef PROXY_CONTROL_H
#define PROXY_CONTROL_H

#include "config.h"

/* Exit codes of the process. */
#define EXIT_CONFIG 1
#define EXIT_RUNTIME 2

/* Resolves the seeds and reads the upstreams file the way the running
 * daemon would; for --check-config. Returns 0, or EXIT_CONFIG after printing
 * one line to stderr. */
int control_check(const struct config *cfg);

/* Runs the daemon until it has shut down. Returns the process exit code. */
int control_run(const struct config *cfg);

#endif
