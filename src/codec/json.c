/* JSON scanning for the pass-through path.
 *
 * Overview. sl_json_scan_object is run once on every Kafka payload, so it is written as one
 * iterative state machine over the bytes: containers are tracked in a bit-stack (1 = object,
 * 0 = array) instead of recursion, so a hostile payload of a million '[' costs an error, not the
 * stack. Strings are the bulk of a log line; their plain-ASCII runs are skipped eight bytes at a
 * time (SWAR), and only '"', '\\', control bytes and non-ASCII bytes take the slow path.
 *
 * Path lookup rides along the same pass. Each requested path keeps:
 *   pos   - where its next dotted component starts,
 *   depth - the container depth whose keys are compared with that component (0 once done).
 * A key matching a middle component marks the path "pending"; if the value then opens an object,
 * the path descends into it; when that object closes without a hit the path climbs back, so a
 * later duplicate key could still match (the first value reachable wins). A key matching the last
 * component starts a capture that ends when the value at that depth ends.
 *
 * Non-goals: no DOM, no number conversion, no duplicate-key detection, no normalisation.
 */
#include "codec/json.h"

#include <string.h>

#include "codec/json_internal.h"

#define NS_PER_S 1000000000LL

static int fail(struct sl__json_err *e, size_t off, size_t len, const char *msg)
{
    /* Every failure at the end of the buffer has the same cause for the caller: truncation. */
    e->off = off;
    e->msg = off >= len ? "unexpected end of input" : msg;
    return -1;
}

static inline int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline size_t skip_ws_nl(const char *buf, size_t len, size_t i, int *nl)
{
    while (i < len) {
        unsigned char c = (unsigned char)buf[i];
        if (c == ' ' || c == '\t') {
            i++;
        } else if (c == '\n' || c == '\r') {
            *nl = 1;
            i++;
        } else {
            break;
        }
    }
    return i;
}

size_t sl__json_skip_ws(const char *buf, size_t len, size_t i)
{
    int nl = 0;
    return skip_ws_nl(buf, len, i, &nl);
}

/* Flags (bit 7 of each byte) the bytes of w that are < 0x20, '"', '\\' or >= 0x80. A sub-test can
 * only misfire in bytes above a true hit (borrows run upwards), so "any flag" is exact and so is
 * the lowest flag. */
static inline uint64_t special_mask(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL;
    const uint64_t highs = 0x8080808080808080ULL;
    uint64_t ctrl = (w - ones * 0x20) & ~w;
    uint64_t q = w ^ (ones * '"');
    uint64_t b = w ^ (ones * '\\');
    q = (q - ones) & ~q;
    b = (b - ones) & ~b;
    return (ctrl | q | b | w) & highs;
}

