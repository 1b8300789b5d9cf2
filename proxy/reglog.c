/* SPDX-License-Identifier: Apache-2.0 */
/* The log lines of a registry rebuild; see reglog.h. */
#define LOG_MODULE "control"
#include "reglog.h"

#include <stdatomic.h>

#include "log.h"

void reglog_refusals(const struct registry *r, const struct registry_changes *ch)
{
    char name[ADDR_STRLEN];
    size_t known;

    if (ch->refused == 0)
        return;
    addr_format(&ch->first_refused, name, sizeof(name));
    if (ch->first_refused_why == REGISTRY_TABLE_FULL) {
        log_warn_limited("table-full", 10000, "upstream table full: address left out",
                         "upstream=%s max=%d", name, UPSTREAM_MAX);
        return;
    }
    /* Full of removed upstreams that still carry connections (or out of
     * memory). */
    (void)registry_upstreams(r, &known);
    log_warn_limited("registry-full", 10000,
                     "upstream registry full: address left out until removed upstreams drain",
                     "upstream=%s known=%zu max=%zu", name, known, (size_t)REGISTRY_MAX);
}

void reglog_changes(const struct registry_changes *ch, const char *reason)
{
    for (size_t i = 0; i < ch->n; i++) {
        struct upstream *up = ch->c[i].up;
        char src[64];

        if (ch->c[i].kind == REGISTRY_REMOVED) {
            log_info("upstream removed", "upstream=%s reason=%s active=%u draining=true", up->name,
                     reason, atomic_load(&up->active));
            continue;
        }
        upstream_sources_format(ch->c[i].sources, src, sizeof(src));
        log_info("upstream added", "upstream=%s source=%s reason=%s", up->name, src, reason);
    }
}
