/* Forward protocol codec. See forward.h for the contract and ../../docs/forward-codec.md for the
 * design notes.
 *
 * Decoding runs in two phases so that a rejected frame never yields events:
 *  1. validate: the whole frame is one well-formed msgpack value (sl_mp_check_one), the outer
 *     shape and options are right, a gzip payload inflates within the bound, and a packed payload
 *     is a well-formed sequence of values;
 *  2. yield: walk the entries; after phase 1 only per-entry shape errors remain, and those skip
 *     just that entry.
 */
#include "codec/forward.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <zlib.h>

#define NS_PER_S 1000000000LL

static const char *type_name(const struct sl_mp_obj *o)
{
    switch (o->type) {
    case SL_MP_NIL:
        return "nil";
    case SL_MP_BOOL:
        return "bool";
    case SL_MP_UINT:
    case SL_MP_INT:
        return "int";
    case SL_MP_FLOAT:
        return "float";
    case SL_MP_STR:
        return "str";
    case SL_MP_BIN:
        return "bin";
    case SL_MP_ARRAY:
        return "array";
    case SL_MP_MAP:
        return "map";
    case SL_MP_EXT:
        return "ext";
    }
    return "?";
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return SL_FWD_ERROR;
}

static int str_is(const struct sl_mp_obj *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == SL_MP_STR && o->n == n && memcmp(o->p, s, n) == 0;
}

/* Reads one value header where the caller already validated the enclosing structure. */
static void read_valid(struct sl_mp_reader *r, struct sl_mp_obj *o)
{
    int rc = sl_mp_read(r, o);
    (void)rc; /* cannot fail: the frame passed sl_mp_check_one */
}

static void skip_valid(struct sl_mp_reader *r)
{
    int rc = sl_mp_skip(r);
    (void)rc;
}

/* ---- options ---- */

static int parse_options(struct sl_mp_reader *r, struct sl_fwd_options *opt, char *err,
                         size_t errlen)
{
    struct sl_mp_obj o, k, v;
    read_valid(r, &o);
    if (o.type == SL_MP_NIL) return 0; /* old Docker sends a nil option */
    if (o.type != SL_MP_MAP) return fail(err, errlen, "option is a %s, not a map", type_name(&o));
    for (uint32_t i = 0; i < o.n; i++) {
        /* peek at each header, then skip the whole key or value, whatever it contains */
        struct sl_mp_reader peek = *r;
        read_valid(&peek, &k);
        skip_valid(r);
        size_t vstart = r->pos;
        peek = *r;
        read_valid(&peek, &v);
        skip_valid(r);
        size_t vend = r->pos;
        if (str_is(&k, "chunk")) {
            opt->chunk = r->buf + vstart;
            opt->chunk_len = vend - vstart;
            opt->chunk_is_str = v.type == SL_MP_STR;
            if (opt->chunk_is_str) {
                opt->chunk_str = v.p;
                opt->chunk_str_len = v.n;
            }
        } else if (str_is(&k, "size")) {
            opt->has_size = v.type == SL_MP_UINT;
            opt->size = v.type == SL_MP_UINT ? v.v.u : 0;
        } else if (str_is(&k, "compressed")) {
            opt->compressed = str_is(&v, "gzip")   ? SL_FWD_COMP_GZIP
                              : str_is(&v, "zstd") ? SL_FWD_COMP_ZSTD
                              : str_is(&v, "text") ? SL_FWD_COMP_TEXT
                                                   : SL_FWD_COMP_OTHER;
        } else if (str_is(&k, "fluent_signal")) {
            if (v.type == SL_MP_UINT && v.v.u <= INT64_MAX) {
                opt->has_signal = 1;
                opt->fluent_signal = (int64_t)v.v.u;
            } else if (v.type == SL_MP_INT) {
                opt->has_signal = 1;
                opt->fluent_signal = v.v.i;
            }
        }
    }
    return 0;
}

/* ---- time ---- */

