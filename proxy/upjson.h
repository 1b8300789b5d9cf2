/* SPDX-License-Identifier: Apache-2.0 */
/* Renders a snapshot as the JSON of GET /upstreams, and the one-line answer
 * of GET /readyz. Pure (reads atomics); no JSON library in the proxy core. */
#ifndef PROXY_UPJSON_H
#define PROXY_UPJSON_H

#include <stdint.h>

#include "snapshot.h"
#include "strbuf.h"

void upjson_render(const struct snapshot *s, uint64_t now_ms, struct strbuf *out);

/* Writes the /readyz line; returns 200 when an upstream is usable, else 503. */
int upjson_readyz(const struct snapshot *s, uint64_t now_ms, struct strbuf *out);

#endif
