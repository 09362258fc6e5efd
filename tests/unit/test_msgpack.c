/* Tests of src/codec/msgpack.c: header decoding of every format family, bounded skipping, the
 * framer's "need more" bounds (array and map headers that declare billions of elements), the
 * writer's canonical encodings, and msgpack -> JSON golden outputs. Expected encodings follow the
 * msgpack spec (smallest form), as produced by python3-msgpack. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/json.h"
#include "codec/msgpack.h"
#include "test_util.h"

struct read_case {
    const char *hex;
    enum sl_mp_type type;
    uint64_t u;
    int64_t i;
    uint32_t n;
};

static const struct read_case reads[] = {
    {"00", SL_MP_UINT, 0, 0, 0},
    {"7f", SL_MP_UINT, 127, 0, 0},
    {"cc ff", SL_MP_UINT, 255, 0, 0},
    {"cd 01 00", SL_MP_UINT, 256, 0, 0},
    {"ce 55 ec e6 f8", SL_MP_UINT, 1441588984, 0, 0},
    {"cf ff ff ff ff ff ff ff ff", SL_MP_UINT, UINT64_MAX, 0, 0},
    {"d0 05", SL_MP_UINT, 5, 0, 0}, /* positive value in a signed encoding */
    {"ff", SL_MP_INT, 0, -1, 0},
    {"e0", SL_MP_INT, 0, -32, 0},
    {"d0 80", SL_MP_INT, 0, -128, 0},
    {"d1 80 00", SL_MP_INT, 0, -32768, 0},
    {"d2 80 00 00 00", SL_MP_INT, 0, INT32_MIN, 0},
    {"d3 80 00 00 00 00 00 00 00", SL_MP_INT, 0, INT64_MIN, 0},
    {"c0", SL_MP_NIL, 0, 0, 0},
    {"c2", SL_MP_BOOL, 0, 0, 0},
    {"c3", SL_MP_BOOL, 1, 0, 0},
    {"a3 61 62 63", SL_MP_STR, 0, 0, 3},
    {"d9 03 61 62 63", SL_MP_STR, 0, 0, 3},
    {"da 00 03 61 62 63", SL_MP_STR, 0, 0, 3},
    {"db 00 00 00 03 61 62 63", SL_MP_STR, 0, 0, 3},
    {"c4 02 00 01", SL_MP_BIN, 0, 0, 2},
    {"c5 00 02 00 01", SL_MP_BIN, 0, 0, 2},
    {"c6 00 00 00 02 00 01", SL_MP_BIN, 0, 0, 2},
    {"93 01 02 03", SL_MP_ARRAY, 0, 0, 3},
    {"dc 00 01 01", SL_MP_ARRAY, 0, 0, 1},
    {"dd 00 00 00 01 01", SL_MP_ARRAY, 0, 0, 1},
    {"81 01 02", SL_MP_MAP, 0, 0, 1},
    {"de 00 01 01 02", SL_MP_MAP, 0, 0, 1},
    {"df 00 00 00 01 01 02", SL_MP_MAP, 0, 0, 1},
    {"d4 05 aa", SL_MP_EXT, 5, 0, 1},
    {"d7 00 55 ec e6 f8 07 5b cd 15", SL_MP_EXT, 0, 0, 8},
    {"c7 08 00 55 ec e6 f8 07 5b cd 15", SL_MP_EXT, 0, 0, 8},
    {"c8 00 01 07 aa", SL_MP_EXT, 7, 0, 1},
    {"c9 00 00 00 01 07 aa", SL_MP_EXT, 7, 0, 1},
    {"ca 3f c0 00 00", SL_MP_FLOAT, 0, 0, 0},
    {"cb 3f f8 00 00 00 00 00 00", SL_MP_FLOAT, 0, 0, 0},
};

