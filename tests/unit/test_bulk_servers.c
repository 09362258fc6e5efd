/* Bulk answers as a real server sends them, read by sluice's own parser and classifier
 * (src/codec/bulk.c).
 *
 * Without arguments: cmocka tests over answers captured byte for byte from OpenSearch 2.19.6 for
 * the bodies sluice sends (with its filter_path), each checked for the fate sluice gives every
 * item. They pin down what a real server says where the emulator only imitates it: a write
 * block is a 403 cluster_block_exception item (retried, never dead-lettered), a full write
 * queue a 429 rejected_execution_exception item, a flood-stage block a 429 item.
 *
 * `test_bulk_servers classify create|index N` reads one HTTP answer from stdin (the status code
 * on the first line, the body after it) and prints how sluice reads it, as one JSON line:
 *   {"http":200,"parsed":true,"items":[{"status":201,"type":null,"class":"delivered"},..]}
 *   {"http":200,"parsed":false,"error":"..."}   (sluice resends the whole request)
 *   {"http":413,"error_type":null,"error_reason":null}   (any other status: the whole request)
 * tests/integration/test_real_esemu.py uses it to compare esemu with OpenSearch through the
 * code sluice runs, instead of a second copy of the rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/bulk.h"

#define LIT(s) s, sizeof(s) - 1

static const char *class_name(enum sl_bulk_class c)
{
    switch (c) {
    case SL_BULK_DELIVERED:
        return "delivered";
    case SL_BULK_RETRY:
        return "retry";
    case SL_BULK_DEAD_LETTER:
        return "dead_letter";
    }
    return "?";
}

struct want {
    int status;
    const char *type; /* NULL: no error */
    enum sl_bulk_class cls;
};

static void check_answer(const char *body, size_t len, enum sl_bulk_op op, const struct want *w,
                         size_t n)
{
    struct sl_bulk_item items[8];
    char err[256] = "";
    assert_true(n <= 8);
    int rc = sl_bulk_parse_response(body, len, items, n, err, sizeof err);
    if (rc != 0) print_error("parse failed: %s\n", err);
    assert_int_equal(rc, 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(items[i].status, w[i].status);
        if (w[i].type) {
            assert_int_equal(items[i].type_len, strlen(w[i].type));
            assert_memory_equal(items[i].type, w[i].type, items[i].type_len);
            assert_non_null(items[i].reason);
        } else {
            assert_null(items[i].type);
        }
        assert_string_equal(class_name(sl_bulk_classify_item(items[i].status, op)),
                            class_name(w[i].cls));
    }
}

/* create 1, the same id again, a string into a long field, a source cut short, an uppercase
 * index name, an empty _id */
static void test_item_fates(void **state)
{
    (void)state;
    static const char body[] =
        "{\"errors\":true,\"items\":[{\"create\":{\"status\":201}},{\"create\":{\"status\":409,"
        "\"error\":{\"type\":\"version_conflict_engine_exception\",\"reason\":\"[1]: version "
        "conflict, document already exists (current version [1])\"}}},{\"create\":{\"status\":"
        "400,\"error\":{\"type\":\"mapper_parsing_exception\",\"reason\":\"failed to parse field "
        "[n] of type [long] in document with id '2'. Preview of field's value: 'abc'\"}}},"
        "{\"create\":{\"status\":400,\"error\":{\"type\":\"mapper_parsing_exception\",\"reason\":"
        "\"failed to parse\"}}},{\"create\":{\"status\":400,\"error\":{\"type\":\"invalid_index_"
        "name_exception\",\"reason\":\"Invalid index name [Bad], must be lowercase\"}}},"
        "{\"create\":{\"status\":400,\"error\":{\"type\":\"illegal_argument_exception\",\"reason\":"
        "\"if _id is specified it must not be empty\"}}}]}";
    const struct want w[] = {
        {201, NULL, SL_BULK_DELIVERED},
        {409, "version_conflict_engine_exception", SL_BULK_DELIVERED},
        {400, "mapper_parsing_exception", SL_BULK_DEAD_LETTER},
        {400, "mapper_parsing_exception", SL_BULK_DEAD_LETTER},
        {400, "invalid_index_name_exception", SL_BULK_DEAD_LETTER},
        {400, "illegal_argument_exception", SL_BULK_DEAD_LETTER},
    };
    check_answer(LIT(body), SL_BULK_CREATE, w, 6);
}

/* action.auto_create_index: false, and a create into an index that does not exist */
static void test_missing_index(void **state)
{
    (void)state;
    static const char body[] =
        "{\"errors\":true,\"items\":[{\"create\":{\"status\":404,\"error\":{\"type\":\"index_not_"
        "found_exception\",\"reason\":\"no such index [absent]\"}}},{\"create\":{\"status\":201}}"
        "]}";
    const struct want w[] = {{404, "index_not_found_exception", SL_BULK_DEAD_LETTER},
                             {201, NULL, SL_BULK_DELIVERED}};
    check_answer(LIT(body), SL_BULK_CREATE, w, 2);
}

