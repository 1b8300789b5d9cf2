/* SPDX-License-Identifier: Apache-2.0 */
/* Renders a snapshot as Prometheus text exposition format 0.0.4. Every
 * metric is documented in docs/metrics.md. Pure (reads atomics). */
#ifndef PROXY_METRICS_H
#define PROXY_METRICS_H

#include <stdint.h>

#include "snapshot.h"
#include "strbuf.h"

void metrics_render(const struct snapshot *s, uint64_t now_ms, struct strbuf *out);

#endif
