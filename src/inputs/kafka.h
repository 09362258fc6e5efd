/* The Kafka input: a librdkafka consumer-group member driven by the loop. See kafka.c. */
#ifndef SL_IN_KAFKA_H
#define SL_IN_KAFKA_H

#include "core/pipeline.h"

struct sl_kafka_in;

extern const struct sl_input_ops sl_kafka_in_ops;

/* prefetch_bytes: the share of the memory budget librdkafka's fetch queue may use. */
struct sl_kafka_in *sl_kafka_in_new(struct sl_pipeline *p, const struct sl_input_cfg *cfg,
                                    uint64_t prefetch_bytes, char *err, size_t errlen);
/* Stops taking records (pauses everything) so the pipeline can drain. */
void sl_kafka_in_stop(struct sl_kafka_in *k);
/* Stores final offsets, leaves the group (committing them) and frees everything. */
void sl_kafka_in_close(struct sl_kafka_in *k);
const struct sl_counters *sl_kafka_in_counters(const struct sl_kafka_in *k);
const char *sl_kafka_in_name(const struct sl_kafka_in *k);
void sl_kafka_in_log_stats(struct sl_kafka_in *k);

/* One partition this input holds now, for metrics and /status. */
struct sl_kafka_partition_info {
    const char *topic;
    int32_t partition;
    int64_t committed;       /* confirmed by the group coordinator; -1 before the first commit */
    int64_t stored;          /* handed to librdkafka for the next commit */
    int64_t high_watermark;  /* as seen in the last fetch response; -1 if unknown */
    int64_t lag;             /* high_watermark - committed (or - low watermark); -1 if unknown */
    uint32_t pending;        /* records consumed and not finished */
    bool paused;             /* with the input, or held on its own */
    bool held;               /* paused on its own: its tracker reached the share (kafka.c) */
    int64_t waiting_offset;  /* the oldest unfinished record, which the commit waits on; -1 */
    uint64_t waiting_ms;     /* how long that record has been the oldest */
    const char *waiting_why; /* why it is not finished (an output's last retry), or NULL */
    int64_t uncommitted;     /* records consumed past the committed offset: re-read on restart */
};
typedef void (*sl_kafka_partition_cb)(const struct sl_kafka_partition_info *p, void *ctx);
void sl_kafka_in_partitions(struct sl_kafka_in *k, sl_kafka_partition_cb cb, void *ctx);

struct sl_kafka_in_info {
    bool paused;
    uint64_t paused_ms, pauses, rebalances, commits, commit_failures, time_parse_errors,
        stall_recoveries, partition_pauses, client_errors, holds, no_timestamp;
    bool brokers_down;
    int assigned;
};
void sl_kafka_in_info(const struct sl_kafka_in *k, struct sl_kafka_in_info *out);

#endif
