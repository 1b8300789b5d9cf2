/* SPDX-License-Identifier: Apache-2.0 */
/* Address parsing and formatting; see addr.h. */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *p, unsigned *port, bool allow_zero, const char **why)
{
    unsigned long v = 0;
    const char *c;

    if (*p == '\0') {
        *why = "port is missing (HOST:PORT)";
        return -EINVAL;
    }
    for (c = p; *c != '\0'; c++) {
        if (*c < '0' || *c > '9' || c - p >= 5) {
            *why = "port must be a number 1..65535";
            return -EINVAL;
        }
        v = v * 10 + (unsigned long)(*c - '0');
    }
    if ((v < 1 && !allow_zero) || v > 65535) {
        *why = "port must be a number 1..65535";
        return -EINVAL;
    }
    *port = (unsigned)v;
    return 0;
}

static int copy_host(const char *h, size_t n, char host[ADDR_HOST_MAX], const char **why)
{
    size_t i;

    if (n == 0) {
        *why = "host is empty";
        return -EINVAL;
    }
    if (n >= ADDR_HOST_MAX) {
        *why = "host is longer than 255 bytes";
        return -EINVAL;
    }
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '/' || ch == '[' || ch == ']' || ch == '@') {
            *why = "host has a character that no host name or address contains";
            return -EINVAL;
        }
    }
    memcpy(host, h, n);
    host[n] = '\0';
    return 0;
}

int addr_split(const char *s, int default_port, char host[ADDR_HOST_MAX], unsigned *port,
               const char **why)
{
    const char *colon;
    int rc;

    *why = "";
    if (s == NULL || *s == '\0') {
        *why = "address is empty";
        return -EINVAL;
    }
    if (s[0] == '[') {
        const char *close = strchr(s, ']');

        if (close == NULL) {
            *why = "IPv6 address has '[' without ']'";
            return -EINVAL;
        }
        rc = copy_host(s + 1, (size_t)(close - s - 1), host, why);
        if (rc < 0)
            return rc;
        if (strchr(host, ':') == NULL) {
            *why = "only IPv6 addresses go in brackets";
            return -EINVAL;
        }
        if (close[1] == '\0' && default_port > 0) {
            *port = (unsigned)default_port;
            return 0;
        }
        if (close[1] != ':') {
            *why = "expected ':PORT' after ']'";
            return -EINVAL;
        }
        return parse_port(close + 2, port, default_port == ADDR_PORT_ZERO_OK, why);
    }
    colon = strchr(s, ':');
    if (colon != NULL && strchr(colon + 1, ':') != NULL) {
        /* Two or more colons and no brackets: an IPv6 literal with no port. */
        if (default_port <= 0) {
            *why = "IPv6 addresses with a port need brackets, as [fd00::1]:6443";
            return -EINVAL;
        }
        rc = copy_host(s, strlen(s), host, why);
        if (rc < 0)
            return rc;
        *port = (unsigned)default_port;
        return 0;
    }
    if (colon == NULL) {
        if (default_port <= 0) {
            *why = "port is missing (HOST:PORT)";
            return -EINVAL;
        }
        rc = copy_host(s, strlen(s), host, why);
        if (rc < 0)
            return rc;
        *port = (unsigned)default_port;
        return 0;
    }
    rc = copy_host(s, (size_t)(colon - s), host, why);
    if (rc < 0)
        return rc;
    return parse_port(colon + 1, port, default_port == ADDR_PORT_ZERO_OK, why);
}

int addr_from_ip(const char *host, unsigned port, struct addr *out)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;

    memset(out, 0, sizeof(*out));
    if (port > 65535)
        return -EINVAL;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        out->len = sizeof(*sin);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        out->len = sizeof(*sin6);
        return 0;
    }
    return -EINVAL;
}

int addr_parse(const char *s, int default_port, struct addr *out, const char **why)
{
    char host[ADDR_HOST_MAX];
    unsigned port = 0;
    int rc;

    rc = addr_split(s, default_port, host, &port, why);
    if (rc < 0)
        return rc;
    rc = addr_from_ip(host, port, out);
    if (rc < 0)
        *why = "host must be a numeric IPv4 or IPv6 address";
    return rc;
}

char *addr_format(const struct addr *a, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(buf, len, "%s:%u", ip, ntohs(sin->sin_port));
    } else if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    } else {
        snprintf(buf, len, "?");
    }
    return buf;
}

unsigned addr_port(const struct addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    if (a->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    return 0;
}

int addr_cmp(const struct addr *a, const struct addr *b)
{
    int c;

    if (a->ss.ss_family != b->ss.ss_family)
        return a->ss.ss_family < b->ss.ss_family ? -1 : 1;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&a->ss;
        const struct sockaddr_in *y = (const struct sockaddr_in *)&b->ss;
        c = memcmp(&x->sin_addr, &y->sin_addr, sizeof(x->sin_addr));
    } else if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->ss;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b->ss;
        c = memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
    } else {
        c = 0;
    }
    if (c != 0)
        return c < 0 ? -1 : 1;
    if (addr_port(a) != addr_port(b))
        return addr_port(a) < addr_port(b) ? -1 : 1;
    return 0;
}

bool addr_is_loopback(const struct addr *a)
{
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
            return sin6->sin6_addr.s6_addr[12] == 127;
        return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
    }
    return false;
}

char *addr_join(const struct addr *a, size_t n, const char *sep, char *buf, size_t len)
{
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n && off + strlen(sep) + ADDR_STRLEN < len; i++) {
        char name[ADDR_STRLEN];

        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? sep : "",
                                addr_format(&a[i], name, sizeof(name)));
    }
    return buf;
}

bool addr_is_bogus(const struct addr *a)
{
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
        uint32_t v = ntohl(sin->sin_addr.s_addr);
        return v == 0 || v == 0xffffffffu || (v >> 28) == 0xe /* 224/4 multicast */ ||
               (v >> 16) == 0xa9fe /* 169.254/16 link-local */ || (v >> 24) == 0;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
        return IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr) ||
               IN6_IS_ADDR_MULTICAST(&sin6->sin6_addr) || IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr);
    }
    return true;
}
