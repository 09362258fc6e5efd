/* Kafka input: its configuration keys and the rules across them. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/rxparse.h"
#include "codec/timefmt.h"
#include "core/config.h"
#include "core/config_schema.h"
#include "core/plugin.h"
#include "inputs/kafka.h"

#define IN(f) offsetof(struct sl_input_cfg, f)
#define KAF(f) offsetof(struct sl_input_cfg, kafka.f)

static const char *const format_values[] = {"json", "text", "regexp", NULL};
static const char *const on_parse_error_values[] = {"dead_letter", "as_text", NULL};

/* Librdkafka properties that sluice owns: overriding them would break delivery guarantees or
 * fight a dedicated key. */
static const struct {
    const char *key;
    const char *why;
} reserved_rdkafka[] = {
    {"group.id", "use 'group_id'"},
    {"bootstrap.servers", "use 'brokers'"},
    {"metadata.broker.list", "use 'brokers'"},
    {"enable.auto.offset.store", "sluice stores offsets only after delivery"},
};

static int check_rdkafka_key(struct sl_cfg_loader *L, const struct sl_cfg_key *k, const char *key,
                             int line)
{
    for (size_t i = 0; i < sizeof(reserved_rdkafka) / sizeof(reserved_rdkafka[0]); i++) {
        if (strcmp(key, reserved_rdkafka[i].key) == 0) {
            sl_cfg_err(L, line, "'%s.%s' is managed by sluice: %s", k->name, key,
                       reserved_rdkafka[i].why);
            return -1;
        }
    }
    return 0;
}

static int check_tag_template(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                              const struct sl_cfg_val *v)
{
    if (sl_cfg_check_not_empty(L, k, v) < 0) return -1;
    return sl_cfg_check_template(L, k, v, false, "${topic}");
}

static int check_type_name(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                           const struct sl_cfg_val *v)
{
    static const char *const names[] = {"int", "integer", "float", "bool", "boolean", "string"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(v->s, names[i]) == 0) return 0;
    }
    sl_cfg_err(L, v->line, "invalid type '%s' in '%s' (valid: int, float, bool, string)",
               sl_cfg_q(L, v->raw), k->name);
    return -1;
}

/* time_format: strptime-style, or a Java SimpleDateFormat pattern (no '%'), as
 * kafka-fluentd-consumer's fluentd.record.time.pattern took it, converted here. */
static int set_time_format(struct sl_cfg_loader *L, const struct sl_cfg_key *k, void *base,
                           const struct sl_cfg_val *v)
{
    char conv[256], why[160];
    const char *use = v->s;
    if (v->null) {
        sl_cfg_set_str(base, k->off, NULL);
        return 0;
    }
    if (!strchr(v->s, '%')) {
        if (sl_time_fmt_from_java(v->s, conv, sizeof conv, why, sizeof why) != 0) {
            sl_cfg_err(L, v->line, "'%s' (a SimpleDateFormat pattern, as it has no %%): %s",
                       k->name, why);
            return -1;
        }
        use = conv;
    } else if (sl_time_fmt_valid(v->s, why, sizeof why) != 0) {
        sl_cfg_err(L, v->line, "'%s': %s", k->name, why);
        return -1;
    }
    return sl_cfg_set_copy(L, base, k->off, use, v->line);
}

