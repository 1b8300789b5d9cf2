/* SPDX-License-Identifier: Apache-2.0 */
/* Objects to endpoints, and the merge of every object; see endpoints.h. */
#include "endpoints.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Appends e to out[0..*n) unless its address is there; false when it is
 * new and out has max already. */
static bool add_unique(struct watcher_endpoint *out, size_t max, size_t *n,
                       const struct watcher_endpoint *e)
{
    for (size_t i = 0; i < *n; i++)
        if (addr_cmp(&out[i].addr, &e->addr) == 0)
            return true;
    if (*n == max)
        return false;
    out[(*n)++] = *e;
    return true;
}

/* The error of an object whose addresses do not fit: how many it lists. */
static int over_bound(size_t listed, size_t max, char *err, size_t err_len)
{
    snprintf(err, err_len, "lists %zu addresses, more than the %zu of an address set", listed, max);
    return -E2BIG;
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
    json_array_foreach(ports, i, p)
    {
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

/* family: the slice's (AF_INET, AF_INET6), or AF_UNSPEC for either. */
static int parse_ip(json_t *ip, unsigned port, int family, struct addr *a, char *err,
                    size_t err_len)
{
    if (!json_is_string(ip) || addr_from_ip(json_string_value(ip), port, a) < 0) {
        snprintf(err, err_len, "address '%.60s' is not an IP address",
                 json_is_string(ip) ? json_string_value(ip) : "(not a string)");
        return -EINVAL;
    }
    if (family != AF_UNSPEC && a->ss.ss_family != family) {
        snprintf(err, err_len, "address '%.60s' is not of the slice's addressType %s",
                 json_string_value(ip), family == AF_INET ? "IPv4" : "IPv6");
        return -EINVAL;
    }
    if (addr_is_bogus(a) || addr_is_loopback(a)) {
        snprintf(err, err_len, "address '%.60s' is loopback, link-local, multicast or unspecified",
                 json_string_value(ip));
        return -EINVAL;
    }
    return 0;
}

bool endpoints_label_value_ok(const char *s)
{
    size_t n = strlen(s);

    if (n > ZONE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');

        if (!alnum && ((ch != '-' && ch != '_' && ch != '.') || i == 0 || i == n - 1))
            return false;
    }
    return true;
}

/* Copies a zone name (absent or null: none). */
static int zone_copy(json_t *v, char out[ZONE_NAME_MAX + 1], const char *what, char *err,
                     size_t err_len)
{
    out[0] = '\0';
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v) || !endpoints_label_value_ok(json_string_value(v))) {
        snprintf(err, err_len, "%s '%.70s' is not a label value", what,
                 json_is_string(v) ? json_string_value(v) : "(not a string)");
        return -EINVAL;
    }
    memcpy(out, json_string_value(v), strlen(json_string_value(v)) + 1);
    return 0;
}

static int read_zone(json_t *ep, struct zone_info *z, char *err, size_t err_len)
{
    json_t *hints = json_object_get(ep, "hints"), *zones, *h;
    size_t i;

    memset(z, 0, sizeof(*z));
    if (zone_copy(json_object_get(ep, "zone"), z->name, "zone", err, err_len) < 0)
        return -EINVAL;
    if (hints == NULL || json_is_null(hints))
        return 0;
    zones = json_object_get(hints, "forZones");
    if (!json_is_object(hints) ||
        (zones != NULL && !json_is_null(zones) && !json_is_array(zones))) {
        snprintf(err, err_len, "hints.forZones is not a list");
        return -EINVAL;
    }
    if (json_array_size(zones) > ZONE_HINTS_MAX) {
        snprintf(err, err_len, "hints.forZones has %zu zones (at most %d)", json_array_size(zones),
                 ZONE_HINTS_MAX);
        return -EINVAL;
    }
    json_array_foreach(zones, i, h)
    {
        if (zone_copy(json_object_get(h, "name"), z->for_zones[z->n_for_zones],
                      "hints.forZones name", err, err_len) < 0)
            return -EINVAL;
        if (z->for_zones[z->n_for_zones][0] != '\0')
            z->n_for_zones++;
    }
    return 0;
}

