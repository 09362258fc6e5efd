/* Tests of src/codec/bulk.c: action lines, bulk response and error-body parsing, classification.
 * Vectors marked "SPEC" are byte-exact copies of the examples in the Bulk API
 * specification (elastic/elasticsearch-specification, specification/_global/bulk/examples). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/bulk.h"
#include "codec/json.h"

#define LIT(s) s, sizeof(s) - 1

static void assert_slice(const char *p, size_t n, const char *want)
{
    if (!want) {
        assert_null(p);
        assert_int_equal(n, 0);
        return;
    }
    assert_non_null(p);
    if (n != strlen(want) || memcmp(p, want, n) != 0)
        print_error("got '%.*s' want '%s'\n", (int)n, p, want);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(p, want, n);
}

/* ---- action lines ---- */

static void test_action_lines(void **state)
{
    (void)state;
    char out[256];
    /* SPEC, request: example action line */
    size_t n = sl_bulk_action(out, sizeof(out), SL_BULK_CREATE, LIT("logstash-2026.08.21"),
                              LIT("logs+3+1200"));
    assert_slice(out, n,
                 "{\"create\":{\"_index\":\"logstash-2026.08.21\",\"_id\":\"logs+3+1200\"}}\n");

    n = sl_bulk_action(out, sizeof(out), SL_BULK_INDEX, LIT("logs"), NULL, 0);
    assert_slice(out, n, "{\"index\":{\"_index\":\"logs\"}}\n");

    n = sl_bulk_action(out, sizeof(out), SL_BULK_INDEX, LIT("logs"), LIT("logs-3-1200456"));
    assert_slice(out, n, "{\"index\":{\"_index\":\"logs\",\"_id\":\"logs-3-1200456\"}}\n");

    /* ids may hold anything */
    n = sl_bulk_action(out, sizeof(out), SL_BULK_CREATE, LIT("i\"x"),
                       LIT("a\"b\\c\nd\0e\xff/\xc3\xa9"));
    assert_slice(out, n,
                 "{\"create\":{\"_index\":\"i\\\"x\",\"_id\":\"a\\\"b\\\\c\\nd\\u0000e\xef\xbf\xbd/"
                 "\xc3\xa9\"}}\n");

    /* empty id is still an id */
    n = sl_bulk_action(out, sizeof(out), SL_BULK_CREATE, LIT("i"), "", 0);
    assert_slice(out, n, "{\"create\":{\"_index\":\"i\",\"_id\":\"\"}}\n");
}

/* One head, kept, then tails for several ids: the same bytes as whole action lines; and for
 * every cap below the whole line's length, 0. */
static void test_action_head_and_tail(void **state)
{
    (void)state;
    char head[256], line[512], want[512];
    size_t h = sl_bulk_action_head(head, sizeof head, SL_BULK_CREATE, LIT("logs-2026.11.28"));
    assert_int_equal(h, strlen("{\"create\":{\"_index\":\"logs-2026.11.28\""));
    const char *ids[] = {"logs-3-1200456", "a\"b", "", NULL};
    for (size_t k = 0; k < 4; k++) {
        size_t il = ids[k] ? strlen(ids[k]) : 0;
        size_t wn =
            sl_bulk_action(want, sizeof want, SL_BULK_CREATE, LIT("logs-2026.11.28"), ids[k], il);
        memcpy(line, head, h);
        assert_int_equal(sl_bulk_action_tail(line, sizeof line, h, ids[k], il), wn);
        assert_memory_equal(line, want, wn);
        for (size_t cap = 0; cap < wn; cap++)
            assert_int_equal(
                sl_bulk_action(line, cap, SL_BULK_CREATE, LIT("logs-2026.11.28"), ids[k], il), 0);
    }
}

