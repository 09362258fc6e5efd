/* Forward input: its configuration keys and the rules across them. */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/config.h"
#include "core/config_schema.h"
#include "core/plugin.h"
#include "inputs/forward.h"

#define IN(f) offsetof(struct sl_input_cfg, f)
#define FWD(f) offsetof(struct sl_input_cfg, forward.f)

/* Permission bits as octal text: "0660", "660", "0600". */
static int set_unix_mode(struct sl_cfg_loader *L, const struct sl_cfg_key *k, void *base,
                         const struct sl_cfg_val *v)
{
    char *end = NULL;
    unsigned long m = v->null || !*v->s ? 01000 : strtoul(v->s, &end, 8);
    if (m > 0777 || !end || *end) {
        sl_cfg_err(L, v->line, "'%s' must be octal permission bits such as \"0660\", got '%s'",
                   k->name, sl_cfg_q(L, v->null ? "" : v->raw));
        return -1;
    }
    *(uint32_t *)((char *)base + k->off) = (uint32_t)m;
    return 0;
}

/* A user name in the forward input's users map. */
static int check_user_key(struct sl_cfg_loader *L, const struct sl_cfg_key *k, const char *key,
                          int line)
{
    if (*key) return 0;
    sl_cfg_err(L, line, "'%s' has an empty user name", k->name);
    return -1;
}

/* The forward input's listen address: required to be host:port; port 0 binds any free port. */
static int set_fwd_listen(struct sl_cfg_loader *L, const struct sl_cfg_key *k, void *base,
                          const struct sl_cfg_val *v)
{
    if (!v->null && strcmp(v->s, "off") == 0) {
        sl_cfg_set_str(base, k->off, NULL); /* only with unix_path (cross_checks) */
        return 0;
    }
    if (v->null || sl_cfg_valid_host_port(v->s, 0) < 0) {
        sl_cfg_err(L, v->line, "'%s' must be host:port (port 0..65535) or \"off\", got '%s'",
                   k->name, sl_cfg_q(L, v->null ? "" : v->raw));
        return -1;
    }
    return sl_cfg_set_copy(L, base, k->off, v->s, v->line);
}

static int set_fwd_ack(struct sl_cfg_loader *L, const struct sl_cfg_key *k, void *base,
                       const struct sl_cfg_val *v)
{
    struct sl_forward_input_cfg *fc = &((struct sl_input_cfg *)base)->forward;
    if (!v->null && strcmp(v->s, "delivered") == 0) {
        fc->ack = SL_FWD_ACK_DELIVERED;
        return 0;
    }
    if (!v->null && strcmp(v->s, "stored") == 0) {
        fc->ack = SL_FWD_ACK_STORED;
        return 0;
    }
    sl_cfg_err(L, v->line, "invalid value '%s' for '%s' (valid: delivered, stored)",
               sl_cfg_q(L, v->null ? "" : v->raw), k->name);
    return -1;
}

