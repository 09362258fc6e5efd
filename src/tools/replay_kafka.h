/* Replay a dead-letter store to a Kafka topic. See replay_kafka.c. */
#ifndef SL_REPLAY_KAFKA_H
#define SL_REPLAY_KAFKA_H

#include <stdio.h>

/* props: "key=value" librdkafka properties (TLS/SASL). Returns the process exit code: 0 when every
 * file was sent, acknowledged and moved; 1 otherwise (failed files stay); 2 for bad arguments. */
int sl_replay_to_kafka(const char *brokers, const char *topic, const char *dir,
                       const char *const *props, int n_props, FILE *out, FILE *err);

#endif
