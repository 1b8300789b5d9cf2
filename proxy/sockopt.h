/* SPDX-License-Identifier: Apache-2.0 */
/* Socket options every proxied TCP connection gets, on both legs. */
#ifndef PROXY_SOCKOPT_H
#define PROXY_SOCKOPT_H

#include <stdbool.h>

#include "addr.h"

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

/* Congestion control for connections over loopback (the client leg on a
 * loopback listener, an upstream leg that sockopt_addr_is_local()). Why: BBR
 * paces with a timer per burst, and on loopback there is no queue to pace
 * for (docs/performance.md#loopback-pacing). When the default is BBR (any
 * "bbr..." name), loopback connections get CUBIC, else Reno; with any other
 * default, or when neither can be set, nothing changes.
 * Main thread, once, before any other thread starts: fills def with the
 * default's name (empty if unknown) and returns what loopback connections
 * will use instead (a static string for the life of the process), or NULL
 * when they keep the default; *err is 0, or the errno of the last failed
 * attempt when the default is BBR and nothing could be set. */
#define SOCKOPT_CC_NAME_BYTES 16
const char *sockopt_local_init(char def[SOCKOPT_CC_NAME_BYTES], int *err);

/* For a socket whose peer is a loopback address: before connect(2), or on a
 * listening socket bound to one, before listen(2) (accepted sockets inherit
 * it). Any thread, once sockopt_local_init() has run. */
void sockopt_local(int fd);

/* True when connections to a travel over loopback: a loopback address, or
 * one of this host's own addresses at the time of the call (getifaddrs(3)):
 * a control-plane node's own apiserver reached by its node IP. Such an
 * upstream's connections get sockopt_local(). Any thread; a few system
 * calls, so once per upstream, not per connection. */
bool sockopt_addr_is_local(const struct addr *a);

/* Turns TCP keepalive on with the timers above. */
void sockopt_keepalive(int fd);

/* Both. On a listening socket, the accepted sockets inherit both. */
void sockopt_tune(int fd);

#endif
