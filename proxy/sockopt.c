/* SPDX-License-Identifier: Apache-2.0 */
#include "sockopt.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

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
