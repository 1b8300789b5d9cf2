/* SPDX-License-Identifier: Apache-2.0 */
/* A session: one client connection relayed to one upstream.
 *
 *   ACCEPTED --session_start--> CONNECTING --connect_done--> SPLICING
 *   CONNECTING --attempt_failed (refused, timeout)--> CONNECTING (next upstream)
 *   CONNECTING --attempt_failed, none left--> CLOSING
 *   SPLICING --both directions shut down--> CLOSING
 *   SPLICING --error, drain/age/shutdown deadline, upstream failed--> CLOSING
 *   CLOSING --last close callback--> freed
 *
 * Bytes move with splice(2) through a pipe borrowed from the worker's pool
 * while they are in flight (or a small heap buffer when no pipe can be had).
 * Backpressure: a direction stops reading while its pipe holds unsent bytes
 * beyond what the destination takes. Half-close: EOF from one side becomes
 * shutdown(SHUT_WR) on the other once everything before it was delivered; the
 * other direction keeps flowing. Loop thread of the owning worker only. */
#ifndef PROXY_SESSION_H
#define PROXY_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

struct worker;
struct upstream;

/* One open session as GET /connections shows it. */
struct session_info {
    uint64_t sid;
    struct addr client;          /* len 0 when it could not be read */
    char upstream[ADDR_STRLEN];  /* "" while none is connected */
    uint64_t age_ms;
    uint64_t bytes_in, bytes_out; /* read from the client, from the upstream */
    const char *state;           /* "connecting", "relaying", "closing" */
};

/* Takes ownership of the accepted, non-blocking client fd and starts
 * connecting it to an upstream from the worker's table. Never fails visibly:
 * on any error the client fd is closed. */
void session_start(struct worker *w, int client_fd);

/* Connecting sessions whose deadline passed are failed over. Returns the
 * deadline (ms) of the oldest one left, or 0 when none is connecting. */
uint64_t session_expire_connects(struct worker *w, uint64_t now_ms);

/* Applies the shared state to every session of w: closes those whose
 * upstream turned unhealthy, whose drain or maximum-age deadline passed, or
 * all of them in the CLOSING phase. Returns the earliest future deadline (ms)
 * that needs another sweep, or 0 for none. */
uint64_t session_sweep(struct worker *w, uint64_t now_ms);

/* Turns keepalive on for the upstream sockets of sessions connected at
 * least SOCKOPT_KEEPALIVE_AFTER_S before now_ms (see sockopt.h). */
void session_keepalive(struct worker *w, uint64_t now_ms);

/* Writes the sessions of w, skipping the first skip of its list, to
 * out[0..max); returns how many it wrote and sets *total to how many w has.
 * The loop thread of w (or with w's loop stopped). */
size_t session_list(struct worker *w, size_t skip, struct session_info *out, size_t max,
                    size_t *total);

/* --upstream-ack-timeout: asks the kernel (TCP_INFO) about each upstream
 * socket that had bytes in flight at the last look; one where bytes are
 * outstanding (or window probes unanswered) and nothing, not even an ACK,
 * has come back for the timeout is dead (a black hole): its client is reset,
 * the upstream held out of new connections. Not the kernel's
 * TCP_USER_TIMEOUT: that also ends a connection whose peer merely reads
 * nothing for as long (a zero window with answered probes), a busy
 * apiserver. Idle sessions cost nothing here. */
void session_check_acks(struct worker *w, uint64_t now_ms);

/* Closes every session now (loop shutdown). */
void session_close_all(struct worker *w);

#endif
