/* SPDX-License-Identifier: Apache-2.0 */
/* Objects to addresses; see endpoints.h. */
#include "endpoints.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_unique(struct addr *out, size_t max, size_t *n, const struct addr *a)
{
    for (size_t i = 0; i < *n; i++)
        if (addr_cmp(&out[i], a) == 0)
            return;
    if (*n < max)
        out[(*n)++] = *a;
}

/* The port named "https", or the only port. 0 when none fits. */
static int pick_port(json_t *ports, unsigned *port, char *err, size_t err_len)
{
    json_t *p, *chosen = NULL;
    size_t i;

    *port = 0;
    if (ports == NULL || json_is_null(ports))
        return 0;
    if (!json_is_array(ports)) {
        snprintf(err, err_len, "ports is not a list");
        return -EINVAL;
    }
    json_array_foreach(ports, i, p) {
        json_t *name = json_object_get(p, "name");

        if (json_is_string(name) && strcmp(json_string_value(name), "https") == 0)
            chosen = p;
    }
    if (chosen == NULL && json_array_size(ports) == 1)
        chosen = json_array_get(ports, 0);
    if (chosen == NULL)
        return 0;
    {
        json_t *v = json_object_get(chosen, "port");
        json_int_t n;

        if (!json_is_integer(v) || (n = json_integer_value(v)) < 1 || n > 65535) {
            snprintf(err, err_len, "port is not a number 1..65535");
            return -EINVAL;
        }
        *port = (unsigned)n;
    }
    return 0;
}

static int add_ip(json_t *ip, unsigned port, struct addr *out, size_t max, size_t *n, char *err,
                  size_t err_len)
{
    struct addr a;

    if (!json_is_string(ip) || addr_from_ip(json_string_value(ip), port, &a) < 0) {
        snprintf(err, err_len, "address '%.60s' is not an IP address",
                 json_is_string(ip) ? json_string_value(ip) : "(not a string)");
        return -EINVAL;
    }
    if (addr_is_bogus(&a) || addr_is_loopback(&a)) {
        snprintf(err, err_len, "address '%.60s' is loopback, link-local, multicast or unspecified",
                 json_string_value(ip));
        return -EINVAL;
    }
    add_unique(out, max, n, &a);
    return 0;
}

static int from_slice(json_t *obj, struct addr *out, size_t max, size_t *n, char *err,
                      size_t err_len)
{
    json_t *type = json_object_get(obj, "addressType"), *eps = json_object_get(obj, "endpoints");
    json_t *ep;
    unsigned port;
    size_t i;

    if (!json_is_string(type)) {
        snprintf(err, err_len, "EndpointSlice without addressType");
        return -EINVAL;
    }
    if (strcmp(json_string_value(type), "IPv4") != 0 && strcmp(json_string_value(type), "IPv6") != 0)
        return 0; /* FQDN: no semantics defined */
    if (pick_port(json_object_get(obj, "ports"), &port, err, err_len) < 0)
        return -EINVAL;
    if (port == 0 || eps == NULL || json_is_null(eps))
        return 0;
    if (!json_is_array(eps)) {
        snprintf(err, err_len, "endpoints is not a list");
        return -EINVAL;
    }
    json_array_foreach(eps, i, ep) {
        json_t *ready = json_object_get(json_object_get(ep, "conditions"), "ready");
        json_t *addrs = json_object_get(ep, "addresses");

        if (json_is_false(ready))
            continue;
        if (!json_is_array(addrs) || json_array_size(addrs) == 0) {
            snprintf(err, err_len, "an endpoint without addresses");
            return -EINVAL;
        }
        if (add_ip(json_array_get(addrs, 0), port, out, max, n, err, err_len) < 0)
            return -EINVAL;
    }
    return 0;
}

static int from_endpoints(json_t *obj, struct addr *out, size_t max, size_t *n, char *err,
                          size_t err_len)
{
    json_t *subsets = json_object_get(obj, "subsets"), *ss, *a;
    size_t i, j;

    if (subsets == NULL || json_is_null(subsets))
        return 0;
    if (!json_is_array(subsets)) {
        snprintf(err, err_len, "subsets is not a list");
        return -EINVAL;
    }
    json_array_foreach(subsets, i, ss) {
        json_t *addrs = json_object_get(ss, "addresses");
        unsigned port;

        if (pick_port(json_object_get(ss, "ports"), &port, err, err_len) < 0)
            return -EINVAL;
        if (port == 0 || addrs == NULL || json_is_null(addrs))
            continue;
        if (!json_is_array(addrs)) {
            snprintf(err, err_len, "addresses is not a list");
            return -EINVAL;
        }
        json_array_foreach(addrs, j, a) {
            if (add_ip(json_object_get(a, "ip"), port, out, max, n, err, err_len) < 0)
                return -EINVAL;
        }
    }
    return 0;
}

int endpoints_extract(json_t *obj, enum endpoints_kind kind, struct addr *out, size_t max,
                      size_t *n, char *err, size_t err_len)
{
    if (!json_is_object(obj)) {
        snprintf(err, err_len, "the object is not a JSON object");
        return -EINVAL;
    }
    return kind == ENDPOINTS_SLICE ? from_slice(obj, out, max, n, err, err_len)
                                   : from_endpoints(obj, out, max, n, err, err_len);
}

void endpoints_cache_clear(struct endpoints_cache *c)
{
    c->n = 0;
}

int endpoints_cache_set(struct endpoints_cache *c, const char *name, const struct addr *a,
                        size_t n)
{
    size_t i;

    for (i = 0; i < c->n; i++)
        if (strcmp(c->obj[i].name, name) == 0)
            break;
    if (i == c->n) {
        if (c->n == ENDPOINTS_MAX_OBJECTS)
            return -ENOSPC;
        c->n++;
        snprintf(c->obj[i].name, sizeof(c->obj[i].name), "%s", name);
    }
    if (n > ENDPOINTS_MAX_ADDRS)
        n = ENDPOINTS_MAX_ADDRS;
    memcpy(c->obj[i].a, a, n * sizeof(*a));
    c->obj[i].n = n;
    return 0;
}

void endpoints_cache_remove(struct endpoints_cache *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->obj[i].name, name) == 0) {
            c->obj[i] = c->obj[c->n - 1];
            c->n--;
            return;
        }
    }
}

static int cmp(const void *a, const void *b)
{
    return addr_cmp(a, b);
}

size_t endpoints_cache_union(const struct endpoints_cache *c, struct addr *out, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < c->n; i++)
        for (size_t j = 0; j < c->obj[i].n; j++)
            add_unique(out, max, &n, &c->obj[i].a[j]);
    qsort(out, n, sizeof(*out), cmp);
    return n;
}
