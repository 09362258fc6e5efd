/* Tag pattern tests: fluentd's documented examples, its glob tests, and our stricter syntax. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/tagmatch.h"

struct mcase {
    const char *pattern;
    const char *tag;
    bool expect;
};

static const struct mcase cases[] = {
    /* fluentd docs, "How do the match patterns work?" */
    {"a.*", "a.b", true},
    {"a.*", "a", false},
    {"a.*", "a.b.c", false},
    {"a.**", "a", true},
    {"a.**", "a.b", true},
    {"a.**", "a.b.c", true},
    {"a.**", "ab", false},
    {"a.**", "b.a", false},
    {"{a,b}", "a", true},
    {"{a,b}", "b", true},
    {"{a,b}", "c", false},
    {"a.{b,c}.*", "a.b.x", true},
    {"a.{b,c}.*", "a.c.x", true},
    {"a.{b,c}.*", "a.d.x", false},
    {"a.{b,c}.*", "a.b", false},
    {"a.{b,c.**}", "a.b", true},
    {"a.{b,c.**}", "a.c", true},
    {"a.{b,c.**}", "a.c.d.e", true},
    {"a.{b,c.**}", "a.b.d", false},
    {"a b", "a", true},
    {"a b", "b", true},
    {"a b", "c", false},
    {"a.** b.*", "b.x", true},
    {"a.** b.*", "a.x.y", true},
    {"a.** b.*", "b", false},
    /* plain literals */
    {"a", "a", true},
    {"a.b", "a.b", true},
    {"a", "b", false},
    {"a.b", "aab", false},
    {"a.b", "a.b.c", false},
    {"a.b", "a", false},
    {"abc", "ab", false},
    /* `*` globs within one part, as in fluentd */
    {"a*", "a", true},
    {"a*", "ab", true},
    {"a*", "abc", true},
    {"a*", "a.b", false},
    {"*a", "cba", true},
    {"*a", "b.a", false},
    {"*", "a", true},
    {"*", "a.b", false},
    {"*.*", "a.b", true},
    {"*.*", "a.b.c", false},
    {"kafka.*", "kafka.app-logs", true},
    /* `**` */
    {"**", "", true},
    {"**", "a", true},
    {"**", "a.b.c", true},
    {"**.c", "c", true},
    {"**.c", "a.b.c", true},
    {"**.c", "a.bc", false},
    {"**.c", "a.c.d", false},
    {"a.**.b", "a.b", true},
    {"a.**.b", "a.x.b", true},
    {"a.**.b", "a.x.y.b", true},
    {"a.**.b", "ab", false},
    {"a.**.b", "a.xb", false},
    {"a.**.b", "a", false},
    {"a.**.b", "a.b.c", false},
    {"a**", "a.b.c", true},
    {"a**", "ab", true},
    {"a.**.b.**.c", "a.b.c", true},
    {"a.**.b.**.c", "a.x.b.y.z.c", true},
    {"a.**.b.**.c", "a.x.c", false},
    /* empty parts in tags are parts too */
    {"a.*", "a.", true},
    {"a.*.c", "a..c", true},
    {"a.**", "a.", true},
    /* alternatives with dots, wildcards and nesting */
    {"{a,b.c}", "b.c", true},
    {"{a,b.c}", "b", false},
    {"{a,b.c}.d", "b.c.d", true},
    {"{a.*,b}.z", "a.q.z", true},
    {"{a.*,b}.z", "a.z", false},
    {"{a,{b,c}.d}", "c.d", true},
    {"{a,{b,c}.d}", "b", false},
    {"{a,{b,c}.d}", "a", true},
    {"x.{**.b,c}", "x.b", true},
    {"x.{**.b,c}", "x.y.z.b", true},
    {"x{1,2}", "x2", true},
    {"x{1,2}", "x3", false},
    /* escapes and case */
    {"a\\*", "a*", true},
    {"a\\*", "ab", false},
    {"A.b", "a.b", false},
};

