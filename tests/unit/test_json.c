/* Tests of src/codec/json.c: validation with error offsets, path lookup, compaction, escaping,
 * time parsing and formatting. Expected epoch values were computed independently with Python's
 * calendar.timegm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/json.h"

#define LIT(s) s, sizeof(s) - 1

static int scan(const char *buf, size_t len, struct sl_json_scan *s)
{
    memset(s, 0, sizeof(*s));
    return sl_json_scan_object(buf, len, s);
}

/* ---- validity table ---- */

struct valid_case {
    const char *text;
    size_t len;
};

static const struct valid_case valid[] = {
    {LIT("{}")},
    {LIT(" \t\r\n{ \t\r\n} \t\r\n")},
    {LIT("{\"a\":1}")},
    {LIT("{\"\":\"\"}")},
    {LIT("{\"n\":[0,-0,1,-1,1.5,-1.5e10,1E+2,1e-2,0.0,0e0,123456789012345678901234567890]}")},
    {LIT("{\"t\":true,\"f\":false,\"z\":null}")},
    {LIT("{\"a\":[[],{},[{}],{\"b\":[[[]]]}]}")},
    {LIT("{\"e\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000 \\u00e9 \\uFFFF \\uD83D\\uDE00\"}")},
    {LIT("{\"u\":\"\xc2\x80 \xdf\xbf \xe0\xa0\x80 \xed\x9f\xbf \xee\x80\x80 \xef\xbf\xbf\"}")},
    {LIT("{\"u\":\"\xf0\x90\x80\x80 \xf4\x8f\xbf\xbf \xe2\x82\xac\"}")},
    {LIT("{\"del\":\"\x7f\"}")},
    {LIT("{\"k\xc3\xa9y\":1}")},
    {LIT("{\"a\" : 1 , \"b\" : [ 1 , 2 ] }")},
};

static void test_valid_texts(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(valid) / sizeof(valid[0]); k++) {
        struct sl_json_scan s;
        int rc = scan(valid[k].text, valid[k].len, &s);
        if (rc != 0) print_error("case %zu: %s at %zu\n", k, s.err_msg, s.err_offset);
        assert_int_equal(rc, 0);
        assert_null(s.err_msg);
    }
}

struct invalid_case {
    const char *text;
    size_t len;
    size_t off;
    const char *msg; /* substring of err_msg */
};

