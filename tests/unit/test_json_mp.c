/* Tests of src/codec/json_mp.c: JSON object -> msgpack map. Expected bytes were produced by
 * python3-msgpack 1.0.3 (msgpack.packb(json.loads(text))), which writes the smallest forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/json_mp.h"
#include "codec/msgpack.h"

static uint8_t buf[1 << 16];

static char *hex(const uint8_t *p, size_t n)
{
    static char out[1 << 17];
    for (size_t i = 0; i < n && i < sizeof out / 2 - 1; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
    out[2 * n] = '\0';
    return out;
}

/* Converts text (with an exact-size heap copy, so ASan sees reads past the end) and compares. */
static void expect(const char *text, uint32_t extra, const char *want_hex)
{
    size_t n = strlen(text);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, text, n);
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, buf, sizeof buf);
    const char *err = NULL;
    size_t at = 0;
    int rc = sl_json_to_mp(copy, n, &w, extra, &err, &at);
    free(copy);
    if (rc != 0) fail_msg("%s: error %s at %zu", text, err, at);
    assert_string_equal(hex(w.data, w.len), want_hex);
}

static void expect_fail(const char *text, const char *want_err)
{
    size_t n = strlen(text);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, text, n);
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, buf, sizeof buf);
    sl_mp_w_raw(&w, "\x01\x02", 2); /* earlier content must survive a failure */
    const char *err = NULL;
    size_t at = 99999;
    int rc = sl_json_to_mp(copy, n, &w, 0, &err, &at);
    free(copy);
    if (rc == 0) fail_msg("%s: converted, expected error %s", text, want_err);
    assert_int_equal(w.len, 2);
    assert_non_null(err);
    if (want_err) assert_string_equal(err, want_err);
    assert_true(at <= n);
}

static void test_values(void **state)
{
    (void)state;
    expect("{\"a\":1}", 0, "81a16101");
    expect("{\"s\":\"a\\\"b\\u00e9\\ud83d\\ude00\\n\\/\"}", 0, "81a173ab612262c3a9f09f98800a2f");
    expect("{\"n\":[0,-1,-32,-33,127,128,255,256,65535,65536,4294967295,4294967296,-128,-129,"
           "-32768,-32769,-2147483648,-2147483649]}",
           0,
           "81a16edc001200ffe0d0df7fcc80ccffcd0100cdffffce00010000ceffffffffcf0000000100000000d0"
           "80d1ff7fd18000d2ffff7fffd280000000d3ffffffff7fffffff");
    expect("{\"big\":18446744073709551615,\"min\":-9223372036854775808}", 0,
           "82a3626967cfffffffffffffffffa36d696ed38000000000000000");
    /* Integers beyond 64 bits fall back to float64. */
    expect("{\"b\":18446744073709551616,\"c\":-9223372036854775809}", 0,
           "82a162cb43f0000000000000a163cbc3e0000000000000");
    expect("{\"f\":1.5,\"e\":1e2,\"g\":-0.25E-1}", 0,
           "83a166cb3ff8000000000000a165cb4059000000000000a167cbbf9999999999999a");
    expect("{\"t\":true,\"f\":false,\"z\":null,\"o\":{},\"a\":[]}", 0,
           "85a174c3a166c2a17ac0a16f80a16190");
    expect(" { \"x\" : { \"y\" : [ 1 , { \"z\" : \"w\" } ] } } \n", 0,
           "81a17881a179920181a17aa177");
    expect("{}", 0, "80");
}

