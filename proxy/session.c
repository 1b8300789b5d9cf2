/* SPDX-License-Identifier: Apache-2.0 */
/* The TCP relay; see session.h for the state machine. */
#define LOG_MODULE "session"
#include "session.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "balance.h"
#include "clock.h"
#include "log.h"
#include "rand.h"
#include "sockopt.h"
#include "tlshello.h"
#include "upstream.h"
#include "worker.h"

/* Bytes moved per direction before yielding to other sessions. */
#define PUMP_BUDGET (1u << 20)
/* The pipe's capacity: one splice never moves more. */
#define PIPE_CHUNK PIPEPOOL_PIPE_BYTES
/* Reads are copied (recv/send through the worker's scratch buffer) until one
 * fills this much; then the direction carries bulk data and splices through
 * a pipe, until a read comes back smaller. Request/response traffic (watch
 * events, small API calls, TLS records of a few hundred bytes) pays two
 * cheap copies instead of two splices and a pipe. */
#define BUF_BYTES WORKER_SCRATCH_BYTES
/* A splice this small ends bulk mode (hysteresis against flapping). */
#define BULK_LOW (4u * 1024u)
/* A failed dial keeps new connections away from an upstream this long. */
#define DIAL_HOLD_MS 2000u
/* A connection found dead (--upstream-ack-timeout: seconds of sent bytes
 * never acknowledged, or keepalive unanswered) is stronger evidence than
 * one refused dial: new connections stay away long enough for the health
 * checks to decide (--fall x --health-interval at the defaults). A passed
 * check or a good dial ends the hold early. */
#define UNACKED_HOLD_MS 10000u
/* A connection lasting this long that its upstream ends (FIN or reset, the
 * client still talking) is a lost one, not a short exchange: its client will
 * dial again, and so will every other client of a dying apiserver. */
#define LOST_AFTER_US 1000000u
/* Paced closes and dials are due on this grid: one sweep of the worker's
 * sessions serves every deadline in a tick, so a window of thousands of
 * connections costs window / tick sweeps, not one per connection. */
#define PACE_TICK_MS 100u
/* --rebalance looks at the upstreams' shares about this often (each round
 * at a random time in [1/2, 3/2] of it, so the nodes of a fleet do not
 * shed in step). */
#define REBALANCE_ROUND_MS 1000u
/* A session that starts while a loss probe is in flight looks again for
 * its verdict this often (a probe of another worker ends without a word to
 * this one), at most LOSSPROBE_TIMEOUT_MS in all. */
#define PROBE_RECHECK_MS 5u
/* --rebalance acts this long after a slow start ended (a return), and
 * never outside such an episode. */
#define REBALANCE_EPISODE_MS 300000u
/* A connection --rebalance chose that was not at a moment to close
 * (balance_shed_moment) is closed at its next within this long: a kubelet
 * asks every 10 s. Past it the choice lapses, and a later round chooses
 * again. */
#define REBALANCE_LATER_MS 15000u

enum session_state {
    S_CONNECTING = 0,
    S_RELAYING,
    S_CLOSING,
};

/* One socket in the worker's event loop, edge-triggered: added once (the
 * client when accepted, the upstream when dialled), never changed, dropped
 * by close(2). What the events said is kept here until a call says EAGAIN. */
struct leg {
    struct ev_io io; /* first: the callbacks cast back */
    struct session *s;
    bool readable; /* bytes (or FIN, or an error) may be waiting */
    bool writable; /* the send buffer has room (or an error waits) */
    bool rdhup;    /* the peer's FIN has arrived behind the queued bytes */
    bool at_end;   /* the bytes before that FIN are all read: EOF */
    bool hangup;   /* an error or hangup was reported: it may be dead */
    bool failed;   /* a call on this socket failed: the session ends */
    int err;       /* the negative errno of that call */
};

#define LEG_EVENTS (EVLOOP_READ | EVLOOP_WRITE | EVLOOP_EDGE)

/* One direction of the relay: src -> dst. */
struct flow {
    int pipe[2];      /* bulk: borrowed while bytes are in flight, else -1 */
    char *buf;        /* own copy of bytes dst has not taken yet (or the replay) */
    char *data;       /* copy mode: the bytes in flight, in buf or the scratch */
    bool bulk;        /* the last read filled its buffer: splice the next */
    uint32_t pending; /* bytes read from src, not yet written to dst */
    uint32_t off;     /* buffer mode: first unsent byte */
    bool eof;         /* src sent FIN */
    bool shut;        /* dst was shut down for writing */
    bool queued;      /* a send to dst is queued (buf holds its bytes); op
                         answers it */
    struct sendq_op op;
    uint64_t total; /* bytes read from src: the close line's figure */
};

struct session {
    struct worker *w;
    struct session *prev, *next;           /* w->sessions */
    struct session *conn_prev, *conn_next; /* w->conn_head..conn_tail */
    struct leg client;
    struct leg upstream_leg;
    struct leg *up;               /* &upstream_leg while trying or connected */
    struct upstream_table *table; /* held while connecting, for the next try */
    struct upstream *upstream;    /* reference held once connected */
    struct upstream *trying;      /* the upstream of the current attempt */
    struct upstream_tried tried;
    bool again; /* a flow yielded with work left */
    struct flow c2u, u2c;
    uint64_t id;
    uint64_t accepted_us; /* for the duration on the close line */
    uint64_t start_us;    /* current attempt began (for latency) */
    uint64_t asked_us;    /* the client's first bytes went to this attempt's upstream; 0 = not */
    uint64_t connect_deadline_ms;
    uint64_t age_deadline_ms;   /* 0 = none */
    uint64_t drain_deadline_ms; /* 0 = not computed yet */
    uint64_t spread_close_ms;   /* its upstream is unhealthy: closed then; 0 = not */
    uint64_t dial_at_ms;        /* paced: the first dial waits until then; 0 = not */
    bool probe_wait;            /* dial_at_ms is a look at a loss probe's verdict */
    bool paced;                 /* its dial waited its turn once: never again */
    bool lost_noted;            /* its upstream ended it: counted for pacing */
    uint64_t quiet_since_ms;    /* the last byte either way (--rebalance sheds the quietest) */
    uint64_t client_sent_ms;    /* the client's last byte (--rebalance: balance_shed_moment) */
    uint64_t answered_ms;       /* the upstream's first bytes after it */
    uint64_t shed_by_ms;        /* --rebalance chose it: closed at its next moment until
                                   then (sweep_shed); 0 = not chosen */
    bool awaiting_reply;        /* the last bytes went to the upstream: an answer may be due */
    bool in_flight;             /* bytes sent upstream, not known acknowledged */
    uint64_t in_flight_ms;      /* since then (session_check_acks) */
    uint8_t state;
    bool counted;   /* counted in upstream->active */
    bool keepalive; /* the upstream socket has keepalive */
    /* Until the upstream's first byte, what the client sent is kept, so an
     * upstream that resets or closes before answering (a dying apiserver
     * with connections in its accept queue) is replaced invisibly. Only
     * while those bytes are a TLS ClientHello (tlshello.h): anything else
     * may have been acted on, and is never sent to a second upstream. */
    bool early;
    char *replay;
    uint32_t replay_len, replay_cap;
};

static void client_cb(struct ev_io *io, unsigned events);
static void upstream_cb(struct ev_io *io, unsigned events);
static void try_next(struct session *s);
static bool pace_dial(struct session *s);
static void session_close(struct session *s, const char *why);

/* --- small helpers ---------------------------------------------------- */

static void flow_init(struct flow *f)
{
    f->pipe[0] = -1;
    f->pipe[1] = -1;
    f->buf = NULL;
    f->data = NULL;
    f->bulk = false;
    f->pending = 0;
    f->off = 0;
    f->eof = false;
    f->shut = false;
    f->queued = false;
    f->op.busy = false;
}

/* Gives back the pipe or buffer of an idle flow. */
static void flow_release(struct worker *w, struct flow *f)
{
    if (f->pipe[0] >= 0)
        pipepool_put(&w->pipes, f->pipe, f->pending == 0);
    bufpool_put(&w->bufs, f->buf);
    f->buf = NULL;
    f->data = NULL;
    f->pending = 0;
    f->off = 0;
}

/* Chooses where the next read goes: a pipe for bulk data (unless the bytes
 * are needed for a replay, or no pipe can be had), else the scratch buffer. */
static void flow_acquire(struct worker *w, struct flow *f, bool need_bytes)
{
    if (f->pipe[0] >= 0)
        return;
    if (f->bulk && !need_bytes && f->buf == NULL && pipepool_get(&w->pipes, f->pipe) == 0)
        return;
    f->data = f->buf != NULL ? f->buf : w->scratch;
}

/* dst did not take everything: what is left moves out of the shared scratch
 * buffer into the flow's own. Returns 0 or -ENOMEM. */
