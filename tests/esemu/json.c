#include "json.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Jackson's default nesting limit is far above this; 512 keeps recursion on the C stack small while
 * still accepting any realistic log document. */
#define JSON_MAX_DEPTH 512

/* 1 for bytes that can be copied through a string without further checks. */
static unsigned char str_plain[256];
static int tables_ready;

static void init_tables(void)
{
    for (int i = 0x20; i < 0x80; i++)
        str_plain[i] = 1;
    str_plain['"'] = 0;
    str_plain['\\'] = 0;
    tables_ready = 1;
}

void jc_init(struct jcur *c, const char *s, size_t n)
{
    if (!tables_ready) init_tables();
    c->base = s;
    c->p = s;
    c->end = s + n;
    c->depth = 0;
    c->err.off = 0;
    c->err.msg[0] = 0;
}

static int fail(struct jcur *c, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#include <stdarg.h>
static int fail(struct jcur *c, const char *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err.msg, sizeof c->err.msg, fmt, ap);
    va_end(ap);
    c->err.off = (size_t)(at - c->base);
    return -1;
}

static int fail_char(struct jcur *c, const char *what)
{
    if (c->p >= c->end) return fail(c, c->p, "Unexpected end-of-input: %s", what);
    unsigned char ch = (unsigned char)*c->p;
    if (ch >= 0x20 && ch < 0x7f)
        return fail(c, c->p, "Unexpected character ('%c' (code %d)): %s", ch, ch, what);
    return fail(c, c->p, "Unexpected character ((CTRL-CHAR, code %d)): %s", ch, what);
}

