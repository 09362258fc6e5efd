/* Bounded msgpack reader, framer, writer and msgpack -> JSON transcoder. See msgpack.h for the
 * design. Invariant of every reading function: no byte at or beyond the given length is read, and
 * no size from the input is used before it has been compared with the bytes present. */
#include "codec/msgpack.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "codec/json.h"
#include "codec/json_internal.h"

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

enum { HEAD_OK = 0, HEAD_SHORT = 1, HEAD_BAD = -1 };

/* Decodes the header at p[0..avail). HEAD_OK: *used is the header length, plus the payload for
 * str/bin/ext. HEAD_SHORT: *used is the number of bytes that header and payload need (so a lower
 * bound for the stream). HEAD_BAD: 0xc1. */
static int head(const uint8_t *p, size_t avail, struct sl_mp_obj *o, size_t *used)
{
    uint8_t b = p[0];
    size_t hl = 1;   /* header bytes */
    uint64_t pl = 0; /* payload bytes */
    o->is_f32 = 0;
    if (b <= 0x7f) {
        o->type = SL_MP_UINT;
        o->v.u = b;
        *used = 1;
        return HEAD_OK;
    }
    if (b >= 0xe0) {
        o->type = SL_MP_INT;
        o->v.i = (int8_t)b;
        *used = 1;
        return HEAD_OK;
    }
    if (b <= 0x8f) {
        o->type = SL_MP_MAP;
        o->n = b & 0x0f;
        *used = 1;
        return HEAD_OK;
    }
    if (b <= 0x9f) {
        o->type = SL_MP_ARRAY;
        o->n = b & 0x0f;
        *used = 1;
        return HEAD_OK;
    }
    if (b <= 0xbf) {
        o->type = SL_MP_STR;
        pl = b & 0x1f;
        goto payload;
    }
    /* 0xc0..0xdf: fixed header sizes, lengths follow */
    static const uint8_t hdr[32] = {
        1, 0, 1, 1,      /* c0 nil, c1 never used, c2 false, c3 true */
        2, 3, 5,         /* c4..c6 bin 8/16/32 */
        3, 4, 6,         /* c7..c9 ext 8/16/32 (length, then type) */
        5, 9,            /* ca float32, cb float64 */
        2, 3, 5, 9,      /* cc..cf uint */
        2, 3, 5, 9,      /* d0..d3 int */
        3, 4, 6, 10, 18, /* d4..d8 fixext 1/2/4/8/16 (type + data, counted as header) */
        2, 3, 5,         /* d9..db str */
        3, 5, 3, 5,      /* dc dd array, de df map */
    };
    hl = hdr[b - 0xc0];
    if (hl == 0) return HEAD_BAD;
    if (avail < hl) {
        *used = hl;
        return HEAD_SHORT;
    }
    switch (b) {
    case 0xc0:
        o->type = SL_MP_NIL;
        break;
    case 0xc2:
    case 0xc3:
        o->type = SL_MP_BOOL;
        o->v.b = b == 0xc3;
        break;
    case 0xc4:
    case 0xc5:
    case 0xc6:
        o->type = SL_MP_BIN;
        pl = b == 0xc4 ? p[1] : b == 0xc5 ? be16(p + 1) : be32(p + 1);
        break;
    case 0xc7:
    case 0xc8:
    case 0xc9:
        o->type = SL_MP_EXT;
        pl = b == 0xc7 ? p[1] : b == 0xc8 ? be16(p + 1) : be32(p + 1);
        o->ext_type = (int8_t)p[hl - 1];
        break;
    case 0xca: {
        uint32_t u = be32(p + 1);
        float f;
        memcpy(&f, &u, 4);
        o->type = SL_MP_FLOAT;
        o->v.f = f;
        o->is_f32 = 1;
        break;
    }
    case 0xcb: {
        uint64_t u = be64(p + 1);
        memcpy(&o->v.f, &u, 8);
        o->type = SL_MP_FLOAT;
        break;
    }
    case 0xcc:
        o->type = SL_MP_UINT;
        o->v.u = p[1];
        break;
    case 0xcd:
        o->type = SL_MP_UINT;
        o->v.u = be16(p + 1);
        break;
    case 0xce:
        o->type = SL_MP_UINT;
        o->v.u = be32(p + 1);
        break;
    case 0xcf:
        o->type = SL_MP_UINT;
        o->v.u = be64(p + 1);
        break;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        int64_t i = b == 0xd0   ? (int8_t)p[1]
                    : b == 0xd1 ? (int16_t)be16(p + 1)
                    : b == 0xd2 ? (int32_t)be32(p + 1)
                                : (int64_t)be64(p + 1);
        if (i >= 0) {
            o->type = SL_MP_UINT;
            o->v.u = (uint64_t)i;
        } else {
            o->type = SL_MP_INT;
            o->v.i = i;
        }
        break;
    }
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        o->type = SL_MP_EXT;
        o->ext_type = (int8_t)p[1];
        o->p = p + 2;
        o->n = (uint32_t)(hl - 2);
        break;
    case 0xd9:
    case 0xda:
    case 0xdb:
        o->type = SL_MP_STR;
        pl = b == 0xd9 ? p[1] : b == 0xda ? be16(p + 1) : be32(p + 1);
        break;
    case 0xdc:
    case 0xdd:
        o->type = SL_MP_ARRAY;
        o->n = b == 0xdc ? be16(p + 1) : be32(p + 1);
        break;
    default: /* 0xde, 0xdf */
        o->type = SL_MP_MAP;
        o->n = b == 0xde ? be16(p + 1) : be32(p + 1);
        break;
    }
    if (o->type != SL_MP_STR && o->type != SL_MP_BIN && o->type != SL_MP_EXT) {
        *used = hl;
        return HEAD_OK;
    }
    if (b >= 0xd4 && b <= 0xd8) {
        *used = hl;
        return HEAD_OK;
    }
