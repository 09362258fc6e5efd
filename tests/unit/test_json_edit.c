/* Tests of src/codec/json_edit.c: golden before/after texts for each edit, nested paths,
 * duplicates, escaped keys, the buffer contract and build-time conflicts. Every output is also
 * checked to scan as a JSON object and to fit sl_jedit_bound(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/json.h"
#include "codec/json_edit.h"

#define MAX_VALS 8

/* A plan from a small spec: "-path" removes, "path=from" renames... kept explicit instead: */
enum { REMOVE, RENAME, SET };
struct step {
    int op;
    const char *a, *b; /* path; rename target */
    unsigned slot;
};

static struct sl_jedit *plan(const struct step *s, size_t n)
{
    struct sl_jedit *e = sl_jedit_new();
    assert_non_null(e);
    char why[256];
    for (size_t k = 0; k < n; k++) {
        int rc = s[k].op == REMOVE   ? sl_jedit_remove(e, s[k].a, why, sizeof(why))
                 : s[k].op == RENAME ? sl_jedit_rename(e, s[k].a, s[k].b, why, sizeof(why))
                                     : sl_jedit_set(e, s[k].a, s[k].slot, why, sizeof(why));
        if (rc != 0) print_error("step %zu (%s): %s\n", k, s[k].a, why);
        assert_int_equal(rc, 0);
    }
    return e;
}

/* Applies e to in with string values vals (NULL = no value), compares with want, and checks the
 * output's validity, the bound and the cap contract. */
static void expect(const struct sl_jedit *e, const char *in, const char *const *vals, size_t nv,
                   const char *want, unsigned want_skipped)
{
    struct sl_jval v[MAX_VALS] = {0};
    for (size_t k = 0; k < nv; k++) {
        v[k].p = vals[k];
        v[k].n = vals[k] ? strlen(vals[k]) : 0;
    }
    size_t len = strlen(in);
    size_t bound = sl_jedit_bound(e, len, v, nv);
    char *out = malloc(bound + 1);
    unsigned skipped = 99;
    size_t n = sl_jedit_apply(e, in, len, v, nv, out, bound, &skipped);
    if (n == 0 || n != strlen(want) || memcmp(out, want, n) != 0)
        print_error("in   %s\nwant %s\ngot  %.*s\n", in, want, (int)n, out);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    assert_int_equal(skipped, want_skipped);
    struct sl_json_scan s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(sl_json_scan_object(out, n, &s), 0);
    /* too small by any amount: 0, and nothing written past cap */
    for (size_t cap = 0; cap < n; cap++) {
        memset(out, '#', bound + 1);
        assert_int_equal(sl_jedit_apply(e, in, len, v, nv, out, cap, NULL), 0);
        assert_int_equal(out[cap], '#');
    }
    assert_int_equal(sl_jedit_apply(e, in, len, v, nv, out, n, NULL), n);
    free(out);
}

#define STEPS(...) ((const struct step[]){__VA_ARGS__})
#define NSTEPS(...) (sizeof((const struct step[]){__VA_ARGS__}) / sizeof(struct step))
#define PLAN(...) plan(STEPS(__VA_ARGS__), NSTEPS(__VA_ARGS__))
#define VALS(...)                                                                                  \
    ((const char *const[]){__VA_ARGS__}),                                                          \
        (sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *))
#define NOVALS NULL, 0

static void test_remove(void **state)
{
    (void)state;
    struct sl_jedit *e = PLAN({REMOVE, "b", NULL, 0});
    expect(e, "{\"a\":1,\"b\":2,\"c\":3}", NOVALS, "{\"a\":1,\"c\":3}", 0);
    expect(e, "{\"b\":2,\"c\":3}", NOVALS, "{\"c\":3}", 0);
    expect(e, "{\"a\":1,\"b\":[1,{\"b\":2}]}", NOVALS, "{\"a\":1}", 0);
    expect(e, "{\"b\":2}", NOVALS, "{}", 0);
    expect(e, "{}", NOVALS, "{}", 0);
    expect(e, "{\"a\":{\"b\":1}}", NOVALS, "{\"a\":{\"b\":1}}", 0); /* only the top-level b */
    expect(e, "{\"b\":1,\"a\":2,\"b\":3,\"b\":4}", NOVALS, "{\"a\":2}", 0); /* every occurrence */
    sl_jedit_free(e);

    e = PLAN({REMOVE, "a", NULL, 0}, {REMOVE, "b", NULL, 0}, {REMOVE, "c", NULL, 0});
    expect(e, "{\"a\":1,\"b\":2,\"c\":3}", NOVALS, "{}", 0);
    expect(e, "{\"x\":1,\"a\":1,\"y\":\"a\",\"b\":2,\"z\":null,\"c\":3}", NOVALS,
           "{\"x\":1,\"y\":\"a\",\"z\":null}", 0);
    sl_jedit_free(e);
}