/* Length (2..4) of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), or 0 with *bad = index of the first byte that breaks it. */
static size_t utf8_len(const unsigned char *p, size_t avail, size_t *bad)
{
    unsigned c = p[0];
    unsigned lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong below U+0800 */
        else if (c == 0xED)
            hi = 0x9F; /* U+D800..U+DFFF are surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        *bad = 0;
        return 0;
    }
    for (size_t k = 1; k < n; k++) {
        if (k >= avail || p[k] < lo || p[k] > hi) {
            *bad = k;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return n;
}

static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits at buf[i..i+4). Returns the code unit, or -1 with *bad at the first
 * byte that is not a hex digit (len if the input ends). */
static long hex4(const char *buf, size_t len, size_t i, size_t *bad)
{
    long v = 0;
    for (size_t k = 0; k < 4; k++) {
        int h = i + k < len ? hex_val((unsigned char)buf[i + k]) : -1;
        if (h < 0) {
            *bad = i + k;
            return -1;
        }
        v = v * 16 + h;
    }
    return v;
}

/* Validates the escape at buf[i] == '\\'; returns the index after it. */
static int scan_escape(const char *buf, size_t len, size_t i, size_t *next, struct sl__json_err *e)
{
    size_t bad;
    if (i + 1 >= len) return fail(e, len, len, "");
    switch (buf[i + 1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        *next = i + 2;
        return 0;
    case 'u':
        break;
    default:
        return fail(e, i + 1, len, "invalid escape");
    }
    long cu = hex4(buf, len, i + 2, &bad);
    if (cu < 0) return fail(e, bad, len, "invalid \\u escape");
    if (cu >= 0xDC00 && cu <= 0xDFFF) return fail(e, i, len, "unpaired surrogate in \\u escape");
    if (cu < 0xD800 || cu > 0xDBFF) {
        *next = i + 6;
        return 0;
    }
    /* A high surrogate is only meaningful followed by a low one. */
    size_t j = i + 6;
    if (j >= len || buf[j] != '\\' || j + 1 >= len || buf[j + 1] != 'u')
        return fail(e, j + (j < len && buf[j] == '\\'), len, "unpaired surrogate in \\u escape");
    long lo = hex4(buf, len, j + 2, &bad);
    if (lo < 0) return fail(e, bad, len, "invalid \\u escape");
    if (lo < 0xDC00 || lo > 0xDFFF) return fail(e, j, len, "unpaired surrogate in \\u escape");
    *next = j + 6;
    return 0;
}

int sl__json_string_end(const char *buf, size_t len, size_t i, size_t *end, struct sl__json_err *e)
{
    if (i >= len || buf[i] != '"') return fail(e, i, len, "expected string");
    i++;
    for (;;) {
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, buf + i, 8);
            uint64_t m = special_mask(w);
            if (m) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                i += (size_t)__builtin_ctzll(m) / 8;
#endif
                break;
            }
            i += 8;
        }
        if (i >= len) return fail(e, len, len, "");
        unsigned char c = (unsigned char)buf[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
        } else if (c == '"') {
            *end = i + 1;
            return 0;
        } else if (c == '\\') {
            if (scan_escape(buf, len, i, &i, e) < 0) return -1;
        } else if (c < 0x20) {
            return fail(e, i, len, "control character in string");
        } else {
            size_t bad;
            size_t n = utf8_len((const unsigned char *)buf + i, len - i, &bad);
            if (n == 0) return fail(e, i + bad, len, "invalid UTF-8 in string");
            i += n;
        }
    }
}

static int scan_number(const char *buf, size_t len, size_t i, size_t *end, struct sl__json_err *e)
{
    if (buf[i] == '-') i++;
    if (i >= len) return fail(e, len, len, "");
    if (buf[i] == '0') {
        i++;
        if (i < len && is_digit((unsigned char)buf[i]))
            return fail(e, i, len, "invalid number (leading zero)");
    } else if (buf[i] >= '1' && buf[i] <= '9') {
        while (i < len && is_digit((unsigned char)buf[i]))
            i++;
    } else {
        return fail(e, i, len, "invalid number");
    }
    if (i < len && buf[i] == '.') {
        i++;
        if (i >= len || !is_digit((unsigned char)buf[i])) return fail(e, i, len, "invalid number");
        while (i < len && is_digit((unsigned char)buf[i]))
            i++;
    }
    if (i < len && (buf[i] == 'e' || buf[i] == 'E')) {
        i++;
        if (i < len && (buf[i] == '+' || buf[i] == '-')) i++;
        if (i >= len || !is_digit((unsigned char)buf[i])) return fail(e, i, len, "invalid number");
        while (i < len && is_digit((unsigned char)buf[i]))
            i++;
    }
    *end = i;
    return 0;
}

static int scan_literal(const char *buf, size_t len, size_t i, const char *lit, size_t *end,
                        struct sl__json_err *e)
{
    for (size_t k = 0; lit[k]; k++) {
        if (i + k >= len || buf[i + k] != lit[k]) return fail(e, i + k, len, "invalid literal");
    }
    *end = i + strlen(lit);
    return 0;
}

/* Scalar value at buf[i] (string, number, literal); containers are handled by the caller. */
static int scan_scalar(const char *buf, size_t len, size_t i, size_t *end, struct sl__json_err *e)
{
    switch (buf[i]) {
    case '"':
        return sl__json_string_end(buf, len, i, end, e);
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return scan_number(buf, len, i, end, e);
    case 't':
        return scan_literal(buf, len, i, "true", end, e);
    case 'f':
        return scan_literal(buf, len, i, "false", end, e);
    case 'n':
        return scan_literal(buf, len, i, "null", end, e);
    default:
        return fail(e, i, len, "unexpected character");
    }
}