payload:
    /* pl < 2^32 and hl <= 6, so the sum cannot overflow size_t on 64-bit hosts; on 32-bit ones
     * such a payload could not be present anyway, and avail < the true sum catches it */
    if (pl > avail - hl) {
        *used = pl > SIZE_MAX - hl ? SIZE_MAX : hl + (size_t)pl;
        return HEAD_SHORT;
    }
    o->p = p + hl;
    o->n = (uint32_t)pl;
    *used = hl + (size_t)pl;
    return HEAD_OK;
}

/* Values a header adds to the "still owed" count. */
static uint64_t owed(const struct sl_mp_obj *o)
{
    if (o->type == SL_MP_ARRAY) return o->n;
    if (o->type == SL_MP_MAP) return 2 * (uint64_t)o->n;
    return 0;
}

void sl_mp_reader_init(struct sl_mp_reader *r, const void *buf, size_t len)
{
    r->buf = buf;
    r->len = len;
    r->pos = 0;
    r->err = NULL;
}

int sl_mp_read(struct sl_mp_reader *r, struct sl_mp_obj *o)
{
    size_t avail = r->len - r->pos, used;
    if (avail == 0) {
        r->err = "truncated value";
        return -1;
    }
    int rc = head(r->buf + r->pos, avail, o, &used);
    if (rc == HEAD_BAD) {
        r->err = "invalid byte 0xc1";
        return -1;
    }
    if (rc == HEAD_SHORT) {
        r->err = "truncated value";
        return -1;
    }
    if (owed(o) > avail - used) {
        r->err = "container declares more elements than bytes present";
        return -1;
    }
    r->pos += used;
    return 0;
}

int sl_mp_skip(struct sl_mp_reader *r)
{
    size_t start = r->pos;
    uint64_t pending = 1;
    struct sl_mp_obj o;
    while (pending > 0) {
        if (sl_mp_read(r, &o) != 0) {
            r->pos = start;
            return -1;
        }
        pending = pending - 1 + owed(&o);
        /* each owed value needs a byte: fail now rather than after walking the rest */
        if (pending > r->len - r->pos) {
            r->err = "container declares more elements than bytes present";
            r->pos = start;
            return -1;
        }
    }
    return 0;
}

int sl_mp_check_one(const void *buf, size_t len, const char **err)
{
    struct sl_mp_reader r;
    sl_mp_reader_init(&r, buf, len);
    if (sl_mp_skip(&r) != 0) {
        if (err) *err = r.err;
        return -1;
    }
    if (r.pos != len) {
        if (err) *err = "trailing bytes after the value";
        return -1;
    }
    return 0;
}

/* ---- framer ---- */

