/* SPDX-License-Identifier: Apache-2.0 */
/* seccomp-exec: runs a program the way a service manager or a container
 * runtime would confine its system calls, so tests can run apilb under the
 * systemd unit's filter without systemd as PID 1.
 *
 *   seccomp-exec POLICY-FILE -- PROGRAM [ARG...]
 *
 * The policy file has one directive a line ('#' starts a comment):
 *   user UID GID        become UID:GID with no supplementary groups
 *   caps N...           keep only these capability numbers (permitted,
 *                       effective, inheritable, ambient and bounding sets)
 *   filter ACTION       start a seccomp filter; ACTION, for calls no rule
 *                       names, is kill (SECCOMP_RET_KILL_PROCESS), allow,
 *                       or errno N
 *   allow NAME...       in the current filter: these calls are allowed
 *   errno N NAME...     in the current filter: these calls fail with errno N
 *   families N...       in the current filter: socket(2) with any other
 *                       address family fails with EAFNOSUPPORT
 *   deny-wx             in the current filter: mappings both writable and
 *                       executable, and making memory executable, fail with
 *                       EPERM (MemoryDenyWriteExecute=)
 * Loading a filter sets no-new-privileges (libseccomp's default; systemd
 * implies NoNewPrivileges= for a filtered service that is not root).
 * Filters stack as the kernel stacks them: the most
 * severe action of all filters wins. A call name this libseccomp does not
 * know, or one that does not exist on this architecture, is skipped (systemd
 * skips them too). Only the native architecture is allowed; a call of
 * another one kills the process (SystemCallArchitectures=native).
 *
 * Errors in the policy are reported with the file and line, exit 125; a
 * failing exec exits 127 (said and done only if the filters still allow
 * write(2) and exit_group(2)). One thread; no cleanup, the process is
 * replaced. */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXEC_MAX_FILTERS 8
#define EXEC_MAX_CAPS 64
#define EXEC_LINE_BYTES 65536

struct policy {
    bool has_user, has_caps;
    uid_t uid;
    gid_t gid;
    uint64_t caps; /* bit n: capability n is kept */
    scmp_filter_ctx filters[EXEC_MAX_FILTERS];
    size_t n_filters;
};

static const char *policy_path;
static unsigned policy_line;

__attribute__((noreturn)) static void die(const char *what, int err)
{
    if (policy_line > 0)
        fprintf(stderr, "seccomp-exec: %s:%u: %s%s%s\n", policy_path, policy_line, what,
                err ? ": " : "", err ? strerror(err) : "");
    else
        fprintf(stderr, "seccomp-exec: %s%s%s\n", what, err ? ": " : "", err ? strerror(err) : "");
    exit(125);
}

static long number(const char *s, long min, long max)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        char msg[128];

        snprintf(msg, sizeof(msg), "\"%.40s\" is not a number in %ld..%ld", s, min, max);
        die(msg, 0);
    }
    return v;
}

static scmp_filter_ctx current(struct policy *p)
{
    if (p->n_filters == 0)
        die("a rule before any \"filter\" line", 0);
    return p->filters[p->n_filters - 1];
}

/* Adds action for the call name; unknown names and calls this architecture
 * lacks are skipped (a negative number is a pseudo-call libseccomp cannot
 * place here). */
static void add_rule(scmp_filter_ctx f, uint32_t action, const char *name)
{
    int nr = seccomp_syscall_resolve_name(name);
    int rc;

    if (nr == __NR_SCMP_ERROR || nr < 0)
        return;
    rc = seccomp_rule_add(f, action, nr, 0);
    if (rc == -EEXIST)
        return;
    if (rc < 0)
        die(name, -rc);
}

static void add_cond(scmp_filter_ctx f, uint32_t action, int nr, struct scmp_arg_cmp cmp)
{
    int rc = seccomp_rule_add(f, action, nr, 1, cmp);

    if (rc < 0)
        die("seccomp_rule_add", -rc);
}

static void families(scmp_filter_ctx f, char **words, size_t n)
{
    bool keep[AF_MAX] = {false};

    for (size_t i = 0; i < n; i++)
        keep[number(words[i], 0, AF_MAX - 1)] = true;
    for (int af = 0; af < AF_MAX; af++)
        if (!keep[af])
            add_cond(f, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket),
                     SCMP_A0(SCMP_CMP_EQ, af, 0));
    add_cond(f, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), SCMP_A0(SCMP_CMP_GE, AF_MAX, 0));
}

static void deny_wx(scmp_filter_ctx f)
{
    const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);

    add_cond(f, eperm, SCMP_SYS(mmap),
             SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_WRITE | PROT_EXEC, PROT_WRITE | PROT_EXEC));
    add_cond(f, eperm, SCMP_SYS(mprotect), SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC));
    add_cond(f, eperm, SCMP_SYS(pkey_mprotect), SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC));
    add_cond(f, eperm, SCMP_SYS(shmat), SCMP_A2(SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC));
}

