/* SPDX-License-Identifier: Apache-2.0 */
/* A growable byte buffer for rendering responses (admin thread). An
 * allocation failure is remembered and reported once by strbuf_failed(). */
#ifndef PROXY_STRBUF_H
#define PROXY_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"

struct strbuf {
    char *p;
    size_t len, cap;
    bool failed;
};

void strbuf_init(struct strbuf *b);
void strbuf_free(struct strbuf *b);
void strbuf_add(struct strbuf *b, const char *s, size_t n);
void strbuf_puts(struct strbuf *b, const char *s);
void strbuf_printf(struct strbuf *b, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* Appends s as the inside of a JSON string (quotes not included). */
void strbuf_json_escape(struct strbuf *b, const char *s);
/* Appends s as a Prometheus label value (backslash, quote, newline escaped). */
void strbuf_label_escape(struct strbuf *b, const char *s);
/* Takes the buffer (NUL-terminated, caller frees) and resets b. */
char *strbuf_take(struct strbuf *b, size_t *len);
bool strbuf_failed(const struct strbuf *b);

#endif
