/* SPDX-License-Identifier: Apache-2.0 */
/* Log sink shared by every thread. The only shared state is the level, the
 * format, the fd and the rate-limit slots, all atomics. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_BYTES 4096
#define LOG_LIMIT_SLOTS 32

static _Atomic int cur_level = LOG_INFO;
static _Atomic int cur_format = LOG_FORMAT_TEXT;
static _Atomic int out_fd = 2;

/* Rate-limit slots, keyed by the address of a static string. */
struct limit_slot {
    _Atomic(const char *) key;
    _Atomic uint64_t last_ms;
    _Atomic unsigned suppressed;
};
static struct limit_slot limits[LOG_LIMIT_SLOTS];

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_setup(enum log_level level, enum log_format format)
{
    atomic_store(&cur_level, (int)level);
    atomic_store(&cur_format, (int)format);
}

void log_set_fd(int fd)
{
    atomic_store(&out_fd, fd);
}

bool log_enabled(enum log_level level)
{
    return (int)level <= atomic_load_explicit(&cur_level, memory_order_relaxed);
}

const char *log_level_name(enum log_level level)
{
    return (unsigned)level < 4 ? level_names[level] : "?";
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

int log_format_parse(const char *s, enum log_format *out)
{
    if (strcmp(s, "text") == 0 || strcmp(s, "logfmt") == 0) {
        *out = LOG_FORMAT_TEXT;
        return 0;
    }
    if (strcmp(s, "json") == 0) {
        *out = LOG_FORMAT_JSON;
        return 0;
    }
    return -EINVAL;
}

/* Appends to a bounded buffer; truncates silently at the end. */
struct sbuf {
    char *p;
    size_t len, cap;
};

static void put_bytes(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap)
        n = b->cap - b->len;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void put_str(struct sbuf *b, const char *s)
{
    put_bytes(b, s, strlen(s));
}

/* Writes s escaped for inside a JSON or logfmt double-quoted string, stopping
 * at end (or NUL). Control bytes become \uXXXX (JSON) or \xXX-free escapes, so
 * a line is always one line. */
static void put_escaped(struct sbuf *b, const char *s, const char *end)
{
    char tmp[8];

    for (; s < end && *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            put_bytes(b, tmp, 2);
        } else if (c == '\n') {
            put_str(b, "\\n");
        } else if (c == '\t') {
            put_str(b, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(tmp, sizeof(tmp), "\\u%04x", c);
            put_str(b, tmp);
        } else {
            put_bytes(b, (const char *)&c, 1);
        }
    }
}

const char *log_quote(const char *s)
{
    static _Thread_local char ring[4][LOG_LINE_BYTES / 8];
    static _Thread_local unsigned next;
    char *out = ring[next++ % 4];
    size_t n = 0, cap = sizeof(ring[0]);

    for (; *s != '\0' && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            out[n++] = '?';
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
    return out;
}

static void put_timestamp(struct sbuf *b)
{
    struct timespec ts;
    struct tm tm;
    char tmp[40];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm);
    put_str(b, tmp);
    snprintf(tmp, sizeof(tmp), ".%03ldZ", ts.tv_nsec / 1000000);
    put_str(b, tmp);
}

static bool is_number(const char *s, size_t n)
{
    size_t i = 0;

    if (n > 0 && s[0] == '-')
        i = 1;
    if (i == n || n > 18)
        return false;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return !(s[0] == '0' && n > 1);
}

/* Converts logfmt fields ("a=1 b=\"x y\" c=z") into JSON members. A token
 * without '=' becomes a member named "field". */
static void put_fields_json(struct sbuf *b, const char *f)
{
    while (*f != '\0') {
        const char *k, *ke, *v, *ve;
        bool quoted = false;

        while (*f == ' ')
            f++;
        if (*f == '\0')
            break;
        k = f;
        while (*f != '\0' && *f != '=' && *f != ' ')
            f++;
        ke = f;
        if (*f == '=') {
            f++;
            if (*f == '"') {
                quoted = true;
                v = ++f;
                while (*f != '\0' && *f != '"') {
                    if (*f == '\\' && f[1] != '\0')
                        f++;
                    f++;
                }
                ve = f;
                if (*f == '"')
                    f++;
            } else {
                v = f;
                while (*f != '\0' && *f != ' ')
                    f++;
                ve = f;
            }
        } else {
            v = k;
            ve = ke;
            k = "field";
            ke = k + 5;
        }
        put_str(b, ",\"");
        put_escaped(b, k, ke);
        put_str(b, "\":");
        if (!quoted && is_number(v, (size_t)(ve - v))) {
            put_bytes(b, v, (size_t)(ve - v));
        } else {
            put_str(b, "\"");
            if (quoted) {
                /* Already escaped by the caller's quoting rules: unescape
                 * \" and \\ and re-escape for JSON. */
                for (const char *p = v; p < ve; p++) {
                    if (*p == '\\' && p + 1 < ve) {
                        p++;
                        if (*p == 'n') {
                            put_str(b, "\\n");
                            continue;
                        }
                    }
                    put_escaped(b, p, p + 1);
                }
            } else {
                put_escaped(b, v, ve);
            }
            put_str(b, "\"");
        }
    }
}

/* Copies logfmt fields, replacing control bytes so the line stays one line. */
static void put_fields_text(struct sbuf *b, const char *f)
{
    for (; *f != '\0'; f++) {
        unsigned char c = (unsigned char)*f;
        if (c < 0x20 || c == 0x7f)
            c = '?';
        put_bytes(b, (const char *)&c, 1);
    }
}

/* Formats one line into b (without the newline). b->len reaches b->cap when
 * it did not fit. */
static void format_line(struct sbuf *b, enum log_level level, const char *module, const char *msg,
                        size_t msg_len, const char *fields, unsigned suppressed)
{
    char tmp[48];

    if (atomic_load_explicit(&cur_format, memory_order_relaxed) == LOG_FORMAT_JSON) {
        put_str(b, "{\"ts\":\"");
        put_timestamp(b);
        put_str(b, "\",\"level\":\"");
        put_str(b, log_level_name(level));
        put_str(b, "\",\"module\":\"");
        put_escaped(b, module, module + strlen(module));
        put_str(b, "\",\"msg\":\"");
        put_escaped(b, msg, msg + msg_len);
        put_str(b, "\"");
        put_fields_json(b, fields);
        if (suppressed > 0) {
            snprintf(tmp, sizeof(tmp), ",\"suppressed\":%u", suppressed);
            put_str(b, tmp);
        }
        put_str(b, "}");
    } else {
        put_str(b, "ts=");
        put_timestamp(b);
        put_str(b, " level=");
        put_str(b, log_level_name(level));
        put_str(b, " module=");
        put_str(b, module);
        put_str(b, " msg=\"");
        put_escaped(b, msg, msg + msg_len);
        put_str(b, "\"");
        if (fields[0] != '\0') {
            put_str(b, " ");
            put_fields_text(b, fields);
        }
        if (suppressed > 0) {
            snprintf(tmp, sizeof(tmp), " suppressed=%u", suppressed);
            put_str(b, tmp);
        }
    }
}

static void emit_v(enum log_level level, const char *module, const char *msg, const char *fmt,
                   va_list ap, unsigned suppressed) __attribute__((format(printf, 4, 0)));
static void emit_v(enum log_level level, const char *module, const char *msg, const char *fmt,
                   va_list ap, unsigned suppressed)
{
    char line[LOG_LINE_BYTES];
    char fields[LOG_LINE_BYTES / 2];
    struct sbuf b = {line, 0, sizeof(line) - 1};
    ssize_t w;
    size_t off = 0;

    vsnprintf(fields, sizeof(fields), fmt, ap);
    format_line(&b, level, module, msg, strlen(msg), fields, suppressed);
    if (b.len >= b.cap) {
        /* Too long: a cut line would not parse. Say less, but say it whole. */
        char cut[64];

        b.len = 0;
        snprintf(cut, sizeof(cut), "truncated=true");
        format_line(&b, level, module, msg, strlen(msg) < 200 ? strlen(msg) : 200, cut, suppressed);
    }
    line[b.len++] = '\n';
    while (off < b.len) {
        w = write(atomic_load(&out_fd), line + off, b.len - off);
        if (w == -1 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

void log_emit(enum log_level level, const char *module, const char *msg, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    emit_v(level, module, msg, fmt, ap, 0);
    va_end(ap);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void log_emit_limited(enum log_level level, const char *module, const char *key,
                      unsigned interval_ms, const char *msg, const char *fmt, ...)
{
    struct limit_slot *slot = NULL;
    uint64_t now = mono_ms();
    uint64_t last;
    unsigned suppressed;
    va_list ap;

    for (int i = 0; i < LOG_LIMIT_SLOTS && slot == NULL; i++) {
        const char *k = atomic_load(&limits[i].key);
        const char *expected = NULL;

        if (k == key)
            slot = &limits[i];
        else if (k == NULL && atomic_compare_exchange_strong(&limits[i].key, &expected, key))
            slot = &limits[i];
        else if (k == NULL && expected == key)
            slot = &limits[i];
    }
    if (slot != NULL) {
        last = atomic_load(&slot->last_ms);
        if (last != 0 && now - last < interval_ms) {
            atomic_fetch_add(&slot->suppressed, 1);
            return;
        }
        if (!atomic_compare_exchange_strong(&slot->last_ms, &last, now)) {
            atomic_fetch_add(&slot->suppressed, 1);
            return;
        }
        suppressed = atomic_exchange(&slot->suppressed, 0);
    } else {
        suppressed = 0; /* Out of slots: log every time rather than lose lines. */
    }
    va_start(ap, fmt);
    emit_v(level, module, msg, fmt, ap, suppressed);
    va_end(ap);
}
