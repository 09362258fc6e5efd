/* Growable byte buffer used for request bodies and response text.
 *
 * Allocation failure aborts: the emulator is test infrastructure, and a half-written response would
 * be worse than a crash that the test harness reports. */
#ifndef ESEMU_BUF_H
#define ESEMU_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct ebuf {
    char *p;
    size_t len;
    size_t cap;
};

void ebuf_reserve(struct ebuf *b, size_t extra);
void ebuf_free(struct ebuf *b);
void ebuf_printf(struct ebuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. s is treated as bytes: valid UTF-8 is copied
 * and control characters are escaped. */
void ebuf_json_str(struct ebuf *b, const char *s, size_t n);
void ebuf_u64(struct ebuf *b, uint64_t v);
void ebuf_i64(struct ebuf *b, int64_t v);

static inline void ebuf_add(struct ebuf *b, const void *s, size_t n)
{
    if (b->cap - b->len < n) ebuf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static inline void ebuf_adds(struct ebuf *b, const char *s)
{
    ebuf_add(b, s, strlen(s));
}

static inline void ebuf_addc(struct ebuf *b, char c)
{
    if (b->cap == b->len) ebuf_reserve(b, 1);
    b->p[b->len++] = c;
}

#define EBUF_LIT(b, lit) ebuf_add((b), (lit), sizeof(lit) - 1)

#endif
