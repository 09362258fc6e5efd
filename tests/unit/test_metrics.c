/* /metrics is read by Prometheus, which rejects a whole scrape on one malformed line: these tests
 * pin the exposition byte for byte (escaping, histogram buckets, scale), the series cap that keeps
 * label cardinality from growing memory, and check the text with Prometheus' own Python parser
 * when it is installed (Debian: python3-prometheus-client). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/metrics.h"

static double fake_rss(void *ctx)
{
    return *(double *)ctx;
}

/* A registry shaped like sluice's: labelled counters (one bound to an external field), a gauge
 * callback, a scaled counter and a histogram. */
struct fixture {
    struct sl_metrics *reg;
    uint64_t delivered_a;
    double rss;
};

static const char weird[] = "we\"ird\\in\nput";

static void build(struct fixture *f)
{
    char err[128];
    f->reg = sl_metrics_new(0);
    assert_non_null(f->reg);
    struct sl_metric_family *recv =
        sl_metrics_counter(f->reg, "sluice_records_received_total", "Records read from the input.",
                           "input", err, sizeof err);
    assert_non_null(recv);
    uint64_t *a = sl_metric_counter(recv, (const char *[]){"a"});
    *a += 3;
    (*sl_metric_counter(recv, (const char *[]){weird}))++;
    /* the same values give the same series */
    assert_ptr_equal(a, sl_metric_counter(recv, (const char *[]){"a"}));

    struct sl_metric_family *del =
        sl_metrics_counter(f->reg, "sluice_records_delivered_total",
                           "Records the output confirmed.", "input", err, sizeof err);
    f->delivered_a = 2;
    assert_int_equal(sl_metric_bind_u64(del, (const char *[]){"a"}, &f->delivered_a), 0);
    assert_int_equal(sl_metric_bind_u64(del, (const char *[]){"a"}, &f->delivered_a), -1);

    struct sl_metric_family *rss =
        sl_metrics_gauge(f->reg, "sluice_process_resident_memory_bytes",
                         "Resident set size.\nFrom C:\\proc.", NULL, err, sizeof err);
    f->rss = 31457280;
    assert_int_equal(sl_metric_bind_fn(rss, NULL, fake_rss, &f->rss), 0);

    struct sl_metric_family *paused =
        sl_metrics_counter(f->reg, "sluice_partition_paused_seconds_total", "Time spent paused.",
                           "topic,partition", err, sizeof err);
    sl_metric_family_set_scale(paused, 0.001);
    *sl_metric_counter(paused, (const char *[]){"logs", "0"}) = 1500;

    static const double bounds[] = {0.005, 0.25, 1};
    struct sl_metric_family *lat =
        sl_metrics_histogram(f->reg, "sluice_es_request_duration_seconds", "Bulk request latency.",
                             "output", bounds, 3, err, sizeof err);
    assert_non_null(lat);
    struct sl_histogram *h = sl_metric_histogram(lat, (const char *[]){"es"});
    sl_histogram_observe(h, 0.0009765625);
    sl_histogram_observe(h, 0.25); /* le is inclusive */
    sl_histogram_observe(h, 0.5);
    sl_histogram_observe(h, 2);

    struct sl_metric_family *g =
        sl_metrics_gauge(f->reg, "sluice_partition_lag", "Lag.", "topic", err, sizeof err);
    *sl_metric_gauge(g, (const char *[]){"logs"}) = -1;
}

static const char expected_prom[] =
    "# HELP sluice_records_received_total Records read from the input.\n"
    "# TYPE sluice_records_received_total counter\n"
    "sluice_records_received_total{input=\"a\"} 3\n"
    "sluice_records_received_total{input=\"we\\\"ird\\\\in\\nput\"} 1\n"
    "# HELP sluice_records_delivered_total Records the output confirmed.\n"
    "# TYPE sluice_records_delivered_total counter\n"
    "sluice_records_delivered_total{input=\"a\"} 7\n"
    "# HELP sluice_process_resident_memory_bytes Resident set size.\\nFrom C:\\\\proc.\n"
    "# TYPE sluice_process_resident_memory_bytes gauge\n"
    "sluice_process_resident_memory_bytes 31457280\n"
    "# HELP sluice_partition_paused_seconds_total Time spent paused.\n"
    "# TYPE sluice_partition_paused_seconds_total counter\n"
    "sluice_partition_paused_seconds_total{topic=\"logs\",partition=\"0\"} 1.5\n"
    "# HELP sluice_es_request_duration_seconds Bulk request latency.\n"
    "# TYPE sluice_es_request_duration_seconds histogram\n"
    "sluice_es_request_duration_seconds_bucket{output=\"es\",le=\"0.005\"} 1\n"
    "sluice_es_request_duration_seconds_bucket{output=\"es\",le=\"0.25\"} 2\n"
    "sluice_es_request_duration_seconds_bucket{output=\"es\",le=\"1\"} 3\n"
    "sluice_es_request_duration_seconds_bucket{output=\"es\",le=\"+Inf\"} 4\n"
    "sluice_es_request_duration_seconds_sum{output=\"es\"} 2.7509765625\n"
    "sluice_es_request_duration_seconds_count{output=\"es\"} 4\n"
    "# HELP sluice_partition_lag Lag.\n"
    "# TYPE sluice_partition_lag gauge\n"
    "sluice_partition_lag{topic=\"logs\"} -1\n";

