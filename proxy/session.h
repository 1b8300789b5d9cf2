/* SPDX-License-Identifier: Apache-2.0 */
/* A session: one client connection relayed to one upstream. Loop thread
 * of the owning worker only.
 *
 *                 session_start
 *                      |  (pace_dial: the first dial may wait for a
 *                      v   session_sweep in a --close-spread window)
 *   +---------> CONNECTING <--+ attempt_failed -> try_next
 *   |                  |   \--+ (refused, timeout: the next upstream)
 *   |        connected |    \
 *   |                  v     \ try_next: none left (no-upstream)
 *   +--------------- RELAYING --------------------> CLOSING --> freed
 *   relay_replay            session_relay,          session_close
 *   (early close)           session_sweep
 *
 * The edges, one function each:
 *   start       -> CONNECTING  session_start (pace_dial puts the dial off;
 *                              sweep_dial makes it)
 *   CONNECTING  -> CONNECTING  attempt_failed -> try_next: a dial refused,
 *                              failed or past --connect-timeout
 *                              (session_expire_connects)
 *   CONNECTING  -> RELAYING    connected (upstream_cb: writable, no error)
 *   CONNECTING  -> CLOSING     try_next: no upstream left ("no-upstream",
 *                              "out-of-descriptors"); session_start: empty
 *                              table or no poll
 *   RELAYING    -> CONNECTING  relay_replay (release_upstream + try_next):
 *                              the upstream closed or reset before its first
 *                              byte while the client's bytes are a TLS
 *                              ClientHello; they are replayed to the next
 *   RELAYING    -> CLOSING     session_relay: both directions shut ("done"),
 *                              or relay_failed on an error of either side;
 *                              session_sweep: shutdown, sweep_unhealthy,
 *                              sweep_drain, sweep_age; session_check_acks
 *   any         -> CLOSING     session_close_all
 *   CLOSING     -> freed       session_close (closes both legs, frees)
 *
 * How bytes move (flow_pump per direction: flow_recv reads, flow_send
 * writes). Copy mode, the common path: recv(2) into the worker's scratch
 * buffer and send(2) on (batched with the loop's other sends when it
 * queues them); bytes the destination does not take move into the flow's
 * own buffer. Bulk mode: a read that fills the buffer switches the
 * direction to splice(2) through a pipe borrowed from the worker's pool,
 * until a splice under 4 KiB switches it back. Replay: until the
 * upstream's first byte, what the client sent is kept while it is the
 * start of a TLS ClientHello, so an upstream that ends early is replaced
 * invisibly (relay_replay). Backpressure: a direction stops reading while
 * it holds bytes its destination has not taken. Half-close: EOF from one
 * side becomes shutdown(SHUT_WR) on the other once everything before it
 * was delivered; the other direction keeps flowing. An error on one side
 * resets the other. */
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
    struct addr client;         /* len 0 when it could not be read */
    char upstream[ADDR_STRLEN]; /* "" while none is connected */
    uint64_t age_ms;
    uint64_t bytes_in, bytes_out; /* read from the client, from the upstream */
    const char *state;            /* "connecting", "relaying", "closing" */
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

/* Ends the worker's loss probe, if one is in flight, without a verdict
 * (loop shutdown, after session_close_all). */
void session_probe_cancel(struct worker *w);

#endif
