/* Configuration loader tests: real YAML snippets, exact "FILE:LINE: message" output. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "plugins/registry.h"

static char errs[8192];

static int load(const char *yaml, struct sl_config *cfg)
{
    memset(errs, 0, sizeof(errs));
    return sl_config_load_string(&sl_builtin_plugins, "t.yaml", yaml, strlen(yaml), cfg, errs, sizeof(errs));
}

/* Loads yaml, which must fail with exactly the expected message lines. */
static void expect_errors(const char *yaml, const char *expected)
{
    struct sl_config cfg;
    int rc = load(yaml, &cfg);
    if (rc != -1) fail_msg("expected failure, loaded fine:\n%s", yaml);
    if (strcmp(errs, expected) != 0)
        fail_msg("messages differ.\n--- got:\n%s--- expected:\n%s", errs, expected);
    /* Freed already on failure; the struct must be safe to free again. */
    assert_int_equal(cfg.n_inputs, 0);
    assert_null(cfg.path);
    sl_config_free(&cfg);
}

#define MINIMAL_IO                                                                                 \
    "inputs:\n"                                                                                    \
    "  - type: kafka\n"                                                                            \
    "    brokers: k:9092\n"                                                                        \
    "    topics: t\n"                                                                              \
    "outputs:\n"                                                                                   \
    "  - type: elasticsearch\n"

/* An input at line 2 with the given extra lines from line 5, and a default output after it. */
#define WITH_INPUT(extra)                                                                          \
    "inputs:\n"                                                                                    \
    "  - type: kafka\n"                                                                            \
    "    brokers: k:9092\n"                                                                        \
    "    topics: t\n" extra "outputs:\n"                                                           \
    "  - type: elasticsearch\n"

/* An output at line 5 with the given extra lines from line 6. */
#define WITH_OUTPUT(extra)                                                                         \
    "inputs:\n"                                                                                    \
    "  - type: kafka\n"                                                                            \
    "    brokers: k:9092\n"                                                                        \
    "    topics: t\n"                                                                              \
    "outputs:\n"                                                                                   \
    "  - type: elasticsearch\n" extra

static const char full_example[] =
    "service:\n"
    "  memory_limit: 128MiB\n"
    "  http_listen: 0.0.0.0:2021\n"
    "  dead_letter: {path: /var/lib/sluice/dl, max_size: 2GiB}\n"
    "  storage_path: /var/lib/sluice/buffer\n"
    "  shutdown_timeout: 45s\n"
    "  unmatched: drop\n"
    "  log_level: debug\n"
    "  log_interval: 1m\n"
    "  stats_interval: 0\n"
    "inputs:\n"
    "  - type: kafka\n"
    "    brokers: 127.0.0.1:9092\n"
    "    group_id: shippers\n"
    "    topics: [app-logs, \"^audit\\\\..*\"]\n"
    "    tag: kafka.${topic}\n"
    "    format: json\n"
    "    time_key: time\n"
    "    librdkafka: {security.protocol: ssl, fetch.wait.max.ms: 50}\n"
    "outputs:\n"
    "  - type: elasticsearch\n"
    "    name: es-main\n"
    "    match: \"kafka.** audit.*\"\n"
    "    hosts: [http://127.0.0.1:9200, https://es2:9200]\n"
    "    index: logs-${topic}-%Y.%m.%d\n"
    "    id: kafka\n"
    "    op: index\n"
    "    batch_max_bytes: 8MiB\n"
    "    batch_max_wait: 500ms\n"
    "    concurrency: 8\n"
    "    compression: gzip\n"
    "    gzip_level: 6\n"
    "    tls_verify: off\n";

static void test_full_example(void **state)
{
    (void)state;
    struct sl_config cfg;
    int rc = load(full_example, &cfg);
    if (rc != 0) fail_msg("%s", errs);
    assert_string_equal(errs, "");
    assert_string_equal(cfg.path, "t.yaml");
    const struct sl_service_cfg *s = &cfg.service;
    assert_int_equal(s->memory_limit, 128ull << 20);
    assert_string_equal(s->http_listen, "0.0.0.0:2021");
    assert_string_equal(s->dead_letter_path, "/var/lib/sluice/dl");
    assert_int_equal(s->dead_letter_max_size, 2ull << 30);
    assert_string_equal(s->storage_path, "/var/lib/sluice/buffer");
    assert_int_equal(s->shutdown_timeout_ms, 45000);
    assert_int_equal(s->unmatched, SL_UNMATCHED_DROP);
    assert_int_equal(s->log_level, SL_LOG_DEBUG);
    assert_int_equal(s->log_interval_ms, 60000);
    assert_int_equal(s->stats_interval_ms, 0);

    assert_int_equal(cfg.n_inputs, 1);
    const struct sl_input_cfg *in = &cfg.inputs[0];
    assert_int_equal(in->type, SL_INPUT_KAFKA);
    assert_string_equal(in->name, "kafka.0");
    assert_int_equal(in->line, 12);
    assert_string_equal(in->kafka.brokers, "127.0.0.1:9092");
    assert_string_equal(in->kafka.group_id, "shippers");
    assert_int_equal(in->kafka.n_topics, 2);
    assert_string_equal(in->kafka.topics[0], "app-logs");
    assert_string_equal(in->kafka.topics[1], "^audit\\..*");
    assert_string_equal(in->kafka.tag, "kafka.${topic}");
    assert_int_equal(in->kafka.format, SL_FORMAT_JSON);
    assert_string_equal(in->kafka.time_key, "time");
    assert_null(in->kafka.metadata_key);
    assert_int_equal(in->kafka.n_librdkafka, 2);
    assert_string_equal(in->kafka.librdkafka[0].key, "security.protocol");
    assert_string_equal(in->kafka.librdkafka[0].value, "ssl");
    assert_string_equal(in->kafka.librdkafka[1].key, "fetch.wait.max.ms");
    assert_string_equal(in->kafka.librdkafka[1].value, "50");

    assert_int_equal(cfg.n_outputs, 1);
    const struct sl_output_cfg *out = &cfg.outputs[0];
    assert_int_equal(out->type, SL_OUTPUT_ELASTICSEARCH);
    assert_string_equal(out->name, "es-main");
    assert_int_equal(out->line, 21);
    assert_int_equal(out->n_match, 2);
    assert_string_equal(out->match[0], "kafka.**");
    assert_string_equal(out->match[1], "audit.*");
    assert_int_equal(out->es.n_hosts, 2);
    assert_string_equal(out->es.hosts[0], "http://127.0.0.1:9200");
    assert_string_equal(out->es.hosts[1], "https://es2:9200");
    assert_string_equal(out->es.index, "logs-${topic}-%Y.%m.%d");
    assert_int_equal(out->es.id, SL_ID_KAFKA);
    assert_null(out->es.id_field);
    assert_int_equal(out->es.op, SL_ES_OP_INDEX);
    assert_int_equal(out->es.batch_max_bytes, 8ull << 20);
    assert_int_equal(out->es.batch_max_wait_ms, 500);
    assert_int_equal(out->es.concurrency, 8);
    assert_int_equal(out->es.compression, SL_COMPRESSION_GZIP);
    assert_int_equal(out->es.gzip_level, 6);
    assert_false(out->es.tls_verify);
    sl_config_free(&cfg);
    /* Free is idempotent: the struct is zeroed. */
    sl_config_free(&cfg);
}