/* ---- path tracking (see the overview) ---- */

struct path_state {
    const char *path;
    size_t plen;
    size_t pos;  /* start of the component to match next */
    size_t clen; /* its length */
    size_t depth;
    int pending;
    int capturing;
};

/* The counters let the state machine skip the per-path loops in the common case: most keys come
 * after every path was found or at depths no path is waiting at. */
struct paths {
    struct path_state p[SL_JSON_MAX_PATHS];
    size_t n;
    size_t n_live; /* not yet found */
    size_t n_pending;
    size_t n_capturing;
    struct sl_json_scan *out;
};

static void set_component(struct path_state *p, size_t pos)
{
    const char *dot = memchr(p->path + pos, '.', p->plen - pos);
    p->pos = pos;
    p->clen = dot ? (size_t)(dot - (p->path + pos)) : p->plen - pos;
}

/* Keys are compared as raw bytes between the quotes: a key spelled with escapes ("\u0074ime") does
 * not match the path "time". Producers of log lines do not escape plain ASCII key names, and
 * decoding every key would cost the hot path. */
static void paths_on_key(struct paths *ps, const char *key, size_t klen, size_t depth,
                         const char *value)
{
    for (size_t k = 0; k < ps->n; k++) {
        struct path_state *p = &ps->p[k];
        if (p->depth != depth || p->capturing || p->clen != klen) continue;
        if (memcmp(p->path + p->pos, key, klen) != 0) continue;
        if (p->pos + p->clen == p->plen) {
            p->capturing = 1;
            ps->n_capturing++;
            ps->out->val[k] = value;
        } else {
            p->pending = 1;
            ps->n_pending++;
        }
    }
}

static void paths_on_value_start(struct paths *ps, int opens_object, size_t new_depth)
{
    for (size_t k = 0; k < ps->n; k++) {
        struct path_state *p = &ps->p[k];
        if (!p->pending) continue;
        p->pending = 0;
        if (opens_object) {
            set_component(p, p->pos + p->clen + 1);
            p->depth = new_depth;
        }
    }
    ps->n_pending = 0;
}

static void paths_on_object_close(struct paths *ps, size_t closed_depth)
{
    for (size_t k = 0; k < ps->n; k++) {
        struct path_state *p = &ps->p[k];
        if (p->depth != closed_depth || p->capturing || closed_depth < 2) continue;
        /* Climb back: pos - 1 is the dot ending the parent component. */
        size_t start = p->pos - 1;
        while (start > 0 && p->path[start - 1] != '.')
            start--;
        set_component(p, start);
        p->depth = closed_depth - 1;
    }
}

static void paths_on_value_end(struct paths *ps, size_t depth, const char *end)
{
    for (size_t k = 0; k < ps->n; k++) {
        struct path_state *p = &ps->p[k];
        if (p->capturing && p->depth == depth) {
            ps->out->vlen[k] = (size_t)(end - ps->out->val[k]);
            p->capturing = 0;
            p->depth = 0;
            ps->n_capturing--;
            ps->n_live--;
        }
    }
}

/* ---- the state machine ---- */

#define STACK_WORDS (SL_JSON_MAX_DEPTH / 64)

