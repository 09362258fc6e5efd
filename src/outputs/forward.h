/* The Forward output: PackedForward requests to Fluentd Forward servers (fluentd, Fluent Bit, a
 * sluice forward input) over non-blocking TCP on the loop. See the overview at the top of
 * forward.c. */
#ifndef SL_OUT_FORWARD_H
#define SL_OUT_FORWARD_H

#include "core/pipeline.h"

/* Creates the output and registers it in p->outputs. Returns 0 or -1 with err. */
int sl_fwd_output_new(struct sl_pipeline *p, const struct sl_output_cfg *cfg, char *err,
                      size_t errlen);

#endif
