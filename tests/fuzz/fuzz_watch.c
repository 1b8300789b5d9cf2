/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzzes the watch stream: the first byte picks a chunk size, the rest is
 * fed in chunks to the event splitter, and every event's object goes through
 * both object parsers (EndpointSlice and Endpoints). */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "endpoints.h"
#include "eventstream.h"
#include "fuzz.h"

static int on_event(void *arg, json_t *ev)
{
    static struct watcher_endpoint a[ADDR_SET_MAX];
    char err[256];
    int family;
    json_t *obj = json_object_get(ev, "object");

    for (int kind = 0; kind < 2; kind++) {
        size_t n = 0;

        if (endpoints_extract(obj, (enum endpoints_kind)kind, a, ADDR_SET_MAX, &n, &family, err,
                              sizeof(err)) >= 0)
            for (size_t i = 0; i < n; i++) {
                assert(!addr_is_loopback(&a[i].addr) && !addr_is_bogus(&a[i].addr));
                assert(family == AF_UNSPEC || a[i].addr.ss.ss_family == family);
                assert(strlen(a[i].zone.name) <= ZONE_NAME_MAX &&
                       a[i].zone.n_for_zones <= ZONE_HINTS_MAX);
            }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct eventstream es;
    size_t chunk, off = 1;

    if (size < 1)
        return 0;
    chunk = (size_t)data[0] % 64 + 1;
    eventstream_init(&es, 1u << 16);
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;

        if (eventstream_feed(&es, (const char *)data + off, n, on_event, NULL) < 0)
            break;
        off += n;
    }
    eventstream_free(&es);
    return 0;
}
