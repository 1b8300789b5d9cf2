/* SPDX-License-Identifier: Apache-2.0 */
/* bufpool: buffers come back and are reused, at most BUFPOOL_KEEP kept. */
#include <check.h>
#include <stddef.h>
#include <string.h>

#include "bufpool.h"
#include "check_run.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
/* A kept buffer is poisoned: a use after bufpool_put() is reported. */
#define ASSERT_KEPT(p) ck_assert(__asan_address_is_poisoned(p))
#define ASSERT_TAKEN(p, n) ck_assert_ptr_null(__asan_region_is_poisoned((p), (n)))
#else
#define ASSERT_KEPT(p) ((void)(p))
#define ASSERT_TAKEN(p, n) ((void)(p), (void)(n))
#endif

/* What goes back comes out again (last in, first out), usable whole. */
START_TEST(reuses_what_comes_back)
{
    struct bufpool p;
    char *a, *b;

    bufpool_init(&p, 16384);
    a = bufpool_get(&p);
    b = bufpool_get(&p);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_ne(a, b);
    memset(a, 'a', 16384);
    memset(b, 'b', 16384);
    bufpool_put(&p, a);
    bufpool_put(&p, b);
    bufpool_put(&p, NULL); /* ignored */
    ck_assert_uint_eq(p.n, 2);
    ASSERT_KEPT(a);
    ASSERT_KEPT(b + 16383);
    ck_assert_ptr_eq(bufpool_get(&p), b);
    ck_assert_ptr_eq(bufpool_get(&p), a);
    ASSERT_TAKEN(a, 16384);
    ASSERT_TAKEN(b, 16384);
    ck_assert_uint_eq(p.n, 0);
    bufpool_put(&p, a);
    bufpool_put(&p, b);
    bufpool_destroy(&p);
    ck_assert_uint_eq(p.n, 0);
}
END_TEST

/* A burst larger than the pool: BUFPOOL_KEEP are kept, the rest freed (the
 * sanitizer build would report a leak otherwise). */
START_TEST(keeps_at_most_keep)
{
    struct bufpool p;
    void *held[BUFPOOL_KEEP + 10];

    bufpool_init(&p, 4096);
    for (size_t i = 0; i < BUFPOOL_KEEP + 10; i++)
        ck_assert_ptr_nonnull(held[i] = bufpool_get(&p));
    for (size_t i = 0; i < BUFPOOL_KEEP + 10; i++)
        bufpool_put(&p, held[i]);
    ck_assert_uint_eq(p.n, BUFPOOL_KEEP);
    bufpool_destroy(&p);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("bufpool", &tc);

    tcase_add_test(tc, reuses_what_comes_back);
    tcase_add_test(tc, keeps_at_most_keep);
    return check_run(s);
}
