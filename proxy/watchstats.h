/* SPDX-License-Identifier: Apache-2.0 */
/* The vocabulary the watcher module and the proxy core share: the discovery
 * mode, the watcher's state and error kinds, and its counters, each with its
 * name function. Plain values, so that struct config and struct snapshot can
 * hold them without the proxy core including the watcher (curl, jansson).
 * Any thread. */
#ifndef PROXY_WATCHSTATS_H
#define PROXY_WATCHSTATS_H

#include <stdint.h>

enum watcher_discovery {
    WATCHER_DISCOVERY_AUTO = 0, /* EndpointSlices, Endpoints on 403/404 */
    WATCHER_DISCOVERY_SLICES,
    WATCHER_DISCOVERY_ENDPOINTS,
    WATCHER_DISCOVERY_OFF, /* configuration only: no watcher is started */
};

enum watcher_state {
    WATCHER_STARTING = 0,
    WATCHER_LISTING,
    WATCHER_WATCHING,
    WATCHER_BACKOFF,
    WATCHER_STOPPED,
    WATCHER_STATE_COUNT
};

enum watcher_error {
    WATCHER_ERR_CONNECT = 0, /* connection or TLS failures */
    WATCHER_ERR_HTTP,        /* error statuses and ERROR events */
    WATCHER_ERR_PARSE,       /* bytes or objects that could not be used */
    WATCHER_ERR_STALL,       /* watches that went silent */
    WATCHER_ERR_KINDS
};

struct watcher_stats {
    int state;                  /* enum watcher_state */
    const char *source;         /* "endpointslices", "endpoints" or "" (static); a
                                 * string literal of the module, which stays loaded */
    uint64_t last_sync_unix_ms; /* last successful LIST or event */
    uint64_t lists;
    uint64_t watches;
    uint64_t events; /* ADDED/MODIFIED/DELETED applied */
    uint64_t bookmarks;
    uint64_t relists_410;
    uint64_t errors; /* HTTP, TLS, parse and stall errors */
    uint64_t errors_by_kind[WATCHER_ERR_KINDS];
    uint64_t rv_changed_unix_ms; /* when resource_version last changed */
    uint64_t publishes;
    uint64_t credential_reloads;
    char resource_version[64];
};

/* "starting", "listing", "watching", "backoff", "stopped"; "?" for a value
 * outside enum watcher_state. A static string. */
const char *watcher_state_name(int state);

/* "connect", "http", "parse", "stall" (the label values of
 * apilb_watcher_errors_total); "?" outside the enum. A static string. */
const char *watcher_error_name(enum watcher_error kind);

#endif
