/* SPDX-License-Identifier: Apache-2.0 */
/* Socket options every proxied TCP connection gets, on both legs. */
#ifndef PROXY_SOCKOPT_H
#define PROXY_SOCKOPT_H

/* TCP keepalive after this many idle seconds, probes every interval, and
 * the connection is dead after count unanswered probes. */
#define SOCKOPT_KEEPIDLE_S 30
#define SOCKOPT_KEEPINTVL_S 10
#define SOCKOPT_KEEPCNT 3

/* An upstream socket gets its keepalive once the connection has lasted this
 * long (between once and twice this, in fact): short connections, most of
 * them, never pay the four system calls; a watch gets keepalive after a few
 * seconds. Client sockets inherit keepalive from the listener for free. */
#define SOCKOPT_KEEPALIVE_AFTER_S 5

/* Sets TCP_NODELAY. Failures are ignored (the socket still works, only less
 * well), here and below. */
void sockopt_nodelay(int fd);

/* Before connect(2): the handshake's last ACK waits for the first bytes
 * sent (Linux: a socket in delayed-ACK mode when the SYN-ACK arrives) and
 * rides on them, one segment less per connection; if nothing is sent it
 * goes out alone after at most 200 ms. Only for protocols where the client
 * speaks first, as TLS does: the upstream sees the connection when the
 * ClientHello arrives. The socket is back in quick-ACK mode after the
 * handshake. */
void sockopt_ack_with_data(int fd);

/* Turns TCP keepalive on with the timers above. */
void sockopt_keepalive(int fd);

/* Both. On a listening socket, the accepted sockets inherit both. */
void sockopt_tune(int fd);

#endif