static void test_match_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[128];
        struct sl_tagpat *p = sl_tagpat_compile(cases[i].pattern, err, sizeof(err));
        if (!p) fail_msg("compile '%s': %s", cases[i].pattern, err);
        bool got = sl_tagpat_match(p, cases[i].tag, strlen(cases[i].tag));
        if (got != cases[i].expect)
            fail_msg("pattern '%s' tag '%s': expected %d got %d", cases[i].pattern, cases[i].tag,
                     cases[i].expect, got);
        sl_tagpat_free(p);
    }
}

static void test_tag_len_is_respected(void **state)
{
    (void)state;
    char err[128];
    struct sl_tagpat *p = sl_tagpat_compile("a.b", err, sizeof(err));
    assert_non_null(p);
    /* The tag need not be NUL-terminated: only tag_len bytes count. */
    assert_true(sl_tagpat_match(p, "a.bXYZ", 3));
    assert_false(sl_tagpat_match(p, "a.bXYZ", 4));
    assert_false(sl_tagpat_match(p, "a.b", 2));
    sl_tagpat_free(p);
}

struct ecase {
    const char *pattern;
    const char *message;
};

static const struct ecase errors[] = {
    {"", "empty pattern"},
    {"   ", "empty pattern"},
    {"a..b", "empty part at offset 2"},
    {".a", "empty part at offset 0"},
    {"a.", "empty part at offset 2"},
    {"a.**.", "empty part after '**.' at offset 5"},
    {"{a,b", "unbalanced '{' at offset 0"},
    {"x.{a,b c}", "unbalanced '{' at offset 2"},
    {"a}", "unbalanced '}' at offset 1"},
    {"a,b", "',' outside braces at offset 1 (separate patterns with spaces)"},
    {"{a,}", "empty alternative at offset 3"},
    {"{}", "empty alternative at offset 1"},
    {"{a.,b}", "empty part at offset 3"},
    {"a\\", "trailing '\\' at offset 1"},
    {"{{{{{{{{{{{{{{{{{a}}}}}}}}}}}}}}}}}", "braces nested deeper than 16"},
};

static void test_compile_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        char err[128] = "unset";
        struct sl_tagpat *p = sl_tagpat_compile(errors[i].pattern, err, sizeof(err));
        if (p) {
            sl_tagpat_free(p);
            fail_msg("pattern '%s' compiled, expected error", errors[i].pattern);
        }
        if (strcmp(err, errors[i].message) != 0)
            fail_msg("pattern '%s': got '%s', expected '%s'", errors[i].pattern, err,
                     errors[i].message);
    }
}

static void test_long_pattern_rejected(void **state)
{
    (void)state;
    char pat[1100];
    memset(pat, 'a', sizeof(pat) - 1);
    pat[sizeof(pat) - 1] = '\0';
    char err[128];
    assert_null(sl_tagpat_compile(pat, err, sizeof(err)));
    assert_string_equal(err, "pattern longer than 1024 bytes");
    pat[1024] = '\0';
    struct sl_tagpat *p = sl_tagpat_compile(pat, err, sizeof(err));
    assert_non_null(p);
    assert_true(sl_tagpat_match(p, pat, 1024));
    sl_tagpat_free(p);
}

static void test_worst_case_ops_fit(void **state)
{
    (void)state;
    /* Shapes that produce the most ops per input byte must compile and match. */
    const char *pats[] = {"{{{{a}}}}", "{a,b,c,d,e,f}", "a b c d e f g", "**.**.**.x", "{**,*}"};
    for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
        char err[128];
        struct sl_tagpat *p = sl_tagpat_compile(pats[i], err, sizeof(err));
        if (!p) fail_msg("'%s': %s", pats[i], err);
        sl_tagpat_free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_table),        cmocka_unit_test(test_tag_len_is_respected),
        cmocka_unit_test(test_compile_errors),     cmocka_unit_test(test_long_pattern_rejected),
        cmocka_unit_test(test_worst_case_ops_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
