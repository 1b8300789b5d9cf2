/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzzes the admin endpoint's request-line parser (bytes from any local
 * client). What it accepts must be a clean method and an absolute path. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "admin.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char method[16], path[256];

    if (admin_parse_head((const char *)data, size, method, sizeof(method), path,
                         sizeof(path)) != 0)
        return 0;
    assert(method[0] != '\0' && strlen(method) < sizeof(method));
    assert(path[0] == '/' && strlen(path) < sizeof(path));
    assert(strchr(path, ' ') == NULL && strchr(path, '?') == NULL);
    for (const char *p = path; *p != '\0'; p++)
        assert((unsigned char)*p > ' ' && *p != 0x7f);
    return 0;
}