static const struct invalid_case invalid[] = {
    {LIT(""), 0, "unexpected end of input"},
    {LIT("   "), 3, "unexpected end of input"},
    {LIT("[]"), 0, "not a JSON object"},
    {LIT("\"s\""), 0, "not a JSON object"},
    {LIT("42"), 0, "not a JSON object"},
    {LIT("true"), 0, "not a JSON object"},
    {LIT("\xef\xbb\xbf{}"), 0, "not a JSON object"},
    {LIT("{"), 1, "unexpected end of input"},
    {LIT("{\"a\""), 4, "unexpected end of input"},
    {LIT("{\"a\":}"), 5, "unexpected character"},
    {LIT("{\"a\":1,}"), 7, "expected string key"},
    {LIT("{\"a\":[1,]}"), 8, "unexpected character"},
    {LIT("{\"a\" 1}"), 5, "expected ':'"},
    {LIT("{\"a\":1 \"b\":2}"), 7, "expected ',' or '}'"},
    {LIT("{\"a\":[1 2]}"), 8, "expected ',' or ']'"},
    {LIT("{a:1}"), 1, "expected string key"},
    {LIT("{'a':1}"), 1, "expected string key"},
    {LIT("{,}"), 1, "expected string key"},
    {LIT("{\"a\":1,,}"), 7, "expected string key"},
    {LIT("{\"a\":[}"), 6, "unexpected character"},
    {LIT("{\"a\":{]}"), 6, "expected string key"},
    {LIT("{\"a\":[1}"), 7, "expected ',' or ']'"},
    {LIT("{\"a\":01}"), 6, "leading zero"},
    {LIT("{\"a\":-}"), 6, "invalid number"},
    {LIT("{\"a\":1.}"), 7, "invalid number"},
    {LIT("{\"a\":.5}"), 5, "unexpected character"},
    {LIT("{\"a\":1e}"), 7, "invalid number"},
    {LIT("{\"a\":1e+}"), 8, "invalid number"},
    {LIT("{\"a\":+1}"), 5, "unexpected character"},
    {LIT("{\"a\":NaN}"), 5, "unexpected character"},
    {LIT("{\"a\":Infinity}"), 5, "unexpected character"},
    {LIT("{\"a\":-Infinity}"), 6, "invalid number"},
    {LIT("{\"a\":tru}"), 8, "invalid literal"},
    {LIT("{\"a\":True}"), 5, "unexpected character"},
    {LIT("{\"a\":nul"), 8, "unexpected end of input"},
    {LIT("{\"a\":\"x\ty\"}"), 7, "control character"},
    {LIT("{\"a\":\"x\ny\"}"), 7, "control character"},
    {LIT("{\"a\":\"\\x\"}"), 7, "invalid escape"},
    {LIT("{\"a\":\"\\u12G4\"}"), 10, "invalid \\u escape"},
    {LIT("{\"a\":\"\\uDE00\"}"), 6, "unpaired surrogate"},
    {LIT("{\"a\":\"\\uD83D\"}"), 12, "unpaired surrogate"},
    {LIT("{\"a\":\"\\uD83Dx\"}"), 12, "unpaired surrogate"},
    {LIT("{\"a\":\"\\uD83D\\n\"}"), 13, "unpaired surrogate"},
    {LIT("{\"a\":\"\\uD83D\\uD83D\"}"), 12, "unpaired surrogate"},
    {LIT("{\"a\":\"\\uD83D\\u00\"}"), 16, "invalid \\u escape"},
    {LIT("{\"a\":\"abc"), 9, "unexpected end of input"},
    {LIT("{\"a\":\"ab\\"), 9, "unexpected end of input"},
    {LIT("{\"a\":1}x"), 7, "trailing data"},
    {LIT("{\"a\":1}{}"), 7, "trailing data"},
    {LIT("{\"a\":1} \n x"), 10, "trailing data"},
    {LIT("{\"a\":1}\0"), 7, "trailing data"},
    /* UTF-8: the offset is the first byte that cannot continue a well-formed sequence */
    {LIT("{\"a\":\"\x80\"}"), 6, "invalid UTF-8"},
    {LIT("{\"a\":\"\xc0\x80\"}"), 6, "invalid UTF-8"},
    {LIT("{\"a\":\"\xc1\xbf\"}"), 6, "invalid UTF-8"},
    {LIT("{\"a\":\"\xe0\x80\x80\"}"), 7, "invalid UTF-8"},
    {LIT("{\"a\":\"\xe0\x9f\xbf\"}"), 7, "invalid UTF-8"},
    {LIT("{\"a\":\"\xed\xa0\x80\"}"), 7, "invalid UTF-8"},
    {LIT("{\"a\":\"\xed\xbf\xbf\"}"), 7, "invalid UTF-8"},
    {LIT("{\"a\":\"\xf0\x80\x80\x80\"}"), 7, "invalid UTF-8"},
    {LIT("{\"a\":\"\xf0\x8f\xbf\xbf\"}"), 7, "invalid UTF-8"},
    {LIT("{\"a\":\"\xf4\x90\x80\x80\"}"), 7, "invalid UTF-8"},
    {LIT("{\"a\":\"\xf5\x80\x80\x80\"}"), 6, "invalid UTF-8"},
    {LIT("{\"a\":\"\xff\"}"), 6, "invalid UTF-8"},
    {LIT("{\"a\":\"\xe2\x82\"}"), 8, "invalid UTF-8"},
    {LIT("{\"a\":\"\xe2\x82"), 8, "unexpected end of input"},
    {LIT("{\"a\":\"\xf0\x9f\x98\"}"), 9, "invalid UTF-8"},
    {LIT("{\"\xff\":1}"), 2, "invalid UTF-8"},
};