/* Converts a time value to ns. Returns NULL or a reason. */
static const char *time_ns(const struct sl_mp_obj *o, int64_t *ns)
{
    switch (o->type) {
    case SL_MP_UINT:
        if (o->v.u > (uint64_t)(INT64_MAX / NS_PER_S)) return "time is out of range";
        *ns = (int64_t)o->v.u * NS_PER_S;
        return NULL;
    case SL_MP_INT:
        if (o->v.i < INT64_MIN / NS_PER_S) return "time is out of range";
        *ns = o->v.i * NS_PER_S;
        return NULL;
    case SL_MP_FLOAT: {
        double x = o->v.f * 1e9;
        if (!isfinite(x) || x >= 9.2e18 || x <= -9.2e18) return "time is out of range";
        *ns = llround(x);
        return NULL;
    }
    case SL_MP_EXT: {
        if (o->ext_type != 0 || o->n != 8) return "time is an ext that is not EventTime";
        uint32_t sec =
            (uint32_t)o->p[0] << 24 | (uint32_t)o->p[1] << 16 | (uint32_t)o->p[2] << 8 | o->p[3];
        uint32_t nsec =
            (uint32_t)o->p[4] << 24 | (uint32_t)o->p[5] << 16 | (uint32_t)o->p[6] << 8 | o->p[7];
        if (nsec >= NS_PER_S) return "EventTime nanoseconds out of range";
        *ns = (int64_t)sec * NS_PER_S + nsec;
        return NULL;
    }
    default:
        return NULL; /* the caller names the type */
    }
}

struct yield {
    const struct sl_fwd_decode_opts *opts;
    struct sl_fwd_request *req;
    sl_fwd_event_cb cb;
    void *ctx;
    char ebuf[SL_FWD_ERRLEN];
};

static int emit(struct yield *y, struct sl_fwd_event *ev)
{
    y->req->n_entries++;
    if (ev->error) y->req->n_bad++;
    return y->cb ? y->cb(y->ctx, y->req, ev) : 0;
}

static int emit_bad(struct yield *y, struct sl_fwd_event *ev, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(y->ebuf, sizeof(y->ebuf), "entry %zu: ", ev->index);
    va_start(ap, fmt);
    vsnprintf(y->ebuf + n, sizeof(y->ebuf) - (size_t)n, fmt, ap);
    va_end(ap);
    ev->error = y->ebuf;
    ev->record = NULL;
    ev->record_len = 0;
    return emit(y, ev);
}

/* Reads a time (r at its header) into ev; a v1.5 [time, meta] takes time[0]. Returns NULL or the
 * reason the entry is bad (written to y->ebuf by the caller). */
static const char *read_time(struct sl_mp_reader *r, struct sl_fwd_event *ev, char *why,
                             size_t whylen)
{
    struct sl_mp_obj o;
    size_t start = r->pos;
    read_valid(r, &o);
    if (o.type == SL_MP_ARRAY) {
        uint32_t n = o.n;
        if (n == 0) {
            snprintf(why, whylen, "time is an empty array");
            goto bad;
        }
        read_valid(r, &o);
        if (o.type == SL_MP_ARRAY || o.type == SL_MP_MAP) {
            snprintf(why, whylen, "time[0] is a %s", type_name(&o));
            goto bad;
        }
        const char *e = time_ns(&o, &ev->time_ns);
        if (e) {
            snprintf(why, whylen, "%s", e);
            goto bad;
        }
        if (o.type != SL_MP_UINT && o.type != SL_MP_INT && o.type != SL_MP_FLOAT &&
            o.type != SL_MP_EXT) {
            snprintf(why, whylen, "time[0] is a %s", type_name(&o));
            goto bad;
        }
        if (n >= 2) {
            size_t ms = r->pos;
            skip_valid(r);
            ev->meta = r->buf + ms;
            ev->meta_len = r->pos - ms;
        }
        for (uint32_t k = 2; k < n; k++)
            skip_valid(r);
        return NULL;
    }
    if (o.type != SL_MP_UINT && o.type != SL_MP_INT && o.type != SL_MP_FLOAT &&
        o.type != SL_MP_EXT) {
        snprintf(why, whylen, "time is a %s", type_name(&o));
        goto bad;
    }
    const char *e = time_ns(&o, &ev->time_ns);
    if (e) {
        snprintf(why, whylen, "%s", e);
        goto bad;
    }
    return NULL;
bad:
    r->pos = start;
    skip_valid(r);
    return why;
}

