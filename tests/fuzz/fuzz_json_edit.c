/* libFuzzer target for src/codec/json_edit.c. The first 4 bytes build an edit plan (each byte: an
 * op in bits 0-1, a path from a pool in bits 2-4, a rename target in bits 5-7; refused steps are
 * simply not part of the plan); the rest is the record, used only if sl_json_scan_object accepts
 * it. Properties checked, beyond "no crash" (ASan bounds the reads and writes):
 *  1. the output is non-empty, fits sl_jedit_bound(), and scans as a JSON object; one byte less
 *     of room gives 0;
 *  2. removed paths (and rename sources, unless a rename was skipped) are absent in the output;
 *  3. when nothing was skipped and the record has no escapes (the scanner compares raw keys, the
 *     editor decoded ones), each set path holds exactly its value and each rename target exactly
 *     the source's value from the input;
 *  4. the top-level members whose key no edit names come through in order, byte for byte;
 *  5. when sl_jedit_carry_scan carries the input's scan over, it equals a scan of the output. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"
#include "codec/json_edit.h"
#include "codec/json_internal.h"
#include "fuzz_check.h"

static const char *const pool[8] = {"a", "b", "a.b", "a.c", "x.y.z", "time", "k", "a.b.c"};
static const char *const values[4] = {"[\"S\",0]", "\"v1\"", "{\"n\":{}}", "null"};

struct edit {
    int op; /* 1 remove, 2 set, 3 rename */
    const char *path, *to;
    unsigned slot;
};

/* The value at path in text (raw token), or NULL. */
static const char *find(const char *text, size_t n, const char *path, size_t *vlen)
{
    struct sl_json_scan s;
    memset(&s, 0, sizeof(s));
    s.paths[0] = path;
    s.n_paths = 1;
    CHECK(sl_json_scan_object(text, n, &s) == 0);
    *vlen = s.vlen[0];
    return s.val[0];
}

/* 1 if the decoded key token names the first segment of any edit. */
static int named(const char *tok, size_t n, const struct edit *ed, size_t ne)
{
    char dec[512];
    ssize_t dn = sl_json_unescape(tok, n, dec, sizeof(dec));
    if (dn < 0) return 0; /* longer than any pool path */
    for (size_t k = 0; k < ne; k++) {
        const char *paths[2] = {ed[k].path, ed[k].to};
        for (int j = 0; j < 2; j++) {
            if (!paths[j]) continue;
            size_t seg = strcspn(paths[j], ".");
            if ((size_t)dn == seg && memcmp(dec, paths[j], seg) == 0) return 1;
        }
    }
    return 0;
}

/* Writes the untouched top-level members of the object text[0..n) into out, separated by '\n'
 * (which cannot occur inside a member of valid JSON... except as whitespace, so lengths are kept
 * too). Returns the byte count. */
