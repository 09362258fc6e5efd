/* Elasticsearch output: its configuration keys and the rules across them. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/json.h"
#include "core/config.h"
#include "core/config_schema.h"
#include "core/plugin.h"
#include "outputs/elasticsearch.h"

#define OUT(f) offsetof(struct sl_output_cfg, f)
#define ES(f) offsetof(struct sl_output_cfg, es.f)

static const char *const op_values[] = {"create", "index", NULL};
static const char *const id_missing_values[] = {"dead_letter", "source", NULL};

static int check_url(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                     const struct sl_cfg_val *v)
{
    const char *host = NULL;
    if (strncmp(v->s, "http://", 7) == 0)
        host = v->s + 7;
    else if (strncmp(v->s, "https://", 8) == 0)
        host = v->s + 8;
    if (host && *host && *host != '/') return 0;
    sl_cfg_err(L, v->line, "'%s' entry '%s' must be a URL starting with http:// or https://",
               k->name, sl_cfg_q(L, v->secret ? v->raw : v->s));
    return -1;
}

static int check_index_template(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                                const struct sl_cfg_val *v)
{
    if (sl_cfg_check_not_empty(L, k, v) < 0) return -1;
    return sl_cfg_check_template(L, k, v, true, "${topic}, ${tag}, ${record.<path>}");
}

/* A top-level field name: where Elasticsearch and Kibana look for @timestamp. */
static int check_field_name(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                            const struct sl_cfg_val *v)
{
    if (*v->s && !strchr(v->s, '.')) return 0;
    sl_cfg_err(L, v->line, "'%s' must be a top-level field name (no dots), got '%s'", k->name,
               sl_cfg_q(L, v->raw));
    return -1;
}

static int set_id(struct sl_cfg_loader *L, const struct sl_cfg_key *k, void *base,
                  const struct sl_cfg_val *v)
{
    struct sl_es_output_cfg *es = &((struct sl_output_cfg *)base)->es;
    if (strcmp(v->s, "kafka") == 0 || strcmp(v->s, "none") == 0) {
        es->id = v->s[0] == 'k' ? SL_ID_KAFKA : SL_ID_NONE;
        sl_cfg_set_str(base, k->off, NULL);
        return 0;
    }
    if (strncmp(v->s, "field:", 6) == 0) {
        if (sl_cfg_check_dotted_path(v->s + 6) < 0) {
            sl_cfg_err(L, v->line, "'%s: field:' needs a dotted field path, e.g. field:request.id",
                       k->name);
            return -1;
        }
        if (sl_cfg_set_copy(L, base, k->off, v->s + 6, v->line) != 0) return -1;
        es->id = SL_ID_FIELD;
        return 0;
    }
    if (strcmp(v->s, "forward") == 0) {
        sl_cfg_err(L, v->line, "'%s: forward' is not supported by this build yet", k->name);
        return -1;
    }
    sl_cfg_err(L, v->line, "invalid value '%s' for '%s' (valid: kafka, none, field:<path>)",
               sl_cfg_q(L, v->raw), k->name);
    return -1;
}

