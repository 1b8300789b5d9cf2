/* SPDX-License-Identifier: Apache-2.0 */
/* A strict JSON syntax check (RFC 8259) without building anything: what
 * `apilb status -o json` runs on the admin endpoint's answer before printing
 * it, since the proxy core has no JSON library. Pure. */
#ifndef PROXY_JSONCHECK_H
#define PROXY_JSONCHECK_H

#include <stddef.h>

#define JSONCHECK_MAX_DEPTH 64

/* Returns 0 when s[0..n) is one JSON value (surrounding white space allowed,
 * nesting at most JSONCHECK_MAX_DEPTH), or -EINVAL with one line in err
 * saying what is wrong at which byte. NUL bytes and invalid escapes are
 * errors; strings are not checked for valid UTF-8 beyond control bytes. */
int jsoncheck(const char *s, size_t n, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
