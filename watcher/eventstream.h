/* SPDX-License-Identifier: Apache-2.0 */
/* Splits a watch response body into JSON values, whatever the chunking: one
 * chunk may hold several events or part of one. Bytes are buffered (up to a
 * bound) until a whole JSON value is there; each is handed to the callback,
 * unless it is too large a tree to build (jsonlimit.h).
 * Watcher thread. */
#ifndef WATCHER_EVENTSTREAM_H
#define WATCHER_EVENTSTREAM_H

#include <jansson.h>
#include <stddef.h>

#define EVENTSTREAM_MAX_BYTES (8u << 20)

struct eventstream {
    char *buf;
    size_t len, cap, max;
    char why[128]; /* what was wrong, after -EMSGSIZE */
};

/* The callback owns nothing: ev is freed after it returns. A negative return
 * stops the stream and is returned by eventstream_feed(). */
typedef int (*eventstream_fn)(void *arg, json_t *ev);

void eventstream_init(struct eventstream *s, size_t max);
void eventstream_reset(struct eventstream *s);
void eventstream_free(struct eventstream *s);

/* Returns 0, -E2BIG when an event would exceed the bound of bytes,
 * -EMSGSIZE when it holds more JSON values or nests deeper than an event may
 * (jsonlimit.h; refused before it is parsed, s->why says which), -EBADMSG
 * when the bytes are not JSON, or the callback's negative value. */
int eventstream_feed(struct eventstream *s, const char *data, size_t n, eventstream_fn fn,
                     void *arg) __attribute__((warn_unused_result));

#endif