void sl_mp_framer_reset(struct sl_mp_framer *f)
{
    f->pos = 0;
    f->pending = 1;
}

enum sl_mp_frame_status sl_mp_framer_scan(struct sl_mp_framer *f, const void *buf, size_t len,
                                          size_t max, size_t *n, const char **err)
{
    const uint8_t *p = buf;
    static const char *too_big = "frame exceeds the size limit";
    if (max > SIZE_MAX / 4) max = SIZE_MAX / 4;
    while (f->pending > 0) {
        /* every value still owed needs at least one byte */
        if (f->pending > max || f->pos > max - f->pending) {
            if (err) *err = too_big;
            return SL_MP_FRAME_ERROR;
        }
        if (f->pos >= len) {
            *n = f->pos + (size_t)f->pending;
            return SL_MP_FRAME_MORE;
        }
        struct sl_mp_obj o;
        size_t used;
        int rc = head(p + f->pos, len - f->pos, &o, &used);
        if (rc == HEAD_BAD) {
            if (err) *err = "invalid byte 0xc1";
            return SL_MP_FRAME_ERROR;
        }
        if (rc == HEAD_SHORT) {
            size_t rest = (size_t)f->pending - 1;
            if (used > max || f->pos > max - used || rest > max - f->pos - used) {
                if (err) *err = too_big;
                return SL_MP_FRAME_ERROR;
            }
            *n = f->pos + used + rest;
            return SL_MP_FRAME_MORE;
        }
        f->pos += used;
        f->pending = f->pending - 1 + owed(&o);
    }
    if (f->pos > max) {
        if (err) *err = too_big;
        return SL_MP_FRAME_ERROR;
    }
    *n = f->pos;
    return SL_MP_FRAME_DONE;
}

enum sl_mp_frame_status sl_mp_frame_len(const void *buf, size_t len, size_t max, size_t *n,
                                        const char **err)
{
    struct sl_mp_framer f;
    sl_mp_framer_reset(&f);
    return sl_mp_framer_scan(&f, buf, len, max, n, err);
}

/* ---- writer ---- */

void sl_mp_wbuf_init(struct sl_mp_wbuf *w, void *data, size_t cap)
{
    memset(w, 0, sizeof(*w));
    w->data = data;
    w->cap = data ? cap : 0;
}

uint8_t *sl_mp_w_reserve(struct sl_mp_wbuf *w, size_t n)
{
    if (w->overflow) return NULL;
    if (n > SIZE_MAX - w->len) {
        w->overflow = 1;
        return NULL;
    }
    if (w->len + n > w->cap) {
        if (!w->grow || w->grow(w, w->len + n) != 0 || w->cap < w->len + n) {
            w->overflow = 1;
            return NULL;
        }
    }
    return w->data + w->len;
}

void sl_mp_w_commit(struct sl_mp_wbuf *w, size_t n)
{
    w->len += n;
}

void sl_mp_w_raw(struct sl_mp_wbuf *w, const void *p, size_t n)
{
    uint8_t *d = sl_mp_w_reserve(w, n);
    if (d && n) memcpy(d, p, n);
    w->len += n;
}

static void put_be(uint8_t *d, uint64_t v, int bytes)
{
    for (int k = bytes - 1; k >= 0; k--) {
        d[k] = (uint8_t)v;
        v >>= 8;
    }
}

/* Writes tag byte + a big-endian number of `bytes` bytes. */
static void w_tagged(struct sl_mp_wbuf *w, uint8_t tag, uint64_t v, int bytes)
{
    uint8_t tmp[9];
    tmp[0] = tag;
    put_be(tmp + 1, v, bytes);
    sl_mp_w_raw(w, tmp, 1 + (size_t)bytes);
}

void sl_mp_w_nil(struct sl_mp_wbuf *w)
{
    uint8_t b = 0xc0;
    sl_mp_w_raw(w, &b, 1);
}

void sl_mp_w_bool(struct sl_mp_wbuf *w, int v)
{
    uint8_t b = v ? 0xc3 : 0xc2;
    sl_mp_w_raw(w, &b, 1);
}

