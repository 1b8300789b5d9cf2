/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzzes address and duration parsing: any bytes, never a crash, and what
 * parses formats back to something that parses to the same address. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[512], host[ADDR_HOST_MAX], buf[ADDR_STRLEN];
    struct addr a, b;
    const char *why;
    unsigned port, ms;

    if (size >= sizeof(s))
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (addr_split(s, 6443, host, &port, &why) == 0)
        assert(port >= 1 && port <= 65535);
    if (addr_split(s, ADDR_PORT_ZERO_OK, host, &port, &why) == 0)
        assert(port <= 65535);
    if (addr_parse(s, -1, &a, &why) == 0) {
        addr_format(&a, buf, sizeof(buf));
        assert(addr_parse(buf, -1, &b, &why) == 0);
        assert(addr_cmp(&a, &b) == 0);
    }
    if (config_duration_parse(s, 86400000u, true, &ms) == 0) {
        unsigned back;

        config_duration_format(ms, buf, sizeof(buf));
        assert(config_duration_parse(buf, 86400000u, true, &back) == 0 && back == ms);
    }
    return 0;
}
