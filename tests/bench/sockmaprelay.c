/* SPDX-License-Identifier: Apache-2.0 */
/* The benchmark's in-kernel floor: a relay with no process on the data path.
 *
 *   sockmaprelay LISTEN_ADDR LISTEN_PORT UPSTREAM_ADDR UPSTREAM_PORT
 *
 * Both sockets of a connection go into a BPF sockmap whose stream verdict
 * program (BPF_SK_SKB_VERDICT) redirects every arriving skb to the other
 * socket's egress: bytes from the client leave towards the upstream and back
 * without waking this process, which only waits for either side's FIN.
 * Needs root (CAP_BPF and CAP_NET_ADMIN); without them it says so and exits
 * 1, and run.sh leaves its rows out.
 *
 * One connection at a time, and not a proxy: the kernel queues redirected
 * skbs and sends them from a work queue, so this process cannot know when
 * they have left; it closes both sockets on the first FIN, which may cut
 * bytes still queued (harmless for a measurement that ends with the client's
 * close, fatal for a proxy). Bytes that arrive before the sockets are in the
 * map are copied once by hand. */
#include <errno.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "benchnet.h"

static int bpf(int cmd, union bpf_attr *a)
{
    return (int)syscall(SYS_bpf, cmd, a, sizeof(*a));
}

static void die(const char *what)
{
    fprintf(stderr, "sockmaprelay: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Slot 0 holds the client's socket, slot 1 the upstream's. The program sends
 * what arrives on the socket whose local port is the listener's (the client's)
 * to slot 1, everything else to slot 0:
 *
 *   r6 = ctx; r2 = ctx->local_port; r3 = 1; if r2 == port goto +1; r3 = 0;
 *   return bpf_sk_redirect_map(ctx, map, r3, 0)      (0: the egress path) */
static int prog_load(int map, unsigned port)
{
    const struct bpf_insn prog[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_6, .src_reg = BPF_REG_1},
        {.code = BPF_LDX | BPF_MEM | BPF_W,
         .dst_reg = BPF_REG_2,
         .src_reg = BPF_REG_6,
         .off = offsetof(struct __sk_buff, local_port)},
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_3, .imm = 1},
        {.code = BPF_JMP | BPF_JEQ | BPF_K, .dst_reg = BPF_REG_2, .off = 1, .imm = (int)port},
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_3, .imm = 0},
        {.code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_1, .src_reg = BPF_REG_6},
        {.code = BPF_LD | BPF_DW | BPF_IMM,
         .dst_reg = BPF_REG_2,
         .src_reg = BPF_PSEUDO_MAP_FD,
         .imm = map},
        {.code = 0}, /* second half of the 64-bit load */
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_4, .imm = 0},
        {.code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_sk_redirect_map},
        {.code = BPF_JMP | BPF_EXIT},
    };
    static const char license[] = "Apache-2.0"; /* the helper is not GPL-only */
    union bpf_attr a;

    memset(&a, 0, sizeof(a));
    a.prog_type = BPF_PROG_TYPE_SK_SKB;
    a.insns = (__u64)(unsigned long)prog;
    a.insn_cnt = sizeof(prog) / sizeof(prog[0]);
    a.license = (__u64)(unsigned long)license;
    return bpf(BPF_PROG_LOAD, &a);
}

static int map_set(int map, int slot, int fd)
{
    union bpf_attr a;

    memset(&a, 0, sizeof(a));
    a.map_fd = (__u32)map;
    a.key = (__u64)(unsigned long)&slot;
    if (fd < 0)
        return bpf(BPF_MAP_DELETE_ELEM, &a);
    a.value = (__u64)(unsigned long)&fd;
    a.flags = BPF_ANY;
    return bpf(BPF_MAP_UPDATE_ELEM, &a);
}

/* Copies what from holds now (it arrived before the sockets were mapped). */
static void copy_queued(int from, int to)
{
    char buf[65536];
    ssize_t n;

    while ((n = recv(from, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
        if (send(to, buf, (size_t)n, MSG_NOSIGNAL) != n)
            return;
}

static void relay(int map, int cfd, const struct sockaddr_in *up)
{
    int ufd = benchnet_dial(up);
    struct pollfd pf[2];

    if (ufd < 0) {
        fprintf(stderr, "sockmaprelay: upstream: %s\n", strerror(errno));
        goto out;
    }
    benchnet_nodelay(cfd);
    benchnet_unpaced(cfd);
    benchnet_unpaced(ufd);
    if (map_set(map, 0, cfd) != 0 || map_set(map, 1, ufd) != 0) {
        /* EOPNOTSUPP: a socket no longer established (a client that came
         * and went, like run.sh's probe for the port). */
        if (errno != EOPNOTSUPP)
            die("sockmap update");
        goto out;
    }
    copy_queued(cfd, ufd);
    copy_queued(ufd, cfd);
    pf[0] = (struct pollfd){.fd = cfd, .events = POLLRDHUP};
    pf[1] = (struct pollfd){.fd = ufd, .events = POLLRDHUP};
    while (poll(pf, 2, -1) < 0 && errno == EINTR)
        ;
out:
    map_set(map, 0, -1);
    map_set(map, 1, -1);
    if (ufd >= 0)
        close(ufd);
    close(cfd);
}

int main(int argc, char **argv)
{
    struct sockaddr_in la, ua;
    union bpf_attr a;
    int lfd, map, prog;

    if (argc != 5 || benchnet_addr(argv[1], argv[2], &la) != 0 ||
        benchnet_addr(argv[3], argv[4], &ua) != 0) {
        fprintf(stderr, "usage: sockmaprelay LISTEN_ADDR PORT UPSTREAM_ADDR PORT (IPv4)\n");
        return 2;
    }
    memset(&a, 0, sizeof(a));
    a.map_type = BPF_MAP_TYPE_SOCKMAP;
    a.key_size = sizeof(int);
    a.value_size = sizeof(int);
    a.max_entries = 2;
    if ((map = bpf(BPF_MAP_CREATE, &a)) < 0)
        die("sockmap (needs CAP_BPF)");
    if ((prog = prog_load(map, (unsigned)atoi(argv[2]))) < 0)
        die("verdict program (needs CAP_BPF and CAP_NET_ADMIN)");
    memset(&a, 0, sizeof(a));
    a.target_fd = (__u32)map;
    a.attach_bpf_fd = (__u32)prog;
    a.attach_type = BPF_SK_SKB_VERDICT;
    if (bpf(BPF_PROG_ATTACH, &a) != 0)
        die("attach the verdict program");
    lfd = benchnet_listen(&la);
    if (lfd < 0)
        die("listen");
    for (;;) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

        if (cfd >= 0)
            relay(map, cfd, &ua);
        else if (errno != EINTR && errno != ECONNABORTED)
            die("accept");
    }
}