static char *render_prom(struct sl_metrics *reg)
{
    struct sl_buf b;
    sl_buf_init(&b, 1 << 20);
    assert_int_equal(sl_metrics_render_prometheus(reg, &b), 0);
    assert_int_equal(sl_buf_append(&b, "", 1), 0);
    return b.data;
}

static void test_exposition_exact(void **state)
{
    (void)state;
    struct fixture f;
    build(&f);
    f.delivered_a = 7; /* bound series are read at render time */
    char *text = render_prom(f.reg);
    assert_string_equal(text, expected_prom);
    free(text);
    sl_metrics_free(f.reg);
}

static void test_json_exact(void **state)
{
    (void)state;
    char err[128];
    struct sl_metrics *reg = sl_metrics_new(0);
    struct sl_metric_family *c =
        sl_metrics_counter(reg, "x_total", "A \"quoted\" help.", "k", err, sizeof err);
    *sl_metric_counter(c, (const char *[]){"v\n"}) = 5;
    static const double bounds[] = {0.5};
    struct sl_metric_family *h =
        sl_metrics_histogram(reg, "lat_seconds", "L.", NULL, bounds, 1, err, sizeof err);
    sl_histogram_observe(sl_metric_histogram(h, NULL), 0.25);
    struct sl_metric_family *g = sl_metrics_gauge(reg, "nan_gauge", "", NULL, err, sizeof err);
    assert_int_equal(sl_metric_bind_fn(g, NULL, sl_metrics_proc_rss_bytes, NULL), 0);
    struct sl_buf b;
    sl_buf_init(&b, 4096);
    assert_int_equal(sl_metrics_render_json(reg, &b), 0);
    sl_buf_append(&b, "", 1);
    /* RSS is live: cut the value out and check it separately */
    char *v = strstr(b.data, "\"nan_gauge\"");
    assert_non_null(v);
    v = strstr(v, "\"value\":");
    assert_non_null(v);
    long long rss = atoll(v + 8);
    assert_true(rss > 1024 * 1024); /* this test process holds more than 1 MiB */
    *v = '\0';
    assert_string_equal(
        b.data, "{\"x_total\":{\"type\":\"counter\",\"help\":\"A \\\"quoted\\\" help.\",\"series\":"
                "[{\"labels\":{\"k\":\"v\\n\"},\"value\":5}]},\"lat_seconds\":{\"type\":"
                "\"histogram\",\"help\":\"L.\",\"series\":[{\"labels\":{},\"buckets\":{\"0.5\":1,"
                "\"+Inf\":1},\"sum\":0.25,\"count\":1}]},\"nan_gauge\":{\"type\":\"gauge\","
                "\"help\":\"\",\"series\":[{\"labels\":{},");
    sl_buf_free(&b);
    sl_metrics_free(reg);
}