static void test_defaults(void **state)
{
    (void)state;
    struct sl_config cfg;
    int rc = load(MINIMAL_IO "  - type: elasticsearch\n", &cfg);
    if (rc != 0) fail_msg("%s", errs);
    const struct sl_service_cfg *s = &cfg.service;
    assert_int_equal(s->memory_limit, 64ull << 20);
    assert_string_equal(s->http_listen, "127.0.0.1:2020");
    assert_string_equal(s->dead_letter_path, "./dead-letter");
    assert_int_equal(s->dead_letter_max_size, 1ull << 30);
    assert_string_equal(s->storage_path, "./buffer");
    assert_int_equal(s->shutdown_timeout_ms, 30000);
    assert_int_equal(s->unmatched, SL_UNMATCHED_DEAD_LETTER);
    assert_int_equal(s->log_level, SL_LOG_INFO);
    assert_int_equal(s->log_interval_ms, 10000);
    assert_int_equal(s->stats_interval_ms, 10000);

    const struct sl_kafka_input_cfg *k = &cfg.inputs[0].kafka;
    assert_string_equal(cfg.inputs[0].name, "kafka.0");
    assert_string_equal(k->group_id, "sluice");
    assert_int_equal(k->n_topics, 1);
    assert_string_equal(k->topics[0], "t");
    assert_string_equal(k->tag, "kafka.${topic}");
    assert_int_equal(k->format, SL_FORMAT_JSON);
    assert_int_equal(k->on_parse_error, SL_PARSE_ERROR_DEAD_LETTER);
    assert_null(k->time_key);
    assert_null(k->metadata_key);
    assert_int_equal(k->n_librdkafka, 0);

    assert_int_equal(cfg.n_outputs, 2);
    for (size_t i = 0; i < 2; i++) {
        const struct sl_output_cfg *o = &cfg.outputs[i];
        char name[32];
        snprintf(name, sizeof(name), "elasticsearch.%zu", i);
        assert_string_equal(o->name, name);
        assert_int_equal(o->n_match, 1);
        assert_string_equal(o->match[0], "**");
        assert_int_equal(o->es.n_hosts, 1);
        assert_string_equal(o->es.hosts[0], "http://127.0.0.1:9200");
        assert_string_equal(o->es.index, "logs-${topic}-%Y.%m.%d");
        assert_int_equal(o->es.id, SL_ID_KAFKA);
        assert_int_equal(o->es.op, SL_ES_OP_CREATE);
        assert_int_equal(o->es.batch_max_bytes, 5ull << 20);
        assert_int_equal(o->es.batch_max_wait_ms, 1000);
        assert_int_equal(o->es.concurrency, 4);
        assert_int_equal(o->es.compression, SL_COMPRESSION_NONE);
        assert_int_equal(o->es.gzip_level, 1);
        assert_int_equal(o->es.request_timeout_ms, 60000);
        assert_int_equal(o->es.retry_base_ms, 200);
        assert_int_equal(o->es.retry_max_ms, 30000);
        assert_null(o->es.user);
        assert_null(o->es.password);
        assert_null(o->es.api_key);
        assert_null(o->es.ca_file);
        assert_true(o->es.tls_verify);
    }
    sl_config_free(&cfg);
}

static void test_value_forms(void **state)
{
    (void)state;
    struct sl_config cfg;
    int rc = load("service:\n"
                  "  memory_limit: 64 MiB\n"
                  "  http_listen: off\n"
                  "  dead_letter:\n"
                  "inputs:\n"
                  "  - type: kafka\n"
                  "    name: orders\n"
                  "    brokers: a:1,b:2\n"
                  "    topics: [x, y]\n"
                  "    tag: orders.${topic}.v1\n"
                  "    format: text\n"
                  "    metadata_key: _kafka\n"
                  "    librdkafka:\n"
                  "outputs:\n"
                  "  - type: elasticsearch\n"
                  "    match: [\"orders.*\", \"a.{b,c} d\"]\n"
                  "    hosts: https://es:9200\n"
                  "    id: field:request.id\n"
                  "    index: o-${record.service.name}-${tag}-%j%%\n"
                  "    tls_verify: YES\n"
                  "    user: elastic\n"
                  "    password: changeme\n",
                  &cfg);
    if (rc != 0) fail_msg("%s", errs);
    assert_int_equal(cfg.service.memory_limit, 64ull << 20);
    assert_null(cfg.service.http_listen);
    assert_string_equal(cfg.service.dead_letter_path, "./dead-letter");
    assert_string_equal(cfg.inputs[0].name, "orders");
    assert_string_equal(cfg.inputs[0].kafka.tag, "orders.${topic}.v1");
    assert_int_equal(cfg.inputs[0].kafka.format, SL_FORMAT_TEXT);
    assert_string_equal(cfg.inputs[0].kafka.metadata_key, "_kafka");
    assert_int_equal(cfg.inputs[0].kafka.n_topics, 2);
    const struct sl_output_cfg *o = &cfg.outputs[0];
    assert_int_equal(o->n_match, 3);
    assert_string_equal(o->match[0], "orders.*");
    assert_string_equal(o->match[1], "a.{b,c}");
    assert_string_equal(o->match[2], "d");
    assert_int_equal(o->es.n_hosts, 1);
    assert_string_equal(o->es.hosts[0], "https://es:9200");
    assert_int_equal(o->es.id, SL_ID_FIELD);
    assert_string_equal(o->es.id_field, "request.id");
    assert_true(o->es.tls_verify);
    assert_string_equal(o->es.user, "elastic");
    sl_config_free(&cfg);

    rc = load("service: {http_listen: \"\"}\n" MINIMAL_IO "    id: none\n", &cfg);
    if (rc != 0) fail_msg("%s", errs);
    assert_null(cfg.service.http_listen);
    assert_int_equal(cfg.outputs[0].es.id, SL_ID_NONE);
    sl_config_free(&cfg);

    rc = load("service: {http_listen: \"[::1]:9\"}\n" MINIMAL_IO, &cfg);
    if (rc != 0) fail_msg("%s", errs);
    assert_string_equal(cfg.service.http_listen, "[::1]:9");
    sl_config_free(&cfg);
}

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_errors(
        "service:\n  memry_limit: 64MiB\n" MINIMAL_IO,
        "t.yaml:2: unknown key 'memry_limit' in service (did you mean 'memory_limit'?)\n");
    expect_errors("service:\n  dead_letter: {paht: x}\n" MINIMAL_IO,
                  "t.yaml:2: unknown key 'paht' in service.dead_letter (did you mean 'path'?)\n");
    expect_errors("servce: {}\n" MINIMAL_IO,
                  "t.yaml:1: unknown key 'servce' at top level (did you mean 'service'?)\n");
    expect_errors(WITH_INPUT("    zzz: 1\n"),
                  "t.yaml:5: unknown key 'zzz' in kafka input (valid: type, name, brokers, "
                  "group_id, topics, tag, format, pattern, types, on_parse_error, time_key, "
                  "time_format, metadata_key, librdkafka, remove_keys, rename_keys, add_fields, "
                  "include_tag_key, tag_key)\n");
    expect_errors(WITH_OUTPUT("    host: http://x:9200\n"),
                  "t.yaml:7: unknown key 'host' in elasticsearch output (did you mean 'hosts'?)\n");
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_errors("service:\n  memory_limit: {a: 1}\n  log_level: [info]\n" MINIMAL_IO,
                  "t.yaml:2: 'memory_limit' must be a size, not a mapping\n"
                  "t.yaml:3: 'log_level' must be a string, not a list\n");
    expect_errors(
        WITH_OUTPUT("    concurrency: four\n    tls_verify: maybe\n"),
        "t.yaml:7: 'concurrency' must be an integer, got 'four'\n"
        "t.yaml:8: 'tls_verify' must be true or false (or yes/no, on/off), got 'maybe'\n");
    expect_errors(WITH_OUTPUT("    concurrency: 2.5\n"),
                  "t.yaml:7: 'concurrency' must be an integer, got '2.5'\n");
    expect_errors("service: [1]\n" MINIMAL_IO,
                  "t.yaml:1: 'service' must be a mapping, not a list\n");
    expect_errors("service: {dead_letter: x}\n" MINIMAL_IO,
                  "t.yaml:1: 'dead_letter' must be a mapping, not a scalar\n");
    expect_errors(WITH_INPUT("    topics: [a, {b: c}]\n"),
                  "t.yaml:5: duplicate key 'topics' (first at line 4)\n");
    expect_errors(WITH_INPUT("    brokers2: x\n    tag: [a]\n"),
                  "t.yaml:5: unknown key 'brokers2' in kafka input (did you mean 'brokers'?)\n"
                  "t.yaml:6: 'tag' must be a string, not a list\n");
    expect_errors("inputs:\n  - type: kafka\n    brokers: k\n    topics: [a, {b: c}, []]\n"
                  "outputs:\n  - type: elasticsearch\n",
                  "t.yaml:4: entries of 'topics' must be strings, not a mapping\n"
                  "t.yaml:4: entries of 'topics' must be strings, not a list\n");
    expect_errors("- a\n", "t.yaml:1: the top level must be a mapping with 'inputs' and "
                           "'outputs', not a list\n");
    expect_errors("inputs: x\noutputs: {a: 1}\n",
                  "t.yaml:1: 'inputs' must be a list, not a scalar\n"
                  "t.yaml:2: 'outputs' must be a list, not a mapping\n");
    expect_errors("inputs: [x]\noutputs: [[1]]\n",
                  "t.yaml:1: each input must be a mapping, not a scalar\n"
                  "t.yaml:2: each output must be a mapping, not a list\n");
    expect_errors(WITH_INPUT("    ? [a]\n    : b\n"),
                  "t.yaml:5: mapping keys must be strings, not a list\n");
}