static const struct sl_cfg_key es_keys[] = {
    {.name = "type",
     .type = SL_VT_TYPE,
     .required = true,
     .doc_type = "elasticsearch",
     .doc = "Selects this output."},
    {.name = "name",
     .type = SL_VT_STRING,
     .off = OUT(name),
     .doc_def = "elasticsearch.<index>",
     .check = sl_cfg_check_name,
     .doc = "Name in metrics and logs; index is the position in outputs."},
    SL_CFG_ROUTE_KEYS(OUT),
    {.name = "hosts",
     .type = SL_VT_LIST,
     .off = ES(hosts),
     .count_off = ES(n_hosts),
     .def = "http://127.0.0.1:9200",
     .check = check_url,
     .doc = "Elasticsearch URLs, tried in order on failure (a list or one string)."},
    {.name = "index",
     .type = SL_VT_STRING,
     .off = ES(index),
     .def = "logs-${topic}-%Y.%m.%d",
     .check = check_index_template,
     .doc = "Index template: ${topic}, ${tag}, ${record.<path>}, %Y %m %d %H %M %S %j %y %%."},
    {.name = "id",
     .type = SL_VT_CUSTOM,
     .off = ES(id_field), /* the enum is set beside it */
     .owns_str = true,
     .def = "kafka",
     .set = set_id,
     .doc_type = "kafka | none | field:<path>",
     .doc = "Document _id: from Kafka coordinates (idempotent), none, or a record field."},
    {.name = "id_missing",
     .type = SL_VT_ENUM,
     .off = ES(id_missing),
     .def = "dead_letter",
     .values = id_missing_values,
     .doc = "With id field:<path>, a record whose field is absent, empty, not a string or "
            "number, or longer than 512 bytes (a cluster refuses the whole request for it): "
            "dead_letter it (reason \"no usable id\"), or take the id from its source (Kafka "
            "coordinates, or the Forward chunk and index), so a redelivery still finds the same "
            "document. Counted either way (sluice_output_id_missing_total)."},
    {.name = "op",
     .type = SL_VT_ENUM,
     .off = ES(op),
     .def = "create",
     .values = op_values,
     .doc = "Bulk action; with create a 409 conflict counts as delivered."},
    {.name = "batch_max_bytes",
     .type = SL_VT_SIZE,
     .off = ES(batch_max_bytes),
     .def = "5MiB",
     .min_value = 1024,
     .min_text = "1KiB",
     .doc = "Flush a bulk request at this body size."},
    {.name = "batch_max_wait",
     .type = SL_VT_DURATION,
     .off = ES(batch_max_wait_ms),
     .def = "1s",
     .doc = "Longest a record waits in a batch. A batch goes earlier when it is full, or as soon "
            "as the inputs have read everything that is ready and no request is in flight or "
            "waiting to be retried: a quiet pipeline sends each record within about one round "
            "trip. While a request is in flight records accumulate, so partial batches go at "
            "most once per round trip of the cluster, however many records arrive; the other "
            "concurrency slots carry batches that fill."},
    {.name = "concurrency",
     .type = SL_VT_UINT32,
     .off = ES(concurrency),
     .def = "4",
     .min = 1,
     .max = 64,
     .doc = "Bulk requests in flight."},
    {.name = "compression",
     .type = SL_VT_ENUM,
     .off = ES(compression),
     .def = "none",
     .values = sl_cfg_compression_values,
     .doc = "Request body compression."},
    {.name = "gzip_level",
     .type = SL_VT_INT,
     .off = ES(gzip_level),
     .def = "1",
     .min = 1,
     .max = 9,
     .doc = "gzip level when compression is gzip."},
    {.name = "request_timeout",
     .type = SL_VT_DURATION,
     .off = ES(request_timeout_ms),
     .def = "60s",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "Whole-request timeout; a timeout is retried."},
    {.name = "retry_base",
     .type = SL_VT_DURATION,
     .off = ES(retry_base_ms),
     .def = "200ms",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "First retry backoff; doubles with jitter."},
    {.name = "retry_max",
     .type = SL_VT_DURATION,
     .off = ES(retry_max_ms),
     .def = "30s",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "Backoff cap (at least retry_base)."},
    {.name = "item_retry_timeout",
     .type = SL_VT_DURATION,
     .off = ES(item_retry_timeout_ms),
     .def = "0s",
     .doc = "0 (the default): an item the cluster refuses with 401, 403, 408, 429 or 5xx is "
            "retried until it succeeds, and its partition is held once records pile up behind "
            "it. Otherwise, an item still refused this long after the output took it is "
            "dead-lettered with reason \"retries exhausted\" and its last status and error. "
            "Whole requests that fail (connection, timeout, 429 or 5xx for the request) are "
            "retried for ever either way: the cluster did not judge the item."},
    {.name = "user",
     .type = SL_VT_STRING,
     .off = ES(user),
     .nullable = true,
     .doc_def = "(none)",
     .doc = "Basic auth user; needs password."},
    {.name = "password",
     .type = SL_VT_STRING,
     .off = ES(password),
     .nullable = true,
     .doc_def = "(none)",
     .doc = "Basic auth password; use ${env:NAME} or ${file:PATH}."},
    {.name = "api_key",
     .type = SL_VT_STRING,
     .off = ES(api_key),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(none)",
     .doc = "Sent as \"Authorization: ApiKey <value>\"; excludes user/password."},
    {.name = "ca_file",
     .type = SL_VT_STRING,
     .off = ES(ca_file),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(system CAs)",
     .doc = "PEM bundle to verify servers."},
    {.name = "tls_verify",
     .type = SL_VT_BOOL,
     .off = ES(tls_verify),
     .def = "true",
     .doc = "Verify server certificates and host names."},
    {.name = "timestamp_key",
     .type = SL_VT_STRING,
     .off = ES(timestamp_key),
     .def = "@timestamp",
     .nullable = true,
     .check = check_field_name,
     .doc = "The event time is added under this top-level field (RFC 3339 UTC, as precise as the "
            "time) unless the record has it already; null turns it off."},
    {.name = "pipeline",
     .type = SL_VT_STRING,
     .off = ES(pipeline),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(none)",
     .doc = "Ingest pipeline for every document (the bulk request's pipeline parameter)."},
    {.name = "data_stream",
     .type = SL_VT_STRING,
     .off = ES(data_stream),
     .nullable = true,
     .check = check_index_template,
     .doc_def = "(none)",
     .doc = "Write to this data stream instead of index (same placeholders); forces op create. "
            "It needs a matching index template with data_stream (see template_file)."},
    {.name = "template_name",
     .type = SL_VT_STRING,
     .off = ES(template_name),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(none)",
     .doc = "Name of the composable index template installed from template_file at start-up "
            "and after a reconnect."},
    {.name = "template_file",
     .type = SL_VT_STRING,
     .off = ES(template_file),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(none)",
     .doc = "JSON body of _index_template/<template_name>; read and checked at start-up."},
    {.name = "template_overwrite",
     .type = SL_VT_BOOL,
     .off = ES(template_overwrite),
     .def = "false",
     .doc = "Replace an existing template of that name; false leaves one that exists alone."},
    {.name = "ilm_policy_name",
     .type = SL_VT_STRING,
     .off = ES(ilm_policy_name),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(none)",
     .doc = "Name of the ILM policy installed from ilm_policy_file before the template. "
            "Elasticsearch only: OpenSearch has no _ilm API (its lifecycle is the ISM plugin), "
            "so against OpenSearch sluice stops at start with exit code 2."},
    {.name = "ilm_policy_file",
     .type = SL_VT_STRING,
     .off = ES(ilm_policy_file),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(none)",
     .doc = "JSON body of _ilm/policy/<ilm_policy_name> ({\"policy\": {...}})."},
    {.name = "ilm_policy_overwrite",
     .type = SL_VT_BOOL,
     .off = ES(ilm_policy_overwrite),
     .def = "false",
     .doc = "Replace an existing policy of that name; false leaves one that exists alone."},
    {.name = "setup_timeout",
     .type = SL_VT_DURATION,
     .off = ES(setup_timeout_ms),
     .def = "60s",
     .doc = "Batches wait this long for the cluster's GET / (which distribution and version "
            "it is) and the policy, template and data stream to be in place; after it they are "
            "sent anyway and the setup keeps retrying (logged, counted)."},
    SL_CFG_EDIT_KEYS(OUT),
};