static void test_series_cap_overflow(void **state)
{
    (void)state;
    char err[128];
    struct sl_metrics *reg = sl_metrics_new(2);
    struct sl_metric_family *c = sl_metrics_counter(reg, "r_total", "R.", "input", err, sizeof err);
    uint64_t *a = sl_metric_counter(c, (const char *[]){"a"});
    uint64_t *b = sl_metric_counter(c, (const char *[]){"b"});
    uint64_t *x = sl_metric_counter(c, (const char *[]){"c"});
    uint64_t *y = sl_metric_counter(c, (const char *[]){"d"});
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(x, y); /* both land in the one overflow series */
    *a = 1;
    *b = 2;
    *x += 3;
    *y += 4;
    /* binding cannot share a series: refused and counted */
    uint64_t ext = 9;
    assert_int_equal(sl_metric_bind_u64(c, (const char *[]){"e"}, &ext), -1);
    char *text = render_prom(reg);
    assert_string_equal(text, "# HELP r_total R.\n"
                              "# TYPE r_total counter\n"
                              "r_total{input=\"a\"} 1\n"
                              "r_total{input=\"b\"} 2\n"
                              "r_total{input=\"_overflow\"} 7\n"
                              "# HELP sluice_metrics_series_overflow_total Series not created "
                              "because their family reached its series limit; their updates went "
                              "to the _overflow series.\n"
                              "# TYPE sluice_metrics_series_overflow_total counter\n"
                              "sluice_metrics_series_overflow_total{family=\"r_total\"} 3\n");
    free(text);
    /* removing a series frees a slot for a new one */
    sl_metric_remove(c, (const char *[]){"a"});
    uint64_t *e = sl_metric_counter(c, (const char *[]){"e"});
    assert_ptr_not_equal(e, x);
    assert_int_equal(*e, 0);
    /* clearing empties the family but keeps its refusal count */
    sl_metric_family_clear(c);
    *sl_metric_counter(c, (const char *[]){"z"}) = 5;
    text = render_prom(reg);
    assert_string_equal(text, "# HELP r_total R.\n"
                              "# TYPE r_total counter\n"
                              "r_total{input=\"z\"} 5\n"
                              "# HELP sluice_metrics_series_overflow_total Series not created "
                              "because their family reached its series limit; their updates went "
                              "to the _overflow series.\n"
                              "# TYPE sluice_metrics_series_overflow_total counter\n"
                              "sluice_metrics_series_overflow_total{family=\"r_total\"} 3\n");
    free(text);
    sl_metrics_free(reg);
}

static void test_many_series_bounded(void **state)
{
    (void)state;
    char err[128];
    struct sl_metrics *reg = sl_metrics_new(0);
    struct sl_metric_family *c = sl_metrics_counter(reg, "p_total", "P.", "p", err, sizeof err);
    char v[32];
    uint64_t *first_overflow = NULL;
    for (int i = 0; i < SL_METRICS_DEFAULT_MAX_SERIES + 100; i++) {
        snprintf(v, sizeof v, "%d", i);
        uint64_t *p = sl_metric_counter(c, (const char *[]){v});
        if (i == SL_METRICS_DEFAULT_MAX_SERIES) first_overflow = p;
        if (i > SL_METRICS_DEFAULT_MAX_SERIES) assert_ptr_equal(p, first_overflow);
        (*p)++;
    }
    struct sl_buf b;
    sl_buf_init(&b, 1 << 20);
    assert_int_equal(sl_metrics_render_prometheus(reg, &b), 0);
    sl_buf_append(&b, "", 1);
    assert_non_null(strstr(b.data, "p_total{p=\"_overflow\"} 100\n"));
    assert_non_null(strstr(b.data, "{family=\"p_total\"} 100\n"));
    /* a render that does not fit fails instead of emitting a cut-off exposition */
    struct sl_buf small;
    sl_buf_init(&small, 1000);
    assert_int_equal(sl_metrics_render_prometheus(reg, &small), -1);
    assert_true(small.failed);
    assert_true(small.len <= 1000);
    sl_buf_free(&small);
    sl_buf_free(&b);
    sl_metrics_free(reg);
}

static void test_rejects_bad_names(void **state)
{
    (void)state;
    char err[128] = "";
    static const double bounds[] = {1, 2};
    static const double bad_bounds[] = {2, 1};
    struct sl_metrics *reg = sl_metrics_new(0);
    assert_null(sl_metrics_counter(reg, "records", "", NULL, err, sizeof err));
    assert_non_null(strstr(err, "_total"));
    assert_null(sl_metrics_gauge(reg, "9lives", "", NULL, err, sizeof err));
    assert_null(sl_metrics_gauge(reg, "has-dash", "", NULL, err, sizeof err));
    assert_null(sl_metrics_gauge(reg, "g", "", "__reserved", err, sizeof err));
    assert_null(sl_metrics_gauge(reg, "g", "", "a,a", err, sizeof err));
    assert_null(sl_metrics_gauge(reg, "g", "", "a,", err, sizeof err));
    assert_null(sl_metrics_histogram(reg, "h", "", "le", bounds, 2, err, sizeof err));
    assert_null(sl_metrics_histogram(reg, "h", "", NULL, bad_bounds, 2, err, sizeof err));
    assert_non_null(sl_metrics_gauge(reg, "ns:g", "", "a,b_2", err, sizeof err));
    assert_null(sl_metrics_gauge(reg, "ns:g", "", NULL, err, sizeof err));
    assert_non_null(strstr(err, "twice"));
    sl_metrics_free(reg);
}

