/* The replay input: feeds dead-letter files back through the configured outputs after the cause
 * was fixed (`sluice dead-letter replay -c FILE [DIR]`). See replay.c. */
#ifndef SL_IN_REPLAY_H
#define SL_IN_REPLAY_H

#include <stdbool.h>

#include "core/pipeline.h"

extern const struct sl_input_ops sl_replay_in_ops;

/* files: the store's files listed before the pipeline opened its own new file (a replay that
 * fails again is dead-lettered into that new file, never into one being read). Takes ownership
 * of files. */
struct sl_replay_in *sl_replay_in_new(struct sl_pipeline *p, const char *dir, char **files,
                                      int n_files, char *err, size_t errlen);
/* Every file read to its end and every record finished (delivered or dead-lettered again). */
bool sl_replay_in_done(const struct sl_replay_in *r);
/* Lines that could not be parsed (they stay in their file, which is then not moved). */
unsigned long long sl_replay_in_bad_lines(const struct sl_replay_in *r);

#endif
