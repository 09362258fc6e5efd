/* The Elasticsearch output: NDJSON _bulk requests over libcurl's multi interface on the loop.
 * See the overview at the top of elasticsearch.c. */
#ifndef SL_OUT_ELASTICSEARCH_H
#define SL_OUT_ELASTICSEARCH_H

#include "core/pipeline.h"

/* Creates the output and registers it in p->outputs. Returns 0 or -1 with err. */
int sl_es_output_new(struct sl_pipeline *p, const struct sl_output_cfg *cfg, char *err,
                     size_t errlen);

/* What the output found at its cluster at start-up (GET /), for /metrics and /status:
 * distribution "elasticsearch", "opensearch", another one's own name, or "unknown" when the
 * answer did not say; version its version.number ("" when unknown). Both stay valid until the
 * next loop callback. Returns false for another type of output, and until the cluster answered. */
bool sl_es_output_cluster(const struct sl_output *out, const char **distribution,
                          const char **version);

#endif