static void test_long_label_value_cut_on_utf8_boundary(void **state)
{
    (void)state;
    char err[128];
    struct sl_metrics *reg = sl_metrics_new(0);
    struct sl_metric_family *c = sl_metrics_counter(reg, "t_total", "", "v", err, sizeof err);
    /* 255 ASCII bytes then a 2-byte character straddling the 256-byte limit */
    char v[300];
    memset(v, 'x', 255);
    strcpy(v + 255, "\xc3\xa9tail");
    uint64_t *p = sl_metric_counter(c, (const char *[]){v});
    *p = 1;
    /* values equal up to the cut share the series */
    v[258] = 'X';
    assert_ptr_equal(p, sl_metric_counter(c, (const char *[]){v}));
    char *text = render_prom(reg);
    char *q = strstr(text, "{v=\"");
    assert_non_null(q);
    assert_int_equal(strchr(q + 4, '"') - (q + 4), 255);
    free(text);
    sl_metrics_free(reg);
}

static void test_buf_cap(void **state)
{
    (void)state;
    struct sl_buf b;
    sl_buf_init(&b, 8);
    assert_int_equal(sl_buf_puts(&b, "12345"), 0);
    assert_int_equal(sl_buf_printf(&b, "%d", 6789), -1);
    assert_true(b.failed);
    assert_int_equal(b.len, 5);
    assert_int_equal(sl_buf_puts(&b, "x"), -1); /* stays failed until reset */
    sl_buf_reset(&b);
    assert_int_equal(sl_buf_printf(&b, "%s", "12345678"), 0);
    sl_buf_free(&b);
    sl_buf_init(&b, 4096);
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(sl_buf_printf(&b, "<%s>", big), 0); /* the long-format path */
    assert_int_equal(b.len, 1001);
    assert_int_equal(b.data[1000], '>');
    sl_buf_free(&b);
}

/* Independent check: Prometheus' reference Python parser must read the exposition back with the
 * label values and numbers we meant. */
static const char check_script[] =
    "import sys, json\n"
    "from prometheus_client.parser import text_string_to_metric_families\n"
    "for f in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
    "    print('F', f.type, len(f.samples))\n"
    "    for s in f.samples:\n"
    "        print('S', s.name, json.dumps(s.labels, sort_keys=True), repr(s.value))\n";

static const char expected_parsed[] =
    "F counter 2\n"
    "S sluice_records_received_total {\"input\": \"a\"} 3.0\n"
    "S sluice_records_received_total {\"input\": \"we\\\"ird\\\\in\\nput\"} 1.0\n"
    "F counter 1\n"
    "S sluice_records_delivered_total {\"input\": \"a\"} 2.0\n"
    "F gauge 1\n"
    "S sluice_process_resident_memory_bytes {} 31457280.0\n"
    "F counter 1\n"
    "S sluice_partition_paused_seconds_total {\"partition\": \"0\", \"topic\": \"logs\"} 1.5\n"
    "F histogram 6\n"
    "S sluice_es_request_duration_seconds_bucket {\"le\": \"0.005\", \"output\": \"es\"} 1.0\n"
    "S sluice_es_request_duration_seconds_bucket {\"le\": \"0.25\", \"output\": \"es\"} 2.0\n"
    "S sluice_es_request_duration_seconds_bucket {\"le\": \"1\", \"output\": \"es\"} 3.0\n"
    "S sluice_es_request_duration_seconds_bucket {\"le\": \"+Inf\", \"output\": \"es\"} 4.0\n"
    "S sluice_es_request_duration_seconds_sum {\"output\": \"es\"} 2.7509765625\n"
    "S sluice_es_request_duration_seconds_count {\"output\": \"es\"} 4.0\n"
    "F gauge 1\n"
    "S sluice_partition_lag {\"topic\": \"logs\"} -1.0\n";

static void test_reference_parser(void **state)
{
    (void)state;
    if (system("/usr/bin/python3 -c 'import prometheus_client.parser' 2>/dev/null") != 0) {
        print_message("python3-prometheus-client not installed; reference parser check skipped\n");
        skip();
    }
    struct fixture f;
    build(&f);
    char *text = render_prom(f.reg);
    char path[] = "/tmp/sluice-test-metrics-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c \"$SCRIPT\" %s", path);
    setenv("SCRIPT", check_script, 1);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    unlink(path);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_string_equal(out, expected_parsed);
    free(text);
    sl_metrics_free(f.reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exposition_exact),
        cmocka_unit_test(test_json_exact),
        cmocka_unit_test(test_series_cap_overflow),
        cmocka_unit_test(test_many_series_bounded),
        cmocka_unit_test(test_rejects_bad_names),
        cmocka_unit_test(test_long_label_value_cut_on_utf8_boundary),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_reference_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
