/* SPDX-License-Identifier: Apache-2.0 */
/* The node's zone from its Node object; see nodezone.h. */
#include "nodezone.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "endpoints.h"
#include "jsonlimit.h"

int nodezone_parse(const char *body, size_t len, char zone[ZONE_NAME_MAX + 1], char *err,
                   size_t err_len)
{
    json_error_t e;
    json_t *root, *kind, *v;
    size_t end;
    int rc;

    zone[0] = '\0';
    rc = jsonlimit_scan(body, len, JSONLIMIT_VALUES, JSONLIMIT_DEPTH, &end, err, err_len);
    if (rc == -E2BIG)
        return rc;
    if (rc < 0) {
        snprintf(err, err_len, "the answer is not a JSON object");
        return -EINVAL;
    }
    root = json_loadb(body, end, 0, &e);
    if (root == NULL) {
        snprintf(err, err_len, "the answer is not JSON: %s", e.text);
        return -EINVAL;
    }
    kind = json_object_get(root, "kind");
    if (!json_is_string(kind) || strcmp(json_string_value(kind), "Node") != 0) {
        snprintf(err, err_len, "the answer is not a Node object (kind %s)",
                 json_is_string(kind) ? json_string_value(kind) : "missing");
        json_decref(root);
        return -EINVAL;
    }
    v = json_object_get(json_object_get(json_object_get(root, "metadata"), "labels"),
                        NODEZONE_LABEL);
    rc = -ENOENT;
    if (v != NULL && !json_is_string(v)) {
        snprintf(err, err_len, "label %s is not a string", NODEZONE_LABEL);
        rc = -EINVAL;
    } else if (v != NULL && !endpoints_label_value_ok(json_string_value(v))) {
        snprintf(err, err_len, "label %s is not a label value", NODEZONE_LABEL);
        rc = -EINVAL;
    } else if (v != NULL && json_string_value(v)[0] != '\0') {
        snprintf(zone, ZONE_NAME_MAX + 1, "%s", json_string_value(v));
        rc = 0;
    }
    if (rc == -ENOENT)
        snprintf(err, err_len, "the node has no label %s", NODEZONE_LABEL);
    json_decref(root);
    return rc;
}
