/* JSON object -> msgpack map. See json_mp.h for the contract. */
#include "codec/json_mp.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"

/* Longest number text converted with strtod: far beyond any double's significant digits, and it
 * keeps the copy on the stack. */
#define NUM_MAX 512

struct level {
    size_t hdr; /* offset of the 5-byte placeholder header in out */
    uint32_t n; /* members (pairs for a map) so far */
    bool is_map;
};

struct ctx {
    const char *s;
    size_t len, i;
    struct sl_mp_wbuf *out;
    const char *err;
    size_t err_at;
};

static int fail(struct ctx *c, const char *msg)
{
    c->err = msg;
    c->err_at = c->i;
    return -1;
}

static void skip_ws(struct ctx *c)
{
    while (c->i < c->len &&
           (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' || c->s[c->i] == '\r'))
        c->i++;
}

/* Writes the smallest header of a str of n bytes at p; returns its length. */
static size_t str_hdr(uint8_t *p, size_t n)
{
    if (n < 32) {
        p[0] = (uint8_t)(0xa0 | n);
        return 1;
    }
    if (n < 256) {
        p[0] = 0xd9;
        p[1] = (uint8_t)n;
        return 2;
    }
    if (n < 65536) {
        p[0] = 0xda;
        p[1] = (uint8_t)(n >> 8);
        p[2] = (uint8_t)n;
        return 3;
    }
    p[0] = 0xdb;
    p[1] = (uint8_t)(n >> 24);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
    return 5;
}

/* Writes the smallest map/array header for n elements at p; returns its length. */
static size_t container_hdr(uint8_t *p, bool is_map, uint32_t n)
{
    if (n < 16) {
        p[0] = (uint8_t)((is_map ? 0x80 : 0x90) | n);
        return 1;
    }
    if (n < 65536) {
        p[0] = is_map ? 0xde : 0xdc;
        p[1] = (uint8_t)(n >> 8);
        p[2] = (uint8_t)n;
        return 3;
    }
    p[0] = is_map ? 0xdf : 0xdd;
    p[1] = (uint8_t)(n >> 24);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
    return 5;
}

/* The string token starting at c->i (a '"'). */
static int put_string(struct ctx *c)
{
    size_t start = c->i;
    size_t j = start + 1;
    bool esc = false;
    while (j < c->len && c->s[j] != '"') {
        unsigned char ch = (unsigned char)c->s[j];
        if (ch < 0x20) {
            c->i = j;
            return fail(c, "control character in a string");
        }
        if (ch == '\\') {
            esc = true;
            j++;
        }
        j++;
    }
    if (j >= c->len) return fail(c, "unterminated string");
    size_t raw = j - start - 1;
    c->i = j + 1;
    if (raw > UINT32_MAX) return fail(c, "string too long");
    if (!esc) {
        sl_mp_w_str(c->out, c->s + start + 1, raw);
        return c->out->overflow ? fail(c, "output buffer full") : 0;
    }
    /* Unescaping never lengthens a string (\uXXXX is 6 bytes for at most 3 of UTF-8, a pair 12
     * for 4), so raw bytes after a 5-byte gap are room enough; the header goes in front and the
     * text moves down if the header is shorter. */
    uint8_t *p = sl_mp_w_reserve(c->out, 5 + raw);
    if (!p) return fail(c, "output buffer full");
    ssize_t u = sl_json_unescape(c->s + start, raw + 2, (char *)p + 5, raw);
    if (u < 0) {
        c->i = start;
        return fail(c, "invalid escape in a string");
    }
    size_t hl = str_hdr(p, (size_t)u);
    memmove(p + hl, p + 5, (size_t)u);
    sl_mp_w_commit(c->out, hl + (size_t)u);
    return 0;
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static int put_number(struct ctx *c)
{
    size_t start = c->i, j = c->i;
    bool neg = false, real = false;
    if (j < c->len && c->s[j] == '-') {
        neg = true;
        j++;
    }
    if (j >= c->len || !is_digit(c->s[j])) {
        c->i = j;
        return fail(c, "invalid number");
    }
    if (c->s[j] == '0') {
        j++;
        if (j < c->len && is_digit(c->s[j])) {
            c->i = j;
            return fail(c, "leading zero in a number");
        }
    } else {
        while (j < c->len && is_digit(c->s[j]))
            j++;
    }
    if (j < c->len && c->s[j] == '.') {
        real = true;
        j++;
        if (j >= c->len || !is_digit(c->s[j])) {
            c->i = j;
            return fail(c, "invalid number");
        }
        while (j < c->len && is_digit(c->s[j]))
            j++;
    }
    if (j < c->len && (c->s[j] == 'e' || c->s[j] == 'E')) {
        real = true;
        j++;
        if (j < c->len && (c->s[j] == '+' || c->s[j] == '-')) j++;
        if (j >= c->len || !is_digit(c->s[j])) {
            c->i = j;
            return fail(c, "invalid number");
        }
        while (j < c->len && is_digit(c->s[j]))
            j++;
    }
    c->i = j;
    if (!real) {
        /* Integers stay exact whenever they fit; only bigger ones fall back to a double. */
        uint64_t v = 0;
        bool fits = true;
        for (size_t k = start + neg; k < j; k++) {
            unsigned d = (unsigned)(c->s[k] - '0');
            if (v > (UINT64_MAX - d) / 10) {
                fits = false;
                break;
            }
            v = v * 10 + d;
        }
        if (fits && !neg) {
            sl_mp_w_uint(c->out, v);
            return c->out->overflow ? fail(c, "output buffer full") : 0;
        }
        if (fits && v <= (uint64_t)INT64_MAX + 1) {
            sl_mp_w_int(c->out, v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v);
            return c->out->overflow ? fail(c, "output buffer full") : 0;
        }
    }
    char buf[NUM_MAX + 1];
    if (j - start > NUM_MAX) {
        c->i = start;
        return fail(c, "number too long");
    }
    memcpy(buf, c->s + start, j - start);
    buf[j - start] = '\0';
    /* JSON numbers are locale-independent; strtod uses the C locale unless the program changed
     * it, which sluice never does. Overflow gives +-HUGE_VAL (inf), still a valid float64. */
    double d = strtod(buf, NULL);
    sl_mp_w_double(c->out, d);
    return c->out->overflow ? fail(c, "output buffer full") : 0;
}

static int put_literal(struct ctx *c)
{
    static const struct {
        const char *word;
        size_t n;
    } lits[] = {{"true", 4}, {"false", 5}, {"null", 4}};
    for (int k = 0; k < 3; k++) {
        if (c->len - c->i >= lits[k].n && memcmp(c->s + c->i, lits[k].word, lits[k].n) == 0) {
            c->i += lits[k].n;
            if (k == 2)
                sl_mp_w_nil(c->out);
            else
                sl_mp_w_bool(c->out, k == 0);
            return c->out->overflow ? fail(c, "output buffer full") : 0;
        }
    }
    return fail(c, "unexpected character");
}

static int open_level(struct ctx *c, struct level *lv, bool is_map)
{
    static const uint8_t placeholder[5] = {0xdf, 0, 0, 0, 0};
    lv->hdr = c->out->len;
    lv->n = 0;
    lv->is_map = is_map;
    sl_mp_w_raw(c->out, placeholder, 5);
    return c->out->overflow ? fail(c, "output buffer full") : 0;
}

static void close_level(struct ctx *c, const struct level *lv, uint32_t extra)
{
    uint8_t *base = c->out->data + lv->hdr;
    uint8_t hdr[5];
    size_t hl = container_hdr(hdr, lv->is_map, lv->n + extra);
    size_t body = c->out->len - lv->hdr - 5;
    memmove(base + hl, base + 5, body);
    memcpy(base, hdr, hl);
    c->out->len -= 5 - hl;
}

int sl_json_to_mp(const char *json, size_t len, struct sl_mp_wbuf *out, uint32_t extra_pairs,
                  const char **err, size_t *err_offset)
{
    struct ctx c = {.s = json, .len = len, .out = out};
    struct level st[SL_JSON_MP_MAX_DEPTH];
    size_t depth = 0;
    size_t start_len = out->len;
    bool first = true; /* right after an opening bracket */
    int rc = 0;

    if (out->overflow) {
        rc = fail(&c, "output buffer full");
        goto done;
    }
    skip_ws(&c);
    if (c.i >= len || json[c.i] != '{') {
        rc = fail(&c, "not a JSON object");
        goto done;
    }
    c.i++;
    if ((rc = open_level(&c, &st[depth++], true)) != 0) goto done;
    for (;;) {
        struct level *lv = &st[depth - 1];
        char close = lv->is_map ? '}' : ']';
        skip_ws(&c);
        if (c.i >= len) {
            rc = fail(&c, "truncated JSON");
            goto done;
        }
        /* A closing bracket is valid right after the opening one or after a value; after a
         * comma the loop does not come back here, so "[1,]" fails as a missing value. */
        if (json[c.i] == close) {
            c.i++;
            close_level(&c, lv, depth == 1 ? extra_pairs : 0);
            depth--;
            if (depth == 0) break;
            first = false;
            continue;
        }
        if (!first) {
            if (json[c.i] != ',') {
                rc = fail(&c, lv->is_map ? "expected ',' or '}'" : "expected ',' or ']'");
                goto done;
            }
            c.i++;
            skip_ws(&c);
            if (c.i >= len) {
                rc = fail(&c, "truncated JSON");
                goto done;
            }
        }
        first = false;
        if (lv->is_map) {
            if (json[c.i] != '"') {
                rc = fail(&c, "expected a string key");
                goto done;
            }
            if ((rc = put_string(&c)) != 0) goto done;
            skip_ws(&c);
            if (c.i >= len || json[c.i] != ':') {
                rc = fail(&c, "expected ':'");
                goto done;
            }
            c.i++;
            skip_ws(&c);
            if (c.i >= len) {
                rc = fail(&c, "truncated JSON");
                goto done;
            }
        }
        if (lv->n == UINT32_MAX) {
            rc = fail(&c, "too many members");
            goto done;
        }
        lv->n++;
        char ch = json[c.i];
        if (ch == '{' || ch == '[') {
            if (depth == SL_JSON_MP_MAX_DEPTH) {
                rc = fail(&c, "nesting deeper than 64");
                goto done;
            }
            c.i++;
            if ((rc = open_level(&c, &st[depth++], ch == '{')) != 0) goto done;
            first = true;
        } else if (ch == '"') {
            if ((rc = put_string(&c)) != 0) goto done;
        } else if (ch == '-' || is_digit(ch)) {
            if ((rc = put_number(&c)) != 0) goto done;
        } else {
            if ((rc = put_literal(&c)) != 0) goto done;
        }
    }
    skip_ws(&c);
    if (c.i != len) rc = fail(&c, "trailing characters after the object");
done:
    if (rc != 0) {
        out->len = start_len;
        /* A grow failure stays recorded in the buffer; any other error leaves it usable. */
        if (err) *err = c.err;
        if (err_offset) *err_offset = c.err_at;
    }
    return rc;
}
