/* The Kafka input: a librdkafka consumer-group member driven by the loop. See kafka.c. */
#ifndef SL_IN_KAFKA_H
#define SL_IN_KAFKA_H

#include "core/pipeline.h"

struct sl_kafka_in;

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

#endif