static void test_read_every_format(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(reads) / sizeof(reads[0]); k++) {
        uint8_t buf[32];
        size_t n = unhex(reads[k].hex, buf);
        uint8_t *b = dup_exact(buf, n);
        struct sl_mp_reader r;
        struct sl_mp_obj o;
        sl_mp_reader_init(&r, b, n);
        assert_int_equal(sl_mp_read(&r, &o), 0);
        assert_int_equal(o.type, reads[k].type);
        switch (o.type) {
        case SL_MP_UINT:
            assert_true(o.v.u == reads[k].u);
            break;
        case SL_MP_INT:
            assert_true(o.v.i == reads[k].i);
            break;
        case SL_MP_BOOL:
            assert_int_equal(o.v.b, (int)reads[k].u);
            break;
        case SL_MP_FLOAT:
            assert_true(o.v.f == 1.5);
            break;
        case SL_MP_EXT:
            assert_int_equal(o.ext_type, (int)reads[k].u);
            /* fallthrough */
        case SL_MP_STR:
        case SL_MP_BIN:
            assert_int_equal(o.n, reads[k].n);
            assert_true(o.p + o.n == b + n);
            break;
        case SL_MP_ARRAY:
        case SL_MP_MAP:
            assert_int_equal(o.n, reads[k].n);
            break;
        default:
            break;
        }
        /* the whole value is skippable and is exactly n bytes */
        sl_mp_reader_init(&r, b, n);
        assert_int_equal(sl_mp_skip(&r), 0);
        assert_int_equal(r.pos, n);
        /* every proper prefix fails to skip without moving */
        for (size_t cut = 0; cut < n; cut++) {
            uint8_t *c = dup_exact(b, cut);
            sl_mp_reader_init(&r, c, cut);
            assert_int_equal(sl_mp_skip(&r), -1);
            assert_int_equal(r.pos, 0);
            assert_non_null(r.err);
            free(c);
        }
        free(b);
    }
}

static void test_read_rejects_lies(void **state)
{
    (void)state;
    uint8_t buf[16];
    struct sl_mp_reader r;
    struct sl_mp_obj o;
    /* 0xc1 is never used */
    sl_mp_reader_init(&r, (const uint8_t *)"\xc1", 1);
    assert_int_equal(sl_mp_read(&r, &o), -1);
    assert_string_equal(r.err, "invalid byte 0xc1");
    /* array of 3 with 2 bytes left: refused at the header, before any element */
    size_t n = unhex("93 01 02", buf);
    sl_mp_reader_init(&r, buf, n);
    assert_int_equal(sl_mp_read(&r, &o), -1);
    assert_string_equal(r.err, "container declares more elements than bytes present");
    /* map of 2 pairs needs 4 bytes */
    n = unhex("82 01 02 03", buf);
    sl_mp_reader_init(&r, buf, n);
    assert_int_equal(sl_mp_read(&r, &o), -1);
    /* the bomb */
    n = unhex("dd 04 00 00 00", buf);
    sl_mp_reader_init(&r, buf, n);
    assert_int_equal(sl_mp_read(&r, &o), -1);
    /* nested lie found by skip: outer fine, inner too long */
    n = unhex("92 92 01 02 93 01", buf);
    sl_mp_reader_init(&r, buf, n);
    assert_int_equal(sl_mp_skip(&r), -1);
    assert_int_equal(r.pos, 0);
    /* check_one: trailing bytes */
    n = unhex("01 02", buf);
    const char *e = NULL;
    assert_int_equal(sl_mp_check_one(buf, n, &e), -1);
    assert_string_equal(e, "trailing bytes after the value");
}

static void test_skip_deep_nesting_without_stack(void **state)
{
    (void)state;
    /* 100000 nested single-element arrays around nil: counting, not recursion */
    size_t n = 100001;
    uint8_t *b = malloc(n);
    memset(b, 0x91, n - 1);
    b[n - 1] = 0xc0;
    struct sl_mp_reader r;
    sl_mp_reader_init(&r, b, n);
    assert_int_equal(sl_mp_skip(&r), 0);
    assert_int_equal(r.pos, n);
    size_t fl = 0;
    assert_int_equal(sl_mp_frame_len(b, n, n, &fl, NULL), SL_MP_FRAME_DONE);
    assert_int_equal(fl, n);
    /* but to_json refuses depth beyond its limit */
    b[0] = 0x81;
    b[1] = 0xc0; /* {nil: [[[...]]]}: key nil, value deep */
    const char *e = NULL;
    assert_int_equal(sl_mp_to_json(b, n, NULL, 0, &e), -1);
    free(b);
}

