/* SPDX-License-Identifier: Apache-2.0 */
/* IPv4 sockets for the benchmark's programs (benchtool and the measuring-stick
 * relays): one way to parse an address, listen and dial. */
#ifndef BENCH_BENCHNET_H
#define BENCH_BENCHNET_H

#include <netinet/in.h>

/* Fills *out from a dotted IPv4 address and a port. Returns 0, or -1 when ip
 * is not an IPv4 address. */
int benchnet_addr(const char *ip, const char *port, struct sockaddr_in *out);

/* A listening socket on a (SO_REUSEADDR, backlog 128), or -1 (errno set). */
int benchnet_listen(const struct sockaddr_in *a);

/* A connected socket to a, with TCP_NODELAY, or -1 (errno set). */
int benchnet_dial(const struct sockaddr_in *a);

/* TCP_NODELAY on fd. */
void benchnet_nodelay(int fd);

/* For the measuring-stick relays: what apilb does to its loopback legs
 * (proxy/sockopt.h), so that they stay floors: CUBIC (or Reno) when the
 * socket has BBR, which paces. benchtool, the clients and backends every
 * relay shares, keeps the host's default. */
void benchnet_unpaced(int fd);

#endif