static int scan_value(const char *buf, size_t len, size_t i, size_t *endp, struct paths *ps,
                      int *nl, struct sl__json_err *e)
{
    uint64_t stack[STACK_WORDS] = {0}; /* 128 bytes; every bit is written before it is read */
    size_t depth = 0;
    size_t end;
    unsigned char c;

    for (;;) {
        /* i is at the first byte of a value */
        if (i >= len) return fail(e, len, len, "");
        c = (unsigned char)buf[i];
        if (c == '{' || c == '[') {
            if (depth == SL_JSON_MAX_DEPTH) return fail(e, i, len, "nesting too deep");
            uint64_t bit = 1ULL << (depth % 64);
            if (c == '{')
                stack[depth / 64] |= bit;
            else
                stack[depth / 64] &= ~bit;
            depth++;
            if (ps && ps->n_pending) paths_on_value_start(ps, c == '{', depth);
            i = skip_ws_nl(buf, len, i + 1, nl);
            if (i < len && buf[i] == (c == '{' ? '}' : ']')) goto close;
            if (c == '[') continue;
            goto key;
        }
        if (ps && ps->n_pending) paths_on_value_start(ps, 0, depth);
        if (scan_scalar(buf, len, i, &end, e) < 0) return -1;
        i = end;
        goto after_value;

    key:
        if (i >= len || buf[i] != '"') return fail(e, i, len, "expected string key");
        {
            size_t ks = i + 1;
            if (sl__json_string_end(buf, len, i, &end, e) < 0) return -1;
            size_t klen = end - 1 - ks;
            i = skip_ws_nl(buf, len, end, nl);
            if (i >= len || buf[i] != ':') return fail(e, i, len, "expected ':'");
            i = skip_ws_nl(buf, len, i + 1, nl);
            if (ps && ps->n_live) paths_on_key(ps, buf + ks, klen, depth, buf + i);
        }
        continue;

    close:
        /* buf[i] closes the innermost container */
        if (ps && ps->n_live && (stack[(depth - 1) / 64] >> ((depth - 1) % 64) & 1))
            paths_on_object_close(ps, depth);
        depth--;
        i++;

    after_value:
        if (ps && ps->n_capturing) paths_on_value_end(ps, depth, buf + i);
        if (depth == 0) {
            *endp = i;
            return 0;
        }
        i = skip_ws_nl(buf, len, i, nl);
        if (i >= len) return fail(e, len, len, "");
        c = (unsigned char)buf[i];
        if (stack[(depth - 1) / 64] >> ((depth - 1) % 64) & 1) {
            if (c == ',') {
                i = skip_ws_nl(buf, len, i + 1, nl);
                goto key;
            }
            if (c == '}') goto close;
            return fail(e, i, len, "expected ',' or '}'");
        }
        if (c == ',') {
            i = skip_ws_nl(buf, len, i + 1, nl);
            continue;
        }
        if (c == ']') goto close;
        return fail(e, i, len, "expected ',' or ']'");
    }
}

int sl__json_value_end(const char *buf, size_t len, size_t i, size_t *end, struct sl__json_err *e)
{
    int nl = 0;
    return scan_value(buf, len, i, end, NULL, &nl, e);
}

int sl_json_scan_object(const char *buf, size_t len, struct sl_json_scan *s)
{
    struct paths ps;
    struct sl__json_err e = {0, NULL};
    size_t i, end;
    int nl = 0;

    ps.n = ps.n_live = ps.n_pending = ps.n_capturing = 0;
    ps.out = s;
    for (size_t k = 0; k < SL_JSON_MAX_PATHS; k++) {
        s->val[k] = NULL;
        s->vlen[k] = 0;
        /* Unused slots keep depth 0, which no key is ever read at. */
        ps.p[k] = (struct path_state){.path = "", .plen = 0, .pos = 0, .depth = 0};
        if (k < s->n_paths && s->paths[k]) {
            ps.p[k].path = s->paths[k];
            ps.p[k].plen = strlen(s->paths[k]);
            set_component(&ps.p[k], 0);
            ps.p[k].depth = 1;
            ps.n = k + 1;
            ps.n_live++;
        }
    }
    s->has_raw_newline = 0;
    s->err_offset = 0;
    s->err_msg = NULL;

    i = skip_ws_nl(buf, len, 0, &nl);
    if (i >= len || buf[i] != '{') {
        fail(&e, i, len, "not a JSON object");
        goto error;
    }
    if (scan_value(buf, len, i, &end, ps.n ? &ps : NULL, &nl, &e) < 0) goto error;
    i = skip_ws_nl(buf, len, end, &nl);
    if (i != len) {
        fail(&e, i, len, "trailing data");
        goto error;
    }
    s->has_raw_newline = nl;
    return 0;

error:
    for (size_t k = 0; k < SL_JSON_MAX_PATHS; k++) {
        s->val[k] = NULL;
        s->vlen[k] = 0;
    }
    s->err_offset = e.off;
    s->err_msg = e.msg;
    return -1;
}

