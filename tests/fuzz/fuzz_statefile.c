/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzzes the state-file parser; a file that parses formats back identically. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "statefile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct addr out[16];
    char err[256], buf[4096];
    int n = statefile_parse((const char *)data, size, out, 16, err, sizeof(err));

    if (n >= 0) {
        int len = statefile_format(out, (size_t)n, buf, sizeof(buf));

        assert(len == (int)size && memcmp(buf, data, size) == 0);
    }
    return 0;
}
