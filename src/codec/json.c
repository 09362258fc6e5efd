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
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "codec/json_internal.h"

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
#ifdef __SSE2__
        /* 16 bytes a step. Signed, c < 0x20 flags both control characters and bytes >= 0x80. */
        while (i + 16 <= len) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(buf + i));
            __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                    _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                                       _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
            unsigned m = (unsigned)_mm_movemask_epi8(hit);
            if (m) {
                i += (size_t)__builtin_ctz(m);
                goto special;
            }
            i += 16;
        }
#endif
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
#ifdef __SSE2__
    special:
#endif
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

int sl__json_number_end(const char *buf, size_t len, size_t i, size_t *end, struct sl__json_err *e)
{
    if (i >= len) return fail(e, len, len, "");
    return scan_number(buf, len, i, end, e);
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

/* Bytes that go through as they are: printable ASCII other than '"' and '\\'. */
static const unsigned char plain[256] = {
    /* GNU range designators (gcc, clang); 0x7f (DEL) is valid in JSON */
    [0x20 ... '"' - 1] = 1,
    ['"' + 1 ... '\\' - 1] = 1,
    ['\\' + 1 ... 0x7f] = 1,
};

/* Length of the run of plain bytes at p[0..len): log text is mostly such runs, so both functions
 * below skip them a byte-table lookup at a time and copy them in one memcpy (measured: length
 * plus escape of a 250-byte log string with one quote and one newline: 486-528 ns before, 182-185
 * ns with the runs, gcc -O2 on this machine). */
static size_t plain_run(const unsigned char *p, size_t len)
{
    size_t i = 0;
    while (i < len && plain[p[i]])
        i++;
    return i;
}

size_t sl__json_escaped_len(const char *in, size_t len)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t r = plain_run(p + i, len - i);
        n += r;
        i += r;
        if (i == len) break;
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
        size_t r = plain_run(p + i, len - i);
        if (r) {
            memcpy(out + o, p + i, r);
            o += r;
            i += r;
            if (i == len) break;
        }
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

int sl_json_parse_time(const char *tok, size_t len, int64_t *ns)
{
    if (len == 0) return -1;
    if (tok[0] != '"') {
        /* Only a JSON number here: bare RFC 3339 text is not a JSON token. */
        struct sl__json_err e;
        size_t end;
        if (scan_number(tok, len, 0, &end, &e) < 0 || end != len) return -1;
        return sl_time_parse_auto(tok, len, ns);
    }
    /* The longest accepted form, 2026-11-27T10:00:00.123456789+05:30, is 35 bytes. */
    char t[64];
    ssize_t n = sl_json_unescape(tok, len, t, sizeof(t));
    if (n <= 0) return -1;
    return sl_time_parse_auto(t, (size_t)n, ns);
}