static void test_sizes_and_durations_in_config(void **state)
{
    (void)state;
    expect_errors("service:\n  memory_limit: 64XB\n  shutdown_timeout: 5x\n"
                  "  dead_letter: {max_size: -1}\n" MINIMAL_IO,
                  "t.yaml:2: invalid size '64XB' for 'memory_limit' (e.g. 512KiB, 64MiB, 5MB, or "
                  "a number of bytes)\n"
                  "t.yaml:3: invalid duration '5x' for 'shutdown_timeout' (e.g. 500ms, 30s, 5m, "
                  "1h, or a number of seconds)\n"
                  "t.yaml:4: invalid size '-1' for 'max_size' (e.g. 512KiB, 64MiB, 5MB, or a "
                  "number of bytes)\n");
    expect_errors("service:\n  memory_limit: 1MiB\n" MINIMAL_IO,
                  "t.yaml:2: 'memory_limit' must be at least 4MiB, got '1MiB'\n");
    expect_errors(WITH_OUTPUT("    retry_base: 0\n"),
                  "t.yaml:7: 'retry_base' must be at least 1ms, got '0'\n");
}

static void test_enums_and_ranges(void **state)
{
    (void)state;
    expect_errors("service:\n  log_level: verbose\n  unmatched: keep\n" MINIMAL_IO,
                  "t.yaml:2: invalid value 'verbose' for 'log_level' (valid: error, warn, info, "
                  "debug)\n"
                  "t.yaml:3: invalid value 'keep' for 'unmatched' (valid: dead_letter, drop)\n");
    expect_errors(WITH_INPUT("    format: xml\n    on_parse_error: ignore\n"),
                  "t.yaml:5: invalid value 'xml' for 'format' (valid: json, text, regexp)\n"
                  "t.yaml:6: invalid value 'ignore' for 'on_parse_error' (valid: dead_letter, "
                  "as_text)\n");
    expect_errors(WITH_OUTPUT("    concurrency: 0\n    gzip_level: 10\n    op: upsert\n"
                              "    compression: zstd\n"),
                  "t.yaml:7: 'concurrency' must be between 1 and 64, got '0'\n"
                  "t.yaml:8: 'gzip_level' must be between 1 and 9, got '10'\n"
                  "t.yaml:9: invalid value 'upsert' for 'op' (valid: create, index)\n"
                  "t.yaml:10: invalid value 'zstd' for 'compression' (valid: none, gzip)\n");
    expect_errors(WITH_OUTPUT("    concurrency: 65\n"),
                  "t.yaml:7: 'concurrency' must be between 1 and 64, got '65'\n");
}

static void test_duplicates(void **state)
{
    (void)state;
    expect_errors("service:\n  log_level: info\n  log_level: debug\n" MINIMAL_IO,
                  "t.yaml:3: duplicate key 'log_level' (first at line 2)\n");
    expect_errors(MINIMAL_IO "inputs: []\n",
                  "t.yaml:7: duplicate key 'inputs' (first at line 1)\n");
    expect_errors(WITH_INPUT("    librdkafka: {a: 1, a: 2}\n"),
                  "t.yaml:5: duplicate key 'a' (first at line 5)\n");
    expect_errors(WITH_INPUT("    name: x\n") "    name: x\n",
                  "t.yaml:7: duplicate name 'x' (also used at line 2)\n");
}

static void test_missing_required(void **state)
{
    (void)state;
    expect_errors("inputs:\n  - type: kafka\n    group_id: g\noutputs:\n  - type: elasticsearch\n",
                  "t.yaml:2: missing required key 'brokers' in kafka input\n"
                  "t.yaml:2: missing required key 'topics' in kafka input\n");
    expect_errors("service: {}\n",
                  "t.yaml:1: missing required key 'inputs' (at least one input is required)\n"
                  "t.yaml:1: missing required key 'outputs' (at least one output is required)\n");
    expect_errors("inputs: []\noutputs:\n  - type: elasticsearch\n",
                  "t.yaml:1: 'inputs' is empty: at least one input is required\n");
    expect_errors("inputs:\n  - brokers: x\noutputs: []\n",
                  "t.yaml:3: 'outputs' is empty: at least one output is required\n"
                  "t.yaml:2: missing required key 'type' in input\n");
    expect_errors(WITH_INPUT("    group_id:\n"), "t.yaml:5: missing value for 'group_id'\n");
    expect_errors(WITH_INPUT("    topics: []\n"),
                  "t.yaml:5: duplicate key 'topics' (first at line 4)\n");
    expect_errors("inputs:\n  - {type: kafka, brokers: k, topics: []}\noutputs:\n"
                  "  - type: elasticsearch\n",
                  "t.yaml:2: 'topics' must not be an empty list\n");
    expect_errors("", "t.yaml:1: the configuration is empty: 'inputs' and 'outputs' are "
                      "required\n");
}

static void test_types_not_supported(void **state)
{
    (void)state;
    expect_errors("inputs:\n  - type: forward\n    listen: 0.0.0.0:24224\n"
                  "  - type: kinesis\n  - type: file\noutputs:\n  - type: stdout\n"
                  "  - type: s3\n  - type: forward\n",
                  "t.yaml:4: unknown input type 'kinesis' (valid: kafka, forward)\n"
                  "t.yaml:5: input type 'file' is not supported by this build yet\n"
                  "t.yaml:7: output type 'stdout' is not supported by this build yet\n"
                  "t.yaml:8: unknown output type 's3' (valid: elasticsearch, forward)\n");
    expect_errors(MINIMAL_IO "  - type: file\n",
                  "t.yaml:7: output type 'file' is not supported by this build yet\n");
}

/* A forward input at line 2 with the given extra lines from line 3, and a default output. */
#define FWD_INPUT(extra)                                                                           \
    "inputs:\n"                                                                                    \
    "  - type: forward\n" extra "outputs:\n"                                                       \
    "  - type: elasticsearch\n"

/* Forward transports: TLS files are checked at load with the key's line; cross-key rules. */
static void test_forward_transport(void **state)
{
    (void)state;
    char pem[] = "/tmp/sluice-test-pem-XXXXXX";
    int fd = mkstemp(pem);
    assert_true(fd >= 0);
    assert_true(write(fd, "-----BEGIN CERTIFICATE-----\nx\n", 30) == 30);
    close(fd);
    char notpem[] = "/tmp/sluice-test-notpem-XXXXXX";
    fd = mkstemp(notpem);
    assert_true(fd >= 0);
    assert_true(write(fd, "hello\n", 6) == 6);
    close(fd);
    char yaml[2048], want[2048];

    struct sl_config cfg;
    setenv("SLUICE_T_ALICE", "pw", 1);
    snprintf(yaml, sizeof yaml,
             FWD_INPUT("    listen: \"off\"\n"
                       "    unix_path: /tmp/x.sock\n"
                       "    unix_mode: \"600\"\n"
                       "    shared_key: k\n"
                       "    users:\n"
                       "      alice: ${env:SLUICE_T_ALICE}\n") "  - type: forward\n"
                                                               "    servers: [h:1]\n"
                                                               "    tls: true\n"
                                                               "    tls_cert_file: %s\n"
                                                               "    tls_key_file: %s\n"
                                                               "    tls_min_version: \"1.3\"\n"
                                                               "    shared_key: k\n"
                                                               "    username: bob\n"
                                                               "    password: p\n",
             pem, pem);
    int rc = load(yaml, &cfg);
    if (rc != 0) fail_msg("%s", errs);
    const struct sl_forward_input_cfg *fi = &cfg.inputs[0].forward;
    assert_null(fi->listen);
    assert_string_equal(fi->unix_path, "/tmp/x.sock");
    assert_int_equal(fi->unix_mode, 0600);
    assert_false(fi->tls);
    assert_int_equal(fi->tls_min_version, SL_TLS_1_2);
    assert_int_equal(fi->n_users, 1);
    assert_string_equal(fi->users[0].key, "alice");
    assert_string_equal(fi->users[0].value, "pw");
    const struct sl_fwd_output_cfg *fo = &cfg.outputs[1].fwd;
    assert_true(fo->tls);
    assert_true(fo->tls_verify);
    assert_int_equal(fo->tls_min_version, SL_TLS_1_3);
    assert_string_equal(fo->username, "bob");
    sl_config_free(&cfg);

    /* unreadable and non-PEM files: the key's line */
    snprintf(yaml, sizeof yaml,
             FWD_INPUT("    tls: true\n"
                       "    tls_cert_file: /nonexistent/cert.pem\n"
                       "    tls_key_file: %s\n"),
             notpem);
    snprintf(want, sizeof want,
             "t.yaml:4: 'tls_cert_file': cannot read '/nonexistent/cert.pem': No such file or "
             "directory\n"
             "t.yaml:5: 'tls_key_file': '%s' is not a PEM file (no \"-----BEGIN \" line)\n",
             notpem);
    expect_errors(yaml, want);

    /* cross-key rules */
    expect_errors(FWD_INPUT("    tls: true\n    listen: \"off\"\n"),
                  "t.yaml:2: 'listen: off' needs 'unix_path' (the input would accept nothing)\n"
                  "t.yaml:2: 'tls: true' needs 'tls_cert_file' and 'tls_key_file'\n"
                  "t.yaml:2: 'tls: true' needs a TCP listener ('listen'); unix_path is never "
                  "TLS\n");
    snprintf(yaml, sizeof yaml,
             FWD_INPUT("    tls_ca_file: %s\n    tls_verify_client: true\n    users: {a: b}\n"),
             pem);
    expect_errors(yaml, "t.yaml:2: tls_* keys are set but 'tls' is false\n"
                        "t.yaml:2: 'users' needs 'shared_key' (user authentication is part of "
                        "the handshake)\n");
    expect_errors(FWD_INPUT("    unix_mode: \"0999\"\n    users: {\"\": x}\n"),
                  "t.yaml:3: 'unix_mode' must be octal permission bits such as \"0660\", got "
                  "'0999'\n"
                  "t.yaml:4: 'users' has an empty user name\n");
    expect_errors("inputs:\n  - {type: forward}\noutputs:\n  - type: forward\n"
                  "    name: o\n    username: u\n    tls_verify: false\n",
                  "t.yaml:4: 'username' and 'password' must be set together\n");
    unlink(pem);
    unlink(notpem);
}

