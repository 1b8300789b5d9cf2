/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzzes the upstreams-file parser. */
#include <assert.h>
#include <stdint.h>

#include "fuzz.h"
#include "upfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config_seed out[8];
    char err[256];
    int n = upfile_parse((const char *)data, size, out, 8, err, sizeof(err));

    assert(n <= 8);
    for (int i = 0; i < n; i++)
        assert(out[i].port >= 1 && out[i].port <= 65535 && out[i].host[0] != '\0');
    return 0;
}