void sl_mp_w_uint(struct sl_mp_wbuf *w, uint64_t u)
{
    if (u <= 0x7f) {
        uint8_t b = (uint8_t)u;
        sl_mp_w_raw(w, &b, 1);
    } else if (u <= 0xff) {
        w_tagged(w, 0xcc, u, 1);
    } else if (u <= 0xffff) {
        w_tagged(w, 0xcd, u, 2);
    } else if (u <= 0xffffffffu) {
        w_tagged(w, 0xce, u, 4);
    } else {
        w_tagged(w, 0xcf, u, 8);
    }
}

void sl_mp_w_int(struct sl_mp_wbuf *w, int64_t i)
{
    if (i >= 0) {
        sl_mp_w_uint(w, (uint64_t)i);
    } else if (i >= -32) {
        uint8_t b = (uint8_t)(int8_t)i;
        sl_mp_w_raw(w, &b, 1);
    } else if (i >= INT8_MIN) {
        w_tagged(w, 0xd0, (uint64_t)i, 1);
    } else if (i >= INT16_MIN) {
        w_tagged(w, 0xd1, (uint64_t)i, 2);
    } else if (i >= INT32_MIN) {
        w_tagged(w, 0xd2, (uint64_t)i, 4);
    } else {
        w_tagged(w, 0xd3, (uint64_t)i, 8);
    }
}

void sl_mp_w_double(struct sl_mp_wbuf *w, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    w_tagged(w, 0xcb, u, 8);
}

size_t sl_mp_str_hdr_len(size_t n)
{
    return n <= 31 ? 1 : n <= 0xff ? 2 : n <= 0xffff ? 3 : 5;
}

size_t sl_mp_bin_hdr_len(size_t n)
{
    return n <= 0xff ? 2 : n <= 0xffff ? 3 : 5;
}

void sl_mp_w_str(struct sl_mp_wbuf *w, const void *s, size_t n)
{
    if (n <= 31) {
        uint8_t b = (uint8_t)(0xa0 | n);
        sl_mp_w_raw(w, &b, 1);
    } else if (n <= 0xff) {
        w_tagged(w, 0xd9, n, 1);
    } else if (n <= 0xffff) {
        w_tagged(w, 0xda, n, 2);
    } else {
        w_tagged(w, 0xdb, n, 4);
    }
    sl_mp_w_raw(w, s, n);
}

void sl_mp_w_bin(struct sl_mp_wbuf *w, const void *s, size_t n)
{
    if (n <= 0xff)
        w_tagged(w, 0xc4, n, 1);
    else if (n <= 0xffff)
        w_tagged(w, 0xc5, n, 2);
    else
        w_tagged(w, 0xc6, n, 4);
    sl_mp_w_raw(w, s, n);
}

void sl_mp_w_array(struct sl_mp_wbuf *w, uint32_t n)
{
    if (n <= 15) {
        uint8_t b = (uint8_t)(0x90 | n);
        sl_mp_w_raw(w, &b, 1);
    } else if (n <= 0xffff) {
        w_tagged(w, 0xdc, n, 2);
    } else {
        w_tagged(w, 0xdd, n, 4);
    }
}

void sl_mp_w_map(struct sl_mp_wbuf *w, uint32_t n)
{
    if (n <= 15) {
        uint8_t b = (uint8_t)(0x80 | n);
        sl_mp_w_raw(w, &b, 1);
    } else if (n <= 0xffff) {
        w_tagged(w, 0xde, n, 2);
    } else {
        w_tagged(w, 0xdf, n, 4);
    }
}

void sl_mp_w_ext(struct sl_mp_wbuf *w, int8_t type, const void *p, uint32_t n)
{
    uint8_t tmp[6];
    size_t hl;
    switch (n) {
    case 1:
    case 2:
    case 4:
    case 8:
    case 16:
        tmp[0] = n == 1 ? 0xd4 : n == 2 ? 0xd5 : n == 4 ? 0xd6 : n == 8 ? 0xd7 : 0xd8;
        hl = 1;
        break;
    default:
        if (n <= 0xff) {
            tmp[0] = 0xc7;
            tmp[1] = (uint8_t)n;
            hl = 2;
        } else if (n <= 0xffff) {
            tmp[0] = 0xc8;
            put_be(tmp + 1, n, 2);
            hl = 3;
        } else {
            tmp[0] = 0xc9;
            put_be(tmp + 1, n, 4);
            hl = 5;
        }
    }
    tmp[hl++] = (uint8_t)type;
    sl_mp_w_raw(w, tmp, hl);
    sl_mp_w_raw(w, p, n);
}