static void test_forward_input(void **state)
{
    (void)state;
    struct sl_config cfg;
    int rc = load(FWD_INPUT(""), &cfg);
    if (rc != 0) fail_msg("%s", errs);
    assert_int_equal(cfg.n_inputs, 1);
    const struct sl_input_cfg *in = &cfg.inputs[0];
    assert_int_equal(in->type, SL_INPUT_FORWARD);
    assert_string_equal(in->name, "forward.0");
    assert_string_equal(in->forward.listen, "0.0.0.0:24224");
    assert_null(in->forward.tag_prefix);
    assert_int_equal(in->forward.ack, SL_FWD_ACK_DELIVERED);
    assert_null(in->forward.shared_key);
    assert_null(in->forward.self_hostname);
    assert_int_equal(in->forward.handshake_timeout_ms, 10000);
    assert_int_equal(in->forward.max_frame_size, 6ull << 20);
    assert_int_equal(in->forward.max_connections, 1024);
    assert_int_equal(in->forward.idle_timeout_ms, 300000);
    sl_config_free(&cfg);

    setenv("SLUICE_T_FWD_KEY", "k3y", 1);
    rc = load("inputs:\n"
              "  - type: kafka\n    brokers: k:9092\n    topics: t\n"
              "  - type: forward\n"
              "    name: fw\n"
              "    listen: 127.0.0.1:0\n"
              "    tag_prefix: ext\n"
              "    ack: delivered\n"
              "    shared_key: ${env:SLUICE_T_FWD_KEY}\n"
              "    self_hostname: me\n"
              "    handshake_timeout: 500ms\n"
              "    max_frame_size: 1MiB\n"
              "    max_connections: 8\n"
              "    idle_timeout: 0\n"
              "outputs:\n  - type: elasticsearch\n",
              &cfg);
    if (rc != 0) fail_msg("%s", errs);
    assert_int_equal(cfg.n_inputs, 2);
    assert_int_equal(cfg.inputs[0].type, SL_INPUT_KAFKA);
    assert_string_equal(cfg.inputs[0].name, "kafka.0");
    in = &cfg.inputs[1];
    assert_int_equal(in->type, SL_INPUT_FORWARD);
    assert_string_equal(in->name, "fw");
    assert_string_equal(in->forward.listen, "127.0.0.1:0");
    assert_string_equal(in->forward.tag_prefix, "ext");
    assert_string_equal(in->forward.shared_key, "k3y");
    assert_string_equal(in->forward.self_hostname, "me");
    assert_int_equal(in->forward.handshake_timeout_ms, 500);
    assert_int_equal(in->forward.max_frame_size, 1ull << 20);
    assert_int_equal(in->forward.max_connections, 8);
    assert_int_equal(in->forward.idle_timeout_ms, 0);
    sl_config_free(&cfg);
    /* The second input's default name counts its position in the list. */
    rc = load("inputs:\n  - {type: kafka, brokers: k, topics: t}\n  - type: forward\n"
              "outputs:\n  - type: elasticsearch\n",
              &cfg);
    if (rc != 0) fail_msg("%s", errs);
    assert_string_equal(cfg.inputs[1].name, "forward.1");
    sl_config_free(&cfg);

    rc = load("service: {storage_path: /nonexistent/sluice-store, storage_max_size: 2MiB}\n"
              "inputs:\n  - type: forward\n    ack: stored\n    max_frame_size: 1MiB\n"
              "outputs:\n  - type: elasticsearch\n",
              &cfg);
    if (rc != 0) fail_msg("%s", errs);
    assert_int_equal(cfg.inputs[0].forward.ack, SL_FWD_ACK_STORED);
    assert_int_equal(cfg.service.storage_max_size, 2ull << 20);
    sl_config_free(&cfg);
    rc = load(FWD_INPUT(""), &cfg);
    if (rc != 0) fail_msg("%s", errs);
    assert_int_equal(cfg.inputs[0].forward.ack, SL_FWD_ACK_DELIVERED);
    assert_int_equal(cfg.service.storage_max_size, 1ull << 30);
    sl_config_free(&cfg);
    expect_errors(FWD_INPUT("    ack: never\n"),
                  "t.yaml:3: invalid value 'never' for 'ack' (valid: delivered, stored)\n");
    /* a storage_path that is a file is only an error for ack: stored inputs */
    char file[] = "/tmp/sluice-cfg-storage-XXXXXX";
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    close(fd);
    char y[512];
    snprintf(y, sizeof y, "service:\n  storage_path: %s\n" FWD_INPUT("    ack: stored\n"), file);
    char want[512];
    snprintf(want, sizeof want,
             "t.yaml:2: 'storage_path' %s exists and is not a directory (needed by 'ack: "
             "stored')\n",
             file);
    expect_errors(y, want);
    snprintf(y, sizeof y, "service:\n  storage_path: %s\n" FWD_INPUT(""), file);
    rc = load(y, &cfg);
    if (rc != 0) fail_msg("%s", errs);
    sl_config_free(&cfg);
    unlink(file);
    expect_errors("service: {storage_max_size: 1MiB}\n" FWD_INPUT("    ack: stored\n"),
                  "t.yaml:3: 'max_frame_size' (6291456) is larger than service.storage_max_size "
                  "(1048576): such a request could never be stored\n");
    expect_errors(FWD_INPUT("    listen: 24224\n    brokers: x\n"),
                  "t.yaml:3: 'listen' must be host:port (port 0..65535) or \"off\", got '24224'\n"
                  "t.yaml:4: unknown key 'brokers' in forward input (valid: type, name, listen, "
                  "unix_path, unix_mode, tls, tls_cert_file, tls_key_file, tls_ca_file, "
                  "tls_verify_client, tls_min_version, "
                  "tag_prefix, ack, shared_key, users, self_hostname, handshake_timeout, "
                  "max_frame_size, max_connections, idle_timeout, id_from_kafka_fields, "
                  "remove_keys, rename_keys, add_fields, include_tag_key, tag_key)\n");
    expect_errors(FWD_INPUT("    listen: \"h:65536\"\n    tag_prefx: a\n"),
                  "t.yaml:3: 'listen' must be host:port (port 0..65535) or \"off\", got 'h:65536'\n"
                  "t.yaml:4: unknown key 'tag_prefx' in forward input (did you mean "
                  "'tag_prefix'?)\n");
    expect_errors(FWD_INPUT("    max_frame_size: 512\n    max_connections: 0\n"
                            "    handshake_timeout: 0\n    tag_prefix: \"\"\n"),
                  "t.yaml:3: 'max_frame_size' must be at least 1KiB, got '512'\n"
                  "t.yaml:4: 'max_connections' must be between 1 and 65536, got '0'\n"
                  "t.yaml:5: 'handshake_timeout' must be at least 1ms, got '0'\n"
                  "t.yaml:6: 'tag_prefix' must not be empty\n");
    expect_errors("service: {memory_limit: 15MiB}\n" FWD_INPUT(""),
                  "t.yaml:3: 'max_frame_size' (6291456) is larger than the pipeline's share of "
                  "service.memory_limit (3/8 of 15728640 = 5898240): such a request could never "
                  "be taken in; lower max_frame_size or raise memory_limit to at least "
                  "16777216\n");
    unsetenv("SLUICE_T_FWD_KEY");
    expect_errors(FWD_INPUT("    shared_key: ${env:SLUICE_T_FWD_KEY}\n"),
                  "t.yaml:3: environment variable SLUICE_T_FWD_KEY is not set\n");
}

