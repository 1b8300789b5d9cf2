/* SPDX-License-Identifier: Apache-2.0 */
/* Watch stream splitting; see eventstream.h. */
#include "eventstream.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "jsonlimit.h"

void eventstream_init(struct eventstream *s, size_t max)
{
    s->buf = NULL;
    s->len = 0;
    s->cap = 0;
    s->max = max;
    s->why[0] = '\0';
}

void eventstream_reset(struct eventstream *s)
{
    s->len = 0;
}

void eventstream_free(struct eventstream *s)
{
    free(s->buf);
    eventstream_init(s, s->max);
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

int eventstream_feed(struct eventstream *s, const char *data, size_t n, eventstream_fn fn,
                     void *arg)
{
    size_t start = 0;

    if (n == 0)
        return 0;
    if (s->len + n > s->max)
        return -E2BIG;
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 16384;
        char *p;

        while (cap < s->len + n)
            cap *= 2;
        p = realloc(s->buf, cap);
        if (p == NULL)
            return -ENOMEM;
        s->buf = p;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    for (;;) {
        json_error_t e;
        json_t *ev;
        size_t end, used;
        int rc;

        while (start < s->len && is_ws(s->buf[start]))
            start++;
        if (start == s->len)
            break;
        if (s->buf[start] != '{')
            return -EBADMSG; /* every watch event is an object */
        /* A JSON object can only be complete if the data ends in '}' after
         * whitespace; otherwise wait for more instead of parsing again. */
        end = s->len;
        while (end > start && is_ws(s->buf[end - 1]))
            end--;
        if (s->buf[end - 1] != '}' && memchr(s->buf + start, '\n', s->len - start) == NULL)
            break;
        rc = jsonlimit_scan(s->buf + start, s->len - start, JSONLIMIT_VALUES, JSONLIMIT_DEPTH,
                            &used, s->why, sizeof(s->why));
        if (rc == -EAGAIN)
            break;
        if (rc == -E2BIG)
            return -EMSGSIZE;
        if (rc < 0)
            return -EBADMSG;
        ev = json_loadb(s->buf + start, used, 0, &e);
        if (ev == NULL)
            return -EBADMSG;
        start += used;
        rc = fn(arg, ev);
        json_decref(ev);
        if (rc < 0)
            return rc;
    }
    if (start > 0) {
        memmove(s->buf, s->buf + start, s->len - start);
        s->len -= start;
    }
    return 0;
}
