/* Tokenizer pieces of json.c shared with other codecs (bulk.c). Not a public interface: callers
 * outside src/codec/ use json.h. All functions are pure and never read outside buf[0..len). */
#ifndef SL_JSON_INTERNAL_H
#define SL_JSON_INTERNAL_H

#include <stddef.h>

/* Where and why a text is not valid JSON. An error at off == len means the input ended early. */
struct sl__json_err {
    size_t off;
    const char *msg;
};

/* Index of the first byte at or after i that is not JSON whitespace (len if none). */
size_t sl__json_skip_ws(const char *buf, size_t len, size_t i);

/* Validates the string token starting at buf[i] (which must be '"') and stores the index just past
 * its closing quote in *end. Returns 0, or -1 with *e set. */
int sl__json_string_end(const char *buf, size_t len, size_t i, size_t *end, struct sl__json_err *e);

/* Validates one JSON value of any type starting at buf[i] (no leading whitespace) and stores the
 * index just past it in *end. Iterative, nesting limited to SL_JSON_MAX_DEPTH. Returns 0, or -1
 * with *e set. */
int sl__json_value_end(const char *buf, size_t len, size_t i, size_t *end, struct sl__json_err *e);

/* Validates a JSON number starting at buf[i] and stores the index just past it in *end. Returns 0,
 * or -1 with *e set. */
int sl__json_number_end(const char *buf, size_t len, size_t i, size_t *end, struct sl__json_err *e);

/* Exact number of bytes sl_json_escape would write for in[0..len). */
size_t sl__json_escaped_len(const char *in, size_t len);

#endif
