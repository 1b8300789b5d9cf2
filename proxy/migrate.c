/* SPDX-License-Identifier: Apache-2.0 */
/* Hand-over of queued connections; see migrate.h. */
#include "migrate.h"

#include <errno.h>
#include <linux/bpf.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_ATTACH_REUSEPORT_EBPF
#define SO_ATTACH_REUSEPORT_EBPF 52
#endif

/* r0 = SK_PASS; exit. Passing without bpf_sk_select_reuseport() leaves the
 * choice to the kernel's hash, for new connections and migrated ones. */
static const struct bpf_insn pass_prog[] = {
    {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = SK_PASS},
    {.code = BPF_JMP | BPF_EXIT},
};

static int prog_load(void)
{
    static const char license[] = "Apache-2.0"; /* no helper is called */
    union bpf_attr attr;
    long fd;

    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_SK_REUSEPORT;
    attr.expected_attach_type = BPF_SK_REUSEPORT_SELECT_OR_MIGRATE;
    attr.insns = (__u64)(unsigned long)pass_prog;
    attr.insn_cnt = sizeof(pass_prog) / sizeof(pass_prog[0]);
    attr.license = (__u64)(unsigned long)license;
    fd = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
    return fd < 0 ? -errno : (int)fd;
}

int migrate_enable(int fd)
{
    int prog = prog_load(), rc = 0;

    if (prog < 0)
        return prog;
    /* The group keeps its own reference: the program outlives this fd and
     * this process, and the next apilb's attach replaces it. */
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog, sizeof(prog)) == -1)
        rc = -errno;
    close(prog);
    return rc;
}
