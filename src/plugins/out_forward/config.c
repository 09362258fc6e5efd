/* Forward output: its configuration keys and the rules across them. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/config_schema.h"
#include "core/plugin.h"
#include "outputs/forward.h"

#define OUT(f) offsetof(struct sl_output_cfg, f)
#define FO(f) offsetof(struct sl_output_cfg, fwd.f)

/* A Forward server to connect to: host:port with a port 1..65535. */
static int check_server(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                        const struct sl_cfg_val *v)
{
    if (sl_cfg_valid_host_port(v->s, 1) == 0) return 0;
    sl_cfg_err(L, v->line, "'%s' entry '%s' must be host:port", k->name,
               sl_cfg_q(L, v->secret ? v->raw : v->s));
    return -1;
}

/* One entry of a forward output's weights. */
static int check_weight(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                        const struct sl_cfg_val *v)
{
    char *end;
    errno = 0;
    long w = strtol(v->s, &end, 10);
    if (*v->s && !*end && errno == 0 && w >= 0 && w <= 100) return 0;
    sl_cfg_err(L, v->line, "'%s' entries must be integers from 0 to 100, got '%s'", k->name,
               sl_cfg_q(L, v->raw));
    return -1;
}

static const struct sl_cfg_key fwd_out_keys[] = {
    {.name = "type",
     .type = SL_VT_TYPE,
     .required = true,
     .doc_type = "forward",
     .doc = "Selects this output: Fluentd Forward protocol client (PackedForward over TCP)."},
    {.name = "name",
     .type = SL_VT_STRING,
     .off = OUT(name),
     .doc_def = "forward.<index>",
     .check = sl_cfg_check_name,
     .doc = "Name in metrics and logs; index is the position in outputs."},
    SL_CFG_ROUTE_KEYS(OUT),
    {.name = "servers",
     .type = SL_VT_LIST,
     .off = FO(servers),
     .count_off = FO(n_servers),
     .def = "127.0.0.1:24224",
     .check = check_server,
     .doc = "Forward servers as host:port; the next one is used when connecting or the "
            "handshake fails, or after max_ack_timeouts ack timeouts in a row (a list or one "
            "string)."},
    {.name = "weights",
     .type = SL_VT_LIST,
     .off = FO(weights),
     .count_off = FO(n_weights),
     .check = check_weight,
     .doc_def = "(failover in order)",
     .doc = "One integer 0..100 per server: batches go round-robin to the healthy servers in "
            "proportion to their weights (concurrency then counts per server); 0 marks a "
            "standby, used only while every weighted server is down. Unset: servers is a "
            "failover list."},
    {.name = "require_ack",
     .type = SL_VT_BOOL,
     .off = FO(require_ack),
     .def = "true",
     .doc = "Send a chunk id and count a batch delivered only when the server acks it "
            "(at-least-once). false: delivered once written (at-most-once at the receiver)."},
    {.name = "ack_timeout",
     .type = SL_VT_DURATION,
     .off = FO(ack_timeout_ms),
     .def = "30s",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "Time from starting to write a request to its ack; then the connection is dropped "
            "and the batch resent with the same chunk id."},
    {.name = "max_ack_timeouts",
     .type = SL_VT_UINT32,
     .off = FO(max_ack_timeouts),
     .def = "2",
     .max = 1000,
     .doc = "Ack timeouts in a row on one server before it is marked unhealthy for "
            "recover_wait: its batches are resent to the next healthy server (same chunk id; "
            "the receivers may get a batch twice). 0: resend to the same server for ever."},
    {.name = "recover_wait",
     .type = SL_VT_DURATION,
     .off = FO(recover_wait_ms),
     .def = "10s",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "How long a server marked unhealthy is left out before it may be used again "
            "(fluentd's recover_wait)."},
    {.name = "batch_max_bytes",
     .type = SL_VT_SIZE,
     .off = FO(batch_max_bytes),
     .def = "4MiB",
     .min_value = 1024,
     .min_text = "1KiB",
     .doc = "Largest request before compression; at most 4MiB (Fluent Bit drops bigger ones)."},
    {.name = "batch_max_wait",
     .type = SL_VT_DURATION,
     .off = FO(batch_max_wait_ms),
     .def = "1s",
     .doc = "Longest a record waits in a batch. A batch goes earlier when it is full, or as soon "
            "as the inputs have read everything that is ready and no request is in flight (nor "
            "a connection in backoff): a quiet pipeline sends each record within about one round "
            "trip. While a request is in flight records accumulate, so partial batches (one per "
            "tag) go at most once per round trip to the server, its ack included, however many "
            "records arrive."},
    {.name = "concurrency",
     .type = SL_VT_UINT32,
     .off = FO(concurrency),
     .def = "1",
     .min = 1,
     .max = 64,
     .doc = "Connections, each with at most one request awaiting its ack."},
    {.name = "compression",
     .type = SL_VT_ENUM,
     .off = FO(compression),
     .def = "none",
     .values = sl_cfg_compression_values,
     .doc = "gzip sends CompressedPackedForward (compressed: gzip)."},
    {.name = "gzip_level",
     .type = SL_VT_INT,
     .off = FO(gzip_level),
     .def = "1",
     .min = 1,
     .max = 9,
     .doc = "gzip level when compression is gzip."},
    {.name = "shared_key",
     .type = SL_VT_STRING,
     .off = FO(shared_key),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(no handshake)",
     .doc = "Answer the server's HELO with PING and verify its PONG digest; use ${env:NAME} or "
            "${file:PATH}."},
    {.name = "username",
     .type = SL_VT_STRING,
     .off = FO(username),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(none)",
     .doc = "User for servers that ask for user authentication in HELO (with password)."},
    {.name = "password",
     .type = SL_VT_STRING,
     .off = FO(password),
     .nullable = true,
     .doc_def = "(none)",
     .doc = "Password of username (sent only as a salted SHA-512 digest); use ${env:NAME} or "
            "${file:PATH}."},
    {.name = "tls",
     .type = SL_VT_BOOL,
     .off = FO(tls),
     .def = "false",
     .doc = "Connect with TLS (SNI is the server's host name)."},
    {.name = "tls_ca_file",
     .type = SL_VT_STRING,
     .off = FO(tls_ca_file),
     .nullable = true,
     .check = sl_cfg_check_pem_file,
     .doc_def = "(system CAs)",
     .doc = "PEM CAs to verify servers with."},
    {.name = "tls_verify",
     .type = SL_VT_BOOL,
     .off = FO(tls_verify),
     .def = "true",
     .doc = "Verify the server certificate and that it names the host (or IP) in servers."},
    {.name = "tls_cert_file",
     .type = SL_VT_STRING,
     .off = FO(tls_cert_file),
     .nullable = true,
     .check = sl_cfg_check_pem_file,
     .doc_def = "(none)",
     .doc = "PEM client certificate for mutual TLS (with tls_key_file)."},
    {.name = "tls_key_file",
     .type = SL_VT_STRING,
     .off = FO(tls_key_file),
     .nullable = true,
     .check = sl_cfg_check_pem_file,
     .doc_def = "(none)",
     .doc = "PEM private key of tls_cert_file."},
    {.name = "tls_min_version",
     .type = SL_VT_ENUM,
     .off = FO(tls_min_version),
     .def = "1.2",
     .values = sl_cfg_tls_version_values,
     .doc = "Oldest TLS version offered."},
    {.name = "self_hostname",
     .type = SL_VT_STRING,
     .off = FO(self_hostname),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(host name)",
     .doc = "Client host name sent in PING (part of its digest)."},
    {.name = "connect_timeout",
     .type = SL_VT_DURATION,
     .off = FO(connect_timeout_ms),
     .def = "10s",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "Limit for the TCP connect plus the TLS and Forward handshakes."},
    {.name = "retry_base",
     .type = SL_VT_DURATION,
     .off = FO(retry_base_ms),
     .def = "200ms",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "First retry backoff; doubles with jitter."},
    {.name = "retry_max",
     .type = SL_VT_DURATION,
     .off = FO(retry_max_ms),
     .def = "30s",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "Backoff cap (at least retry_base)."},
    {.name = "kafka_fields",
     .type = SL_VT_BOOL,
     .off = FO(kafka_fields),
     .def = "true",
     .doc = "Add the Kafka topic, partition and offset of records from Kafka as top-level "
            "fields, so the far side can derive the same ids."},
    {.name = "kafka_topic_key",
     .type = SL_VT_STRING,
     .off = FO(kafka_topic_key),
     .def = "kafka_topic",
     .check = sl_cfg_check_not_empty,
     .doc = "Field name of the topic (a string)."},
    {.name = "kafka_partition_key",
     .type = SL_VT_STRING,
     .off = FO(kafka_partition_key),
     .def = "kafka_partition",
     .check = sl_cfg_check_not_empty,
     .doc = "Field name of the partition (an integer)."},
    {.name = "kafka_offset_key",
     .type = SL_VT_STRING,
     .off = FO(kafka_offset_key),
     .def = "kafka_offset",
     .check = sl_cfg_check_not_empty,
     .doc = "Field name of the offset (an integer)."},
    SL_CFG_EDIT_KEYS(OUT),
};