size_t sl_json_compact(const char *buf, size_t len, char *out)
{
    size_t o = 0;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            out[o++] = c;
            if (c == '\\' && i + 1 < len)
                out[o++] = buf[++i];
            else if (c == '"')
                in_str = 0;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            out[o++] = c;
            if (c == '"') in_str = 1;
        }
    }
    return o;
}

/* ---- escaping ---- */

static const char hexdig[] = "0123456789abcdef";

/* Bytes the escape of c takes when c is ASCII (< 0x80). */
static size_t ascii_escaped_len(unsigned char c)
{
    if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
        return 2;
    return c < 0x20 ? 6 : 1;
}

size_t sl__json_escaped_len(const char *in, size_t len)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (p[i] < 0x80) {
            n += ascii_escaped_len(p[i]);
            i++;
        } else {
            size_t bad;
            size_t k = utf8_len(p + i, len - i, &bad);
            if (k) {
                n += k;
                i += k;
            } else {
                n += 3;
                i += bad ? bad : 1;
            }
        }
    }
    return n;
}

size_t sl_json_escape(const char *in, size_t len, char *out)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t bad;
            size_t k = utf8_len(p + i, len - i, &bad);
            if (k) {
                memcpy(out + o, p + i, k);
                o += k;
                i += k;
            } else {
                /* One U+FFFD per maximal ill-formed prefix (the Unicode "substitution of maximal
                 * subparts" practice): a truncated sequence is one error, not several. */
                out[o++] = (char)0xEF;
                out[o++] = (char)0xBF;
                out[o++] = (char)0xBD;
                i += bad ? bad : 1;
            }
            continue;
        }
        i++;
        switch (c) {
        case '"':
        case '\\':
            out[o++] = '\\';
            out[o++] = (char)c;
            break;
        case '\b':
            out[o++] = '\\';
            out[o++] = 'b';
            break;
        case '\f':
            out[o++] = '\\';
            out[o++] = 'f';
            break;
        case '\n':
            out[o++] = '\\';
            out[o++] = 'n';
            break;
        case '\r':
            out[o++] = '\\';
            out[o++] = 'r';
            break;
        case '\t':
            out[o++] = '\\';
            out[o++] = 't';
            break;
        default:
            if (c < 0x20) {
                memcpy(out + o, "\\u00", 4);
                out[o + 4] = hexdig[c >> 4];
                out[o + 5] = hexdig[c & 15];
                o += 6;
            } else {
                out[o++] = (char)c;
            }
        }
    }
    return o;
}

