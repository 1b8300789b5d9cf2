/* SPDX-License-Identifier: Apache-2.0 */
/* Placeholder until the admin endpoint lands: it accepts the configuration
 * and serves nothing. */
#include "admin.h"

#include <stdlib.h>

struct admin {
    int unused;
};

int admin_start(struct addr *listen, snapshot_fn snap, void *arg, struct admin **out, char *err,
                size_t err_len)
{
    *out = calloc(1, sizeof(**out));
    return *out != NULL ? 0 : -1;
}

void admin_stop(struct admin *a)
{
    free(a);
}
