/* SPDX-License-Identifier: Apache-2.0 */
/* A small upstream table for the suites that pick from one or ramp its
 * upstreams (test_tier.c, test_balance.c): their checked fixtures. */
#ifndef TESTS_UNIT_CHECK_TABLE_H
#define TESTS_UNIT_CHECK_TABLE_H

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "upstream.h"

#define CHECK_TABLE_MAX 8

/* n (1..CHECK_TABLE_MAX) seed upstreams 10.0.0.1:6443, 10.0.0.2:6443, ...
 * into ups[0..n), and a new table of them (generation 1, sorted, so
 * (*tab)->e[i].up == ups[i]) into *tab. The caller holds one reference on
 * each upstream besides the table's: check_table_free() drops both. */
static inline void check_table_new(struct upstream **ups, size_t n, struct upstream_table **tab)
{
    struct upstream_entry e[CHECK_TABLE_MAX];

    ck_assert_uint_le(n, CHECK_TABLE_MAX);
    memset(e, 0, sizeof(e));
    for (size_t i = 0; i < n; i++) {
        char ip[16];
        struct addr a;

        snprintf(ip, sizeof(ip), "10.0.0.%zu", i + 1);
        ck_assert_int_eq(addr_from_ip(ip, 6443, &a), 0);
        e[i].up = ups[i] = upstream_new(&a);
        ck_assert_ptr_nonnull(ups[i]);
        e[i].sources = UPSTREAM_SRC_SEED;
    }
    *tab = upstream_table_new(e, n, 1);
    ck_assert_ptr_nonnull(*tab);
}

/* Frees what check_table_new() made. */
static inline void check_table_free(struct upstream **ups, size_t n, struct upstream_table *tab)
{
    upstream_table_unref(tab);
    for (size_t i = 0; i < n; i++)
        upstream_unref(ups[i]);
}

#endif
