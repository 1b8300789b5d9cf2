/* SPDX-License-Identifier: Apache-2.0 */
/* The bound on JSON trees; see jsonlimit.h. */
#include "jsonlimit.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

int jsonlimit_scan(const char *buf, size_t len, size_t max_values, unsigned max_depth, size_t *end,
                   char *err, size_t err_len)
{
    size_t i = 0, values = 1;
    unsigned depth = 0;
    bool in_string = false;

    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
        i++;
    if (i == len)
        return -EAGAIN;
    if (buf[i] != '{' && buf[i] != '[') {
        snprintf(err, err_len, "not a JSON object or array");
        return -EBADMSG;
    }
    for (; i < len; i++) {
        char ch = buf[i];

        if (in_string) {
            if (ch == '\\')
                i++; /* the escaped character cannot end the string */
            else if (ch == '"')
                in_string = false;
            continue;
        }
        switch (ch) {
        case '"':
            in_string = true;
            break;
        case '{':
        case '[':
            if (++depth > max_depth) {
                snprintf(err, err_len, "JSON nested deeper than %u", max_depth);
                return -E2BIG;
            }
            if (depth > 1 && ++values > max_values) {
                snprintf(err, err_len, "more than %zu JSON values", max_values);
                return -E2BIG;
            }
            break;
        case ',':
            if (++values > max_values) {
                snprintf(err, err_len, "more than %zu JSON values", max_values);
                return -E2BIG;
            }
            break;
        case '}':
        case ']':
            if (--depth == 0) {
                *end = i + 1;
                return 0;
            }
            break;
        default:
            break;
        }
    }
    return -EAGAIN;
}
