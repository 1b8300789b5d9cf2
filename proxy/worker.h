/* SPDX-License-Identifier: Apache-2.0 */
/* A worker: one thread running one event loop (evloop.h: its sockets in an
 * epoll set, its timers and wakeups in an embedded libuv loop) with its own
 * SO_REUSEPORT listening sockets and the sessions it accepted. Workers share nothing but
 * the upstreams (atomics), the process-wide counters and phase below, and
 * their table mailbox. The control thread steers them by changing state
 * (phase, a new table, upstream health) and calling worker_kick(). */
#ifndef PROXY_WORKER_H
#define PROXY_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "evloop.h"
#include "handoff.h"
#include "lossprobe.h"
#include "bufpool.h"
#include "pipepool.h"
#include "session.h"
#include "upstream.h"

enum worker_phase {
    WORKER_RUNNING = 0,
    WORKER_DRAINING, /* listeners closed; open sessions go on */
    WORKER_CLOSING,  /* shutdown deadline passed: close every session */
};

/* Process-wide state shared by the control thread and every worker. */
struct worker_shared {
    const struct config *cfg;
    _Atomic int phase;       /* enum worker_phase */
    _Atomic unsigned active; /* open client sessions, all workers */
    _Atomic uint64_t accepted;
    _Atomic uint64_t refused_limit;       /* over --max-connections */
    _Atomic uint64_t refused_no_upstream; /* every upstream failed */
    _Atomic uint64_t accept_errors;
    _Atomic uint64_t closed_by_age;
    /* Sessions an upstream reset or failed, [0] before its first byte,
     * [1] after (the per-upstream counters go with a pruned upstream). */
    _Atomic uint64_t failed_by_upstream[2];
    _Atomic unsigned send_batching;    /* workers with io_uring (sendq.h) */
    _Atomic uint64_t sends_batched;    /* sends made together with others */
    _Atomic uint64_t send_batches;     /* system calls that made them */
    _Atomic uint64_t table_generation; /* newest generation any worker runs */
    _Atomic uint64_t next_session_id;
    _Atomic unsigned listener_foreign_sharers; /* sharewatch.h */
    _Atomic unsigned listener_apilb_sharers;
    /* --redial-spread, --close-spread (session.c): the end (clock_now_ms)
     * of the current or last window of paced dials, 0 before the first;
     * the dials put off in total and now; the closes of unhealthy
     * upstreams' connections scheduled now and made. */
    _Atomic uint64_t pace_until_ms;
    _Atomic uint64_t pace_windows; /* windows opened: mass failures, unhealthy upstreams */
    /* --rebalance (session.c): this process's own order of the upstreams
     * for small shares; set before the workers start, then only read. */
    uint64_t balance_salt;
    _Atomic uint64_t dials_paced;
    _Atomic unsigned dials_pending;
    _Atomic unsigned closes_pending;
    _Atomic uint64_t closed_by_spread;
    /* Loss probes (lossprobe.h) in flight in any worker, and until when the
     * newest may run: sessions that start meanwhile wait for the verdict.
     * Their verdicts, by enum lossprobe_verdict. */
    _Atomic unsigned probes_in_flight;
    _Atomic uint64_t probe_until_ms;
    _Atomic uint64_t loss_probes[LOSSPROBE_N_VERDICTS];
    /* No upstream is usable: health does not close connections (session.c). */
    _Atomic bool health_closes_held;
};

struct worker_listener {
    struct ev_io io; /* first: the callback casts back */
    int fd;
    struct worker *w;
};

struct session;

#define WORKER_SCRATCH_BYTES (16u * 1024u)

/* A question from another thread (GET /connections), answered on the
 * worker's loop under query_mu. */
struct worker_query {
    size_t skip, max;
    struct session_info *out;
    size_t n, total;
    bool done;
};

struct worker {
    unsigned id;
    struct worker_shared *sh;
    uv_loop_t loop;
    struct evloop ev; /* the sockets; runs loop */
    uv_thread_t thread;
    uv_async_t kick;
    uv_timer_t connect_timer;   /* fires at the head of the connecting queue */
    uv_timer_t accept_timer;    /* resumes accepting after EMFILE */
    uv_timer_t sweep_timer;     /* drain, age and shutdown deadlines */
    uv_timer_t keepalive_timer; /* upstream keepalive for lasting sessions */
    uv_timer_t ack_timer;       /* --upstream-ack-timeout: session_check_acks() */
    struct worker_listener listeners[CONFIG_MAX_LISTEN];
    size_t n_listeners;
    bool accept_paused;
    bool listeners_closed; /* draining: the loop ends with the last session */
    struct handoff mailbox;
    struct upstream_table *table; /* the table new sessions pick from */
    struct upstream_picker picker;
    struct pipepool pipes;
    struct bufpool bufs; /* the flows' own buffers (WORKER_SCRATCH_BYTES) */
    /* Small reads land here and are sent on at once; only what dst does not
     * take is copied into a buffer of the session's own. */
    char scratch[WORKER_SCRATCH_BYTES];
    struct session *sessions; /* every open session */
    uint64_t rebalance_at_ms; /* --rebalance: the next round (session_sweep); 0 = none yet */
    size_t n_sessions;
    struct lossprobe probe;    /* why an upstream ended a lasting connection (session.c) */
    struct session *conn_head; /* sessions connecting, oldest first */
    struct session *conn_tail;
    uv_async_t *done; /* borrowed: control's "a worker ended" */
    _Atomic bool finished;
    uv_mutex_t query_mu;
    uv_cond_t query_cv;
    struct worker_query *query; /* a pending question, under query_mu */
    bool joining;               /* worker_join() is closing what is left */
};

/* Initialises w (caller allocates) around the listening fds (stolen) and
 * starts its thread. done is sent when the worker's loop has ended. */
int worker_start(struct worker *w, unsigned id, struct worker_shared *sh, const int *fds,
                 size_t n_fds, struct upstream_table *first, uv_async_t *done)
    __attribute__((warn_unused_result));

/* Hands a new table to the worker (steals the reference). Any thread. */
void worker_publish(struct worker *w, struct upstream_table *t);

/* Makes sure the connect timer fires by deadline_ms. The worker's loop
 * thread (sessions call it when the connecting queue was empty). */
void worker_schedule_connects(struct worker *w, uint64_t deadline_ms);

/* Makes sure the sessions are swept again by deadline_ms (maximum age).
 * The worker's loop thread. */
void worker_schedule_sweep(struct worker *w, uint64_t deadline_ms);

/* A session could not make its upstream socket (err -EMFILE or -ENFILE): the
 * worker stops accepting for a while, so clients wait in the accept queue
 * instead of being accepted only to be closed. The worker's loop thread. */
void worker_out_of_fds(struct worker *w, int err);

/* The worker's last session has closed: a draining worker ends its loop.
 * The worker's loop thread. */
void worker_sessions_ended(struct worker *w);

/* Asks the worker to look at the shared state again (phase, upstream health,
 * draining). Any thread. */
void worker_kick(struct worker *w);

/* Lists w's sessions (session_list() on w's loop): waits at most timeout_ms
 * for the loop to answer. Returns 0, or -ETIMEDOUT (the loop is busy or has
 * ended; nothing was written). Any thread but w's. */
int worker_list_sessions(struct worker *w, size_t skip, struct session_info *out, size_t max,
                         size_t *n, size_t *total, unsigned timeout_ms)
    __attribute__((warn_unused_result));

/* Joins the thread and frees what is left. Main thread, after done, and
 * after the last worker_kick()/worker_publish(). */
void worker_join(struct worker *w);

#endif
