/* SPDX-License-Identifier: Apache-2.0 */
/* The arithmetic of balancing beyond the pick itself, as pure functions:
 * when lost connections are a mass failure (the paced-dial window), the
 * ramp of an upstream that came back (one for --slow-start and
 * --prefer-ramp; when it starts is upstream_ramp_returned's), and what
 * --rebalance sheds from an upstream over its fair share. No clock, no
 * atomics, no sockets: the callers (upstream.c, session.c) read the state
 * and pass it in, so Check tests need neither a loop nor a network. */
#ifndef PROXY_BALANCE_H
#define PROXY_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Lasting connections an upstream ends within this long of the first one
 * count as one burst (balance_lost_is_mass). */
#define BALANCE_LOST_BURST_MS 1000u
/* Weights are in thousandths: BALANCE_WEIGHT_FULL is an ordinary upstream. */
#define BALANCE_WEIGHT_FULL 1000u
/* Where the --slow-start ramp begins: a twentieth of the full weight. The
 * --prefer-ramp one begins at 0 (a connection it turns away goes to the
 * next tier, not to nothing). */
#define BALANCE_WEIGHT_FLOOR 50u
/* Each rebalance round sheds about 1/BALANCE_SHED_DIVISOR of the excess. */
#define BALANCE_SHED_DIVISOR 8u

/* Whether lost (>= 1) lasting connections ended by one upstream within one
 * burst, out of total (its connections when the burst began, lost ones
 * included), are a mass failure rather than an apiserver closing some of
 * its own: at least 2, and a quarter of total or 4 of them. A single
 * close never is. Pure. */
bool balance_lost_is_mass(unsigned lost, unsigned total);

/* The ramp's weight (floor_w..BALANCE_WEIGHT_FULL, in thousandths) at
 * now_ms of an upstream whose ramp began at from_ms (0: none) and lasts
 * dur_ms (0: off): rising linearly from floor_w (< BALANCE_WEIGHT_FULL) to
 * full over dur_ms; floor_w before from_ms (another thread's clock read).
 * The one ramp fraction: the slow-start weight and the --prefer-ramp
 * admission both are this. Pure. */
unsigned balance_ramp_weight(uint64_t from_ms, uint64_t now_ms, unsigned dur_ms, unsigned floor_w);

/* The connections an upstream may hold before --rebalance sheds from it,
 * given total_active connections over n_usable (>= 1) usable upstreams of
 * which the least loaded holds min_active: the fair share total/n plus 5 %
 * (rounded down), but at least min_active + 1, so that a shed connection,
 * which returns to the least loaded, never makes that one shed in turn.
 * Within the limit every upstream is within about 10 % of the fair share,
 * and no two differ by more than one connection where the shares are
 * small. Pure. */
unsigned balance_fair_limit(unsigned total_active, unsigned n_usable, unsigned min_active);

/* Small shares (fewer connections than BALANCE_SMALL_SHARE per usable
 * upstream: a node's kubelet and a few pods) cannot be balanced on one node
 * (1 connection, 3 apiservers), only across a fleet: each node ranks the
 * upstreams in an order of its own (random per process), and the upstream
 * at rank (0..n-1) should hold total/n connections, one more for the first
 * total % n ranks. The targets add up to total_active; over a fleet every
 * upstream gets its fair share. Pure. */
#define BALANCE_SMALL_SHARE 4u
unsigned balance_target(unsigned total_active, unsigned n_usable, unsigned rank);

/* How many of mine (this worker's connections to an upstream holding
 * active in all, over limit) to shed in one round: the worker's part of
 * (active - limit) / BALANCE_SHED_DIVISOR, its fraction rounded up when
 * draw (a random number) falls below it, so small excesses are shed at
 * random rounds (jitter) and large ones a share at a time (budget). At
 * most mine; 0 when active <= limit. Pure. */
unsigned balance_shed_count(unsigned active, unsigned limit, unsigned mine, uint64_t draw);

/* A client-go client gives its TLS handshake 10 s (TLSHandshakeTimeout,
 * transport/cache.go), and the handshake of a client whose dial is paced
 * waits for that dial. The longest a paced dial may wait when the
 * upstreams took up to answer_ms to answer lately (upstream answer_ms):
 * what is left of the 10 s after BALANCE_PACE_MARGIN_MS (the dial, the
 * client's own part) and twice answer_ms (an apiserver under a storm
 * answers slower than it did), 0 when nothing is. With the default 8 s
 * window it binds only when an answer took over 500 ms. Pure. */
#define BALANCE_CLIENT_HANDSHAKE_MS 10000u
#define BALANCE_PACE_MARGIN_MS 1000u
unsigned balance_pace_hold_max(uint32_t answer_ms);

/* When --rebalance may close an idle connection whose client last sent a
 * byte at asked_ms, answered (the upstream's first bytes after it) at
 * answered_ms (older than asked_ms: not yet): between
 * BALANCE_SHED_AFTER_MIN_MS and BALANCE_SHED_AFTER_MAX_MS after that
 * answer (however long it took), or once the client has been silent for
 * BALANCE_SHED_SILENT_MS (a watch that only receives). Not in between: a client that asks
 * periodically (a kubelet renews its lease every 10 s) is then nearer its next request, and a close
 * it has not read by the time it sends that request fails the request; a busy client (a loaded
 * node, a stalled event loop) reads it late. Pure. */
#define BALANCE_SHED_AFTER_MIN_MS 250u
#define BALANCE_SHED_AFTER_MAX_MS 1500u
#define BALANCE_SHED_SILENT_MS 30000u
bool balance_shed_moment(uint64_t asked_ms, uint64_t answered_ms, uint64_t now_ms);

/* Fills order[0..n) with the indices 0..n-1 sorted by quiet_since_ms[],
 * oldest first (the connection quiet the longest), ties by index. Pure;
 * order is the caller's. */
void balance_shed_order(const uint64_t *quiet_since_ms, size_t n, size_t *order);

#endif