static void new_filter(struct policy *p, char **words, size_t n)
{
    uint32_t action;

    if (n == 1 && strcmp(words[0], "kill") == 0)
        action = SCMP_ACT_KILL_PROCESS;
    else if (n == 1 && strcmp(words[0], "allow") == 0)
        action = SCMP_ACT_ALLOW;
    else if (n == 2 && strcmp(words[0], "errno") == 0)
        action = SCMP_ACT_ERRNO((uint32_t)number(words[1], 1, 4095));
    else
        die("filter wants kill, allow or errno N", 0);
    if (p->n_filters == EXEC_MAX_FILTERS)
        die("too many filters", 0);
    p->filters[p->n_filters] = seccomp_init(action);
    if (p->filters[p->n_filters] == NULL)
        die("seccomp_init", ENOMEM);
    p->n_filters++;
}

static void directive(struct policy *p, char **w, size_t n)
{
    const char *verb = w[0];

    w++;
    n--;
    if (strcmp(verb, "user") == 0 && n == 2) {
        p->has_user = true;
        p->uid = (uid_t)number(w[0], 1, 0x7fffffff);
        p->gid = (gid_t)number(w[1], 1, 0x7fffffff);
    } else if (strcmp(verb, "caps") == 0) {
        p->has_caps = true;
        for (size_t i = 0; i < n; i++)
            p->caps |= UINT64_C(1) << number(w[i], 0, EXEC_MAX_CAPS - 1);
    } else if (strcmp(verb, "filter") == 0) {
        new_filter(p, w, n);
    } else if (strcmp(verb, "allow") == 0) {
        for (size_t i = 0; i < n; i++)
            add_rule(current(p), SCMP_ACT_ALLOW, w[i]);
    } else if (strcmp(verb, "errno") == 0 && n >= 1) {
        uint32_t action = SCMP_ACT_ERRNO((uint32_t)number(w[0], 1, 4095));

        for (size_t i = 1; i < n; i++)
            add_rule(current(p), action, w[i]);
    } else if (strcmp(verb, "families") == 0) {
        families(current(p), w, n);
    } else if (strcmp(verb, "deny-wx") == 0 && n == 0) {
        deny_wx(current(p));
    } else {
        die("unknown directive or wrong number of words", 0);
    }
}

static void parse(struct policy *p, const char *path)
{
    static char line[EXEC_LINE_BYTES];
    FILE *f = fopen(path, "r");

    policy_path = path;
    if (f == NULL)
        die(path, errno);
    while (fgets(line, sizeof(line), f) != NULL) {
        char *words[1024], *save = NULL, *hash = strchr(line, '#');
        size_t n = 0;

        policy_line++;
        if (strchr(line, '\n') == NULL && !feof(f))
            die("line too long", 0);
        if (hash != NULL)
            *hash = '\0';
        for (char *t = strtok_r(line, " \t\r\n", &save); t != NULL;
             t = strtok_r(NULL, " \t\r\n", &save)) {
            if (n == sizeof(words) / sizeof(words[0]))
                die("too many words", 0);
            words[n++] = t;
        }
        if (n > 0)
            directive(p, words, n);
    }
    if (ferror(f))
        die(path, EIO);
    fclose(f);
    policy_line = 0;
}

/* Becomes the policy's user keeping only its capabilities, as systemd does
 * for DynamicUser= with AmbientCapabilities= and CapabilityBoundingSet=. */
static void drop_privileges(const struct policy *p)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];

    /* The bounding set first: dropping from it needs CAP_SETPCAP, which a
     * new uid no longer has in its effective set. */
    for (int c = 0; p->has_caps && c < EXEC_MAX_CAPS; c++)
        if (!(p->caps & (UINT64_C(1) << c)) && prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1 &&
            prctl(PR_CAPBSET_DROP, c, 0, 0, 0) == -1)
            die("PR_CAPBSET_DROP", errno);
    if (p->has_user) {
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) == -1)
            die("PR_SET_KEEPCAPS", errno);
        if (setgroups(0, NULL) == -1 || setresgid(p->gid, p->gid, p->gid) == -1 ||
            setresuid(p->uid, p->uid, p->uid) == -1)
            die("cannot become the policy's user", errno);
    }
    if (!p->has_caps)
        return;
    memset(data, 0, sizeof(data));
    data[0].permitted = data[0].effective = data[0].inheritable = (uint32_t)p->caps;
    data[1].permitted = data[1].effective = data[1].inheritable = (uint32_t)(p->caps >> 32);
    if (syscall(SYS_capset, &hdr, data) == -1)
        die("capset", errno);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == -1)
        die("PR_CAP_AMBIENT_CLEAR_ALL", errno);
    for (int c = 0; c < EXEC_MAX_CAPS; c++)
        if ((p->caps & (UINT64_C(1) << c)) &&
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) == -1)
            die("PR_CAP_AMBIENT_RAISE", errno);
}

int main(int argc, char **argv)
{
    struct policy p;

    memset(&p, 0, sizeof(p));
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "usage: seccomp-exec POLICY-FILE -- PROGRAM [ARG...]\n");
        return 125;
    }
    parse(&p, argv[1]);
    drop_privileges(&p);
    /* The kernel runs every loaded filter whatever the order; the first of
     * the policy, loaded last, may be the one that forbids seccomp(2). */
    for (size_t i = p.n_filters; i-- > 0;) {
        int rc = seccomp_load(p.filters[i]);

        if (rc < 0)
            die("seccomp_load", -rc);
    }
    execv(argv[3], argv + 3);
    fprintf(stderr, "seccomp-exec: exec %s: %s\n", argv[3], strerror(errno));
    return 127;
}