static int flow_keep(struct worker *w, struct flow *f)
{
    if (f->data == f->buf)
        return 0;
    if (f->buf == NULL && (f->buf = bufpool_get(&w->bufs)) == NULL)
        return -ENOMEM;
    memcpy(f->buf, f->data + f->off, f->pending);
    f->data = f->buf;
    f->off = 0;
    return 0;
}

/* Records what an event says about l. */
static void leg_note(struct leg *l, unsigned events)
{
    if (events & EVLOOP_READ)
        l->readable = true;
    if (events & EVLOOP_WRITE)
        l->writable = true;
    if (events & EVLOOP_RDHUP)
        l->rdhup = true;
    if (events & EVLOOP_ERROR)
        l->hangup = true;
}

/* The error pending on l's socket as a negative errno (e.g. -ECONNRESET),
 * or 0. Reading clears it. */
static int leg_error(const struct leg *l)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(l->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        return -errno;
    return -err;
}

/* Makes the close(2) of l's socket send a reset (and drop what it still
 * queues) instead of a FIN. */
static void leg_abort(const struct leg *l)
{
    const struct linger lg = {.l_onoff = 1, .l_linger = 0};

    (void)setsockopt(l->io.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* Puts l's socket fd in the worker's event loop. Returns 0 or a negative
 * errno. */
static int leg_open(struct session *s, struct leg *l, int fd, ev_io_fn cb)
{
    l->io.fd = fd;
    l->io.events = 0;
    l->io.cb = cb;
    l->io.again = false;
    l->s = s;
    l->readable = false;
    l->writable = false;
    l->rdhup = false;
    l->at_end = false;
    l->hangup = false;
    l->failed = false;
    return evloop_set(&s->w->ev, &l->io, LEG_EVENTS);
}

/* The kind of dial failure a negative errno err is. */
static enum upstream_fail classify(int err)
{
    if (upstream_fail_is_local(-err))
        return UPSTREAM_FAIL_LOCAL;
    switch (err) {
    case -ECONNREFUSED:
    case -ECONNRESET:
        return UPSTREAM_FAIL_REFUSED;
    case -ETIMEDOUT:
        return UPSTREAM_FAIL_TIMEOUT;
    case -ENETUNREACH:
    case -EHOSTUNREACH:
        return UPSTREAM_FAIL_UNREACHABLE;
    default:
        return UPSTREAM_FAIL_OTHER;
    }
}

/* --- the connecting queue ------------------------------------------- */

static void connq_push(struct session *s)
{
    struct worker *w = s->w;

    s->conn_next = NULL;
    s->conn_prev = w->conn_tail;
    if (w->conn_tail != NULL)
        w->conn_tail->conn_next = s;
    else
        w->conn_head = s;
    w->conn_tail = s;
    if (s->conn_prev == NULL)
        worker_schedule_connects(w, s->connect_deadline_ms);
}

static void connq_remove(struct session *s)
{
    struct worker *w = s->w;

    if (s->conn_prev == NULL && w->conn_head != s)
        return; /* not queued */
    if (s->conn_prev != NULL)
        s->conn_prev->conn_next = s->conn_next;
    else
        w->conn_head = s->conn_next;
    if (s->conn_next != NULL)
        s->conn_next->conn_prev = s->conn_prev;
    else
        w->conn_tail = s->conn_prev;
    s->conn_prev = NULL;
    s->conn_next = NULL;
}

/* --- closing -------------------------------------------------------- */

static void session_free(struct session *s)
{
    struct worker *w = s->w;

    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        w->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    w->n_sessions--;
    atomic_fetch_sub(&w->sh->active, 1);
    free(s);
    if (w->n_sessions == 0 && !w->joining)
        worker_sessions_ended(w); /* a draining worker may end now */
}

static void leg_close(struct leg *l)
{
    evloop_forget(&l->s->w->ev, &l->io);
    close(l->io.fd);
    l->io.fd = -1;
}

/* Makes a send still queued by s's flows, so their buffers and sockets can
 * go. */
static void session_flush(struct session *s)
{
    if (s->c2u.op.busy || s->u2c.op.busy)
        evloop_flush(&s->w->ev);
}

/* The session's last line, with its context (nginx's trait): at info level
 * with --access-log, else at debug level; the client's address is looked up
 * only when the line is written. */
static void log_close(const struct session *s, const char *why)
{
    bool access = s->w->sh->cfg->access_log;
    struct addr peer = {.len = sizeof(peer.ss)};
    char client[ADDR_STRLEN] = "-";

    if (!log_enabled(access ? LOG_INFO : LOG_DEBUG))
        return;
    if (getpeername(s->client.io.fd, (struct sockaddr *)&peer.ss, &peer.len) == 0)
        addr_format(&peer, client, sizeof(client));
    LOG_AT(access ? LOG_INFO : LOG_DEBUG, "connection closed",
           "sid=%" PRIu64 " client=%s upstream=%s reason=%s duration_ms=%" PRIu64
           " bytes_in=%" PRIu64 " bytes_out=%" PRIu64,
           s->id, client, s->upstream != NULL ? s->upstream->name : "-", why,
           (clock_now_us() - s->accepted_us) / 1000, s->c2u.total, s->u2c.total);
}

static void session_close(struct session *s, const char *why)
{
    struct upstream *up = s->upstream;

    if (s->state == S_CLOSING)
        return;
    s->state = S_CLOSING;
    if (s->spread_close_ms != 0)
        atomic_fetch_sub(&s->w->sh->closes_pending, 1);
    if (s->dial_at_ms != 0)
        atomic_fetch_sub(&s->w->sh->dials_pending, 1);
    session_flush(s);
    connq_remove(s);
    flow_release(s->w, &s->c2u);
    flow_release(s->w, &s->u2c);
    free(s->replay);
    s->replay = NULL;
    if (s->table != NULL) {
        upstream_table_unref(s->table);
        s->table = NULL;
    }
    log_close(s, why);
    if (up != NULL) {
        if (s->counted)
            atomic_fetch_sub(&up->active, 1);
        upstream_unref(up);
        s->upstream = NULL;
    }
    if (s->up != NULL) {
        leg_close(s->up);
        s->up = NULL;
    }
    leg_close(&s->client);
    session_free(s);
}

/* --- the relay ------------------------------------------------------ */

static void early_end(struct session *s)
{
    s->early = false;
    free(s->replay);
    s->replay = NULL;
    s->replay_len = 0;
    s->replay_cap = 0;
    if (s->table != NULL) {
        upstream_table_unref(s->table);
        s->table = NULL;
    }
}

/* Keeps what the client sent (copy mode: f->data) until the upstream
 * answers; the first upstream byte, more than fits, or bytes that are not
 * the start of a TLS handshake end the early phase. */
static void early_note(struct session *s, struct flow *f, size_t n)
{
    if (f == &s->u2c) {
        early_end(s);
        return;
    }
    if (f->pipe[0] >= 0 || s->replay_len + n > BUF_BYTES) {
        early_end(s);
        return;
    }
    if (s->replay_len + n > s->replay_cap) {
        /* Small first (a TLS ClientHello is a few hundred bytes), grown on need. */
        uint32_t cap = s->replay_cap ? s->replay_cap : 1024;
        char *p;

        while (cap < s->replay_len + n)
            cap *= 2;
        if (cap > BUF_BYTES)
            cap = BUF_BYTES;
        p = realloc(s->replay, cap);
        if (p == NULL) {
            early_end(s);
            return;
        }
        s->replay = p;
        s->replay_cap = cap;
    }
    memcpy(s->replay + s->replay_len, f->data, n);
    s->replay_len += (uint32_t)n;
    /* Checked before these bytes are sent: an upstream that has them
     * could act on them (a plaintext request), so no other may get them. */
    if (!tlshello_prefix((const unsigned char *)s->replay, s->replay_len))
        early_end(s);
}

static void try_next(struct session *s);
static void release_upstream(struct session *s);

/* A client that closed without sending a byte (a TCP probe, an idle
 * connection given up) needs no other upstream when this one ends first. */
static bool early_done(const struct session *s)
{
    return s->c2u.eof && s->replay_len == 0;
}

/* Records that a call on l failed with err, a negative errno; returns err. */
static int leg_failed(struct leg *l, int err)
{
    l->failed = true;
    l->err = err;
    return err;
}

/* A time at random in [from, from + window_ms), rounded up to the tick.
 * From the worker's own generator, seeded per process: the nodes of a fleet
 * do not pace in step (a hash of the session id would be the same on every
 * node). */
static uint64_t pace_pick(struct worker *w, uint64_t from, unsigned window_ms)
{
    uint64_t t = from + upstream_picker_random(&w->picker) % window_ms;

    return (t + PACE_TICK_MS - 1) / PACE_TICK_MS * PACE_TICK_MS;
}

/* The upstream leg is dead: nothing came back for silent_ms (by
 * session_check_acks(), or the kernel's keepalive said ETIMEDOUT). A
 * data-path failure of the upstream, counted like a failed dial. */
static void note_unacked(struct session *s, struct upstream *up, uint64_t silent_ms)
{
    atomic_fetch_add_explicit(&up->closed_unacked, 1, memory_order_relaxed);
    upstream_hold(up, clock_now_ms(), UNACKED_HOLD_MS);
    log_warn_limited("upstream-unacked", 1000,
                     "upstream stopped acknowledging: connection closed, upstream avoided",
                     "sid=%" PRIu64 " upstream=%s silent_ms=%" PRIu64 " hold_ms=%u", s->id,
                     up->name, silent_ms, UNACKED_HOLD_MS);
}

/* Opens the paced-dial window from now for spread_ms (0: never) unless one
 * is open (the first failure opens it; later ones inside it do not stretch
 * it). Returns true when this call opened it. */
static bool pace_open(struct worker_shared *sh, uint64_t now, unsigned spread_ms)
{
    uint64_t until = atomic_load(&sh->pace_until_ms);

    if (spread_ms == 0 || now < until)
        return false;
    if (!atomic_compare_exchange_strong(&sh->pace_until_ms, &until, now + spread_ms))
        return false; /* another worker opened it */
    atomic_fetch_add_explicit(&sh->pace_windows, 1, memory_order_relaxed);
    return true;
}

/* Whether the paced-dial window is open at now. */
static bool pace_is_open(const struct worker_shared *sh, uint64_t now)
{
    return now < atomic_load(&sh->pace_until_ms);
}

/* What a loss probe of up found: gone (refused, reset, unreachable) opens
 * the paced-dial window and keeps new connections away from up as a
 * refused dial does; the sessions of this worker waiting for the verdict
 * look at once. */
static void probe_verdict(struct worker *w, struct upstream *up, enum lossprobe_verdict v)
{
    struct worker_shared *sh = w->sh;
    uint64_t now = clock_now_ms();

    atomic_fetch_add_explicit(&sh->loss_probes[v], 1, memory_order_relaxed);
    worker_schedule_sweep(w, now);
    if (v != LOSSPROBE_GONE) {
        log_debug("upstream ended a connection, probed: dials not paced", "upstream=%s probe=%s",
                  up->name, lossprobe_verdict_name(v));
        return;
    }
    upstream_hold(up, now, DIAL_HOLD_MS);
    if (pace_open(sh, now, sh->cfg->redial_spread_ms))
        log_warn("upstream ended a connection and refuses new ones: new dials are spread",
                 "upstream=%s probe=%s window_ms=%u", up->name, lossprobe_verdict_name(v),
                 sh->cfg->redial_spread_ms);
}

/* Moves the worker's loss probe on with what its socket said (events; 0:
 * its deadline came) and acts on its verdict once it has one. */
static void probe_step(struct worker *w, unsigned events)
{
    struct upstream *up = w->probe.up;
    int v;

    upstream_ref(up); /* the probe's reference goes with its verdict */
    v = lossprobe_step(&w->probe, &w->ev, events, clock_now_ms());
    if (v == -EINPROGRESS) {
        worker_schedule_sweep(w, w->probe.deadline_ms);
    } else {
        atomic_fetch_sub(&w->sh->probes_in_flight, 1);
        probe_verdict(w, up, (enum lossprobe_verdict)v);
    }
    upstream_unref(up);
}

static void probe_cb(struct ev_io *io, unsigned events)
{
    struct lossprobe *p = (struct lossprobe *)io;

    probe_step((struct worker *)((char *)p - offsetof(struct worker, probe)), events);
}

/* Probes up, which ended a lasting connection at now, unless this worker
 * has a probe in flight (it answers soon) or the window is open already. */
static void probe_start(struct worker *w, struct upstream *up, uint64_t now)
{
    struct worker_shared *sh = w->sh;
    enum lossprobe_verdict v;
    uint64_t until;
    int rc;

    if (pace_is_open(sh, now))
        return;
    rc = lossprobe_start(&w->probe, &w->ev, up, now, probe_cb, &v);
    if (rc < 0)
        return;
    if (rc == 1) {
        probe_verdict(w, up, v);
        return;
    }
    atomic_fetch_add(&sh->probes_in_flight, 1);
    until = atomic_load(&sh->probe_until_ms);
    while (until < now + LOSSPROBE_MAX_MS &&
           !atomic_compare_exchange_weak(&sh->probe_until_ms, &until, now + LOSSPROBE_MAX_MS))
        ;
    worker_schedule_sweep(w, w->probe.deadline_ms);
}

/* s's upstream ended a lasting connection while its client was still
 * there. A killed or stopping apiserver ends all of its connections in the
 * same instant and their clients dial again at once, so a mass loss
 * (balance_lost_is_mass: many of its connections within a burst) opens
 * the window in which new dials are spread over --redial-spread
 * (session_start). One close may be an apiserver ending a connection of
 * its own (a GOAWAY, a timeout), or the one connection a node had to an
 * apiserver that died: the first of a burst is probed (lossprobe.h), and
 * only a refused probe opens the window. */
static void note_lost(struct session *s)
{
    struct worker_shared *sh = s->w->sh;
    struct upstream *up = s->upstream;
    uint64_t now = clock_now_ms(), from;
    unsigned lost, total;

    s->lost_noted = true;
    if (sh->cfg->redial_spread_ms == 0 || clock_now_us() - s->start_us < LOST_AFTER_US)
        return;
    from = atomic_load(&up->lost_burst_from_ms);
    if ((from == 0 || now - from >= BALANCE_LOST_BURST_MS) &&
        atomic_compare_exchange_strong(&up->lost_burst_from_ms, &from, now)) {
        atomic_store(&up->lost_in_burst, 1); /* a new burst begins with this loss */
        lost = 1;
    } else {
        lost = atomic_fetch_add(&up->lost_in_burst, 1) + 1;
    }
    /* The lost ones before this one have left up->active; this one not yet. */
    total = atomic_load(&up->active) + lost - 1;
    if (!balance_lost_is_mass(lost, total)) {
        log_debug("upstream ended a connection: not a mass failure, probing it",
                  "sid=%" PRIu64 " upstream=%s lost=%u of=%u", s->id, up->name, lost, total);
        if (lost == 1)
            probe_start(s->w, up, now);
        return;
    }
    if (pace_open(sh, now, sh->cfg->redial_spread_ms))
        log_warn("upstream dropped its connections: new dials are spread",
                 "sid=%" PRIu64 " upstream=%s lost=%u of=%u within_ms=%u window_ms=%u", s->id,
                 up->name, lost, total, BALANCE_LOST_BURST_MS, sh->cfg->redial_spread_ms);
}

/* The last bytes before src's FIN go out with MSG_MORE: the shutdown(2) or
 * close(2) that follows in the same pump adds the FIN to their segment and
 * pushes it, so a peer that answers and closes (most short connections)
 * costs one segment less. Never otherwise: MSG_MORE without a FIN behind
 * it would hold the bytes. */
static int send_flags(const struct leg *sl)
{
    return MSG_NOSIGNAL | MSG_DONTWAIT | (sl->at_end ? MSG_MORE : 0);
}

/* What flow_send() and flow_recv() tell flow_pump(): go on, stop (the flow
 * waits for an event, or yields), or return at once without giving back
 * the flow's pipe or buffer (the upstream ended before its first byte and
 * the caller retries). A negative errno is a socket error. */
enum flow_step {
    FLOW_STOP = 0,
    FLOW_MORE,
    FLOW_HOLD,
};

/* The sending half: writes f's pending bytes to dl, from the pipe
 * (splice) or the buffer (send, or queued with the loop's batch when the
 * loop is queueing: sendq.h; the bytes then wait in the flow's own buffer,
 * not the shared scratch, and a full queue sends at once).
 *
 * A queued send that said "no room" (-EAGAIN) may be older than a writable
 * event delivered since (edge-triggered: said once), so it cannot clear
 * dl->writable: it is asked again, directly.
 *
 * While dl is not writable the next writable event resumes. Until then sl
 * is not read, and the other direction only writes to it: a reset of sl
 * would go unseen for as long as dl takes nothing (a stalled upstream
 * would keep a dead client's session, and its own connection, forever), so
 * a hangup reported on sl is checked here.
 *
 * Adds what was sent to *moved. Returns FLOW_MORE, FLOW_STOP or a negative
 * errno (the failed leg is marked). */
static int flow_send(struct session *s, struct flow *f, struct leg *sl, struct leg *dl,
                     size_t *moved)
{
    int dst = dl->io.fd, err;
    ssize_t n;

    if (f->queued) {
        if (f->op.busy)
            return FLOW_STOP; /* the answer calls the session again */
        f->queued = false;
        if (f->op.res != -EAGAIN)
            n = f->op.res >= 0 ? f->op.res : (errno = -f->op.res, -1);
        else
            n = send(dst, f->data + f->off, f->pending, send_flags(sl));
    } else if (!dl->writable) {
        if (sl->hangup && (err = leg_error(sl)) != 0)
            return leg_failed(sl, err);
        return FLOW_STOP;
    } else if (f->pipe[0] >= 0) {
        n = splice(f->pipe[0], NULL, dst, NULL, f->pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    } else {
        if (evloop_queueing(&s->w->ev)) {
            if (flow_keep(s->w, f) != 0)
                return -ENOMEM;
            if (evloop_send(&s->w->ev, &f->op, &s->client.io, dst, f->data + f->off, f->pending,
                            send_flags(sl))) {
                f->queued = true;
                return FLOW_STOP;
            }
        }
        n = send(dst, f->data + f->off, f->pending, send_flags(sl));
    }
    if (n < 0) {
        if (errno == EINTR)
            return FLOW_MORE;
        if (errno == EAGAIN) {
            if (f->pipe[0] < 0 && flow_keep(s->w, f) != 0)
                return -ENOMEM;
            dl->writable = false;
            return FLOW_STOP;
        }
        return leg_failed(dl, -errno);
    }
    f->pending -= (uint32_t)n;
    f->off += (uint32_t)n;
    *moved += (size_t)n;
    if (f == &s->c2u && n > 0 && !s->in_flight) {
        s->in_flight = true; /* session_check_acks() looks next time */
        s->in_flight_ms = clock_now_ms();
    }
    return FLOW_MORE;
}

/* src's EOF is passed on as shutdown(SHUT_WR) of dst, once. When the other
 * direction has ended too the session closes now, and close(2) sends this
 * FIN: nothing is left unread on either socket, so it is not a reset. */
static void flow_shut(struct session *s, struct flow *f, int dst)
{
    if (f->shut)
        return;
    if (!(f == &s->c2u ? s->u2c.shut : s->c2u.shut))
        shutdown(dst, SHUT_WR);
    f->shut = true;
}

/* Copy mode's bookkeeping after a read of n of asked bytes: a short read is
 * a message and emptied the socket (TCP hands over all it has): no read
 * that would only say EAGAIN; the next bytes or the FIN make a new event.
 * When the FIN was seen already, the queue ended with it: EOF, without a
 * read that returns 0. A full read means bulk data. In bulk mode a small
 * splice says the stream has calmed down: copy again. */
static void flow_mode(struct flow *f, struct leg *sl, size_t n, size_t asked)
{
    if (f->pipe[0] < 0) {
        if (n < asked) {
            sl->readable = false;
            sl->at_end = sl->rdhup;
        }
        f->bulk = n == asked;
    } else if (n < BULK_LOW) {
        f->bulk = false;
    }
}

/* The receiving half, for a flow with nothing pending: passes src's EOF on
 * (flow_shut), or reads from sl into the scratch buffer or the flow's own
 * (copy mode) or splices into a pipe (bulk mode), unless sl is not readable
 * or the budget is spent (then s->again is set: an edge-triggered socket
 * would not say it again). An upstream that ends before its first byte is
 * retried by the caller (unless there is nothing to retry): its FIN is not
 * passed on to the client yet (FLOW_HOLD). Counts what was read in *bytes.
 * Returns FLOW_MORE, FLOW_STOP, FLOW_HOLD or a negative errno (sl marked
 * failed). */
static int flow_recv(struct session *s, struct flow *f, struct leg *sl, struct leg *dl,
                     _Atomic uint64_t *bytes, size_t moved)
{
    size_t asked;
    ssize_t n;

    if (f->eof) {
        flow_shut(s, f, dl->io.fd);
        return FLOW_STOP;
    }
    if (!sl->readable && !sl->at_end)
        return FLOW_STOP; /* the next readable event resumes */
    if (moved >= PUMP_BUDGET) {
        s->again = true; /* yield to other sessions, come back */
        return FLOW_STOP;
    }
    flow_acquire(s->w, f, s->early && f == &s->c2u);
    f->off = 0;
    asked = f->pipe[0] < 0 ? BUF_BYTES : PIPE_CHUNK;
    if (sl->at_end)
        n = 0;
    else if (f->pipe[0] < 0)
        n = recv(sl->io.fd, f->data, asked, MSG_DONTWAIT);
    else
        n = splice(sl->io.fd, NULL, f->pipe[1], NULL, asked, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0) {
        if (errno == EINTR)
            return FLOW_MORE;
        if (errno == EAGAIN) {
            sl->readable = false;
            return FLOW_STOP;
        }
        return leg_failed(sl, -errno);
    }
    if (n == 0) {
        f->eof = true;
        return s->early && f == &s->u2c && !early_done(s) ? FLOW_HOLD : FLOW_MORE;
    }
    f->pending = (uint32_t)n;
    flow_mode(f, sl, (size_t)n, asked);
    atomic_fetch_add_explicit(bytes, (uint64_t)n, memory_order_relaxed);
    f->total += (uint64_t)n;
    if (s->early)
        early_note(s, f, (size_t)n);
    return FLOW_MORE;
}

/* Moves bytes src -> dst until one side would block or the budget is spent
 * (then s->again is set: an edge-triggered socket would not say it again):
 * flow_send() while bytes are pending, else flow_recv(). An idle flow holds
 * no pipe and no buffer. Returns 0, or a negative errno on a socket error
 * (the leg it came from is marked failed). */
static int flow_pump(struct session *s, struct flow *f, struct leg *sl, struct leg *dl,
                     _Atomic uint64_t *bytes)
{
    size_t moved = 0;
    int rc;

    do {
        if (f->pending > 0)
            rc = flow_send(s, f, sl, dl, &moved);
        else
            rc = flow_recv(s, f, sl, dl, bytes, moved);
    } while (rc == FLOW_MORE);
    if (rc < 0)
        return rc;
    if (rc == FLOW_STOP && f->pending == 0)
        flow_release(s->w, f);
    return 0;
}

/* RELAYING -> CONNECTING: the upstream went away before its first byte:
 * try the next one and replay what the client sent; the client sees
 * nothing. (A client that failed, a reset mostly, is not the upstream's
 * fault: the session just ends, in relay_failed.) */
static void relay_replay(struct session *s, struct upstream *up)
{
    atomic_fetch_add_explicit(&up->connect_fail[UPSTREAM_FAIL_REFUSED], 1, memory_order_relaxed);
    log_warn_limited("upstream-early-close", 1000,
                     "upstream closed before answering: retrying on the next one",
                     "sid=%" PRIu64 " upstream=%s replay_bytes=%u", s->id, up->name, s->replay_len);
    release_upstream(s);
    try_next(s);
}

/* RELAYING -> CLOSING on an error rc of one side (a reset, mostly): the
 * other gets a reset too, not a FIN. An apiserver drops the work of a
 * client that is gone, a client learns its answer is cut, and the kernel
 * drops the bytes still queued toward a peer that reads nothing at once. */
static void relay_failed(struct session *s, struct upstream *up, int rc)
{
    if (s->client.failed != s->up->failed)
        leg_abort(s->client.failed ? s->up : &s->client);
    if (s->up->failed && !s->client.failed && s->up->err != -ETIMEDOUT) {
        atomic_fetch_add_explicit(&up->failed_conns[s->u2c.total > 0], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->w->sh->failed_by_upstream[s->u2c.total > 0], 1,
                                  memory_order_relaxed);
    }
    session_close(s, s->up->failed && s->up->err == -ETIMEDOUT ? "upstream-unacked"
                     : rc == -ECONNRESET                       ? "reset"
                                                               : "error");
}

/* Runs both directions as far as the legs' readiness allows (no call that
 * would only say EAGAIN); closes the session when both directions have
 * ended or on an error. */
static void session_relay(struct session *s)
{
    struct upstream *up = s->upstream;
    uint64_t sent = s->c2u.total, answered = s->u2c.total;
    int rc, rc2 = 0;

    s->again = false;
    rc = flow_pump(s, &s->c2u, &s->client, s->up, &up->bytes_to);
    if (rc != 0 && s->up->failed) {
        /* A send to the upstream failed (it reset), maybe before its own
         * event was handled: what it sent before the reset may wait unread.
         * Read it now: it goes to the client (before the reset that
         * follows), and when it is a first byte the upstream has answered,
         * so nothing is replayed elsewhere. */
        s->up->readable = true;
    }
    if (rc == 0 || s->early || s->up->failed)
        rc2 = flow_pump(s, &s->u2c, s->up, &s->client, &up->bytes_from);
    if (rc == 0)
        rc = rc2;
    if (s->c2u.total != sent || s->u2c.total != answered) {
        /* How long the upstream takes to answer a client's first bytes (a
         * ClientHello): what pace_dial leaves for the handshake. */
        if (sent == 0 && s->c2u.total != 0)
            s->asked_us = clock_now_us();
        else if (answered == 0 && s->u2c.total != 0 && s->asked_us != 0)
            upstream_answer_sample(up, clock_now_us() - s->asked_us);
        s->quiet_since_ms = clock_now_ms();
        if (s->c2u.total != sent)
            s->client_sent_ms = s->quiet_since_ms;
        if (s->u2c.total != answered && s->awaiting_reply)
            s->answered_ms = s->quiet_since_ms;
        /* A request sent and no answer since (or both in one go: not
         * known to be complete): the upstream may be working on it. */
        s->awaiting_reply = s->c2u.total != sent;
        /* Chosen by --rebalance: look again once the answer is done. */
        if (s->shed_by_ms != 0 && !s->awaiting_reply)
            worker_schedule_sweep(s->w, s->quiet_since_ms + BALANCE_SHED_AFTER_MIN_MS);
    }
    if (s->up->failed && s->up->err == -ETIMEDOUT)
        note_unacked(s, up, /* keepalive, or the kernel's retransmissions */
                     (SOCKOPT_KEEPIDLE_S + SOCKOPT_KEEPINTVL_S * SOCKOPT_KEEPCNT) * 1000u);
    else if (!s->early && !s->lost_noted && !s->client.failed && !s->c2u.eof &&
             (s->u2c.eof || s->up->failed))
        note_lost(s);
    if (s->early && ((rc != 0 && !s->client.failed) || s->u2c.eof) && !early_done(s)) {
        relay_replay(s, up);
        return;
    }
    if (rc != 0) {
        relay_failed(s, up, rc);
        return;
    }
    if (s->c2u.shut && s->u2c.shut) {
        session_close(s, "done");
        return;
    }
    if (s->again)
        evloop_again(&s->w->ev, &s->client.io);
}

/* Client events; events 0 is the loop calling again after a yield. */
static void client_cb(struct ev_io *io, unsigned events)
{
    struct session *s = ((struct leg *)io)->s;

    leg_note(&s->client, events);
    if (s->state != S_RELAYING)
        return; /* kept for when the upstream answers */
    /* An error shows up as a failing recv/send/splice in the pump. */
    session_relay(s);
}

/* --- connecting ----------------------------------------------------- */

/* CONNECTING -> CONNECTING: the dial of s->trying failed with err, a
 * negative errno; counts it and tries the next upstream. */
static void attempt_failed(struct session *s, int err)
{
    struct upstream *up = s->trying;
    enum upstream_fail why = classify(err);
    uint64_t now = clock_now_ms(), lost_at = atomic_load(&up->lost_burst_from_ms);

    connq_remove(s);
    upstream_dial_failed(up, why, now, DIAL_HOLD_MS);
    log_warn_limited("upstream-dial", 1000, "upstream connect failed",
                     "sid=%" PRIu64 " upstream=%s err=\"%s\"", s->id, up->name,
                     err == -ETIMEDOUT ? "timeout" : strerror(-err));
    /* It ended a lasting connection just now and takes no new one: not an
     * apiserver closing one of its own but one that is gone (a node with
     * a single connection to it sees only this), so the clients' dials are
     * spread, this one's next too (it is one of the clients that all dial
     * again in this instant), unless it waited its turn or a timeout
     * already. */
    if (why != UPSTREAM_FAIL_LOCAL && lost_at != 0 && now - lost_at < BALANCE_LOST_BURST_MS &&
        pace_open(s->w->sh, now, s->w->sh->cfg->redial_spread_ms))
        log_warn("upstream refused after dropping a connection: new dials are spread",
                 "sid=%" PRIu64 " upstream=%s window_ms=%u", s->id, up->name,
                 s->w->sh->cfg->redial_spread_ms);
    s->trying = NULL;
    leg_close(s->up);
    s->up = NULL;
    /* A timed-out dial has waited its --connect-timeout already. */
    if (why != UPSTREAM_FAIL_TIMEOUT && pace_dial(s))
        return;
    try_next(s);
}

/* Back to connecting: drops the current upstream and its leg, resets both
 * directions (what the client sent is in the replay buffer). */
static void release_upstream(struct session *s)
{
    struct upstream *up = s->upstream;
    bool client_eof = s->c2u.eof;

    session_flush(s);
    if (s->counted)
        atomic_fetch_sub(&up->active, 1);
    s->counted = false;
    s->in_flight = false;
    s->asked_us = 0;
    upstream_unref(up);
    s->upstream = NULL;
    leg_close(s->up);
    s->up = NULL;
    flow_release(s->w, &s->c2u);
    flow_release(s->w, &s->u2c);
    flow_init(&s->c2u);
    flow_init(&s->u2c);
    s->c2u.eof = client_eof;
    s->state = S_CONNECTING;
}

static void connected(struct session *s)
{
    struct worker *w = s->w;
    struct upstream *up = s->trying;
    const struct config *cfg = w->sh->cfg;

    connq_remove(s);
    upstream_dial_ok(up, clock_now_us() - s->start_us);
    upstream_ref(up);
    s->upstream = up;
    s->trying = NULL;
    atomic_fetch_add(&up->active, 1);
    s->counted = true;
    s->state = S_RELAYING;
    if (!s->early) {
        upstream_table_unref(s->table);
        s->table = NULL;
    } else if (s->replay_len > 0) {
        /* A retry: the new upstream gets what the client already sent. */
        if (s->c2u.buf == NULL)
            s->c2u.buf = bufpool_get(&w->bufs);
        if (s->c2u.buf == NULL) {
            session_close(s, "out-of-memory");
            return;
        }
        memcpy(s->c2u.buf, s->replay, s->replay_len);
        s->c2u.data = s->c2u.buf;
        s->c2u.pending = s->replay_len;
        s->c2u.off = 0;
    }
    if (cfg->max_connection_age_ms != 0) {
        /* Jitter over the last quarter so reconnects spread out. */
        uint64_t age = cfg->max_connection_age_ms;
        uint64_t j = (age / 4) * rand_jitter_permille(s->id) / 1000;
        s->age_deadline_ms = clock_now_ms() + age - j;
        worker_schedule_sweep(w, s->age_deadline_ms);
    }
    s->quiet_since_ms = s->client_sent_ms = s->answered_ms = clock_now_ms();
    if (cfg->rebalance)
        worker_schedule_sweep(w, s->quiet_since_ms + REBALANCE_ROUND_MS);
    log_debug("session connected", "sid=%" PRIu64 " upstream=%s", s->id, up->name);
    session_relay(s);
}

static void upstream_cb(struct ev_io *io, unsigned events)
{
    struct leg *l = (struct leg *)io;
    struct session *s = l->s;
    int err = 0;

    leg_note(l, events);
    if (s->state == S_RELAYING) {
        session_relay(s);
        return;
    }
    if (s->state != S_CONNECTING || !(events & (EVLOOP_WRITE | EVLOOP_ERROR)))
        return;
    /* Writable without an error: connected (no getsockopt needed). */
    if ((events & EVLOOP_ERROR) && (err = leg_error(l)) == 0)
        err = -ECONNREFUSED;
    if (err != 0) {
        attempt_failed(s, err);
        return;
    }
    connected(s);
}

/* Starts one attempt to up. Returns 0 when the attempt is under way (or has
 * already failed over to the next upstream), or a negative errno when this
 * upstream cannot even be dialled. */
static int attempt_start(struct session *s, struct upstream *up)
{
    struct worker *w = s->w;
    struct leg *l;
    int fd, rc;

    fd = socket(up->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        rc = -errno;
        if (rc == -EMFILE || rc == -ENFILE)
            worker_out_of_fds(w, rc);
        return rc;
    }
    sockopt_nodelay(fd); /* keepalive comes later: session_keepalive() */
    sockopt_ack_with_data(fd);
    if (up->is_local)
        sockopt_local(fd);
    s->keepalive = false;
    l = &s->upstream_leg;
    l->io.fd = fd; /* in the loop once connect(2) has begun (leg_open) */
    l->io.events = 0;
    l->io.again = false;
    l->s = s;
    s->up = l;
    s->trying = up;
    s->start_us = clock_now_us();
    if (connect(fd, (const struct sockaddr *)&up->addr.ss, up->addr.len) == -1 &&
        errno != EINPROGRESS) {
        attempt_failed(s, -errno);
        return 0;
    }
    s->connect_deadline_ms = clock_now_ms() + w->sh->cfg->connect_timeout_ms;
    connq_push(s);
    rc = leg_open(s, l, fd, upstream_cb);
    if (rc != 0)
        attempt_failed(s, rc);
    return 0;
}

static void try_next(struct session *s)
{
    struct worker *w = s->w;
    long i;
    int rc;

    for (;;) {
        i = upstream_pick(&w->picker, s->table, &s->tried, clock_now_ms());
        if (i < 0 || s->tried.count > 64) {
            atomic_fetch_add_explicit(&w->sh->refused_no_upstream, 1, memory_order_relaxed);
            log_warn_limited("no-upstream", 1000, "no upstream accepted the connection",
                             "sid=%" PRIu64 " tried=%u", s->id, s->tried.count);
            session_close(s, "no-upstream");
            return;
        }
        rc = attempt_start(s, s->table->e[i].up);
        if (rc == 0)
            return;
        if (rc == -EMFILE || rc == -ENFILE) {
            session_close(s, "out-of-descriptors"); /* no other upstream helps */
            return;
        }
        /* Could not even make a socket: treat as a failed try and go on. */
    }
}

/* --- the worker's entry points --------------------------------------- */

/* The longest a paced dial of w may wait (balance_pace_hold_max): the
 * slowest answer lately of the upstreams it may dial. */
static unsigned pace_hold_max(const struct worker *w, uint64_t now)
{
    const struct upstream_table *t = w->table;
    uint32_t slowest = 0;

    for (size_t i = 0; t != NULL && i < t->n; i++) {
        const struct upstream *up = t->e[i].up;
        uint32_t ms = atomic_load_explicit(&up->answer_ms, memory_order_relaxed);

        if (upstream_usable(up, now) && ms > slowest)
            slowest = ms;
    }
    return balance_pace_hold_max(slowest);
}

/* Inside a window opened by note_lost(), a new session's first dial waits
 * until a time drawn at random in what is left of the window:
 * the clients of a lost apiserver, which all reconnect in the same instant,
 * reach the survivors spread over the window, from every node of a fleet
 * alike. What the client sends meanwhile waits in its socket. Returns true
 * when the dial was put off (session_sweep() makes it). */
static bool pace_dial(struct session *s)
{
    struct worker *w = s->w;
    uint64_t now = clock_now_ms(), until = atomic_load(&w->sh->pace_until_ms), at;
    unsigned hold;

    if (now >= until || s->paced)
        return false;
    /* Over what is left of the window: clients that dial again a second
     * after the loss (client-go's watch backoff, the next lease renewal)
     * are spread as much as those that dial at once. But never so long
     * that the client's TLS handshake, which waits for this dial, cannot
     * be done in its 10 s: slow answers (a saturated apiserver) shorten
     * the wait. */
    hold = pace_hold_max(w, now);
    if (hold > until - now)
        hold = (unsigned)(until - now);
    if (hold == 0)
        return false;
    at = pace_pick(w, now, hold);
    if (at <= now)
        return false;
    s->dial_at_ms = at;
    s->paced = true;
    atomic_fetch_add_explicit(&w->sh->dials_paced, 1, memory_order_relaxed);
    atomic_fetch_add(&w->sh->dials_pending, 1);
    log_debug("dial paced", "sid=%" PRIu64 " wait_ms=%" PRIu64 " hold_max_ms=%u", s->id, at - now,
              hold);
    worker_schedule_sweep(w, at);
    return true;
}

/* While a loss probe is in flight (in any worker), a new session's first
 * dial waits for its verdict: a refused probe means this client is likely
 * one of those a dead apiserver dropped, whose dials are to be spread.
 * Looked at every PROBE_RECHECK_MS (sweep_dial). Returns true when the
 * dial was put off. */
static bool probe_wait(struct session *s)
{
    struct worker_shared *sh = s->w->sh;
    uint64_t now = clock_now_ms();

    if (sh->cfg->redial_spread_ms == 0 || atomic_load(&sh->probes_in_flight) == 0 ||
        now >= atomic_load(&sh->probe_until_ms))
        return false;
    s->dial_at_ms = now + PROBE_RECHECK_MS;
    s->probe_wait = true;
    atomic_fetch_add(&sh->dials_pending, 1);
    worker_schedule_sweep(s->w, s->dial_at_ms);
    return true;
}

void session_start(struct worker *w, int client_fd)
{
    struct session *s;

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        close(client_fd);
        return;
    }
    s->w = w;
    s->id = atomic_fetch_add_explicit(&w->sh->next_session_id, 1, memory_order_relaxed);
    s->accepted_us = clock_now_us();
    s->client.io.fd = client_fd;
    s->client.io.cb = client_cb;
    s->client.s = s;
    flow_init(&s->c2u);
    flow_init(&s->u2c);
    /* client_fd has TCP_NODELAY and keepalive from the listener. */
    s->next = w->sessions;
    if (w->sessions != NULL)
        w->sessions->prev = s;
    w->sessions = s;
    w->n_sessions++;
    atomic_fetch_add(&w->sh->active, 1);
    s->state = S_CONNECTING;
    if (w->table == NULL || w->table->n == 0) {
        atomic_fetch_add_explicit(&w->sh->refused_no_upstream, 1, memory_order_relaxed);
        log_warn_limited("empty-table", 1000, "no upstream known: closing client", "sid=%" PRIu64,
                         s->id);
        session_close(s, "no-upstream");
        return;
    }
    /* In the loop from now on: what the client sends while the upstream
     * is dialled is noted and read once it answers. */
    if (leg_open(s, &s->client, client_fd, client_cb) != 0) {
        log_warn_limited("epoll", 1000, "cannot poll a client: closing it", "sid=%" PRIu64, s->id);
        session_close(s, "poll-error");
        return;
    }
    upstream_table_ref(w->table);
    s->table = w->table;
    s->early = true;
    if (pace_dial(s) || probe_wait(s))
        return;
    try_next(s);
}

uint64_t session_expire_connects(struct worker *w, uint64_t now_ms)
{
    while (w->conn_head != NULL) {
        struct session *s = w->conn_head;

        if (s->connect_deadline_ms > now_ms)
            return s->connect_deadline_ms;
        attempt_failed(s, -ETIMEDOUT);
    }
    return 0;
}

/* --- --rebalance ------------------------------------------------------ */

/* Idle at this instant: the last bytes were the upstream's (no request
 * sent since its answer), nothing held in apilb either way, nothing unread
 * in either socket, nothing sent to either peer and not yet acknowledged.
 * Closed now, the client sees a clean FIN between two requests; at a
 * moment far from its next (balance_shed_moment), so that it reads the FIN
 * before it sends that request, however slow it is to read. */
static bool session_idle_now(const struct session *s, uint64_t now_ms)
{
    int fds[2] = {s->client.io.fd, s->up != NULL ? s->up->io.fd : -1};

    if (s->state != S_RELAYING || s->early || s->in_flight || s->awaiting_reply ||
        !balance_shed_moment(s->client_sent_ms, s->answered_ms, now_ms) || s->c2u.pending != 0 ||
        s->u2c.pending != 0 || s->c2u.queued || s->u2c.queued || s->c2u.eof || s->u2c.eof)
        return false;
    for (int k = 0; k < 2; k++) {
        int unread = -1, unsent = -1;

        if (fds[k] < 0 || ioctl(fds[k], FIONREAD, &unread) == -1 ||
            ioctl(fds[k], SIOCOUTQ, &unsent) == -1 || unread != 0 || unsent != 0)
            return false;
    }
    return true;
}

/* Closes s, chosen by --rebalance. */
static void shed_now(struct session *s)
{
    atomic_fetch_add_explicit(&s->upstream->closed_by_rebalance, 1, memory_order_relaxed);
    session_close(s, "rebalance");
}

/* Sheds k of this worker's connections to up, the quietest first: each
 * idle at that instant, just after an answer or long silent
 * (session_idle_now), now; any other is chosen to close at its next such
 * moment (sweep_shed). Those chosen in earlier rounds count among the k.
 * Returns how many it closed now; *later, how many it chose for later. */
static unsigned shed_quietest(struct worker *w, struct upstream *up, unsigned mine, unsigned k,
                              unsigned *later)
{
    struct session **ss = malloc(mine * sizeof(*ss));
    uint64_t *quiet = malloc(mine * sizeof(*quiet));
    size_t *order = malloc(mine * sizeof(*order));
    unsigned n = 0, shed = 0, chosen = 0;
    uint64_t now_ms = clock_now_ms();

    *later = 0;
    if (ss == NULL || quiet == NULL || order == NULL)
        goto out; /* next round */
    for (struct session *s = w->sessions; s != NULL && n < mine; s = s->next)
        if (s->state == S_RELAYING && s->upstream == up) {
            chosen += s->shed_by_ms > now_ms;
            ss[n] = s;
            quiet[n++] = s->quiet_since_ms;
        }
    balance_shed_order(quiet, n, order);
    for (size_t i = 0; i < n && shed + chosen < k; i++) {
        struct session *s = ss[order[i]];

        if (s->shed_by_ms > now_ms) {
            continue;
        } else if (session_idle_now(s, now_ms)) {
            shed_now(s);
            shed++;
        } else if (!s->early) {
            s->shed_by_ms = now_ms + REBALANCE_LATER_MS;
            (*later)++;
            chosen++;
        }
    }
out:
    free(ss);
    free(quiet);
    free(order);
    return shed;
}

/* Sheds this worker's part of a share of up's connections over limit
 * (balance_shed_count), quietest first; one log line per batch (a round
 * whose chosen ones were all busy is retried next round, logged at debug
 * level only). */
static void shed_over(struct worker *w, struct upstream *up, unsigned active, unsigned limit,
                      unsigned n_usable)
{
    unsigned mine = 0, k, shed, later;

    for (struct session *s = w->sessions; s != NULL; s = s->next)
        mine += s->state == S_RELAYING && s->upstream == up;
    k = balance_shed_count(active, limit, mine, upstream_picker_random(&w->picker));
    if (k == 0)
        return;
    shed = shed_quietest(w, up, mine, k, &later);
    LOG_AT(shed + later != 0 ? LOG_INFO : LOG_DEBUG,
           "rebalance: closed idle connections of an upstream over its fair share",
           "upstream=%s worker=%u shed=%u later=%u of=%u active=%u fair_limit=%u usable=%u",
           up->name, w->id, shed, later, mine, active, limit, n_usable);
}

/* up's place in this process's own order of the upstreams (balance_target):
 * a key mixing the process's salt, the upstream and its last return
 * (returned_ms, ramped or not), so that each return deals that upstream a
 * new place on every node. The return is mixed on its own first, so that
 * its low bits cannot cancel the pointer's. */
static uint64_t rank_key(const struct worker *w, const struct upstream *up)
{
    return rand_mix64(w->sh->balance_salt ^ (uint64_t)(uintptr_t)up ^
                      rand_mix64(atomic_load(&up->returned_ms)));
}

/* Small shares (balance_target): the upstream furthest over its target
 * sheds, when another is under its own. Its client's next dial goes to the
 * least loaded; a round later the node looks again. */
static void rebalance_small(struct worker *w, const struct upstream_table *t, const size_t *idx,
                            unsigned n, unsigned total)
{
    uint64_t key[64];
    unsigned active[64], target[64], worst = n;
    bool under = false;

    for (unsigned a = 0; a < n; a++) {
        key[a] = rank_key(w, t->e[idx[a]].up);
        active[a] = atomic_load(&t->e[idx[a]].up->active);
    }
    for (unsigned a = 0; a < n; a++) {
        unsigned rank = 0;

        for (unsigned b = 0; b < n; b++)
            rank += key[b] < key[a] || (key[b] == key[a] && b < a);
        target[a] = balance_target(total, n, rank);
        under = under || active[a] < target[a];
        if (active[a] > target[a] &&
            (worst == n || active[a] - target[a] > active[worst] - target[worst]))
            worst = a;
    }
    if (under && worst < n)
        shed_over(w, t->e[idx[worst]].up, active[worst], target[worst], n);
}

/* One round of --rebalance: the fair share is the active connections over
 * the usable upstreams; each one over balance_fair_limit() sheds this
 * worker's part of a share of its excess (shed_over). Nothing while an
 * upstream is in slow start: that ramp moves the new connections first,
 * and a connection shed now would mostly come back to the overloaded ones.
 * Only for REBALANCE_EPISODE_MS after a slow start ended (small shares are
 * dealt by rank there, rebalance_small): a return is what unbalances a
 * fleet, and outside one the nodes keep their connections. A count read
 * in an instant is not a reason: short connections in flight, or clients
 * that closed theirs to one upstream, would otherwise shed the idle
 * kubelet connections of another in a steady state. */
static void rebalance_round(struct worker *w, uint64_t now_ms)
{
    const struct config *cfg = w->sh->cfg;
    const struct upstream_table *t = w->table;
    unsigned total = 0, n_usable = 0, least = UINT32_MAX, limit;
    size_t idx[64];
    bool episode = false;

    for (size_t i = 0; t != NULL && i < t->n && n_usable < 64; i++) {
        struct upstream *up = t->e[i].up;
        unsigned active = atomic_load(&up->active);
        uint64_t from = atomic_load(&up->returned_ms);

        if (t->e[i].fallback || !upstream_usable(up, now_ms))
            continue;
        if (upstream_slow_start_weight(up, cfg->slow_start_ms, now_ms) < BALANCE_WEIGHT_FULL)
            return;
        episode =
            episode || (from != 0 && now_ms < from + cfg->slow_start_ms + REBALANCE_EPISODE_MS);
        total += active;
        least = active < least ? active : least;
        idx[n_usable++] = i;
    }
    if (n_usable < 2 || !episode)
        return;
    if (total < BALANCE_SMALL_SHARE * n_usable) {
        rebalance_small(w, t, idx, n_usable, total);
        return;
    }
    limit = balance_fair_limit(total, n_usable, least);
    for (unsigned a = 0; a < n_usable; a++) {
        struct upstream *up = t->e[idx[a]].up;
        unsigned active = atomic_load(&up->active);

        if (active > limit)
            shed_over(w, up, active, limit, n_usable);
    }
}

static uint64_t drain_deadline(struct session *s, uint64_t since, unsigned drain_ms)
{
    /* Spread closes over the second half of the drain window. */
    uint64_t half = drain_ms / 2;
    uint64_t j = half * rand_jitter_permille(s->id) / 1000;
    return since + half + j;
}

/* What one session_sweep() gathers across the sessions of its worker. */
struct sweep {
    const struct config *cfg;
    uint64_t now_ms;
    uint64_t next;                 /* the earliest deadline left, 0 = none */
    char spread_name[ADDR_STRLEN]; /* an upstream whose spread closes began */
    unsigned n_spread;             /* how many spread closes began */
    /* No upstream of the table is usable: an unhealthy one's connections
     * are kept (there is nowhere to move them, and every check failing at
     * once points at this node or the checks rather than at every
     * apiserver: closing them would only add a reconnect storm). */
    bool hold_health_closes;
};

/* Notes a future deadline at. */
static void sweep_due(struct sweep *sw, uint64_t at)
{
    if (sw->next == 0 || at < sw->next)
        sw->next = at;
}

/* A paced dial (pace_dial) whose time came is made now; one waiting for a
 * loss probe (probe_wait) is paced if the probe opened the window, waits
 * on while it is in flight, and is made now otherwise. */
static void sweep_dial(struct session *s, struct sweep *sw)
{
    if (s->dial_at_ms <= sw->now_ms) {
        s->dial_at_ms = 0;
        atomic_fetch_sub(&s->w->sh->dials_pending, 1);
        if (s->probe_wait) {
            s->probe_wait = false;
            if (pace_dial(s) || probe_wait(s)) {
                sweep_due(sw, s->dial_at_ms); /* this sweep sets the timer */
                return;
            }
        }
        try_next(s);
    } else {
        sweep_due(sw, s->dial_at_ms);
    }
}

/* --close-unhealthy: closes s, whose upstream failed its checks (and does
 * not merely answer "not ready"), at once or, with --close-spread, at a
 * time of its own in the window, so that the clients do not all dial the
 * survivors in one instant. One healthy again before its turn stays.
 * Returns true when s was closed. */
static bool sweep_unhealthy(struct session *s, struct upstream *up, struct sweep *sw)
{
    struct worker *w = s->w;

    if (!(sw->cfg->close_unhealthy && atomic_load(&up->health) == UPSTREAM_UNHEALTHY &&
          atomic_load(&up->unready_since_ms) == 0) ||
        sw->hold_health_closes) {
        if (s->spread_close_ms != 0) {
            s->spread_close_ms = 0;
            atomic_fetch_sub(&w->sh->closes_pending, 1);
        }
        return false;
    }
    if (sw->cfg->close_spread_ms == 0) {
        atomic_fetch_add_explicit(&up->closed_by_health, 1, memory_order_relaxed);
        session_close(s, "upstream-unhealthy");
        return true;
    }
    if (s->spread_close_ms == 0) {
        s->spread_close_ms = pace_pick(w, sw->now_ms, sw->cfg->close_spread_ms);
        atomic_fetch_add(&w->sh->closes_pending, 1);
        snprintf(sw->spread_name, sizeof(sw->spread_name), "%s", up->name);
        sw->n_spread++;
    }
    if (s->spread_close_ms <= sw->now_ms) {
        atomic_fetch_add_explicit(&up->closed_by_health, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&w->sh->closed_by_spread, 1, memory_order_relaxed);
        session_close(s, "upstream-unhealthy");
        return true;
    }
    sweep_due(sw, s->spread_close_ms);
    return false;
}

/* Closes s at its drain deadline when its upstream was removed (draining
 * since `since`) or, with --close-unhealthy, answers "not ready" (drained
 * like a removal). Returns true when s was closed. */
static bool sweep_drain(struct session *s, struct upstream *up, uint64_t since, struct sweep *sw)
{
    uint64_t dl;

    if (sw->cfg->close_unhealthy && atomic_load(&up->health) == UPSTREAM_UNHEALTHY) {
        uint64_t unready = atomic_load(&up->unready_since_ms);

        if (unready != 0 && (since == 0 || unready < since))
            since = unready;
    }
    if (since == 0)
        return false;
    dl = drain_deadline(s, since, sw->cfg->drain_timeout_ms);
    if (dl <= sw->now_ms) {
        atomic_fetch_add_explicit(&up->closed_by_drain, 1, memory_order_relaxed);
        session_close(s, atomic_load(&up->draining_since_ms) != 0 ? "upstream-removed"
                                                                  : "upstream-not-ready");
        return true;
    }
    sweep_due(sw, dl);
    return false;
}

/* --max-age: closes s once its deadline passed. */
static void sweep_age(struct session *s, struct sweep *sw)
{
    if (s->age_deadline_ms == 0)
        return;
    if (s->age_deadline_ms <= sw->now_ms) {
        atomic_fetch_add_explicit(&s->w->sh->closed_by_age, 1, memory_order_relaxed);
        session_close(s, "max-age");
        return;
    }
    sweep_due(sw, s->age_deadline_ms);
}

/* The RELAYING -> CLOSING edges of the sweep, in this order: unhealthy
 * upstream, drain, chosen by --rebalance, maximum age. */
/* --rebalance chose s in a round when it was not at a moment to close
 * (shed_quietest): closed at its first, unless the choice lapsed. Returns
 * true when s was closed. */
static bool sweep_shed(struct session *s, struct sweep *sw)
{
    if (s->shed_by_ms == 0)
        return false;
    if (sw->now_ms >= s->shed_by_ms) {
        s->shed_by_ms = 0;
        return false;
    }
    if (session_idle_now(s, sw->now_ms)) {
        shed_now(s);
        return true;
    }
    sweep_due(sw, s->shed_by_ms);
    return false;
}

static void sweep_relaying(struct session *s, struct sweep *sw)
{
    struct upstream *up = s->upstream;
    uint64_t since = atomic_load(&up->draining_since_ms);

    if (sweep_unhealthy(s, up, sw) || sweep_drain(s, up, since, sw) || sweep_shed(s, sw))
        return;
    sweep_age(s, sw);
}

/* Notes (once for the process, by whichever worker sees it first) that
 * health closes are held because no upstream is usable, or resume. */
static void sweep_hold_note(struct worker *w, bool hold)
{
    bool was = !hold;

    if (!atomic_compare_exchange_strong(&w->sh->health_closes_held, &was, hold))
        return;
    if (hold)
        log_warn("every upstream unhealthy: their connections are kept, not closed",
                 "worker=%u active=%u", w->id, atomic_load(&w->sh->active));
    else
        log_info("an upstream is usable again: unhealthy ones' connections close", "worker=%u",
                 w->id);
}

/* --rebalance: a round when its time came (the first sweep only sets the
 * time), then the next at a jittered time, due while the worker has
 * sessions. */
static void sweep_rebalance(struct worker *w, struct sweep *sw)
{
    if (!sw->cfg->rebalance)
        return;
    if (sw->now_ms >= w->rebalance_at_ms) {
        /* Not while the clients of a failed upstream dial again: a
         * connection moved now adds to the storm at the survivors. */
        if (w->rebalance_at_ms != 0 && !pace_is_open(w->sh, sw->now_ms))
            rebalance_round(w, sw->now_ms);
        w->rebalance_at_ms = sw->now_ms + REBALANCE_ROUND_MS / 2 +
                             upstream_picker_random(&w->picker) % REBALANCE_ROUND_MS;
    }
    if (w->n_sessions > 0)
        sweep_due(sw, w->rebalance_at_ms);
}

uint64_t session_sweep(struct worker *w, uint64_t now_ms)
{
    struct sweep sw = {.cfg = w->sh->cfg, .now_ms = now_ms};
    bool closing = atomic_load(&w->sh->phase) == WORKER_CLOSING;
    struct session *s, *nx;

    if (sw.cfg->close_unhealthy && w->table != NULL && w->table->n > 0) {
        sw.hold_health_closes = upstream_table_usable(w->table, now_ms) == 0;
        sweep_hold_note(w, sw.hold_health_closes);
    }

    if (!closing)
        sweep_rebalance(w, &sw);
    if (lossprobe_busy(&w->probe)) {
        if (now_ms >= w->probe.deadline_ms)
            probe_step(w, 0);
        if (lossprobe_busy(&w->probe))
            sweep_due(&sw, w->probe.deadline_ms);
    }
    for (s = w->sessions; s != NULL; s = nx) {
        nx = s->next;
        if (s->state == S_CLOSING)
            continue;
        if (closing)
            session_close(s, "shutdown");
        else if (s->state == S_CONNECTING && s->dial_at_ms != 0)
            sweep_dial(s, &sw);
        else if (s->state == S_RELAYING && s->upstream != NULL)
            sweep_relaying(s, &sw);
    }
    /* Their clients dial again as their turns come, spread as the closes
     * are: no window of paced dials on top. One would put off, to late in
     * the window, the dials of the clients that need one now (a request
     * caught in a black hole, reset by the ack watch, retried at once). */
    if (sw.n_spread != 0)
        log_warn("upstream unhealthy: closing its connections spread over the window",
                 "upstream=%s worker=%u connections=%u window_ms=%u", sw.spread_name, w->id,
                 sw.n_spread, sw.cfg->close_spread_ms);
    return sw.next;
}

void session_keepalive(struct worker *w, uint64_t now_ms)
{
    uint64_t after_ms = SOCKOPT_KEEPALIVE_AFTER_S * 1000u;
    uint64_t before_us = (now_ms > after_ms ? now_ms - after_ms : 0) * 1000u;

    for (struct session *s = w->sessions; s != NULL; s = s->next) {
        if (s->state == S_RELAYING && !s->keepalive && s->start_us <= before_us) {
            sockopt_keepalive(s->up->io.fd);
            s->keepalive = true;
        }
    }
}

size_t session_list(struct worker *w, size_t skip, struct session_info *out, size_t max,
                    size_t *total)
{
    static const char *const names[] = {"connecting", "relaying", "closing"};
    uint64_t now = clock_now_us();
    size_t i = 0, n = 0;

    for (struct session *s = w->sessions; s != NULL; s = s->next, i++) {
        struct session_info *o = &out[n];

        if (i < skip || n == max)
            continue;
        *o = (struct session_info){.sid = s->id,
                                   .age_ms = (now - s->accepted_us) / 1000,
                                   .bytes_in = s->c2u.total,
                                   .bytes_out = s->u2c.total,
                                   .state = names[s->state]};
        o->client.len = sizeof(o->client.ss);
        if (getpeername(s->client.io.fd, (struct sockaddr *)&o->client.ss, &o->client.len) != 0)
            o->client.len = 0;
        if (s->upstream != NULL)
            snprintf(o->upstream, sizeof(o->upstream), "%s", s->upstream->name);
        n++;
    }
    *total = i;
    return n;
}

void session_check_acks(struct worker *w, uint64_t now_ms)
{
    unsigned limit_ms = w->sh->cfg->upstream_ack_timeout_ms;
    struct session *s, *nx;

    for (s = w->sessions; s != NULL; s = nx) {
        struct tcp_info ti;
        socklen_t len = sizeof(ti);
        uint64_t silent_ms;

        nx = s->next;
        if (s->state != S_RELAYING || !s->in_flight)
            continue;
        memset(&ti, 0, sizeof(ti));
        if (getsockopt(s->up->io.fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1)
            continue;
        if (ti.tcpi_unacked == 0 && ti.tcpi_probes == 0) {
            s->in_flight = false; /* all acknowledged: idle until the next send */
            continue;
        }
        /* Silent since the later of the last ACK and the send that began
         * this stretch (an old last ACK says nothing of bytes sent just
         * now). An answered window probe is an ACK: a peer that reads
         * nothing is alive. */
        silent_ms = now_ms - s->in_flight_ms;
        if (ti.tcpi_last_ack_recv < silent_ms)
            silent_ms = ti.tcpi_last_ack_recv;
        if (silent_ms < limit_ms)
            continue;
        note_unacked(s, s->upstream, silent_ms);
        if (s->early && !early_done(s)) {
            /* Only a ClientHello went there: the next upstream gets it. */
            release_upstream(s);
            try_next(s);
            continue;
        }
        leg_abort(&s->client);
        leg_abort(s->up);
        session_close(s, "upstream-unacked");
    }
}

void session_probe_cancel(struct worker *w)
{
    if (lossprobe_busy(&w->probe)) {
        lossprobe_cancel(&w->probe, &w->ev);
        atomic_fetch_sub(&w->sh->probes_in_flight, 1);
    }
}

void session_close_all(struct worker *w)
{
    struct session *s, *nx;

    for (s = w->sessions; s != NULL; s = nx) {
        nx = s->next;
        session_close(s, "shutdown");
    }
}
