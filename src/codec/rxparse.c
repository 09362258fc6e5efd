/* format: regexp, see rxparse.h. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "codec/rxparse.h"

#include <errno.h>
#include <math.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec/json.h"

/* A pathological pattern must fail one record, not stall the loop: PCRE2's default match limit
 * is 10 million steps; a log line pattern that needs more than a million is broken. */
#define MATCH_LIMIT 1000000u
#define DEPTH_LIMIT 10000u

enum ftype { FT_STRING = 0, FT_INT, FT_FLOAT, FT_BOOL };

struct field {
    char *name;
    size_t name_len;
    uint32_t group;
    enum ftype type;
};

struct sl_rxparse {
    pcre2_code *code;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    bool jit;
    struct field *fields; /* in group order */
    size_t n_fields;
    const char *subject; /* of the last match */
};

static int parse_type(const char *s, enum ftype *t)
{
    static const struct {
        const char *name;
        enum ftype t;
    } names[] = {{"string", FT_STRING}, {"int", FT_INT},   {"integer", FT_INT},
                 {"float", FT_FLOAT},   {"bool", FT_BOOL}, {"boolean", FT_BOOL}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i].name) == 0) {
            *t = names[i].t;
            return 0;
        }
    }
    return -1;
}

static int by_group(const void *a, const void *b)
{
    const struct field *x = a, *y = b;
    return x->group < y->group ? -1 : x->group > y->group;
}

struct sl_rxparse *sl_rxparse_new(const char *pattern, const struct sl_kv *types, size_t n_types,
                                  char *why, size_t whylen)
{
    int ec;
    PCRE2_SIZE eoff;
    /* Byte mode, not PCRE2_UTF: a log line with one broken UTF-8 byte must still match (the
     * byte is escaped to U+FFFD in the output), and in UTF mode an invalid sequence is a barrier
     * no pattern item can cross. Non-ASCII literals in a pattern still match their UTF-8 bytes. */
    pcre2_code *code =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &ec, &eoff, NULL);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        snprintf(why, whylen, "invalid pattern at offset %zu: %s", (size_t)eoff, (char *)msg);
        return NULL;
    }
    struct sl_rxparse *r = calloc(1, sizeof *r);
    if (!r) {
        pcre2_code_free(code);
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    r->code = code;
    uint32_t count = 0, entry = 0;
    PCRE2_SPTR table = NULL;
    pcre2_pattern_info(code, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(code, PCRE2_INFO_NAMEENTRYSIZE, &entry);
    pcre2_pattern_info(code, PCRE2_INFO_NAMETABLE, &table);
    if (count == 0) {
        snprintf(why, whylen, "the pattern has no named group (?<name>...): no field to fill");
        goto fail;
    }
    r->fields = calloc(count, sizeof *r->fields);
    if (!r->fields) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < count; i++) {
        PCRE2_SPTR e = table + (size_t)i * entry;
        struct field *f = &r->fields[r->n_fields];
        f->group = ((uint32_t)e[0] << 8) | e[1];
        f->name = strdup((const char *)e + 2);
        if (!f->name) {
            snprintf(why, whylen, "out of memory");
            goto fail;
        }
        f->name_len = strlen(f->name);
        r->n_fields++;
    }
    qsort(r->fields, r->n_fields, sizeof *r->fields, by_group);
    for (size_t t = 0; t < n_types; t++) {
        struct field *f = NULL;
        for (size_t i = 0; i < r->n_fields && !f; i++) {
            if (strcmp(r->fields[i].name, types[t].key) == 0) f = &r->fields[i];
        }
        if (!f) {
            snprintf(why, whylen, "types names '%s', which is not a named group of the pattern",
                     types[t].key);
            goto fail;
        }
        if (parse_type(types[t].value, &f->type) < 0) {
            snprintf(why, whylen, "type '%s' of '%s' is not one of int, float, bool, string",
                     types[t].value, types[t].key);
            goto fail;
        }
    }
    r->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    r->md = pcre2_match_data_create_from_pattern(code, NULL);
    r->mctx = pcre2_match_context_create(NULL);
    if (!r->md || !r->mctx) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    pcre2_set_match_limit(r->mctx, MATCH_LIMIT);
    pcre2_set_depth_limit(r->mctx, DEPTH_LIMIT);
    return r;
fail:
    sl_rxparse_free(r);
    return NULL;
}