static void test_remove_nested(void **state)
{
    (void)state;
    struct sl_jedit *e = PLAN({REMOVE, "a.b", NULL, 0}, {REMOVE, "k.l.m", NULL, 0});
    expect(e, "{\"a\":{\"b\":1,\"c\":2},\"d\":3}", NOVALS, "{\"a\":{\"c\":2},\"d\":3}", 0);
    expect(e, "{\"a\":{\"b\":1}}", NOVALS, "{\"a\":{}}", 0);
    expect(e, "{\"a\":5,\"b\":1}", NOVALS, "{\"a\":5,\"b\":1}", 0); /* not an object: no-op */
    expect(e, "{\"a\":[{\"b\":1}]}", NOVALS, "{\"a\":[{\"b\":1}]}", 0);
    /* every duplicate parent */
    expect(e, "{\"a\":{\"b\":1},\"a\":{\"b\":2,\"c\":3}}", NOVALS, "{\"a\":{},\"a\":{\"c\":3}}", 0);
    expect(e, "{\"k\":{\"l\":{\"m\":1,\"n\":2},\"o\":{\"m\":3}},\"m\":4}", NOVALS,
           "{\"k\":{\"l\":{\"n\":2},\"o\":{\"m\":3}},\"m\":4}", 0);
    sl_jedit_free(e);
}

static void test_set_top_level(void **state)
{
    (void)state;
    struct sl_jedit *e = PLAN({SET, "tag", NULL, 0}, {SET, "host", NULL, 1});
    expect(e, "{\"a\":1}", VALS("\"app.web\"", "\"h1\""),
           "{\"a\":1,\"tag\":\"app.web\",\"host\":\"h1\"}", 0);
    expect(e, "{}", VALS("\"t\"", "\"h\""), "{\"tag\":\"t\",\"host\":\"h\"}", 0);
    /* in place, first occurrence; later duplicates dropped */
    expect(e, "{\"host\":\"old\",\"a\":{\"tag\":1},\"tag\":2,\"host\":3}", VALS("\"t\"", "\"h\""),
           "{\"host\":\"h\",\"a\":{\"tag\":1},\"tag\":\"t\"}", 0);
    /* any JSON value */
    expect(e, "{\"a\":1}", VALS("{\"x\":[1,2]}", "null"),
           "{\"a\":1,\"tag\":{\"x\":[1,2]},\"host\":null}", 0);
    /* a slot without a value is a no-op, not a skip */
    expect(e, "{\"tag\":0}", VALS("1"), "{\"tag\":1}", 0);
    expect(e, "{\"host\":0}", VALS("1", NULL), "{\"host\":0,\"tag\":1}", 0);
    expect(e, "{\"a\":1}", NOVALS, "{\"a\":1}", 0);
    sl_jedit_free(e);
}

