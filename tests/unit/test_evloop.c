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
    ck_assert_int_eq(evloop_init(&f->ev, &f->uv), 0);
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
    ck_assert_uint_eq((unsigned)p.peer & (EVLOOP_WRITE | EVLOOP_ERROR), EVLOOP_WRITE | EVLOOP_ERROR);
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
    return check_run(s);
}
