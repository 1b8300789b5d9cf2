/* SPDX-License-Identifier: Apache-2.0 */
/* Active health checks of the upstreams, on the control thread's loop (never
 * on a worker loop). One checker per upstream; each check is a fresh
 * connection: `tcp` connects, `tls` also completes a TLS handshake (verified
 * against --health-ca when given), `readyz` also sends GET /readyz over
 * HTTP/1.1: 200 is healthy; 401/403 are alive when the check is anonymous
 * (anonymous auth off) and a failure with --health-auth kubeconfig (the
 * check then presents the discovery credentials); anything else or a
 * timeout a failure. Checks are jittered (+-10% of the interval, random
 * first offset). Rise/fall hysteresis decides upstream->health; every change
 * is reported through the callback with its reason. */
#ifndef PROXY_HEALTH_H
#define PROXY_HEALTH_H

#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "upstream.h"

struct health;

/* Called on the control loop when up's health changes. */
typedef void (*health_changed_fn)(void *arg, struct upstream *up, enum upstream_health from,
                                  enum upstream_health to, const char *why);

/* Creates the checker (TLS context, CA). Certificates are verified against
 * --health-ca, else against cluster_ca_pem (the CA of the cluster's
 * credentials, may be NULL), else not at all (said once in the log).
 * Returns 0, or -EINVAL with one line in err (e.g. an unreadable
 * --health-ca). loop may be NULL to only validate. */
int health_new(uv_loop_t *loop, const struct config *cfg, const char *cluster_ca_pem,
               health_changed_fn changed, void *arg, struct health **out, char *err,
               size_t err_len) __attribute__((warn_unused_result));

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
int health_set_auth(struct health *h, const char *cert_pem, const char *key_pem,
                    const char *token, const char **why) __attribute__((warn_unused_result));

/* Makes the set of checked upstreams equal to ups[0..n): new ones start
 * (with a random first offset), missing ones stop. Control loop. */
void health_sync(struct health *h, struct upstream *const *ups, size_t n);

/* A connect of the data path to up failed: counts as one failed check now
 * and checks again at once. Control loop. */
void health_dial_failed(struct health *h, struct upstream *up);

/* Stops every check; the handles close on the loop's next turn. */
void health_free(struct health *h);

#endif