static void test_action_capacity(void **state)
{
    (void)state;
    char want[512], out[512];
    size_t wn = sl_bulk_action(want, sizeof(want), SL_BULK_CREATE, LIT("idx\n"), LIT("i\"d"));
    assert_true(wn > 0);
    memset(out, 'Z', sizeof(out));
    assert_int_equal(sl_bulk_action(out, wn, SL_BULK_CREATE, LIT("idx\n"), LIT("i\"d")), wn);
    assert_memory_equal(out, want, wn);
    memset(out, 'Z', sizeof(out));
    assert_int_equal(sl_bulk_action(out, wn - 1, SL_BULK_CREATE, LIT("idx\n"), LIT("i\"d")), 0);
    assert_int_equal(sl_bulk_action(out, 0, SL_BULK_INDEX, LIT("i"), NULL, 0), 0);

    /* the documented bound holds for the worst bytes (control characters take 6) */
    char idx[40], id[40];
    memset(idx, 1, sizeof(idx));
    memset(id, 2, sizeof(id));
    for (size_t il = 0; il <= sizeof(idx); il += 5) {
        for (size_t dl = 0; dl <= sizeof(id); dl += 3) {
            size_t cap = 64 + 6 * (il + dl);
            char *buf = malloc(cap);
            assert_true(sl_bulk_action(buf, cap, SL_BULK_CREATE, idx, il, id, dl) > 0);
            assert_true(sl_bulk_action(buf, cap, SL_BULK_INDEX, idx, il, id, dl) > 0);
            free(buf);
        }
    }
}

/* An action line is one JSON object on one line whose _id decodes back to the id. */
static void test_action_round_trip(void **state)
{
    (void)state;
    uint32_t x = 7;
    for (int iter = 0; iter < 5000; iter++) {
        char id[64], line[64 + 6 * 70], dec[64];
        size_t idl = (size_t)(iter % 64);
        for (size_t k = 0; k < idl; k++) {
            x = x * 1103515245u + 12345u;
            /* valid UTF-8 only, so decoding must give the id back: ASCII incl. controls */
            id[k] = (char)((x >> 16) & 0x7f);
        }
        size_t n = sl_bulk_action(line, sizeof(line), SL_BULK_CREATE, LIT("logs"), id, idl);
        assert_true(n > 0);
        assert_int_equal(line[n - 1], '\n');
        assert_null(memchr(line, '\n', n - 1));
        struct sl_json_scan s;
        memset(&s, 0, sizeof(s));
        s.paths[0] = "create._id";
        s.n_paths = 1;
        assert_int_equal(sl_json_scan_object(line, n - 1, &s), 0);
        assert_int_equal(s.has_raw_newline, 0);
        assert_non_null(s.val[0]);
        ssize_t d = sl_json_unescape(s.val[0], s.vlen[0], dec, sizeof(dec));
        assert_int_equal(d, idl);
        assert_memory_equal(dec, id, idl);
    }
}

/* ---- responses ---- */