/* Yields the entry at r->pos (a validated value) and leaves r after it. */
static int yield_entry(struct yield *y, struct sl_mp_reader *r, size_t index)
{
    struct sl_fwd_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.index = index;
    size_t start = r->pos;
    skip_valid(r);
    ev.entry = r->buf + start;
    ev.entry_len = r->pos - start;

    struct sl_mp_reader e;
    struct sl_mp_obj o;
    sl_mp_reader_init(&e, ev.entry, ev.entry_len);
    read_valid(&e, &o);
    if (o.type != SL_MP_ARRAY)
        return emit_bad(y, &ev, "is a %s, not [time, record]", type_name(&o));
    if (o.n != 2) return emit_bad(y, &ev, "has %u elements, not [time, record]", (unsigned)o.n);
    char why[64];
    if (read_time(&e, &ev, why, sizeof(why))) return emit_bad(y, &ev, "%s", why);
    size_t rs = e.pos;
    read_valid(&e, &o);
    if (o.type != SL_MP_MAP) return emit_bad(y, &ev, "record is a %s, not a map", type_name(&o));
    ev.record = ev.entry + rs;
    ev.record_len = ev.entry_len - rs;
    return emit(y, &ev);
}

/* ---- gzip without malloc ---- */

static voidpf arena_alloc(voidpf opaque, uInt items, uInt size)
{
    struct sl_fwd_zarena *a = opaque;
    size_t n = (size_t)items * size;
    n = (n + 15) & ~(size_t)15;
    if (n > sizeof(a->mem) - a->used) return Z_NULL;
    void *p = a->mem + a->used;
    a->used += n;
    return p;
}

static void arena_free(voidpf opaque, voidpf p)
{
    /* the arena is reset per frame */
    (void)opaque;
    (void)p;
}

/* Inflates one or more concatenated gzip members into opts->zbuf. */
static int gunzip(const struct sl_fwd_decode_opts *opts, const uint8_t *in, size_t n,
                  size_t *outlen, char *err, size_t errlen)
{
    if (!opts || !opts->zbuf || !opts->zarena)
        return fail(err, errlen, "gzip payload but no decompression buffer");
    *outlen = 0;
    if (n == 0) return 0;
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    opts->zarena->used = 0;
    zs.zalloc = arena_alloc;
    zs.zfree = arena_free;
    zs.opaque = opts->zarena;
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return fail(err, errlen, "gzip: init failed");
    /* zlib counts in uInt; frames are far below 4 GiB (the frame limit), the buffer might not be */
    size_t cap = opts->zcap > UINT32_MAX ? UINT32_MAX : opts->zcap;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = opts->zbuf;
    zs.avail_out = (uInt)cap;
    int rc = SL_FWD_OK;
    for (;;) {
        int z = inflate(&zs, Z_NO_FLUSH);
        if (z == Z_STREAM_END) {
            if (zs.avail_in == 0) break;
            inflateReset(&zs); /* another member follows */
            continue;
        }
        if (z == Z_OK || z == Z_BUF_ERROR) {
            if (zs.avail_out == 0) {
                /* full: find out whether the data needs more room than the bound */
                uint8_t probe;
                zs.next_out = &probe;
                zs.avail_out = 1;
                z = inflate(&zs, Z_NO_FLUSH);
                if (zs.avail_out == 0) {
                    rc = fail(err, errlen, "decompressed size exceeds %zu", opts->zcap);
                    break;
                }
                zs.next_out = opts->zbuf + cap;
                zs.avail_out = 0;
                if (z == Z_STREAM_END) {
                    if (zs.avail_in == 0) break;
                    inflateReset(&zs);
                    continue;
                }
                if (z != Z_OK && z != Z_BUF_ERROR) {
                    rc = fail(err, errlen, "gzip: %s", zs.msg ? zs.msg : "error");
                    break;
                }
            }
            if (zs.avail_in == 0) {
                rc = fail(err, errlen, "gzip: truncated member");
                break;
            }
            if (z == Z_BUF_ERROR && zs.avail_out > 0) {
                rc = fail(err, errlen, "gzip: truncated member");
                break;
            }
            continue;
        }
        rc = fail(err, errlen, "gzip: %s",
                  z == Z_MEM_ERROR ? "state does not fit the arena"
                  : zs.msg         ? zs.msg
                                   : "data error");
        break;
    }
    if (rc == SL_FWD_OK) *outlen = (size_t)(zs.next_out - opts->zbuf);
    inflateEnd(&zs);
    return rc;
}

