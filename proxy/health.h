/* SPDX-License-Identifier: Apache-2.0 */
/* Active health checks of the upstreams, on the control thread's loop (never
 * on a worker loop). One checker per upstream; each check is a fresh
 * connection, jittered (+-10% of the interval, random first offset), ended
 * by --health-timeout. Rise/fall hysteresis decides upstream->health; every
 * change is reported through the callback with its reason.
 *
 * The probe's steps (probe_step calls one function per step):
 *
 *   step       function         done when                next / verdict
 *   ---------  ---------------  -----------------------  -----------------------------
 *   (start)    check_start      socket, connect(2) sent  CONNECT (a local shortage:
 *                                                        check_skipped, no verdict)
 *   CONNECT    probe_connect    writable, SO_ERROR read  tcp: ok; else HANDSHAKE;
 *                                                        an error: fail
 *   HANDSHAKE  probe_handshake  SSL_connect done         tls: ok; readyz: WRITE;
 *                                (verified against       an error: fail
 *                                 --health-ca or the
 *                                 cluster CA, if known)
 *   WRITE      probe_write      GET /readyz sent         READ
 *   READ       probe_read,      status line (and, for    200: ok; 401/403: ok when
 *              readyz_verdict   a failure, the body)     anonymous, fail with
 *                                                        --health-auth kubeconfig
 *                                                        (credentials presented);
 *                                                        else fail (not ready)
 *   any        timer_cb         --health-timeout passed  fail (timed out)
 *
 * The rules (health_verdict, applied by count_result; a failed data-path
 * dial counts as one failed check):
 *
 *   result                    counters            health               drain (unready_since)
 *   ------------------------  ------------------  -------------------  ---------------------
 *   ok                        ok_run++,           UNKNOWN -> HEALTHY;  cleared unless still
 *                             fail_run = 0        UNHEALTHY ->         UNHEALTHY (a draining
 *                                                 HEALTHY at --rise    one keeps draining)
 *   fail: "[-]shutdown"       fail_run++,         -> UNHEALTHY at      started (kept if set):
 *                             ok_run = 0          --fall               its sessions drain
 *   fail: not ready, timeout  as above            as above             cleared: its sessions
 *                                                                      close
 *   fail: refused, reset,     as above            as above             unchanged (a stopping
 *         TLS error, 401/403                                           apiserver closes its
 *                                                                      listener first)
 */
#ifndef PROXY_HEALTH_H
#define PROXY_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "upstream.h"

struct health;

/* The result of one check, as health_verdict() reads it. */
struct health_result {
    bool ok;
    bool not_ready;     /* readyz answered an error status */
    bool shutting_down; /* ... and said "[-]shutdown" */
    bool timed_out;     /* no verdict within --health-timeout */
};

/* One upstream's run of equal results. */
struct health_run {
    unsigned ok_run, fail_run;
};

/* What a result does to the upstream's drain mark (unready_since_ms). */
enum health_unready {
    HEALTH_UNREADY_KEEP = 0, /* unchanged */
    HEALTH_UNREADY_START,    /* set to now unless set already: drain */
    HEALTH_UNREADY_CLEAR,    /* cleared */
};

struct health_verdict {
    enum upstream_health to; /* the health after the result (cur: no change) */
    enum health_unready unready;
};

/* The rules table above: applies result r to the counters in *run (updated)
 * of an upstream whose health is cur, with the --rise and --fall
 * thresholds, and returns the new health and what happens to its drain
 * mark. Pure; any thread. */
struct health_verdict health_verdict(struct health_run *run, enum upstream_health cur,
                                     const struct health_result *r, unsigned rise, unsigned fall);

/* Called on the control loop when up's health changes. */
typedef void (*health_changed_fn)(void *arg, struct upstream *up, enum upstream_health from,
                                  enum upstream_health to, const char *why);

/* Creates the checker (TLS context, CA). Certificates are verified against
 * --health-ca, else against cluster_ca_pem (the CA of the cluster's
 * credentials, may be NULL), else not at all (said once in the log).
 * Returns 0, or -EINVAL with one line in err (e.g. an unreadable
 * --health-ca). loop may be NULL to only validate. */
int health_new(uv_loop_t *loop, const struct config *cfg, const char *cluster_ca_pem,
               health_changed_fn changed, void *arg, struct health **out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* The cluster CA changed (rotation seen by the watcher, or a CA file that
 * was missing at start appeared): later checks verify against ca_pem
 * (borrowed, copied), unless --health-ca is given (that file is followed
 * itself and reloaded when it changes). A bundle equal to the one trusted now
 * changes nothing (0). A bundle without a certificate is refused (-EINVAL,
 * logged) and the old trust kept; -ENOMEM. Control loop. */
int health_set_ca(struct health *h, const char *ca_pem);

/* --health-auth kubeconfig: later readyz checks present the client
 * certificate (cert_pem: leaf, then its chain; key_pem: its key) and/or the
 * bearer token of the discovery credentials (all borrowed, copied; NULL:
 * absent); a change is logged. Equal to what is presented now: nothing
 * changes (0). Unusable (a certificate without its key, a key that does not
 * match, neither a certificate nor a token): -EINVAL with the reason in
 * *why (static text), the old ones kept. Without --health-auth kubeconfig
 * it does nothing. Control loop (or, with a NULL loop, only to validate). */
int health_set_auth(struct health *h, const char *cert_pem, const char *key_pem, const char *token,
                    const char **why) __attribute__((warn_unused_result));

/* Makes the set of checked upstreams equal to ups[0..n): new ones start
 * (with a random first offset), missing ones stop. Control loop. */
void health_sync(struct health *h, struct upstream *const *ups, size_t n);

/* Polled for every upstream on every control tick: when the data path's
 * failed dials to up have grown since the last call (and no check is
 * running), counts one failed check now and checks again at once; returns
 * at once when nothing changed. Control loop. */
void health_poll_dial_failures(struct health *h, struct upstream *up);

/* Stops every check; the handles close on the loop's next turn. */
void health_free(struct health *h);

#endif