void sl_mp_w_event_time(struct sl_mp_wbuf *w, int64_t ns)
{
    uint8_t tmp[10] = {0xd7, 0x00};
    put_be(tmp + 2, (uint64_t)(ns / 1000000000), 4);
    put_be(tmp + 6, (uint64_t)(ns % 1000000000), 4);
    sl_mp_w_raw(w, tmp, 10);
}

/* ---- base64 ---- */

size_t sl_mp_base64(const uint8_t *in, size_t len, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    return o;
}

/* ---- msgpack map -> JSON ---- */

/* JSON output with snprintf semantics, plus "quote levels": a non-string map key is rendered as
 * its JSON text inside a JSON string, so while such a key is being written every '"' and '\\' is
 * escaped once per enclosing non-string key. */
struct jout {
    char *out;
    size_t cap;
    size_t len;
    unsigned qlevel;
};

static void j_raw(struct jout *j, const char *s, size_t n)
{
    if (j->len < j->cap) memcpy(j->out + j->len, s, n <= j->cap - j->len ? n : j->cap - j->len);
    j->len += n;
}

static void j_char_q(struct jout *j, char c)
{
    if (j->qlevel && (c == '"' || c == '\\')) {
        /* after k levels: '\\' becomes 2^k backslashes, '"' becomes 2^k - 1 backslashes + '"' */
        size_t bs = ((size_t)1 << j->qlevel) - (c == '"' ? 1 : 0);
        for (size_t k = 0; k < bs; k++)
            j_raw(j, "\\", 1);
        if (c == '"') j_raw(j, "\"", 1);
        return;
    }
    j_raw(j, &c, 1);
}

/* Text that contains no '"' or '\\' unless it is JSON structure (quotes of strings we emit). */
static void j_text(struct jout *j, const char *s, size_t n)
{
    if (!j->qlevel) {
        j_raw(j, s, n);
        return;
    }
    for (size_t k = 0; k < n; k++)
        j_char_q(j, s[k]);
}

static void j_string(struct jout *j, const uint8_t *s, size_t n)
{
    j_text(j, "\"", 1);
    if (!j->qlevel) {
        if (j->len <= j->cap && n <= (j->cap - j->len) / 6) {
            /* room for the worst case: one pass */
            j->len += sl_json_escape((const char *)s, n, j->out + j->len);
            j_text(j, "\"", 1);
            return;
        }
        size_t el = sl__json_escaped_len((const char *)s, n);
        if (j->len <= j->cap && el <= j->cap - j->len)
            sl_json_escape((const char *)s, n, j->out + j->len);
        j->len += el;
    } else {
        /* cut only before bytes that start a UTF-8 sequence, so validation sees whole sequences */
        char tmp[6 * 300];
        size_t i = 0;
        while (i < n) {
            size_t e = i + 256 < n ? i + 256 : n;
            while (e < n && e - i < 300 && (s[e] & 0xc0) == 0x80)
                e++;
            size_t m = sl_json_escape((const char *)s + i, e - i, tmp);
            j_text(j, tmp, m);
            i = e;
        }
    }
    j_text(j, "\"", 1);
}

static void j_base64(struct jout *j, const uint8_t *s, size_t n)
{
    char tmp[4 * 64];
    j_text(j, "\"", 1);
    for (size_t i = 0; i < n; i += 192) {
        size_t m = n - i < 192 ? n - i : 192;
        j_raw(j, tmp, sl_mp_base64(s + i, m, tmp));
    }
    j_text(j, "\"", 1);
}

/* Decimal digits of u at the end of tmp[0..24); returns where they start. snprintf was 4% of the
 * Forward row's profile (a sequence number or status code in most records). */
static char *u64_dec(uint64_t u, char *end)
{
    char *p = end;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    return p;
}