/* Phase 1 for packed payloads: a sequence of well-formed values. */
static int check_sequence(const uint8_t *p, size_t n, char *err, size_t errlen)
{
    struct sl_mp_reader r;
    sl_mp_reader_init(&r, p, n);
    while (r.pos < n) {
        if (sl_mp_skip(&r) != 0)
            return fail(err, errlen, "entries: %s at byte %zu of %zu", r.err, r.pos, n);
    }
    return 0;
}

int sl_fwd_decode(const void *frame, size_t len, const struct sl_fwd_decode_opts *opts,
                  struct sl_fwd_request *req, sl_fwd_event_cb cb, void *ctx, char *err,
                  size_t errlen)
{
    struct sl_mp_reader r;
    struct sl_mp_obj o, tag, e1;
    const char *me = NULL;
    memset(req, 0, sizeof(*req));
    if (err && errlen) err[0] = '\0';

    if (sl_mp_check_one(frame, len, &me) != 0) {
        struct sl_mp_reader t;
        sl_mp_reader_init(&t, frame, len);
        if (me && strcmp(me, "trailing bytes after the value") == 0) {
            sl_mp_skip(&t);
            return fail(err, errlen, "%zu trailing bytes after the frame", len - t.pos);
        }
        return fail(err, errlen, "frame is not one msgpack value: %s", me);
    }
    sl_mp_reader_init(&r, frame, len);
    read_valid(&r, &o);
    if (o.type == SL_MP_NIL) {
        req->mode = SL_FWD_KEEPALIVE;
        return SL_FWD_OK;
    }
    if (o.type != SL_MP_ARRAY)
        return fail(err, errlen, "frame is a %s, not an array", type_name(&o));
    uint32_t nel = o.n;
    if (nel < 2 || nel > 4)
        return fail(err, errlen, "frame has %u elements, expected 2 to 4", (unsigned)nel);
    read_valid(&r, &tag);
    if (tag.type != SL_MP_STR)
        return fail(err, errlen, "element 0 (tag) is a %s, not a str", type_name(&tag));
    req->tag = (const char *)tag.p;
    req->tag_len = tag.n;

    size_t e1_start = r.pos;
    read_valid(&r, &e1);
    switch (e1.type) {
    case SL_MP_ARRAY:
        req->mode = SL_FWD_FORWARD;
        break;
    case SL_MP_STR:
    case SL_MP_BIN:
        req->mode = SL_FWD_PACKED;
        break;
    case SL_MP_UINT:
    case SL_MP_INT:
    case SL_MP_FLOAT:
    case SL_MP_EXT:
        req->mode = SL_FWD_MESSAGE;
        break;
    default:
        return fail(err, errlen,
                    "element 1 is a %s, expected a time, an entries array or packed entries",
                    type_name(&e1));
    }
    size_t entries_at = r.pos; /* Forward: first entry; Message: the record */
    size_t rec_start = 0, rec_end = 0;
    struct sl_mp_obj rec;
    if (req->mode == SL_FWD_MESSAGE) {
        if (nel < 3)
            return fail(err, errlen, "Message mode frame has %u elements, expected 3 or 4",
                        (unsigned)nel);
        rec_start = r.pos;
        struct sl_mp_reader peek = r;
        read_valid(&peek, &rec);
        skip_valid(&r);
        rec_end = r.pos;
        if (nel == 4 && parse_options(&r, &req->opt, err, errlen) != 0) return SL_FWD_ERROR;
    } else {
        if (nel > 3)
            return fail(err, errlen, "frame has %u elements, expected 2 or 3 for entries",
                        (unsigned)nel);
        r.pos = e1_start;
        skip_valid(&r);
        if (nel == 3 && parse_options(&r, &req->opt, err, errlen) != 0) return SL_FWD_ERROR;
    }

    const uint8_t *payload = e1.p;
    size_t plen = e1.n;
    if (req->mode == SL_FWD_PACKED) {
        if (req->opt.compressed == SL_FWD_COMP_ZSTD)
            return fail(err, errlen, "compressed \"zstd\" is not supported");
        if (req->opt.compressed == SL_FWD_COMP_GZIP) {
            req->mode = SL_FWD_COMPRESSED;
            if (gunzip(opts, e1.p, e1.n, &plen, err, errlen) != 0) return SL_FWD_ERROR;
            payload = opts->zbuf;
        }
        if (check_sequence(payload, plen, err, errlen) != 0) return SL_FWD_ERROR;
    }

    /* phase 2 */
    struct yield y = {opts, req, cb, ctx, {0}};
    if (req->mode == SL_FWD_MESSAGE) {
        struct sl_fwd_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.entry = frame;
        ev.entry_len = len;
        char why[64];
        struct sl_mp_reader t = r;
        t.pos = e1_start;
        int rc;
        if (read_time(&t, &ev, why, sizeof(why)))
            rc = emit_bad(&y, &ev, "%s", why);
        else if (rec.type != SL_MP_MAP)
            rc = emit_bad(&y, &ev, "record is a %s, not a map", type_name(&rec));
        else {
            ev.record = (const uint8_t *)frame + rec_start;
            ev.record_len = rec_end - rec_start;
            rc = emit(&y, &ev);
        }
        return rc ? SL_FWD_STOPPED : SL_FWD_OK;
    }
    if (req->mode == SL_FWD_FORWARD) {
        r.pos = entries_at;
        for (uint32_t k = 0; k < e1.n; k++)
            if (yield_entry(&y, &r, k)) return SL_FWD_STOPPED;
        return SL_FWD_OK;
    }
    struct sl_mp_reader pr;
    sl_mp_reader_init(&pr, payload, plen);
    for (size_t k = 0; pr.pos < plen; k++)
        if (yield_entry(&y, &pr, k)) return SL_FWD_STOPPED;
    return SL_FWD_OK;
}