/* An ES 8 style body with every item shape we care about, pretty-printed in places. */
static const char full_body[] =
    "{\"took\":30,\"errors\":true,\"items\":[\n"
    "{\"create\":{\"_index\":\"logs-app-2026.11.27\",\"_id\":\"app-0-100\",\"_version\":1,"
    "\"result\":\"created\",\"_shards\":{\"total\":2,\"successful\":1,\"failed\":0},"
    "\"_seq_no\":0,\"_primary_term\":1,\"status\":201}},\n"
    "{\"create\":{\"_index\":\"logs-app-2026.11.27\",\"_id\":\"app-0-101\",\"status\":409,"
    "\"error\":{\"type\":\"version_conflict_engine_exception\",\"reason\":\"[app-0-101]: version "
    "conflict, document already exists (current version [1])\",\"index_uuid\":"
    "\"aAsFqTI0Tc2W0LCWgPNrOA\",\"shard\":\"0\",\"index\":\"logs-app-2026.11.27\"}}},\n"
    "{\"create\":{\"_index\":\"logs-app-2026.11.27\",\"_id\":\"app-0-102\",\"status\":400,"
    "\"error\":{\"caused_by\":{\"type\":\"illegal_argument_exception\",\"reason\":\"For input "
    "string: \\\"x\\\\\\\"y\\\"\"},\"type\":\"document_parsing_exception\",\"reason\":\"[1:15] "
    "failed to parse field [n] of type [long] in document with id 'app-0-102'. Preview of "
    "field's value: 'x\\\"y'\"}}},\n"
    "  { \"index\" : { \"error\" : { \"root_cause\" : [ { \"type\" : \"x\", \"reason\" : \"y\" } ],"
    " \"type\" : \"es_rejected_execution_exception\", \"reason\" : \"rejected execution of "
    "coordinating operation\" }, \"status\" : 429 } },\n"
    "{\"update\":{\"_index\":\"i\",\"_id\":\"4\",\"status\":503,\"error\":{\"type\":"
    "\"unavailable_shards_exception\",\"reason\":\"[i][0] primary shard is not active\"}}},\n"
    "{\"delete\":{\"_index\":\"i\",\"_id\":\"5\",\"_version\":2,\"result\":\"not_found\","
    "\"status\":404,\"_shards\":{\"total\":2,\"successful\":1,\"failed\":0}}}\n"
    "],\"ingest_took\":0}";

static void test_parse_full_body(void **state)
{
    (void)state;
    struct sl_bulk_item it[6];
    char err[128];
    assert_int_equal(
        sl_bulk_parse_response(full_body, sizeof(full_body) - 1, it, 6, err, sizeof(err)), 0);
    assert_int_equal(it[0].status, 201);
    assert_slice(it[0].type, it[0].type_len, NULL);
    assert_slice(it[0].reason, it[0].reason_len, NULL);
    assert_int_equal(it[1].status, 409);
    assert_slice(it[1].type, it[1].type_len, "version_conflict_engine_exception");
    assert_slice(it[1].reason, it[1].reason_len,
                 "[app-0-101]: version conflict, document already exists (current version [1])");
    assert_int_equal(it[2].status, 400);
    /* the item's own error, not its caused_by, and still escaped */
    assert_slice(it[2].type, it[2].type_len, "document_parsing_exception");
    assert_slice(it[2].reason, it[2].reason_len,
                 "[1:15] failed to parse field [n] of type [long] in document with id "
                 "'app-0-102'. Preview of field's value: 'x\\\"y'");
    assert_int_equal(it[3].status, 429);
    assert_slice(it[3].type, it[3].type_len, "es_rejected_execution_exception");
    assert_slice(it[3].reason, it[3].reason_len, "rejected execution of coordinating operation");
    assert_int_equal(it[4].status, 503);
    assert_slice(it[4].type, it[4].type_len, "unavailable_shards_exception");
    assert_int_equal(it[5].status, 404);
    assert_null(it[5].type);
}