static void test_header_sizes(void **state)
{
    (void)state;
    /* 16 members: map16; a 40-byte string: str8; with and without escapes. */
    char text[512];
    size_t n = 0;
    n += (size_t)snprintf(text + n, sizeof text - n, "{");
    for (int i = 0; i < 16; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s\"k%02d\":%d", i ? "," : "", i, i);
    snprintf(text + n, sizeof text - n, "}");
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, buf, sizeof buf);
    assert_int_equal(sl_json_to_mp(text, strlen(text), &w, 0, NULL, NULL), 0);
    assert_memory_equal(w.data, "\xde\x00\x10\xa3k00\x00\xa3k", 10);

    char t40[64], w40[128], t42[64], w42[128];
    memset(t40, 0, sizeof t40);
    memset(t42, 0, sizeof t42);
    snprintf(t40, sizeof t40, "{\"s\":\"%.40s\"}",
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    snprintf(
        w40, sizeof w40, "81a173d928%.80s",
        "7878787878787878787878787878787878787878787878787878787878787878787878787878787878787878");
    expect(t40, 0, w40);
    /* escaped: 38 x plus \n and \t = 40 bytes after unescaping, from 42 raw */
    snprintf(t42, sizeof t42, "{\"s\":\"%.38s\\n\\t\"}",
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    snprintf(
        w42, sizeof w42, "81a173d928%.76s0a09",
        "7878787878787878787878787878787878787878787878787878787878787878787878787878787878787878");
    expect(t42, 0, w42);
    /* 70,000 array elements: array32 after shrinking nothing; 300-byte string: str16 */
    static char big[200000];
    size_t m = (size_t)snprintf(big, sizeof big, "{\"a\":[");
    for (int i = 0; i < 70000; i++)
        big[m++] = i ? ',' : ' ', big[m++] = '0';
    memcpy(big + m, "]}", 2);
    m += 2;
    static uint8_t out[300000];
    sl_mp_wbuf_init(&w, out, sizeof out);
    assert_int_equal(sl_json_to_mp(big, m, &w, 0, NULL, NULL), 0);
    assert_int_equal(w.len, 1 + 2 + 5 + 70000);
    assert_memory_equal(w.data, "\x81\xa1\x61\xdd\x00\x01\x11\x70\x00", 9);
}

static void test_extra_pairs(void **state)
{
    (void)state;
    /* The caller appends pairs after the map: the header must count them. */
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, buf, sizeof buf);
    assert_int_equal(sl_json_to_mp("{\"a\":{\"b\":1}}", 13, &w, 2, NULL, NULL), 0);
    sl_mp_w_str(&w, "t", 1);
    sl_mp_w_str(&w, "x", 1);
    sl_mp_w_str(&w, "o", 1);
    sl_mp_w_uint(&w, 5);
    assert_string_equal(hex(w.data, w.len), "83a16181a16201a174a178a16f05");
    /* 15 members + 1 extra crosses into map16 */
    expect(
        "{\"0\":0,\"1\":1,\"2\":2,\"3\":3,\"4\":4,\"5\":5,\"6\":6,\"7\":7,\"8\":8,\"9\":9,\"a\":0,"
        "\"b\":0,\"c\":0,\"d\":0,\"e\":0}",
        1,
        "de0010a13000a13101a13202a13303a13404a13505a13606a13707a13808a13909a16100a16200a16300a"
        "16400a16500");
    /* the result is one well-formed map once the pairs are there */
    sl_mp_wbuf_init(&w, buf, sizeof buf);
    assert_int_equal(sl_json_to_mp("{}", 2, &w, 1, NULL, NULL), 0);
    sl_mp_w_str(&w, "k", 1);
    sl_mp_w_int(&w, -1);
    assert_int_equal(sl_mp_check_one(w.data, w.len, NULL), 0);
}

static void test_errors(void **state)
{
    (void)state;
    expect_fail("[1]", "not a JSON object");
    expect_fail("", "not a JSON object");
    expect_fail("\"s\"", "not a JSON object");
    expect_fail("{\"a\":}", "unexpected character");
    expect_fail("{\"a\":1,}", "expected a string key");
    expect_fail("{\"a\":[1,]}", "unexpected character");
    expect_fail("{\"a\" 1}", "expected ':'");
    expect_fail("{\"a\":1 \"b\":2}", "expected ',' or '}'");
    expect_fail("{\"a\":[1 2]}", "expected ',' or ']'");
    expect_fail("{\"a\":1}x", "trailing characters after the object");
    expect_fail("{\"a\":1}{}", "trailing characters after the object");
    expect_fail("{a:1}", "expected a string key");
    expect_fail("{\"a\":01}", "leading zero in a number");
    expect_fail("{\"a\":-}", "invalid number");
    expect_fail("{\"a\":1.}", "invalid number");
    expect_fail("{\"a\":1e}", "invalid number");
    expect_fail("{\"a\":tru}", "unexpected character");
    expect_fail("{\"a\":nul", "unexpected character");
    expect_fail("{\"a\":\"x\ty\"}", "control character in a string");
    expect_fail("{\"a\":\"\\x\"}", "invalid escape in a string");
    expect_fail("{\"a\":\"\\udc00\"}", "invalid escape in a string");
    expect_fail("{\"a\":\"\\ud800\"}", "invalid escape in a string");
    expect_fail("{\"a\":\"abc", "unterminated string");
    expect_fail("{\"a\":NaN}", "unexpected character");
    /* every proper prefix of a valid object fails, leaving out as it was */
    const char *ok = "{\"a\":[1,-2.5e3,{\"b\":\"c\\n\"}],\"d\":true,\"e\":null}";
    for (size_t n = 0; n < strlen(ok); n++) {
        char *p = malloc(n ? n : 1);
        memcpy(p, ok, n);
        struct sl_mp_wbuf w;
        sl_mp_wbuf_init(&w, buf, sizeof buf);
        const char *err = NULL;
        assert_int_equal(sl_json_to_mp(p, n, &w, 0, &err, NULL), -1);
        assert_int_equal(w.len, 0);
        free(p);
    }
}

