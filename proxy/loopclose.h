/* SPDX-License-Identifier: Apache-2.0 */
/* Closing a libuv loop with whatever handles are left on it, the same way
 * on the control thread and on each worker. The loop's own thread. */
#ifndef PROXY_LOOPCLOSE_H
#define PROXY_LOOPCLOSE_H

#include <uv.h>

/* Starts closing every handle of loop not closing yet (close callbacks
 * NULL: the owners embed them), so that uv_run() returns. */
void loopclose_handles(uv_loop_t *loop);

/* Closes every handle left, runs loop until they are closed and closes it
 * (loop must not be running). */
void loopclose_all(uv_loop_t *loop);

#endif
