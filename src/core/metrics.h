/* Metrics: a small registry of counters, gauges and histograms, rendered for Prometheus (/metrics,
 * text exposition format 0.0.4) and as JSON (/status).
 *
 * A family has a name, help text, a type and up to SL_METRICS_MAX_LABELS label names. A series is
 * one combination of label values. Callers look a series up once, keep the returned pointer and
 * update it directly on the hot path (`(*received)++`): no locks, no atomics, no lookups. That is
 * sound because every update and every render happens on the loop thread (librdkafka's threads
 * only wake the loop; they never touch a metric).
 *
 * A series may also read its value from elsewhere at render time: bound to a uint64_t the
 * pipeline already maintains (struct sl_counters fields, budget.used), or computed by a callback
 * (RSS, in-flight). Binding avoids keeping two copies of a counter that could drift apart.
 *
 * Consistent snapshots: a render runs inside one loop callback (the HTTP handler), so no other
 * callback — no ack, no submit — can run between reading `received` and reading `delivered`.
 * Every value in one render therefore comes from the same instant of the pipeline, and an
 * identity that holds between callbacks (received = delivered + dead_lettered + dropped +
 * in_flight) holds within every scrape. Callbacks must only read state, never change it.
 *
 * Bounded memory: at most SL_METRICS_MAX_FAMILIES families; each family holds at most
 * max_series series (sl_metrics_new). A lookup that would create one more gets the family's
 * overflow series instead, whose label values are all "_overflow": updates are still counted
 * (sums over labels stay right) and the number of refused series is exported as
 * sluice_metrics_series_overflow_total{family="..."} (only for families that overflowed).
 *
 * Units follow Prometheus conventions: base units (seconds, bytes) in the name suffix, counters
 * end in _total (enforced). A family's scale multiplies stored integers at render time, so a
 * counter kept in milliseconds can be exported in seconds (scale 0.001).
 *
 * Non-goals: summaries, exemplars, timestamps on samples, OpenMetrics, threads. */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer that never grows past max. Once an append would exceed max the buffer
 * is marked failed and later appends do nothing, so a renderer can write unconditionally and
 * check once at the end. */
struct sl_buf {
    /* read-only */
    char *data; /* not NUL-terminated */
    size_t len;
    size_t cap;
    size_t max;
    bool failed; /* an append was refused (max reached or out of memory) */
};

