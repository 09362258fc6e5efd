/* Configuration: the YAML file, validated against one table of known keys.
 *
 * Contract (docs/configuration.md): unknown keys, wrong
 * types, bad sizes and durations are errors reported as "FILE:LINE: message". Every value has a
 * default here, so the rest of sluice never checks for "unset". The loaded struct owns all its
 * strings; sl_config_free releases them. */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/kv.h"

struct sl_plugin;
struct sl_registry;

#define SL_CFG_MAX_INPUTS 16
#define SL_CFG_MAX_OUTPUTS 16
#define SL_CFG_MAX_LIST 64

/* The part of service.memory_limit that the pipeline's buffers (batches, Forward requests) may
 * hold; the rest is librdkafka's prefetch and slack (src/main.c explains the split). */
#define SL_PIPELINE_SHARE(limit) ((limit) / 8 * 3)

enum sl_unmatched { SL_UNMATCHED_DEAD_LETTER = 0, SL_UNMATCHED_DROP };
enum sl_format { SL_FORMAT_JSON = 0, SL_FORMAT_TEXT, SL_FORMAT_REGEXP };
enum sl_on_parse_error { SL_PARSE_ERROR_DEAD_LETTER = 0, SL_PARSE_ERROR_AS_TEXT };
enum sl_id_mode { SL_ID_KAFKA = 0, SL_ID_NONE, SL_ID_FIELD };
enum sl_log_level { SL_LOG_ERROR = 0, SL_LOG_WARN, SL_LOG_INFO, SL_LOG_DEBUG };
enum sl_log_format { SL_LOG_TEXT = 0, SL_LOG_JSON };

struct sl_service_cfg {
    uint64_t memory_limit;         /* bytes; default 64 MiB; minimum 4 MiB */
    char *http_listen;             /* default "127.0.0.1:2020"; NULL when set to "" or "off" */
    char *dead_letter_path;        /* directory; default "./dead-letter" */
    uint64_t dead_letter_max_size; /* bytes; default 1 GiB */
    char *storage_path;            /* default "./buffer"; forward inputs with ack: stored */
    uint64_t storage_max_size;     /* bytes per such input's store; default 1 GiB */
    uint64_t shutdown_timeout_ms;  /* default 30 s */
    enum sl_unmatched unmatched;   /* default dead_letter */
    enum sl_log_level log_level;   /* default info */
    uint64_t log_interval_ms;      /* rate limit window per (component, kind); default 10 s */
    enum sl_log_format log_format; /* default text */
    char *log_file;                /* NULL = stderr; reopened on SIGHUP */
    uint64_t stall_after_ms;       /* /healthz turns 503 after this long without progress; 60 s */
    uint64_t stats_interval_ms;    /* periodic stats log line; default 10 s; 0 = off */
};

/* Field edits, on an input (before routing) or an output (before sending). Paths are dotted
 * ("a.b.c"); applied in this order: remove_keys, rename_keys, add_fields, include_tag_key. */
struct sl_edit_cfg {
    struct sl_kv add_fields[SL_CFG_MAX_LIST]; /* path -> template (${topic} ${partition}...) */
    size_t n_add_fields;
    char *remove_keys[SL_CFG_MAX_LIST];
    size_t n_remove_keys;
    struct sl_kv rename_keys[SL_CFG_MAX_LIST]; /* from path -> to path */
    size_t n_rename_keys;
    bool include_tag_key; /* default false */
    char *tag_key;        /* default "tag" */
};

struct sl_kafka_input_cfg {
    char *brokers;                 /* required */
    char *group_id;                /* default "sluice" */
    char *topics[SL_CFG_MAX_LIST]; /* required, >= 1; entries starting with ^ are regexes */
    size_t n_topics;
    char *tag;                           /* template; default "kafka.${topic}" */
    enum sl_format format;               /* default json */
    char *pattern;                       /* format regexp: PCRE2 with named groups */
    struct sl_kv types[SL_CFG_MAX_LIST]; /* format regexp: field -> int|float|bool|string */
    size_t n_types;
    enum sl_on_parse_error on_parse_error; /* default dead_letter */
    char *time_key;                        /* NULL = use the Kafka timestamp */
    char *time_format;                     /* NULL = RFC 3339 or epoch numbers */
    char *metadata_key; /* NULL = off; else add {"topic","partition","offset","key"} */
    struct sl_kv librdkafka[SL_CFG_MAX_LIST]; /* passed through verbatim */
    size_t n_librdkafka;
};