static void test_frame_len_bombs(void **state)
{
    (void)state;
    uint8_t buf[16];
    size_t n = unhex("dd 04 00 00 00", buf), need = 0;
    const char *e = NULL;
    /* with a big enough limit: need more, and the bound counts one byte per element */
    assert_int_equal(sl_mp_frame_len(buf, n, (size_t)1 << 30, &need, &e), SL_MP_FRAME_MORE);
    assert_int_equal(need, 5 + 67108864);
    /* with the 6 MiB connection limit: an error at once, no bytes waited for */
    assert_int_equal(sl_mp_frame_len(buf, n, 6u << 20, &need, &e), SL_MP_FRAME_ERROR);
    assert_string_equal(e, "frame exceeds the size limit");

    n = unhex("dd ff ff ff ff", buf);
    assert_int_equal(sl_mp_frame_len(buf, n, SIZE_MAX, &need, &e), SL_MP_FRAME_MORE);
    assert_true(need == 5 + (size_t)0xffffffffu);
    assert_int_equal(sl_mp_frame_len(buf, n, 6u << 20, &need, &e), SL_MP_FRAME_ERROR);

    /* map32 bomb counts two per pair */
    n = unhex("df 00 10 00 00", buf);
    assert_int_equal(sl_mp_frame_len(buf, n, (size_t)1 << 30, &need, &e), SL_MP_FRAME_MORE);
    assert_int_equal(need, 5 + 2 * 0x100000);

    /* str32 of 4 GiB: the payload bound is known from the header */
    n = unhex("db ff ff ff ff", buf);
    assert_int_equal(sl_mp_frame_len(buf, n, 6u << 20, &need, &e), SL_MP_FRAME_ERROR);
    /* a truncated header gives the header's size */
    n = unhex("db ff", buf);
    assert_int_equal(sl_mp_frame_len(buf, n, 6u << 20, &need, &e), SL_MP_FRAME_MORE);
    assert_int_equal(need, 5);
    /* empty input needs one byte */
    assert_int_equal(sl_mp_frame_len(buf, 0, 10, &need, &e), SL_MP_FRAME_MORE);
    assert_int_equal(need, 1);
    /* invalid byte */
    n = unhex("92 c1", buf);
    assert_int_equal(sl_mp_frame_len(buf, n, 10, &need, &e), SL_MP_FRAME_ERROR);
    /* a complete frame longer than max */
    n = unhex("a5 68 65 6c 6c 6f", buf);
    assert_int_equal(sl_mp_frame_len(buf, n, 5, &need, &e), SL_MP_FRAME_ERROR);
    assert_int_equal(sl_mp_frame_len(buf, n, 6, &need, &e), SL_MP_FRAME_DONE);
    assert_int_equal(need, 6);
}

static void test_frame_len_stream(void **state)
{
    (void)state;
    uint8_t buf[64];
    /* two frames back to back: the first one's length */
    size_t n = unhex("92 a1 61 81 a1 62 c3 c0 93 01 02 03", buf), fl = 0;
    assert_int_equal(sl_mp_frame_len(buf, n, 100, &fl, NULL), SL_MP_FRAME_DONE);
    assert_int_equal(fl, 7);
    assert_int_equal(sl_mp_frame_len(buf + 7, n - 7, 100, &fl, NULL), SL_MP_FRAME_DONE);
    assert_int_equal(fl, 1);
    assert_int_equal(sl_mp_frame_len(buf + 8, n - 8, 100, &fl, NULL), SL_MP_FRAME_DONE);
    assert_int_equal(fl, 4);

    /* resumable framer fed byte by byte gives the same answer, and its lower bounds grow */
    struct sl_mp_framer f;
    sl_mp_framer_reset(&f);
    size_t last = 0;
    for (size_t len = 0; len <= 7; len++) {
        int rc = sl_mp_framer_scan(&f, buf, len, 100, &fl, NULL);
        if (len < 7) {
            assert_int_equal(rc, SL_MP_FRAME_MORE);
            assert_true(fl > len && fl <= 7 && fl >= last);
            last = fl;
        } else {
            assert_int_equal(rc, SL_MP_FRAME_DONE);
            assert_int_equal(fl, 7);
        }
    }
}

/* ---- writer ---- */

static void expect_bytes(const struct sl_mp_wbuf *w, const char *hex)
{
    uint8_t exp[64];
    size_t n = unhex(hex, exp);
    assert_false(w->overflow);
    assert_int_equal(w->len, n);
    assert_memory_equal(w->data, exp, n);
}

