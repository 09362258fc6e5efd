/* format: regexp turns a text line into a JSON object of its named groups; these tests pin the
 * exact bytes for the seed chain's Apache pattern, types, absent groups, escaping and refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/json.h"
#include "codec/rxparse.h"

/* fluentd's apache2 parser pattern, as operators copy it into fluentd.record.pattern */
static const char apache[] =
    "^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] \"(?<method>\\S+)(?: "
    "+(?<path>[^ ]*) +\\S*)?\" (?<code>[^ ]*) (?<size>[^ ]*)(?: \"(?<referer>[^\\\"]*)\" "
    "\"(?<agent>[^\\\"]*)\")?$";

/* Runs a match and returns the JSON (static buffer), or NULL when it does not match. */
static const char *parse(struct sl_rxparse *r, const char *line, unsigned *terr)
{
    static char out[4096];
    ssize_t need = sl_rxparse_match(r, line, strlen(line));
    if (need < 0) return NULL;
    assert_true((size_t)need <= sizeof out);
    memset(out, 'X', sizeof out);
    size_t n = sl_rxparse_write(r, out, terr);
    assert_true(n <= (size_t)need);
    out[n] = '\0';
    struct sl_json_scan scan = {0};
    assert_int_equal(sl_json_scan_object(out, n, &scan), 0);
    return out;
}

static void test_apache_combined(void **state)
{
    (void)state;
    char why[256];
    struct sl_kv types[] = {{"code", "int"}, {"size", "int"}};
    struct sl_rxparse *r = sl_rxparse_new(apache, types, 2, why, sizeof why);
    assert_non_null(r);
    assert_int_equal(sl_rxparse_fields(r), 9);
    unsigned terr = 0;
    const char *j = parse(r,
                          "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif "
                          "HTTP/1.0\" 200 2326 \"http://www.example.com/start.html\" "
                          "\"Mozilla/4.08 [en] (Win98; I ;Nav)\"\n",
                          &terr);
    assert_string_equal(j, "{\"host\":\"127.0.0.1\",\"user\":\"frank\",\"time\":\"10/Oct/"
                           "2000:13:55:36 -0700\",\"method\":\"GET\",\"path\":\"/apache_pb.gif\","
                           "\"code\":200,\"size\":2326,\"referer\":\"http://www.example.com/"
                           "start.html\",\"agent\":\"Mozilla/4.08 [en] (Win98; I ;Nav)\"}");
    assert_int_equal(terr, 0);
    /* common log format: the optional referer/agent groups do not take part and are left out;
     * a "-" size is not an int: null, counted */
    j = parse(r, "10.0.0.2 - - [10/Oct/2000:13:55:36 +0000] \"POST /x HTTP/1.1\" 304 -\r\n", &terr);
    assert_string_equal(j,
                        "{\"host\":\"10.0.0.2\",\"user\":\"-\",\"time\":\"10/Oct/2000:13:55:36 "
                        "+0000\",\"method\":\"POST\",\"path\":\"/x\",\"code\":304,\"size\":null}");
    assert_int_equal(terr, 1);
    assert_null(parse(r, "not an access log line", &terr));
    sl_rxparse_free(r);
}

static void test_types(void **state)
{
    (void)state;
    char why[256];
    struct sl_kv types[] = {{"i", "integer"}, {"f", "float"}, {"b", "bool"}, {"s", "string"}};
    struct sl_rxparse *r =
        sl_rxparse_new("^(?<i>\\S*) (?<f>\\S*) (?<b>\\S*) (?<s>\\S*)$", types, 4, why, sizeof why);
    assert_non_null(r);
    unsigned terr = 0;
    assert_string_equal(parse(r, "-0042 1.5 YES 007", &terr),
                        "{\"i\":-42,\"f\":1.5,\"b\":true,\"s\":\"007\"}");
    assert_string_equal(parse(r, "+7 0.1 off x", &terr),
                        "{\"i\":7,\"f\":0.1,\"b\":false,\"s\":\"x\"}");
    assert_string_equal(parse(r, "1e3 2e-3 0 x", &terr),
                        "{\"i\":null,\"f\":0.002,\"b\":false,\"s\":\"x\"}");
    assert_int_equal(terr, 1);
    /* no JSON can say inf, nan or a 20-digit integer: null, counted */
    assert_string_equal(parse(r, "99999999999999999999 inf maybe x", &terr),
                        "{\"i\":null,\"f\":null,\"b\":null,\"s\":\"x\"}");
    assert_int_equal(terr, 4);
    assert_string_equal(parse(r, "   x", &terr), "{\"i\":null,\"f\":null,\"b\":null,\"s\":\"x\"}");
    assert_int_equal(terr, 7);
    sl_rxparse_free(r);
}

static void test_escaping(void **state)
{
    (void)state;
    char why[256];
    struct sl_rxparse *r = sl_rxparse_new("^(?<msg>.*)$", NULL, 0, why, sizeof why);
    assert_non_null(r);
    unsigned terr = 0;
    assert_string_equal(parse(r, "say \"hi\"\\\t\x01", &terr),
                        "{\"msg\":\"say \\\"hi\\\"\\\\\\t\\u0001\"}");
    /* invalid UTF-8 still matches; the byte becomes U+FFFD */
    assert_string_equal(parse(r,
                              "a\xff"
                              "b",
                              &terr),
                        "{\"msg\":\"a\xef\xbf\xbd"
                        "b\"}");
    sl_rxparse_free(r);
}

static void test_refusals(void **state)
{
    (void)state;
    char why[256];
    assert_null(sl_rxparse_new("^(?<a>x", NULL, 0, why, sizeof why));
    assert_non_null(strstr(why, "invalid pattern at offset 7"));
    assert_null(sl_rxparse_new("^(x)$", NULL, 0, why, sizeof why));
    assert_non_null(strstr(why, "no named group"));
    struct sl_kv bad_field[] = {{"nope", "int"}};
    assert_null(sl_rxparse_new("^(?<a>x)$", bad_field, 1, why, sizeof why));
    assert_string_equal(why, "types names 'nope', which is not a named group of the pattern");
    struct sl_kv bad_type[] = {{"a", "long"}};
    assert_null(sl_rxparse_new("^(?<a>x)$", bad_type, 1, why, sizeof why));
    assert_non_null(strstr(why, "type 'long' of 'a'"));
}

static void test_catastrophic_backtracking_fails_the_line(void **state)
{
    (void)state;
    char why[256];
    struct sl_rxparse *r = sl_rxparse_new("^(?<a>(x+x+)+y)$", NULL, 0, why, sizeof why);
    assert_non_null(r);
    char line[64];
    memset(line, 'x', sizeof line - 1);
    line[sizeof line - 1] = '\0';
    assert_int_equal(sl_rxparse_match(r, line, strlen(line)), -1);
    sl_rxparse_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apache_combined),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_catastrophic_backtracking_fails_the_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