void sl_buf_init(struct sl_buf *b, size_t max);
void sl_buf_free(struct sl_buf *b);  /* releases memory; the buffer can be reused after init */
void sl_buf_reset(struct sl_buf *b); /* len = 0, failed = false; keeps the memory */
int sl_buf_append(struct sl_buf *b, const void *p, size_t n); /* 0 or -1 (failed) */
int sl_buf_puts(struct sl_buf *b, const char *s);
int sl_buf_printf(struct sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string literal with quotes; len bytes (no NUL needed). */
int sl_buf_json_str(struct sl_buf *b, const char *s, size_t len);
/* v as a JSON number in its shortest round-tripping form; NaN and infinities become null. */
int sl_buf_json_num(struct sl_buf *b, double v);

enum sl_metric_type { SL_METRIC_COUNTER, SL_METRIC_GAUGE, SL_METRIC_HISTOGRAM };

#define SL_METRICS_MAX_FAMILIES 256
#define SL_METRICS_MAX_LABELS 8
#define SL_METRICS_MAX_BUCKETS 32
#define SL_METRICS_MAX_VALUE_LEN 256 /* longer label values are truncated */
#define SL_METRICS_DEFAULT_MAX_SERIES 4096

/* Latency buckets in seconds for request durations. */
extern const double sl_metrics_latency_buckets[];
extern const size_t sl_metrics_n_latency_buckets;

struct sl_metrics;
struct sl_metric_family;

struct sl_histogram {
    /* private: update only through sl_histogram_observe */
    const struct sl_metric_family *fam;
    uint64_t counts[SL_METRICS_MAX_BUCKETS + 1]; /* per bucket, not cumulative; last is +Inf */
    double sum;
    uint64_t count;
};

typedef double (*sl_metric_fn)(void *ctx);

/* max_series per family; 0 means SL_METRICS_DEFAULT_MAX_SERIES. NULL on out of memory. */
struct sl_metrics *sl_metrics_new(size_t max_series);
void sl_metrics_free(struct sl_metrics *reg); /* invalidates every pointer handed out */

/* Declares a family. labels: comma-separated label names ("input,reason"), or NULL / "" for
 * none. Returns NULL (with a reason in err) if the name or a label name is not a valid
 * Prometheus name, a counter name does not end in _total, the name is taken, or the registry is
 * full. Families render in declaration order, series in creation order. */
struct sl_metric_family *sl_metrics_counter(struct sl_metrics *reg, const char *name,
                                            const char *help, const char *labels, char *err,
                                            size_t errlen);
struct sl_metric_family *sl_metrics_gauge(struct sl_metrics *reg, const char *name,
                                          const char *help, const char *labels, char *err,
                                          size_t errlen);
/* bounds: strictly increasing, finite, at most SL_METRICS_MAX_BUCKETS (copied); +Inf is
 * implicit. */
struct sl_metric_family *sl_metrics_histogram(struct sl_metrics *reg, const char *name,
                                              const char *help, const char *labels,
                                              const double *bounds, size_t n_bounds, char *err,
                                              size_t errlen);
/* Rendered value = stored integer * scale (default 1). For counters and gauges kept in a
 * sub-unit, e.g. milliseconds exported as seconds. */
void sl_metric_family_set_scale(struct sl_metric_family *fam, double scale);

/* Series lookup. values has one entry per label name (NULL for a family without labels). The
 * first call creates the series at 0; later calls with the same values return the same pointer,
 * valid until sl_metric_remove of that series or sl_metrics_free. Never NULL: on overflow or out
 * of memory the overflow series is returned. Each asserts the family's type. */
uint64_t *sl_metric_counter(struct sl_metric_family *fam, const char *const *values);
int64_t *sl_metric_gauge(struct sl_metric_family *fam, const char *const *values);
struct sl_histogram *sl_metric_histogram(struct sl_metric_family *fam, const char *const *values);
void sl_histogram_observe(struct sl_histogram *h, double v);

/* Series whose value is read at render time. src must stay valid until the series is removed or
 * the registry freed. Counter or gauge families only. Returns 0, or -1 if the series exists
 * already or the family is full (nothing is bound then; the refusal is counted). */
int sl_metric_bind_u64(struct sl_metric_family *fam, const char *const *values,
                       const uint64_t *src);
int sl_metric_bind_fn(struct sl_metric_family *fam, const char *const *values, sl_metric_fn fn,
                      void *ctx);

/* Drops a series (e.g. a revoked partition); its pointer becomes invalid. No-op if absent. */
void sl_metric_remove(struct sl_metric_family *fam, const char *const *values);
/* Drops every series of the family (all its pointers become invalid). For families refreshed
 * from a listing just before each render, e.g. per-partition lag: clear, then set what exists. */
void sl_metric_family_clear(struct sl_metric_family *fam);

/* Appends the whole registry. Returns 0, or -1 if out grew past its max (output incomplete). */
int sl_metrics_render_prometheus(const struct sl_metrics *reg, struct sl_buf *out);
/* One JSON object: {"<family>":{"type":"counter","help":"..","series":[{"labels":{"k":"v"},
 * "value":N}]}, ...}; histogram series carry "buckets":{"<le>":cumulative,...,"+Inf":N},
 * "sum", "count" instead of "value". */
int sl_metrics_render_json(const struct sl_metrics *reg, struct sl_buf *out);

/* Gauge callback: resident set size of this process in bytes (VmRSS), or NaN if unreadable.
 * ctx unused. */
double sl_metrics_proc_rss_bytes(void *ctx);

#endif
