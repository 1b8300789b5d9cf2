/* SPDX-License-Identifier: Apache-2.0 */
/* Logging: one line per event on stderr, as logfmt ("ts=... level=...
 * module=... msg=\"...\" key=value ...") or as one JSON object per line.
 * Callers pass a short message and the event's fields as logfmt text:
 *
 *     log_warn("upstream connect failed", "sid=%" PRIu64 " upstream=%s err=%s",
 *              s->id, name, uv_err_name(rc));
 *
 * A field value with spaces or quotes must be written quoted ("err=\"%s\"");
 * the emitter escapes what is inside the quotes for both formats. Each line is
 * formatted into a local buffer and written with one write(2), so any thread
 * may log. The level is tested before anything is formatted. Secrets (tokens,
 * keys, Authorization headers) are never passed here. */
#ifndef PROXY_LOG_H
#define PROXY_LOG_H

#include <stdbool.h>

#define PRINTF_LIKE(n, m) __attribute__((format(printf, n, m)))

enum log_level {
    LOG_ERROR = 0,
    LOG_WARN,
    LOG_INFO,
    LOG_DEBUG,
};

enum log_format {
    LOG_FORMAT_TEXT = 0,
    LOG_FORMAT_JSON,
};

/* Sets the threshold and format. Call from main() before threads start;
 * later calls are allowed from any thread (they take effect at once). */
void log_setup(enum log_level level, enum log_format format);

/* Sets the file descriptor lines go to (default 2). For tests. */
void log_set_fd(int fd);

/* Any thread. */
bool log_enabled(enum log_level level);

/* Parses "error|warn|info|debug" / "text|json". Return 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out) __attribute__((warn_unused_result));
int log_format_parse(const char *s, enum log_format *out) __attribute__((warn_unused_result));
const char *log_level_name(enum log_level level);

/* Escapes s for use inside a quoted field value (" and \ and control bytes),
 * so text from files or the network cannot break a line or forge a field:
 *     log_warn("file not applied", "err=\"%s\"", log_quote(err));
 * Returns one of a few per-thread buffers (at most 4 quoted values per call;
 * long values are cut). Any thread. */
const char *log_quote(const char *s);

/* Formats and writes one line. Use the macros below. Any thread. */
void log_emit(enum log_level level, const char *module, const char *msg, const char *fmt, ...)
    PRINTF_LIKE(4, 5);

/* Like log_emit, but at most one line per interval_ms for the same key (a
 * static string naming the event, e.g. "accept-emfile"); the line that ends a
 * quiet period says how many were suppressed. Any thread. */
void log_emit_limited(enum log_level level, const char *module, const char *key,
                      unsigned interval_ms, const char *msg, const char *fmt, ...)
    PRINTF_LIKE(6, 7);

#ifndef LOG_MODULE
#define LOG_MODULE "apilb"
#endif

#define LOG_AT(lvl, msg, ...)                                                                      \
    do {                                                                                           \
        if (log_enabled(lvl))                                                                      \
            log_emit(lvl, LOG_MODULE, msg, __VA_ARGS__);                                           \
    } while (0)

#define log_error(msg, ...) LOG_AT(LOG_ERROR, msg, __VA_ARGS__)
#define log_warn(msg, ...) LOG_AT(LOG_WARN, msg, __VA_ARGS__)
#define log_info(msg, ...) LOG_AT(LOG_INFO, msg, __VA_ARGS__)
#define log_debug(msg, ...) LOG_AT(LOG_DEBUG, msg, __VA_ARGS__)

/* Rate-limited warning: key is a static string naming the event. */
#define log_warn_limited(key, ms, msg, ...)                                                        \
    do {                                                                                           \
        if (log_enabled(LOG_WARN))                                                                 \
            log_emit_limited(LOG_WARN, LOG_MODULE, key, ms, msg, __VA_ARGS__);                     \
    } while (0)

#endif