_Static_assert(sizeof(es_keys) / sizeof(es_keys[0]) <= SL_CFG_SECTION_KEYS_MAX,
               "raise SL_CFG_SECTION_KEYS_MAX");
static const struct sl_cfg_section es_section = {
    .where = "in elasticsearch output",
    .keys = es_keys,
    .n_keys = sizeof(es_keys) / sizeof(es_keys[0]),
};

/* A JSON body sluice will send at start-up: better refused now than by Elasticsearch later. */
static void check_json_file(struct sl_cfg_loader *L, int line, const char *key, const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        sl_cfg_err(L, line, "'%s': cannot open '%s': %s", key, sl_cfg_q(L, path), strerror(errno));
        if (fd >= 0) close(fd);
        return;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > 1024 * 1024) {
        sl_cfg_err(L, line, "'%s': '%s' is not a regular file of at most 1MiB", key,
                   sl_cfg_q(L, path));
        close(fd);
        return;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    ssize_t n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    struct sl_json_scan scan = {0};
    if (n != st.st_size)
        sl_cfg_err(L, line, "'%s': cannot read '%s'", key, sl_cfg_q(L, path));
    else if (sl_json_scan_object(buf, (size_t)n, &scan) != 0)
        sl_cfg_err(L, line, "'%s': '%s' is not a JSON object: %s at byte %zu", key,
                   sl_cfg_q(L, path), scan.err_msg, scan.err_offset);
    free(buf);
}

