/* SPDX-License-Identifier: Apache-2.0 */
/* The node's zone from its Node object (GET /api/v1/nodes/NAME):
 * metadata.labels["topology.kubernetes.io/zone"]. The body is bounded by
 * jsonlimit before jansson builds it. Pure; any thread. */
#ifndef WATCHER_NODEZONE_H
#define WATCHER_NODEZONE_H

#include <stddef.h>

#include "zone.h"

#define NODEZONE_LABEL "topology.kubernetes.io/zone" /* as NODE_ZONE_LABEL in prefer.h */

/* Reads the zone label of the Node object in body[0..len) into
 * zone[0..ZONE_NAME_MAX]. Returns 0 with a non-empty zone; -ENOENT (zone
 * "") when the node has no such label; -EINVAL or -E2BIG with a sentence
 * in err for a body that is not a Node, too large a tree, or a label that
 * is not a label value. */
int nodezone_parse(const char *body, size_t len, char zone[ZONE_NAME_MAX + 1], char *err,
                   size_t err_len) __attribute__((warn_unused_result));

#endif