static void test_depth(void **state)
{
    (void)state;
    char text[400];
    /* the top-level object is level 1: 63 more nested arrays are fine, 64 are not */
    for (int extra = 63; extra <= 64; extra++) {
        size_t n = 0;
        n += (size_t)snprintf(text + n, sizeof text - n, "{\"a\":");
        for (int i = 0; i < extra; i++)
            text[n++] = '[';
        for (int i = 0; i < extra; i++)
            text[n++] = ']';
        text[n++] = '}';
        struct sl_mp_wbuf w;
        sl_mp_wbuf_init(&w, buf, sizeof buf);
        const char *err = NULL;
        int rc = sl_json_to_mp(text, n, &w, 0, &err, NULL);
        if (extra == 63) {
            assert_int_equal(rc, 0);
            assert_int_equal(sl_mp_check_one(w.data, w.len, NULL), 0);
        } else {
            assert_int_equal(rc, -1);
            assert_string_equal(err, "nesting deeper than 64");
        }
    }
}

static void test_overflow(void **state)
{
    (void)state;
    uint8_t small[8];
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, small, sizeof small);
    const char *err = NULL;
    assert_int_equal(sl_json_to_mp("{\"abcdefgh\":1}", 14, &w, 0, &err, NULL), -1);
    assert_string_equal(err, "output buffer full");
    assert_int_equal(w.len, 0);
}

/* JSON -> msgpack -> JSON (sl_mp_to_json) gives back the compact input. */
static void test_round_trip(void **state)
{
    (void)state;
    const char *docs[] = {
        "{\"seq\":123,\"time\":\"2026-11-27T00:00:00.123Z\",\"level\":\"INFO\",\"message\":\"GET "
        "/x \\\"q\\\"\\n\\tZ\\u00fcrich\",\"n\":[1,-2,{\"deep\":{\"er\":[true,false,null]}}]}",
        "{\"empty\":\"\",\"o\":{},\"a\":[],\"u\":18446744073709551615,\"i\":-9223372036854775808}",
    };
    for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
        struct sl_mp_wbuf w;
        sl_mp_wbuf_init(&w, buf, sizeof buf);
        assert_int_equal(sl_json_to_mp(docs[d], strlen(docs[d]), &w, 0, NULL, NULL), 0);
        char back[4096];
        const char *err = NULL;
        ssize_t n = sl_mp_to_json(w.data, w.len, back, sizeof back, &err);
        assert_true(n > 0 && (size_t)n < sizeof back);
        back[n] = '\0';
        /* sl_mp_to_json writes Zürich as UTF-8 and \u00fc is the same character */
        if (d == 0)
            assert_string_equal(back,
                                "{\"seq\":123,\"time\":\"2026-11-27T00:00:00.123Z\",\"level\":"
                                "\"INFO\",\"message\":\"GET /x \\\"q\\\"\\n\\tZ\xc3\xbcrich\","
                                "\"n\":[1,-2,{\"deep\":{\"er\":[true,false,null]}}]}");
        else
            assert_string_equal(back, docs[d]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),      cmocka_unit_test(test_header_sizes),
        cmocka_unit_test(test_extra_pairs), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_depth),       cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
