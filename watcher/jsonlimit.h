/* SPDX-License-Identifier: Apache-2.0 */
/* Bounds on JSON text before jansson parses it. jansson builds the whole tree
 * at once, and a little text makes a large tree: each "[]," is three bytes of
 * input and over a hundred bytes of tree, so one 8 MiB answer could need
 * hundreds of MiB. A scan of the bytes, allocating nothing, counts the values
 * and the nesting of the first JSON object or array and finds where it ends,
 * so an answer out of bounds is refused before any of it is built. Pure (no
 * I/O); any thread. */
#ifndef WATCHER_JSONLIMIT_H
#define WATCHER_JSONLIMIT_H

#include <stddef.h>

/* What a LIST body or a watch event may hold. The kubernetes service has one
 * endpoint per apiserver; the API allows 1000 per EndpointSlice, about 13
 * values each with every optional field (addresses, conditions, zone,
 * hints), and apilb keeps at most ADDR_SET_MAX. 65536 values is several
 * times the largest valid slice, and its tree stays under ~20 MiB. */
#define JSONLIMIT_VALUES 65536u
/* An EndpointSlice list with managedFields nests about 10 deep. */
#define JSONLIMIT_DEPTH 64u

/* Scans the JSON object or array at the start of buf[0..len) (after
 * whitespace). Values are counted by their brackets and separators (1 for
 * the outermost, 1 per '[' or '{' and 1 per ',' outside strings; at most
 * twice as many are really there). Returns 0 with *end just past the value;
 * -EAGAIN when buf ends inside it; -E2BIG when it holds more than max_values
 * values or nests deeper than max_depth, with err saying which; -EBADMSG
 * when the text does not start with '{' or '['. Only the bounds and the
 * brackets are checked: the grammar is left to the parser. */
int jsonlimit_scan(const char *buf, size_t len, size_t max_values, unsigned max_depth, size_t *end,
                   char *err, size_t err_len) __attribute__((warn_unused_result));

#endif