static size_t put_utf8(char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

ssize_t sl_json_unescape(const char *tok, size_t toklen, char *out, size_t cap)
{
    if (toklen < 2 || tok[0] != '"' || tok[toklen - 1] != '"') return -1;
    size_t end = toklen - 1;
    size_t o = 0;
    for (size_t i = 1; i < end;) {
        char tmp[4];
        size_t n;
        if (tok[i] != '\\') {
            if (tok[i] == '"') return -1;
            tmp[0] = tok[i++];
            n = 1;
        } else {
            if (i + 1 >= end) return -1;
            char c = tok[i + 1];
            i += 2;
            switch (c) {
            case '"':
            case '\\':
            case '/':
                tmp[0] = c;
                break;
            case 'b':
                tmp[0] = '\b';
                break;
            case 'f':
                tmp[0] = '\f';
                break;
            case 'n':
                tmp[0] = '\n';
                break;
            case 'r':
                tmp[0] = '\r';
                break;
            case 't':
                tmp[0] = '\t';
                break;
            case 'u': {
                size_t bad;
                long cu = hex4(tok, end, i, &bad);
                if (cu < 0 || (cu >= 0xDC00 && cu <= 0xDFFF)) return -1;
                i += 4;
                unsigned long cp = (unsigned long)cu;
                if (cu >= 0xD800 && cu <= 0xDBFF) {
                    if (i + 1 >= end || tok[i] != '\\' || tok[i + 1] != 'u') return -1;
                    long lo = hex4(tok, end, i + 2, &bad);
                    if (lo < 0xDC00 || lo > 0xDFFF) return -1;
                    i += 6;
                    cp = 0x10000 + (((unsigned long)cu - 0xD800) << 10) +
                         ((unsigned long)lo - 0xDC00);
                }
                n = put_utf8(tmp, cp);
                goto emit;
            }
            default:
                return -1;
            }
            n = 1;
        }
    emit:
        if (cap - o < n) return -1;
        memcpy(out + o, tmp, n);
        o += n;
    }
    return (ssize_t)o;
}

/* ---- time ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil): exact for
 * any year, no libc timezone state involved. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned char dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* Fixed-width decimal field; -1 unless all n bytes are digits. */
static long digits(const char *p, size_t n)
{
    long v = 0;
    for (size_t k = 0; k < n; k++) {
        if (!is_digit((unsigned char)p[k])) return -1;
        v = v * 10 + (p[k] - '0');
    }
    return v;
}

static int parse_rfc3339(const char *t, size_t n, int64_t *ns)
{
    /* YYYY-MM-DDThh:mm:ss is 19 bytes, then [.frac] and Z or +hh:mm. */
    if (n < 20 || t[4] != '-' || t[7] != '-' || t[13] != ':' || t[16] != ':') return -1;
    if (t[10] != 'T' && t[10] != 't' && t[10] != ' ') return -1;
    long y = digits(t, 4), mo = digits(t + 5, 2), d = digits(t + 8, 2);
    long h = digits(t + 11, 2), mi = digits(t + 14, 2), s = digits(t + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0)
        return -1;
    /* A leap second (:60) is rejected rather than folded into the next minute, where it could move
     * the event to another day's index; the caller falls back to the Kafka timestamp. */
    if (s > 59 || (unsigned long)d > days_in_month(y, (unsigned)mo)) return -1;
    size_t i = 19;
    int64_t frac = 0;
    if (i < n && t[i] == '.') {
        size_t nd = 0;
        i++;
        while (i < n && is_digit((unsigned char)t[i]) && nd < 10) {
            frac = frac * 10 + (t[i] - '0');
            i++;
            nd++;
        }
        if (nd == 0 || nd > 9) return -1;
        for (; nd < 9; nd++)
            frac *= 10;
    }
    if (i >= n) return -1;
    long off_s = 0;
    if (t[i] == 'Z' || t[i] == 'z') {
        i++;
    } else if (t[i] == '+' || t[i] == '-') {
        if (n - i < 6 || t[i + 3] != ':') return -1;
        long oh = digits(t + i + 1, 2), om = digits(t + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59) return -1;
        off_s = (oh * 3600 + om * 60) * (t[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -1;
    }
    if (i != n) return -1;
    int64_t secs =
        days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + s - off_s;
    /* Before 1970 with a fraction, borrow one second so the product cannot overflow at the
     * lower end of the range (1677-09-21T00:12:43.145224192Z is INT64_MIN). */
    if (secs < 0 && frac > 0) {
        secs++;
        frac -= NS_PER_S;
    }
    int64_t r;
    if (__builtin_mul_overflow(secs, NS_PER_S, &r) || __builtin_add_overflow(r, frac, &r))
        return -1;
    *ns = r;
    return 0;
}

/* An epoch number in JSON number syntax, unit chosen by magnitude (see json.h). Converted from
 * its decimal digits, not through double, so nanosecond values stay exact. */
static int parse_epoch(const char *t, size_t n, int64_t *ns)
{
    struct sl__json_err e;
    size_t end;
    if (n == 0 || scan_number(t, n, 0, &end, &e) < 0 || end != n) return -1;
    int neg = t[0] == '-';
    /* value = D * 10^E, D = significant digits without leading/trailing zeros */
    char D[40];
    size_t nd = 0;
    long E = 0;
    size_t i = (size_t)neg;
    int seen_frac = 0;
    for (; i < n && (is_digit((unsigned char)t[i]) || t[i] == '.'); i++) {
        if (t[i] == '.') {
            seen_frac = 1;
            continue;
        }
        if (seen_frac) E--;
        if (nd == 0 && t[i] == '0') continue;
        if (nd == sizeof(D)) return -1;
        D[nd++] = t[i];
    }
    if (i < n) { /* exponent */
        i++;
        int eneg = t[i] == '-';
        if (t[i] == '+' || t[i] == '-') i++;
        long ev = 0;
        for (; i < n; i++) {
            if (ev > 100000) return -1;
            ev = ev * 10 + (t[i] - '0');
        }
        E += eneg ? -ev : ev;
    }
    while (nd > 0 && D[nd - 1] == '0') {
        nd--;
        E++;
    }
    if (nd == 0) {
        *ns = 0;
        return 0;
    }
    /* integer part ip (saturated) and whether a fraction remains, for the unit thresholds */
    long intdigits = (long)nd + E;
    uint64_t ip = 0;
    int sat = 0;
    for (long k = 0; k < intdigits; k++) {
        unsigned dg = k < (long)nd ? (unsigned)(D[k] - '0') : 0;
        if (ip > (UINT64_MAX - dg) / 10) {
            sat = 1;
            break;
        }
        ip = ip * 10 + dg;
    }
    int has_frac = (long)nd > intdigits;
    const uint64_t T11 = 100000000000ULL, T14 = 100000000000000ULL, T17 = 100000000000000000ULL;
#define ABOVE(T) (sat || ip > (T) || (ip == (T) && has_frac))
    long scale = ABOVE(T17) ? 0 : ABOVE(T14) ? 3 : ABOVE(T11) ? 6 : 9;
#undef ABOVE
    long shift = E + scale;
    long keep = (long)nd + (shift < 0 ? shift : 0);
    uint64_t acc = 0;
    for (long k = 0; k < keep; k++) {
        unsigned dg = (unsigned)(D[k] - '0');
        if (acc > (UINT64_MAX - dg) / 10) return -1;
        acc = acc * 10 + dg;
    }
    for (long k = 0; k < shift && acc; k++) {
        if (acc > UINT64_MAX / 10) return -1;
        acc *= 10;
    }
    if (neg) {
        if (acc > (uint64_t)INT64_MAX + 1) return -1;
        *ns = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
    } else {
        if (acc > (uint64_t)INT64_MAX) return -1;
        *ns = (int64_t)acc;
    }
    return 0;
}

int sl_json_parse_time(const char *tok, size_t len, int64_t *ns)
{
    if (len == 0) return -1;
    if (tok[0] != '"') return parse_epoch(tok, len, ns);
    /* The longest accepted form, 2026-11-27T10:00:00.123456789+05:30, is 35 bytes. */
    char t[64];
    ssize_t n = sl_json_unescape(tok, len, t, sizeof(t));
    if (n <= 0) return -1;
    if (n >= 20 && t[4] == '-') return parse_rfc3339(t, (size_t)n, ns);
    return parse_epoch(t, (size_t)n, ns);
}

static void put_dec(char *out, unsigned long v, int width)
{
    for (int k = width - 1; k >= 0; k--) {
        out[k] = (char)('0' + v % 10);
        v /= 10;
    }
}

size_t sl_time_format_rfc3339(int64_t ns, char *out)
{
    /* floor division, so times before 1970 still get a fraction in [0, 1e9) */
    int64_t secs = ns / NS_PER_S;
    int64_t frac = ns % NS_PER_S;
    if (frac < 0) {
        frac += NS_PER_S;
        secs--;
    }
    int64_t days = secs / 86400;
    int64_t sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    /* int64 nanoseconds span 1677..2262, so the year always has four digits */
    put_dec(out, (unsigned long)y, 4);
    out[4] = '-';
    put_dec(out + 5, m, 2);
    out[7] = '-';
    put_dec(out + 8, d, 2);
    out[10] = 'T';
    put_dec(out + 11, (unsigned long)(sod / 3600), 2);
    out[13] = ':';
    put_dec(out + 14, (unsigned long)(sod / 60 % 60), 2);
    out[16] = ':';
    put_dec(out + 17, (unsigned long)(sod % 60), 2);
    out[19] = '.';
    put_dec(out + 20, (unsigned long)frac, 9);
    out[29] = 'Z';
    out[30] = '\0';
    return 30;
}
