/* SPDX-License-Identifier: Apache-2.0 */
/* The upstream registry; see registry.h. */
#include "registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct registry {
    struct addr *src[REGISTRY_SOURCE_COUNT]; /* UPSTREAM_MAX each */
    size_t n_src[REGISTRY_SOURCE_COUNT];
    struct zone_info *zone;             /* UPSTREAM_MAX: of src[REGISTRY_DISCOVERED][i] */
    struct upstream *reg[REGISTRY_MAX]; /* one reference each: table entries or draining */
    size_t n_reg;
    struct upstream_table *table; /* one reference, or NULL */
    uint64_t generation;
    struct upstream_entry *build; /* UPSTREAM_MAX: the table being built */
};

struct registry *registry_new(void)
{
    struct registry *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->build = calloc(UPSTREAM_MAX, sizeof(*r->build));
    r->zone = calloc(UPSTREAM_MAX, sizeof(*r->zone));
    for (int s = 0; s < REGISTRY_SOURCE_COUNT; s++)
        r->src[s] = calloc(UPSTREAM_MAX, sizeof(*r->src[s]));
    for (int s = 0; s < REGISTRY_SOURCE_COUNT; s++) {
        if (r->src[s] == NULL || r->build == NULL || r->zone == NULL) {
            registry_free(r);
            return NULL;
        }
    }
    return r;
}

void registry_free(struct registry *r)
{
    if (r == NULL)
        return;
    if (r->table != NULL)
        upstream_table_unref(r->table);
    for (size_t i = 0; i < r->n_reg; i++)
        upstream_unref(r->reg[i]);
    for (int s = 0; s < REGISTRY_SOURCE_COUNT; s++)
        free(r->src[s]);
    free(r->build);
    free(r->zone);
    free(r);
}

int registry_set(struct registry *r, enum registry_source s, const struct addr *a,
                 const struct zone_info *zones, size_t n)
{
    if (n > UPSTREAM_MAX)
        return -E2BIG;
    memcpy(r->src[s], a, n * sizeof(*a));
    r->n_src[s] = n;
    if (s != REGISTRY_DISCOVERED)
        return 0;
    if (zones != NULL)
        memcpy(r->zone, zones, n * sizeof(*zones));
    else
        memset(r->zone, 0, n * sizeof(*r->zone));
    return 0;
}

size_t registry_source_size(const struct registry *r, enum registry_source s)
{
    return r->n_src[s];
}

struct upstream_table *registry_table(const struct registry *r)
{
    return r->table;
}

struct upstream *const *registry_upstreams(const struct registry *r, size_t *n)
{
    *n = r->n_reg;
    return r->reg;
}

static void refuse(struct registry_changes *ch, const struct addr *a, enum registry_refusal why)
{
    if (ch->refused++ != 0)
        return;
    ch->first_refused = *a;
    ch->first_refused_why = why;
}

/* The registered upstream for a, registering it (is_new) when there is room;
 * NULL when there is none or on ENOMEM. */
static struct upstream *find_or_register(struct registry *r, const struct addr *a, bool *is_new)
{
    struct upstream *up;

    *is_new = false;
    for (size_t i = 0; i < r->n_reg; i++)
        if (addr_cmp(&r->reg[i]->addr, a) == 0)
            return r->reg[i];
    if (r->n_reg == REGISTRY_MAX)
        return NULL;
    up = upstream_new(a);
    if (up == NULL)
        return NULL;
    r->reg[r->n_reg++] = up;
    *is_new = true;
    return up;
}

/* Adds source s's addresses to the table being built (*n entries so far),
 * as fallback entries when fallback is set; fresh[i] marks reg[i] registered
 * by this rebuild. */
static void add_source(struct registry *r, enum registry_source s, unsigned bit, bool fallback,
                       size_t *n, struct registry_changes *ch, bool *fresh)
{
    for (size_t i = 0; i < r->n_src[s]; i++) {
        const struct addr *a = &r->src[s][i];
        size_t k;

        for (k = 0; k < *n; k++)
            if (addr_cmp(&r->build[k].up->addr, a) == 0)
                break;
        if (k == *n) {
            bool is_new;
            struct upstream *up;

            if (*n == UPSTREAM_MAX) {
                refuse(ch, a, REGISTRY_TABLE_FULL);
                continue;
            }
            up = find_or_register(r, a, &is_new);
            if (up == NULL) {
                refuse(ch, a, REGISTRY_FULL);
                continue;
            }
            if (is_new)
                fresh[r->n_reg - 1] = true;
            r->build[k] = (struct upstream_entry){.up = up, .sources = 0, .fallback = fallback};
            (*n)++;
        }
        if (s == REGISTRY_DISCOVERED)
            r->build[k].zone = r->zone[i];
        r->build[k].sources |= bit;
    }
}

