/* The Forward input: a Fluentd Forward protocol v1 server on the loop. See forward.c. */
#ifndef SL_IN_FORWARD_H
#define SL_IN_FORWARD_H

#include "core/pipeline.h"

struct sl_fwd_in;

extern const struct sl_input_ops sl_fwd_in_ops;

/* Binds the TCP listener and the UDP heartbeat socket (same port), and the Unix listener when
 * unix_path is set, and starts accepting. */
struct sl_fwd_in *sl_fwd_in_new(struct sl_pipeline *p, const struct sl_input_cfg *cfg, char *err,
                                size_t errlen);
/* Stops accepting and reading; open connections stay so their acks can still be written. */
void sl_fwd_in_stop(struct sl_fwd_in *f);
/* Closes every connection (their in-flight events are no longer acked) and frees everything. */
void sl_fwd_in_close(struct sl_fwd_in *f);
const struct sl_counters *sl_fwd_in_counters(const struct sl_fwd_in *f);
const char *sl_fwd_in_name(const struct sl_fwd_in *f);
void sl_fwd_in_log_stats(struct sl_fwd_in *f);
/* The bound TCP port (useful when listen asked for port 0); 0 with listen: off. */
int sl_fwd_in_port(const struct sl_fwd_in *f);

struct sl_fwd_in_info {
    bool paused;
    uint64_t connections, connections_total, connections_rejected, protocol_errors, bytes_read,
        frames, acks_sent, handshake_failures, tls_handshake_failures, heartbeats, paused_ms,
        partial_closed, stalls, starved_waits;
    /* ack: stored (0 otherwise) */
    uint64_t storage_errors, storage_full, stored_requests, stored_bytes, storage_corrupt,
        storage_torn_bytes;
};
void sl_fwd_in_info(const struct sl_fwd_in *f, struct sl_fwd_in_info *out);

#endif