/* ack: delivered answers a chunk once all its events are delivered or dead-lettered; stored
 * answers once the request is fsync'd under service.storage_path/<input name>/ (replayed after a
 * restart, deleted once every event of it is finished). See src/inputs/forward.c. */
enum sl_fwd_ack_mode { SL_FWD_ACK_DELIVERED = 0, SL_FWD_ACK_STORED };
enum sl_tls_version { SL_TLS_1_2 = 0, SL_TLS_1_3 };

struct sl_forward_input_cfg {
    char *listen;    /* host:port; default "0.0.0.0:24224"; port 0 = any free port; NULL = "off" */
    char *unix_path; /* NULL = no Unix socket */
    uint32_t unix_mode;                  /* permission bits of the socket file; default 0660 */
    bool tls;                            /* TCP listener speaks TLS; default false */
    char *tls_cert_file;                 /* PEM; required with tls */
    char *tls_key_file;                  /* PEM; required with tls */
    char *tls_ca_file;                   /* PEM CAs for client certificates */
    bool tls_verify_client;              /* mutual TLS; default false; needs tls_ca_file */
    enum sl_tls_version tls_min_version; /* default 1.2 */
    struct sl_kv users[SL_CFG_MAX_LIST]; /* username -> password; needs shared_key */
    size_t n_users;
    char *tag_prefix;              /* NULL = none; else tags become "<prefix>.<tag>" */
    enum sl_fwd_ack_mode ack;      /* default delivered */
    char *shared_key;              /* NULL = no handshake */
    char *self_hostname;           /* NULL = gethostname() at start */
    uint64_t handshake_timeout_ms; /* default 10 s */
    uint64_t max_frame_size;       /* bytes; default 6 MiB */
    uint32_t max_connections;      /* default 1024 */
    uint64_t idle_timeout_ms;      /* default 300 s; 0 = never */
    bool id_from_kafka_fields;     /* default false */
};

enum sl_input_type { SL_INPUT_KAFKA = 1, SL_INPUT_FORWARD };

struct sl_input_cfg {
    enum sl_input_type type;
    char *name; /* default "<type>.<index>" (index in the inputs list, from 0) */
    int line;   /* line of the list item in the file, for messages */
    const struct sl_plugin *plugin;      /* its type */
    struct sl_kafka_input_cfg kafka;     /* type kafka */
    struct sl_forward_input_cfg forward; /* type forward */
    struct sl_edit_cfg edits;
};

enum sl_compression { SL_COMPRESSION_NONE = 0, SL_COMPRESSION_GZIP };
enum sl_es_op { SL_ES_OP_CREATE = 0, SL_ES_OP_INDEX };
/* id: field:<path> and a record without a usable value there */
enum sl_id_missing { SL_ID_MISSING_DEAD_LETTER = 0, SL_ID_MISSING_SOURCE };

struct sl_es_output_cfg {
    char *hosts[SL_CFG_MAX_LIST]; /* default ["http://127.0.0.1:9200"]; failover in order */
    size_t n_hosts;
    char *index;                     /* template; default "logs-${topic}-%Y.%m.%d" */
    enum sl_id_mode id;              /* default kafka */
    char *id_field;                  /* path when id is "field:<path>" */
    enum sl_id_missing id_missing;   /* default dead_letter */
    enum sl_es_op op;                /* default create */
    uint64_t batch_max_bytes;        /* default 5 MiB */
    uint64_t batch_max_wait_ms;      /* default 1 s */
    uint32_t concurrency;            /* in-flight requests; default 4; 1..64 */
    enum sl_compression compression; /* default none */
    int gzip_level;                  /* 1..9; default 1 */
    uint64_t request_timeout_ms;     /* default 60 s */
    uint64_t retry_base_ms;          /* first backoff; default 200 ms */
    uint64_t retry_max_ms;           /* backoff cap; default 30 s */
    uint64_t item_retry_timeout_ms;  /* 0: items refused transiently are retried for ever */
    char *user;                      /* basic auth, with password */
    char *password;
    char *api_key; /* "ApiKey <value>" header */
    char *ca_file;
    bool tls_verify;     /* default true */
    char *timestamp_key; /* default "@timestamp"; NULL = off */
    char *pipeline;      /* ingest pipeline; NULL = none */
    char *data_stream;   /* NULL = write to `index`; else this data stream, with op create */
    char *template_name; /* composable index template installed at start-up */
    char *template_file;
    bool template_overwrite;
    char *ilm_policy_name; /* ILM policy installed at start-up */
    char *ilm_policy_file;
    bool ilm_policy_overwrite;
    uint64_t setup_timeout_ms; /* default 60 s: then send anyway, keep retrying the setup */
};

