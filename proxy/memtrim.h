/* SPDX-License-Identifier: Apache-2.0 */
/* Memory freed after a burst of connections stays in malloc's arenas (one
 * per worker thread) and would keep the RSS at the burst's peak for good.
 * Once the open sessions fall to half of the peak since the last trim, the
 * free pages go back to the kernel (malloc_trim: a few madvise calls), at
 * most once per tick and only after a real burst. Control thread. */
#ifndef PROXY_MEMTRIM_H
#define PROXY_MEMTRIM_H

#include <stdbool.h>

/* Sessions open at the peak below which no trim is worth it. */
#define MEMTRIM_MIN_PEAK 64

struct memtrim {
    unsigned peak_active; /* most open sessions since the last trim */
};

/* Notes active (open sessions now) and trims when they fell to half of a
 * real peak. Returns whether it trimmed. */
bool memtrim_tick(struct memtrim *m, unsigned active);

#endif
