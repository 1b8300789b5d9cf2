/* SPDX-License-Identifier: Apache-2.0 */
/* Loads a YAML (or JSON) document into a jansson tree with libyaml. Scalars
 * become strings (kubeconfig values are all strings or booleans written as
 * strings); anchors and aliases are refused. Any thread. */
#ifndef WATCHER_YAMLJSON_H
#define WATCHER_YAMLJSON_H

#include <jansson.h>
#include <stddef.h>

#define YAMLJSON_MAX_BYTES (4u << 20)
#define YAMLJSON_MAX_DEPTH 32

/* Returns a new reference, or NULL with a sentence in err (with the line). */
json_t *yamljson_load(const char *text, size_t len, char *err, size_t err_len);

#endif
