#include "core/metrics.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"

/* ---- sl_buf ---- */

void sl_buf_init(struct sl_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->failed = false;
}

void sl_buf_free(struct sl_buf *b)
{
    free(b->data);
    sl_buf_init(b, b->max);
}

void sl_buf_reset(struct sl_buf *b)
{
    b->len = 0;
    b->failed = false;
}

static int buf_reserve(struct sl_buf *b, size_t n)
{
    if (b->failed) return -1;
    if (n > b->max - b->len || b->len > b->max) {
        b->failed = true;
        return -1;
    }
    size_t need = b->len + n;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max) cap = b->max;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->failed = true;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

int sl_buf_append(struct sl_buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) < 0) return -1;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int sl_buf_puts(struct sl_buf *b, const char *s)
{
    return sl_buf_append(b, s, strlen(s));
}

int sl_buf_printf(struct sl_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return -1;
    }
    if ((size_t)n < sizeof small) return sl_buf_append(b, small, (size_t)n);
    /* Long output: format straight into the buffer, with room for vsnprintf's NUL. */
    if (buf_reserve(b, (size_t)n + 1) < 0) return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int sl_buf_json_str(struct sl_buf *b, const char *s, size_t len)
{
    /* label values are short: escape on the stack unless one is not */
    char small[512];
    char *tmp = 6 * len <= sizeof small ? small : malloc(6 * len);
    if (!tmp) return -1;
    size_t n = sl_json_escape(s, len, tmp);
    sl_buf_append(b, "\"", 1);
    sl_buf_append(b, tmp, n);
    if (tmp != small) free(tmp);
    return sl_buf_append(b, "\"", 1);
}

/* Shortest decimal that reads back as v, so 0.005 renders as "0.005", not 0.0050000000000000001.
 */
static void fmt_double(char out[40], double v)
{
    if (isnan(v)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    snprintf(out, 40, "%.15g", v);
    if (strtod(out, NULL) != v) snprintf(out, 40, "%.17g", v);
}

int sl_buf_json_num(struct sl_buf *b, double v)
{
    if (!isfinite(v)) return sl_buf_puts(b, "null");
    char tmp[40];
    fmt_double(tmp, v);
    return sl_buf_puts(b, tmp);
}

/* ---- registry ---- */

const double sl_metrics_latency_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                             1,     2.5,  5,     10,   30,  60};
const size_t sl_metrics_n_latency_buckets =
    sizeof sl_metrics_latency_buckets / sizeof sl_metrics_latency_buckets[0];

enum src_kind { SRC_OWN, SRC_U64, SRC_FN };

struct series {
    const char *values[SL_METRICS_MAX_LABELS]; /* point into the same allocation */
    uint64_t hash;
    enum src_kind kind;
    uint64_t u; /* counters */
    int64_t i;  /* gauges */
    const uint64_t *src;
    sl_metric_fn fn;
    void *ctx;
    struct sl_histogram *hist;
};

struct sl_metric_family {
    struct sl_metrics *reg;
    enum sl_metric_type type;
    char *name;
    char *help;
    size_t n_labels;
    char *labels[SL_METRICS_MAX_LABELS];
    double bounds[SL_METRICS_MAX_BUCKETS];
    size_t n_bounds;
    double scale;
    struct series **series;
    size_t n_series, cap_series;
    uint64_t n_refused;      /* series that could not be created (limit or out of memory) */
    struct series *overflow; /* the _overflow series once created; not counted against the cap */
};

struct sl_metrics {
    struct sl_metric_family *fams[SL_METRICS_MAX_FAMILIES];
    size_t n_fams;
    size_t max_series;
};

static const char *const overflow_values[SL_METRICS_MAX_LABELS] = {
    "_overflow", "_overflow", "_overflow", "_overflow",
    "_overflow", "_overflow", "_overflow", "_overflow"};

struct sl_metrics *sl_metrics_new(size_t max_series)
{
    struct sl_metrics *reg = calloc(1, sizeof *reg);
    if (!reg) return NULL;
    reg->max_series = max_series ? max_series : SL_METRICS_DEFAULT_MAX_SERIES;
    return reg;
}

static void series_free(struct series *s)
{
    if (!s) return;
    free(s->hist);
    free(s);
}

