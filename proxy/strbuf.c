/* SPDX-License-Identifier: Apache-2.0 */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strbuf_init(struct strbuf *b)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = false;
}

void strbuf_free(struct strbuf *b)
{
    free(b->p);
    strbuf_init(b);
}

static bool grow(struct strbuf *b, size_t need)
{
    size_t cap;
    char *p;

    if (b->failed)
        return false;
    if (b->len + need + 1 <= b->cap)
        return true;
    cap = b->cap ? b->cap : 1024;
    while (cap < b->len + need + 1)
        cap *= 2;
    p = realloc(b->p, cap);
    if (p == NULL) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void strbuf_add(struct strbuf *b, const char *s, size_t n)
{
    if (!grow(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void strbuf_puts(struct strbuf *b, const char *s)
{
    strbuf_add(b, s, strlen(s));
}

void strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !grow(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void strbuf_json_escape(struct strbuf *b, const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            strbuf_add(b, e, 2);
        } else if (c < 0x20) {
            strbuf_printf(b, "\\u%04x", c);
        } else {
            strbuf_add(b, (const char *)&c, 1);
        }
    }
}

void strbuf_label_escape(struct strbuf *b, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            strbuf_puts(b, "\\\\");
        else if (*s == '"')
            strbuf_puts(b, "\\\"");
        else if (*s == '\n')
            strbuf_puts(b, "\\n");
        else
            strbuf_add(b, s, 1);
    }
}

char *strbuf_take(struct strbuf *b, size_t *len)
{
    char *p = b->p;

    if (p == NULL && !b->failed) {
        p = calloc(1, 1);
        b->failed = p == NULL;
    }
    *len = b->len;
    strbuf_init(b);
    return p;
}

bool strbuf_failed(const struct strbuf *b)
{
    return b->failed;
}
