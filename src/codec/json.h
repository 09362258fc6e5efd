/* JSON scanning for the pass-through path (pure, no I/O, no allocation).
 *
 * sluice never builds a DOM of a Kafka payload: it validates the bytes once, notes where a few
 * requested fields are, and copies the original text into the bulk body. Everything here works on
 * (pointer, length) slices of the caller's buffer.
 */
#ifndef SL_JSON_H
#define SL_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec/timefmt.h" /* sl_time_format_rfc3339, sl_time_parse_auto */

#define SL_JSON_MAX_PATHS 8
#define SL_JSON_MAX_DEPTH 1024

struct sl_json_scan {
    /* in: dotted paths into nested objects ("time", "a.b.c"); NULL entries are skipped */
    const char *paths[SL_JSON_MAX_PATHS];
    size_t n_paths;
    /* out: raw value token of each path (a string token includes its quotes), or NULL if absent */
    const char *val[SL_JSON_MAX_PATHS];
    size_t vlen[SL_JSON_MAX_PATHS];
    /* out: 1 when a raw '\n' or '\r' occurs between tokens, so the text must be compacted before it
     * can be one NDJSON line */
    int has_raw_newline;
    /* out on error: byte offset of the first offending byte and a static message */
    size_t err_offset;
    const char *err_msg;
};

/* Validates that buf[0..len) is exactly one JSON object (RFC 8259: strings must be valid UTF-8,
 * escapes valid, numbers well-formed), optionally surrounded by whitespace, nested at most
 * SL_JSON_MAX_DEPTH deep, and finds s->paths on the way. Iterative: no recursion on input depth.
 * Returns 0 on success, -1 with s->err_offset/err_msg set otherwise. */
int sl_json_scan_object(const char *buf, size_t len, struct sl_json_scan *s);

/* Copies a valid JSON text to out, dropping whitespace outside strings. Returns bytes written
 * (always <= len). out must have room for len bytes. */
size_t sl_json_compact(const char *buf, size_t len, char *out);

/* Writes in[0..len) as the contents of a JSON string (no surrounding quotes): escapes '"', '\\' and
 * control characters; bytes that are not valid UTF-8 become U+FFFD (EF BF BD). out must have room
 * for 6 * len bytes. Returns bytes written. */
size_t sl_json_escape(const char *in, size_t len, char *out);

/* Decodes a JSON string token (with its quotes) into out. Returns the decoded length, or -1 if the
 * token is not a string or does not fit in cap bytes. */
ssize_t sl_json_unescape(const char *tok, size_t toklen, char *out, size_t cap);

/* Parses a time value token into nanoseconds since the epoch (UTC), by sl_time_parse_auto on the
 * decoded contents of a string token or on a number token:
 *  - a string in RFC 3339 (2026-11-27T10:00:00Z, fractions up to 9 digits, offsets +hh:mm/-hh:mm,
 *    lowercase t/z and a space instead of T accepted), or a string holding an epoch number;
 *  - a number: epoch seconds (may have a fraction); values above 1e11 are taken as milliseconds,
 *    above 1e14 as microseconds, above 1e17 as nanoseconds.
 * Returns 0 on success, -1 if the token is neither. */
int sl_json_parse_time(const char *tok, size_t len, int64_t *ns);

#endif
