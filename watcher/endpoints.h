/* SPDX-License-Identifier: Apache-2.0 */
/* From Kubernetes objects to apiserver addresses. An EndpointSlice gives its
 * ready endpoints (conditions.ready absent or true; the first address of
 * each) on the port named "https" (or its only port); FQDN slices give
 * nothing. An Endpoints object gives the union over its subsets of addresses
 * (never notReadyAddresses) on the "https" (or only) port. Loopback,
 * link-local, multicast and unspecified addresses are rejected (the API
 * forbids them, so they mean a broken or hostile response). Pure. */
#ifndef WATCHER_ENDPOINTS_H
#define WATCHER_ENDPOINTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "addr.h"

#define ENDPOINTS_MAX_OBJECTS 64
#define ENDPOINTS_MAX_ADDRS 256

enum endpoints_kind {
    ENDPOINTS_SLICE = 0,
    ENDPOINTS_V1,
};

/* Appends the addresses of obj to out[*n..max) (duplicates skipped).
 * Returns 0, or -EINVAL with a sentence in err for a malformed object. */
int endpoints_extract(json_t *obj, enum endpoints_kind kind, struct addr *out, size_t max,
                      size_t *n, char *err, size_t err_len) __attribute__((warn_unused_result));

/* The objects seen so far (by name) and their addresses. */
struct endpoints_cache {
    struct {
        char name[254];
        struct addr a[ENDPOINTS_MAX_ADDRS];
        size_t n;
    } obj[ENDPOINTS_MAX_OBJECTS];
    size_t n;
};

void endpoints_cache_clear(struct endpoints_cache *c);

/* Replaces (or adds) the object name. -ENOSPC when full. */
int endpoints_cache_set(struct endpoints_cache *c, const char *name, const struct addr *a,
                        size_t n);
void endpoints_cache_remove(struct endpoints_cache *c, const char *name);

/* The union of every object's addresses, sorted, without duplicates. */
size_t endpoints_cache_union(const struct endpoints_cache *c, struct addr *out, size_t max);

#endif