static void test_set_nested(void **state)
{
    (void)state;
    struct sl_jedit *e = PLAN({SET, "a.b.c", NULL, 0}, {SET, "a.x", NULL, 1});
    expect(e, "{}", VALS("1", "2"), "{\"a\":{\"b\":{\"c\":1},\"x\":2}}", 0);
    expect(e, "{\"a\":{\"y\":0}}", VALS("1", "2"), "{\"a\":{\"y\":0,\"b\":{\"c\":1},\"x\":2}}", 0);
    expect(e, "{\"a\":{\"x\":0,\"b\":{\"c\":0,\"d\":0}},\"z\":1}", VALS("1", "2"),
           "{\"a\":{\"x\":2,\"b\":{\"c\":1,\"d\":0}},\"z\":1}", 0);
    /* only one value: the other path is not created */
    expect(e, "{}", VALS(NULL, "2"), "{\"a\":{\"x\":2}}", 0);
    expect(e, "{}", VALS("1", NULL), "{\"a\":{\"b\":{\"c\":1}}}", 0);
    /* non-object intermediates: skipped and counted, record unchanged there */
    expect(e, "{\"a\":1}", VALS("1", "2"), "{\"a\":1}", 2);
    expect(e, "{\"a\":{\"b\":[]}}", VALS("1", "2"), "{\"a\":{\"b\":[],\"x\":2}}", 1);
    expect(e, "{\"a\":{\"b\":\"{}\"}}", VALS("1", NULL), "{\"a\":{\"b\":\"{}\"}}", 1);
    /* duplicate parents: the first one is written, set members in later ones dropped */
    expect(e, "{\"a\":{\"x\":0},\"a\":{\"x\":5,\"k\":1}}", VALS(NULL, "2"),
           "{\"a\":{\"x\":2},\"a\":{\"k\":1}}", 0);
    expect(e, "{\"a\":{},\"a\":{\"b\":{\"c\":5}}}", VALS("1", NULL),
           "{\"a\":{\"b\":{\"c\":1}},\"a\":{\"b\":{}}}", 0);
    /* the first parent is not an object: skipped, later ones left alone */
    expect(e, "{\"a\":1,\"a\":{\"x\":5}}", VALS(NULL, "2"), "{\"a\":1,\"a\":{\"x\":5}}", 1);
    sl_jedit_free(e);
}

static void test_rename(void **state)
{
    (void)state;
    struct sl_jedit *e = PLAN({RENAME, "a", "c", 0});
    expect(e, "{\"a\":1,\"b\":2}", NOVALS, "{\"b\":2,\"c\":1}", 0);
    expect(e, "{\"c\":0,\"a\":1}", NOVALS, "{\"c\":1}", 0);         /* target replaced in place */
    expect(e, "{\"c\":0,\"b\":2}", NOVALS, "{\"c\":0,\"b\":2}", 0); /* absent source: no-op */
    expect(e, "{\"a\":1,\"a\":2}", NOVALS, "{\"c\":1}", 0);         /* first value, all deleted */
    expect(e, "{\"a\":{\"k\":[1,\"}\"]}}", NOVALS, "{\"c\":{\"k\":[1,\"}\"]}}", 0);
    sl_jedit_free(e);

    e = PLAN({RENAME, "k.x", "m.n", 0});
    expect(e, "{\"k\":{\"x\":1,\"y\":2},\"z\":3}", NOVALS,
           "{\"k\":{\"y\":2},\"z\":3,\"m\":{\"n\":1}}", 0);
    expect(e, "{\"m\":{\"n\":0},\"k\":{\"x\":1}}", NOVALS, "{\"m\":{\"n\":1},\"k\":{}}", 0);
    /* source in a later duplicate parent: document order */
    expect(e, "{\"k\":{},\"k\":{\"x\":7}}", NOVALS, "{\"k\":{},\"k\":{},\"m\":{\"n\":7}}", 0);
    /* target blocked: the whole rename is skipped, the source stays */
    expect(e, "{\"k\":{\"x\":1},\"m\":\"s\"}", NOVALS, "{\"k\":{\"x\":1},\"m\":\"s\"}", 1);
    expect(e, "{\"k\":5,\"m\":\"s\"}", NOVALS, "{\"k\":5,\"m\":\"s\"}", 0); /* absent: no-op */
    sl_jedit_free(e);
}

static void test_order_and_mix(void **state)
{
    (void)state;
    struct sl_jedit *e = PLAN({REMOVE, "a", NULL, 0}, {RENAME, "b", "d", 0}, {SET, "e", NULL, 0},
                              {SET, "kafka.topic", NULL, 1}, {REMOVE, "kafka.key", NULL, 0});
    expect(e, "{\"a\":1,\"b\":2,\"c\":3}", VALS("true", "\"logs\""),
           "{\"c\":3,\"d\":2,\"e\":true,\"kafka\":{\"topic\":\"logs\"}}", 0);
    expect(e, "{\"kafka\":{\"key\":\"k\",\"partition\":3},\"e\":0,\"d\":0,\"b\":9}",
           VALS("true", "\"logs\""),
           "{\"kafka\":{\"partition\":3,\"topic\":\"logs\"},\"e\":true,\"d\":9}", 0);
    sl_jedit_free(e);
}