static void test_writer_canonical(void **state)
{
    (void)state;
    uint8_t buf[64];
    struct sl_mp_wbuf w;
#define W(call, hex)                                                                               \
    do {                                                                                           \
        sl_mp_wbuf_init(&w, buf, sizeof(buf));                                                     \
        call;                                                                                      \
        expect_bytes(&w, hex);                                                                     \
    } while (0)
    W(sl_mp_w_nil(&w), "c0");
    W(sl_mp_w_bool(&w, 1), "c3");
    W(sl_mp_w_bool(&w, 0), "c2");
    W(sl_mp_w_uint(&w, 127), "7f");
    W(sl_mp_w_uint(&w, 128), "cc 80");
    W(sl_mp_w_uint(&w, 65535), "cd ff ff");
    W(sl_mp_w_uint(&w, 65536), "ce 00 01 00 00");
    W(sl_mp_w_uint(&w, 1ull << 32), "cf 00 00 00 01 00 00 00 00");
    W(sl_mp_w_int(&w, -1), "ff");
    W(sl_mp_w_int(&w, -32), "e0");
    W(sl_mp_w_int(&w, -33), "d0 df");
    W(sl_mp_w_int(&w, -129), "d1 ff 7f");
    W(sl_mp_w_int(&w, -32769), "d2 ff ff 7f ff");
    W(sl_mp_w_int(&w, INT64_MIN), "d3 80 00 00 00 00 00 00 00");
    W(sl_mp_w_int(&w, 5), "05");
    W(sl_mp_w_double(&w, 1.5), "cb 3f f8 00 00 00 00 00 00");
    W(sl_mp_w_str(&w, "abc", 3), "a3 61 62 63");
    W(sl_mp_w_bin(&w, "ab", 2), "c4 02 61 62");
    W(sl_mp_w_array(&w, 2), "92");
    W(sl_mp_w_array(&w, 16), "dc 00 10");
    W(sl_mp_w_array(&w, 70000), "dd 00 01 11 70");
    W(sl_mp_w_map(&w, 1), "81");
    W(sl_mp_w_map(&w, 65536), "df 00 01 00 00");
    W(sl_mp_w_ext(&w, 5, "\xaa", 1), "d4 05 aa");
    W(sl_mp_w_ext(&w, 5, "\xaa\xbb\xcc", 3), "c7 03 05 aa bb cc");
    W(sl_mp_w_event_time(&w, 1441588984123456789LL), "d7 00 55 ec e6 f8 07 5b cd 15");
#undef W
    /* str of 32 bytes uses str8, of 256 str16 */
    char s[300];
    memset(s, 'x', sizeof(s));
    uint8_t big[400];
    sl_mp_wbuf_init(&w, big, sizeof(big));
    sl_mp_w_str(&w, s, 32);
    assert_int_equal(big[0], 0xd9);
    assert_int_equal(w.len, 34);
    sl_mp_wbuf_init(&w, big, sizeof(big));
    sl_mp_w_str(&w, s, 256);
    assert_int_equal(big[0], 0xda);
    assert_int_equal(w.len, 259);
}

static void test_writer_overflow_counts(void **state)
{
    (void)state;
    uint8_t buf[4];
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, buf, sizeof(buf));
    sl_mp_w_str(&w, "hello", 5);
    assert_true(w.overflow);
    assert_int_equal(w.len, 6); /* the size needed */
    sl_mp_w_nil(&w);
    assert_int_equal(w.len, 7);
}

static int grow_heap(struct sl_mp_wbuf *w, size_t need)
{
    size_t cap = w->cap ? w->cap : 8;
    while (cap < need)
        cap *= 2;
    if (cap > 1024) return -1; /* the test's "budget" */
    uint8_t *d = realloc(w->data, cap);
    if (!d) return -1;
    w->data = d;
    w->cap = cap;
    return 0;
}

static void test_writer_grows(void **state)
{
    (void)state;
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, NULL, 0);
    w.grow = grow_heap;
    for (int k = 0; k < 100; k++)
        sl_mp_w_uint(&w, (uint64_t)k * 1000);
    assert_false(w.overflow);
    struct sl_mp_reader r;
    sl_mp_reader_init(&r, w.data, w.len);
    for (int k = 0; k < 100; k++) {
        struct sl_mp_obj o;
        assert_int_equal(sl_mp_read(&r, &o), 0);
        assert_true(o.v.u == (uint64_t)k * 1000);
    }
    /* past the budget: overflow, sticky */
    char s[2000];
    memset(s, 'a', sizeof(s));
    sl_mp_w_str(&w, s, sizeof(s));
    assert_true(w.overflow);
    free(w.data);
}

