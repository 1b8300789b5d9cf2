/* SPDX-License-Identifier: Apache-2.0 */
/* YAML to jansson; see yamljson.h. */
#include "yamljson.h"

#include <stdio.h>
#include <string.h>
#include <yaml.h>

static json_t *convert(yaml_document_t *doc, yaml_node_t *n, int depth, char *err, size_t err_len)
{
    json_t *out;

    if (depth > YAMLJSON_MAX_DEPTH) {
        snprintf(err, err_len, "nested deeper than %d levels", YAMLJSON_MAX_DEPTH);
        return NULL;
    }
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return json_stringn((const char *)n->data.scalar.value, n->data.scalar.length);
    case YAML_SEQUENCE_NODE:
        out = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             out != NULL && it < n->data.sequence.items.top; it++) {
            json_t *v = convert(doc, yaml_document_get_node(doc, *it), depth + 1, err, err_len);

            if (v == NULL || json_array_append_new(out, v) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    case YAML_MAPPING_NODE:
        out = json_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             out != NULL && p < n->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            json_t *v;

            if (k == NULL || k->type != YAML_SCALAR_NODE) {
                snprintf(err, err_len, "line %zu: mapping key is not a scalar",
                         k != NULL ? k->start_mark.line + 1 : 0);
                json_decref(out);
                return NULL;
            }
            v = convert(doc, yaml_document_get_node(doc, p->value), depth + 1, err, err_len);
            if (v == NULL || json_object_set_new(out, (const char *)k->data.scalar.value, v) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    default:
        snprintf(err, err_len, "empty YAML node");
        return NULL;
    }
}

json_t *yamljson_load(const char *text, size_t len, char *err, size_t err_len)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_node_t *root;
    json_t *out = NULL;

    if (len > YAMLJSON_MAX_BYTES) {
        snprintf(err, err_len, "larger than %u bytes", YAMLJSON_MAX_BYTES);
        return NULL;
    }
    if (memchr(text, '&', len) != NULL && memchr(text, '*', len) != NULL) {
        /* Anchors with aliases can expand exponentially ("billion laughs"). */
        const char *p = text;
        for (size_t i = 0; i + 1 < len; i++, p++) {
            if ((p[0] == '*' || p[0] == '&') && (i == 0 || p[-1] == ' ' || p[-1] == '\n') &&
                p[1] != ' ' && p[1] != '\n') {
                snprintf(err, err_len, "YAML anchors and aliases are not supported");
                return NULL;
            }
        }
    }
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, err_len, "line %zu: %s", parser.problem_mark.line + 1,
                 parser.problem != NULL ? parser.problem : "invalid YAML");
        yaml_parser_delete(&parser);
        return NULL;
    }
    root = yaml_document_get_root_node(&doc);
    if (root == NULL)
        snprintf(err, err_len, "the document is empty");
    else
        out = convert(&doc, root, 0, err, err_len);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return out;
}