static void test_parse_es7_and_filtered(void **state)
{
    (void)state;
    struct sl_bulk_item it[3];
    char err[128];
    static const char es7[] =
        "{\"took\":3,\"errors\":false,\"items\":[{\"index\":{\"_index\":\"i\",\"_type\":\"_doc\","
        "\"_id\":\"1\",\"_version\":1,\"result\":\"created\",\"_shards\":{\"total\":2,"
        "\"successful\":1,\"failed\":0},\"_seq_no\":0,\"_primary_term\":1,\"status\":201}}]}";
    assert_int_equal(sl_bulk_parse_response(LIT(es7), it, 1, err, sizeof(err)), 0);
    assert_int_equal(it[0].status, 201);

    /* filter_path=took,errors,items.*.status,items.*.error.type,items.*.error.reason,items.*._id,
     * with "items" first and "status" after "error" */
    static const char filtered[] =
        "{\"items\":[{\"create\":{\"status\":201}},{\"create\":{\"_id\":\"x\",\"error\":{"
        "\"type\":\"mapper_parsing_exception\",\"reason\":\"failed to parse\"},\"status\":400}},"
        "{\"create\":{\"status\":409,\"error\":{\"type\":\"version_conflict_engine_exception\"}}}],"
        "\"errors\":true,\"took\":5}";
    assert_int_equal(sl_bulk_parse_response(LIT(filtered), it, 3, err, sizeof(err)), 0);
    assert_int_equal(it[0].status, 201);
    assert_int_equal(it[1].status, 400);
    assert_slice(it[1].type, it[1].type_len, "mapper_parsing_exception");
    assert_slice(it[1].reason, it[1].reason_len, "failed to parse");
    assert_int_equal(it[2].status, 409);
    assert_slice(it[2].type, it[2].type_len, "version_conflict_engine_exception");
    assert_null(it[2].reason);

    /* no items were sent, none came back */
    assert_int_equal(sl_bulk_parse_response(LIT("{\"took\":0,\"errors\":false,\"items\":[]}"), it,
                                            0, err, sizeof(err)),
                     0);
}

static void test_parse_protocols_failed_item(void **state)
{
    (void)state;
    /* SPEC, response: example failed item, as the only item of a response */
    static const char body[] =
        "{\"took\":1,\"errors\":true,\"items\":["
        "{\"create\":{\"_index\":\"i\",\"_id\":\"7\",\"status\":409,\"error\":{\"type\":"
        "\"version_conflict_engine_exception\",\"reason\":\"[7]: version conflict, document "
        "already exists (current version [1])\",\"index_uuid\":\"\xe2\x80\xa6\",\"shard\":\"0\","
        "\"index\":\"i\"}}}"
        "]}";
    struct sl_bulk_item it[1];
    char err[128];
    assert_int_equal(sl_bulk_parse_response(LIT(body), it, 1, err, sizeof(err)), 0);
    assert_int_equal(it[0].status, 409);
    assert_slice(it[0].type, it[0].type_len, "version_conflict_engine_exception");
    assert_slice(it[0].reason, it[0].reason_len,
                 "[7]: version conflict, document already exists (current version [1])");
    assert_int_equal(sl_bulk_classify_item(it[0].status, SL_BULK_CREATE), SL_BULK_DELIVERED);
    assert_int_equal(sl_bulk_classify_item(it[0].status, SL_BULK_INDEX), SL_BULK_DEAD_LETTER);
}

/* A body cut at any byte is an error, never a shorter success. */
static void test_truncated_everywhere(void **state)
{
    (void)state;
    struct sl_bulk_item it[6];
    char err[128];
    size_t len = sizeof(full_body) - 1;
    for (size_t n = 0; n < len; n++) {
        char *copy = malloc(n ? n : 1); /* exact size, so ASan catches any overread */
        memcpy(copy, full_body, n);
        for (size_t want = 0; want <= 6; want += 6) {
            err[0] = '\0';
            int rc = sl_bulk_parse_response(copy, n, it, want, err, sizeof(err));
            if (rc != -1) print_error("prefix %zu accepted\n", n);
            assert_int_equal(rc, -1);
            assert_true(strlen(err) > 0);
        }
        free(copy);
    }
}

static size_t make_filtered_body(char *buf, size_t cap, size_t n_items)
{
    size_t o = (size_t)snprintf(buf, cap, "{\"took\":7,\"errors\":false,\"items\":[");
    for (size_t k = 0; k < n_items; k++)
        o += (size_t)snprintf(buf + o, cap - o, "%s{\"create\":{\"status\":201}}", k ? "," : "");
    o += (size_t)snprintf(buf + o, cap - o, "]}");
    return o;
}