static void test_escaped_keys(void **state)
{
    (void)state;
    /* keys are compared decoded: "a\u0062" is ab */
    struct sl_jedit *e =
        PLAN({REMOVE, "ab", NULL, 0}, {SET, "q\"k", NULL, 0}, {SET, "caf\xc3\xa9", NULL, 1});
    expect(e, "{\"a\\u0062\":1,\"x\":2}", VALS(NULL, NULL), "{\"x\":2}", 0);
    expect(e, "{\"\\u0061\\u0062\":1,\"ab\":2,\"abc\":3}", VALS(NULL, NULL), "{\"abc\":3}", 0);
    expect(e, "{}", VALS("1", "2"), "{\"q\\\"k\":1,\"caf\xc3\xa9\":2}", 0);
    expect(e, "{\"q\\u0022k\":0,\"caf\\u00e9\":0}", VALS("1", "2"),
           "{\"q\\\"k\":1,\"caf\xc3\xa9\":2}", 0);
    /* a raw key spelled like the escape of the segment is not the segment */
    expect(e, "{\"q\\\\\\\"k\":0}", VALS("1", NULL), "{\"q\\\\\\\"k\":0,\"q\\\"k\":1}", 0);
    sl_jedit_free(e);

    /* a record key containing a dot is one key; no path can name it */
    e = PLAN({REMOVE, "a.b", NULL, 0});
    expect(e, "{\"a.b\":1,\"a\":{\"b\":2,\"c\":3}}", NOVALS, "{\"a.b\":1,\"a\":{\"c\":3}}", 0);
    sl_jedit_free(e);
}

static void test_tricky_values(void **state)
{
    (void)state;
    struct sl_jedit *e = PLAN({REMOVE, "a", NULL, 0}, {SET, "x.t", NULL, 0});
    expect(
        e,
        "{\"m\":\"{\\\"a\\\":1}\",\"a\":\"}\",\"s\":\"\\\\\",\"x\":{\"s\":\"\\\\\\\"}\",\"a\":1},"
        "\"q\":[\"]\",{\"a\":\"[\"}]}",
        VALS("\"v\""),
        "{\"m\":\"{\\\"a\\\":1}\",\"s\":\"\\\\\",\"x\":{\"s\":\"\\\\\\\"}\",\"a\":1,\"t\":\"v\"},"
        "\"q\":[\"]\",{\"a\":\"[\"}]}",
        0);
    /* whitespace inside untouched members is kept, around the object dropped */
    expect(e, " { \"a\" : 1 , \"b\" : [ 1 , 2 ] , \"x\" : { \"y\" : 2 } } ", VALS("3"),
           "{\"b\" : [ 1 , 2 ],\"x\" : {\"y\" : 2,\"t\":3}}", 0);
    sl_jedit_free(e);
}

static void test_invalid_input(void **state)
{
    (void)state;
    struct sl_jedit *e = PLAN({SET, "a", NULL, 0});
    struct sl_jval v = {"1", 1};
    char out[64];
    const char *bad[] = {"", "[]", "{", "{\"a\":1", "{\"a\":\"1}", "{\"a\"}"};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        assert_int_equal(sl_jedit_apply(e, bad[k], strlen(bad[k]), &v, 1, out, sizeof(out), NULL),
                         0);
    }
    sl_jedit_free(e);
}

static void expect_refused(struct sl_jedit *e, int op, const char *a, const char *b,
                           const char *why_part)
{
    char why[256] = "";
    int rc = op == REMOVE   ? sl_jedit_remove(e, a, why, sizeof(why))
             : op == RENAME ? sl_jedit_rename(e, a, b, why, sizeof(why))
                            : sl_jedit_set(e, a, 0, why, sizeof(why));
    if (rc != -1 || !strstr(why, why_part)) print_error("%s: rc %d why \"%s\"\n", a, rc, why);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(why, why_part));
}