/* index.blocks.write: true on the first item's index. OpenSearch answers 403 per item inside an
 * HTTP 200; the block is lifted by an operator, so the records must wait, not be dropped. */
static void test_write_block_is_retried(void **state)
{
    (void)state;
    static const char body[] =
        "{\"errors\":true,\"items\":[{\"create\":{\"status\":403,\"error\":{\"type\":\"cluster_"
        "block_exception\",\"reason\":\"index [v2] blocked by: [FORBIDDEN/8/index write (api)];"
        "\"}}},{\"create\":{\"status\":201}}]}";
    const struct want w[] = {{403, "cluster_block_exception", SL_BULK_RETRY},
                             {201, NULL, SL_BULK_DELIVERED}};
    check_answer(LIT(body), SL_BULK_CREATE, w, 2);
    check_answer(LIT(body), SL_BULK_INDEX, w, 2);
}

/* index.blocks.read_only_allow_delete (what the disk flood-stage watermark sets): 429 */
static void test_flood_stage_block_is_retried(void **state)
{
    (void)state;
    static const char body[] =
        "{\"errors\":true,\"items\":[{\"create\":{\"status\":429,\"error\":{\"type\":\"cluster_"
        "block_exception\",\"reason\":\"index [v2] blocked by: [TOO_MANY_REQUESTS/12/disk usage "
        "exceeded flood-stage watermark, index has read-only-allow-delete block];\"}}}]}";
    const struct want w[] = {{429, "cluster_block_exception", SL_BULK_RETRY}};
    check_answer(LIT(body), SL_BULK_CREATE, w, 1);
}

/* thread_pool.write.size: 1, queue_size: 1, concurrent requests on an index of 3 shards: some
 * shards' items are refused. OpenSearch names the exception rejected_execution_exception
 * (Elasticsearch: es_rejected_execution_exception). */
static void test_write_queue_full_is_retried(void **state)
{
    (void)state;
    static const char body[] =
        "{\"errors\":true,\"items\":[{\"create\":{\"status\":201}},{\"create\":{\"status\":429,"
        "\"error\":{\"type\":\"rejected_execution_exception\",\"reason\":\"rejected execution of "
        "org.opensearch.action.support.replication.TransportWriteAction$1@571b996e on "
        "OpenSearchThreadPoolExecutor[name = node-1/write, queue capacity = 1, "
        "org.opensearch.common.util.concurrent.OpenSearchThreadPoolExecutor@34d21ca2[Running, "
        "pool size = 1, active threads = 1, queued tasks = 1, completed tasks = 36]]\"}}},"
        "{\"create\":{\"status\":429,\"error\":{\"type\":\"rejected_execution_exception\","
        "\"reason\":\"rejected execution of org.opensearch.action.support.replication."
        "TransportWriteAction$1@477e82d8 on OpenSearchThreadPoolExecutor[name = node-1/write, "
        "queue capacity = 1, org.opensearch.common.util.concurrent.OpenSearchThreadPoolExecutor@"
        "34d21ca2[Running, pool size = 1, active threads = 1, queued tasks = 1, completed tasks "
        "= 36]]\"}}}]}";
    const struct want w[] = {{201, NULL, SL_BULK_DELIVERED},
                             {429, "rejected_execution_exception", SL_BULK_RETRY},
                             {429, "rejected_execution_exception", SL_BULK_RETRY}};
    check_answer(LIT(body), SL_BULK_CREATE, w, 3);
}

static void check_error_body(const char *body, size_t len, const char *type, const char *reason)
{
    struct sl_bulk_item it = {0};
    assert_int_equal(sl_bulk_parse_error(body, len, &it), 0);
    assert_int_equal(it.type_len, strlen(type));
    assert_memory_equal(it.type, type, it.type_len);
    assert_int_equal(it.reason_len, strlen(reason));
    assert_memory_equal(it.reason, reason, it.reason_len);
}