static void test_count_mismatch(void **state)
{
    (void)state;
    size_t cap = 40 * 520;
    char *buf = malloc(cap);
    struct sl_bulk_item *it = calloc(501, sizeof(*it));
    char err[128];
    size_t n = make_filtered_body(buf, cap, 499);
    assert_int_equal(sl_bulk_parse_response(buf, n, it, 500, err, sizeof(err)), -1);
    assert_string_equal(err, "expected 500 items, response has 499");
    assert_int_equal(sl_bulk_parse_response(buf, n, it, 499, err, sizeof(err)), 0);
    /* extra items are counted but never written past n_expected */
    n = make_filtered_body(buf, cap, 501);
    it[500].status = -7;
    assert_int_equal(sl_bulk_parse_response(buf, n, it, 500, err, sizeof(err)), -1);
    assert_string_equal(err, "expected 500 items, response has 501");
    assert_int_equal(it[500].status, -7);
    /* a tiny err buffer is truncated, not overrun */
    char small[8];
    memset(small, 'Z', sizeof(small));
    assert_int_equal(sl_bulk_parse_response(buf, n, it, 500, small, 4), -1);
    assert_string_equal(small, "exp");
    assert_int_equal(small[4], 'Z');
    assert_int_equal(sl_bulk_parse_response(buf, n, it, 500, NULL, 0), -1);
    free(it);
    free(buf);
}

struct bad_body {
    const char *body;
    const char *msg; /* substring of the error */
};

static const struct bad_body bad_bodies[] = {
    {"{\"items\":[{\"index\":{\"_id\":\"1\"}}]}", "item 0 has no status"},
    {"{\"items\":[{\"index\":{\"status\":201}},{\"index\":{}}]}", "item 1 has no status"},
    {"{\"items\":[{\"index\":{\"status\":\"201\"}}]}", "invalid status"},
    {"{\"items\":[{\"index\":{\"status\":2010}}]}", "invalid status"},
    {"{\"items\":[{\"index\":{\"status\":201.0}}]}", "invalid status"},
    {"{\"items\":[{\"index\":{\"status\":99}}]}", "invalid status"},
    {"{\"items\":[{\"index\":{\"status\":600}}]}", "invalid status"},
    {"{\"items\":[{\"index\":{\"status\":-201}}]}", "invalid status"},
    {"{\"items\":[{\"index\":{\"status\":null}}]}", "invalid status"},
    {"{\"items\":[{}]}", "item 0 is empty"},
    {"{\"items\":[{\"index\":{\"status\":201},\"create\":{\"status\":201}}]}",
     "more than one action"},
    {"{\"items\":[{\"index\":201}]}", "expected '{'"},
    {"{\"items\":[1]}", "expected '{'"},
    {"{\"items\":{}}", "not an array"},
    {"{\"took\":1,\"errors\":false}", "no \"items\""},
    {"{\"items\":[],\"items\":[]}", "duplicate"},
    {"{\"items\":[{\"index\":{\"status\":201}}]} x", "trailing data"},
    {"{\"items\":[{\"index\":{\"status\":201}}],}", "expected string key"},
    {"{\"items\":[{\"index\":{\"status\":201}},]}", "expected '{'"},
    {"{\"took\":01,\"items\":[{\"index\":{\"status\":201}}]}", "leading zero"},
    {"{\"x\":\"\xff\",\"items\":[{\"index\":{\"status\":201}}]}", "invalid UTF-8"},
    {"{\"items\":[{\"index\":{\"status\":201,\"error\":{\"type\":\"a\",}}}]}",
     "expected string key"},
    {"[{\"index\":{\"status\":201}}]", "not a JSON object"},
    {"", "unexpected end of input"},
    /* SPEC, request: missing-newline body is a whole-request error, not a response */
    {"{\"error\":{\"type\":\"illegal_argument_exception\",\"reason\":\"The bulk request must be "
     "terminated by a newline [\\n]\"},\"status\":400}",
     "no \"items\""},
};

