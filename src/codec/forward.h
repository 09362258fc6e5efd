/* Fluentd Forward protocol v1 / v1.5 codec (pure, no I/O). Spec: the Forward Protocol
 * Specification v1 (github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1); what sluice
 * accepts and answers: docs/forward-codec.md.
 *
 * Input side: sl_fwd_decode takes ONE complete frame (cut from the stream with sl_mp_frame_len)
 * and yields its events. It never calls malloc: records, tag and chunk point into the frame, or,
 * for CompressedPackedForward, into the caller's decompression buffer, and zlib's state lives in a
 * caller-provided arena. Frame errors are found before the first event is yielded, so a rejected
 * frame never produced events; an entry that is malformed on its own (not [time, record], a bad
 * time, a record that is not a map) is yielded with an error and the rest still decodes.
 *
 * Output side: acks, the handshake messages, and PackedForward frames for the Forward output.
 * These write into a struct sl_mp_wbuf; the digests and the gzip writer use libcrypto/zlib, which
 * allocate their own state.
 */
#ifndef SL_FORWARD_H
#define SL_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "codec/msgpack.h"

#define SL_FWD_ERRLEN 128
/* Bytes of zlib inflate state (inflate_state ~7 KiB + 32 KiB window, with margin). */
#define SL_FWD_ZARENA_SIZE (64 * 1024)

enum sl_fwd_mode {
    SL_FWD_KEEPALIVE = 0, /* the frame was nil */
    SL_FWD_MESSAGE,
    SL_FWD_FORWARD,
    SL_FWD_PACKED,
    SL_FWD_COMPRESSED, /* PackedForward with compressed: "gzip" */
};

enum sl_fwd_compression {
    SL_FWD_COMP_ABSENT = 0,
    SL_FWD_COMP_TEXT, /* fluentd's "text": uncompressed */
    SL_FWD_COMP_GZIP,
    SL_FWD_COMP_ZSTD,  /* recognised, not supported: the frame is rejected */
    SL_FWD_COMP_OTHER, /* any other value: treated as uncompressed */
};

struct sl_fwd_options {
    /* raw msgpack bytes of the chunk value as received (NULL if absent): echo these in the ack */
    const uint8_t *chunk;
    size_t chunk_len;
    int chunk_is_str;
    const uint8_t *chunk_str; /* contents when chunk_is_str */
    size_t chunk_str_len;
    int has_size;
    uint64_t size; /* a hint only: fluentd sends the count, fluency the byte length */
    enum sl_fwd_compression compressed;
    int has_signal;
    int64_t fluent_signal; /* 0 logs, 1 metrics, 2 traces (v1.5) */
};

struct sl_fwd_request {
    enum sl_fwd_mode mode;
    const char *tag;
    size_t tag_len;
    struct sl_fwd_options opt;
    size_t n_entries; /* entries yielded (good + bad) */
    size_t n_bad;     /* of which yielded with an error */
};

struct sl_fwd_event {
    size_t index;          /* entry index within the frame, from 0 */
    int64_t time_ns;       /* 0 stays 0: the caller decides what a zero time means */
    const uint8_t *record; /* msgpack map bytes */
    size_t record_len;
    const uint8_t *meta; /* v1.5 [time, meta]: the metadata value bytes, else NULL */
    size_t meta_len;
    const uint8_t
        *entry; /* the whole entry's msgpack bytes (the Message frame's for Message mode) */
    size_t entry_len;
    const char *error; /* non-NULL: this entry is skipped for this reason ("entry 3: record is a
                        * str"); record/time are then not valid, entry is */
};

/* Return nonzero to stop decoding (sl_fwd_decode then returns SL_FWD_STOPPED). */
typedef int (*sl_fwd_event_cb)(void *ctx, const struct sl_fwd_request *req,
                               const struct sl_fwd_event *ev);

/* zlib inflate state without malloc: a bump arena, reset per frame. private. */
struct sl_fwd_zarena {
    size_t used;
    _Alignas(16) unsigned char mem[SL_FWD_ZARENA_SIZE];
};

struct sl_fwd_decode_opts {
    /* CompressedPackedForward: decompressed entries go to zbuf[0..zcap); more is an error
     * "decompressed size exceeds <zcap>". Without zbuf and zarena gzip frames are rejected. */
    uint8_t *zbuf;
    size_t zcap;
    struct sl_fwd_zarena *zarena;
};

enum {
    SL_FWD_OK = 0,
    SL_FWD_ERROR = -1,   /* the frame is rejected; err says why and where; cb was not called */
    SL_FWD_STOPPED = -2, /* the callback asked to stop */
};

/* Decodes frame[0..len), which must be exactly one msgpack value. Fills *req (tag, options, mode;
 * mode SL_FWD_KEEPALIVE for nil, with no events) and calls cb once per entry in order. Returns
 * SL_FWD_OK, SL_FWD_ERROR with a message in err (e.g. "element 1 is a map", "option is a str",
 * "decompressed size exceeds 1048576", "entries: truncated value at byte 17"), or SL_FWD_STOPPED.
 * Pointers in *req and the events stay valid while frame (and zbuf) do. */
int sl_fwd_decode(const void *frame, size_t len, const struct sl_fwd_decode_opts *opts,
                  struct sl_fwd_request *req, sl_fwd_event_cb cb, void *ctx, char *err,
                  size_t errlen);

/* {"ack": <chunk>} with the chunk's msgpack value bytes copied verbatim. */
void sl_fwd_ack(const uint8_t *chunk_value, size_t len, struct sl_mp_wbuf *out);

/* Base64 of 16 bytes: 24 chars plus a NUL. */
void sl_fwd_chunk_id(const uint8_t id[16], char out[25]);

