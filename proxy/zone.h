/* SPDX-License-Identifier: Apache-2.0 */
/* The topology of one endpoint as the cluster publishes it: its zone
 * (EndpointSlice endpoints[].zone) and the zones it is hinted for
 * (endpoints[].hints.forZones). A plain value, copied from the watcher into
 * the upstream table and the admin snapshot; an empty name and no hints mean
 * "not published" (Endpoints v1, seeds, files). Pure; any thread. */
#ifndef PROXY_ZONE_H
#define PROXY_ZONE_H

#include <stdbool.h>
#include <string.h>

#define ZONE_NAME_MAX 63 /* a label value: at most 63 characters */
#define ZONE_HINTS_MAX 8 /* the API's limit on hints.forZones */

struct zone_info {
    char name[ZONE_NAME_MAX + 1];
    unsigned n_for_zones;
    char for_zones[ZONE_HINTS_MAX][ZONE_NAME_MAX + 1];
};

/* Same zone and the same hints in the same order? */
static inline bool zone_info_equal(const struct zone_info *a, const struct zone_info *b)
{
    if (strcmp(a->name, b->name) != 0 || a->n_for_zones != b->n_for_zones)
        return false;
    for (unsigned i = 0; i < a->n_for_zones; i++)
        if (strcmp(a->for_zones[i], b->for_zones[i]) != 0)
            return false;
    return true;
}

#endif