static void test_bad_bodies(void **state)
{
    (void)state;
    struct sl_bulk_item it[2];
    for (size_t k = 0; k < sizeof(bad_bodies) / sizeof(bad_bodies[0]); k++) {
        char err[160] = "";
        const char *b = bad_bodies[k].body;
        int rc = sl_bulk_parse_response(b, strlen(b), it, 1, err, sizeof(err));
        if (rc != -1 || !strstr(err, bad_bodies[k].msg))
            print_error("case %zu: rc %d err '%s'\n", k, rc, err);
        assert_int_equal(rc, -1);
        assert_non_null(strstr(err, bad_bodies[k].msg));
    }
}

static void test_deep_unknown_value(void **state)
{
    (void)state;
    size_t depth = 100000;
    char *buf = malloc(depth * 2 + 64);
    size_t n = (size_t)sprintf(buf, "{\"x\":");
    memset(buf + n, '[', depth);
    n += depth;
    memset(buf + n, ']', depth);
    n += depth;
    n += (size_t)sprintf(buf + n, ",\"items\":[]}");
    struct sl_bulk_item it[1];
    char err[128];
    assert_int_equal(sl_bulk_parse_response(buf, n, it, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "nesting too deep"));
    free(buf);
}

/* ---- whole-request error bodies ---- */

static void test_parse_error_bodies(void **state)
{
    (void)state;
    struct sl_bulk_item e;
    /* SPEC, request: missing final newline */
    static const char nl[] =
        "{\"error\":{\"type\":\"illegal_argument_exception\",\"reason\":\"The "
        "bulk request must be terminated by a newline [\\n]\"},\"status\":400}";
    assert_int_equal(sl_bulk_parse_error(LIT(nl), &e), 0);
    assert_int_equal(e.status, 400);
    assert_slice(e.type, e.type_len, "illegal_argument_exception");
    assert_slice(e.reason, e.reason_len, "The bulk request must be terminated by a newline [\\n]");

    /* SPEC, request: unsupported Content-Type: error is a bare string */
    static const char ct[] =
        "{\"error\":\"Content-Type header [...] is not supported\",\"status\":406}";
    assert_int_equal(sl_bulk_parse_error(LIT(ct), &e), 0);
    assert_int_equal(e.status, 406);
    assert_null(e.type);
    assert_slice(e.reason, e.reason_len, "Content-Type header [...] is not supported");

    /* SPEC, response: ErrorResponseBase shape, filled in as a 429 */
    static const char busy[] =
        "{\"error\":{\"root_cause\":[{\"type\":\"es_rejected_execution_exception\",\"reason\":"
        "\"rejected execution of coordinating operation [x]\"}],\"type\":"
        "\"es_rejected_execution_exception\",\"reason\":\"rejected execution of coordinating "
        "operation [coordinating_and_primary_bytes=0]\"},\"status\":429}";
    assert_int_equal(sl_bulk_parse_error(LIT(busy), &e), 0);
    assert_int_equal(e.status, 429);
    assert_slice(e.type, e.type_len, "es_rejected_execution_exception");
    assert_slice(e.reason, e.reason_len,
                 "rejected execution of coordinating operation [coordinating_and_primary_bytes=0]");

    /* status order does not matter, and is optional */
    assert_int_equal(sl_bulk_parse_error(LIT("{\"status\":503,\"error\":{\"type\":\"t\"}}"), &e),
                     0);
    assert_int_equal(e.status, 503);
    assert_int_equal(sl_bulk_parse_error(LIT("{\"error\":{\"reason\":\"r\"}}"), &e), 0);
    assert_int_equal(e.status, 0);
    assert_slice(e.reason, e.reason_len, "r");

    /* not that shape */
    e.status = 77;
    assert_int_equal(sl_bulk_parse_error(LIT("{\"took\":1,\"errors\":false,\"items\":[]}"), &e),
                     -1);
    assert_int_equal(e.status, 77);
    assert_int_equal(sl_bulk_parse_error(LIT("{\"error\":{}}"), &e), -1);
    assert_int_equal(sl_bulk_parse_error(LIT("{\"error\":5}"), &e), -1);
    assert_int_equal(sl_bulk_parse_error(LIT("<html>502 Bad Gateway</html>"), &e), -1);
    assert_int_equal(sl_bulk_parse_error(LIT(""), &e), -1);
    for (size_t n = 0; n < sizeof(nl) - 1; n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, nl, n);
        assert_int_equal(sl_bulk_parse_error(copy, n, &e), -1);
        free(copy);
    }
}

