/* SPDX-License-Identifier: Apache-2.0 */
/* The libFuzzer entry point every target defines. Built with -fsanitize=fuzzer
 * under APILB_FUZZ=ON, or with standalone.c as a regression runner over the
 * corpus in every other build. */
#ifndef TESTS_FUZZ_H
#define TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