static void test_invalid_texts(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(invalid) / sizeof(invalid[0]); k++) {
        struct sl_json_scan s;
        int rc = scan(invalid[k].text, invalid[k].len, &s);
        if (rc != -1 || s.err_offset != invalid[k].off || !s.err_msg ||
            !strstr(s.err_msg, invalid[k].msg))
            print_error("case %zu: rc %d, %s at %zu (want %s at %zu)\n", k, rc,
                        s.err_msg ? s.err_msg : "(null)", s.err_offset, invalid[k].msg,
                        invalid[k].off);
        assert_int_equal(rc, -1);
        assert_int_equal(s.err_offset, invalid[k].off);
        assert_non_null(strstr(s.err_msg, invalid[k].msg));
    }
}

/* Every proper prefix of a valid object is invalid, and the error is at its end. */
static void test_every_prefix_fails(void **state)
{
    (void)state;
    static const char text[] =
        "{\"a\":[1,-2.5e3,true,false,null,{\"b\":\"\\u00e9\\uD83D\\uDE00\xe2\x82\xac\"}],\"c\":{}}";
    size_t len = sizeof(text) - 1;
    struct sl_json_scan s;
    assert_int_equal(scan(text, len, &s), 0);
    for (size_t n = 0; n < len; n++) {
        assert_int_equal(scan(text, n, &s), -1);
        assert_int_equal(s.err_offset, n);
        assert_string_equal(s.err_msg, "unexpected end of input");
    }
}

/* ---- RFC 8259 section 13 examples ---- */

static const char rfc_image[] =
    "{\n"
    "  \"Image\": {\n"
    "      \"Width\":  800,\n"
    "      \"Height\": 600,\n"
    "      \"Title\":  \"View from 15th Floor\",\n"
    "      \"Thumbnail\": {\n"
    "          \"Url\":    \"http://www.example.com/image/481989943\",\n"
    "          \"Height\": 125,\n"
    "          \"Width\":  100\n"
    "      },\n"
    "      \"Animated\" : false,\n"
    "      \"IDs\": [116, 943, 234, 38793]\n"
    "    }\n"
    "}";

static void assert_val(const struct sl_json_scan *s, size_t k, const char *want)
{
    if (!want) {
        assert_null(s->val[k]);
        assert_int_equal(s->vlen[k], 0);
        return;
    }
    assert_non_null(s->val[k]);
    assert_int_equal(s->vlen[k], strlen(want));
    assert_memory_equal(s->val[k], want, strlen(want));
}

static void test_rfc8259_examples(void **state)
{
    (void)state;
    struct sl_json_scan s;
    memset(&s, 0, sizeof(s));
    s.paths[0] = "Image.Thumbnail.Width";
    s.paths[1] = "Image.Width";
    s.paths[2] = "Image.IDs";
    s.paths[3] = "Image.Title";
    s.n_paths = 4;
    assert_int_equal(sl_json_scan_object(rfc_image, sizeof(rfc_image) - 1, &s), 0);
    assert_val(&s, 0, "100");
    assert_val(&s, 1, "800");
    assert_val(&s, 2, "[116, 943, 234, 38793]");
    assert_val(&s, 3, "\"View from 15th Floor\"");
    assert_int_equal(s.has_raw_newline, 1);

    char out[sizeof(rfc_image)];
    size_t n = sl_json_compact(rfc_image, sizeof(rfc_image) - 1, out);
    static const char want[] =
        "{\"Image\":{\"Width\":800,\"Height\":600,\"Title\":\"View from 15th Floor\","
        "\"Thumbnail\":{\"Url\":\"http://www.example.com/image/481989943\",\"Height\":125,"
        "\"Width\":100},\"Animated\":false,\"IDs\":[116,943,234,38793]}}";
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(out, want, n);
    assert_int_equal(scan(out, n, &s), 0);
    assert_int_equal(s.has_raw_newline, 0);

    /* The other section 13 texts are valid JSON but not objects. */
    static const char arr[] = "[\n  {\n     \"precision\": \"zip\",\n     \"Latitude\":  37.7668\n"
                              "  }\n]";
    assert_int_equal(scan(arr, sizeof(arr) - 1, &s), -1);
    assert_string_equal(s.err_msg, "not a JSON object");
    assert_int_equal(s.err_offset, 0);
    assert_int_equal(scan(LIT("\"Hello world!\""), &s), -1);
    assert_string_equal(s.err_msg, "not a JSON object");
}

