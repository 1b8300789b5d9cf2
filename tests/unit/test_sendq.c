/* SPDX-License-Identifier: Apache-2.0 */
/* sendq: sends queued, made in one io_uring submission, answered like
 * send(2); and the refusal when io_uring is denied. Unix socket pairs. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_run.h"
#include "sendq.h"

struct answers {
    struct sendq_op *order[2 * SENDQ_MAX];
    unsigned n;
};

static void record(struct sendq_op *op, void *arg)
{
    struct answers *a = arg;

    ck_assert(!op->busy);
    ck_assert_uint_lt(a->n, 2 * SENDQ_MAX);
    a->order[a->n++] = op;
}

static void pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
}

/* The whole of what is queued on sv[1] (up to cap bytes). */
static size_t drain(int fd, char *out, size_t cap)
{
    size_t got = 0;
    ssize_t n;

    while (got < cap && (n = recv(fd, out + got, cap - got, MSG_DONTWAIT)) > 0)
        got += (size_t)n;
    return got;
}

/* Sends on eight sockets: nothing moves until the flush, which makes them
 * all and answers each with its length, in the order queued. */
START_TEST(flush_makes_every_send_in_order)
{
    struct sendq q;
    struct answers a = {0};
    struct sendq_op ops[8];
    int sv[8][2];
    char msg[8][64], got[64];

    ck_assert_int_eq(sendq_init(&q, record, &a), 0);
    for (int i = 0; i < 8; i++) {
        pair(sv[i]);
        snprintf(msg[i], sizeof(msg[i]), "message %d for socket %d", i * 7, i);
        memset(&ops[i], 0, sizeof(ops[i]));
        ck_assert(sendq_add(&q, &ops[i], sv[i][0], msg[i], (uint32_t)strlen(msg[i]), 0));
        ck_assert(ops[i].busy);
        ck_assert(sendq_holds(&q, sv[i][0]));
    }
    ck_assert_int_eq(recv(sv[0][1], got, sizeof(got), MSG_DONTWAIT), -1); /* not yet */
    ck_assert_int_eq(errno, EAGAIN);
    sendq_flush(&q);
    ck_assert_uint_eq(a.n, 8);
    for (int i = 0; i < 8; i++) {
        size_t n;

        ck_assert_ptr_eq(a.order[i], &ops[i]);
        ck_assert_int_eq(ops[i].res, (int)strlen(msg[i]));
        ck_assert(!sendq_holds(&q, sv[i][0]));
        n = drain(sv[i][1], got, sizeof(got));
        ck_assert_uint_eq(n, strlen(msg[i]));
        ck_assert(memcmp(got, msg[i], n) == 0);
        close(sv[i][0]);
        close(sv[i][1]);
    }
    sendq_flush(&q); /* empty: nothing */
    ck_assert_uint_eq(a.n, 8);
    sendq_destroy(&q);
}
END_TEST

/* SENDQ_MAX sends to one socket go out in order; one more is refused
 * until the flush. */
START_TEST(full_queue_refuses_then_takes_again)
{
    struct sendq q;
    struct answers a = {0};
    static struct sendq_op ops[SENDQ_MAX + 1];
    unsigned char bytes[SENDQ_MAX + 1], got[SENDQ_MAX + 8];
    int sv[2];

    ck_assert_int_eq(sendq_init(&q, record, &a), 0);
    pair(sv);
    for (unsigned i = 0; i <= SENDQ_MAX; i++)
        bytes[i] = (unsigned char)i;
    for (unsigned i = 0; i < SENDQ_MAX; i++)
        ck_assert(sendq_add(&q, &ops[i], sv[0], &bytes[i], 1, 0));
    ck_assert(!sendq_add(&q, &ops[SENDQ_MAX], sv[0], &bytes[SENDQ_MAX], 1, 0));
    ck_assert(!ops[SENDQ_MAX].busy);
    sendq_flush(&q);
    ck_assert_uint_eq(a.n, SENDQ_MAX);
    ck_assert(sendq_add(&q, &ops[SENDQ_MAX], sv[0], &bytes[SENDQ_MAX], 1, 0));
    sendq_flush(&q);
    ck_assert_uint_eq(drain(sv[1], (char *)got, sizeof(got)), SENDQ_MAX + 1);
    ck_assert(memcmp(got, bytes, SENDQ_MAX + 1) == 0);
    close(sv[0]);
    close(sv[1]);
    sendq_destroy(&q);
}
END_TEST

/* A socket with no room answers -EAGAIN (not a wait); one with some room
 * answers what fit; a peer gone answers -EPIPE (and no SIGPIPE). */
START_TEST(answers_are_what_send_would_say)
{
    struct sendq q;
    struct answers a = {0};
    struct sendq_op full = {0}, part = {0}, gone = {0};
    int sv_full[2], sv_part[2], sv_gone[2], small = 4096;
    size_t big = 1u << 20;
    char *buf = calloc(1, big);

    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(sendq_init(&q, record, &a), 0);
    pair(sv_full);
    pair(sv_part);
    pair(sv_gone);
    ck_assert_int_eq(setsockopt(sv_full[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    ck_assert_int_eq(setsockopt(sv_part[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    while (send(sv_full[0], buf, 1024, MSG_DONTWAIT) > 0)
        ;
    ck_assert_int_eq(errno, EAGAIN);
    close(sv_gone[1]);
    ck_assert(sendq_add(&q, &full, sv_full[0], buf, 1024, 0));
    ck_assert(sendq_add(&q, &part, sv_part[0], buf, (uint32_t)big, 0));
    ck_assert(sendq_add(&q, &gone, sv_gone[0], buf, 10, 0));
    sendq_flush(&q);
    ck_assert_uint_eq(a.n, 3);
    ck_assert_int_eq(full.res, -EAGAIN);
    ck_assert_int_gt(part.res, 0);
    ck_assert_int_lt(part.res, (int)big);
    ck_assert_int_eq(gone.res, -EPIPE);
    for (int i = 0; i < 2; i++) {
        close(sv_full[i]);
        close(sv_part[i]);
    }
    close(sv_gone[0]);
    free(buf);
    sendq_destroy(&q);
}
END_TEST

/* What a container runtime's default seccomp profile does: io_uring_setup
 * (425 on every architecture) fails with EPERM. sendq_init says so, and the
 * queue refuses every send. */
START_TEST(denied_io_uring_refuses_sends)
{
    pid_t pid = fork();
    int status;

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct sock_filter code[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
        struct sendq q;
        struct sendq_op op = {0};
        int sv[2];

        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
            _exit(2);
        if (sendq_init(&q, record, NULL) != -EPERM)
            _exit(3);
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
            _exit(4);
        if (sendq_add(&q, &op, sv[0], "x", 1, 0) || op.busy || sendq_holds(&q, sv[0]))
            _exit(5);
        sendq_flush(&q);
        sendq_destroy(&q);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("sendq", &tc);

    tcase_add_test(tc, flush_makes_every_send_in_order);
    tcase_add_test(tc, full_queue_refuses_then_takes_again);
    tcase_add_test(tc, answers_are_what_send_would_say);
    tcase_add_test(tc, denied_io_uring_refuses_sends);
    return check_run(s);
}
