/* SPDX-License-Identifier: Apache-2.0 */
/* The JSON syntax check; see jsoncheck.h. */
#include "jsoncheck.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct scan {
    const char *s;
    size_t n, i;
    const char *why; /* the first error, or NULL */
};

static bool fail(struct scan *p, const char *why)
{
    if (p->why == NULL)
        p->why = why;
    return false;
}

static void skip_ws(struct scan *p)
{
    while (p->i < p->n && strchr(" \t\r\n", p->s[p->i]) != NULL && p->s[p->i] != '\0')
        p->i++;
}

static bool literal(struct scan *p, const char *word)
{
    size_t len = strlen(word);

    if (p->n - p->i < len || memcmp(p->s + p->i, word, len) != 0)
        return fail(p, "unexpected byte");
    p->i += len;
    return true;
}

static bool digits(struct scan *p)
{
    size_t start = p->i;

    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
        p->i++;
    return p->i > start || fail(p, "a number without digits");
}

static bool number(struct scan *p)
{
    if (p->s[p->i] == '-')
        p->i++;
    if (p->i < p->n && p->s[p->i] == '0')
        p->i++;
    else if (!digits(p))
        return false;
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        if (!digits(p))
            return false;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
            p->i++;
        if (!digits(p))
            return false;
    }
    return true;
}

static bool string(struct scan *p)
{
    p->i++; /* the opening quote */
    while (p->i < p->n) {
        unsigned char c = (unsigned char)p->s[p->i++];

        if (c == '"')
            return true;
        if (c < 0x20)
            return fail(p, "a control byte in a string");
        if (c != '\\')
            continue;
        if (p->i == p->n)
            break;
        c = (unsigned char)p->s[p->i++];
        if (c == 'u') {
            for (int k = 0; k < 4; k++, p->i++)
                if (p->i == p->n || strchr("0123456789abcdefABCDEF", p->s[p->i]) == NULL ||
                    p->s[p->i] == '\0')
                    return fail(p, "a \\u escape without four hex digits");
        } else if (strchr("\"\\/bfnrt", c) == NULL || c == '\0') {
            return fail(p, "an invalid escape");
        }
    }
    return fail(p, "an unterminated string");
}

static bool value(struct scan *p, unsigned depth);

/* An object or array body after its opening byte; close is '}' or ']'. */
static bool container(struct scan *p, char close, unsigned depth)
{
    bool first = true;

    if (depth >= JSONCHECK_MAX_DEPTH)
        return fail(p, "nested too deeply");
    p->i++;
    for (;;) {
        skip_ws(p);
        if (p->i == p->n)
            return fail(p, "unexpected end");
        if (p->s[p->i] == close && first) {
            p->i++;
            return true;
        }
        if (close == '}') {
            if (p->s[p->i] != '"')
                return fail(p, "an object key that is not a string");
            if (!string(p))
                return false;
            skip_ws(p);
            if (p->i == p->n || p->s[p->i] != ':')
                return fail(p, "a key without ':'");
            p->i++;
        }
        if (!value(p, depth + 1))
            return false;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            first = false;
            skip_ws(p);
            if (p->i < p->n && p->s[p->i] == close)
                return fail(p, "a trailing comma");
            continue;
        }
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            return true;
        }
        return fail(p, p->i == p->n ? "unexpected end" : "expected ',' or the closing bracket");
    }
}

static bool value(struct scan *p, unsigned depth)
{
    skip_ws(p);
    if (p->i == p->n)
        return fail(p, "unexpected end");
    switch (p->s[p->i]) {
    case '{':
        return container(p, '}', depth);
    case '[':
        return container(p, ']', depth);
    case '"':
        return string(p);
    case 't':
        return literal(p, "true");
    case 'f':
        return literal(p, "false");
    case 'n':
        return literal(p, "null");
    default:
        if (p->s[p->i] == '-' || (p->s[p->i] >= '0' && p->s[p->i] <= '9'))
            return number(p);
        return fail(p, "unexpected byte");
    }
}

int jsoncheck(const char *s, size_t n, char *err, size_t errlen)
{
    struct scan p = {.s = s, .n = n};

    if (value(&p, 0)) {
        skip_ws(&p);
        if (p.i == p.n)
            return 0;
        fail(&p, "bytes after the value");
    }
    snprintf(err, errlen, "not JSON: %s at byte %zu", p.why, p.i);
    return -EINVAL;
}
