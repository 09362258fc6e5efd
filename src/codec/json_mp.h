/* JSON object -> msgpack map (pure, no I/O, no allocation of its own).
 *
 * The Forward output must send records as msgpack maps, while pipeline payloads are JSON text
 * (pipeline.h). This converts one object in a single pass without building a tree: every
 * container is written with a 5-byte placeholder header, and when it closes the header is
 * rewritten in its smallest form and the contents moved down over the gap, so the result is
 * canonical msgpack (byte-equal to what other msgpack writers produce for the same values).
 *
 * Values: strings unescaped to UTF-8 str; integers as int/uint (the smallest form) when they fit
 * in int64/uint64, otherwise, and numbers with a fraction or exponent, as float64; true, false,
 * null; objects and arrays nested at most SL_JSON_MP_MAX_DEPTH deep. Duplicate keys are passed
 * through. String bytes are copied as they are (callers hand in JSON that sl_json_scan_object
 * already checked for UTF-8); raw control characters in strings are refused as in RFC 8259. */
#ifndef SL_JSON_MP_H
#define SL_JSON_MP_H

#include <stddef.h>
#include <stdint.h>

#include "codec/msgpack.h"

#define SL_JSON_MP_MAX_DEPTH 64

/* Appends the map for the JSON object json[0..len) (whitespace around it allowed) to out. The
 * top-level map header counts extra_pairs more pairs than the object has: the caller appends
 * exactly that many key/value pairs right after. Returns 0, or -1 with a static message in *err
 * (e.g. "expected ':'", "nesting deeper than 64", "output buffer full"), the byte offset in json
 * where it was found in *err_offset, and out->len restored to its value on entry. */
int sl_json_to_mp(const char *json, size_t len, struct sl_mp_wbuf *out, uint32_t extra_pairs,
                  const char **err, size_t *err_offset);

#endif