_Static_assert(sizeof(fwd_out_keys) / sizeof(fwd_out_keys[0]) <= SL_CFG_SECTION_KEYS_MAX,
               "raise SL_CFG_SECTION_KEYS_MAX");
static const struct sl_cfg_section fwd_out_section = {
    .where = "in forward output",
    .keys = fwd_out_keys,
    .n_keys = sizeof(fwd_out_keys) / sizeof(fwd_out_keys[0]),
};

static void check(struct sl_cfg_loader *L, const struct sl_config *cfg, void *item)
{
    (void)cfg;
    struct sl_output_cfg *o = item;
    struct sl_fwd_output_cfg *fo = &o->fwd;
    /* Fluent Bit's in_forward closes the connection on a request above its 6,144,000 byte
     * buffer (its default buffer_max_size per connection), which would turn into an endless
     * resend loop. (4MiB is also the smallest memory_limit, so a batch always fits the
     * budget.) */
    if (fo->batch_max_bytes > 4 * SL_CFG_MIB)
        sl_cfg_err(L, o->line, "'batch_max_bytes' (%llu) is larger than 4MiB",
                   (unsigned long long)fo->batch_max_bytes);
    if (fo->retry_max_ms < fo->retry_base_ms)
        sl_cfg_err(L, o->line, "'retry_max' (%llums) is less than 'retry_base' (%llums)",
                   (unsigned long long)fo->retry_max_ms, (unsigned long long)fo->retry_base_ms);
    if (!fo->username != !fo->password)
        sl_cfg_err(L, o->line, "'username' and 'password' must be set together");
    else if (fo->username && !fo->shared_key)
        sl_cfg_err(L, o->line,
                   "'username' needs 'shared_key' (user authentication is part of the "
                   "handshake)");
    if (!fo->tls_cert_file != !fo->tls_key_file)
        sl_cfg_err(L, o->line, "'tls_cert_file' and 'tls_key_file' must be set together");
    if (!fo->tls && (fo->tls_ca_file || fo->tls_cert_file || fo->tls_key_file))
        sl_cfg_err(L, o->line, "tls_* files are set but 'tls' is false");
    if (fo->n_weights && fo->n_weights != fo->n_servers) {
        int line = sl_cfg_line(L, o, "weights");
        sl_cfg_err(L, line ? line : o->line,
                   "'weights' has %zu entries but 'servers' has %zu (one weight per server)",
                   fo->n_weights, fo->n_servers);
    }
    for (size_t w = 0; w < fo->n_weights; w++)
        fo->weight[w] = (uint32_t)strtoul(fo->weights[w], NULL, 10);
}