static void test_base64(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(sl_mp_base64((const uint8_t *)"", 0, out), 0);
    assert_int_equal(sl_mp_base64((const uint8_t *)"f", 1, out), 4);
    assert_memory_equal(out, "Zg==", 4);
    assert_int_equal(sl_mp_base64((const uint8_t *)"fo", 2, out), 4);
    assert_memory_equal(out, "Zm8=", 4);
    assert_int_equal(sl_mp_base64((const uint8_t *)"foobar", 6, out), 8);
    assert_memory_equal(out, "Zm9vYmFy", 8);
}

/* ---- to_json ---- */

struct json_case {
    const char *hex;
    const char *json;
};

static const struct json_case jsons[] = {
    {"80", "{}"},
    {"81 a1 61 01", "{\"a\":1}"},
    {"82 a1 61 ff a1 62 cf ff ff ff ff ff ff ff ff", "{\"a\":-1,\"b\":18446744073709551615}"},
    {"84 a1 61 d3 80 00 00 00 00 00 00 00 a1 62 00 a1 63 d2 ff ff ff d6 a1 64 cd 27 10",
     "{\"a\":-9223372036854775808,\"b\":0,\"c\":-42,\"d\":10000}"},
    {"83 a1 6e c0 a1 74 c3 a1 66 c2", "{\"n\":null,\"t\":true,\"f\":false}"},
    {"82 a1 78 cb 3f b9 99 99 99 99 99 9a a1 79 ca 3d cc cc cd",
     "{\"x\":0.10000000000000001,\"y\":0.100000001}"},
    {"83 a1 61 cb 7f f8 00 00 00 00 00 00 a1 62 cb 7f f0 00 00 00 00 00 00 a1 63 cb ff f0 00 00 00 "
     "00 00 00",
     "{\"a\":null,\"b\":null,\"c\":null}"},
    {"81 a1 73 a6 22 5c 0a 01 c3 a9", "{\"s\":\"\\\"\\\\\\n\\u0001\xc3\xa9\"}"},
    {"81 a1 73 a2 ff 41", "{\"s\":\"\xef\xbf\xbd"
                          "A\"}"},
    {"81 a1 62 c4 03 00 01 02", "{\"b\":\"AAEC\"}"},
    {"81 a1 74 d7 00 55 ec e6 f8 07 5b cd 15", "{\"t\":\"2015-09-07T01:23:04.123456789Z\"}"},
    {"81 a1 65 d4 05 aa", "{\"e\":\"qg==\"}"},
    {"81 a1 61 93 01 80 92 c0 91 a0", "{\"a\":[1,{},[null,[\"\"]]]}"},
    {"82 01 02 c3 a1 78", "{\"1\":2,\"true\":\"x\"}"},
    {"81 92 01 a1 61 02", "{\"[1,\\\"a\\\"]\":2}"},
    {"81 81 a2 61 22 01 02", "{\"{\\\"a\\\\\\\"\\\":1}\":2}"},
    {"81 81 91 a1 78 01 02", "{\"{\\\"[\\\\\\\"x\\\\\\\"]\\\":1}\":2}"},
    {"81 a1 6d 82 a1 61 81 a1 62 01 a1 63 90", "{\"m\":{\"a\":{\"b\":1},\"c\":[]}}"},
};

static void test_to_json_golden(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(jsons) / sizeof(jsons[0]); k++) {
        uint8_t buf[128];
        size_t n = unhex(jsons[k].hex, buf);
        uint8_t *b = dup_exact(buf, n);
        char out[256];
        const char *e = NULL;
        ssize_t jl = sl_mp_to_json(b, n, out, sizeof(out), &e);
        if (jl < 0) print_error("case %zu: %s\n", k, e);
        assert_true(jl >= 0);
        size_t want = strlen(jsons[k].json);
        if ((size_t)jl != want || memcmp(out, jsons[k].json, want) != 0)
            print_error("case %zu: got %.*s\n", k, (int)jl, out);
        assert_int_equal((size_t)jl, want);
        assert_memory_equal(out, jsons[k].json, want);
        /* valid JSON */
        struct sl_json_scan s;
        memset(&s, 0, sizeof(s));
        assert_int_equal(sl_json_scan_object(out, (size_t)jl, &s), 0);
        /* every smaller cap reports the same needed size and never writes past cap (the
         * exact-size heap buffer makes ASan the judge) */
        for (size_t cap = 0; cap < (size_t)jl; cap++) {
            char *small = malloc(cap ? cap : 1);
            assert_int_equal(sl_mp_to_json(b, n, small, cap, NULL), jl);
            free(small);
        }
        free(b);
    }
}

