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

/* Congestion control for connections that never leave this host: those whose
 * peer is a loopback address (the client leg when apilb listens on one, as it
 * does by default; an upstream leg when the upstream is on 127/8 or ::1). A
 * pacing algorithm (BBR, the default on some nodes) arms a timer for each
 * burst it holds back; on loopback there is no queue to pace for, and the
 * timers cost more than the bytes (one bulk stream through apilb on such a
 * host: 17-18 Gbit/s and 0.28-0.32 s of apilb's CPU per GB paced, 21-28 Gbit/s
 * and 0.16-0.20 s not). Such connections get CUBIC (Reno where CUBIC cannot
 * be chosen: Reno is always built in and always allowed). When the host's
 * default is CUBIC or Reno, nothing changes.
 * Decided once, before the workers start; returns what loopback connections
 * will use instead of the default (NULL: the default), and fills def with the
 * default's name (empty if unknown). */
#define SOCKOPT_CC_NAME 16
const char *sockopt_local_init(char def[SOCKOPT_CC_NAME]);

/* For a socket whose peer is a loopback address: before connect(2), or on a
 * listening socket bound to one (accepted sockets inherit it). */
void sockopt_local(int fd);

/* Turns TCP keepalive on with the timers above. */
void sockopt_keepalive(int fd);

/* Both. On a listening socket, the accepted sockets inherit both. */
void sockopt_tune(int fd);

#endif