const struct sl_plugin sl_plugin_out_forward = {
    .kind = SL_PLUGIN_OUTPUT,
    .type = "forward",
    .type_id = SL_OUTPUT_FORWARD,
    .title = "Forward output",
    .section = &fwd_out_section,
    .doc_notes =
        "Records are sent as PackedForward requests `[tag, bin(entries), {\"size\": N,\n"
        "\"chunk\": C[, \"compressed\": \"gzip\"]}]`, one tag per request, each entry\n"
        "`[EventTime, record]` with the record's JSON object converted to a msgpack map (a record\n"
        "that cannot be converted, nests deeper than 64 levels, or alone exceeds\n"
        "`batch_max_bytes`, is dead-lettered). The chunk id (base64 of 16 random bytes) is kept\n"
        "for every resend of the same request. With `require_ack` a request is delivered when the\n"
        "server answers `{\"ack\": C}`; a wrong ack, end of stream, error or `ack_timeout` drops\n"
        "that connection (a late ack must not match a later request) and the request is resent\n"
        "after a backoff, forever; Kafka offsets advance only after the ack. Receivers do not\n"
        "deduplicate resent chunks, so with `kafka_fields` every record from Kafka carries\n"
        "`kafka_topic` (string), `kafka_partition` and `kafka_offset` (integers) (names\n"
        "configurable, added after the record's own fields) from which the far side derives the\n"
        "same ids. A failed connect or handshake moves to the next of `servers` (wrapping\n"
        "around). `max_ack_timeouts` ack timeouts in a row on one server (a server that accepts\n"
        "requests but never acks) mark it unhealthy for `recover_wait`: logged as a warning with\n"
        "the server and the reason, shown in `sluice_forward_output_server_unhealthy` and\n"
        "counted in `sluice_forward_output_failovers_total`; the request is resent to the next\n"
        "healthy server (with `weights`: the other servers in their proportions). While every\n"
        "server is unhealthy the requests are still resent (to the next server, or in weighted\n"
        "mode by the weights), never dropped, and the warning says so. `batch_max_bytes` must not\n"
        "exceed 4MiB; `retry_max` must be at least `retry_base`.\n",
    .check = check,
    .create_output = sl_fwd_output_new,
};
