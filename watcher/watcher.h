/* SPDX-License-Identifier: Apache-2.0 */
/* The watcher: a thread that follows the cluster's list of apiservers (the
 * `kubernetes` EndpointSlices, or the Endpoints object, in `default`) with
 * LIST + WATCH and hands every change, as a whole set of addresses, to the
 * proxy through a callback. It never touches the proxy's sockets or tables.
 *
 * It reaches the apiserver through the proxy's upstream table: before each
 * connection it asks route() for an address to dial, and connects there
 * directly while verifying TLS against the server name of its credentials.
 *
 * Threads: watcher_start() and watcher_stop() on the main thread; publish()
 * and route() are called on the watcher thread and must be thread-safe on the
 * caller's side. watcher_stats_get() from any thread. */
#ifndef WATCHER_WATCHER_H
#define WATCHER_WATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "watchstats.h"
#include "zone.h"

/* One apiserver as the cluster lists it. A plain value. */
struct watcher_endpoint {
    struct addr addr;
    struct zone_info zone; /* empty: none published (always so for Endpoints v1) */
};

/* Client credentials for another TLS client of the apiserver (the health
 * checks, --health-auth kubeconfig): PEM text of the client certificate
 * (with its chain) and its key, and the bearer token; each NULL when the
 * credentials have none. */
struct watcher_auth {
    char *cert_pem;
    char *key_pem;
    char *token;
};

struct watcher_config {
    const char *kubeconfig; /* path, or NULL for in-cluster */
    const char *sa_dir;     /* in-cluster: directory with token, ca.crt, namespace */
    enum watcher_discovery discovery;
    unsigned connect_timeout_ms;
    unsigned debounce_ms;     /* a set must be stable this long before publish (0: none);
                               * a slice replacement in flight is held up to 10 times this */
    unsigned watch_timeout_s; /* timeoutSeconds sent with each WATCH */
    unsigned stall_ms;        /* no byte for this long ends a watch */
    /* Called with the arg of watcher_start whenever the watcher sees a CA
     * bundle of the credentials it has not handed over yet: in
     * watcher_start (caller's thread) and on the watcher thread after a
     * reload; may be NULL. */
    void (*ca_changed)(void *arg, const char *ca_pem);
    /* Called with the arg of watcher_start once in watcher_start (caller's
     * thread) and on the watcher thread whenever the client certificate, key or token of the
     * credentials change (rotation); auth is borrowed for the call (copy what is kept, wipe it when
     * done). NULL: not wanted (the files are then not read). */
    void (*auth_changed)(void *arg, const struct watcher_auth *auth);
    /* The node whose topology.kubernetes.io/zone label to read, or NULL:
     * GET /api/v1/nodes/NAME before the first LIST and before each relist. */
    const char *node_name;
    /* Called on the watcher thread with the zone the node object gave
     * ("" when it gives none: refused, missing, or no label), borrowed,
     * each time it differs from the last one handed over. */
    void (*node_zone)(void *arg, const char *zone);
};

/* Called with every new, non-empty, debounced set of ready apiservers (the
 * union of every EndpointSlice, IPv4 and IPv6, sorted by address, no
 * duplicates, each with its zone and hints) and the resourceVersion it was
 * seen at. The callee copies what it keeps. Watcher thread. */
typedef void (*watcher_publish_fn)(void *arg, const struct watcher_endpoint *eps, size_t n,
                                   const char *resource_version);

/* Fills *out with the address the next API connection should dial (attempt
 * counts 0, 1, ... within one connection try, so the callee can rotate).
 * avoid, when not NULL, is an apiserver that answered with Retry-After:
 * another usable one is preferred when there is one. Returns 0, or -ENOENT
 * when no upstream is known. Watcher thread. */
typedef int (*watcher_route_fn)(void *arg, unsigned attempt, const struct addr *avoid,
                                struct addr *out);

