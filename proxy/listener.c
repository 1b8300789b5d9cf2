/* SPDX-License-Identifier: Apache-2.0 */
/* Listening sockets; see listener.h. */
#include "listener.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sockopt.h"

int listener_open(struct addr *a)
{
    int fd, one = 1, rc;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
        goto fail;
    if (a->ss.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
        goto fail;
    /* Accepted sockets inherit TCP_NODELAY, the keepalive settings and the
     * congestion control from the listener (Linux), which saves up to six
     * system calls per client; set before listen(2), which makes the socket
     * take connections (SO_REUSEPORT group). */
    sockopt_tune(fd);
    if (addr_is_loopback(a))
        sockopt_local(fd);
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1)
        goto fail;
    if (listen(fd, LISTENER_BACKLOG) == -1)
        goto fail;
    if (addr_port(a) == 0) {
        if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
            goto fail;
        memcpy(&a->ss, &ss, len);
        a->len = len;
    }
    return fd;
fail:
    rc = -errno;
    close(fd);
    return rc;
}

/* Finds, in one pass over /proc, a process holding each of the n sockets in
 * o[] (by inode), and fills its pid and comm; o[i].pid stays -1 for a socket
 * whose owner is not visible (another PID namespace, another user). */
static void owners(struct listener_other *o, size_t n)
{
    char path[600], link[64], want[64];
    DIR *proc, *fds;
    struct dirent *p, *d;
    size_t left = n;

    proc = opendir("/proc");
    if (proc == NULL)
        return;
    while (left > 0 && (p = readdir(proc)) != NULL) {
        if (!isdigit((unsigned char)p->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%s/fd", p->d_name);
        fds = opendir(path);
        if (fds == NULL)
            continue;
        while (left > 0 && (d = readdir(fds)) != NULL) {
            ssize_t len;

            snprintf(path, sizeof(path), "/proc/%s/fd/%s", p->d_name, d->d_name);
            len = readlink(path, link, sizeof(link) - 1);
            if (len <= 0)
                continue;
            link[len] = '\0';
            for (size_t i = 0; i < n; i++) {
                FILE *f;

                snprintf(want, sizeof(want), "socket:[%lu]", o[i].inode);
                if (o[i].pid >= 0 || strcmp(link, want) != 0)
                    continue;
                o[i].pid = strtol(p->d_name, NULL, 10);
                snprintf(path, sizeof(path), "/proc/%s/comm", p->d_name);
                f = fopen(path, "r");
                if (f != NULL) {
                    if (fgets(o[i].comm, sizeof(o[i].comm), f) == NULL)
                        o[i].comm[0] = '\0';
                    o[i].comm[strcspn(o[i].comm, "\n")] = '\0';
                    fclose(f);
                }
                left--;
            }
        }
        closedir(fds);
    }
    closedir(proc);
}

/* Finds a process with a descriptor on socket:[inode]. */
static void inode_owner(unsigned long inode, char *buf, size_t len)
{
    struct listener_other o = {.inode = inode, .pid = -1};

    owners(&o, 1);
    if (o.pid >= 0)
        snprintf(buf, len, "pid %ld (%s)", o.pid, o.comm);
}

/* The inodes of the sockets listening on port (IPv4 and IPv6), at most max. */
/* Does the address of a /proc/net/tcp{,6} "local" field (hex, as the kernel
 * prints the address's 32-bit words in host order: hex[0..len)) equal a's? */
static bool same_address(const char *hex, size_t len, const struct addr *a)
{
    unsigned char bytes[16];
    const void *want;
    size_t n;

    if (a->ss.ss_family == AF_INET) {
        want = &((const struct sockaddr_in *)&a->ss)->sin_addr;
        n = 4;
    } else {
        want = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
        n = 16;
    }
    if (len != n * 2)
        return false;
    for (size_t w = 0; w < n / 4; w++) {
        char word[9];
        uint32_t v;

        memcpy(word, hex + w * 8, 8);
        word[8] = '\0';
        v = (uint32_t)strtoul(word, NULL, 16);
        memcpy(bytes + w * 4, &v, 4);
    }
    return memcmp(bytes, want, n) == 0;
}

/* The inodes of the sockets listening on a's port, and with exact on a's
 * address too (the sockets a SO_REUSEPORT group could hold). */
static size_t listening_inodes(const struct addr *a, bool exact, unsigned long *out, size_t max)
{
    static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    unsigned port = addr_port(a);
    size_t n = 0;

    for (int t = 0; t < 2; t++) {
        char line[512];
        FILE *f = fopen(tables[t], "r");

        if (f == NULL)
            continue;
        while (fgets(line, sizeof(line), f) != NULL && n < max) {
            char local[128], *colon;
            unsigned lport, st;
            unsigned long ino;

            if (sscanf(line, " %*s %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &st, &ino) != 3)
                continue;
            colon = strrchr(local, ':');
            if (colon == NULL || sscanf(colon + 1, "%x", &lport) != 1 || lport != port ||
                st != 0x0A || ino == 0)
                continue;
            if (exact && (t == 0) != (a->ss.ss_family == AF_INET))
                continue;
            if (exact && !same_address(local, (size_t)(colon - local), a))
                continue;
            out[n++] = ino;
        }
        fclose(f);
    }
    return n;
}

void listener_sharers(const struct addr *a, char *buf, size_t len)
{
    unsigned long inodes[64];
    size_t n = listening_inodes(a, true, inodes, 64), off = 0;
    char me[32];

    buf[0] = '\0';
    snprintf(me, sizeof(me), "pid %ld ", (long)getpid());
    for (size_t i = 0; i < n; i++) {
        char who[128] = "";

        inode_owner(inodes[i], who, sizeof(who));
        /* Ourselves, or another apilb (an upgrade in progress), is expected. */
        if (who[0] == '\0' || strncmp(who, me, strlen(me)) == 0 || strstr(who, "(apilb)") != NULL)
            continue;
        if (strstr(buf, who) != NULL)
            continue;
        off += (size_t)snprintf(buf + off, len > off ? len - off : 0, "%s%s", off ? ", " : "", who);
        if (off >= len)
            break;
    }
}

void listener_holder(const struct addr *a, char *buf, size_t len)
{
    unsigned long inode;

    buf[0] = '\0';
    if (listening_inodes(a, false, &inode, 1) == 0)
        return;
    inode_owner(inode, buf, len);
    if (buf[0] == '\0')
        snprintf(buf, len, "socket inode %lu (owner not visible)", inode);
}

int listener_inode(int fd, unsigned long *inode)
{
    struct stat st;

    if (fstat(fd, &st) == -1)
        return -errno;
    *inode = (unsigned long)st.st_ino;
    return 0;
}

/* Whether the local address column of /proc/net/tcp{,6} ("0100007F:01BB")
 * is a's address and port. The kernel prints each 32-bit word of the address
 * in host order, as read from memory. */
static bool same_local(const struct addr *a, const char *col)
{
    uint32_t w[4], mine[4];
    unsigned port;

    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)&a->ss;

        if (sscanf(col, "%8" SCNx32 ":%x", &w[0], &port) != 2)
            return false;
        memcpy(mine, &in->sin_addr, 4);
        return w[0] == mine[0] && port == addr_port(a);
    }
    {
        const struct sockaddr_in6 *in6 = (const void *)&a->ss;

        if (sscanf(col, "%8" SCNx32 "%8" SCNx32 "%8" SCNx32 "%8" SCNx32 ":%x", &w[0], &w[1], &w[2],
                   &w[3], &port) != 5)
            return false;
        memcpy(mine, &in6->sin6_addr, 16);
        return memcmp(w, mine, 16) == 0 && port == addr_port(a);
    }
}

size_t listener_others(const struct addr *a, const unsigned long *ours, size_t n_ours,
                       struct listener_other *out, size_t max)
{
    FILE *f = fopen(a->ss.ss_family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6", "r");
    char line[512];
    size_t n = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL && n < max) {
        char local[128];
        unsigned st;
        unsigned long uid, ino;
        bool mine = false;

        if (sscanf(line, " %*s %127s %*s %x %*s %*s %*s %lu %*s %lu", local, &st, &uid, &ino) !=
                4 ||
            st != 0x0A || ino == 0 || !same_local(a, local))
            continue;
        for (size_t i = 0; i < n_ours && !mine; i++)
            mine = ours[i] == ino;
        if (mine)
            continue;
        out[n] = (struct listener_other){.inode = ino, .uid = uid, .pid = -1};
        n++;
    }
    fclose(f);
    owners(out, n);
    return n;
}
