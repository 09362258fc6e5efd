/* The Elasticsearch output: NDJSON _bulk requests over libcurl's multi interface on the loop.
 * See the overview at the top of elasticsearch.c. */
#ifndef SL_OUT_ELASTICSEARCH_H
#define SL_OUT_ELASTICSEARCH_H

#include "core/pipeline.h"

/* Creates the output and registers it in p->outputs. Returns 0 or -1 with err. */
int sl_es_output_new(struct sl_pipeline *p, const struct sl_output_cfg *cfg, char *err,
                     size_t errlen);

#endif