/* ---- ack, chunk id ---- */

void sl_fwd_ack(const uint8_t *chunk_value, size_t len, struct sl_mp_wbuf *out)
{
    sl_mp_w_map(out, 1);
    sl_mp_w_str(out, "ack", 3);
    sl_mp_w_raw(out, chunk_value, len);
}

void sl_fwd_chunk_id(const uint8_t id[16], char out[25])
{
    out[sl_mp_base64(id, 16, out)] = '\0';
}

/* ---- handshake ---- */

int sl_fwd_sha512_hex(const void *const *parts, const size_t *lens, size_t n, char hex[129])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c) return -1;
    if (EVP_DigestInit_ex(c, EVP_sha512(), NULL) == 1) {
        ok = 1;
        for (size_t k = 0; k < n && ok; k++)
            ok = EVP_DigestUpdate(c, parts[k], lens[k]) == 1;
        ok = ok && EVP_DigestFinal_ex(c, md, &mdlen) == 1 && mdlen == 64;
    }
    EVP_MD_CTX_free(c);
    if (!ok) return -1;
    for (unsigned k = 0; k < 64; k++) {
        hex[2 * k] = digits[md[k] >> 4];
        hex[2 * k + 1] = digits[md[k] & 15];
    }
    hex[128] = '\0';
    return 0;
}

int sl_fwd_ping_digest(const void *salt, size_t salt_len, const char *host, size_t host_len,
                       const void *nonce, size_t nonce_len, const char *key, size_t key_len,
                       char hex[129])
{
    const void *parts[4] = {salt, host, nonce, key};
    size_t lens[4] = {salt_len, host_len, nonce_len, key_len};
    return sl_fwd_sha512_hex(parts, lens, 4, hex);
}

int sl_fwd_password_digest(const void *auth, size_t auth_len, const char *user, size_t user_len,
                           const char *password, size_t password_len, char hex[129])
{
    const void *parts[3] = {auth, user, password};
    size_t lens[3] = {auth_len, user_len, password_len};
    return sl_fwd_sha512_hex(parts, lens, 3, hex);
}

void sl_fwd_helo(const uint8_t nonce[16], const uint8_t *auth16, int keepalive,
                 struct sl_mp_wbuf *out)
{
    sl_mp_w_array(out, 2);
    sl_mp_w_str(out, "HELO", 4);
    sl_mp_w_map(out, 3);
    sl_mp_w_str(out, "nonce", 5);
    sl_mp_w_bin(out, nonce, 16);
    sl_mp_w_str(out, "auth", 4);
    /* fluentd sends '' (a str) when user auth is off */
    if (auth16)
        sl_mp_w_bin(out, auth16, 16);
    else
        sl_mp_w_str(out, "", 0);
    sl_mp_w_str(out, "keepalive", 9);
    sl_mp_w_bool(out, keepalive);
}

