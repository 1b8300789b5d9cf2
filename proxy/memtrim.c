/* SPDX-License-Identifier: Apache-2.0 */
/* Giving a burst's memory back; see memtrim.h. */
#include "memtrim.h"

#include <malloc.h>

bool memtrim_tick(struct memtrim *m, unsigned active)
{
    if (active > m->peak_active)
        m->peak_active = active;
    if (m->peak_active < MEMTRIM_MIN_PEAK || active > m->peak_active / 2)
        return false;
    malloc_trim(0);
    m->peak_active = active;
    return true;
}