static void check_es_resources(struct sl_cfg_loader *L, const struct sl_output_cfg *o)
{
    const struct sl_es_output_cfg *es = &o->es;
    if (!es->template_name != !es->template_file)
        sl_cfg_err(L, o->line, "'template_name' and 'template_file' must be set together");
    else if (es->template_file)
        check_json_file(L, o->line, "template_file", es->template_file);
    if (!es->ilm_policy_name != !es->ilm_policy_file)
        sl_cfg_err(L, o->line, "'ilm_policy_name' and 'ilm_policy_file' must be set together");
    else if (es->ilm_policy_file)
        check_json_file(L, o->line, "ilm_policy_file", es->ilm_policy_file);
    if (es->data_stream && es->op == SL_ES_OP_INDEX)
        sl_cfg_err(L, o->line,
                   "a data stream takes only 'op: create' (Elasticsearch refuses index)");
}

static void check(struct sl_cfg_loader *L, const struct sl_config *cfg, void *item)
{
    const struct sl_output_cfg *o = item;
    const struct sl_es_output_cfg *es = &o->es;
    if (!es->user != !es->password)
        sl_cfg_err(L, o->line, "'user' and 'password' must be set together");
    if (es->api_key && es->user)
        sl_cfg_err(L, o->line, "'api_key' and 'user'/'password' cannot both be set");
    if (es->retry_max_ms < es->retry_base_ms)
        sl_cfg_err(L, o->line, "'retry_max' (%llums) is less than 'retry_base' (%llums)",
                   (unsigned long long)es->retry_max_ms, (unsigned long long)es->retry_base_ms);
    check_es_resources(L, o);
    if (sl_cfg_service_clean(L) && es->batch_max_bytes > cfg->service.memory_limit)
        sl_cfg_err(
            L, o->line, "'batch_max_bytes' (%llu) is larger than service.memory_limit (%llu)",
            (unsigned long long)es->batch_max_bytes, (unsigned long long)cfg->service.memory_limit);
}

const struct sl_plugin sl_plugin_out_elasticsearch = {
    .kind = SL_PLUGIN_OUTPUT,
    .type = "elasticsearch",
    .type_id = SL_OUTPUT_ELASTICSEARCH,
    .title = "Elasticsearch output",
    .section = &es_section,
    .doc_notes = "Rules across keys: `user` and `password` go together; `api_key` excludes them;\n"
                 "`retry_max` must be at least `retry_base`; `batch_max_bytes` must not exceed\n"
                 "`service.memory_limit`. Component names (given or default) must be unique.\n",
    .check = check,
    .create_output = sl_es_output_new,
};
