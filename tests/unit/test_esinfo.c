/* Tests of src/codec/esinfo.c: the GET / answer of Elasticsearch and OpenSearch clusters. The
 * OpenSearch 2.19.6 vector is the real node's answer byte for byte (it pretty-prints GET /). Also
 * here: no action line sluice writes names a _type, which Elasticsearch 8 and OpenSearch 2
 * refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/bulk.h"
#include "codec/esinfo.h"

static const char opensearch_2_19_6[] =
    "{\n"
    "  \"name\" : \"node-1\",\n"
    "  \"cluster_name\" : \"sluice-test\",\n"
    "  \"cluster_uuid\" : \"9CzSdyc8RueaOelxJU2waQ\",\n"
    "  \"version\" : {\n"
    "    \"distribution\" : \"opensearch\",\n"
    "    \"number\" : \"2.19.6\",\n"
    "    \"build_type\" : \"unknown\",\n"
    "    \"build_hash\" : \"97d3c13bf22a4a72ac11dc503fe44c97662b9161\",\n"
    "    \"build_date\" : \"2026-07-01T04:27:16.038403104Z\",\n"
    "    \"build_snapshot\" : false,\n"
    "    \"lucene_version\" : \"9.12.3\",\n"
    "    \"minimum_wire_compatibility_version\" : \"7.10.0\",\n"
    "    \"minimum_index_compatibility_version\" : \"7.0.0\"\n"
    "  },\n"
    "  \"tagline\" : \"The OpenSearch Project: https://opensearch.org/\"\n"
    "}\n";

static const char elasticsearch_8_11_0[] =
    "{\"name\":\"es01\",\"cluster_name\":\"docker-cluster\",\"cluster_uuid\":\"x\","
    "\"version\":{\"number\":\"8.11.0\",\"build_flavor\":\"default\",\"build_type\":\"docker\","
    "\"build_hash\":\"d9ec3fa628c7b0ba3d25692e277ba26814820b20\",\"build_date\":"
    "\"2023-11-04T10:04:57.184859352Z\",\"build_snapshot\":false,\"lucene_version\":\"9.8.0\","
    "\"minimum_wire_compatibility_version\":\"7.17.0\","
    "\"minimum_index_compatibility_version\":\"7.0.0\"},\"tagline\":\"You Know, for Search\"}";

static struct sl_es_info parse_ok(const char *body)
{
    struct sl_es_info info;
    char err[128] = "";
    int rc = sl_es_info_parse(body, strlen(body), &info, err, sizeof err);
    if (rc != 0) print_error("unexpected error: %s\n", err);
    assert_int_equal(rc, 0);
    return info;
}

static void parse_fails(const char *body, size_t len, const char *why)
{
    struct sl_es_info info = {.major = 42};
    char err[128] = "";
    assert_int_equal(sl_es_info_parse(body, len, &info, err, sizeof err), -1);
    if (!strstr(err, why)) print_error("error '%s' lacks '%s'\n", err, why);
    assert_non_null(strstr(err, why));
    assert_int_equal(info.major, 42); /* untouched */
}

static void test_opensearch(void **state)
{
    (void)state;
    struct sl_es_info i = parse_ok(opensearch_2_19_6);
    assert_int_equal(i.dist, SL_ES_DIST_OPENSEARCH);
    assert_string_equal(i.distribution, "opensearch");
    assert_string_equal(i.number, "2.19.6");
    assert_int_equal(i.major, 2);
    assert_int_equal(i.minor, 19);
    assert_string_equal(sl_es_info_product(&i), "OpenSearch");

    /* 1.x, and a node told to report an Elasticsearch-compatible number
     * (compatibility.override_main_response_version): still OpenSearch */
    i = parse_ok("{\"version\":{\"distribution\":\"opensearch\",\"number\":\"1.3.20\"}}");
    assert_int_equal(i.dist, SL_ES_DIST_OPENSEARCH);
    assert_int_equal(i.major, 1);
    assert_int_equal(i.minor, 3);
    i = parse_ok("{\"version\":{\"number\":\"7.10.2\",\"distribution\":\"opensearch\"}}");
    assert_int_equal(i.dist, SL_ES_DIST_OPENSEARCH);
    assert_int_equal(i.major, 7);
}