static size_t untouched(const char *text, size_t n, const struct edit *ed, size_t ne, char *out)
{
    struct sl__json_err e;
    size_t o = 0, i = sl__json_skip_ws(text, n, 0) + 1;
    for (;;) {
        i = sl__json_skip_ws(text, n, i);
        if (text[i] == ',') i = sl__json_skip_ws(text, n, i + 1);
        if (text[i] == '}') return o;
        size_t ks = i, ke, ve;
        CHECK(sl__json_string_end(text, n, ks, &ke, &e) == 0);
        i = sl__json_skip_ws(text, n, ke);
        CHECK(text[i] == ':');
        i = sl__json_skip_ws(text, n, i + 1);
        CHECK(sl__json_value_end(text, n, i, &ve, &e) == 0);
        if (!named(text + ks, ke - ks, ed, ne)) {
            size_t len = ve - ks;
            memcpy(out + o, &len, sizeof(len));
            memcpy(out + o + sizeof(len), text + ks, len);
            o += sizeof(len) + len;
        }
        i = ve;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    const char *in = (const char *)data + 4;
    size_t len = size - 4;
    struct sl_json_scan s;
    memset(&s, 0, sizeof(s));
    if (sl_json_scan_object(in, len, &s) != 0) return 0;

    struct sl_jedit *e = sl_jedit_new();
    CHECK(e);
    struct edit ed[4];
    size_t ne = 0;
    char why[128];
    for (size_t k = 0; k < 4; k++) {
        struct edit x = {data[k] & 3, pool[(data[k] >> 2) & 7], NULL, k};
        int rc;
        if (x.op == 0) continue;
        if (x.op == 1) {
            rc = sl_jedit_remove(e, x.path, why, sizeof(why));
        } else if (x.op == 2) {
            rc = sl_jedit_set(e, x.path, x.slot, why, sizeof(why));
        } else {
            x.to = pool[(data[k] >> 5) & 7];
            rc = sl_jedit_rename(e, x.path, x.to, why, sizeof(why));
        }
        if (rc == 0) ed[ne++] = x;
    }
    struct sl_jval vals[4];
    for (size_t k = 0; k < 4; k++) {
        vals[k].p = values[k];
        vals[k].n = strlen(values[k]);
    }

    size_t bound = sl_jedit_bound(e, len, vals, 4);
    char *out = malloc(bound);
    unsigned skipped = 0;
    size_t n = sl_jedit_apply(e, in, len, vals, 4, out, bound, &skipped);
    CHECK(n > 0 && n <= bound);
    char *tight = malloc(n);
    CHECK(sl_jedit_apply(e, in, len, vals, 4, tight, n, NULL) == n);
    CHECK(memcmp(tight, out, n) == 0);
    CHECK(sl_jedit_apply(e, in, len, vals, 4, tight, n - 1, NULL) == 0);
    free(tight);
    struct sl_json_scan so;
    memset(&so, 0, sizeof(so));
    for (size_t k = 0; k < 8; k++)
        so.paths[k] = pool[k];
    so.n_paths = 8;
    CHECK(sl_json_scan_object(out, n, &so) == 0);
    /* 5. a scan carried over from the input is the scan of the output */
    struct sl_json_scan si, sc;
    memset(&si, 0, sizeof(si));
    for (size_t k = 0; k < 8; k++)
        si.paths[k] = pool[k];
    si.n_paths = 8;
    CHECK(sl_json_scan_object(in, len, &si) == 0);
    if (sl_jedit_carry_scan(e, in, len, out, n, &si, &sc)) {
        for (size_t k = 0; k < 8; k++) {
            CHECK((sc.val[k] == NULL) == (so.val[k] == NULL));
            if (so.val[k]) CHECK(sc.val[k] == so.val[k] && sc.vlen[k] == so.vlen[k]);
        }
        CHECK(sc.has_raw_newline == so.has_raw_newline);
    }

    int escapes = memchr(in, '\\', len) != NULL;
    for (size_t k = 0; k < ne; k++) {
        size_t vl, fl;
        const char *v;
        if (ed[k].op == 1 || (ed[k].op == 3 && skipped == 0)) {
            CHECK(find(out, n, ed[k].path, &vl) == NULL);
        }
        if (skipped || escapes) continue;
        if (ed[k].op == 2) {
            v = find(out, n, ed[k].path, &vl);
            CHECK(v && vl == vals[ed[k].slot].n && memcmp(v, vals[ed[k].slot].p, vl) == 0);
        } else if (ed[k].op == 3) {
            const char *from = find(in, len, ed[k].path, &fl);
            v = find(out, n, ed[k].to, &vl);
            if (from) CHECK(v && vl == fl && memcmp(v, from, vl) == 0);
        }
    }

    /* each member costs sizeof(size_t) + its bytes, and has at least 4 bytes ("":0) */
    size_t room = 4 * (len + n) + 64;
    char *u1 = malloc(room), *u2 = malloc(room);
    size_t n1 = untouched(in, len, ed, ne, u1);
    size_t n2 = untouched(out, n, ed, ne, u2);
    CHECK(n1 == n2 && memcmp(u1, u2, n1) == 0);
    free(u1);
    free(u2);
    free(out);
    sl_jedit_free(e);
    return 0;
}