void sl_rxparse_free(struct sl_rxparse *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_fields; i++)
        free(r->fields[i].name);
    free(r->fields);
    pcre2_match_data_free(r->md);
    pcre2_match_context_free(r->mctx);
    pcre2_code_free(r->code);
    free(r);
}

size_t sl_rxparse_fields(const struct sl_rxparse *r)
{
    return r->n_fields;
}

ssize_t sl_rxparse_match(struct sl_rxparse *r, const char *line, size_t len)
{
    if (len && line[len - 1] == '\n') len--;
    if (len && line[len - 1] == '\r') len--;
    int rc = r->jit ? pcre2_jit_match(r->code, (PCRE2_SPTR)line, len, 0, 0, r->md, r->mctx)
                    : pcre2_match(r->code, (PCRE2_SPTR)line, len, 0, 0, r->md, r->mctx);
    if (rc < 0) return -1;
    r->subject = line;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
    uint32_t n_ov = pcre2_get_ovector_count(r->md);
    size_t need = 2;
    for (size_t i = 0; i < r->n_fields; i++) {
        uint32_t g = r->fields[i].group;
        if (g >= n_ov || ov[2 * g] == PCRE2_UNSET) continue;
        /* "name":"escaped text", ; a number or bool is never longer than its text's escape */
        need += 6 * r->fields[i].name_len + 6 * (ov[2 * g + 1] - ov[2 * g]) + 8;
    }
    /* a float written back in its shortest exact form can be longer than a short input */
    return (ssize_t)(need + 32 * r->n_fields);
}

/* Writes a converted value, or "null" (counted) when the text is not one. */
static size_t write_typed(enum ftype t, const char *s, size_t n, char *out, unsigned *errs)
{
    char tmp[64];
    if (n == 0 || n >= sizeof tmp) goto bad;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    switch (t) {
    case FT_INT: {
        if (!(tmp[0] == '-' || tmp[0] == '+' || (tmp[0] >= '0' && tmp[0] <= '9'))) goto bad;
        errno = 0;
        long long v = strtoll(tmp, &end, 10);
        if (errno || *end) goto bad;
        return (size_t)sprintf(out, "%lld", v);
    }
    case FT_FLOAT: {
        /* JSON has no inf/nan; hex floats are not what a log line means */
        if (strpbrk(tmp, "xXnNiI")) goto bad;
        double v = strtod(tmp, &end);
        if (*end || !isfinite(v)) goto bad;
        int w = snprintf(out, 32, "%.15g", v);
        if (strtod(out, NULL) != v) w = snprintf(out, 32, "%.17g", v);
        return (size_t)w;
    }
    case FT_BOOL: {
        static const char *const yes[] = {"true", "yes", "on", "1"};
        static const char *const no[] = {"false", "no", "off", "0"};
        for (size_t i = 0; i < 4; i++) {
            if (strcasecmp(tmp, yes[i]) == 0) return (size_t)sprintf(out, "true");
            if (strcasecmp(tmp, no[i]) == 0) return (size_t)sprintf(out, "false");
        }
        goto bad;
    }
    case FT_STRING:
        break;
    }
bad:
    (*errs)++;
    memcpy(out, "null", 4);
    return 4;
}

size_t sl_rxparse_write(struct sl_rxparse *r, char *out, unsigned *type_errors)
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
    uint32_t n_ov = pcre2_get_ovector_count(r->md);
    size_t w = 0;
    out[w++] = '{';
    for (size_t i = 0; i < r->n_fields; i++) {
        const struct field *f = &r->fields[i];
        uint32_t g = f->group;
        if (g >= n_ov || ov[2 * g] == PCRE2_UNSET) continue;
        const char *s = r->subject + ov[2 * g];
        size_t n = ov[2 * g + 1] - ov[2 * g];
        if (w > 1) out[w++] = ',';
        out[w++] = '"';
        w += sl_json_escape(f->name, f->name_len, out + w);
        out[w++] = '"';
        out[w++] = ':';
        if (f->type == FT_STRING) {
            out[w++] = '"';
            w += sl_json_escape(s, n, out + w);
            out[w++] = '"';
        } else {
            w += write_typed(f->type, s, n, out + w, type_errors);
        }
    }
    out[w++] = '}';
    return w;
}