/* ---- paths ---- */

struct path_case {
    const char *text;
    const char *path;
    const char *want; /* NULL: absent */
};

static const struct path_case path_cases[] = {
    {"{\"time\":\"2026-11-27T10:00:00Z\",\"msg\":\"x\"}", "time", "\"2026-11-27T10:00:00Z\""},
    {"{\"msg\":\"x\",\"kafka\":{\"topic\":\"t\",\"ts\":1700000000123}}", "kafka.ts",
     "1700000000123"},
    {"{\"kafka\":{\"ts\":{\"s\":1}}}", "kafka", "{\"ts\":{\"s\":1}}"},
    {"{\"kafka\":{\"ts\":{\"s\":1}}}", "kafka.ts", "{\"s\":1}"},
    {"{ \"a\" : { \"b\" : { \"c\" : [ 1 , 2 ] } } }", "a.b.c", "[ 1 , 2 ]"},
    {"{\"time\":1,\"time\":2}", "time", "1"},
    {"{\"x\":{\"time\":5},\"time\":6}", "time", "6"},
    {"{\"x\":{\"time\":5}}", "time", NULL},
    {"{\"a\":{\"b\":1},\"a\":{\"b\":2}}", "a.b", "1"},
    {"{\"a\":{\"x\":1},\"a\":{\"b\":2}}", "a.b", "2"},
    {"{\"a\":1,\"a\":{\"b\":4}}", "a.b", "4"},
    {"{\"a\":[{\"b\":1}],\"a\":{\"b\":3}}", "a.b", "3"},
    {"{\"a\":[{\"b\":1}]}", "a.b", NULL},
    {"{\"a\":{\"c\":{\"b\":1}},\"b\":2}", "a.b", NULL},
    {"{\"a\":{},\"a\":{\"b\":true}}", "a.b", "true"},
    {"{\"a\":{\"b\":{\"x\":1},\"b\":{\"c\":null}}}", "a.b.c", "null"},
    {"{\"ab\":1,\"a\":2}", "a", "2"},
    {"{\"a\":{\"bc\":1}}", "a.b", NULL},
    {"{\"k\\\"ey\":1}", "k\\\"ey", "1"},
    /* keys are compared raw: an escaped spelling does not match */
    {"{\"\\u0074ime\":1}", "time", NULL},
    {"{\"t\":[1,{\"time\":2}],\"time\":\"\"}", "time", "\"\""},
};

static void test_paths(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(path_cases) / sizeof(path_cases[0]); k++) {
        struct sl_json_scan s;
        memset(&s, 0, sizeof(s));
        s.paths[0] = path_cases[k].path;
        s.n_paths = 1;
        int rc = sl_json_scan_object(path_cases[k].text, strlen(path_cases[k].text), &s);
        if (rc != 0) print_error("case %zu: %s\n", k, s.err_msg);
        assert_int_equal(rc, 0);
        const char *want = path_cases[k].want;
        if ((want == NULL) != (s.val[0] == NULL) ||
            (want && (s.vlen[0] != strlen(want) || memcmp(s.val[0], want, s.vlen[0]))))
            print_error("case %zu: got '%.*s'\n", k, (int)s.vlen[0], s.val[0] ? s.val[0] : "");
        assert_val(&s, 0, want);
    }
}

static void test_paths_several_and_null(void **state)
{
    (void)state;
    static const char text[] = "{\"a\":1,\"b\":{\"c\":2},\"d\":\"x\"}";
    struct sl_json_scan s;
    memset(&s, 0, sizeof(s));
    s.paths[0] = NULL;
    s.paths[1] = "b.c";
    s.paths[2] = "missing";
    s.paths[3] = "d";
    s.n_paths = 4;
    s.val[0] = text; /* stale outputs must be cleared */
    assert_int_equal(sl_json_scan_object(text, sizeof(text) - 1, &s), 0);
    assert_val(&s, 0, NULL);
    assert_val(&s, 1, "2");
    assert_val(&s, 2, NULL);
    assert_val(&s, 3, "\"x\"");

    /* a path found before an error is not reported */
    static const char bad[] = "{\"d\":\"x\",\"e\":}";
    assert_int_equal(sl_json_scan_object(bad, sizeof(bad) - 1, &s), -1);
    assert_null(s.val[3]);
    assert_int_equal(s.err_offset, 13);
}

