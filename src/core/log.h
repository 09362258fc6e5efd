/* Logging through one rate limiter: the same (component, kind) is written at most once per
 * interval; the next line written for it carries "suppressed N". Loss-relevant events are also
 * counted in metrics by their callers; a log line is never the only record of a loss. */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <stdint.h>

#include "core/config.h"

void sl_log_init(enum sl_log_level level, uint64_t interval_ms);
/* Text ("TIME LEVEL COMPONENT: message") or one JSON object per line. */
void sl_log_set_format(enum sl_log_format format);
/* Appends to path instead of stderr (NULL: stderr). Called again (SIGHUP) it reopens the file,
 * so rotation by rename works. Returns 0, or -1 with errno (logging then stays where it was). */
int sl_log_open(const char *path);
/* kind names the error class ("bulk_retry", "parse_error"...); NULL means never rate-limited
 * (use for start-up, shutdown and one-off lines only). */
void sl_log(enum sl_log_level level, const char *component, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

uint64_t sl_now_ms(void); /* CLOCK_MONOTONIC */
int64_t sl_wall_ns(void); /* CLOCK_REALTIME */

#define SL_ERROR(c, k, ...) sl_log(SL_LOG_ERROR, c, k, __VA_ARGS__)
#define SL_WARN(c, k, ...) sl_log(SL_LOG_WARN, c, k, __VA_ARGS__)
#define SL_INFO(c, ...) sl_log(SL_LOG_INFO, c, NULL, __VA_ARGS__)
#define SL_DEBUG(c, ...) sl_log(SL_LOG_DEBUG, c, NULL, __VA_ARGS__)

#endif
