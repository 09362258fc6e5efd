#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void ebuf_reserve(struct ebuf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return;
    size_t want = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        fprintf(stderr, "esemu: out of memory (%zu bytes)\n", cap);
        abort();
    }
    b->p = p;
    b->cap = cap;
}

void ebuf_free(struct ebuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void ebuf_printf(struct ebuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0) return;
    ebuf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ebuf_json_str(struct ebuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    ebuf_reserve(b, n + 2);
    b->p[b->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        ebuf_add(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            EBUF_LIT(b, "\\\"");
            break;
        case '\\':
            EBUF_LIT(b, "\\\\");
            break;
        case '\n':
            EBUF_LIT(b, "\\n");
            break;
        case '\r':
            EBUF_LIT(b, "\\r");
            break;
        case '\t':
            EBUF_LIT(b, "\\t");
            break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            ebuf_add(b, esc, 6);
        }
        }
    }
    ebuf_add(b, s + run, n - run);
    ebuf_addc(b, '"');
}

void ebuf_u64(struct ebuf *b, uint64_t v)
{
    char tmp[20];
    int i = 20;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    ebuf_add(b, tmp + i, (size_t)(20 - i));
}

void ebuf_i64(struct ebuf *b, int64_t v)
{
    if (v < 0) {
        ebuf_addc(b, '-');
        ebuf_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        ebuf_u64(b, (uint64_t)v);
    }
}
