/* SPDX-License-Identifier: Apache-2.0 */
/* evloop: sockets on the loop's epoll set, libuv timers and wakeups embedded. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <uv.h>

#include "check_run.h"
#include "evloop.h"

struct fixture {
    uv_loop_t uv;
    struct evloop ev;
    uv_timer_t stop_timer;
};

static void stop_cb(uv_timer_t *t)
{
    evloop_stop(t->data);
}

/* A loop that stops after stop_ms at the latest. */
static void fixture_init(struct fixture *f, uint64_t stop_ms)
{
    ck_assert_int_eq(uv_loop_init(&f->uv), 0);
    ck_assert_int_eq(evloop_init(&f->ev, &f->uv, true), 0);
    uv_timer_init(&f->uv, &f->stop_timer);
    f->stop_timer.data = &f->ev;
    uv_timer_start(&f->stop_timer, stop_cb, stop_ms, 0);
}

static void fixture_destroy(struct fixture *f)
{
    uv_close((uv_handle_t *)&f->stop_timer, NULL);
    uv_run(&f->uv, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&f->uv), 0);
    evloop_destroy(&f->ev);
}

/* --- a timer started by a socket callback after a long wait ------------- */

struct timed {
    struct ev_io io;
    struct fixture *f;
    uv_timer_t timer;
    uint64_t cb_ns, fired_ns;
};

static void timer_fired_cb(uv_timer_t *t)
{
    struct timed *x = t->data;

    x->fired_ns = uv_hrtime();
    evloop_stop(&x->f->ev);
}

static void timerfd_cb(struct ev_io *io, unsigned events)
{
    struct timed *x = (struct timed *)io;
    uint64_t ticks;

    ck_assert_uint_eq(events, EVLOOP_READ);
    ck_assert_int_eq(read(io->fd, &ticks, sizeof(ticks)), (int)sizeof(ticks));
    ck_assert_int_eq(evloop_set(&x->f->ev, io, 0), 0);
    x->cb_ns = uv_hrtime();
    uv_timer_start(&x->timer, timer_fired_cb, 200, 0);
}

/* The loop blocks 300 ms in epoll_wait, then a callback starts a 200 ms
 * timer: it must fire 200 ms after the callback, not at once (libuv's time
 * would be 300 ms stale if the loop did not update it after the wait). */
START_TEST(timer_counts_from_the_callback)
{
    struct fixture f;
    struct timed x = {0};
    struct itimerspec its = {.it_value = {.tv_nsec = 300 * 1000000}};

    fixture_init(&f, 5000);
    x.f = &f;
    uv_timer_init(&f.uv, &x.timer);
    x.timer.data = &x;
    x.io.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    x.io.cb = timerfd_cb;
    ck_assert_int_ge(x.io.fd, 0);
    ck_assert_int_eq(timerfd_settime(x.io.fd, 0, &its, NULL), 0);
    ck_assert_int_eq(evloop_set(&f.ev, &x.io, EVLOOP_READ), 0);
    evloop_run(&f.ev);
    ck_assert_uint_ne(x.fired_ns, 0);
    ck_assert_uint_ge((x.fired_ns - x.cb_ns) / 1000000, 190);
    close(x.io.fd);
    uv_close((uv_handle_t *)&x.timer, NULL);
    fixture_destroy(&f);
}
END_TEST

/* --- events fetched for a socket closed meanwhile ----------------------- */

struct pair {
    struct ev_io io;
    int peer;
    struct pair *other;
    struct fixture *f;
    int calls;
};

static void closes_other_cb(struct ev_io *io, unsigned events)
{
    struct pair *p = (struct pair *)io;
    char b[8];

    p->calls++;
    (void)!read(io->fd, b, sizeof(b));
    if (p->other->io.fd >= 0) {
        evloop_forget(&p->f->ev, &p->other->io);
        close(p->other->io.fd);
        p->other->io.fd = -1;
    }
    ck_assert_int_eq(evloop_set(&p->f->ev, io, 0), 0);
}

static void pair_open(struct pair *p, struct fixture *f, ev_io_fn cb)
{
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    memset(p, 0, sizeof(*p));
    p->io.fd = sv[0];
    p->io.cb = cb;
    p->peer = sv[1];
    p->f = f;
    p->calls = 0;
}