void sl_metrics_free(struct sl_metrics *reg)
{
    if (!reg) return;
    for (size_t f = 0; f < reg->n_fams; f++) {
        struct sl_metric_family *fam = reg->fams[f];
        for (size_t i = 0; i < fam->n_series; i++)
            series_free(fam->series[i]);
        free(fam->series);
        for (size_t l = 0; l < fam->n_labels; l++)
            free(fam->labels[l]);
        free(fam->name);
        free(fam->help);
        free(fam);
    }
    free(reg);
}

static bool valid_metric_name(const char *s)
{
    if (!*s) return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(p > s && c >= '0' && c <= '9')) return false;
    }
    return true;
}

static bool valid_label_name(const char *s, size_t n)
{
    if (n == 0) return false;
    if (n >= 2 && s[0] == '_' && s[1] == '_') return false; /* reserved for Prometheus */
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        if (err && errlen) snprintf(err, errlen, __VA_ARGS__);                                     \
        goto fail;                                                                                 \
    } while (0)

static struct sl_metric_family *family_new(struct sl_metrics *reg, enum sl_metric_type type,
                                           const char *name, const char *help, const char *labels,
                                           char *err, size_t errlen)
{
    struct sl_metric_family *fam = calloc(1, sizeof *fam);
    if (!fam) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    fam->reg = reg;
    fam->type = type;
    fam->scale = 1;
    if (reg->n_fams == SL_METRICS_MAX_FAMILIES) FAIL("%s: too many metric families", name);
    if (!valid_metric_name(name)) FAIL("%s: not a valid metric name", name);
    if (type == SL_METRIC_COUNTER && !ends_with(name, "_total"))
        FAIL("%s: counter names end in _total", name);
    for (size_t f = 0; f < reg->n_fams; f++)
        if (strcmp(reg->fams[f]->name, name) == 0) FAIL("%s: declared twice", name);
    const char *p = labels && *labels ? labels : NULL;
    while (p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (!valid_label_name(p, n)) FAIL("%s: label \"%.*s\" is not valid", name, (int)n, p);
        if (type == SL_METRIC_HISTOGRAM && n == 2 && memcmp(p, "le", 2) == 0)
            FAIL("%s: label le is reserved for buckets", name);
        if (fam->n_labels == SL_METRICS_MAX_LABELS) FAIL("%s: too many labels", name);
        for (size_t l = 0; l < fam->n_labels; l++)
            if (strlen(fam->labels[l]) == n && memcmp(fam->labels[l], p, n) == 0)
                FAIL("%s: label %.*s twice", name, (int)n, p);
        fam->labels[fam->n_labels] = strndup(p, n);
        if (!fam->labels[fam->n_labels]) FAIL("out of memory");
        fam->n_labels++;
        p = comma ? comma + 1 : NULL;
    }
    fam->name = strdup(name);
    fam->help = strdup(help ? help : "");
    if (!fam->name || !fam->help) FAIL("out of memory");
    return fam;
fail:
    for (size_t l = 0; l < fam->n_labels; l++)
        free(fam->labels[l]);
    free(fam->name);
    free(fam->help);
    free(fam);
    return NULL;
}

static struct sl_metric_family *family_add(struct sl_metrics *reg, struct sl_metric_family *fam)
{
    if (fam) reg->fams[reg->n_fams++] = fam;
    return fam;
}

struct sl_metric_family *sl_metrics_counter(struct sl_metrics *reg, const char *name,
                                            const char *help, const char *labels, char *err,
                                            size_t errlen)
{
    return family_add(reg, family_new(reg, SL_METRIC_COUNTER, name, help, labels, err, errlen));
}

struct sl_metric_family *sl_metrics_gauge(struct sl_metrics *reg, const char *name,
                                          const char *help, const char *labels, char *err,
                                          size_t errlen)
{
    return family_add(reg, family_new(reg, SL_METRIC_GAUGE, name, help, labels, err, errlen));
}

