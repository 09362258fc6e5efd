/* Field edits (remove_keys, rename_keys, add_fields, include_tag_key) on an input, before
 * routing, or on an output, before its copy of the record.
 *
 * The plan is compiled once (src/codec/json_edit.h); per record only the add_fields values are
 * rendered (${topic} ${partition} ${offset} ${tag}) and the record is rewritten into a buffer of
 * the edits' own, charged to the memory budget. Members the plan does not name are copied byte
 * for byte; add-only plans make one pass over the top level. */
#ifndef SL_EDITS_H
#define SL_EDITS_H

#include <stdbool.h>

#include "codec/json_edit.h"
#include "core/budget.h"
#include "core/config.h"

struct sl_event;
struct sl_json_scan;
struct sl_pipeline;

/* Compiles cfg into a plan (the config loader uses this to refuse conflicting edits). Returns
 * NULL with a reason in why when the edits conflict; *empty is set when cfg has no edit (the
 * plan is then NULL without an error). */
struct sl_jedit *sl_edits_plan(const struct sl_edit_cfg *cfg, bool *empty, char *why,
                               size_t whylen);

struct sl_edits;

/* NULL (and no error) when cfg has no edit. */
struct sl_edits *sl_edits_new(const struct sl_edit_cfg *cfg, struct sl_budget *budget, char *err,
                              size_t errlen);
void sl_edits_free(struct sl_edits *e);

/* Rewrites ev->payload (a JSON object) and rescans it with the pipeline's paths into scan, which
 * ev->scan then points to. The new payload lives in e until the next call. Skipped edits are
 * counted in the source's counters (edit_skipped). */
void sl_edits_apply(struct sl_edits *e, const struct sl_pipeline *p, struct sl_event *ev,
                    struct sl_json_scan *scan);
/* After the record was handed on: gives back a buffer a huge record grew. */
void sl_edits_done(struct sl_edits *e);

#endif
