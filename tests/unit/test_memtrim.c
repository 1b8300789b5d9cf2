/* SPDX-License-Identifier: Apache-2.0 */
/* Giving a burst's memory back (proxy/memtrim.h): when it trims. */
#include <check.h>

#include "check_run.h"
#include "memtrim.h"

START_TEST(trims_after_a_real_burst_only)
{
    struct memtrim m = {0};

    ck_assert(!memtrim_tick(&m, MEMTRIM_MIN_PEAK - 1));
    ck_assert(!memtrim_tick(&m, 0)); /* a small peak is not worth a trim */
    ck_assert(!memtrim_tick(&m, 200));
    ck_assert(!memtrim_tick(&m, 101)); /* above half of the peak */
    ck_assert(memtrim_tick(&m, 100));
    ck_assert_uint_eq(m.peak_active, 100); /* the peak starts again from now */
    ck_assert(!memtrim_tick(&m, 60));
    ck_assert(memtrim_tick(&m, 50));
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("memtrim", &tc);

    tcase_add_test(tc, trims_after_a_real_burst_only);
    return check_run(s);
}