/* Two sockets readable in one batch; the first callback closes the other:
 * the other's fetched event is not delivered. */
START_TEST(forget_drops_fetched_events)
{
    struct fixture f;
    struct pair a, b;

    fixture_init(&f, 200);
    pair_open(&a, &f, closes_other_cb);
    pair_open(&b, &f, closes_other_cb);
    a.other = &b;
    b.other = &a;
    ck_assert_int_eq(write(a.peer, "x", 1), 1);
    ck_assert_int_eq(write(b.peer, "x", 1), 1);
    ck_assert_int_eq(evloop_set(&f.ev, &a.io, EVLOOP_READ), 0);
    ck_assert_int_eq(evloop_set(&f.ev, &b.io, EVLOOP_READ), 0);
    evloop_run(&f.ev);
    ck_assert_int_eq(a.calls + b.calls, 1);
    if (a.io.fd >= 0)
        close(a.io.fd);
    if (b.io.fd >= 0)
        close(b.io.fd);
    close(a.peer);
    close(b.peer);
    fixture_destroy(&f);
}
END_TEST

/* --- no interest: nothing delivered, not even a hang-up ------------------- */

static void count_cb(struct ev_io *io, unsigned events)
{
    struct pair *p = (struct pair *)io;

    p->calls++;
    p->peer = (int)events; /* the peer is closed by now: keep the events */
    ck_assert_int_eq(evloop_set(&p->f->ev, io, 0), 0);
}

START_TEST(zero_interest_and_hangup)
{
    struct fixture f;
    struct pair p;

    fixture_init(&f, 150);
    pair_open(&p, &f, count_cb);
    ck_assert_int_eq(evloop_set(&f.ev, &p.io, EVLOOP_READ), 0);
    ck_assert_int_eq(evloop_set(&f.ev, &p.io, 0), 0);
    close(p.peer); /* hang-up: epoll reports it even to an empty interest */
    evloop_run(&f.ev);
    ck_assert_int_eq(p.calls, 0);
    /* Asked again: the hang-up comes as an error with what was asked. */
    uv_timer_start(&f.stop_timer, stop_cb, 150, 0);
    ck_assert_int_eq(evloop_set(&f.ev, &p.io, EVLOOP_WRITE), 0);
    evloop_run(&f.ev);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_uint_eq((unsigned)p.peer & (EVLOOP_WRITE | EVLOOP_ERROR),
                      EVLOOP_WRITE | EVLOOP_ERROR);
    close(p.io.fd);
    fixture_destroy(&f);
}
END_TEST

/* --- edge-triggered sockets and calling again ------------------------------ */

struct edge {
    struct ev_io io;
    struct fixture *f;
    struct edge *victim; /* forgotten by this one's first call, if set */
    unsigned seen[8];
    int calls;
    bool ask_again;
};

static void edge_cb(struct ev_io *io, unsigned events)
{
    struct edge *e = (struct edge *)io;

    if (e->calls < 8)
        e->seen[e->calls] = events;
    e->calls++;
    if (e->victim != NULL) {
        evloop_again(&e->f->ev, &e->victim->io);
        evloop_forget(&e->f->ev, &e->victim->io); /* e.g. its session closed */
        e->victim = NULL;
    }
    if (e->ask_again) {
        e->ask_again = false;
        evloop_again(&e->f->ev, io);
    }
}

static void edge_open(struct edge *e, struct fixture *f, int *peer)
{
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    memset(e, 0, sizeof(*e));
    e->io.fd = sv[0];
    e->io.cb = edge_cb;
    e->f = f;
    *peer = sv[1];
}

/* Unread bytes are reported once (level-triggered would repeat them for
 * the whole run); a callback that asks again is called once more with no
 * events; the peer's FIN comes as RDHUP with READ. */