/* The Forward output (Fluentd Forward protocol client). See src/outputs/forward.c. */
struct sl_fwd_output_cfg {
    char *servers[SL_CFG_MAX_LIST]; /* host:port; default ["127.0.0.1:24224"]; failover in order */
    size_t n_servers;
    /* weights: as written (integers 0..100), one per server; n_weights 0 = not set (failover in
     * order); weight holds the values once loaded */
    char *weights[SL_CFG_MAX_LIST];
    size_t n_weights;
    uint32_t weight[SL_CFG_MAX_LIST];
    bool require_ack;                /* default true: a batch is delivered only once acked */
    uint64_t ack_timeout_ms;         /* default 30 s: from the first byte written to the ack */
    uint32_t max_ack_timeouts;       /* default 2: in a row, then the server is unhealthy */
    uint64_t recover_wait_ms;        /* default 10 s: an unhealthy server is left out this long */
    uint64_t batch_max_bytes;        /* default 4 MiB, at most 4 MiB (uncompressed request) */
    uint64_t batch_max_wait_ms;      /* default 1 s */
    uint32_t concurrency;            /* connections, each with at most one request; default 1 */
    enum sl_compression compression; /* default none */
    int gzip_level;                  /* 1..9; default 1 */
    char *shared_key;                /* NULL = no handshake */
    char *username;                  /* user auth in PING, with password; NULL = "" */
    char *password;
    char *self_hostname;         /* NULL = gethostname() at start */
    uint64_t connect_timeout_ms; /* default 10 s: TCP connect, TLS and Forward handshakes */
    bool tls;                    /* default false */
    char *tls_ca_file;           /* NULL = system CAs */
    bool tls_verify;             /* default true: certificate and host name */
    char *tls_cert_file;         /* client certificate (mutual TLS) */
    char *tls_key_file;
    enum sl_tls_version tls_min_version; /* default 1.2 */
    uint64_t retry_base_ms;              /* default 200 ms */
    uint64_t retry_max_ms;               /* default 30 s */
    bool kafka_fields;                   /* default true: Kafka coordinates go into each record */
    char *kafka_topic_key;               /* default "kafka_topic" */
    char *kafka_partition_key;           /* default "kafka_partition" */
    char *kafka_offset_key;              /* default "kafka_offset" */
};

enum sl_output_type { SL_OUTPUT_ELASTICSEARCH = 1, SL_OUTPUT_FORWARD };

struct sl_output_cfg {
    enum sl_output_type type;
    char *name; /* default "<type>.<index>" */
    int line;
    char *match[SL_CFG_MAX_LIST]; /* tag patterns; default ["**"] */
    size_t n_match;
    bool copy; /* default false: a match takes the record; true: routing goes on past it */
    const struct sl_plugin *plugin; /* its type */
    struct sl_es_output_cfg es;   /* type elasticsearch */
    struct sl_fwd_output_cfg fwd; /* type forward */
    struct sl_edit_cfg edits;
};

struct sl_config {
    char *path;
    struct sl_service_cfg service;
    struct sl_input_cfg inputs[SL_CFG_MAX_INPUTS];
    size_t n_inputs;
    struct sl_output_cfg outputs[SL_CFG_MAX_OUTPUTS];
    size_t n_outputs;
};

/* Loads and validates path; the input and output types are the registry's plugins. Returns 0,
 * or -1 after writing every problem found (one per line, "FILE:LINE: message\n") to errs,
 * truncated to errlen. On -1 the struct is freed already. */
int sl_config_load(const struct sl_registry *reg, const char *path, struct sl_config *cfg,
                   char *errs, size_t errlen);
/* Same, from a buffer; name is used in messages. */
int sl_config_load_string(const struct sl_registry *reg, const char *name, const char *yaml,
                          size_t len, struct sl_config *cfg, char *errs, size_t errlen);
void sl_config_free(struct sl_config *cfg);

/* "64MiB", "5MB", "512KiB", "1GiB", "4096", "1.5MiB": binary (KiB, MiB, GiB, KB=kB=K=k as 1000?
 * no: KB/MB/GB are decimal, KiB/MiB/GiB binary, bare number is bytes). Returns 0 or -1. */
int sl_parse_size(const char *s, uint64_t *bytes);
/* "500ms", "30s", "5m", "1h", "1.5s"; a bare number is seconds. Returns 0 or -1. */
int sl_parse_duration_ms(const char *s, uint64_t *ms);

#endif