static int from_slice(json_t *obj, struct watcher_endpoint *out, size_t max, size_t *n, int *family,
                      char *err, size_t err_len)
{
    json_t *type = json_object_get(obj, "addressType"), *eps = json_object_get(obj, "endpoints");
    json_t *ep;
    unsigned port;
    size_t i;

    if (!json_is_string(type)) {
        snprintf(err, err_len, "EndpointSlice without addressType");
        return -EINVAL;
    }
    if (strcmp(json_string_value(type), "IPv4") == 0) {
        *family = AF_INET;
    } else if (strcmp(json_string_value(type), "IPv6") == 0) {
        *family = AF_INET6;
    } else if (strcmp(json_string_value(type), "FQDN") == 0) {
        return 1; /* deprecated, "no semantics are defined" */
    } else {
        snprintf(err, err_len, "addressType '%.40s' is none of IPv4, IPv6, FQDN",
                 json_string_value(type));
        return -EINVAL;
    }
    if (pick_port(json_object_get(obj, "ports"), &port, err, err_len) < 0)
        return -EINVAL;
    if (port == 0 || eps == NULL || json_is_null(eps))
        return 0;
    if (!json_is_array(eps)) {
        snprintf(err, err_len, "endpoints is not a list");
        return -EINVAL;
    }
    json_array_foreach(eps, i, ep)
    {
        json_t *ready = json_object_get(json_object_get(ep, "conditions"), "ready");
        json_t *addrs = json_object_get(ep, "addresses");
        struct watcher_endpoint e;

        if (json_is_false(ready)) /* nil means ready */
            continue;
        if (!json_is_array(addrs) || json_array_size(addrs) == 0) {
            snprintf(err, err_len, "an endpoint without addresses");
            return -EINVAL;
        }
        if (parse_ip(json_array_get(addrs, 0), port, *family, &e.addr, err, err_len) < 0 ||
            read_zone(ep, &e.zone, err, err_len) < 0)
            return -EINVAL;
        if (!add_unique(out, max, n, &e))
            return over_bound(json_array_size(eps), max, err, err_len);
    }
    return 0;
}

/* How many addresses the subsets of an Endpoints object list. */
static size_t listed_v1(json_t *subsets)
{
    json_t *ss;
    size_t i, n = 0;

    json_array_foreach(subsets, i, ss) n += json_array_size(json_object_get(ss, "addresses"));
    return n;
}

static int from_endpoints(json_t *obj, struct watcher_endpoint *out, size_t max, size_t *n,
                          char *err, size_t err_len)
{
    json_t *subsets = json_object_get(obj, "subsets"), *ss, *a;
    size_t i, j;

    if (subsets == NULL || json_is_null(subsets))
        return 0;
    if (!json_is_array(subsets)) {
        snprintf(err, err_len, "subsets is not a list");
        return -EINVAL;
    }
    json_array_foreach(subsets, i, ss)
    {
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
        json_array_foreach(addrs, j, a)
        {
            struct watcher_endpoint e;

            memset(&e.zone, 0, sizeof(e.zone)); /* Endpoints carry no zones */
            if (parse_ip(json_object_get(a, "ip"), port, AF_UNSPEC, &e.addr, err, err_len) < 0)
                return -EINVAL;
            if (!add_unique(out, max, n, &e))
                return over_bound(listed_v1(subsets), max, err, err_len);
        }
    }
    return 0;
}

int endpoints_extract(json_t *obj, enum endpoints_kind kind, struct watcher_endpoint *out,
                      size_t max, size_t *n, int *family, char *err, size_t err_len)
{
    *family = AF_UNSPEC;
    if (!json_is_object(obj)) {
        snprintf(err, err_len, "the object is not a JSON object");
        return -EINVAL;
    }
    return kind == ENDPOINTS_SLICE ? from_slice(obj, out, max, n, family, err, err_len)
                                   : from_endpoints(obj, out, max, n, err, err_len);
}

void endpoints_cache_clear(struct endpoints_cache *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->obj[i].ep);
        c->obj[i].ep = NULL;
    }
    c->n = 0;
}

static int ep_cmp(const void *a, const void *b)
{
    return addr_cmp(&((const struct watcher_endpoint *)a)->addr,
                    &((const struct watcher_endpoint *)b)->addr);
}