/* ---- classification (docs/guarantees.md, "Per bulk item") ---- */

static void test_classify(void **state)
{
    (void)state;
    struct {
        int status;
        enum sl_bulk_class create, index;
    } v[] = {
        {200, SL_BULK_DELIVERED, SL_BULK_DELIVERED},
        {201, SL_BULK_DELIVERED, SL_BULK_DELIVERED},
        {202, SL_BULK_DELIVERED, SL_BULK_DELIVERED},
        {299, SL_BULK_DELIVERED, SL_BULK_DELIVERED},
        {409, SL_BULK_DELIVERED, SL_BULK_DEAD_LETTER},
        {429, SL_BULK_RETRY, SL_BULK_RETRY},
        {408, SL_BULK_RETRY, SL_BULK_RETRY},
        {500, SL_BULK_RETRY, SL_BULK_RETRY},
        {502, SL_BULK_RETRY, SL_BULK_RETRY},
        {503, SL_BULK_RETRY, SL_BULK_RETRY},
        {504, SL_BULK_RETRY, SL_BULK_RETRY},
        {599, SL_BULK_RETRY, SL_BULK_RETRY},
        {401, SL_BULK_RETRY, SL_BULK_RETRY},
        {403, SL_BULK_RETRY, SL_BULK_RETRY},
        {400, SL_BULK_DEAD_LETTER, SL_BULK_DEAD_LETTER},
        {404, SL_BULK_DEAD_LETTER, SL_BULK_DEAD_LETTER},
        {405, SL_BULK_DEAD_LETTER, SL_BULK_DEAD_LETTER},
        {413, SL_BULK_DEAD_LETTER, SL_BULK_DEAD_LETTER},
        {422, SL_BULK_DEAD_LETTER, SL_BULK_DEAD_LETTER},
        {499, SL_BULK_DEAD_LETTER, SL_BULK_DEAD_LETTER},
        {0, SL_BULK_RETRY, SL_BULK_RETRY},
        {100, SL_BULK_RETRY, SL_BULK_RETRY},
        {199, SL_BULK_RETRY, SL_BULK_RETRY},
        {300, SL_BULK_RETRY, SL_BULK_RETRY},
        {399, SL_BULK_RETRY, SL_BULK_RETRY},
        {600, SL_BULK_RETRY, SL_BULK_RETRY},
        {-1, SL_BULK_RETRY, SL_BULK_RETRY},
    };
    for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
        assert_int_equal(sl_bulk_classify_item(v[k].status, SL_BULK_CREATE), v[k].create);
        assert_int_equal(sl_bulk_classify_item(v[k].status, SL_BULK_INDEX), v[k].index);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_action_lines),
        cmocka_unit_test(test_action_capacity),
        cmocka_unit_test(test_action_head_and_tail),
        cmocka_unit_test(test_action_round_trip),
        cmocka_unit_test(test_parse_full_body),
        cmocka_unit_test(test_parse_es7_and_filtered),
        cmocka_unit_test(test_parse_protocols_failed_item),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_count_mismatch),
        cmocka_unit_test(test_bad_bodies),
        cmocka_unit_test(test_deep_unknown_value),
        cmocka_unit_test(test_parse_error_bodies),
        cmocka_unit_test(test_classify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
