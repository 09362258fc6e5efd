/* Plain-text records parsed with a regular expression of named groups (format: regexp).
 *
 * What kafka-fluentd-consumer did with fluentd.record.format=regexp: each named group
 * (?<name>...) that took part in the match becomes a field of a JSON object, in the order the
 * groups appear in the pattern; a group that did not take part is left out. `types` converts a
 * field's text to a JSON int, float or bool; text that does not convert becomes null and is
 * counted, so a typed field never carries a value Elasticsearch would reject for its mapping.
 *
 * PCRE2, compiled once (JIT where the platform has it). No I/O; one match-data block per parser,
 * so a parser is used by one thread. */
#ifndef SL_RXPARSE_H
#define SL_RXPARSE_H

#include <stddef.h>
#include <sys/types.h>

#include "codec/kv.h"

struct sl_rxparse;

/* types: field -> "int" | "integer" | "float" | "bool" | "string". Returns NULL with a reason
 * (naming the offset in the pattern for a syntax error) in why. */
struct sl_rxparse *sl_rxparse_new(const char *pattern, const struct sl_kv *types, size_t n_types,
                                  char *why, size_t whylen);
void sl_rxparse_free(struct sl_rxparse *r);

/* Matches line[0..len) (a trailing "\n" or "\r\n" is ignored). Returns the number of bytes
 * sl_rxparse_write needs for this match, or -1 when the pattern does not match (or the match
 * could not complete, e.g. its backtracking limit was hit). line must stay valid until the write.
 */
ssize_t sl_rxparse_match(struct sl_rxparse *r, const char *line, size_t len);

/* Writes the JSON object of the last successful match to out (room: what match returned).
 * Returns its length. *type_errors is increased by the number of typed fields whose text did not
 * convert. */
size_t sl_rxparse_write(struct sl_rxparse *r, char *out, unsigned *type_errors);

/* Number of named groups; a pattern without any is refused by sl_rxparse_new. */
size_t sl_rxparse_fields(const struct sl_rxparse *r);

#endif