/* A kafka input and a forward output at line 5 with the given extra lines from line 6. */
#define FWD_OUTPUT(extra)                                                                          \
    "inputs:\n"                                                                                    \
    "  - {type: kafka, brokers: k:9092, topics: t}\n"                                              \
    "outputs:\n"                                                                                   \
    "  - type: elasticsearch\n"                                                                    \
    "  - type: forward\n" extra

static void test_forward_output(void **state)
{
    (void)state;
    struct sl_config cfg;
    int rc = load(FWD_OUTPUT(""), &cfg);
    if (rc != 0) fail_msg("%s", errs);
    const struct sl_output_cfg *o = &cfg.outputs[1];
    assert_int_equal(o->type, SL_OUTPUT_FORWARD);
    assert_string_equal(o->name, "forward.1");
    assert_int_equal(o->n_match, 1);
    assert_string_equal(o->match[0], "**");
    assert_int_equal(o->fwd.n_servers, 1);
    assert_string_equal(o->fwd.servers[0], "127.0.0.1:24224");
    assert_true(o->fwd.require_ack);
    assert_int_equal(o->fwd.ack_timeout_ms, 30000);
    assert_int_equal(o->fwd.max_ack_timeouts, 2);
    assert_int_equal(o->fwd.recover_wait_ms, 10000);
    assert_int_equal(o->fwd.batch_max_bytes, 4ull << 20);
    assert_int_equal(o->fwd.batch_max_wait_ms, 1000);
    assert_int_equal(o->fwd.concurrency, 1);
    assert_int_equal(o->fwd.compression, SL_COMPRESSION_NONE);
    assert_int_equal(o->fwd.gzip_level, 1);
    assert_null(o->fwd.shared_key);
    assert_null(o->fwd.self_hostname);
    assert_int_equal(o->fwd.connect_timeout_ms, 10000);
    assert_int_equal(o->fwd.retry_base_ms, 200);
    assert_int_equal(o->fwd.retry_max_ms, 30000);
    assert_true(o->fwd.kafka_fields);
    assert_string_equal(o->fwd.kafka_topic_key, "kafka_topic");
    assert_string_equal(o->fwd.kafka_partition_key, "kafka_partition");
    assert_string_equal(o->fwd.kafka_offset_key, "kafka_offset");
    assert_int_equal(cfg.outputs[0].type, SL_OUTPUT_ELASTICSEARCH);
    sl_config_free(&cfg);

    rc = load(FWD_OUTPUT("    name: relay\n"
                         "    match: \"a.** b\"\n"
                         "    servers: [\"10.0.0.1:24224\", \"fwd-2.example:24225\", \"[::1]:1\"]\n"
                         "    require_ack: false\n"
                         "    ack_timeout: 5s\n"
                         "    max_ack_timeouts: 0\n"
                         "    recover_wait: 1m\n"
                         "    batch_max_bytes: 1MiB\n"
                         "    batch_max_wait: 100ms\n"
                         "    concurrency: 3\n"
                         "    compression: gzip\n"
                         "    gzip_level: 6\n"
                         "    shared_key: k3y\n"
                         "    self_hostname: me\n"
                         "    connect_timeout: 2s\n"
                         "    retry_base: 50ms\n"
                         "    retry_max: 1s\n"
                         "    kafka_fields: off\n"
                         "    kafka_topic_key: t\n"
                         "    kafka_partition_key: p\n"
                         "    kafka_offset_key: o\n"),
              &cfg);
    if (rc != 0) fail_msg("%s", errs);
    o = &cfg.outputs[1];
    assert_string_equal(o->name, "relay");
    assert_int_equal(o->n_match, 2);
    assert_int_equal(o->fwd.n_servers, 3);
    assert_string_equal(o->fwd.servers[1], "fwd-2.example:24225");
    assert_false(o->fwd.require_ack);
    assert_int_equal(o->fwd.ack_timeout_ms, 5000);
    assert_int_equal(o->fwd.max_ack_timeouts, 0);
    assert_int_equal(o->fwd.recover_wait_ms, 60000);
    assert_int_equal(o->fwd.batch_max_bytes, 1ull << 20);
    assert_int_equal(o->fwd.batch_max_wait_ms, 100);
    assert_int_equal(o->fwd.concurrency, 3);
    assert_int_equal(o->fwd.compression, SL_COMPRESSION_GZIP);
    assert_int_equal(o->fwd.gzip_level, 6);
    assert_string_equal(o->fwd.shared_key, "k3y");
    assert_string_equal(o->fwd.self_hostname, "me");
    assert_int_equal(o->fwd.connect_timeout_ms, 2000);
    assert_int_equal(o->fwd.retry_base_ms, 50);
    assert_int_equal(o->fwd.retry_max_ms, 1000);
    assert_false(o->fwd.kafka_fields);
    assert_string_equal(o->fwd.kafka_topic_key, "t");
    assert_string_equal(o->fwd.kafka_partition_key, "p");
    assert_string_equal(o->fwd.kafka_offset_key, "o");
    sl_config_free(&cfg);

    expect_errors(FWD_OUTPUT("    servers: [a:1, nohost, \"b:0\", \"c:99999\"]\n"),
                  "t.yaml:6: 'servers' entry 'nohost' must be host:port\n"
                  "t.yaml:6: 'servers' entry 'b:0' must be host:port\n"
                  "t.yaml:6: 'servers' entry 'c:99999' must be host:port\n");
    expect_errors(FWD_OUTPUT("    batch_max_bytes: 5MiB\n"),
                  "t.yaml:5: 'batch_max_bytes' (5242880) is larger than 4MiB\n");
    expect_errors(FWD_OUTPUT("    retry_base: 2s\n    retry_max: 1s\n"),
                  "t.yaml:5: 'retry_max' (1000ms) is less than 'retry_base' (2000ms)\n");
    expect_errors(FWD_OUTPUT("    max_ack_timeouts: -1\n"),
                  "t.yaml:6: 'max_ack_timeouts' must be between 0 and 1000, got '-1'\n");
    expect_errors(FWD_OUTPUT("    recover_wait: 0s\n"),
                  "t.yaml:6: 'recover_wait' must be at least 1ms, got '0s'\n");
    expect_errors(FWD_OUTPUT("    concurrency: 0\n"),
                  "t.yaml:6: 'concurrency' must be between 1 and 64, got '0'\n");
    expect_errors(FWD_OUTPUT("    compression: zstd\n"),
                  "t.yaml:6: invalid value 'zstd' for 'compression' (valid: none, gzip)\n");
    expect_errors(
        FWD_OUTPUT("    hosts: [http://x:9200]\n"),
        "t.yaml:6: unknown key 'hosts' in forward output (valid: type, name, match, "
        "copy, servers, weights, require_ack, ack_timeout, max_ack_timeouts, recover_wait, "
        "batch_max_bytes, batch_max_wait, "
        "concurrency, compression, gzip_level, shared_key, username, password, tls, "
        "tls_ca_file, tls_verify, tls_cert_file, tls_key_file, tls_min_version, self_hostname, "
        "connect_timeout, retry_base, retry_max, kafka_fields, kafka_topic_key, "
        "kafka_partition_key, kafka_offset_key, remove_keys, rename_keys, add_fields, "
        "include_tag_key, tag_key)\n");
    /* copy: true and weights */
    rc = load(FWD_OUTPUT("    copy: true\n"
                         "    servers: [a:1, b:2, c:3]\n"
                         "    weights: [60, 40, 0]\n"),
              &cfg);
    if (rc != 0) fail_msg("%s", errs);
    o = &cfg.outputs[1];
    assert_true(o->copy);
    assert_false(cfg.outputs[0].copy);
    assert_int_equal(o->fwd.n_weights, 3);
    assert_int_equal(o->fwd.weight[0], 60);
    assert_int_equal(o->fwd.weight[1], 40);
    assert_int_equal(o->fwd.weight[2], 0);
    sl_config_free(&cfg);
    rc = load(FWD_OUTPUT(""), &cfg);
    if (rc != 0) fail_msg("%s", errs);
    assert_int_equal(cfg.outputs[1].fwd.n_weights, 0);
    assert_false(cfg.outputs[1].copy);
    sl_config_free(&cfg);
    expect_errors(FWD_OUTPUT("    servers: [a:1, b:2]\n"
                             "    weights: [60, 40, 10]\n"),
                  "t.yaml:7: 'weights' has 3 entries but 'servers' has 2 (one weight per "
                  "server)\n");
    expect_errors(FWD_OUTPUT("    servers: [a:1, b:2]\n"
                             "    weights:\n"
                             "      - 101\n"
                             "      - x\n"),
                  "t.yaml:8: 'weights' entries must be integers from 0 to 100, got '101'\n"
                  "t.yaml:9: 'weights' entries must be integers from 0 to 100, got 'x'\n");
    expect_errors(FWD_OUTPUT("    weights: [-1]\n"),
                  "t.yaml:6: 'weights' entries must be integers from 0 to 100, got '-1'\n");
    expect_errors(WITH_OUTPUT("    copy: maybe\n"),
                  "t.yaml:7: 'copy' must be true or false (or yes/no, on/off), got 'maybe'\n");
    expect_errors(FWD_OUTPUT("    kafka_topic_key: \"\"\n"),
                  "t.yaml:6: 'kafka_topic_key' must not be empty\n");
    expect_errors(FWD_OUTPUT("    name: es2\n") "  - {type: forward, name: es2}\n",
                  "t.yaml:7: duplicate name 'es2' (also used at line 5)\n");
}