static void test_build_conflicts(void **state)
{
    (void)state;
    struct sl_jedit *e = PLAN({REMOVE, "a", NULL, 0}, {SET, "x.y", NULL, 0});
    expect_refused(e, SET, "a.b", NULL, "inside another edit's path 'a'");
    expect_refused(e, REMOVE, "x", NULL, "another edit's path is inside path 'x'");
    expect_refused(e, SET, "x.y", NULL, "edited twice");
    expect_refused(e, REMOVE, "a", NULL, "edited twice");
    expect_refused(e, SET, "x.y.z", NULL, "inside another edit's path 'x.y'");
    expect_refused(e, RENAME, "p", "p.q", "rename target 'p.q' is inside its source 'p'");
    expect_refused(e, RENAME, "p.q", "p", "rename source 'p.q' is inside its target 'p'");
    expect_refused(e, RENAME, "p", "p", "to itself");
    expect_refused(e, RENAME, "p", "a", "edited twice");
    expect_refused(e, RENAME, "a", "p", "edited twice");
    expect_refused(e, RENAME, "p", "x", "another edit's path is inside path 'x'");
    expect_refused(e, SET, "", NULL, "empty path");
    expect_refused(e, SET, "m..n", NULL, "empty segment");
    expect_refused(e, SET, ".m", NULL, "empty segment");
    expect_refused(e, SET, "m.", NULL, "empty segment");
    expect_refused(e, SET, "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17", NULL, "deeper than 16");
    expect_refused(e, SET, "m.\xff", NULL, "not valid UTF-8");
    char longseg[300];
    memset(longseg, 's', 256);
    longseg[256] = '\0';
    expect_refused(e, SET, longseg, NULL, "longer than 255");
    /* refused steps left the plan as it was: the failed "m.\xff" did not leave an "m" behind */
    assert_int_equal(sl_jedit_set(e, "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16", 1, NULL, 0), 0);
    expect(
        e, "{\"a\":0,\"m\":0}", VALS("1", "2"),
        "{\"m\":0,\"x\":{\"y\":1},\"1\":{\"2\":{\"3\":{\"4\":{\"5\":{\"6\":{\"7\":{\"8\":{\"9\":{"
        "\"10\":{\"11\":{\"12\":{\"13\":{\"14\":{\"15\":{\"16\":2}}}}}}}}}}}}}}}}",
        0);
    sl_jedit_free(e);

    /* a full plan refuses with a reason and stays usable */
    e = sl_jedit_new();
    char path[16], why[128];
    size_t k = 0;
    for (;; k++) {
        snprintf(path, sizeof(path), "f%zu", k);
        if (sl_jedit_set(e, path, 0, why, sizeof(why)) != 0) break;
    }
    assert_int_equal(k, SL_JEDIT_MAX_NODES);
    assert_non_null(strstr(why, "too many paths"));
    sl_jedit_free(e);
    sl_jedit_free(NULL);
}

/* Top-level sets on a realistic record: untouched members come through byte for byte. */
static void test_fast_path_record(void **state)
{
    (void)state;
    struct sl_jedit *e = PLAN({SET, "tag", NULL, 0}, {SET, "@timestamp", NULL, 1});
    expect(e,
           "{\"time\":\"2026-11-27T10:00:00.123456Z\",\"level\":\"info\",\"msg\":\"GET /x "
           "{\\\"a\\\":[1,2]} \\u00e9\",\"kafka\":{\"topic\":\"app\",\"tag\":1,\"ts\":[{\"t\":\"]"
           "\"}]}}",
           VALS("\"app.web\"", "\"2026-11-27T10:00:00.123Z\""),
           "{\"time\":\"2026-11-27T10:00:00.123456Z\",\"level\":\"info\",\"msg\":\"GET /x "
           "{\\\"a\\\":[1,2]} \\u00e9\",\"kafka\":{\"topic\":\"app\",\"tag\":1,\"ts\":[{\"t\":\"]"
           "\"}]},\"tag\":\"app.web\",\"@timestamp\":\"2026-11-27T10:00:00.123Z\"}",
           0);
    sl_jedit_free(e);
}

/* Applies e, then carries the input's scan over (or not, want_carry) and checks that a carried
 * scan is exactly the scan of the output. */
