/* SPDX-License-Identifier: Apache-2.0 */
/* From Kubernetes objects to apiserver endpoints. An EndpointSlice gives its
 * ready endpoints (conditions.ready absent, null or true; the first address
 * of each) on the port named "https" (or its only port), with their zone and
 * hints.forZones; FQDN slices give nothing (the API defines no semantics for
 * them). An Endpoints object gives the union over its subsets of addresses
 * (never notReadyAddresses) on the "https" (or only) port, without zones.
 * Loopback, link-local, unspecified and multicast addresses, an address of
 * the other family than the slice's addressType and a zone that is not a
 * label value are rejected: the API's validation forbids them (of multicast,
 * the link-local range; other multicast cannot be an apiserver either), so
 * they mean a broken or hostile response. Pure. */
#ifndef WATCHER_ENDPOINTS_H
#define WATCHER_ENDPOINTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "addr.h"
#include "watcher.h"

#define ENDPOINTS_MAX_OBJECTS 64

enum endpoints_kind {
    ENDPOINTS_SLICE = 0,
    ENDPOINTS_V1,
};

/* A label value (what the API requires of a zone): at most 63 characters,
 * alphanumerics with '-', '_' or '.' inside. Empty is valid. */
bool endpoints_label_value_ok(const char *s);

/* Appends the endpoints of obj to out[*n..max) (duplicate addresses
 * skipped) and sets *family to the slice's address family (AF_INET or
 * AF_INET6; AF_UNSPEC for an Endpoints object). Returns 0, 1 when obj is a
 * slice of addressType FQDN (ignored: nothing appended), -E2BIG with a
 * sentence naming how many it lists and max when its distinct addresses do
 * not fit (out then holds the first max: not for use), or -EINVAL with a
 * sentence in err for a malformed object. */
int endpoints_extract(json_t *obj, enum endpoints_kind kind, struct watcher_endpoint *out,
                      size_t max, size_t *n, int *family, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* The objects seen so far (by name), their family and their endpoints. */
struct endpoints_object {
    char name[254];
    int family;                  /* AF_INET, AF_INET6, or AF_UNSPEC (Endpoints v1) */
    struct watcher_endpoint *ep; /* owned, sorted by address */
    size_t n;
};

struct endpoints_cache {
    struct endpoints_object obj[ENDPOINTS_MAX_OBJECTS];
    size_t n;
};

/* Frees every object's endpoints; the cache is empty and reusable. */
void endpoints_cache_clear(struct endpoints_cache *c);

/* Replaces (or adds) the object name with a copy of ep[0..n) (n at most
 * ADDR_SET_MAX, which endpoints_extract() ensures). Returns 0, -ENOSPC when ENDPOINTS_MAX_OBJECTS
 * are held, or -ENOMEM (the cache is unchanged then). */
int endpoints_cache_set(struct endpoints_cache *c, const char *name, int family,
                        const struct watcher_endpoint *ep, size_t n)
    __attribute__((warn_unused_result));
void endpoints_cache_remove(struct endpoints_cache *c, const char *name);

/* Two objects of one address family that carry different, non-empty sets of
 * addresses. The apiserver's endpoint reconciler writes the whole set of a
 * family into one slice, so this is a replacement in flight (a new slice
 * beside the one about to be deleted): their union never existed. */
struct endpoints_split {
    bool found;
    int family;
    char a[254], b[254]; /* the two objects' names */
};

/* Writes the union of every object's endpoints into out[0..max), sorted by
 * address, without duplicates (the object first in name order gives the
 * zone of an address listed twice), and returns how many. When there are
 * more than max, returns how many there are and writes nothing: the set is
 * over the bound and the caller refuses it. *split, when not NULL, says
 * whether two objects of one family disagree. */
size_t endpoints_cache_merge(const struct endpoints_cache *c, struct watcher_endpoint *out,
                             size_t max, struct endpoints_split *split);

/* The family (AF_INET or AF_INET6) that applied[0..na) has and next[0..nn)
 * lacks entirely while next is not empty (one family's slice deleted before
 * its replacement is added), or 0. */
int endpoints_family_lost(const struct watcher_endpoint *applied, size_t na,
                          const struct watcher_endpoint *next, size_t nn);

/* Same addresses, zones and hints, in the same order? */
bool endpoints_same(const struct watcher_endpoint *a, size_t na, const struct watcher_endpoint *b,
                    size_t nb);

#endif