static void test_match_and_hosts(void **state)
{
    (void)state;
    expect_errors(WITH_OUTPUT("    match: \"a..b {x,y\"\n"),
                  "t.yaml:7: invalid pattern 'a..b' in 'match': empty part at offset 2\n");
    expect_errors(WITH_OUTPUT("    match: [ok.*, \"x.{y\"]\n"),
                  "t.yaml:7: invalid pattern 'x.{y' in 'match': unbalanced '{' at offset 2\n");
    expect_errors(WITH_OUTPUT("    match: \"  \"\n"), "t.yaml:7: 'match' must not be empty\n");
    expect_errors(WITH_OUTPUT("    hosts: [http://a:9200, es:9200, \"https://\"]\n"),
                  "t.yaml:7: 'hosts' entry 'es:9200' must be a URL starting with http:// or "
                  "https://\n"
                  "t.yaml:7: 'hosts' entry 'https://' must be a URL starting with http:// or "
                  "https://\n");
}

static void test_librdkafka(void **state)
{
    (void)state;
    expect_errors(WITH_INPUT("    librdkafka:\n      sasl: {mechanism: PLAIN}\n"
                             "      group.id: other\n      enable.auto.offset.store: true\n"
                             "      client.id:\n"),
                  "t.yaml:6: 'librdkafka.sasl' must be a scalar, not a mapping\n"
                  "t.yaml:7: 'librdkafka.group.id' is managed by sluice: use 'group_id'\n"
                  "t.yaml:8: 'librdkafka.enable.auto.offset.store' is managed by sluice: sluice "
                  "stores offsets only after delivery\n"
                  "t.yaml:9: missing value for 'librdkafka.client.id'\n");
    expect_errors(WITH_INPUT("    librdkafka: [a]\n"),
                  "t.yaml:5: 'librdkafka' must be a mapping, not a list\n");
}

static void test_id_and_templates(void **state)
{
    (void)state;
    expect_errors(WITH_OUTPUT("    id: uuid\n"),
                  "t.yaml:7: invalid value 'uuid' for 'id' (valid: kafka, none, field:<path>)\n");
    expect_errors(WITH_OUTPUT("    id: \"field:\"\n"),
                  "t.yaml:7: 'id: field:' needs a dotted field path, e.g. field:request.id\n");
    expect_errors(WITH_OUTPUT("    id: forward\n"),
                  "t.yaml:7: 'id: forward' is not supported by this build yet\n");
    expect_errors(WITH_OUTPUT("    index: x-${foo}-%Q-${record.}\n"),
                  "t.yaml:7: unknown placeholder '${foo}' in 'index' (valid: ${topic}, ${tag}, "
                  "${record.<path>})\n"
                  "t.yaml:7: unsupported time conversion '%Q' in 'index' (valid: %Y %m %d %H %M "
                  "%S %j %y %%)\n"
                  "t.yaml:7: unknown placeholder '${record.}' in 'index' (valid: ${topic}, ${tag}, "
                  "${record.<path>})\n");
    expect_errors(WITH_OUTPUT("    index: x-${record.a..b}\n"),
                  "t.yaml:7: empty field name in a ${record.<path>} placeholder in 'index'\n");
    expect_errors(WITH_OUTPUT("    index: logs-${topic\n"),
                  "t.yaml:7: unterminated '${' in 'index'\n");
    expect_errors(WITH_OUTPUT("    index: logs-%\n"),
                  "t.yaml:7: '%' at the end of 'index' (write %% for a literal %)\n");
    expect_errors(WITH_OUTPUT("    index: Logs\n"),
                  "t.yaml:7: 'index' contains 'L', which Elasticsearch does not allow in index "
                  "names\n");
    expect_errors(WITH_INPUT("    tag: k.${tag}.%Y\n"),
                  "t.yaml:5: unknown placeholder '${tag}' in 'tag' (valid: ${topic})\n");
}

static void test_http_listen(void **state)
{
    (void)state;
    const char *bad[] = {"localhost", ":2020", "host:0", "host:70000", "host:", "a b:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char yaml[256], want[256];
        snprintf(yaml, sizeof(yaml), "service: {http_listen: \"%s\"}\n" MINIMAL_IO, bad[i]);
        snprintf(want, sizeof(want),
                 "t.yaml:1: 'http_listen' must be host:port or \"off\", got '%s'\n", bad[i]);
        expect_errors(yaml, want);
    }
}

/* format regexp, time formats, field edits and Elasticsearch resources. */
static void test_shaping_options(void **state)
{
    (void)state;
    struct sl_config cfg;
    int rc = load(WITH_INPUT("    format: regexp\n    pattern: '^(?<a>\\d+) (?<b>.*)$'\n"
                             "    types: {a: int}\n    time_key: b\n"
                             "    time_format: '%d/%b/%Y:%H:%M:%S %z'\n"
                             "    remove_keys: [x.y, z]\n    rename_keys: {a: n.a}\n"
                             "    add_fields: {env: prod, p: '${partition}', t: 'k-${topic}'}\n"
                             "    include_tag_key: true\n"),
                  &cfg);
    if (rc != 0) fail_msg("%s", errs);
    const struct sl_input_cfg *in = &cfg.inputs[0];
    assert_int_equal(in->kafka.format, SL_FORMAT_REGEXP);
    assert_string_equal(in->kafka.pattern, "^(?<a>\\d+) (?<b>.*)$");
    assert_int_equal(in->kafka.n_types, 1);
    assert_string_equal(in->kafka.time_format, "%d/%b/%Y:%H:%M:%S %z");
    assert_int_equal(in->edits.n_remove_keys, 2);
    assert_string_equal(in->edits.rename_keys[0].value, "n.a");
    assert_int_equal(in->edits.n_add_fields, 3);
    assert_string_equal(in->edits.add_fields[2].value, "k-${topic}");
    assert_true(in->edits.include_tag_key);
    assert_string_equal(in->edits.tag_key, "tag");
    assert_string_equal(cfg.outputs[0].es.timestamp_key, "@timestamp");
    assert_null(cfg.outputs[0].es.data_stream);
    assert_int_equal(cfg.outputs[0].es.setup_timeout_ms, 60000);
    sl_config_free(&cfg);

    expect_errors(WITH_INPUT("    format: regexp\n"),
                  "t.yaml:2: 'format: regexp' needs a 'pattern'\n");
    expect_errors(
        WITH_INPUT("    format: regexp\n    pattern: '^(?<a>x'\n"),
        "t.yaml:2: 'pattern': invalid pattern at offset 7: missing closing parenthesis\n");
    expect_errors(WITH_INPUT("    format: regexp\n    pattern: '^(?<a>x)'\n    types: {b: int}\n"),
                  "t.yaml:2: 'pattern': types names 'b', which is not a named group of the "
                  "pattern\n");
    expect_errors(WITH_INPUT("    pattern: x\n    types: {b: long}\n    time_format: '%s'\n"),
                  "t.yaml:6: invalid type 'long' in 'types' (valid: int, float, bool, string)\n");
    expect_errors(WITH_INPUT("    pattern: x\n    types: {b: int}\n    time_format: '%s'\n"),
                  "t.yaml:2: 'pattern' is only used with 'format: regexp'\n"
                  "t.yaml:2: 'types' is only used with 'format: regexp'\n"
                  "t.yaml:2: 'time_format' needs a 'time_key' to read the time from\n");
    expect_errors(WITH_INPUT("    time_key: t\n    time_format: '%Y-%q'\n    time_key: u\n"),
                  "t.yaml:6: 'time_format': unknown conversion %q at offset 3\n"
                  "t.yaml:7: duplicate key 'time_key' (first at line 5)\n");
    expect_errors(WITH_INPUT("    time_key: t\n    time_format: 'yyyy-ww'\n"),
                  "t.yaml:6: 'time_format' (a SimpleDateFormat pattern, as it has no %): "
                  "unsupported SimpleDateFormat letter 'w' at offset 5\n");
    rc = load(WITH_INPUT("    time_key: t\n    time_format: \"yyyy-MM-dd'T'HH:mm:ss.SSSZ\"\n"),
              &cfg);
    if (rc != 0) fail_msg("%s", errs);
    assert_string_equal(cfg.inputs[0].kafka.time_format, "%Y-%m-%dT%H:%M:%S.%3N%z");
    sl_config_free(&cfg);
    expect_errors(WITH_INPUT("    remove_keys: [a..b]\n    rename_keys: {.a: b, c: ''}\n"
                             "    add_fields: {x: '${host}'}\n    tag_key: ''\n"),
                  "t.yaml:5: 'remove_keys' key 'a..b' is not a field path (dotted names, none "
                  "empty)\n"
                  "t.yaml:6: 'rename_keys' key '.a' is not a field path (dotted names, none "
                  "empty)\n"
                  "t.yaml:6: 'rename_keys' key '' is not a field path (dotted names, none "
                  "empty)\n"
                  "t.yaml:7: unknown placeholder '${host}' in 'add_fields' (valid: ${topic}, "
                  "${partition}, ${offset}, ${tag})\n"
                  "t.yaml:8: 'tag_key' key '' is not a field path (dotted names, none empty)\n");
    expect_errors(WITH_OUTPUT("    remove_keys: [a]\n    add_fields: {a.b: x, tag: y}\n"
                              "    include_tag_key: true\n"),
                  "t.yaml:6: field edits: path 'a.b' is inside another edit's path 'a'\n");
    expect_errors(WITH_OUTPUT("    timestamp_key: a.b\n"),
                  "t.yaml:7: 'timestamp_key' must be a top-level field name (no dots), got "
                  "'a.b'\n");
    expect_errors(WITH_OUTPUT("    template_name: t\n"
                              "    ilm_policy_file: /nonexistent/p.json\n"
                              "    ilm_policy_name: p\n    data_stream: logs-app\n"
                              "    op: index\n"),
                  "t.yaml:6: 'template_name' and 'template_file' must be set together\n"
                  "t.yaml:6: 'ilm_policy_file': cannot open '/nonexistent/p.json': No such file "
                  "or directory\n"
                  "t.yaml:6: a data stream takes only 'op: create' (Elasticsearch refuses "
                  "index)\n");
    char path[] = "/tmp/sluice-tmpl-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{\"index_patterns\": [\"a-*\"],}", 28), 28);
    close(fd);
    char yaml[512];
    snprintf(yaml, sizeof yaml, WITH_OUTPUT("    template_name: t\n    template_file: %s\n"), path);
    char want[256];
    snprintf(want, sizeof want,
             "t.yaml:6: 'template_file': '%s' is not a JSON object: expected string key at "
             "byte 27\n",
             path);
    expect_errors(yaml, want);
    unlink(path);
}