/* ---- handshake (shared key and user auth: the spec's HELO, PING, PONG) ---- */

/* Lowercase hex SHA-512 (128 chars + NUL) of the concatenation of n parts. Returns 0 or -1. */
int sl_fwd_sha512_hex(const void *const *parts, const size_t *lens, size_t n, char hex[129]);

/* sha512_hex(salt | host | nonce | shared_key). With the client's hostname this is the PING
 * digest; with the server's hostname (and still the client's salt) the PONG digest. */
int sl_fwd_ping_digest(const void *salt, size_t salt_len, const char *host, size_t host_len,
                       const void *nonce, size_t nonce_len, const char *key, size_t key_len,
                       char hex[129]);

/* sha512_hex(auth_salt | username | password). */
int sl_fwd_password_digest(const void *auth, size_t auth_len, const char *user, size_t user_len,
                           const char *password, size_t password_len, char hex[129]);

/* ["HELO", {"nonce": bin16, "auth": bin16 (or "" when auth is NULL), "keepalive": bool}] */
void sl_fwd_helo(const uint8_t nonce[16], const uint8_t *auth16, int keepalive,
                 struct sl_mp_wbuf *out);

struct sl_fwd_helo {
    const uint8_t *nonce;
    size_t nonce_len;
    const uint8_t *auth; /* empty: no user authentication */
    size_t auth_len;
    int keepalive; /* defaults to 1 */
};

/* Client side: HELO must be ["HELO", map] with nonce (str|bin); auth and keepalive optional. */
int sl_fwd_parse_helo(const void *frame, size_t len, struct sl_fwd_helo *h, char *err,
                      size_t errlen);

struct sl_fwd_ping {
    const char *host;
    size_t host_len;
    const uint8_t *salt;
    size_t salt_len;
    const char *digest;
    size_t digest_len;
    const char *user;
    size_t user_len;
    const char *password; /* hex digest, or "" */
    size_t password_len;
};

/* Server side: PING must be a 6-element array, "PING", str, str|bin, str, str, str. Errors say
 * "invalid ping message: ...". */
int sl_fwd_parse_ping(const void *frame, size_t len, struct sl_fwd_ping *p, char *err,
                      size_t errlen);

/* Server side: checks the PING's shared-key digest against nonce and key (constant time).
 * Returns 0, or -1 ("shared_key mismatch"). User/password checks use sl_fwd_password_digest. */
int sl_fwd_verify_ping(const struct sl_fwd_ping *p, const void *nonce, size_t nonce_len,
                       const char *key, size_t key_len);

/* Server side, user authentication: 0 when the PING names user and its password field equals
 * sha512_hex(auth | user | password) (compared in constant time), else -1. */
int sl_fwd_verify_password(const struct sl_fwd_ping *p, const void *auth, size_t auth_len,
                           const char *user, size_t user_len, const char *password,
                           size_t password_len);

/* ["PONG", ok, reason, server_host, digest_hex]. On failure pass ok 0, the reason, and "" / NULL
 * for host and digest. */
void sl_fwd_pong(int ok, const char *reason, size_t reason_len, const char *host, size_t host_len,
                 const char *digest_hex, struct sl_mp_wbuf *out);

/* Client side: writes the PING for helo. username/password are sent only when the HELO asked for
 * user authentication (non-empty auth); otherwise "" and "". Returns 0 or -1 (digest failure). */
int sl_fwd_make_ping(const struct sl_fwd_helo *helo, const char *host, size_t host_len,
                     const void *salt, size_t salt_len, const char *key, size_t key_len,
                     const char *user, size_t user_len, const char *password, size_t password_len,
                     struct sl_mp_wbuf *out);

struct sl_fwd_pong {
    int ok;
    const char *reason;
    size_t reason_len;
    const char *host;
    size_t host_len;
    const char *digest;
    size_t digest_len;
};

int sl_fwd_parse_pong(const void *frame, size_t len, struct sl_fwd_pong *p, char *err,
                      size_t errlen);

/* Client side: the PONG must be ok and its digest must equal
 * sha512_hex(own_salt | server_host | nonce | key). Returns 0, or -1 with err ("authentication
 * failed: <reason>", "shared key mismatch in PONG"). */
int sl_fwd_verify_pong(const struct sl_fwd_pong *p, const void *salt, size_t salt_len,
                       const void *nonce, size_t nonce_len, const char *key, size_t key_len,
                       char *err, size_t errlen);

/* ---- PackedForward writer (for the Forward output) ---- */

/* Usage: begin; add per event; end. The entries are written straight into out; end fixes the bin
 * header to its smallest form (so frames match other msgpack writers byte for byte), optionally
 * gzips the entries in place (out must be able to grow by deflateBound of them), and appends
 * {"size": N, ["compressed": "gzip",] ["chunk": "<chunk>"]}. private fields. */
struct sl_fwd_packer {
    struct sl_mp_wbuf *out;
    size_t frame_start;
    size_t entries_start;
    size_t n;
};

void sl_fwd_packed_begin(struct sl_fwd_packer *p, struct sl_mp_wbuf *out, const char *tag,
                         size_t tag_len);
/* record: the msgpack map bytes of one record (copied verbatim). time_ns in [0, 2^32 s). */
void sl_fwd_packed_add(struct sl_fwd_packer *p, int64_t time_ns, const uint8_t *record,
                       size_t record_len);
/* gzip_level: 0 for plain PackedForward, 1..9 for CompressedPackedForward. chunk: NULL or text
 * (normally sl_fwd_chunk_id's 24 chars). Returns 0, or -1 if out overflowed or zlib failed. */
int sl_fwd_packed_end(struct sl_fwd_packer *p, const char *chunk, size_t chunk_len, int gzip_level);

#endif