static void expect_carry(const struct sl_jedit *e, const char *in, const char *const *vals,
                         size_t nv, int want_carry)
{
    static const char *const paths[] = {"a", "a.b", "time", "k", "new", "@timestamp"};
    struct sl_jval v[MAX_VALS] = {0};
    for (size_t k = 0; k < nv; k++) {
        v[k].p = vals[k];
        v[k].n = strlen(vals[k]);
    }
    size_t len = strlen(in);
    char out[1024];
    size_t n = sl_jedit_apply(e, in, len, v, nv, out, sizeof(out), NULL);
    assert_true(n > 0);
    struct sl_json_scan si, so, sc;
    memset(&si, 0, sizeof(si));
    memset(&so, 0, sizeof(so));
    for (size_t k = 0; k < 6; k++)
        si.paths[k] = so.paths[k] = paths[k];
    si.n_paths = so.n_paths = 6;
    assert_int_equal(sl_json_scan_object(in, len, &si), 0);
    assert_int_equal(sl_json_scan_object(out, n, &so), 0);
    int got = sl_jedit_carry_scan(e, in, len, out, n, &si, &sc);
    if (got != want_carry) print_error("in %s out %.*s: carried %d\n", in, (int)n, out, got);
    assert_int_equal(got, want_carry);
    if (!got) return;
    for (size_t k = 0; k < 6; k++) {
        assert_true((sc.val[k] == NULL) == (so.val[k] == NULL));
        if (so.val[k]) {
            assert_ptr_equal(sc.val[k], so.val[k]);
            assert_int_equal(sc.vlen[k], so.vlen[k]);
        }
    }
    assert_int_equal(sc.has_raw_newline, so.has_raw_newline);
}

static void test_carry_scan(void **state)
{
    (void)state;
    const struct step add[] = {{SET, "extra", NULL, 0}, {SET, "tag", NULL, 1}};
    struct sl_jedit *e = plan(add, 2);
    const char *const vals[] = {"\"v\"", "\"t\""};
    /* members only appended: carried, whitespace around the object and a trailing newline too */
    expect_carry(e, "{\"a\":{\"b\":1},\"time\":\"x\",\"k\":[1,2]}", vals, 2, 1);
    expect_carry(e, "  {\"a\": {\"b\" : 1},\n \"k\":null}\n", vals, 2, 1);
    expect_carry(e, "{}", vals, 2, 1);
    /* "extra" exists: replaced in place, so the output is scanned again */
    expect_carry(e, "{\"extra\":0,\"a\":1}", vals, 2, 0);
    sl_jedit_free(e);

    /* a path the record lacks ("new", "k") is what the plan appends: scanned again */
    const struct step add_new[] = {{SET, "new", NULL, 0}};
    e = plan(add_new, 1);
    expect_carry(e, "{\"a\":1}", vals, 1, 0);
    sl_jedit_free(e);
    const struct step add_k[] = {{SET, "k", NULL, 0}};
    e = plan(add_k, 1);
    expect_carry(e, "{\"a\":1}", vals, 1, 0);
    expect_carry(e, "{\"a\":1,\"k\":2}", vals, 1, 0);
    sl_jedit_free(e);
    /* a nested set into an existing object, a removal, a rename: scanned again */
    const struct step nested[] = {{SET, "a.c", NULL, 0}};
    e = plan(nested, 1);
    expect_carry(e, "{\"a\":{\"b\":1},\"z\":2}", vals, 1, 0);
    sl_jedit_free(e);
    const struct step rm[] = {{REMOVE, "z", NULL, 0}};
    e = plan(rm, 1);
    expect_carry(e, "{\"a\":1,\"z\":2}", vals, 0, 0);
    expect_carry(e, "{\"a\":1}", vals, 0, 1); /* nothing to remove: unchanged, carried */
    sl_jedit_free(e);
    const struct step rn[] = {{RENAME, "z", "y", 0}};
    e = plan(rn, 1);
    expect_carry(e, "{\"z\":1,\"a\":2}", vals, 0, 0);
    sl_jedit_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_carry_scan),      cmocka_unit_test(test_remove),
        cmocka_unit_test(test_remove_nested),   cmocka_unit_test(test_set_top_level),
        cmocka_unit_test(test_set_nested),      cmocka_unit_test(test_rename),
        cmocka_unit_test(test_order_and_mix),   cmocka_unit_test(test_escaped_keys),
        cmocka_unit_test(test_tricky_values),   cmocka_unit_test(test_invalid_input),
        cmocka_unit_test(test_build_conflicts), cmocka_unit_test(test_fast_path_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
