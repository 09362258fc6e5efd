/* A bounded msgpack reader and a small writer (pure, no I/O, the reader never allocates).
 *
 * Why our own: msgpack-c's unpacker allocates 24 bytes per declared element as soon as it sees an
 * array or map header, before the elements arrive, so the 5 bytes `dd 04 00 00 00` cost it ~2 GB.
 * This reader is a cursor over (ptr, len): it decodes one header at a time, points into the
 * caller's bytes for str/bin/ext payloads, and checks every declared size against the bytes
 * actually present before it trusts it (a payload must be fully present; an array of n elements
 * needs at least n more bytes, a map of n pairs at least 2n) so a lying header fails at once.
 *
 * Skipping a value and cutting frames need no stack: they count the values still owed
 * ("pending"), which each header decrements and each container header increments by its element
 * count. The count is bounded by the bytes allowed, so nesting depth costs nothing. Only code that
 * must remember where each container ends (sl_mp_to_json) keeps a stack, limited to
 * SL_MP_MAX_DEPTH.
 *
 * Non-goals: timestamps other than Fluentd's EventTime (ext 0), map key uniqueness checks.
 */
#ifndef SL_MSGPACK_H
#define SL_MSGPACK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Nesting limit of sl_mp_to_json (a record deeper than this is refused, not truncated). */
#define SL_MP_MAX_DEPTH 256

enum sl_mp_type {
    SL_MP_NIL = 1,
    SL_MP_BOOL,
    SL_MP_UINT, /* any integer >= 0, whatever its encoding (also d0..d3 with a positive value) */
    SL_MP_INT,  /* any integer < 0 */
    SL_MP_FLOAT,
    SL_MP_STR,
    SL_MP_BIN,
    SL_MP_ARRAY,
    SL_MP_MAP,
    SL_MP_EXT,
};

/* One decoded header. Payload pointers point into the reader's buffer. */
struct sl_mp_obj {
    enum sl_mp_type type;
    union {
        int b;
        uint64_t u;
        int64_t i;
        double f;
    } v;
    const uint8_t *p; /* str/bin/ext payload */
    uint32_t n;       /* str/bin/ext payload length; array element / map pair count */
    int8_t ext_type;
    uint8_t is_f32; /* FLOAT came from a float32 (ca) */
};

/* public, plain cursor: buf[pos..len) is unread. err is a static message after a failure. */
struct sl_mp_reader {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    const char *err;
};

void sl_mp_reader_init(struct sl_mp_reader *r, const void *buf, size_t len);

/* Decodes the header at r->pos into *o and advances past it. For str/bin/ext the payload is
 * consumed too; for array/map only the header (the elements follow). Fails with r->err set and
 * r->pos unchanged when the header or payload is truncated, the byte is 0xc1, or a container
 * declares more elements than the remaining bytes could hold. Returns 0 or -1. */
int sl_mp_read(struct sl_mp_reader *r, struct sl_mp_obj *o);

/* Skips one whole value (containers with all their contents), iteratively. Returns 0, or -1 with
 * r->err set and r->pos unchanged. */
int sl_mp_skip(struct sl_mp_reader *r);

/* Returns 0 if buf[0..len) is exactly one complete msgpack value, else -1 (with *err if non-NULL).
 */
int sl_mp_check_one(const void *buf, size_t len, const char **err);

/* ---- cutting frames out of a stream ---- */

enum sl_mp_frame_status {
    SL_MP_FRAME_ERROR = -1, /* malformed, or the value would exceed max bytes: close the stream */
    SL_MP_FRAME_MORE = 0,   /* incomplete: *n is a lower bound of the frame's total length */
    SL_MP_FRAME_DONE = 1,   /* *n is the length of the first complete value */
};

/* Resumable state for sl_mp_framer_scan: values already walked are not walked again when more
 * bytes arrive. private; zero it with sl_mp_framer_reset. */
struct sl_mp_framer {
    size_t pos;
    uint64_t pending;
};

void sl_mp_framer_reset(struct sl_mp_framer *f);

/* Finds the length of the first msgpack value in buf[0..len). The caller may call again with the
 * same buffer grown (same prefix) after SL_MP_FRAME_MORE; reset after DONE or ERROR. max is the
 * frame limit (clamped to SIZE_MAX / 4); a frame that is longer, or whose declared sizes already
 * need more than max bytes, is an error even before its bytes arrive. Never reads past len; never
 * claims more than len bytes as complete. */