static const struct sl_cfg_key forward_keys[] = {
    {.name = "type",
     .type = SL_VT_TYPE,
     .required = true,
     .doc_type = "forward",
     .doc = "Selects this input: Fluentd Forward protocol v1 server (TCP, plus UDP heartbeat)."},
    {.name = "name",
     .type = SL_VT_STRING,
     .off = IN(name),
     .doc_def = "forward.<index>",
     .check = sl_cfg_check_name,
     .doc = "Name in metrics and logs; index is the position in inputs."},
    {.name = "listen",
     .owns_str = true,
     .type = SL_VT_CUSTOM,
     .off = FWD(listen),
     .def = "0.0.0.0:24224",
     .doc_type = "host:port",
     .set = set_fwd_listen,
     .doc = "TCP address to accept Forward connections on; UDP heartbeats are answered on the "
            "same port. Port 0 picks a free port (logged as \"listening on HOST:PORT\"). \"off\" "
            "(only with unix_path): no TCP listener."},
    {.name = "unix_path",
     .type = SL_VT_STRING,
     .off = FWD(unix_path),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(none)",
     .doc = "Also accept Forward connections on this Unix stream socket (same protocol, acks, "
            "handshake and backpressure; no TLS). A stale socket file is replaced at start; the "
            "file is removed at exit."},
    {.name = "unix_mode",
     .type = SL_VT_CUSTOM,
     .off = FWD(unix_mode),
     .def = "0660",
     .doc_type = "octal",
     .set = set_unix_mode,
     .doc = "Permission bits of the unix_path socket file."},
    {.name = "tls",
     .type = SL_VT_BOOL,
     .off = FWD(tls),
     .def = "false",
     .doc = "The TCP listener speaks TLS (needs tls_cert_file and tls_key_file). A failed TLS "
            "handshake closes only that connection (logged with the OpenSSL reason, counted in "
            "sluice_forward_tls_handshake_failures_total)."},
    {.name = "tls_cert_file",
     .type = SL_VT_STRING,
     .off = FWD(tls_cert_file),
     .nullable = true,
     .check = sl_cfg_check_pem_file,
     .doc_def = "(none)",
     .doc = "PEM server certificate (chain) for tls."},
    {.name = "tls_key_file",
     .type = SL_VT_STRING,
     .off = FWD(tls_key_file),
     .nullable = true,
     .check = sl_cfg_check_pem_file,
     .doc_def = "(none)",
     .doc = "PEM private key of tls_cert_file; start-up fails if they do not match."},
    {.name = "tls_ca_file",
     .type = SL_VT_STRING,
     .off = FWD(tls_ca_file),
     .nullable = true,
     .check = sl_cfg_check_pem_file,
     .doc_def = "(none)",
     .doc = "PEM CAs that client certificates must chain to (with tls_verify_client)."},
    {.name = "tls_verify_client",
     .type = SL_VT_BOOL,
     .off = FWD(tls_verify_client),
     .def = "false",
     .doc = "Mutual TLS: a client without a certificate signed by tls_ca_file is refused."},
    {.name = "tls_min_version",
     .type = SL_VT_ENUM,
     .off = FWD(tls_min_version),
     .def = "1.2",
     .values = sl_cfg_tls_version_values,
     .doc = "Oldest TLS version accepted."},
    {.name = "tag_prefix",
     .type = SL_VT_STRING,
     .off = FWD(tag_prefix),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(none)",
     .doc = "Prepended as \"<prefix>.\" to every incoming tag before routing."},
    {.name = "ack",
     .type = SL_VT_CUSTOM,
     .off = FWD(ack),
     .def = "delivered",
     .doc_type = "delivered|stored",
     .set = set_fwd_ack,
     .doc = "When a request's chunk is acknowledged: delivered = once every event of it and of "
            "the connection's earlier chunks is delivered or durably dead-lettered; stored = "
            "once the request is fsync'd under service.storage_path/<name>/ (replayed after a "
            "restart, deleted once its events are finished; see docs/guarantees.md)."},
    {.name = "shared_key",
     .type = SL_VT_STRING,
     .off = FWD(shared_key),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(no handshake)",
     .doc = "Enables the HELO/PING/PONG handshake with this key; use ${env:NAME} or ${file:PATH}."},
    {.name = "users",
     .type = SL_VT_KVMAP,
     .off = FWD(users),
     .count_off = FWD(n_users),
     .check_key = check_user_key,
     .doc_def = "{}",
     .doc = "User authentication in the handshake (needs shared_key): username: password; a "
            "PING whose user or password digest does not match gets PONG false "
            "\"username/password mismatch\" and is closed. Use ${env:NAME} or ${file:PATH}."},
    {.name = "self_hostname",
     .type = SL_VT_STRING,
     .off = FWD(self_hostname),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(host name)",
     .doc = "Server host name sent in PONG (part of its digest)."},
    {.name = "handshake_timeout",
     .type = SL_VT_DURATION,
     .off = FWD(handshake_timeout_ms),
     .def = "10s",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "A client that has not sent a valid PING this long after HELO is disconnected."},
    {.name = "max_frame_size",
     .type = SL_VT_SIZE,
     .off = FWD(max_frame_size),
     .def = "6MiB",
     .min_value = 1024,
     .min_text = "1KiB",
     .doc = "Largest request, and largest decompressed gzip payload; a larger one is a protocol "
            "error that closes that connection without an ack. At most 3/8 of "
            "service.memory_limit (the pipeline's share, where a request is held whole)."},
    {.name = "max_connections",
     .type = SL_VT_UINT32,
     .off = FWD(max_connections),
     .def = "1024",
     .min = 1,
     .max = 65536,
     .doc = "Open connections; further ones are accepted and closed at once (logged)."},
    {.name = "idle_timeout",
     .type = SL_VT_DURATION,
     .off = FWD(idle_timeout_ms),
     .def = "300s",
     .doc = "A connection that sent nothing and awaits no ack this long is closed; 0 = never."},
    {.name = "id_from_kafka_fields",
     .type = SL_VT_BOOL,
     .off = FWD(id_from_kafka_fields),
     .def = "false",
     .doc = "Take kafka_topic/kafka_partition/kafka_offset from each record as its Kafka "
            "coordinates (ids)."},
    SL_CFG_EDIT_KEYS(IN),
};

_Static_assert(sizeof(forward_keys) / sizeof(forward_keys[0]) <= SL_CFG_SECTION_KEYS_MAX,
               "raise SL_CFG_SECTION_KEYS_MAX");
static const struct sl_cfg_section forward_section = {
    .where = "in forward input",
    .keys = forward_keys,
    .n_keys = sizeof(forward_keys) / sizeof(forward_keys[0]),
};