/* The watcher thread's states (watcher_main), each entered by the function
 * named on its edge, which also reports it (watcher_stats.state):
 *
 *                         do_list: NEXT_RELIST
 *                           +------+
 *                           v      |
 *   STARTING ----------> LISTING --+-- do_list: NEXT_WATCH --> WATCHING --+
 *   watcher_main          ^  ^     |                            |  |  ^   | do_watch:
 *                         |  |     | do_list: NEXT_BACKOFF      |  |  +---+ NEXT_WATCH
 *                         |  |     v                            |  |
 *                         |  +-- BACKOFF <-- do_watch: ---------+  |
 *                         |   backoff_wait   NEXT_BACKOFF          |
 *                         +------------- do_watch: NEXT_RELIST ----+
 *
 *   STARTING -> LISTING   watcher_main (before each step it re-reads the
 *                         credentials when a 401 or a file change asked)
 *   LISTING  -> WATCHING  do_list -> NEXT_WATCH: the list applied (list_ok)
 *   LISTING  -> LISTING   do_list -> NEXT_RELIST: 410 (from scratch), or
 *                         EndpointSlices refused in auto mode (Endpoints)
 *   LISTING  -> BACKOFF   do_list -> NEXT_BACKOFF: no apiserver answered in
 *                         ROUTE_TRIES attempts, an error status, a body
 *                         that cannot be used (list_failed, list_ok)
 *   WATCHING -> WATCHING  do_watch -> NEXT_WATCH: the apiserver ended the
 *                         watch, it stalled (no byte for stall_ms), or a
 *                         credential file changed (watch_ended)
 *   WATCHING -> LISTING   do_watch -> NEXT_RELIST: 410 Gone, as the answer
 *                         or an ERROR event, or a resourceVersion too large
 *                         (from scratch) (error_event)
 *   WATCHING -> BACKOFF   do_watch -> NEXT_BACKOFF: no answer, an error
 *                         status or event, garbage, or a watch that ended
 *                         at once (watch_failed, watch_ended)
 *   BACKOFF  -> LISTING   backoff_wait: the exponential backoff, or what
 *                         Retry-After asks when no other apiserver is
 *                         there (retry_wait); ended early by new credentials
 *   any      -> STOPPED   watcher_stop (the loops see w->stop)
 *
 * enum watcher_state, with struct watcher_stats and enum watcher_error, is
 * in proxy/watchstats.h: the proxy core reports them too.
 */

struct watcher;

/* Once per process, before any thread starts (curl_global_init). */
int watcher_global_init(void) __attribute__((warn_unused_result));
void watcher_global_cleanup(void);

/* Reads the credentials (errors are returned, with one line naming the file
 * and what is wrong in err) and starts the thread. */
int watcher_start(const struct watcher_config *cfg, watcher_publish_fn publish,
                  watcher_route_fn route, void *arg, struct watcher **out, char *err,
                  size_t err_len) __attribute__((warn_unused_result));

/* Stops the thread (it notices within ~100 ms), joins it, frees w. */
void watcher_stop(struct watcher *w);

/* A consistent copy of the counters. Any thread. */
void watcher_stats_get(struct watcher *w, struct watcher_stats *out);

/* Reads the discovery credentials (kubeconfig at path, or the in-cluster
 * service account in sa_dir when path is NULL) to validate them, and hands
 * back the CA bundle they trust as PEM text in *pem (caller frees; NULL when
 * the credentials name none) unless pem is NULL. Returns 0, or a negative
 * errno with one line in err. */
int watcher_cluster_ca(const char *kubeconfig, const char *sa_dir, char **pem, char *err,
                       size_t err_len) __attribute__((warn_unused_result));

/* Reads the client credentials of the discovery credentials (as
 * watcher_cluster_ca() reads them) into *out (new strings; release with
 * watcher_auth_free). Returns 0, or a negative errno with one line in err
 * (unreadable credentials, or a named certificate, key or token file that
 * cannot be read). */
int watcher_auth_load(const char *kubeconfig, const char *sa_dir, struct watcher_auth *out,
                      char *err, size_t err_len) __attribute__((warn_unused_result));

/* Wipes (the certificate text, which may hold the key too, the key and the
 * token) and frees what *a holds; *a is zeroed. */
void watcher_auth_free(struct watcher_auth *a);

/* The discovery module (see proxy/module.h): the executable reaches the
 * functions above only through this table, exported by apilb-discovery.so. */
#define WATCHER_MODULE "apilb-discovery.so"
#define WATCHER_OPS_SYMBOL "apilb_watcher_ops"
struct watcher_ops {
    int (*global_init)(void);
    void (*global_cleanup)(void);
    int (*start)(const struct watcher_config *cfg, watcher_publish_fn publish,
                 watcher_route_fn route, void *arg, struct watcher **out, char *err,
                 size_t err_len);
    void (*stop)(struct watcher *w);
    void (*stats_get)(struct watcher *w, struct watcher_stats *out);
    int (*cluster_ca)(const char *kubeconfig, const char *sa_dir, char **pem, char *err,
                      size_t err_len);
    int (*auth_load)(const char *kubeconfig, const char *sa_dir, struct watcher_auth *out,
                     char *err, size_t err_len);
    void (*auth_free)(struct watcher_auth *a);
};
extern const struct watcher_ops apilb_watcher_ops;

#endif
