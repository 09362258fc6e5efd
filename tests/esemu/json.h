/* Strict RFC 8259 JSON reading without building a tree.
 *
 * Every reader works on a cursor over caller-owned bytes and validates what it skips, so "skip this
 * value" and "is this a valid document" are the same code. Errors carry the byte offset where the
 * parse failed and a Jackson-like message, because Elasticsearch reasons quote Jackson. */
#ifndef ESEMU_JSON_H
#define ESEMU_JSON_H

#include <stddef.h>

#include "buf.h"

struct jerr {
    size_t off; /* byte offset of the failure from the cursor's base */
    char msg[200];
};

struct jcur {
    const char *base;
    const char *p;
    const char *end;
    int depth;
    struct jerr err;
};

void jc_init(struct jcur *c, const char *s, size_t n);
void jc_ws(struct jcur *c);
/* Validates and skips one value. Returns 0, or -1 with c->err set. */
int jc_value(struct jcur *c);
/* Reads a string at the cursor. *raw and *rawn give the text between the quotes, *escaped tells
 * whether it holds backslash escapes (then decode it with json_unescape). */
int jc_string(struct jcur *c, const char **raw, size_t *rawn, int *escaped);
/* Object iteration: call jc_obj_begin at '{' with first=1, then jc_obj_next until it returns 0 (end
 * of object) or -1 (error). After a 1, the caller must consume the member's value. */
int jc_obj_begin(struct jcur *c);
int jc_obj_next(struct jcur *c, int *first, const char **k, size_t *kn, int *kesc);
/* 1 when only whitespace is left, else 0 with c->err set. */
int jc_at_end(struct jcur *c);

/* Validates that s holds one JSON value and nothing else; with require_object it must be an
 * object. Returns 0 or -1 with *err filled. */
int json_validate(const char *s, size_t n, int require_object, struct jerr *err);
/* Decodes the escapes of a validated raw string into out (appended, as UTF-8). */
void json_unescape(const char *raw, size_t n, struct ebuf *out);
/* Looks up a dotted path of object keys in a document. Returns 1 with the value's text span, 0 when
 * absent, -1 when the document is invalid. */
int json_get(const char *s, size_t n, const char *path, const char **v, size_t *vn);

#endif