static void test_raw_newline_flag(void **state)
{
    (void)state;
    struct sl_json_scan s;
    assert_int_equal(scan(LIT("{\"a\":\"\\n\"}"), &s), 0);
    assert_int_equal(s.has_raw_newline, 0);
    assert_int_equal(scan(LIT("{\"a\":1,\r\"b\":2}"), &s), 0);
    assert_int_equal(s.has_raw_newline, 1);
    assert_int_equal(scan(LIT("{\"a\":[1,\n2]}"), &s), 0);
    assert_int_equal(s.has_raw_newline, 1);
    assert_int_equal(scan(LIT("{\"a\":1}\n"), &s), 0);
    assert_int_equal(s.has_raw_newline, 1);
}

static void test_depth_limit(void **state)
{
    (void)state;
    /* {"a": + n '[' + n ']' + } ; the object is depth 1, so n = 1023 reaches the limit exactly */
    size_t big = 200000;
    char *buf = malloc(6 + 2 * big);
    assert_non_null(buf);
    struct sl_json_scan s;
    for (size_t n = SL_JSON_MAX_DEPTH - 1; n <= SL_JSON_MAX_DEPTH; n++) {
        memcpy(buf, "{\"a\":", 5);
        memset(buf + 5, '[', n);
        memset(buf + 5 + n, ']', n);
        buf[5 + 2 * n] = '}';
        int rc = scan(buf, 6 + 2 * n, &s);
        if (n == SL_JSON_MAX_DEPTH - 1) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, -1);
            assert_string_equal(s.err_msg, "nesting too deep");
            assert_int_equal(s.err_offset, 5 + SL_JSON_MAX_DEPTH - 1);
        }
    }
    /* far deeper than any stack would take recursively: still a clean error */
    memcpy(buf, "{\"a\":", 5);
    memset(buf + 5, '[', big);
    assert_int_equal(scan(buf, 5 + big, &s), -1);
    assert_string_equal(s.err_msg, "nesting too deep");
    /* objects count too */
    size_t n = 0;
    buf[n++] = '{';
    for (size_t d = 1; d <= SL_JSON_MAX_DEPTH; d++) {
        memcpy(buf + n, "\"k\":{", 5);
        n += 5;
    }
    assert_int_equal(scan(buf, n, &s), -1);
    assert_string_equal(s.err_msg, "nesting too deep");
    assert_int_equal(s.err_offset, n - 1);
    free(buf);
}

/* ---- compact ---- */

static void test_compact(void **state)
{
    (void)state;
    static const char in[] =
        " {\r\n\t\"a b\" : [ 1 , \"x y\\\" z\\\\\" , { } ] ,\n \"c\":\"\\n\" } \n";
    static const char want[] = "{\"a b\":[1,\"x y\\\" z\\\\\",{}],\"c\":\"\\n\"}";
    char out[sizeof(in)];
    size_t n = sl_json_compact(in, sizeof(in) - 1, out);
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(out, want, n);
}

/* ---- escape / unescape ---- */

