/* SPDX-License-Identifier: Apache-2.0 */
/* The control thread (the process's main thread): starts the workers, the
 * watcher, the admin endpoint and the health checks, runs the loop that
 * drives the upstream table (ctltable.h) from its sources, signals
 * (SIGTERM/SIGINT drain, SIGHUP reload), timers and the upstreams-file
 * watch, and stops them all again. */
#ifndef PROXY_CONTROL_H
#define PROXY_CONTROL_H

#include "config.h"

/* Exit codes of the process. */
#define EXIT_CONFIG 1
#define EXIT_RUNTIME 2

/* Runs the daemon until it has shut down. Prints the one line of a start
 * that failed. Returns the process exit code. */
int control_run(const struct config *cfg);

#endif