START_TEST(edge_once_again_and_rdhup)
{
    struct fixture f;
    struct edge e;
    int peer;

    fixture_init(&f, 150);
    edge_open(&e, &f, &peer);
    ck_assert_int_eq(evloop_set(&f.ev, &e.io, EVLOOP_READ | EVLOOP_EDGE), 0);
    ck_assert_int_eq(write(peer, "x", 1), 1);
    e.ask_again = true;
    evloop_run(&f.ev);
    ck_assert_int_eq(e.calls, 2);
    ck_assert_uint_eq(e.seen[0], EVLOOP_READ);
    ck_assert_uint_eq(e.seen[1], 0);
    shutdown(peer, SHUT_WR);
    uv_timer_start(&f.stop_timer, stop_cb, 150, 0);
    evloop_run(&f.ev);
    ck_assert_int_eq(e.calls, 3);
    ck_assert_uint_eq(e.seen[2] & (EVLOOP_READ | EVLOOP_RDHUP), EVLOOP_READ | EVLOOP_RDHUP);
    close(e.io.fd);
    close(peer);
    fixture_destroy(&f);
}
END_TEST

/* A socket forgotten after it asked to be called again is not called. */
START_TEST(forget_drops_again)
{
    struct fixture f;
    struct edge a, b;
    int pa, pb;

    fixture_init(&f, 150);
    edge_open(&a, &f, &pa);
    edge_open(&b, &f, &pb);
    a.victim = &b;
    ck_assert_int_eq(evloop_set(&f.ev, &a.io, EVLOOP_READ | EVLOOP_EDGE), 0);
    ck_assert_int_eq(write(pa, "x", 1), 1);
    evloop_run(&f.ev);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(b.calls, 0);
    close(a.io.fd);
    close(b.io.fd);
    close(pa);
    close(pb);
    fixture_destroy(&f);
}
END_TEST

/* --- sends of a batch are made together ---------------------------------- */

/* Reads what its socket has and sends it on to out: queued when the loop
 * says so; the answer comes as a call with no events. */
struct relay {
    struct ev_io io;
    struct fixture *f;
    struct ev_io out; /* the socket sent to (not in the set) */
    struct sendq_op op;
    char buf[64];
    int n;
    bool queued;     /* the send was queued */
    bool forget_out; /* then forgets and closes out at once */
    int answers;
    int *done; /* relays finished, shared */
    int want;  /* stop when *done reaches it */
};

static void relay_finish(struct relay *r)
{
    if (++*r->done == r->want)
        evloop_stop(&r->f->ev);
}

static void relay_cb(struct ev_io *io, unsigned events)
{
    struct relay *r = (struct relay *)io;

    if (events == 0) {
        /* The answer: once, after the flush. */
        ck_assert(r->queued);
        ck_assert(!r->op.busy);
        ck_assert_int_eq(r->op.res, r->n);
        r->answers++;
        relay_finish(r);
        return;
    }
    r->n = (int)read(io->fd, r->buf, sizeof(r->buf));
    ck_assert_int_gt(r->n, 0);
    ck_assert_int_eq(evloop_set(&r->f->ev, io, 0), 0);
    r->queued = evloop_send(&r->f->ev, &r->op, io, r->out.fd, r->buf, (uint32_t)r->n, 0);
    ck_assert(r->queued == evloop_queueing(&r->f->ev));
    if (!r->queued) {
        ck_assert_int_eq(send(r->out.fd, r->buf, (size_t)r->n, 0), r->n);
        relay_finish(r);
    } else if (r->forget_out) {
        evloop_forget(&r->f->ev, &r->out);
        close(r->out.fd); /* the queued send was made first */
        r->out.fd = -1;
    }
}

/* r reads from a pair whose other end is *in_peer; sends to a pair whose
 * other end is *out_peer. */
static void relay_open(struct relay *r, struct fixture *f, int *done, int want, int *in_peer,
                       int *out_peer)
{
    int in[2], out[2];

    memset(r, 0, sizeof(*r));
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, in), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, out), 0);
    r->io.fd = in[0];
    r->io.cb = relay_cb;
    r->f = f;
    r->out.fd = out[0];
    r->done = done;
    r->want = want;
    *in_peer = in[1];
    *out_peer = out[1];
    ck_assert_int_eq(evloop_set(&f->ev, &r->io, EVLOOP_READ), 0);
}

static void relay_close(struct relay *r, int in_peer, int out_peer)
{
    close(r->io.fd);
    if (r->out.fd >= 0)
        close(r->out.fd);
    close(in_peer);
    close(out_peer);
}