static void test_escape_vectors(void **state)
{
    (void)state;
    struct {
        const char *in;
        size_t len;
        const char *want;
    } v[] = {
        {LIT("plain"), "plain"},
        {LIT("a\"b\\c/d"), "a\\\"b\\\\c/d"},
        {LIT("\n\r\t\b\f"), "\\n\\r\\t\\b\\f"},
        {LIT("\0\x01\x1f\x7f"), "\\u0000\\u0001\\u001f\x7f"},
        {LIT("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
        {LIT("\xff"), "\xef\xbf\xbd"},
        {LIT("a\x80z"), "a\xef\xbf\xbdz"},
        /* a truncated sequence is one error; the byte that broke it is looked at again */
        {LIT("\xe2\x82"), "\xef\xbf\xbd"},
        {LIT("\xe2\x82"
             "A"),
         "\xef\xbf\xbd"
         "A"},
        {LIT("\xf0\x9f\x98\""), "\xef\xbf\xbd\\\""},
        {LIT("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd"},
        {LIT("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {LIT("\xf4\x90\x80\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    };
    for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
        char out[64];
        size_t n = sl_json_escape(v[k].in, v[k].len, out);
        assert_int_equal(n, strlen(v[k].want));
        assert_memory_equal(out, v[k].want, n);
    }
}

/* escape() output wrapped as {"m":"..."} must scan, and must be a fixed point: decoding it and
 * escaping again gives the same bytes (so no input byte leaks through unescaped). */
static int scans_wrapped(const char *in, size_t len)
{
    char *buf = malloc(6 * len + 16);
    char *dec = malloc(3 * len + 1);
    char *again = malloc(18 * len + 1);
    assert_non_null(buf);
    assert_non_null(dec);
    assert_non_null(again);
    memcpy(buf, "{\"m\":\"", 6);
    size_t elen = sl_json_escape(in, len, buf + 6);
    assert_true(elen <= 6 * len);
    size_t n = 6 + elen;
    memcpy(buf + n, "\"}", 2);
    n += 2;
    struct sl_json_scan s;
    memset(&s, 0, sizeof(s));
    s.paths[0] = "m";
    s.n_paths = 1;
    int rc = sl_json_scan_object(buf, n, &s);
    if (rc == 0) {
        ssize_t d = sl_json_unescape(s.val[0], s.vlen[0], dec, 3 * len + 1);
        if (d < 0 || sl_json_escape(dec, (size_t)d, again) != elen ||
            memcmp(again, buf + 6, elen) != 0)
            rc = -1;
    }
    free(again);
    free(dec);
    free(buf);
    return rc;
}

static void test_escape_any_bytes_scans(void **state)
{
    (void)state;
    char b[4];
    for (int c = 0; c < 256; c++) {
        b[0] = (char)c;
        assert_int_equal(scans_wrapped(b, 1), 0);
    }
    /* all two-byte strings */
    for (int c = 0; c < 65536; c++) {
        b[0] = (char)(c >> 8);
        b[1] = (char)c;
        assert_int_equal(scans_wrapped(b, 2), 0);
    }
    /* pseudo-random longer strings, biased towards high bytes */
    uint32_t x = 12345;
    char r[257];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(iter % 257);
        for (size_t k = 0; k < len; k++) {
            x = x * 1103515245u + 12345u;
            r[k] = (char)((x >> 16) | ((x >> 8) & 0x80));
        }
        assert_int_equal(scans_wrapped(r, len), 0);
    }
}

static void test_unescape(void **state)
{
    (void)state;
    char out[64];
    static const char tok[] = "\"a\\u00e9\\uD83D\\uDE00\\n\\\"\\\\\\/\xe2\x82\xac\"";
    static const char want[] = "a\xc3\xa9\xf0\x9f\x98\x80\n\"\\/\xe2\x82\xac";
    ssize_t n = sl_json_unescape(tok, sizeof(tok) - 1, out, sizeof(out));
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(out, want, (size_t)n);
    assert_int_equal(sl_json_unescape(tok, sizeof(tok) - 1, out, sizeof(want) - 2), -1);
    assert_int_equal(sl_json_unescape(tok, sizeof(tok) - 1, out, sizeof(want) - 1),
                     sizeof(want) - 1);
    assert_int_equal(sl_json_unescape(LIT("\"\""), out, 0), 0);
    assert_int_equal(sl_json_unescape(LIT("123"), out, sizeof(out)), -1);
    assert_int_equal(sl_json_unescape(LIT("\""), out, sizeof(out)), -1);
    assert_int_equal(sl_json_unescape(LIT("\"\\\""), out, sizeof(out)), -1);
    assert_int_equal(sl_json_unescape(LIT("\"\\uD83D\""), out, sizeof(out)), -1);
    assert_int_equal(sl_json_unescape(LIT("\"\\q\""), out, sizeof(out)), -1);
}

/* ---- time ---- */

#define S 1000000000LL

struct time_case {
    const char *tok;
    int rc;
    int64_t ns;
};

static const struct time_case time_cases[] = {
    {"\"2026-11-27T10:00:00Z\"", 0, 1795773600 * S},
    {"\"2026-11-27t10:00:00z\"", 0, 1795773600 * S},
    {"\"2026-11-27 10:00:00Z\"", 0, 1795773600 * S},
    {"\"2026-11-27T10:00:00+00:00\"", 0, 1795773600 * S},
    {"\"2026-11-27T10:00:00-00:00\"", 0, 1795773600 * S},
    {"\"2026-11-27T10:00:00+05:30\"", 0, 1795753800 * S},
    {"\"2026-11-27T10:00:00-08:00\"", 0, 1795802400 * S},
    {"\"2026-01-01T00:30:00+01:00\"", 0, 1767223800 * S},
    {"\"2024-02-29T00:00:00Z\"", 0, 1709164800 * S},
    {"\"2000-02-29T12:34:56Z\"", 0, 951827696 * S},
    {"\"2026-11-27T10:00:00.5Z\"", 0, 1795773600 * S + 500000000},
    {"\"2026-11-27T10:00:00.123456789Z\"", 0, 1795773600 * S + 123456789},
    {"\"2026-11-27T10:00:00.000000001+05:30\"", 0, 1795753800 * S + 1},
    {"\"2026-11-27T10:00:00.120Z\"", 0, 1795773600 * S + 120000000},
    {"\"1969-12-31T23:59:59.5Z\"", 0, -500000000},
    {"\"1970-01-01T00:00:00Z\"", 0, 0},
    {"\"2262-04-11T23:47:16.854775807Z\"", 0, INT64_MAX},
    {"\"1677-09-21T00:12:43.145224192Z\"", 0, INT64_MIN},
    {"\"2262-04-11T23:47:16.854775808Z\"", -1, 0},
    {"\"1677-09-21T00:12:43.145224191Z\"", -1, 0},
    {"\"9999-12-31T23:59:59Z\"", -1, 0},
    {"\"2026-02-29T00:00:00Z\"", -1, 0},
    {"\"1900-02-29T00:00:00Z\"", -1, 0},
    {"\"2026-04-31T00:00:00Z\"", -1, 0},
    {"\"2026-13-01T00:00:00Z\"", -1, 0},
    {"\"2026-00-10T00:00:00Z\"", -1, 0},
    {"\"2026-01-00T00:00:00Z\"", -1, 0},
    {"\"2026-01-32T00:00:00Z\"", -1, 0},
    {"\"2026-01-01T24:00:00Z\"", -1, 0},
    {"\"2026-01-01T00:60:00Z\"", -1, 0},
    {"\"2026-01-01T00:00:60Z\"", -1, 0},
    {"\"2026-01-01T00:00:00+24:00\"", -1, 0},
    {"\"2026-01-01T00:00:00+05:60\"", -1, 0},
    {"\"2026-01-01T00:00:00+0530\"", -1, 0},
    {"\"2026-01-01T00:00:00+05:3\"", -1, 0},
    {"\"2026-01-01T00:00:00\"", -1, 0},
    {"\"2026-01-01T00:00:00.Z\"", -1, 0},
    {"\"2026-01-01T00:00:00.1234567890Z\"", -1, 0},
    {"\"2026-01-01T00:00:00ZZ\"", -1, 0},
    {"\"2026-01-01X00:00:00Z\"", -1, 0},
    {"\"2026-1-01T00:00:00Z\"", -1, 0},
    {"\"2026-01-01\"", -1, 0},
    {"\"+026-01-01T00:00:00Z\"", -1, 0},
    /* the escaped form of a valid string is the same string */
    {"\"2026-11-27\\u005410:00:00Z\"", 0, 1795773600 * S},
    /* epoch numbers, unit by magnitude */
    {"0", 0, 0},
    {"1700000000", 0, 1700000000 * S},
    {"1700000000.5", 0, 1700000000 * S + 500000000},
    {"1700000000.123456789", 0, 1700000000 * S + 123456789},
    {"1700000000.1234567891", 0, 1700000000 * S + 123456789},
    {"-1", 0, -S},
    {"-1.5", 0, -1500000000},
    {"0.000000001", 0, 1},
    {"1.7e9", 0, 1700000000 * S},
    {"17E8", 0, 1700000000 * S},
    {"1700000000123", 0, 1700000000123000000},
    {"1700000000123.5", 0, 1700000000123500000},
    {"1.700000000123e12", 0, 1700000000123000000},
    {"1700000000123456", 0, 1700000000123456000},
    {"1700000000123456789", 0, 1700000000123456789},
    {"100000000001", 0, 100000000001000000},    /* just above 1e11: ms */
    {"100000000000", -1, 0},                    /* 1e11 s is past 2262 */
    {"100000000000000", -1, 0},                 /* 1e14 is still ms: past 2262 */
    {"100000000000001", 0, 100000000000001000}, /* above: us */
    {"100000000000000001", 0, 100000000000000001},
    {"9223372036854775807", 0, INT64_MAX},
    {"9223372036854775808", -1, 0},
    {"-9223372036854775808", 0, INT64_MIN},
    {"-9223372036854775809", -1, 0},
    {"1e30", -1, 0},
    {"0e999", 0, 0},
    {"\"1700000000\"", 0, 1700000000 * S},
    {"\"1700000000123\"", 0, 1700000000123000000},
    {"\"1700000000.25\"", 0, 1700000000250000000},
    {"\" 1700000000\"", -1, 0},
    {"\"1700000000 \"", -1, 0},
    {"\"\"", -1, 0},
    {"\"abc\"", -1, 0},
    {"true", -1, 0},
    {"null", -1, 0},
    {"{}", -1, 0},
    {"01", -1, 0},
    {"1.", -1, 0},
    {"", -1, 0},
};

static void test_parse_time(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(time_cases) / sizeof(time_cases[0]); k++) {
        int64_t ns = 42;
        int rc = sl_json_parse_time(time_cases[k].tok, strlen(time_cases[k].tok), &ns);
        if (rc != time_cases[k].rc || (rc == 0 && ns != time_cases[k].ns))
            print_error("case %zu %s: rc %d ns %lld\n", k, time_cases[k].tok, rc, (long long)ns);
        assert_int_equal(rc, time_cases[k].rc);
        if (rc == 0) assert_true(ns == time_cases[k].ns);
    }
}

static void test_format_time(void **state)
{
    (void)state;
    struct {
        int64_t ns;
        const char *want;
    } v[] = {
        {0, "1970-01-01T00:00:00.000000000Z"},
        {-1, "1969-12-31T23:59:59.999999999Z"},
        {1795773600 * S + 123456789, "2026-11-27T10:00:00.123456789Z"},
        {1709164800 * S - 1, "2024-02-28T23:59:59.999999999Z"},
        {1709164800 * S, "2024-02-29T00:00:00.000000000Z"},
        {951827696 * S, "2000-02-29T12:34:56.000000000Z"},
        {INT64_MAX, "2262-04-11T23:47:16.854775807Z"},
        {INT64_MIN, "1677-09-21T00:12:43.145224192Z"},
    };
    for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
        char out[31];
        memset(out, 'x', sizeof(out));
        assert_int_equal(sl_time_format_rfc3339(v[k].ns, out), 30);
        assert_string_equal(out, v[k].want);
    }
}

static void test_time_round_trip(void **state)
{
    (void)state;
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int iter = 0; iter < 200000; iter++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t ns = (int64_t)x;
        char tok[33];
        tok[0] = '"';
        sl_time_format_rfc3339(ns, tok + 1);
        tok[31] = '"';
        int64_t back = 0;
        assert_int_equal(sl_json_parse_time(tok, 32, &back), 0);
        assert_true(back == ns);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_texts),
        cmocka_unit_test(test_invalid_texts),
        cmocka_unit_test(test_every_prefix_fails),
        cmocka_unit_test(test_rfc8259_examples),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_paths_several_and_null),
        cmocka_unit_test(test_raw_newline_flag),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_compact),
        cmocka_unit_test(test_escape_vectors),
        cmocka_unit_test(test_escape_any_bytes_scans),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_format_time),
        cmocka_unit_test(test_time_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