/* Opens frame as an array whose first element is the string `kind`; returns its element count or
 * -1. */
static long open_message(struct sl_mp_reader *r, const void *frame, size_t len, const char *kind,
                         char *err, size_t errlen, const char *what)
{
    struct sl_mp_obj o;
    const char *me = NULL;
    if (sl_mp_check_one(frame, len, &me) != 0) {
        fail(err, errlen, "%s: %s", what, me);
        return -1;
    }
    sl_mp_reader_init(r, frame, len);
    read_valid(r, &o);
    if (o.type != SL_MP_ARRAY || o.n == 0) {
        fail(err, errlen, "%s: not an array", what);
        return -1;
    }
    uint32_t n = o.n;
    read_valid(r, &o);
    if (!str_is(&o, kind)) {
        fail(err, errlen, "%s: first element is not \"%s\"", what, kind);
        return -1;
    }
    return (long)n;
}

static int want_str(struct sl_mp_reader *r, int allow_bin, const char **p, size_t *n)
{
    struct sl_mp_obj o;
    read_valid(r, &o);
    if (o.type != SL_MP_STR && !(allow_bin && o.type == SL_MP_BIN)) return -1;
    *p = (const char *)o.p;
    *n = o.n;
    return 0;
}

int sl_fwd_parse_helo(const void *frame, size_t len, struct sl_fwd_helo *h, char *err,
                      size_t errlen)
{
    struct sl_mp_reader r;
    struct sl_mp_obj o, k, v;
    memset(h, 0, sizeof(*h));
    h->keepalive = 1;
    long n = open_message(&r, frame, len, "HELO", err, errlen, "invalid HELO");
    if (n < 0) return -1;
    if (n != 2) return fail(err, errlen, "invalid HELO: %ld elements", n);
    read_valid(&r, &o);
    if (o.type != SL_MP_MAP)
        return fail(err, errlen, "invalid HELO: options are a %s", type_name(&o));
    int have_nonce = 0;
    for (uint32_t i = 0; i < o.n; i++) {
        struct sl_mp_reader peek = r;
        read_valid(&peek, &k);
        skip_valid(&r);
        peek = r;
        read_valid(&peek, &v);
        skip_valid(&r);
        int sb = v.type == SL_MP_STR || v.type == SL_MP_BIN;
        if (str_is(&k, "nonce")) {
            if (!sb) return fail(err, errlen, "invalid HELO: nonce is a %s", type_name(&v));
            h->nonce = v.p;
            h->nonce_len = v.n;
            have_nonce = 1;
        } else if (str_is(&k, "auth")) {
            if (!sb) return fail(err, errlen, "invalid HELO: auth is a %s", type_name(&v));
            h->auth = v.p;
            h->auth_len = v.n;
        } else if (str_is(&k, "keepalive")) {
            if (v.type != SL_MP_BOOL)
                return fail(err, errlen, "invalid HELO: keepalive is a %s", type_name(&v));
            h->keepalive = v.v.b;
        }
    }
    if (!have_nonce) return fail(err, errlen, "invalid HELO: no nonce");
    return 0;
}

int sl_fwd_parse_ping(const void *frame, size_t len, struct sl_fwd_ping *p, char *err,
                      size_t errlen)
{
    struct sl_mp_reader r;
    const char *salt;
    memset(p, 0, sizeof(*p));
    long n = open_message(&r, frame, len, "PING", err, errlen, "invalid ping message");
    if (n < 0) return -1;
    if (n != 6) return fail(err, errlen, "invalid ping message: %ld elements", n);
    if (want_str(&r, 0, &p->host, &p->host_len))
        return fail(err, errlen, "invalid ping message: hostname is not a str");
    if (want_str(&r, 1, &salt, &p->salt_len))
        return fail(err, errlen, "invalid ping message: salt is not a str or bin");
    p->salt = (const uint8_t *)salt;
    if (want_str(&r, 0, &p->digest, &p->digest_len))
        return fail(err, errlen, "invalid ping message: digest is not a str");
    if (want_str(&r, 0, &p->user, &p->user_len))
        return fail(err, errlen, "invalid ping message: username is not a str");
    if (want_str(&r, 0, &p->password, &p->password_len))
        return fail(err, errlen, "invalid ping message: password is not a str");
    return 0;
}

