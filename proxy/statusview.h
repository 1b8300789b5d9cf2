/* SPDX-License-Identifier: Apache-2.0 */
/* Renders a snapshot as the human table of GET /status (what `apilb status`
 * prints): one row per upstream (address, sources, state, health and why,
 * since when, active connections, mean connect time, zone when the cluster
 * publishes it) and a line for the
 * watcher. Pure (reads atomics). Every byte it writes is printable ASCII, a
 * space or a newline: names and reasons are cleaned, so a hostile reason
 * string cannot drive the operator's terminal. */
#ifndef PROXY_STATUSVIEW_H
#define PROXY_STATUSVIEW_H

#include <stdint.h>

#include "snapshot.h"
#include "strbuf.h"

/* now_ms: the monotonic clock (drain ages); now_unix_ms: the wall clock
 * (since when). */
void statusview_render(const struct snapshot *s, uint64_t now_ms, uint64_t now_unix_ms,
                       struct strbuf *out);

#endif
