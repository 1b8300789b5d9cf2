/* SPDX-License-Identifier: Apache-2.0 */
#include "resolve.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static void add_unique(const struct addr *a, struct addr *out, size_t max, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        if (addr_cmp(&out[i], a) == 0)
            return;
    if (*n < max)
        out[(*n)++] = *a;
}

int resolve_seed(const struct config_seed *sd, struct addr *out, size_t max, size_t *n,
                 char *err, size_t err_len)
{
    struct addrinfo hints, *res = NULL, *ai;
    struct addr a;
    char port[8];
    int rc;

    if (addr_from_ip(sd->host, sd->port, &a) == 0) {
        add_unique(&a, out, max, n);
        return 0;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%u", sd->port);
    rc = getaddrinfo(sd->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_len, "%s: cannot resolve: %s", sd->host, gai_strerror(rc));
        return -ENOENT;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(a.ss))
            continue;
        memset(&a, 0, sizeof(a));
        memcpy(&a.ss, ai->ai_addr, ai->ai_addrlen);
        a.len = ai->ai_addrlen;
        add_unique(&a, out, max, n);
    }
    freeaddrinfo(res);
    return 0;
}
