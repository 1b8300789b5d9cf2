/* SPDX-License-Identifier: Apache-2.0 */
/* Listening sockets; see listener.h. */
#include "listener.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

/* Finds a process with a descriptor on socket:[inode]. */
static void inode_owner(unsigned long inode, char *buf, size_t len)
{
    char want[64], path[600], link[64], comm[64];
    DIR *proc, *fds;
    struct dirent *p, *d;

    snprintf(want, sizeof(want), "socket:[%lu]", inode);
    proc = opendir("/proc");
    if (proc == NULL)
        return;
    while ((p = readdir(proc)) != NULL) {
        if (!isdigit((unsigned char)p->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%s/fd", p->d_name);
        fds = opendir(path);
        if (fds == NULL)
            continue;
        while ((d = readdir(fds)) != NULL) {
            ssize_t n;

            snprintf(path, sizeof(path), "/proc/%s/fd/%s", p->d_name, d->d_name);
            n = readlink(path, link, sizeof(link) - 1);
            if (n <= 0)
                continue;
            link[n] = '\0';
            if (strcmp(link, want) == 0) {
                FILE *f;

                comm[0] = '\0';
                snprintf(path, sizeof(path), "/proc/%s/comm", p->d_name);
                f = fopen(path, "r");
                if (f != NULL) {
                    if (fgets(comm, sizeof(comm), f) == NULL)
                        comm[0] = '\0';
                    comm[strcspn(comm, "\n")] = '\0';
                    fclose(f);
                }
                snprintf(buf, len, "pid %s (%s)", p->d_name, comm);
                closedir(fds);
                closedir(proc);
                return;
            }
        }
        closedir(fds);
    }
    closedir(proc);
}

/* The inodes of the sockets listening on port (IPv4 and IPv6), at most max. */
static size_t listening_inodes(unsigned port, unsigned long *out, size_t max)
{
    static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
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
            if (colon != NULL && sscanf(colon + 1, "%x", &lport) == 1 && lport == port &&
                st == 0x0A && ino != 0)
                out[n++] = ino;
        }
        fclose(f);
    }
    return n;
}

void listener_sharers(const struct addr *a, char *buf, size_t len)
{
    unsigned long inodes[64];
    size_t n = listening_inodes(addr_port(a), inodes, 64), off = 0;
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
        off += (size_t)snprintf(buf + off, len > off ? len - off : 0, "%s%s", off ? ", " : "",
                                who);
        if (off >= len)
            break;
    }
}

void listener_holder(const struct addr *a, char *buf, size_t len)
{
    unsigned long inode;

    buf[0] = '\0';
    if (listening_inodes(addr_port(a), &inode, 1) == 0)
        return;
    inode_owner(inode, buf, len);
    if (buf[0] == '\0')
        snprintf(buf, len, "socket inode %lu (owner not visible)", inode);
}