static void j_scalar(struct jout *j, const struct sl_mp_obj *o)
{
    char tmp[40];
    int n;
    switch (o->type) {
    case SL_MP_NIL:
        j_raw(j, "null", 4);
        break;
    case SL_MP_BOOL:
        if (o->v.b)
            j_raw(j, "true", 4);
        else
            j_raw(j, "false", 5);
        break;
    case SL_MP_UINT: {
        char *p = u64_dec(o->v.u, tmp + sizeof tmp);
        j_raw(j, p, (size_t)(tmp + sizeof tmp - p));
        break;
    }
    case SL_MP_INT: {
        /* negative: the magnitude as unsigned, so INT64_MIN has one too */
        uint64_t m = o->v.i < 0 ? 0 - (uint64_t)o->v.i : (uint64_t)o->v.i;
        char *p = u64_dec(m, tmp + sizeof tmp);
        if (o->v.i < 0) *--p = '-';
        j_raw(j, p, (size_t)(tmp + sizeof tmp - p));
        break;
    }
    case SL_MP_FLOAT:
        if (!isfinite(o->v.f)) {
            j_raw(j, "null", 4);
            break;
        }
        n = snprintf(tmp, sizeof(tmp), o->is_f32 ? "%.9g" : "%.17g", o->v.f);
        j_raw(j, tmp, (size_t)n);
        break;
    case SL_MP_STR:
        j_string(j, o->p, o->n);
        break;
    case SL_MP_BIN:
        j_base64(j, o->p, o->n);
        break;
    case SL_MP_EXT:
        if (o->ext_type == 0 && o->n == 8 && be32(o->p + 4) < 1000000000u) {
            char ts[32];
            int64_t ns = (int64_t)be32(o->p) * 1000000000 + be32(o->p + 4);
            size_t tl = sl_time_format_rfc3339(ns, ts);
            j_text(j, "\"", 1);
            j_raw(j, ts, tl);
            j_text(j, "\"", 1);
        } else {
            j_base64(j, o->p, o->n);
        }
        break;
    default:
        break;
    }
}

struct jframe {
    uint64_t total; /* values in this container (a map counts keys and values) */
    uint64_t left;  /* values still to write */
    uint8_t is_map;
    uint8_t key_quote; /* this container is itself a non-string key: close the quote after it */
    uint8_t paths;     /* scan paths whose components so far lead into this map */
    uint8_t captures;  /* scan paths whose value this container is */
    size_t cap_start;  /* where it starts in the output */
};

/* Component idx (0-based) of a dotted path; 0 when the path has fewer components. */
static int path_component(const char *path, size_t idx, const char **c, size_t *cl)
{
    const char *s = path;
    for (size_t i = 0; i < idx; i++) {
        s = strchr(s, '.');
        if (!s) return 0;
        s++;
    }
    const char *dot = strchr(s, '.');
    *c = s;
    *cl = dot ? (size_t)(dot - s) : strlen(s);
    return dot ? 2 : 1; /* 1: the last component */
}

/* The key just written (out[kstart..len), quotes included) at map depth `depth` (1 = the record)
 * against the paths still open there: sets the paths this key's value completes (*cap) and the
 * ones it leads into if it is a map (*desc). The key is compared as written to the JSON, so the
 * result is what sl_json_scan_object finds in the output. */
static void paths_on_key(const struct sl_json_scan *s, const struct jout *j, size_t kstart,
                         size_t depth, uint8_t open, uint8_t *cap, uint8_t *desc)
{
    *cap = *desc = 0;
    if (!open || j->len > j->cap || j->len - kstart < 2) return;
    const char *key = j->out + kstart + 1;
    size_t kl = j->len - kstart - 2;
    for (size_t k = 0; k < s->n_paths; k++) {
        const char *c;
        size_t cl;
        int r;
        if (!(open >> k & 1) || !(r = path_component(s->paths[k], depth - 1, &c, &cl))) continue;
        if (cl != kl || memcmp(c, key, kl) != 0) continue;
        if (r == 1)
            *cap |= (uint8_t)(1u << k);
        else
            *desc |= (uint8_t)(1u << k);
    }
}

ssize_t sl_mp_to_json(const void *map, size_t len, char *out, size_t cap, const char **err)
{
    return sl_mp_to_json_scan(map, len, out, cap, err, NULL);
}