static void test_to_json_rejects(void **state)
{
    (void)state;
    uint8_t buf[32];
    const char *e = NULL;
    size_t n = unhex("91 01", buf);
    assert_int_equal(sl_mp_to_json(buf, n, NULL, 0, &e), -1);
    assert_string_equal(e, "not a map");
    n = unhex("81 a1 61", buf);
    assert_int_equal(sl_mp_to_json(buf, n, NULL, 0, &e), -1);
    n = unhex("80 c0", buf);
    assert_int_equal(sl_mp_to_json(buf, n, NULL, 0, &e), -1);
    assert_string_equal(e, "trailing bytes after the map");
    /* non-string keys four deep */
    n = unhex("81 81 81 81 01 02 03 04 05", buf);
    assert_int_equal(sl_mp_to_json(buf, n, NULL, 0, &e), -1);
    assert_string_equal(e, "non-string map keys nested too deep");
}

/* ---- paths found while converting (sl_mp_to_json_scan) ---- */

static const char *const scan_paths[] = {"a", "b", "a.b", "a.b.c", "@timestamp", "x.y", "q\"k"};
#define N_SCAN_PATHS (sizeof scan_paths / sizeof scan_paths[0])

static void scan_both(const uint8_t *mp, size_t len, struct sl_json_scan *cs,
                      struct sl_json_scan *js, char *out, size_t cap, ssize_t *jl)
{
    memset(cs, 0, sizeof *cs);
    memset(js, 0, sizeof *js);
    for (size_t k = 0; k < N_SCAN_PATHS; k++)
        cs->paths[k] = js->paths[k] = scan_paths[k];
    cs->n_paths = js->n_paths = N_SCAN_PATHS;
    *jl = sl_mp_to_json_scan(mp, len, out, cap, NULL, cs);
    assert_true(*jl >= 0 && (size_t)*jl <= cap);
    assert_int_equal(sl_json_scan_object(out, (size_t)*jl, js), 0);
}

static const char *val_of(const struct sl_json_scan *s, size_t k, char *tmp)
{
    if (!s->val[k]) return "(absent)";
    memcpy(tmp, s->val[k], s->vlen[k]);
    tmp[s->vlen[k]] = '\0';
    return tmp;
}

static void test_to_json_scan_cases(void **state)
{
    (void)state;
    uint8_t mp[512];
    char out[1024], tmp[256];
    struct sl_mp_wbuf w;
    struct sl_json_scan cs, js;
    ssize_t jl;
    /* {"a":{"c":1},"b":"s\n","a":{"b":{"c":[1]}},"@timestamp":"t","x":[{"y":1}],1:2,"q\"k":null}:
     * the first "a" holds no "b", so "a.b" is found in the second; "x.y" is under an array and
     * never found; a non-string key is written as a string and matches nothing. */
    sl_mp_wbuf_init(&w, mp, sizeof mp);
    sl_mp_w_map(&w, 7);
    sl_mp_w_str(&w, "a", 1);
    sl_mp_w_map(&w, 1);
    sl_mp_w_str(&w, "c", 1);
    sl_mp_w_uint(&w, 1);
    sl_mp_w_str(&w, "b", 1);
    sl_mp_w_str(&w, "s\n", 2);
    sl_mp_w_str(&w, "a", 1);
    sl_mp_w_map(&w, 1);
    sl_mp_w_str(&w, "b", 1);
    sl_mp_w_map(&w, 1);
    sl_mp_w_str(&w, "c", 1);
    sl_mp_w_array(&w, 1);
    sl_mp_w_uint(&w, 1);
    sl_mp_w_str(&w, "@timestamp", 10);
    sl_mp_w_str(&w, "t", 1);
    sl_mp_w_str(&w, "x", 1);
    sl_mp_w_array(&w, 1);
    sl_mp_w_map(&w, 1);
    sl_mp_w_str(&w, "y", 1);
    sl_mp_w_uint(&w, 1);
    sl_mp_w_uint(&w, 1);
    sl_mp_w_uint(&w, 2);
    sl_mp_w_str(&w, "q\"k", 3);
    sl_mp_w_nil(&w);
    assert_false(w.overflow);
    scan_both(mp, w.len, &cs, &js, out, sizeof out, &jl);
    static const char *const want[N_SCAN_PATHS] = {"{\"c\":1}", "\"s\\n\"", "{\"c\":[1]}", "[1]",
                                                   "\"t\"",     "(absent)", "(absent)"};
    for (size_t k = 0; k < N_SCAN_PATHS; k++) {
        assert_string_equal(val_of(&cs, k, tmp), want[k]);
        assert_string_equal(val_of(&js, k, tmp), want[k]);
    }
    /* too small a buffer: the length is still right, and nothing is reported found */
    ssize_t jl2 = sl_mp_to_json_scan(mp, w.len, out, 10, NULL, &cs);
    assert_int_equal(jl2, jl);
    for (size_t k = 0; k < N_SCAN_PATHS; k++)
        assert_null(cs.val[k]);
}