enum sl_mp_frame_status sl_mp_framer_scan(struct sl_mp_framer *f, const void *buf, size_t len,
                                          size_t max, size_t *n, const char **err);

/* One-shot form of the above. */
enum sl_mp_frame_status sl_mp_frame_len(const void *buf, size_t len, size_t max, size_t *n,
                                        const char **err);

/* ---- writer ---- */

/* A caller-owned output buffer. data[0..min(len,cap)) holds the bytes written; len counts every
 * byte asked for, even those that did not fit, so after an overflow it is the size needed.
 * When a write does not fit and grow is set, grow(w, need) is called to make cap >= need (it
 * updates data and cap and returns 0, or returns -1: then overflow is set and stays set, and
 * nothing more is stored). With grow NULL the buffer is fixed. */
struct sl_mp_wbuf {
    uint8_t *data;
    size_t len;
    size_t cap;
    int overflow;
    int (*grow)(struct sl_mp_wbuf *w, size_t need);
    void *ctx; /* for grow */
};

void sl_mp_wbuf_init(struct sl_mp_wbuf *w, void *data, size_t cap);

/* Makes room for n more bytes at data + len and returns that pointer (or NULL after overflow; len
 * is not advanced: call sl_mp_w_commit with what was written). */
uint8_t *sl_mp_w_reserve(struct sl_mp_wbuf *w, size_t n);
void sl_mp_w_commit(struct sl_mp_wbuf *w, size_t n);

void sl_mp_w_raw(struct sl_mp_wbuf *w, const void *p, size_t n);
void sl_mp_w_nil(struct sl_mp_wbuf *w);
void sl_mp_w_bool(struct sl_mp_wbuf *w, int b);
void sl_mp_w_uint(struct sl_mp_wbuf *w, uint64_t u);
void sl_mp_w_int(struct sl_mp_wbuf *w, int64_t i);
void sl_mp_w_double(struct sl_mp_wbuf *w, double d);
void sl_mp_w_str(struct sl_mp_wbuf *w, const void *s, size_t n); /* n < 2^32 */
void sl_mp_w_bin(struct sl_mp_wbuf *w, const void *s, size_t n);
void sl_mp_w_array(struct sl_mp_wbuf *w, uint32_t n);
void sl_mp_w_map(struct sl_mp_wbuf *w, uint32_t n);
void sl_mp_w_ext(struct sl_mp_wbuf *w, int8_t type, const void *p, uint32_t n);
/* Fluentd EventTime: fixext8 `d7 00 <sec:u32 BE> <nsec:u32 BE>`. ns must be in [0, 2^32 s). */
void sl_mp_w_event_time(struct sl_mp_wbuf *w, int64_t ns);

/* Sizes of the smallest str / bin header for a payload of n bytes. */
size_t sl_mp_str_hdr_len(size_t n);
size_t sl_mp_bin_hdr_len(size_t n);

/* ---- helpers ---- */

/* Standard base64 with padding. out needs 4 * ((len + 2) / 3) bytes; no NUL. Returns bytes written.
 */
size_t sl_mp_base64(const uint8_t *in, size_t len, char *out);

/* Writes the msgpack map at map[0..len) as one compact JSON object into out[0..cap) (no NUL):
 * strings escaped per RFC 8259, invalid UTF-8 as U+FFFD; bin as a base64 string; EventTime (ext 0,
 * 8 bytes) as an RFC 3339 UTC string with nanoseconds, other ext as base64 of the payload; floats
 * with %.17g (float32 with %.9g, both round-trip), NaN and infinities as null; map keys that are
 * not strings as their JSON text in a string ({1:2} -> {"1":2}). Returns the JSON length; the
 * output is complete only if that is <= cap, else out's contents are unspecified (call again with
 * a bigger buffer); nothing is written at or past out + cap. Returns -1 if the
 * input is not exactly one well-formed map, nests deeper than SL_MP_MAX_DEPTH, or nests non-string
 * keys more than 3 deep, with *err set if err is non-NULL. */
ssize_t sl_mp_to_json(const void *map, size_t len, char *out, size_t cap, const char **err);

/* The same, and finds scan->paths in the JSON it writes on the way, with the results
 * sl_json_scan_object would give on that output (raw value tokens pointing into out; the first
 * value reachable wins; keys compared as written): a converted record need not be scanned again.
 * The results are valid only when the return value is <= cap. scan may be NULL. */
struct sl_json_scan;
ssize_t sl_mp_to_json_scan(const void *map, size_t len, char *out, size_t cap, const char **err,
                           struct sl_json_scan *scan);

#endif
