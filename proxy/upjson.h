/* SPDX-License-Identifier: Apache-2.0 */
/* Renders a snapshot as the JSON of GET /upstreams, and the one-line answer
 * of GET /readyz. Pure (reads atomics); no JSON library in the proxy core. */
#ifndef PROXY_UPJSON_H
#define PROXY_UPJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session.h"

#include "snapshot.h"
#include "strbuf.h"

void upjson_render(const struct snapshot *s, uint64_t now_ms, struct strbuf *out);

/* GET /connections: {"total","offset","limit","partial","connections":[...]}. */
void upjson_connections(const struct session_info *c, size_t n, size_t total, size_t offset,
                        size_t limit, bool partial, struct strbuf *out);

/* Writes the /readyz line; returns 200 when an upstream is usable, else 503. */
int upjson_readyz(const struct snapshot *s, uint64_t now_ms, struct strbuf *out);

#endif