/* Three sockets readable in one batch: their sends are queued, made after
 * the batch, and each relay is called again with its answer. A lone event
 * later is sent at once (no queue, no delay). */
START_TEST(batch_sends_queued_lone_send_direct)
{
    struct fixture f;
    struct relay r[3];
    int in_peer[3], out_peer[3], done = 0;
    char got[64];

    fixture_init(&f, 3000);
    ck_assert_ptr_nonnull(f.ev.sends.ring); /* io_uring here: the tests need it */
    for (int i = 0; i < 3; i++) {
        relay_open(&r[i], &f, &done, 3, &in_peer[i], &out_peer[i]);
        ck_assert_int_eq(write(in_peer[i], "request", 7 - i), 7 - i);
    }
    evloop_run(&f.ev);
    ck_assert_int_eq(done, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert(r[i].queued);
        ck_assert_int_eq(r[i].answers, 1);
        ck_assert_int_eq(read(out_peer[i], got, sizeof(got)), 7 - i);
        ck_assert(memcmp(got, "request", (size_t)(7 - i)) == 0);
    }
    /* Alone now: sent directly (no answer comes: no queue). */
    done = 0;
    r[0].want = 1;
    r[0].answers = 0;
    ck_assert_int_eq(evloop_set(&f.ev, &r[0].io, EVLOOP_READ), 0);
    ck_assert_int_eq(write(in_peer[0], "alone", 5), 5);
    evloop_run(&f.ev);
    ck_assert(!r[0].queued);
    ck_assert_int_eq(r[0].answers, 0);
    ck_assert_int_eq(read(out_peer[0], got, sizeof(got)), 5);
    for (int i = 0; i < 3; i++)
        relay_close(&r[i], in_peer[i], out_peer[i]);
    fixture_destroy(&f);
}
END_TEST

/* A socket forgotten (to be closed) while a send on it is queued: the send
 * is made first, so its peer reads the bytes, then the end. */
START_TEST(forget_makes_the_queued_send)
{
    struct fixture f;
    struct relay r[2];
    int in_peer[2], out_peer[2], done = 0;
    char got[64];

    fixture_init(&f, 3000);
    for (int i = 0; i < 2; i++) {
        relay_open(&r[i], &f, &done, 2, &in_peer[i], &out_peer[i]);
        r[i].forget_out = true;
        ck_assert_int_eq(write(in_peer[i], "last words", 10), 10);
    }
    evloop_run(&f.ev);
    ck_assert_int_eq(done, 2);
    for (int i = 0; i < 2; i++) {
        ck_assert(r[i].queued);
        ck_assert_int_eq(r[i].answers, 1);
        ck_assert_int_eq(read(out_peer[i], got, sizeof(got)), 10);
        ck_assert(memcmp(got, "last words", 10) == 0);
        ck_assert_int_eq(read(out_peer[i], got, sizeof(got)), 0);
        relay_close(&r[i], in_peer[i], out_peer[i]);
    }
    fixture_destroy(&f);
}
END_TEST

/* --- libuv's wakeups run inside the loop --------------------------------- */

static void async_cb(uv_async_t *a)
{
    evloop_stop(a->data);
}

START_TEST(uv_async_wakes_the_loop)
{
    struct fixture f;
    uv_async_t a;
    uint64_t t0;

    fixture_init(&f, 5000);
    uv_async_init(&f.uv, &a, async_cb);
    a.data = &f.ev;
    uv_async_send(&a);
    t0 = uv_hrtime();
    evloop_run(&f.ev);
    ck_assert_uint_lt((uv_hrtime() - t0) / 1000000, 1000); /* not the 5 s stop timer */
    uv_close((uv_handle_t *)&a, NULL);
    fixture_destroy(&f);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("evloop", &tc);

    tcase_add_test(tc, timer_counts_from_the_callback);
    tcase_add_test(tc, forget_drops_fetched_events);
    tcase_add_test(tc, zero_interest_and_hangup);
    tcase_add_test(tc, uv_async_wakes_the_loop);
    tcase_add_test(tc, edge_once_again_and_rdhup);
    tcase_add_test(tc, forget_drops_again);
    tcase_add_test(tc, batch_sends_queued_lone_send_direct);
    tcase_add_test(tc, forget_makes_the_queued_send);
    return check_run(s);
}