static void test_elasticsearch(void **state)
{
    (void)state;
    struct sl_es_info i = parse_ok(elasticsearch_8_11_0);
    assert_int_equal(i.dist, SL_ES_DIST_ELASTICSEARCH);
    assert_string_equal(i.distribution, "");
    assert_string_equal(i.number, "8.11.0");
    assert_int_equal(i.major, 8);
    assert_int_equal(i.minor, 11);
    assert_string_equal(sl_es_info_product(&i), "Elasticsearch");

    /* 6.x; a snapshot build; a number without a minor */
    i = parse_ok("{\"version\":{\"number\":\"6.8.23\",\"build_flavor\":\"oss\"}}");
    assert_int_equal(i.major, 6);
    assert_int_equal(i.minor, 8);
    i = parse_ok("{\"version\":{\"number\":\"9.1.0-SNAPSHOT\"}}");
    assert_int_equal(i.major, 9);
    assert_int_equal(i.minor, 1);
    i = parse_ok("{\"version\":{\"number\":\"10\"}}");
    assert_int_equal(i.major, 10);
    assert_int_equal(i.minor, -1);
    i = parse_ok("{\"version\":{\"number\":\"unknown\"}}");
    assert_int_equal(i.major, -1);
    assert_int_equal(i.minor, -1);
    /* an explicit distribution of the same name */
    i = parse_ok("{\"version\":{\"distribution\":\"elasticsearch\",\"number\":\"8.0.0\"}}");
    assert_int_equal(i.dist, SL_ES_DIST_ELASTICSEARCH);
}

static void test_other_distribution(void **state)
{
    (void)state;
    /* escapes are decoded; an unknown distribution is named as sent */
    struct sl_es_info i =
        parse_ok("{\"version\":{\"distribution\":\"ac\\u006De\",\"number\":\"3.0.0\"}}");
    assert_int_equal(i.dist, SL_ES_DIST_OTHER);
    assert_string_equal(i.distribution, "acme");
    assert_string_equal(sl_es_info_product(&i), "acme");
    /* version.number at the top level or in another object is not the version */
    i = parse_ok("{\"number\":\"1.0\",\"other\":{\"number\":\"2.0\"},\"version\":{\"number\":"
                 "\"8.1.0\"}}");
    assert_string_equal(i.number, "8.1.0");
    /* a huge leading number is cut, not overflowed */
    i = parse_ok("{\"version\":{\"number\":\"99999999999999999999.1\"}}");
    assert_true(i.major >= 0);
}

static void test_errors(void **state)
{
    (void)state;
    static const char html[] = "<html><body>401 Authorization Required</body></html>";
    parse_fails(html, sizeof html - 1, "not a JSON object");
    parse_fails("", 0, "not a JSON object");
    parse_fails("[1]", 3, "not a JSON object");
    /* cut anywhere: never half-read */
    size_t n = strlen(opensearch_2_19_6);
    for (size_t cut = 0; cut + 2 < n; cut++)
        parse_fails(opensearch_2_19_6, cut, "not a JSON object");
    /* a 401 or 403 body: JSON, but no version */
    static const char denied[] =
        "{\"error\":{\"root_cause\":[{\"type\":\"security_exception\",\"reason\":\"action "
        "[cluster:monitor/main] is unauthorized\"}],\"type\":\"security_exception\"},"
        "\"status\":403}";
    parse_fails(denied, sizeof denied - 1, "no version.number");
    parse_fails("{\"version\":\"8.0.0\"}", 19, "no version.number");
    parse_fails("{\"version\":{\"number\":8}}", 24, "version.number is not a string");
    static const char longnum[] = "{\"version\":{\"number\":\"1.2.3.4.5.6.7.8.9.10.11.12.13.14\"}}";
    parse_fails(longnum, sizeof longnum - 1, "version.number is not a string");
    static const char longdist[] =
        "{\"version\":{\"number\":\"1.0\",\"distribution\":\"abcdefghijklmnopqrstuvwxyz012345\"}}";
    parse_fails(longdist, sizeof longdist - 1, "version.distribution is not a string");
    static const char numdist[] = "{\"version\":{\"number\":\"1.0\",\"distribution\":null}}";
    parse_fails(numdist, sizeof numdist - 1, "version.distribution is not a string");
}

/* Every action line sluice writes (whole, or head then tail), for both ops, with and without an
 * id: only _index and _id in the action's object, never _type. */
static void test_no_type_in_actions(void **state)
{
    (void)state;
    static const char *const ids[] = {NULL, "", "logs-3-1200456", "_type", "a\"_type\":\"x"};
    char whole[512], split[512];
    for (int op = SL_BULK_CREATE; op <= SL_BULK_INDEX; op++) {
        for (size_t k = 0; k < sizeof ids / sizeof *ids; k++) {
            const char *id = ids[k];
            size_t idl = id ? strlen(id) : 0;
            size_t n = sl_bulk_action(whole, sizeof whole, (enum sl_bulk_op)op, "logs", 4, id, idl);
            assert_true(n > 0);
            whole[n] = '\0';
            size_t h = sl_bulk_action_head(split, sizeof split, (enum sl_bulk_op)op, "logs", 4);
            size_t t = sl_bulk_action_tail(split, sizeof split, h, id, idl);
            assert_int_equal(t, n);
            assert_memory_equal(split, whole, n);
            /* an id that contains the text is escaped inside the _id string, not a key */
            assert_null(strstr(whole, "\"_type\":"));
            assert_null(strstr(whole, "\"_type\" :"));
            assert_non_null(strstr(whole, "{\"_index\":\"logs\""));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opensearch),         cmocka_unit_test(test_elasticsearch),
        cmocka_unit_test(test_other_distribution), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_no_type_in_actions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