static void test_cross_checks(void **state)
{
    (void)state;
    expect_errors(WITH_OUTPUT("    user: u\n    retry_base: 10s\n    retry_max: 1s\n"
                              "    api_key: k\n"),
                  "t.yaml:6: 'user' and 'password' must be set together\n"
                  "t.yaml:6: 'api_key' and 'user'/'password' cannot both be set\n"
                  "t.yaml:6: 'retry_max' (1000ms) is less than 'retry_base' (10000ms)\n");
    expect_errors("service: {memory_limit: 4MiB}\n" MINIMAL_IO "    batch_max_bytes: 5MiB\n",
                  "t.yaml:7: 'batch_max_bytes' (5242880) is larger than service.memory_limit "
                  "(4194304)\n");
}

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_errors("service:\n  memory_limit: 64MiB\n bad: [\n",
                  "t.yaml:3: YAML syntax error: did not find expected key while parsing a block "
                  "mapping\n");
    expect_errors("inputs: [a, b\n",
                  "t.yaml:2: YAML syntax error: did not find expected ',' or ']' while parsing a "
                  "flow sequence\n");
    expect_errors(MINIMAL_IO "---\nx: 1\n", "t.yaml:8: only one YAML document is allowed\n");
    static const char bad_utf8[] = "service: {}\n# \xff\n";
    struct sl_config cfg;
    assert_int_equal(load(bad_utf8, &cfg), -1);
    assert_string_equal(errs, "t.yaml:2: YAML syntax error: invalid leading UTF-8 octet\n");
}

static void test_all_errors_reported(void **state)
{
    (void)state;
    expect_errors("service:\n"
                  "  memory_limit: lots\n"
                  "  log_level: loud\n"
                  "inputs:\n"
                  "  - type: kafka\n"
                  "    topics: t\n"
                  "    formt: json\n"
                  "  - type: forward\n"
                  "    ack: sometimes\n"
                  "outputs:\n"
                  "  - type: elasticsearch\n"
                  "    concurrency: 100\n"
                  "    match: \"{a\"\n",
                  "t.yaml:2: invalid size 'lots' for 'memory_limit' (e.g. 512KiB, 64MiB, 5MB, or a "
                  "number of bytes)\n"
                  "t.yaml:3: invalid value 'loud' for 'log_level' (valid: error, warn, info, "
                  "debug)\n"
                  "t.yaml:7: unknown key 'formt' in kafka input (did you mean 'format'?)\n"
                  "t.yaml:5: missing required key 'brokers' in kafka input\n"
                  "t.yaml:9: invalid value 'sometimes' for 'ack' (valid: delivered, stored)\n"
                  "t.yaml:12: 'concurrency' must be between 1 and 64, got '100'\n"
                  "t.yaml:13: invalid pattern '{a' in 'match': unbalanced '{' at offset 0\n");
}

static void test_env_secrets(void **state)
{
    (void)state;
    setenv("SLUICE_T_PW", "s3cr3t", 1);
    setenv("SLUICE_T_SIZE", "7MiB", 1);
    unsetenv("SLUICE_T_UNSET");
    struct sl_config cfg;
    int rc = load("service: {memory_limit: \"${env:SLUICE_T_SIZE}\"}\n" MINIMAL_IO
                  "    user: elastic\n    password: pre-${env:SLUICE_T_PW}-post\n"
                  "    index: logs-${topic}\n",
                  &cfg);
    if (rc != 0) fail_msg("%s", errs);
    assert_int_equal(cfg.service.memory_limit, 7ull << 20);
    assert_string_equal(cfg.outputs[0].es.password, "pre-s3cr3t-post");
    /* Only env and file references are expanded; template placeholders stay. */
    assert_string_equal(cfg.outputs[0].es.index, "logs-${topic}");
    sl_config_free(&cfg);

    expect_errors(WITH_OUTPUT("    password: ${env:SLUICE_T_UNSET}\n    user: u\n"
                              "    api_key: ${env:1BAD}\n    ca_file: ${env:SLUICE_T_PW\n"),
                  "t.yaml:7: environment variable SLUICE_T_UNSET is not set\n"
                  "t.yaml:9: invalid environment variable name '1BAD'\n"
                  "t.yaml:10: unterminated '${env:' reference\n");

    /* A secret that fails validation is never echoed: messages quote the unexpanded text. */
    setenv("SLUICE_T_PW", "hunter2", 1);
    expect_errors(WITH_OUTPUT("    concurrency: ${env:SLUICE_T_PW}\n"
                              "    index: \"${env:SLUICE_T_PW}-${nope}\"\n"
                              "    hosts: [\"${env:SLUICE_T_PW}\"]\n"),
                  "t.yaml:7: 'concurrency' must be an integer, got '${env:SLUICE_T_PW}'\n"
                  "t.yaml:8: unknown placeholder '(secret)' in 'index' (valid: ${topic}, ${tag}, "
                  "${record.<path>})\n"
                  "t.yaml:9: 'hosts' entry '${env:SLUICE_T_PW}' must be a URL starting with "
                  "http:// or https://\n");
    assert_null(strstr(errs, "hunter2"));
    unsetenv("SLUICE_T_PW");
    unsetenv("SLUICE_T_SIZE");
}

static void test_file_secrets(void **state)
{
    (void)state;
    char path[] = "/tmp/sluice-secret-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "tok\n\n", 5), 5);
    close(fd);

    char yaml[512];
    snprintf(yaml, sizeof(yaml), MINIMAL_IO "    api_key: ${file:%s}\n", path);
    struct sl_config cfg;
    int rc = load(yaml, &cfg);
    if (rc != 0) fail_msg("%s", errs);
    /* Exactly one trailing newline is stripped. */
    assert_string_equal(cfg.outputs[0].es.api_key, "tok\n");
    sl_config_free(&cfg);
    unlink(path);

    char want[512];
    snprintf(yaml, sizeof(yaml), MINIMAL_IO "    api_key: ${file:%s}\n    ca_file: ${file:/tmp}\n",
             path);
    snprintf(want, sizeof(want),
             "t.yaml:7: cannot read secret file '%s': No such file or directory\n"
             "t.yaml:8: secret file '/tmp' is not a regular file\n",
             path);
    expect_errors(yaml, want);
}

