/* SPDX-License-Identifier: Apache-2.0 */
/* Why did an upstream end a lasting connection? One TCP connect to it says.
 * Refused, reset or unreachable: the apiserver is gone, and every client it
 * had, on every node of the fleet, dials again in this instant; a node
 * whose only connection was the kubelet's sees its own loss and nothing
 * more, never a mass of them (balance_lost_is_mass), so this is the only
 * sign it gets. Accepted and kept: the apiserver closed one connection of
 * its own (a GOAWAY, an idle timeout) and is serving. No answer within
 * LOSSPROBE_TIMEOUT_MS, or a failure on this host, says neither.
 *
 * Accepted is not yet alive: a process that is killed closes its
 * connections before its listening socket (the kernel releases a dying
 * process's files last opened first), so a connect made on the FIN of one
 * of them can still complete, and is reset a moment later with every
 * connection queued on the listener. An accepted probe is alive only when
 * it is still open LOSSPROBE_SETTLE_MS later; a server waiting for the
 * TLS ClientHello that never comes does not close it before that.
 *
 * One probe per worker at a time; session.c starts it on the first loss of
 * a burst and decides what the verdict does (the paced-dial window). The
 * probe's socket is the worker's, polled in its loop; the worker's sweep
 * calls lossprobe_step() at the deadline. One thread: the worker's. */
#ifndef PROXY_LOSSPROBE_H
#define PROXY_LOSSPROBE_H

#include <stdbool.h>
#include <stdint.h>

#include "evloop.h"

struct upstream;

/* A reachable apiserver answers a SYN within a round trip: milliseconds on
 * a LAN, about 100 ms across a continent. Longer is no verdict. */
#define LOSSPROBE_TIMEOUT_MS 250u
/* How long an accepted probe must stay open to be alive. */
#define LOSSPROBE_SETTLE_MS 100u
/* The longest a probe takes. */
#define LOSSPROBE_MAX_MS (LOSSPROBE_TIMEOUT_MS + LOSSPROBE_SETTLE_MS)

enum lossprobe_verdict {
    LOSSPROBE_ALIVE,   /* it accepted the connection */
    LOSSPROBE_GONE,    /* refused, reset or unreachable */
    LOSSPROBE_UNKNOWN, /* no answer in time, or a failure on this host */
    LOSSPROBE_N_VERDICTS
};

/* "alive", "gone", "unknown". */
const char *lossprobe_verdict_name(enum lossprobe_verdict v);

/* The verdict of a connect that ended with err: 0 (connected) or a
 * negative errno. Pure. */
enum lossprobe_verdict lossprobe_classify(int err);

struct lossprobe {
    struct ev_io io;      /* first: the callback casts back; fd -1: none in flight */
    struct upstream *up;  /* the probed upstream, a reference held while in flight */
    uint64_t deadline_ms; /* call lossprobe_step() then */
    bool settling;        /* connected: waiting LOSSPROBE_SETTLE_MS for a reset */
};

/* Makes p idle. */
void lossprobe_init(struct lossprobe *p);

/* Whether a probe is in flight. */
bool lossprobe_busy(const struct lossprobe *p);

/* Starts a connect to up from loop l at now_ms; cb gets the socket's
 * events and passes them to lossprobe_step(). Returns 0 when it is under
 * way, 1 when the verdict is known at once (*verdict set, nothing in
 * flight: a connect that failed before waiting), or -EBUSY when a probe is
 * in flight. */
int lossprobe_start(struct lossprobe *p, struct evloop *l, struct upstream *up, uint64_t now_ms,
                    ev_io_fn cb, enum lossprobe_verdict *verdict)
    __attribute__((warn_unused_result));

/* Moves the probe in flight on: events are what its callback got, or 0 at
 * p->deadline_ms. Returns its verdict (>= 0) when it has one: the socket is
 * closed and the reference to p->up dropped (take one of your own first if
 * you need it). -EINPROGRESS: not yet (p->deadline_ms says when to look). */
int lossprobe_step(struct lossprobe *p, struct evloop *l, unsigned events, uint64_t now_ms);

/* Ends the probe in flight without a verdict (the worker is closing). */
void lossprobe_cancel(struct lossprobe *p, struct evloop *l);

#endif
