/* SPDX-License-Identifier: Apache-2.0 */
/* The process's mixer and generator (proxy/rand.h): rand_mix64 is splitmix64's
 * output function, and the picker's seed 0 still draws. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "check_run.h"
#include "rand.h"
#include "upstream.h"

#define RUN 4096

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* splitmix64's published outputs: seed 0 gives 0xe220a8397b1dcdaf,
 * 0x6e789e6aa1b965f4, 0x06c45d188009454f (its state steps by the golden
 * ratio), and seed 1234567 first gives 6457827717110365317. */
START_TEST(mix_matches_splitmix64)
{
    ck_assert_uint_eq(rand_mix64(0), 0xe220a8397b1dcdafull);
    ck_assert_uint_eq(rand_mix64(0x9e3779b97f4a7c15ull), 0x6e789e6aa1b965f4ull);
    ck_assert_uint_eq(rand_mix64(0x3c6ef372fe94f82aull), 0x06c45d188009454full);
    ck_assert_uint_eq(rand_mix64(1234567), 6457827717110365317ull);
    ck_assert_uint_eq(rand_mix64(UINT64_MAX), 0xe4d971771b652c20ull);
}
END_TEST

/* Consecutive inputs (pointers, milliseconds, pids) are what the callers mix:
 * from small numbers, a wall-clock millisecond and the wrap at 2^64, each run
 * of RUN gives RUN distinct outputs, and neighbours differ in at least 16 of
 * the 64 bits (a multiplicative hash or the identity would not). */
START_TEST(mix_spreads_consecutive_inputs)
{
    static const uint64_t base[] = {0, 1764892800000ull, UINT64_MAX - RUN / 2};
    static uint64_t out[RUN];

    for (size_t b = 0; b < sizeof(base) / sizeof(base[0]); b++) {
        for (uint64_t i = 0; i < RUN; i++) {
            out[i] = rand_mix64(base[b] + i);
            if (i > 0)
                ck_assert_msg(__builtin_popcountll(out[i] ^ out[i - 1]) >= 16,
                              "mix(%llu) and mix(%llu) differ in %d bits",
                              (unsigned long long)(base[b] + i - 1),
                              (unsigned long long)(base[b] + i),
                              __builtin_popcountll(out[i] ^ out[i - 1]));
        }
        qsort(out, RUN, sizeof(out[0]), cmp_u64);
        for (size_t i = 1; i < RUN; i++)
            ck_assert_msg(out[i] != out[i - 1], "two inputs from %llu mix to %llx",
                          (unsigned long long)base[b], (unsigned long long)out[i]);
    }
}
END_TEST

/* xorshift64 stays at 0 from 0: the picker seeded with 0 starts from the
 * mixer's output for 0 and draws the same numbers as rand_next from there. */
START_TEST(picker_seed_zero_draws)
{
    struct upstream_picker p;
    uint64_t state = rand_mix64(0);

    upstream_picker_init(&p, UPSTREAM_BALANCE_RANDOM, 0);
    for (int i = 0; i < 8; i++) {
        uint64_t want = rand_next(&state);

        ck_assert_uint_ne(want, 0);
        ck_assert_uint_eq(upstream_picker_random(&p), want);
    }
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("rand", &tc);

    tcase_add_test(tc, mix_matches_splitmix64);
    tcase_add_test(tc, mix_spreads_consecutive_inputs);
    tcase_add_test(tc, picker_seed_zero_draws);
    return check_run(s);
}