static uint64_t rng = 88172645463325252ull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static void gen_value(struct sl_mp_wbuf *w, int depth);

static void gen_map(struct sl_mp_wbuf *w, int depth)
{
    static const char *const keys[] = {"a", "b", "c", "x", "y", "@timestamp", "q\"k", "a.b"};
    uint32_t n = rnd(5);
    sl_mp_w_map(w, n);
    for (uint32_t i = 0; i < n; i++) {
        if (rnd(10) == 0) {
            sl_mp_w_uint(w, rnd(3)); /* a non-string key */
        } else {
            const char *k = keys[rnd(sizeof keys / sizeof keys[0])];
            sl_mp_w_str(w, k, strlen(k));
        }
        gen_value(w, depth + 1);
    }
}

static void gen_value(struct sl_mp_wbuf *w, int depth)
{
    switch (depth > 4 ? rnd(3) : rnd(6)) {
    case 0:
        sl_mp_w_int(w, (int64_t)rnd(2000) - 1000);
        break;
    case 1:
        sl_mp_w_str(w, "v\"\\\t\xc3\xa9", 1 + rnd(6));
        break;
    case 2:
        sl_mp_w_nil(w);
        break;
    case 3: {
        uint32_t n = rnd(3);
        sl_mp_w_array(w, n);
        for (uint32_t i = 0; i < n; i++)
            gen_value(w, depth + 1);
        break;
    }
    default:
        gen_map(w, depth);
        break;
    }
}

/* Random records with few key names, nesting, duplicates, arrays and non-string keys: what the
 * conversion finds is exactly what a scan of its output finds. */
static void test_to_json_scan_matches_scan(void **state)
{
    (void)state;
    static uint8_t mp[1 << 16];
    static char out[1 << 18];
    char t1[1 << 12], t2[1 << 12];
    size_t found = 0;
    for (int it = 0; it < 20000; it++) {
        struct sl_mp_wbuf w;
        sl_mp_wbuf_init(&w, mp, sizeof mp);
        gen_map(&w, 0);
        assert_false(w.overflow);
        struct sl_json_scan cs, js;
        ssize_t jl;
        scan_both(mp, w.len, &cs, &js, out, sizeof out, &jl);
        for (size_t k = 0; k < N_SCAN_PATHS; k++) {
            if (js.val[k] && js.vlen[k] >= sizeof t1) continue;
            if (strcmp(val_of(&cs, k, t1), val_of(&js, k, t2)) != 0 ||
                (js.val[k] && cs.val[k] != js.val[k]))
                fail_msg("record %.*s path %s: conversion found %s, scan %s", (int)jl, out,
                         scan_paths[k], t1, t2);
            found += js.val[k] != NULL;
        }
    }
    assert_true(found > 10000); /* the generator does reach the paths */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_every_format),
        cmocka_unit_test(test_to_json_scan_cases),
        cmocka_unit_test(test_to_json_scan_matches_scan),
        cmocka_unit_test(test_read_rejects_lies),
        cmocka_unit_test(test_skip_deep_nesting_without_stack),
        cmocka_unit_test(test_frame_len_bombs),
        cmocka_unit_test(test_frame_len_stream),
        cmocka_unit_test(test_writer_canonical),
        cmocka_unit_test(test_writer_overflow_counts),
        cmocka_unit_test(test_writer_grows),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_to_json_golden),
        cmocka_unit_test(test_to_json_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