int endpoints_cache_set(struct endpoints_cache *c, const char *name, int family,
                        const struct watcher_endpoint *ep, size_t n)
{
    struct watcher_endpoint *copy;
    size_t i;

    assert(n <= ADDR_SET_MAX); /* endpoints_extract() refuses more */
    for (i = 0; i < c->n; i++)
        if (strcmp(c->obj[i].name, name) == 0)
            break;
    if (i == c->n && c->n == ENDPOINTS_MAX_OBJECTS)
        return -ENOSPC;
    copy = malloc((n ? n : 1) * sizeof(*copy));
    if (copy == NULL)
        return -ENOMEM;
    if (n > 0)
        memcpy(copy, ep, n * sizeof(*copy));
    qsort(copy, n, sizeof(*copy), ep_cmp);
    if (i == c->n) {
        c->n++;
        snprintf(c->obj[i].name, sizeof(c->obj[i].name), "%s", name);
    } else {
        free(c->obj[i].ep);
    }
    c->obj[i].family = family;
    c->obj[i].ep = copy;
    c->obj[i].n = n;
    return 0;
}

void endpoints_cache_remove(struct endpoints_cache *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->obj[i].name, name) == 0) {
            free(c->obj[i].ep);
            c->obj[i] = c->obj[c->n - 1];
            c->obj[c->n - 1].ep = NULL;
            c->n--;
            return;
        }
    }
}

static bool same_addrs(const struct endpoints_object *a, const struct endpoints_object *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) /* both sorted */
        if (addr_cmp(&a->ep[i].addr, &b->ep[i].addr) != 0)
            return false;
    return true;
}

/* Whether an address of o (sorted by address) is e's. */
static bool object_has(const struct endpoints_object *o, const struct watcher_endpoint *e)
{
    return bsearch(e, o->ep, o->n, sizeof(*e), ep_cmp) != NULL;
}

/* The size of the union of every object's addresses (each object's are
 * distinct and sorted), counted without room for it. */
static size_t union_size(const struct endpoints_cache *c)
{
    size_t n = 0;

    for (size_t i = 0; i < c->n; i++) {
        for (size_t j = 0; j < c->obj[i].n; j++) {
            size_t k = 0;

            while (k < i && !object_has(&c->obj[k], &c->obj[i].ep[j]))
                k++;
            n += k == i;
        }
    }
    return n;
}

size_t endpoints_cache_merge(const struct endpoints_cache *c, struct watcher_endpoint *out,
                             size_t max, struct endpoints_split *split)
{
    const struct endpoints_object *order[ENDPOINTS_MAX_OBJECTS];
    size_t n = union_size(c);

    if (split != NULL)
        memset(split, 0, sizeof(*split));
    if (n > max)
        return n;
    n = 0;

    /* Name order, so the zone of an address two objects list does not
     * depend on the order events came in. */
    for (size_t i = 0; i < c->n; i++) {
        size_t k = i;

        while (k > 0 && strcmp(order[k - 1]->name, c->obj[i].name) > 0) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = &c->obj[i];
    }
    for (size_t i = 0; i < c->n; i++) {
        for (size_t j = 0; j < order[i]->n; j++)
            (void)add_unique(out, max, &n, &order[i]->ep[j]); /* fits: union_size() */
        for (size_t k = i + 1; split != NULL && !split->found && k < c->n; k++) {
            const struct endpoints_object *a = order[i], *b = order[k];

            if (a->family == b->family && a->family != AF_UNSPEC && a->n > 0 && b->n > 0 &&
                !same_addrs(a, b)) {
                split->found = true;
                split->family = a->family;
                snprintf(split->a, sizeof(split->a), "%s", a->name);
                snprintf(split->b, sizeof(split->b), "%s", b->name);
            }
        }
    }
    qsort(out, n, sizeof(*out), ep_cmp);
    return n;
}

static bool has_family(const struct watcher_endpoint *e, size_t n, int family)
{
    for (size_t i = 0; i < n; i++)
        if (e[i].addr.ss.ss_family == family)
            return true;
    return false;
}

int endpoints_family_lost(const struct watcher_endpoint *applied, size_t na,
                          const struct watcher_endpoint *next, size_t nn)
{
    static const int families[] = {AF_INET, AF_INET6};

    if (nn == 0)
        return 0;
    for (size_t i = 0; i < 2; i++)
        if (has_family(applied, na, families[i]) && !has_family(next, nn, families[i]))
            return families[i];
    return 0;
}

bool endpoints_same(const struct watcher_endpoint *a, size_t na, const struct watcher_endpoint *b,
                    size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (addr_cmp(&a[i].addr, &b[i].addr) != 0 || !zone_info_equal(&a[i].zone, &b[i].zone))
            return false;
    return true;
}