static bool same_table(const struct upstream_table *a, const struct upstream_table *b)
{
    if (a == NULL || a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->e[i].up != b->e[i].up || a->e[i].sources != b->e[i].sources ||
            a->e[i].fallback != b->e[i].fallback || !zone_info_equal(&a->e[i].zone, &b->e[i].zone))
            return false;
    return true;
}

/* Lists what t changes against the current table, marking removed upstreams
 * draining and re-added ones not. */
static void list_changes(struct registry *r, const struct upstream_table *t, const bool *fresh,
                         uint64_t now_ms, struct registry_changes *ch)
{
    for (size_t i = 0; i < r->n_reg; i++) {
        struct upstream *up = r->reg[i];
        long k = upstream_table_find(t, &up->addr);
        bool in_old = r->table != NULL && upstream_table_find(r->table, &up->addr) >= 0;
        struct registry_change *c = &ch->c[ch->n];

        if (k >= 0) {
            bool was_draining = atomic_exchange(&up->draining_since_ms, 0) != 0;

            if (!was_draining && in_old)
                continue;
            *c = (struct registry_change){.kind = was_draining ? REGISTRY_READDED : REGISTRY_ADDED,
                                          .up = up,
                                          .is_new = fresh[i],
                                          .sources = t->e[k].sources};
            ch->n++;
        } else if (atomic_load(&up->draining_since_ms) == 0) {
            atomic_store(&up->draining_since_ms, now_ms != 0 ? now_ms : 1);
            *c = (struct registry_change){.kind = REGISTRY_REMOVED, .up = up};
            ch->n++;
        }
    }
}

enum registry_result registry_rebuild(struct registry *r, uint64_t now_ms,
                                      struct registry_changes *ch)
{
    bool fresh[REGISTRY_MAX] = {false};
    bool learned = r->n_src[REGISTRY_DISCOVERED] > 0 || r->n_src[REGISTRY_STATE] > 0;
    struct upstream_table *t;
    size_t n = 0;

    ch->n = 0;
    ch->refused = 0;
    add_source(r, REGISTRY_FILE, UPSTREAM_SRC_FILE, false, &n, ch, fresh);
    add_source(r, REGISTRY_DISCOVERED, UPSTREAM_SRC_DISCOVERED, false, &n, ch, fresh);
    /* The state file stands in for discovery until discovery answers. */
    if (r->n_src[REGISTRY_DISCOVERED] == 0)
        add_source(r, REGISTRY_STATE, UPSTREAM_SRC_STATE, false, &n, ch, fresh);
    /* Seeds are the last resort once the cluster told us its apiservers; an
     * address that is also learned is not a fallback. */
    add_source(r, REGISTRY_SEEDS, UPSTREAM_SRC_SEED, learned, &n, ch, fresh);
    if (n == 0)
        return r->table == NULL ? REGISTRY_NONE_YET : REGISTRY_EMPTY_REFUSED;
    t = upstream_table_new(r->build, n, r->generation + 1);
    if (t == NULL) {
        /* Registered by this rebuild, so at the end and held by nothing else. */
        while (r->n_reg > 0 && fresh[r->n_reg - 1])
            upstream_unref(r->reg[--r->n_reg]);
        return REGISTRY_NO_MEMORY;
    }
    if (same_table(r->table, t)) {
        upstream_table_unref(t);
        return REGISTRY_UNCHANGED;
    }
    list_changes(r, t, fresh, now_ms, ch);
    if (r->table != NULL)
        upstream_table_unref(r->table);
    r->table = t;
    r->generation = t->generation;
    return REGISTRY_PUBLISHED;
}

size_t registry_checked(const struct registry *r, struct upstream **out, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < r->n_reg && n < max; i++) {
        struct upstream *up = r->reg[i];

        if (atomic_load(&up->draining_since_ms) == 0 || atomic_load(&up->active) > 0)
            out[n++] = up;
    }
    return n;
}

size_t registry_prune(struct registry *r, struct upstream **out, size_t max)
{
    size_t j = 0, n = 0;

    for (size_t i = 0; i < r->n_reg; i++) {
        struct upstream *up = r->reg[i];

        if (n < max && atomic_load(&up->draining_since_ms) != 0 && atomic_load(&up->refs) == 1) {
            out[n++] = up;
            continue;
        }
        r->reg[j++] = up;
    }
    r->n_reg = j;
    return n;
}
