/* The Forward output: PackedForward requests to Fluentd Forward servers (fluentd, Fluent Bit, a
 * sluice forward input) over non-blocking TCP on the loop. See the overview at the top of
 * forward.c. */
#ifndef SL_OUT_FORWARD_H
#define SL_OUT_FORWARD_H

#include "core/pipeline.h"

/* Creates the output and registers it in p->outputs. Returns 0 or -1 with err. */
int sl_fwd_output_new(struct sl_pipeline *p, const struct sl_output_cfg *cfg, char *err,
                      size_t errlen);

/* One server of a Forward output, for /metrics. */
struct sl_fwd_server_state {
    const char *addr;          /* host:port as configured */
    bool unhealthy;            /* left out after max_ack_timeouts ack timeouts in a row */
    const uint64_t *failovers; /* times it was marked unhealthy (valid while the output lives) */
};

/* Server i of a Forward output; false past the last one, or when out is another output type. */
bool sl_fwd_output_server(const struct sl_output *out, size_t i, struct sl_fwd_server_state *st);

#endif