static int hex_equal(const char *a, size_t alen, const char hex[129])
{
    return alen == 128 && CRYPTO_memcmp(a, hex, 128) == 0;
}

int sl_fwd_verify_ping(const struct sl_fwd_ping *p, const void *nonce, size_t nonce_len,
                       const char *key, size_t key_len)
{
    char hex[129];
    if (sl_fwd_ping_digest(p->salt, p->salt_len, p->host, p->host_len, nonce, nonce_len, key,
                           key_len, hex) != 0)
        return -1;
    return hex_equal(p->digest, p->digest_len, hex) ? 0 : -1;
}

int sl_fwd_verify_password(const struct sl_fwd_ping *p, const void *auth, size_t auth_len,
                           const char *user, size_t user_len, const char *password,
                           size_t password_len)
{
    char hex[129];
    if (p->user_len != user_len || memcmp(p->user, user, user_len) != 0) return -1;
    if (sl_fwd_password_digest(auth, auth_len, user, user_len, password, password_len, hex) != 0)
        return -1;
    return hex_equal(p->password, p->password_len, hex) ? 0 : -1;
}

void sl_fwd_pong(int ok, const char *reason, size_t reason_len, const char *host, size_t host_len,
                 const char *digest_hex, struct sl_mp_wbuf *out)
{
    sl_mp_w_array(out, 5);
    sl_mp_w_str(out, "PONG", 4);
    sl_mp_w_bool(out, ok);
    sl_mp_w_str(out, reason ? reason : "", reason ? reason_len : 0);
    sl_mp_w_str(out, host ? host : "", host ? host_len : 0);
    sl_mp_w_str(out, digest_hex ? digest_hex : "", digest_hex ? strlen(digest_hex) : 0);
}

int sl_fwd_make_ping(const struct sl_fwd_helo *helo, const char *host, size_t host_len,
                     const void *salt, size_t salt_len, const char *key, size_t key_len,
                     const char *user, size_t user_len, const char *password, size_t password_len,
                     struct sl_mp_wbuf *out)
{
    char digest[129], pw[129];
    if (sl_fwd_ping_digest(salt, salt_len, host, host_len, helo->nonce, helo->nonce_len, key,
                           key_len, digest) != 0)
        return -1;
    sl_mp_w_array(out, 6);
    sl_mp_w_str(out, "PING", 4);
    sl_mp_w_str(out, host, host_len);
    sl_mp_w_str(out, salt, salt_len);
    sl_mp_w_str(out, digest, 128);
    if (helo->auth_len > 0) {
        if (sl_fwd_password_digest(helo->auth, helo->auth_len, user, user_len, password,
                                   password_len, pw) != 0)
            return -1;
        sl_mp_w_str(out, user, user_len);
        sl_mp_w_str(out, pw, 128);
    } else {
        sl_mp_w_str(out, "", 0);
        sl_mp_w_str(out, "", 0);
    }
    return 0;
}

int sl_fwd_parse_pong(const void *frame, size_t len, struct sl_fwd_pong *p, char *err,
                      size_t errlen)
{
    struct sl_mp_reader r;
    struct sl_mp_obj o;
    memset(p, 0, sizeof(*p));
    long n = open_message(&r, frame, len, "PONG", err, errlen, "invalid PONG");
    if (n < 0) return -1;
    if (n != 5) return fail(err, errlen, "invalid PONG: %ld elements", n);
    read_valid(&r, &o);
    if (o.type != SL_MP_BOOL)
        return fail(err, errlen, "invalid PONG: auth_result is a %s", type_name(&o));
    p->ok = o.v.b;
    if (want_str(&r, 0, &p->reason, &p->reason_len))
        return fail(err, errlen, "invalid PONG: reason is not a str");
    if (want_str(&r, 0, &p->host, &p->host_len))
        return fail(err, errlen, "invalid PONG: hostname is not a str");
    if (want_str(&r, 0, &p->digest, &p->digest_len))
        return fail(err, errlen, "invalid PONG: digest is not a str");
    return 0;
}