void jc_ws(struct jcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* Validates one UTF-8 sequence starting at p (a byte >= 0x80); returns its length or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned char b0 = p[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        need = 1;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
        need = 2;
        if (b0 == 0xe0)
            lo = 0xa0;
        else if (b0 == 0xed)
            hi = 0x9f; /* UTF-16 surrogates are not scalar values */
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        need = 3;
        if (b0 == 0xf0)
            lo = 0x90;
        else if (b0 == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if ((size_t)(end - p) <= need) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i <= need; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    return need + 1;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

int jc_string(struct jcur *c, const char **raw, size_t *rawn, int *escaped)
{
    if (c->p >= c->end || *c->p != '"')
        return fail_char(c, "was expecting double-quote to start a string");
    const char *start = ++c->p;
    int esc = 0;
    for (;;) {
        while (c->p < c->end && str_plain[(unsigned char)*c->p])
            c->p++;
        if (c->p >= c->end) return fail(c, c->p, "Unexpected end-of-input in VALUE_STRING");
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') break;
        if (ch == '\\') {
            esc = 1;
            if (c->p + 1 >= c->end)
                return fail(c, c->p, "Unexpected end-of-input in character escape sequence");
            char e = c->p[1];
            if (e == 'u') {
                if (c->end - c->p < 6)
                    return fail(c, c->p, "Unexpected end-of-input in character escape sequence");
                for (int i = 2; i < 6; i++)
                    if (hexval((unsigned char)c->p[i]) < 0)
                        return fail(c, c->p + i,
                                    "Unexpected character ('%c' (code %d)): expected a hex-digit "
                                    "for character escape sequence",
                                    c->p[i], (unsigned char)c->p[i]);
                c->p += 6;
            } else if (strchr("\"\\/bfnrt", e) && e) {
                c->p += 2;
            } else {
                return fail(c, c->p + 1, "Unrecognized character escape '%c' (code %d)", e,
                            (unsigned char)e);
            }
            continue;
        }
        if (ch < 0x20)
            return fail(c, c->p,
                        "Illegal unquoted character ((CTRL-CHAR, code %d)): has to be escaped "
                        "using backslash to be included in string value",
                        ch);
        size_t n = utf8_seq((const unsigned char *)c->p, (const unsigned char *)c->end);
        if (!n) return fail(c, c->p, "Invalid UTF-8 start byte 0x%02x", ch);
        c->p += n;
    }
    *raw = start;
    *rawn = (size_t)(c->p - start);
    *escaped = esc;
    c->p++;
    return 0;
}

static int is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

static int number(struct jcur *c)
{
    if (*c->p == '-') c->p++;
    if (!is_digit(c->p, c->end))
        return fail_char(c, "expected digit (0-9) to follow minus sign, for valid numeric value");
    if (*c->p == '0') {
        c->p++;
        if (is_digit(c->p, c->end))
            return fail(c, c->p, "Invalid numeric value: Leading zeroes not allowed");
    } else {
        while (is_digit(c->p, c->end))
            c->p++;
    }
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!is_digit(c->p, c->end)) return fail_char(c, "Decimal point not followed by a digit");
        while (is_digit(c->p, c->end))
            c->p++;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
        if (!is_digit(c->p, c->end))
            return fail_char(c, "Exponent indicator not followed by a digit");
        while (is_digit(c->p, c->end))
            c->p++;
    }
    return 0;
}

static int literal(struct jcur *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, word, n) == 0) {
        const char *after = c->p + n;
        if (after >= c->end ||
            !((*after >= 'a' && *after <= 'z') || (*after >= '0' && *after <= '9'))) {
            c->p = after;
            return 0;
        }
    }
    const char *t = c->p;
    while (t < c->end && t - c->p < 32 && ((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z')))
        t++;
    if (t == c->p) t++;
    return fail(c, c->p,
                "Unrecognized token '%.*s': was expecting (JSON String, Number, Array, Object or "
                "token 'null', 'true' or 'false')",
                (int)(t - c->p), c->p);
}

int jc_obj_begin(struct jcur *c)
{
    if (c->p >= c->end || *c->p != '{') return fail_char(c, "expected START_OBJECT");
    if (++c->depth > JSON_MAX_DEPTH)
        return fail(c, c->p, "Document nesting depth exceeds %d", JSON_MAX_DEPTH);
    c->p++;
    return 0;
}

int jc_obj_next(struct jcur *c, int *first, const char **k, size_t *kn, int *kesc)
{
    jc_ws(c);
    if (c->p < c->end && *c->p == '}' && *first) {
        c->p++;
        c->depth--;
        return 0;
    }
    if (!*first) {
        if (c->p < c->end && *c->p == '}') {
            c->p++;
            c->depth--;
            return 0;
        }
        if (c->p >= c->end)
            return fail(c, c->p, "Unexpected end-of-input: expected close marker for Object");
        if (*c->p != ',') return fail_char(c, "was expecting comma to separate Object entries");
        c->p++;
        jc_ws(c);
    }
    *first = 0;
    if (c->p >= c->end)
        return fail(c, c->p, "Unexpected end-of-input: expected close marker for Object");
    if (*c->p != '"') return fail_char(c, "was expecting double-quote to start field name");
    if (jc_string(c, k, kn, kesc) < 0) return -1;
    jc_ws(c);
    if (c->p >= c->end || *c->p != ':')
        return fail_char(c, "was expecting a colon to separate field name and value");
    c->p++;
    jc_ws(c);
    return 1;
}

static int array(struct jcur *c)
{
    if (++c->depth > JSON_MAX_DEPTH)
        return fail(c, c->p, "Document nesting depth exceeds %d", JSON_MAX_DEPTH);
    c->p++;
    jc_ws(c);
    if (c->p < c->end && *c->p == ']') {
        c->p++;
        c->depth--;
        return 0;
    }
    for (;;) {
        if (jc_value(c) < 0) return -1;
        jc_ws(c);
        if (c->p >= c->end)
            return fail(c, c->p, "Unexpected end-of-input: expected close marker for Array");
        if (*c->p == ']') {
            c->p++;
            c->depth--;
            return 0;
        }
        if (*c->p != ',') return fail_char(c, "was expecting comma to separate Array entries");
        c->p++;
        jc_ws(c);
    }
}

int jc_value(struct jcur *c)
{
    jc_ws(c);
    if (c->p >= c->end) return fail(c, c->p, "Unexpected end-of-input: expected a value");
    const char *k;
    size_t kn;
    int esc;
    switch (*c->p) {
    case '{': {
        if (jc_obj_begin(c) < 0) return -1;
        int first = 1, r;
        while ((r = jc_obj_next(c, &first, &k, &kn, &esc)) == 1)
            if (jc_value(c) < 0) return -1;
        return r;
    }
    case '[':
        return array(c);
    case '"':
        return jc_string(c, &k, &kn, &esc);
    case 't':
        return literal(c, "true");
    case 'f':
        return literal(c, "false");
    case 'n':
        return literal(c, "null");
    default:
        if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) return number(c);
        if ((*c->p >= 'a' && *c->p <= 'z') || (*c->p >= 'A' && *c->p <= 'Z'))
            return literal(c, "null");
        return fail_char(c, "expected a value");
    }
}

int jc_at_end(struct jcur *c)
{
    jc_ws(c);
    if (c->p == c->end) return 1;
    fail_char(c, "expected end of input after the root value");
    return 0;
}

int json_validate(const char *s, size_t n, int require_object, struct jerr *err)
{
    struct jcur c;
    jc_init(&c, s, n);
    jc_ws(&c);
    if (c.p == c.end) {
        fail(&c, c.p, "document is empty");
        *err = c.err;
        return -1;
    }
    if (require_object && *c.p != '{') {
        fail_char(&c, "the document source must be a JSON object");
        *err = c.err;
        return -1;
    }
    if (jc_value(&c) < 0 || !jc_at_end(&c)) {
        *err = c.err;
        return -1;
    }
    return 0;
}

static void put_utf8(struct ebuf *out, uint32_t cp)
{
    char t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = (char)(0xc0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (char)(0xe0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        t[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        t[0] = (char)(0xf0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        t[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    ebuf_add(out, t, n);
}

static uint32_t hex4(const char *p)
{
    return (uint32_t)(hexval((unsigned char)p[0]) << 12 | hexval((unsigned char)p[1]) << 8 |
                      hexval((unsigned char)p[2]) << 4 | hexval((unsigned char)p[3]));
}

void json_unescape(const char *raw, size_t n, struct ebuf *out)
{
    const char *p = raw, *end = raw + n;
    while (p < end) {
        if (*p != '\\') {
            ebuf_addc(out, *p++);
            continue;
        }
        char e = p[1];
        p += 2;
        switch (e) {
        case 'b':
            ebuf_addc(out, '\b');
            break;
        case 'f':
            ebuf_addc(out, '\f');
            break;
        case 'n':
            ebuf_addc(out, '\n');
            break;
        case 'r':
            ebuf_addc(out, '\r');
            break;
        case 't':
            ebuf_addc(out, '\t');
            break;
        case 'u': {
            uint32_t cp = hex4(p);
            p += 4;
            /* A high surrogate followed by a low one is one code point; a lone surrogate has no
             * UTF-8 form, so it becomes U+FFFD like Jackson's lenient decoding. */
            if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                uint32_t lo = hex4(p + 2);
                if (lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                }
            }
            if (cp >= 0xd800 && cp < 0xe000) cp = 0xfffd;
            put_utf8(out, cp);
            break;
        }
        default:
            ebuf_addc(out, e);
        }
    }
}

int json_get(const char *s, size_t n, const char *path, const char **v, size_t *vn)
{
    struct jcur c;
    jc_init(&c, s, n);
    jc_ws(&c);
    while (*path) {
        const char *dot = strchr(path, '.');
        size_t seg = dot ? (size_t)(dot - path) : strlen(path);
        if (c.p >= c.end || *c.p != '{') return c.p >= c.end ? -1 : 0;
        if (jc_obj_begin(&c) < 0) return -1;
        int first = 1, r, found = 0;
        const char *k;
        size_t kn;
        int kesc;
        while ((r = jc_obj_next(&c, &first, &k, &kn, &kesc)) == 1) {
            if (kn == seg && memcmp(k, path, seg) == 0) {
                found = 1;
                break;
            }
            if (jc_value(&c) < 0) return -1;
        }
        if (r < 0) return -1;
        if (!found) return 0;
        path += seg + (dot ? 1 : 0);
        if (!dot) break;
    }
    const char *start = c.p;
    if (jc_value(&c) < 0) return -1;
    *v = start;
    *vn = (size_t)(c.p - start);
    return 1;
}
