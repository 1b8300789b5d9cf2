/* SPDX-License-Identifier: Apache-2.0 */
/* Socket options every proxied TCP connection gets, on both legs. */
#ifndef PROXY_SOCKOPT_H
#define PROXY_SOCKOPT_H

/* TCP keepalive after this many idle seconds, probes every interval, and
 * the connection is dead after count unanswered probes. */
#define SOCKOPT_KEEPIDLE_S 30
#define SOCKOPT_KEEPINTVL_S 10
#define SOCKOPT_KEEPCNT 3

/* Sets TCP_NODELAY and TCP keepalive. Failures are ignored (the socket still
 * works, only less well). On a listening socket, the accepted sockets
 * inherit both. */
void sockopt_tune(int fd);

#endif
