/* SPDX-License-Identifier: Apache-2.0 */
/* Closing a libuv loop; see loopclose.h. */
#include "loopclose.h"

/* uv_walk_cb. */
static void close_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void loopclose_handles(uv_loop_t *loop)
{
    uv_walk(loop, close_cb, NULL);
}

void loopclose_all(uv_loop_t *loop)
{
    loopclose_handles(loop);
    uv_run(loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(loop);
}