/* Whole-request refusals: the error body sluice logs and dead-letters with. */
static void test_whole_request_bodies(void **state)
{
    (void)state;
    /* indexing_pressure.memory.limit exceeded: HTTP 429 */
    static const char pressure[] =
        "{\"error\":{\"root_cause\":[{\"type\":\"rejected_execution_exception\",\"reason\":"
        "\"rejected execution of coordinating operation [coordinating_and_primary_bytes=34224, "
        "replica_bytes=0, all_bytes=34224, coordinating_operation_bytes=17112, "
        "max_coordinating_and_primary_bytes=40960]\"}],\"type\":\"rejected_execution_exception\","
        "\"reason\":\"rejected execution of coordinating operation [coordinating_and_primary_"
        "bytes=34224, replica_bytes=0, all_bytes=34224, coordinating_operation_bytes=17112, "
        "max_coordinating_and_primary_bytes=40960]\"},\"status\":429}";
    check_error_body(LIT(pressure), "rejected_execution_exception",
                     "rejected execution of coordinating operation [coordinating_and_primary_"
                     "bytes=34224, replica_bytes=0, all_bytes=34224, coordinating_operation_"
                     "bytes=17112, max_coordinating_and_primary_bytes=40960]");

    /* a missing final newline: HTTP 400 */
    static const char newline[] =
        "{\"error\":{\"root_cause\":[{\"type\":\"illegal_argument_exception\",\"reason\":\"The "
        "bulk request must be terminated by a newline [\\\\n]\"}],\"type\":\"illegal_argument_"
        "exception\",\"reason\":\"The bulk request must be terminated by a newline [\\\\n]\"},"
        "\"status\":400}";
    check_error_body(LIT(newline), "illegal_argument_exception",
                     "The bulk request must be terminated by a newline [\\\\n]");

    /* one _id of 513 bytes refuses the whole request (HTTP 400), not just its item */
    char id[514], reason[700], body[1600];
    memset(id, 'x', 513);
    id[513] = 0;
    snprintf(reason, sizeof reason,
             "Validation Failed: 1: id [%s] is too long, must be no longer than 512 bytes but "
             "was: 513;",
             id);
    int n =
        snprintf(body, sizeof body,
                 "{\"error\":{\"root_cause\":[{\"type\":\"action_request_validation_exception\","
                 "\"reason\":\"%s\"}],\"type\":\"action_request_validation_exception\","
                 "\"reason\":\"%s\"},\"status\":400}",
                 reason, reason);
    assert_true(n > 0 && (size_t)n < sizeof body);
    check_error_body(body, (size_t)n, "action_request_validation_exception", reason);

    /* http.max_content_length exceeded: HTTP 413 with an empty body */
    struct sl_bulk_item it = {0};
    assert_int_equal(sl_bulk_parse_error("", 0, &it), -1);
}

/* ---- the helper ---- */

static void put_json_slice(const char *p, size_t n)
{
    /* the parser hands out the raw contents of a JSON string, escapes kept: valid inside quotes */
    if (p)
        printf("\"%.*s\"", (int)n, p);
    else
        printf("null");
}

static int classify_main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[2], "create") != 0 && strcmp(argv[2], "index") != 0)) {
        fprintf(stderr, "usage: %s classify create|index N < answer\n", argv[0]);
        return 2;
    }
    enum sl_bulk_op op = strcmp(argv[2], "create") == 0 ? SL_BULK_CREATE : SL_BULK_INDEX;
    char *end;
    unsigned long n = strtoul(argv[3], &end, 10);
    if (*end || n == 0 || n > 100000) {
        fprintf(stderr, "N must be 1..100000\n");
        return 2;
    }
    size_t cap = 1 << 16, len = 0;
    char *in = malloc(cap);
    size_t got;
    while (in && (got = fread(in + len, 1, cap - len, stdin)) > 0) {
        len += got;
        if (len == cap) in = realloc(in, cap *= 2);
    }
    if (!in) return 1;
    char *nl = memchr(in, '\n', len);
    int http = atoi(in);
    if (!nl || http <= 0) {
        fprintf(stderr, "the first line must be the HTTP status\n");
        return 2;
    }
    const char *body = nl + 1;
    size_t blen = len - (size_t)(body - in);
    printf("{\"http\":%d", http);
    if (http >= 200 && http <= 299) {
        struct sl_bulk_item *items = calloc(n, sizeof *items);
        char err[256] = "";
        if (!items) return 1;
        if (sl_bulk_parse_response(body, blen, items, n, err, sizeof err) != 0) {
            printf(",\"parsed\":false,\"error\":\"");
            for (const char *c = err; *c; c++) {
                if (*c == '"' || *c == '\\') putchar('\\');
                putchar((unsigned char)*c < 0x20 ? '?' : *c);
            }
            printf("\"");
        } else {
            printf(",\"parsed\":true,\"items\":[");
            for (size_t i = 0; i < n; i++) {
                printf("%s{\"status\":%d,\"type\":", i ? "," : "", items[i].status);
                put_json_slice(items[i].type, items[i].type_len);
                printf(",\"reason\":");
                put_json_slice(items[i].reason, items[i].reason_len);
                printf(",\"class\":\"%s\"}",
                       class_name(sl_bulk_classify_item(items[i].status, op)));
            }
            printf("]");
        }
        free(items);
    } else {
        struct sl_bulk_item eb = {0};
        int have = sl_bulk_parse_error(body, blen, &eb) == 0;
        printf(",\"error_type\":");
        put_json_slice(have ? eb.type : NULL, eb.type_len);
        printf(",\"error_reason\":");
        put_json_slice(have ? eb.reason : NULL, eb.reason_len);
    }
    printf("}\n");
    free(in);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "classify") == 0) return classify_main(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_item_fates),
        cmocka_unit_test(test_missing_index),
        cmocka_unit_test(test_write_block_is_retried),
        cmocka_unit_test(test_flood_stage_block_is_retried),
        cmocka_unit_test(test_write_queue_full_is_retried),
        cmocka_unit_test(test_whole_request_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
