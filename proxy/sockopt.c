/* SPDX-License-Identifier: Apache-2.0 */
#include "sockopt.h"

#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Empty: loopback connections keep the host's default. Written once by
 * sockopt_local_init() before the workers exist, read-only after. */
static char local_cc[SOCKOPT_CC_NAME_BYTES];

void sockopt_nodelay(int fd)
{
    int one = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void sockopt_ack_with_data(int fd)
{
    int zero = 0;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof(zero));
}

const char *sockopt_local_init(char def[SOCKOPT_CC_NAME_BYTES], int *err)
{
    static const char *const unpaced[] = {"cubic", "reno"};
    socklen_t len = SOCKOPT_CC_NAME_BYTES - 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(def, 0, SOCKOPT_CC_NAME_BYTES);
    local_cc[0] = '\0';
    *err = 0;
    if (fd == -1)
        return NULL;
    if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, def, &len) == -1)
        goto out;
    def[SOCKOPT_CC_NAME_BYTES - 1] = '\0';
    if (strncmp(def, "bbr", 3) != 0)
        goto out; /* does not pace by itself: keep it */
    for (size_t i = 0; i < sizeof(unpaced) / sizeof(unpaced[0]); i++) {
        /* Tried on this socket: ENOENT (not built) or EPERM (not allowed)
         * means the next. */
        if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, unpaced[i],
                       (socklen_t)strlen(unpaced[i])) == 0) {
            strcpy(local_cc, unpaced[i]);
            break;
        }
    }
    if (local_cc[0] == '\0')
        *err = errno; /* of the last attempt */
out:
    close(fd);
    return local_cc[0] != '\0' ? local_cc : NULL;
}

void sockopt_local(int fd)
{
    if (local_cc[0] != '\0')
        (void)setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, local_cc, (socklen_t)strlen(local_cc));
}

bool sockopt_addr_is_local(const struct addr *a)
{
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)&a->ss;
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&a->ss;
    struct ifaddrs *all, *i;
    bool found = false;

    if (addr_is_loopback(a))
        return true;
    if (getifaddrs(&all) == -1)
        return false;
    for (i = all; i != NULL && !found; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != a->ss.ss_family)
            continue;
        if (a->ss.ss_family == AF_INET)
            found =
                ((const struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == v4->sin_addr.s_addr;
        else if (a->ss.ss_family == AF_INET6)
            found = memcmp(&((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, &v6->sin6_addr,
                           sizeof(v6->sin6_addr)) == 0;
    }
    freeifaddrs(all);
    return found;
}

void sockopt_keepalive(int fd)
{
    int one = 1, idle = SOCKOPT_KEEPIDLE_S, intvl = SOCKOPT_KEEPINTVL_S, cnt = SOCKOPT_KEEPCNT;

    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

void sockopt_tune(int fd)
{
    sockopt_nodelay(fd);
    sockopt_keepalive(fd);
}