static void test_load_from_file(void **state)
{
    (void)state;
    char path[] = "/tmp/sluice-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *yaml = "service:\n  log_level: nope\n" MINIMAL_IO;
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    struct sl_config cfg;
    char want[256];
    assert_int_equal(sl_config_load(&sl_builtin_plugins, path, &cfg, errs, sizeof(errs)), -1);
    snprintf(want, sizeof(want),
             "%s:2: invalid value 'nope' for 'log_level' (valid: error, warn, info, debug)\n",
             path);
    assert_string_equal(errs, want);

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, MINIMAL_IO, strlen(MINIMAL_IO)), (ssize_t)strlen(MINIMAL_IO));
    close(fd);
    assert_int_equal(sl_config_load(&sl_builtin_plugins, path, &cfg, errs, sizeof(errs)), 0);
    assert_string_equal(cfg.path, path);
    sl_config_free(&cfg);
    unlink(path);

    assert_int_equal(sl_config_load(&sl_builtin_plugins, "/nonexistent/sluice.yaml", &cfg, errs, sizeof(errs)), -1);
    assert_string_equal(errs, "/nonexistent/sluice.yaml:1: cannot open: No such file or "
                              "directory\n");
}

static void test_error_buffer_truncation(void **state)
{
    (void)state;
    struct sl_config cfg;
    char small[40];
    const char *yaml = "service: {log_level: x, unmatched: y}\n" MINIMAL_IO;
    memset(small, 'Z', sizeof(small));
    assert_int_equal(
        sl_config_load_string(&sl_builtin_plugins, "t.yaml", yaml, strlen(yaml), &cfg, small, sizeof(small)), -1);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_memory_equal(small, "t.yaml:1: invalid value 'x' for 'log_le", sizeof(small) - 1);
    /* No buffer at all still fails cleanly. */
    assert_int_equal(sl_config_load_string(&sl_builtin_plugins, "t.yaml", yaml, strlen(yaml), &cfg, NULL, 0), -1);
}

struct size_case {
    const char *text;
    int rc;
    uint64_t value;
};

static void test_parse_size(void **state)
{
    (void)state;
    static const struct size_case cases[] = {
        {"4096", 0, 4096},
        {"0", 0, 0},
        {"1B", 0, 1},
        {"512KiB", 0, 512 * 1024},
        {"64MiB", 0, 64ull << 20},
        {"64 MiB", 0, 64ull << 20},
        {"1GiB", 0, 1ull << 30},
        {"5MB", 0, 5000000},
        {"2kb", 0, 2000},
        {"3gb", 0, 3000000000ull},
        {"1.5MiB", 0, 3ull << 19},
        {"0.5KB", 0, 500},
        {"64mib", 0, 64ull << 20},
        {"17179869183GiB", 0, 17179869183ull << 30},
        {"17179869184GiB", -1, 0},
        {"18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551616", -1, 0},
        {"64XB", -1, 0},
        {"64K", -1, 0},
        {"64M", -1, 0},
        {"1.5", -1, 0},
        {"1.5B", -1, 0},
        {"0.1KiB", -1, 0},
        {"1.0000000001GiB", -1, 0},
        {"", -1, 0},
        {" 64MiB", -1, 0},
        {"64MiB ", -1, 0},
        {"64  MiB", -1, 0},
        {"64 ", -1, 0},
        {"-1", -1, 0},
        {"+1", -1, 0},
        {".5MiB", -1, 0},
        {"1.MiB", -1, 0},
        {"MiB", -1, 0},
        {"1TiB", -1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t v = 12345;
        int rc = sl_parse_size(cases[i].text, &v);
        if (rc != cases[i].rc) fail_msg("'%s': rc %d, expected %d", cases[i].text, rc, cases[i].rc);
        if (rc == 0 && v != cases[i].value)
            fail_msg("'%s': %llu, expected %llu", cases[i].text, (unsigned long long)v,
                     (unsigned long long)cases[i].value);
    }
}

static void test_parse_duration(void **state)
{
    (void)state;
    static const struct size_case cases[] = {
        {"500ms", 0, 500},
        {"30s", 0, 30000},
        {"30", 0, 30000},
        {"0", 0, 0},
        {"5m", 0, 300000},
        {"1h", 0, 3600000},
        {"1.5s", 0, 1500},
        {"0.25", 0, 250},
        {"1.5h", 0, 5400000},
        {"10 s", 0, 10000},
        {"0.001s", 0, 1},
        {"0.0001s", -1, 0},
        {"0.5ms", -1, 0},
        {"5M", -1, 0},
        {"5S", -1, 0},
        {"1d", -1, 0},
        {"s", -1, 0},
        {"", -1, 0},
        {"-1s", -1, 0},
        {"1e3", -1, 0},
        {"18446744073709551615ms", 0, UINT64_MAX},
        {"18446744073709551615s", -1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t v = 12345;
        int rc = sl_parse_duration_ms(cases[i].text, &v);
        if (rc != cases[i].rc) fail_msg("'%s': rc %d, expected %d", cases[i].text, rc, cases[i].rc);
        if (rc == 0 && v != cases[i].value)
            fail_msg("'%s': %llu, expected %llu", cases[i].text, (unsigned long long)v,
                     (unsigned long long)cases[i].value);
    }
}

static void test_limits(void **state)
{
    (void)state;
    /* 17 inputs: the 17th is refused, the rest load. */
    char yaml[8192];
    size_t n = (size_t)snprintf(yaml, sizeof(yaml), "inputs:\n");
    for (int i = 0; i < 17; i++)
        n += (size_t)snprintf(yaml + n, sizeof(yaml) - n,
                              "  - {type: kafka, brokers: k, topics: t, name: i%d}\n", i);
    snprintf(yaml + n, sizeof(yaml) - n, "outputs:\n  - type: elasticsearch\n");
    expect_errors(yaml, "t.yaml:18: too many inputs (max 16)\n");

    n = (size_t)snprintf(yaml, sizeof(yaml), MINIMAL_IO "    match: \"");
    for (int i = 0; i < 65; i++)
        n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "p%d ", i);
    snprintf(yaml + n, sizeof(yaml) - n, "\"\n");
    expect_errors(yaml, "t.yaml:7: too many entries in 'match' (max 64)\n");
}

/* ctest runs this from tests/unit; the shipped example must always load. */
static void test_shipped_example(void **state)
{
    (void)state;
    struct sl_config cfg;
    int rc = sl_config_load(&sl_builtin_plugins, "../../examples/sluice.yaml", &cfg, errs, sizeof(errs));
    if (rc != 0) fail_msg("%s", errs);
    assert_string_equal(cfg.inputs[0].name, "app");
    assert_string_equal(cfg.inputs[0].kafka.topics[1], "^audit\\..*");
    assert_string_equal(cfg.inputs[0].kafka.metadata_key, "_kafka");
    assert_string_equal(cfg.outputs[0].name, "es");
    assert_int_equal(cfg.inputs[1].type, SL_INPUT_FORWARD);
    assert_string_equal(cfg.inputs[1].name, "fwd");
    assert_string_equal(cfg.inputs[1].forward.tag_prefix, "fwd");
    assert_int_equal(cfg.outputs[1].type, SL_OUTPUT_FORWARD);
    assert_string_equal(cfg.outputs[1].name, "relay");
    assert_int_equal(cfg.outputs[1].fwd.n_servers, 2);
    sl_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_example),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_value_forms),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_sizes_and_durations_in_config),
        cmocka_unit_test(test_enums_and_ranges),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_types_not_supported),
        cmocka_unit_test(test_forward_input),
        cmocka_unit_test(test_forward_output),
        cmocka_unit_test(test_match_and_hosts),
        cmocka_unit_test(test_librdkafka),
        cmocka_unit_test(test_id_and_templates),
        cmocka_unit_test(test_http_listen),
        cmocka_unit_test(test_cross_checks),
        cmocka_unit_test(test_shaping_options),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_all_errors_reported),
        cmocka_unit_test(test_env_secrets),
        cmocka_unit_test(test_file_secrets),
        cmocka_unit_test(test_load_from_file),
        cmocka_unit_test(test_error_buffer_truncation),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_shipped_example),
        cmocka_unit_test(test_forward_transport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