int sl_fwd_verify_pong(const struct sl_fwd_pong *p, const void *salt, size_t salt_len,
                       const void *nonce, size_t nonce_len, const char *key, size_t key_len,
                       char *err, size_t errlen)
{
    char hex[129];
    if (!p->ok) {
        int rl = p->reason_len > 100 ? 100 : (int)p->reason_len;
        return fail(err, errlen, "authentication failed: %.*s", rl, p->reason);
    }
    if (sl_fwd_ping_digest(salt, salt_len, p->host, p->host_len, nonce, nonce_len, key, key_len,
                           hex) != 0)
        return fail(err, errlen, "SHA-512 failed");
    if (!hex_equal(p->digest, p->digest_len, hex))
        return fail(err, errlen, "shared key mismatch in PONG");
    return 0;
}

/* ---- PackedForward writer ---- */

void sl_fwd_packed_begin(struct sl_fwd_packer *p, struct sl_mp_wbuf *out, const char *tag,
                         size_t tag_len)
{
    static const uint8_t bin32[5] = {0xc6, 0, 0, 0, 0};
    p->out = out;
    p->frame_start = out->len;
    p->n = 0;
    sl_mp_w_array(out, 3);
    sl_mp_w_str(out, tag, tag_len);
    sl_mp_w_raw(out, bin32, 5); /* placeholder, shrunk in end() */
    p->entries_start = out->len;
}

void sl_fwd_packed_add(struct sl_fwd_packer *p, int64_t time_ns, const uint8_t *record,
                       size_t record_len)
{
    uint8_t a = 0x92;
    sl_mp_w_raw(p->out, &a, 1);
    sl_mp_w_event_time(p->out, time_ns);
    sl_mp_w_raw(p->out, record, record_len);
    p->n++;
}

/* gzips data[from..to) of w into the space after it; returns the compressed length or -1. */
static long gzip_tail(struct sl_mp_wbuf *w, size_t from, size_t to, int level)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t bound = deflateBound(&zs, (uLong)(to - from));
    uint8_t *dst = sl_mp_w_reserve(w, bound);
    if (!dst) {
        deflateEnd(&zs);
        return -1;
    }
    zs.next_in = w->data + from;
    zs.avail_in = (uInt)(to - from);
    zs.next_out = dst;
    zs.avail_out = (uInt)bound;
    int z = deflate(&zs, Z_FINISH);
    long n = z == Z_STREAM_END ? (long)(bound - zs.avail_out) : -1;
    deflateEnd(&zs);
    return n;
}

int sl_fwd_packed_end(struct sl_fwd_packer *p, const char *chunk, size_t chunk_len, int gzip_level)
{
    struct sl_mp_wbuf *w = p->out;
    if (w->overflow) return -1;
    size_t bin_at = p->entries_start - 5;
    size_t elen = w->len - p->entries_start;
    size_t src = p->entries_start;
    size_t plen = elen;
    if (gzip_level > 0) {
        if (elen > UINT32_MAX) return -1;
        long c = gzip_tail(w, p->entries_start, w->len, gzip_level);
        if (c < 0) return -1;
        src = w->len;
        plen = (size_t)c;
    }
    if (plen > UINT32_MAX) return -1;
    size_t hl = sl_mp_bin_hdr_len(plen);
    memmove(w->data + bin_at + hl, w->data + src, plen);
    w->len = bin_at;
    uint8_t hdr[5];
    if (hl == 2) {
        hdr[0] = 0xc4;
        hdr[1] = (uint8_t)plen;
    } else if (hl == 3) {
        hdr[0] = 0xc5;
        hdr[1] = (uint8_t)(plen >> 8);
        hdr[2] = (uint8_t)plen;
    } else {
        hdr[0] = 0xc6;
        hdr[1] = (uint8_t)(plen >> 24);
        hdr[2] = (uint8_t)(plen >> 16);
        hdr[3] = (uint8_t)(plen >> 8);
        hdr[4] = (uint8_t)plen;
    }
    memcpy(w->data + bin_at, hdr, hl);
    w->len = bin_at + hl + plen;
    sl_mp_w_map(w, 1 + (gzip_level > 0) + (chunk != NULL));
    sl_mp_w_str(w, "size", 4);
    sl_mp_w_uint(w, p->n);
    if (gzip_level > 0) {
        sl_mp_w_str(w, "compressed", 10);
        sl_mp_w_str(w, "gzip", 4);
    }
    if (chunk) {
        sl_mp_w_str(w, "chunk", 5);
        sl_mp_w_str(w, chunk, chunk_len);
    }
    return w->overflow ? -1 : 0;
}