struct sl_metric_family *sl_metrics_histogram(struct sl_metrics *reg, const char *name,
                                              const char *help, const char *labels,
                                              const double *bounds, size_t n_bounds, char *err,
                                              size_t errlen)
{
    if (n_bounds > SL_METRICS_MAX_BUCKETS) {
        if (err && errlen) snprintf(err, errlen, "%s: too many buckets", name);
        return NULL;
    }
    for (size_t i = 0; i < n_bounds; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
            if (err && errlen) snprintf(err, errlen, "%s: bucket bounds must increase", name);
            return NULL;
        }
    }
    struct sl_metric_family *fam =
        family_new(reg, SL_METRIC_HISTOGRAM, name, help, labels, err, errlen);
    if (!fam) return NULL;
    memcpy(fam->bounds, bounds, n_bounds * sizeof *bounds);
    fam->n_bounds = n_bounds;
    return family_add(reg, fam);
}

void sl_metric_family_set_scale(struct sl_metric_family *fam, double scale)
{
    fam->scale = scale;
}

/* Bytes of a label value that are kept: at most SL_METRICS_MAX_VALUE_LEN, cut at a UTF-8
 * character boundary so the exposition stays valid UTF-8. */
static size_t value_len(const char *v)
{
    size_t n = strnlen(v, SL_METRICS_MAX_VALUE_LEN + 1);
    if (n <= SL_METRICS_MAX_VALUE_LEN) return n;
    n = SL_METRICS_MAX_VALUE_LEN;
    while (n > 0 && ((unsigned char)v[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static uint64_t values_hash(size_t n, const char *const *values)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t l = 0; l < n; l++) {
        size_t len = value_len(values[l]);
        for (size_t i = 0; i < len; i++)
            h = (h ^ (unsigned char)values[l][i]) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull; /* separator: ("ab","") differs from ("a","b") */
    }
    return h;
}

static bool values_equal(const struct series *s, size_t n, const char *const *values)
{
    for (size_t l = 0; l < n; l++) {
        size_t len = value_len(values[l]);
        if (strlen(s->values[l]) != len || memcmp(s->values[l], values[l], len) != 0) return false;
    }
    return true;
}

static struct series *series_find(const struct sl_metric_family *fam, const char *const *values,
                                  uint64_t h, size_t *index)
{
    for (size_t i = 0; i < fam->n_series; i++) {
        struct series *s = fam->series[i];
        if (s->hash == h && values_equal(s, fam->n_labels, values)) {
            if (index) *index = i;
            return s;
        }
    }
    return NULL;
}

/* Creates the series without checking the limit; NULL on out of memory. */
static struct series *series_create(struct sl_metric_family *fam, const char *const *values,
                                    uint64_t h)
{
    if (fam->n_series == fam->cap_series) {
        size_t cap = fam->cap_series ? fam->cap_series * 2 : 8;
        struct series **a = realloc(fam->series, cap * sizeof *a);
        if (!a) return NULL;
        fam->series = a;
        fam->cap_series = cap;
    }
    size_t strbytes = 0;
    for (size_t l = 0; l < fam->n_labels; l++)
        strbytes += value_len(values[l]) + 1;
    struct series *s = calloc(1, sizeof *s + strbytes);
    if (!s) return NULL;
    if (fam->type == SL_METRIC_HISTOGRAM) {
        s->hist = calloc(1, sizeof *s->hist);
        if (!s->hist) {
            free(s);
            return NULL;
        }
        s->hist->fam = fam;
    }
    char *p = (char *)(s + 1);
    for (size_t l = 0; l < fam->n_labels; l++) {
        size_t len = value_len(values[l]);
        memcpy(p, values[l], len);
        p[len] = '\0';
        s->values[l] = p;
        p += len + 1;
    }
    s->hash = h;
    fam->series[fam->n_series++] = s;
    return s;
}

/* The family's catch-all series; created past the limit (it is the one series allowed beyond
 * it). NULL only when memory is exhausted. */
static struct series *overflow_series(struct sl_metric_family *fam)
{
    if (fam->overflow) return fam->overflow;
    uint64_t h = values_hash(fam->n_labels, overflow_values);
    struct series *s = series_find(fam, overflow_values, h, NULL);
    fam->overflow = s ? s : series_create(fam, overflow_values, h);
    return fam->overflow;
}

/* Finds or creates a series; *created tells which. On limit or out of memory returns the
 * overflow series (created = false) and counts the refusal. */
static struct series *series_get(struct sl_metric_family *fam, const char *const *values,
                                 bool *created)
{
    static const char *const none[1] = {""};
    if (fam->n_labels == 0) values = none;
    uint64_t h = values_hash(fam->n_labels, values);
    *created = false;
    struct series *s = series_find(fam, values, h, NULL);
    if (s) return s;
    if (fam->n_series - (fam->overflow != NULL) < fam->reg->max_series) {
        s = series_create(fam, values, h);
        if (s) {
            *created = true;
            return s;
        }
    }
    fam->n_refused++;
    return overflow_series(fam);
}

/* Last resort when even the overflow series cannot be allocated: updates land here and are lost
 * to the exposition, but the refusal is counted. Never rendered. */
static uint64_t sink_u64;
static int64_t sink_i64;
static struct sl_histogram sink_hist;

uint64_t *sl_metric_counter(struct sl_metric_family *fam, const char *const *values)
{
    assert(fam->type == SL_METRIC_COUNTER);
    bool created;
    struct series *s = series_get(fam, values, &created);
    return s ? &s->u : &sink_u64;
}

int64_t *sl_metric_gauge(struct sl_metric_family *fam, const char *const *values)
{
    assert(fam->type == SL_METRIC_GAUGE);
    bool created;
    struct series *s = series_get(fam, values, &created);
    return s ? &s->i : &sink_i64;
}

struct sl_histogram *sl_metric_histogram(struct sl_metric_family *fam, const char *const *values)
{
    assert(fam->type == SL_METRIC_HISTOGRAM);
    bool created;
    struct series *s = series_get(fam, values, &created);
    if (s) return s->hist;
    sink_hist.fam = fam;
    return &sink_hist;
}

void sl_histogram_observe(struct sl_histogram *h, double v)
{
    const struct sl_metric_family *fam = h->fam;
    size_t b = 0;
    while (b < fam->n_bounds && !(v <= fam->bounds[b]))
        b++;
    h->counts[b]++;
    h->sum += v;
    h->count++;
}

static struct series *bind_series(struct sl_metric_family *fam, const char *const *values)
{
    assert(fam->type != SL_METRIC_HISTOGRAM);
    bool created;
    struct series *s = series_get(fam, values, &created);
    return created ? s : NULL;
}

int sl_metric_bind_u64(struct sl_metric_family *fam, const char *const *values, const uint64_t *src)
{
    struct series *s = bind_series(fam, values);
    if (!s) return -1;
    s->kind = SRC_U64;
    s->src = src;
    return 0;
}

int sl_metric_bind_fn(struct sl_metric_family *fam, const char *const *values, sl_metric_fn fn,
                      void *ctx)
{
    struct series *s = bind_series(fam, values);
    if (!s) return -1;
    s->kind = SRC_FN;
    s->fn = fn;
    s->ctx = ctx;
    return 0;
}

void sl_metric_remove(struct sl_metric_family *fam, const char *const *values)
{
    static const char *const none[1] = {""};
    if (fam->n_labels == 0) values = none;
    size_t i;
    struct series *s = series_find(fam, values, values_hash(fam->n_labels, values), &i);
    if (!s) return;
    if (s == fam->overflow) fam->overflow = NULL;
    series_free(s);
    memmove(fam->series + i, fam->series + i + 1, (fam->n_series - i - 1) * sizeof *fam->series);
    fam->n_series--;
}

void sl_metric_family_clear(struct sl_metric_family *fam)
{
    for (size_t i = 0; i < fam->n_series; i++)
        series_free(fam->series[i]);
    fam->n_series = 0;
    fam->overflow = NULL;
}

/* ---- rendering ---- */

/* The sample value of a counter or gauge series, formatted. Integers stay exact when unscaled. */
static void series_value(const struct sl_metric_family *fam, const struct series *s, char out[40])
{
    double d;
    switch (s->kind) {
    case SRC_FN:
        fmt_double(out, s->fn(s->ctx));
        return;
    case SRC_U64:
        if (fam->scale == 1) {
            snprintf(out, 40, "%" PRIu64, *s->src);
            return;
        }
        d = (double)*s->src * fam->scale;
        break;
    default:
        if (fam->type == SL_METRIC_COUNTER) {
            if (fam->scale == 1) {
                snprintf(out, 40, "%" PRIu64, s->u);
                return;
            }
            d = (double)s->u * fam->scale;
        } else {
            if (fam->scale == 1) {
                snprintf(out, 40, "%" PRId64, s->i);
                return;
            }
            d = (double)s->i * fam->scale;
        }
        break;
    }
    fmt_double(out, d);
}

static const char *type_name(enum sl_metric_type t)
{
    switch (t) {
    case SL_METRIC_COUNTER:
        return "counter";
    case SL_METRIC_GAUGE:
        return "gauge";
    default:
        return "histogram";
    }
}

/* Escapes for the text format: HELP escapes backslash and newline; label values also the double
 * quote. */
static void prom_escape(struct sl_buf *out, const char *s, bool quote)
{
    size_t run = 0, i = 0;
    for (; s[i]; i++) {
        const char *rep = NULL;
        if (s[i] == '\\')
            rep = "\\\\";
        else if (s[i] == '\n')
            rep = "\\n";
        else if (quote && s[i] == '"')
            rep = "\\\"";
        if (!rep) continue;
        sl_buf_append(out, s + run, i - run);
        sl_buf_append(out, rep, 2);
        run = i + 1;
    }
    sl_buf_append(out, s + run, i - run);
}

/* {a="x",b="y"} plus an optional le; nothing at all when there are no labels. */
static void prom_labels(struct sl_buf *out, const struct sl_metric_family *fam,
                        const struct series *s, const char *le)
{
    if (fam->n_labels == 0 && !le) return;
    sl_buf_append(out, "{", 1);
    for (size_t l = 0; l < fam->n_labels; l++) {
        if (l) sl_buf_append(out, ",", 1);
        sl_buf_puts(out, fam->labels[l]);
        sl_buf_append(out, "=\"", 2);
        prom_escape(out, s->values[l], true);
        sl_buf_append(out, "\"", 1);
    }
    if (le) sl_buf_printf(out, "%sle=\"%s\"", fam->n_labels ? "," : "", le);
    sl_buf_append(out, "}", 1);
}

static void prom_histogram(struct sl_buf *out, const struct sl_metric_family *fam,
                           const struct series *s)
{
    const struct sl_histogram *h = s->hist;
    uint64_t cum = 0;
    char le[40], v[40];
    for (size_t b = 0; b <= fam->n_bounds; b++) {
        cum += h->counts[b];
        if (b < fam->n_bounds)
            fmt_double(le, fam->bounds[b]);
        else
            strcpy(le, "+Inf");
        sl_buf_printf(out, "%s_bucket", fam->name);
        prom_labels(out, fam, s, le);
        sl_buf_printf(out, " %" PRIu64 "\n", cum);
    }
    fmt_double(v, h->sum);
    sl_buf_printf(out, "%s_sum", fam->name);
    prom_labels(out, fam, s, NULL);
    sl_buf_printf(out, " %s\n", v);
    sl_buf_printf(out, "%s_count", fam->name);
    prom_labels(out, fam, s, NULL);
    sl_buf_printf(out, " %" PRIu64 "\n", h->count);
}

static const char overflow_name[] = "sluice_metrics_series_overflow_total";
static const char overflow_help[] = "Series not created because their family reached its series "
                                    "limit; their updates went to the _overflow series.";

static bool any_overflow(const struct sl_metrics *reg)
{
    for (size_t f = 0; f < reg->n_fams; f++)
        if (reg->fams[f]->n_refused) return true;
    return false;
}

int sl_metrics_render_prometheus(const struct sl_metrics *reg, struct sl_buf *out)
{
    char v[40];
    for (size_t f = 0; f < reg->n_fams; f++) {
        const struct sl_metric_family *fam = reg->fams[f];
        sl_buf_printf(out, "# HELP %s ", fam->name);
        prom_escape(out, fam->help, false);
        sl_buf_printf(out, "\n# TYPE %s %s\n", fam->name, type_name(fam->type));
        for (size_t i = 0; i < fam->n_series; i++) {
            const struct series *s = fam->series[i];
            if (fam->type == SL_METRIC_HISTOGRAM) {
                prom_histogram(out, fam, s);
                continue;
            }
            series_value(fam, s, v);
            sl_buf_puts(out, fam->name);
            prom_labels(out, fam, s, NULL);
            sl_buf_printf(out, " %s\n", v);
        }
    }
    if (any_overflow(reg)) {
        sl_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", overflow_name, overflow_help,
                      overflow_name);
        for (size_t f = 0; f < reg->n_fams; f++)
            if (reg->fams[f]->n_refused)
                sl_buf_printf(out, "%s{family=\"%s\"} %" PRIu64 "\n", overflow_name,
                              reg->fams[f]->name, reg->fams[f]->n_refused);
    }
    return out->failed ? -1 : 0;
}

static void json_labels(struct sl_buf *out, const struct sl_metric_family *fam,
                        const struct series *s)
{
    sl_buf_puts(out, "{\"labels\":{");
    for (size_t l = 0; l < fam->n_labels; l++) {
        if (l) sl_buf_append(out, ",", 1);
        sl_buf_json_str(out, fam->labels[l], strlen(fam->labels[l]));
        sl_buf_append(out, ":", 1);
        sl_buf_json_str(out, s->values[l], strlen(s->values[l]));
    }
    sl_buf_puts(out, "},");
}

static void json_series(struct sl_buf *out, const struct sl_metric_family *fam,
                        const struct series *s)
{
    json_labels(out, fam, s);
    if (fam->type != SL_METRIC_HISTOGRAM) {
        char v[40];
        series_value(fam, s, v);
        /* NaN and infinities have no JSON spelling */
        if (strcmp(v, "NaN") == 0 || v[1] == 'I') strcpy(v, "null");
        sl_buf_printf(out, "\"value\":%s}", v);
        return;
    }
    const struct sl_histogram *h = s->hist;
    uint64_t cum = 0;
    char le[40];
    sl_buf_puts(out, "\"buckets\":{");
    for (size_t b = 0; b <= fam->n_bounds; b++) {
        cum += h->counts[b];
        if (b < fam->n_bounds)
            fmt_double(le, fam->bounds[b]);
        else
            strcpy(le, "+Inf");
        sl_buf_printf(out, "%s\"%s\":%" PRIu64, b ? "," : "", le, cum);
    }
    sl_buf_puts(out, "},\"sum\":");
    sl_buf_json_num(out, h->sum);
    sl_buf_printf(out, ",\"count\":%" PRIu64 "}", h->count);
}

int sl_metrics_render_json(const struct sl_metrics *reg, struct sl_buf *out)
{
    sl_buf_append(out, "{", 1);
    for (size_t f = 0; f < reg->n_fams; f++) {
        const struct sl_metric_family *fam = reg->fams[f];
        if (f) sl_buf_append(out, ",", 1);
        sl_buf_json_str(out, fam->name, strlen(fam->name));
        sl_buf_printf(out, ":{\"type\":\"%s\",\"help\":", type_name(fam->type));
        sl_buf_json_str(out, fam->help, strlen(fam->help));
        sl_buf_puts(out, ",\"series\":[");
        for (size_t i = 0; i < fam->n_series; i++) {
            if (i) sl_buf_append(out, ",", 1);
            json_series(out, fam, fam->series[i]);
        }
        sl_buf_puts(out, "]}");
    }
    if (any_overflow(reg)) {
        sl_buf_printf(out, "%s\"%s\":{\"type\":\"counter\",\"help\":\"%s\",\"series\":[",
                      reg->n_fams ? "," : "", overflow_name, overflow_help);
        bool first = true;
        for (size_t f = 0; f < reg->n_fams; f++) {
            if (!reg->fams[f]->n_refused) continue;
            sl_buf_printf(out, "%s{\"labels\":{\"family\":\"%s\"},\"value\":%" PRIu64 "}",
                          first ? "" : ",", reg->fams[f]->name, reg->fams[f]->n_refused);
            first = false;
        }
        sl_buf_puts(out, "]}");
    }
    sl_buf_append(out, "}", 1);
    return out->failed ? -1 : 0;
}

double sl_metrics_proc_rss_bytes(void *ctx)
{
    (void)ctx;
    FILE *f = fopen("/proc/self/status", "re");
    if (!f) return NAN;
    char line[256];
    double rss = NAN;
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) {
            rss = (double)kb * 1024;
            break;
        }
    }
    fclose(f);
    return rss;
}
