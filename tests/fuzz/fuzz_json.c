/* libFuzzer target for src/codec/json.c. Properties checked, beyond "no crash" (ASan bounds the
 * reads: the input is libFuzzer's exact-size copy):
 *  1. scan of any bytes either fails with an offset in [0, len] and a message, or succeeds;
 *  2. on success, compact() writes at most len bytes, leaves no raw newline outside strings, and
 *     the compacted text scans again with every path finding the same value (compared after
 *     compacting both value tokens) and has_raw_newline == 0;
 *  3. escape() of the input bytes, wrapped as {"m":"..."}, always scans, stays within 6 * len, and
 *     decodes to a string whose escape is the same bytes again.
 * The first input byte picks which paths to look up, so path tracking is exercised too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"
#include "fuzz_check.h"

static const char *const path_pool[] = {"a", "a.b", "time", "kafka.ts", "b", "a.b.c", "", "x.y"};

static void compact_token(const char *tok, size_t n, char *out, size_t *on)
{
    *on = sl_json_compact(tok, n, out);
    CHECK(*on <= n);
}

static void check_scan(const char *buf, size_t len, unsigned sel)
{
    struct sl_json_scan s;
    memset(&s, 0, sizeof(s));
    s.n_paths = SL_JSON_MAX_PATHS;
    for (size_t k = 0; k < SL_JSON_MAX_PATHS; k++)
        s.paths[k] = (sel >> k) & 1 ? path_pool[(sel + k) % 8] : NULL;

    if (sl_json_scan_object(buf, len, &s) != 0) {
        CHECK(s.err_offset <= len);
        CHECK(s.err_msg != NULL);
        for (size_t k = 0; k < SL_JSON_MAX_PATHS; k++)
            CHECK(s.val[k] == NULL);
        return;
    }
    for (size_t k = 0; k < SL_JSON_MAX_PATHS; k++) {
        if (s.val[k]) {
            CHECK(s.val[k] >= buf && s.val[k] + s.vlen[k] <= buf + len);
            CHECK(s.vlen[k] > 0);
        }
    }

    char *c = malloc(len ? len : 1);
    size_t cn = sl_json_compact(buf, len, c);
    CHECK(cn <= len);
    int in_str = 0;
    for (size_t i = 0; i < cn; i++) {
        if (in_str) {
            CHECK(c[i] != '\n' && c[i] != '\r');
            if (c[i] == '\\')
                i++;
            else if (c[i] == '"')
                in_str = 0;
        } else {
            CHECK(c[i] != '\n' && c[i] != '\r' && c[i] != ' ' && c[i] != '\t');
            in_str = c[i] == '"';
        }
    }

    struct sl_json_scan s2;
    memset(&s2, 0, sizeof(s2));
    s2.n_paths = s.n_paths;
    memcpy(s2.paths, s.paths, sizeof(s.paths));
    int rc = sl_json_scan_object(c, cn, &s2);
    CHECK(rc == 0);
    CHECK(s2.has_raw_newline == 0);
    for (size_t k = 0; k < SL_JSON_MAX_PATHS; k++) {
        CHECK((s.val[k] == NULL) == (s2.val[k] == NULL));
        if (!s.val[k]) continue;
        char *v1 = malloc(s.vlen[k]);
        size_t n1;
        compact_token(s.val[k], s.vlen[k], v1, &n1);
        /* the value in compacted text is already compact */
        CHECK(n1 == s2.vlen[k]);
        CHECK(memcmp(v1, s2.val[k], n1) == 0);
        free(v1);
    }
    free(c);
}

static void check_escape(const char *buf, size_t len)
{
    char *w = malloc(6 * len + 8);
    memcpy(w, "{\"m\":\"", 6);
    size_t en = sl_json_escape(buf, len, w + 6);
    CHECK(en <= 6 * len);
    memcpy(w + 6 + en, "\"}", 2);

    struct sl_json_scan s;
    memset(&s, 0, sizeof(s));
    s.paths[0] = "m";
    s.n_paths = 1;
    int rc = sl_json_scan_object(w, en + 8, &s);
    CHECK(rc == 0);
    CHECK(s.val[0] == w + 5 && s.vlen[0] == en + 2);

    char *dec = malloc(3 * len + 1);
    ssize_t dn = sl_json_unescape(s.val[0], s.vlen[0], dec, 3 * len + 1);
    CHECK(dn >= 0);
    char *again = malloc(6 * (size_t)dn + 1);
    size_t an = sl_json_escape(dec, (size_t)dn, again);
    CHECK(an == en && memcmp(again, w + 6, en) == 0);
    free(again);
    free(dec);
    free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned sel = size ? data[0] : 0;
    check_scan((const char *)data, size, sel);
    check_escape((const char *)data, size);
    return 0;
}