ssize_t sl_mp_to_json_scan(const void *map, size_t len, char *out, size_t cap, const char **err,
                           struct sl_json_scan *scan)
{
    struct sl_mp_reader r;
    struct sl_mp_obj o;
    struct jframe st[SL_MP_MAX_DEPTH];
    struct jout j = {out, cap, 0, 0};
    size_t depth = 0;
    const char *e = NULL;
    /* path capture: `done` paths found (the first value reachable wins, as in the JSON scan);
     * pend_* apply to the value after the key just written */
    size_t voff[SL_JSON_MAX_PATHS], vlen[SL_JSON_MAX_PATHS];
    uint8_t all = 0, done = 0, pend_cap = 0, pend_desc = 0;
    if (scan) {
        if (scan->n_paths > SL_JSON_MAX_PATHS) scan->n_paths = SL_JSON_MAX_PATHS;
        for (size_t k = 0; k < scan->n_paths; k++)
            if (scan->paths[k] && scan->paths[k][0]) all |= (uint8_t)(1u << k);
        scan->has_raw_newline = 0;
    }

    sl_mp_reader_init(&r, map, len);
    if (sl_mp_read(&r, &o) != 0) {
        e = r.err;
        goto fail;
    }
    if (o.type != SL_MP_MAP) {
        e = "not a map";
        goto fail;
    }
    j_raw(&j, "{", 1);
    st[depth++] = (struct jframe){2 * (uint64_t)o.n, 2 * (uint64_t)o.n, 1, 0, all, 0, 0};

    while (depth > 0) {
        struct jframe *f = &st[depth - 1];
        if (f->left == 0) {
            int kq = f->key_quote;
            j_text(&j, f->is_map ? "}" : "]", 1);
            for (size_t k = 0; f->captures && k < SL_JSON_MAX_PATHS; k++)
                if (f->captures >> k & 1) vlen[k] = j.len - f->cap_start;
            depth--;
            if (kq) {
                j.qlevel--;
                j_text(&j, "\":", 2);
            }
            continue;
        }
        uint64_t idx = f->total - f->left;
        f->left--;
        int is_key = f->is_map && idx % 2 == 0;
        if (idx > 0 && (!f->is_map || is_key)) j_text(&j, ",", 1);
        if (sl_mp_read(&r, &o) != 0) {
            e = r.err;
            goto fail;
        }
        int quote_key = is_key && o.type != SL_MP_STR;
        /* the value of a matched key: capture it, or descend into it if it is a map */
        uint8_t vcap = 0, vdesc = 0;
        size_t vstart = j.len;
        if (!is_key && f->is_map) {
            vcap = pend_cap;
            vdesc = o.type == SL_MP_MAP ? pend_desc : 0;
            pend_cap = pend_desc = 0;
            done |= vcap;
            for (size_t k = 0; vcap && k < SL_JSON_MAX_PATHS; k++)
                if (vcap >> k & 1) voff[k] = vstart;
        }
        if (quote_key) {
            if (j.qlevel >= 3) {
                e = "non-string map keys nested too deep";
                goto fail;
            }
            j_text(&j, "\"", 1);
            j.qlevel++;
        }
        if (o.type == SL_MP_ARRAY || o.type == SL_MP_MAP) {
            if (depth == SL_MP_MAX_DEPTH) {
                e = "nesting too deep";
                goto fail;
            }
            uint64_t n = o.type == SL_MP_MAP ? 2 * (uint64_t)o.n : o.n;
            j_text(&j, o.type == SL_MP_MAP ? "{" : "[", 1);
            st[depth++] =
                (struct jframe){n, n, o.type == SL_MP_MAP, (uint8_t)quote_key, vdesc, vcap, vstart};
            continue;
        }
        j_scalar(&j, &o);
        for (size_t k = 0; vcap && k < SL_JSON_MAX_PATHS; k++)
            if (vcap >> k & 1) vlen[k] = j.len - vstart;
        if (quote_key) {
            j.qlevel--;
            j_text(&j, "\"", 1);
        }
        if (is_key && !quote_key && j.qlevel == 0)
            paths_on_key(scan, &j, vstart, depth, (uint8_t)(f->paths & ~done), &pend_cap,
                         &pend_desc);
        if (is_key) j_text(&j, ":", 1);
    }
    if (r.pos != len) {
        e = "trailing bytes after the map";
        goto fail;
    }
    for (size_t k = 0; scan && k < scan->n_paths; k++) {
        bool found = (done >> k & 1) && j.len <= cap;
        scan->val[k] = found ? out + voff[k] : NULL;
        scan->vlen[k] = found ? vlen[k] : 0;
    }
    return (ssize_t)j.len;
fail:
    if (err) *err = e;
    return -1;
}
