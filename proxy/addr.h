/* SPDX-License-Identifier: Apache-2.0 */
/* Socket addresses: parsing "HOST:PORT" (IPv6 in brackets), formatting,
 * ordering. Pure functions, no I/O, no DNS; any thread. */
#ifndef PROXY_ADDR_H
#define PROXY_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* "[" + INET6_ADDRSTRLEN + "]:" + "65535" + NUL, rounded up. */
#define ADDR_STRLEN 64
#define ADDR_HOST_MAX 256
/* The one bound on a set of addresses, wherever one comes from (flags, the
 * upstreams file, the state file, discovery) and wherever it goes (the
 * upstream table): a larger set is refused whole, with a log line naming its
 * size and this bound, never cut to fit. The API keeps an EndpointSlice to
 * 1000 endpoints, so one slice always fits. */
#define ADDR_SET_MAX 1024

/* A plain value: embed and copy freely. */
struct addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* Splits "HOST:PORT", "[V6]:PORT" or, when default_port > 0, a bare "HOST" or
 * "[V6]" into host (without brackets, NUL-terminated, at most ADDR_HOST_MAX-1
 * bytes) and port 1..65535. A bare IPv6 literal without brackets is accepted
 * only when default_port > 0 and it contains two or more colons. Returns 0, or
 * -EINVAL with *why set to a static sentence naming the rule. */
/* default_port for addresses to bind: the port is required and 0 (the kernel
 * chooses) is accepted. */
#define ADDR_PORT_ZERO_OK (-2)

int addr_split(const char *s, int default_port, char host[ADDR_HOST_MAX], unsigned *port,
               const char **why) __attribute__((warn_unused_result));

/* Fills *out from a numeric IPv4 or IPv6 host (no DNS) and port (0..65535;
 * addr_split() decides whether 0 is acceptable). Returns 0 or
 * -EINVAL when host is not a numeric address. */
int addr_from_ip(const char *host, unsigned port, struct addr *out)
    __attribute__((warn_unused_result));

/* addr_split() then addr_from_ip(): a numeric "IP:PORT". Returns 0 or -EINVAL
 * with *why set. */
int addr_parse(const char *s, int default_port, struct addr *out, const char **why)
    __attribute__((warn_unused_result));

/* Writes "1.2.3.4:443" or "[fd00::1]:6443" into buf (ADDR_STRLEN is enough).
 * Returns buf. */
char *addr_format(const struct addr *a, char *buf, size_t len);

/* Writes a[0..n) formatted and separated by sep into buf (for logs and
 * messages); addresses that would not fit whole are left out. Returns buf. */
char *addr_join(const struct addr *a, size_t n, const char *sep, char *buf, size_t len);

/* Total order over family, address bytes, port; 0 when equal. */
int addr_cmp(const struct addr *a, const struct addr *b);

/* The port in host order. */
unsigned addr_port(const struct addr *a);

/* True for addresses that can never be a remote apiserver's endpoint when
 * they come from the cluster: unspecified, multicast, link-local, broadcast.
 * (Loopback is judged by the caller: it is fine for seeds, not for
 * discovered endpoints.) */
bool addr_is_bogus(const struct addr *a);
bool addr_is_loopback(const struct addr *a);

#endif