static const struct sl_cfg_key kafka_keys[] = {
    {.name = "type",
     .type = SL_VT_TYPE,
     .required = true,
     .doc_type = "kafka",
     .doc = "Selects this input."},
    {.name = "name",
     .type = SL_VT_STRING,
     .off = IN(name),
     .doc_def = "kafka.<index>",
     .check = sl_cfg_check_name,
     .doc = "Name in metrics and logs; index is the position in inputs."},
    {.name = "brokers",
     .type = SL_VT_STRING,
     .off = KAF(brokers),
     .required = true,
     .check = sl_cfg_check_not_empty,
     .doc = "Bootstrap servers, host:port[,host:port...]."},
    {.name = "group_id",
     .type = SL_VT_STRING,
     .off = KAF(group_id),
     .def = "sluice",
     .check = sl_cfg_check_not_empty,
     .doc = "Consumer group; run more processes with it to scale out."},
    {.name = "topics",
     .type = SL_VT_LIST,
     .off = KAF(topics),
     .count_off = KAF(n_topics),
     .required = true,
     .check = sl_cfg_check_not_empty,
     .doc = "Topic names, or regexes when they start with ^ (a list or one string)."},
    {.name = "tag",
     .type = SL_VT_STRING,
     .off = KAF(tag),
     .def = "kafka.${topic}",
     .check = check_tag_template,
     .doc = "Tag template for routing; ${topic} is the only placeholder."},
    {.name = "format",
     .type = SL_VT_ENUM,
     .off = KAF(format),
     .def = "json",
     .values = format_values,
     .doc = "How message values are read: json objects, text lines (as {\"message\": line}) "
            "or regexp (named groups of pattern become fields)."},
    {.name = "pattern",
     .type = SL_VT_STRING,
     .off = KAF(pattern),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(none)",
     .doc = "format regexp: PCRE2 pattern with named groups (?<name>...), matched on bytes; a "
            "line that does not match is a parse error (see on_parse_error)."},
    {.name = "types",
     .type = SL_VT_KVMAP,
     .off = KAF(types),
     .count_off = KAF(n_types),
     .check = check_type_name,
     .doc_def = "{}",
     .doc = "format regexp: field: int|float|bool|string; text that does not convert becomes "
            "null and is counted."},
    {.name = "on_parse_error",
     .type = SL_VT_ENUM,
     .off = KAF(on_parse_error),
     .def = "dead_letter",
     .values = on_parse_error_values,
     .doc = "What happens to a value that is not valid JSON (format json) or does not match "
            "pattern (format regexp): dead-lettered, or kept as {\"message\": text}."},
    {.name = "time_key",
     .type = SL_VT_STRING,
     .off = KAF(time_key),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(Kafka timestamp)",
     .doc = "Record field holding the event time; unset = the Kafka message timestamp. A time "
            "that does not parse leaves the Kafka timestamp and is counted."},
    {.name = "time_format",
     .owns_str = true,
     .type = SL_VT_CUSTOM,
     .doc_type = "string",
     .off = KAF(time_format),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .set = set_time_format,
     .doc_def = "(RFC 3339 or epoch)",
     .doc = "strptime-style format of time_key (%Y %m %d %H %M %S %b %z %N %L %s ...), or a Java "
            "SimpleDateFormat pattern (dd/MMM/yyyy:HH:mm:ss Z) when it has no %; unset = RFC "
            "3339, epoch seconds or milliseconds recognised."},
    {.name = "metadata_key",
     .type = SL_VT_STRING,
     .off = KAF(metadata_key),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(off)",
     .doc = "Adds {topic, partition, offset, key} to each record under this field."},
    {.name = "librdkafka",
     .check_key = check_rdkafka_key,
     .type = SL_VT_KVMAP,
     .off = KAF(librdkafka),
     .count_off = KAF(n_librdkafka),
     .doc_def = "{}",
     .doc = "librdkafka properties passed through as strings, e.g. TLS and SASL "
            "(security.protocol, sasl.*, ssl.*: examples/kafka-sasl-ssl.yaml); ${env:} and "
            "${file:} work in values. A refused password or a broker certificate that does not "
            "verify stops sluice at start (exit 2)."},
    SL_CFG_EDIT_KEYS(IN),
};

_Static_assert(sizeof(kafka_keys) / sizeof(kafka_keys[0]) <= SL_CFG_SECTION_KEYS_MAX,
               "raise SL_CFG_SECTION_KEYS_MAX");
static const struct sl_cfg_section kafka_section = {
    .where = "in kafka input",
    .keys = kafka_keys,
    .n_keys = sizeof(kafka_keys) / sizeof(kafka_keys[0]),
};

/* format regexp and its companions. */
static void check_kafka_parsing(struct sl_cfg_loader *L, const struct sl_input_cfg *in)
{
    const struct sl_kafka_input_cfg *kc = &in->kafka;
    if (kc->format == SL_FORMAT_REGEXP) {
        char why[256];
        struct sl_rxparse *r = NULL;
        if (!kc->pattern)
            sl_cfg_err(L, in->line, "'format: regexp' needs a 'pattern'");
        else if (!(r = sl_rxparse_new(kc->pattern, kc->types, kc->n_types, why, sizeof why)))
            sl_cfg_err(L, in->line, "'pattern': %s", why);
        sl_rxparse_free(r);
    } else {
        if (kc->pattern) sl_cfg_err(L, in->line, "'pattern' is only used with 'format: regexp'");
        if (kc->n_types) sl_cfg_err(L, in->line, "'types' is only used with 'format: regexp'");
    }
    if (kc->time_format && !kc->time_key)
        sl_cfg_err(L, in->line, "'time_format' needs a 'time_key' to read the time from");
}

static void check(struct sl_cfg_loader *L, const struct sl_config *cfg, void *item)
{
    (void)cfg;
    check_kafka_parsing(L, item);
}

static void *create(struct sl_pipeline *p, const struct sl_input_cfg *cfg, uint64_t prefetch,
                    char *err, size_t errlen)
{
    return sl_kafka_in_new(p, cfg, prefetch, err, errlen);
}

const struct sl_plugin sl_plugin_in_kafka = {
    .kind = SL_PLUGIN_INPUT,
    .type = "kafka",
    .type_id = SL_INPUT_KAFKA,
    .title = "Kafka input",
    .section = &kafka_section,
    .doc_notes =
        "`librdkafka` may not set `group.id`, `bootstrap.servers`, `metadata.broker.list` (use\n"
        "`group_id` and `brokers`) or `enable.auto.offset.store` (sluice stores an offset only\n"
        "once the record is delivered or dead-lettered). Values are passed as strings.\n",
    .check = check,
    .create_input = create,
    .in_ops = &sl_kafka_in_ops,
};