/* The forward input's listeners, TLS files and users. */
static void check_fwd_in_transport(struct sl_cfg_loader *L, const struct sl_input_cfg *in)
{
    const struct sl_forward_input_cfg *fc = &in->forward;
    if (!fc->listen && !fc->unix_path)
        sl_cfg_err(L, in->line, "'listen: off' needs 'unix_path' (the input would accept nothing)");
    if (fc->tls && (!fc->tls_cert_file || !fc->tls_key_file))
        sl_cfg_err(L, in->line, "'tls: true' needs 'tls_cert_file' and 'tls_key_file'");
    if (fc->tls && !fc->listen)
        sl_cfg_err(L, in->line,
                   "'tls: true' needs a TCP listener ('listen'); unix_path is never TLS");
    if (!fc->tls &&
        (fc->tls_cert_file || fc->tls_key_file || fc->tls_ca_file || fc->tls_verify_client))
        sl_cfg_err(L, in->line, "tls_* keys are set but 'tls' is false");
    if (fc->tls_verify_client && !fc->tls_ca_file)
        sl_cfg_err(L, in->line, "'tls_verify_client: true' needs 'tls_ca_file'");
    if (fc->n_users && !fc->shared_key)
        sl_cfg_err(L, in->line,
                   "'users' needs 'shared_key' (user authentication is part of the handshake)");
}

/* Rules of the forward input that read the service section or the budget. */
static void check(struct sl_cfg_loader *L, const struct sl_config *cfg, void *item)
{
    const struct sl_input_cfg *in = item;
    check_fwd_in_transport(L, in);
    if (!sl_cfg_service_clean(L)) return;
    const struct sl_service_cfg *svc = &cfg->service;
    if (in->forward.ack == SL_FWD_ACK_STORED) {
        /* Cheap checks only; what can change (permissions, space) is a runtime error. Said
         * once, for the first input that stores. */
        bool first = true;
        for (const struct sl_input_cfg *o = cfg->inputs; o < in; o++)
            if (o->plugin == in->plugin && o->forward.ack == SL_FWD_ACK_STORED) first = false;
        struct stat st;
        if (first && svc->storage_path && stat(svc->storage_path, &st) == 0 &&
            !S_ISDIR(st.st_mode)) {
            int line = sl_cfg_line(L, svc, "storage_path");
            sl_cfg_err(L, line ? line : in->line,
                       "'storage_path' %s exists and is not a directory (needed by 'ack: "
                       "stored')",
                       sl_cfg_q(L, svc->storage_path));
        }
        if (in->forward.max_frame_size > svc->storage_max_size)
            sl_cfg_err(L, in->line,
                       "'max_frame_size' (%llu) is larger than service.storage_max_size (%llu): "
                       "such a request could never be stored",
                       (unsigned long long)in->forward.max_frame_size,
                       (unsigned long long)svc->storage_max_size);
    }
    /* A frame is held whole (and its gzip payload inflated whole) in the pipeline's share of
     * the budget before any of it can go on: a larger one could never be taken in, and its
     * client would resend it forever. */
    if (in->forward.max_frame_size > SL_PIPELINE_SHARE(svc->memory_limit))
        sl_cfg_err(L, in->line,
                   "'max_frame_size' (%llu) is larger than the pipeline's share of "
                   "service.memory_limit (3/8 of %llu = %llu): such a request could never be "
                   "taken in; lower max_frame_size or raise memory_limit to at least %llu",
                   (unsigned long long)in->forward.max_frame_size,
                   (unsigned long long)svc->memory_limit,
                   (unsigned long long)SL_PIPELINE_SHARE(svc->memory_limit),
                   (unsigned long long)((in->forward.max_frame_size * 8 + 2) / 3));
}

/* Its memory is the pipeline's budget: it has no prefetch of its own. */
static void *create(struct sl_pipeline *p, const struct sl_input_cfg *cfg, uint64_t prefetch,
                    char *err, size_t errlen)
{
    (void)prefetch;
    return sl_fwd_in_new(p, cfg, err, errlen);
}

const struct sl_plugin sl_plugin_in_forward = {
    .kind = SL_PLUGIN_INPUT,
    .type = "forward",
    .type_id = SL_INPUT_FORWARD,
    .title = "Forward input",
    .section = &forward_section,
    .doc_notes =
        "Each event's tag is the request's tag (with `tag_prefix`), its time the entry's time (0\n"
        "means the time of arrival, as in fluentd) and its record the entry's map as one JSON\n"
        "object. Events carry a source id `<chunk>-<index>` (the request's `chunk` option and the\n"
        "entry's position), which the Elasticsearch output's `id: kafka` uses as `_id`, so a "
        "chunk\n"
        "resent after a lost ack overwrites instead of duplicating. Without a `chunk` the id is\n"
        "unique per process, connection and request (no ack is expected then either). Malformed\n"
        "requests close only their connection, without an ack; malformed entries are\n"
        "dead-lettered with reason `invalid event`. `max_frame_size` must not exceed\n"
        "`service.memory_limit`.\n",
    .check = check,
    .create_input = create,
    .in_ops = &sl_fwd_in_ops,
};
