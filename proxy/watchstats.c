/* SPDX-License-Identifier: Apache-2.0 */
/* Names of the watcher's enums; see watchstats.h. */
#include "watchstats.h"

const char *watcher_state_name(int state)
{
    static const char *const names[WATCHER_STATE_COUNT] = {"starting", "listing", "watching",
                                                           "backoff", "stopped"};

    return state >= 0 && state < WATCHER_STATE_COUNT ? names[state] : "?";
}

const char *watcher_error_name(enum watcher_error kind)
{
    static const char *const names[WATCHER_ERR_KINDS] = {"connect", "http", "parse", "stall"};

    return (unsigned)kind < WATCHER_ERR_KINDS ? names[kind] : "?";
}
