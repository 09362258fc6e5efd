/* The dead-letter store is where records go when they cannot be delivered; a record counts as
 * finished only after its line is durable. These tests pin the line format, the permissions, the
 * size cap (refuse, never drop) and the byte accounting across restarts. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec/json.h"
#include "core/deadletter.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sluice-dlq-test-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Concatenates every .ndjson file of the store into buf; returns the number of files. */
static int read_store(char *buf, size_t cap, size_t *len)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int files = 0;
    *len = 0;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".ndjson")) continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        FILE *f = fopen(p, "r");
        *len += fread(buf + *len, 1, cap - *len, f);
        fclose(f);
        files++;
    }
    closedir(d);
    return files;
}

static struct sl_dl_record sample(const char *payload, size_t n)
{
    return (struct sl_dl_record){
        .reason = "rejected by elasticsearch",
        .status = 400,
        .error_type = "mapper_parsing_exception",
        .error_type_len = 24,
        .error_reason = "failed to parse field [level] \\\"x\\\"",
        .error_reason_len = 35,
        .error_escaped = true,
        .input = "kafka.0",
        .output = "es",
        .index = "logs-app-2026.11.27",
        .index_len = 19,
        .tag = "kafka.app",
        .tag_len = 9,
        .topic = "app",
        .topic_len = 3,
        .partition = 3,
        .offset = 1200,
        .attempts = 1,
        .time_ns = 1795776000123456789LL,
        .payload = payload,
        .payload_len = n,
    };
}

static void test_line_is_one_valid_json_object(void **state)
{
    (void)state;
    char err[256];
    struct sl_dlq *q = sl_dlq_open(dir, 1 << 20, err, sizeof err);
    assert_non_null(q);
    /* a payload with a newline, a quote, a NUL and invalid UTF-8 must still give one line */
    static const char payload[] = "{\"msg\":\"a\nb\"}\0\xff\"end";
    struct sl_dl_record r = sample(payload, sizeof payload - 1);
    assert_int_equal(sl_dlq_write(q, &r), 0);
    assert_int_equal(sl_dlq_lines(q), 0); /* not durable before sync */
    assert_int_equal(sl_dlq_sync(q), 0);
    assert_int_equal(sl_dlq_lines(q), 1);
    sl_dlq_close(q);

    static char buf[1 << 16];
    size_t len;
    assert_int_equal(read_store(buf, sizeof buf, &len), 1);
    assert_true(len > 0 && buf[len - 1] == '\n');
    assert_null(memchr(buf, '\n', len - 1));
    struct sl_json_scan s = {.paths = {"reason", "status", "source.offset", "payload"},
                             .n_paths = 4};
    assert_int_equal(sl_json_scan_object(buf, len - 1, &s), 0);
    assert_int_equal(s.vlen[1], 3);
    assert_memory_equal(s.val[1], "400", 3);
    assert_memory_equal(s.val[2], "1200", 4);
    char back[256];
    ssize_t n = sl_json_unescape(s.val[3], s.vlen[3], back, sizeof back);
    /* the payload comes back byte for byte, except the invalid byte which becomes U+FFFD */
    assert_int_equal(n, (ssize_t)(sizeof payload - 1) + 2);
    assert_memory_equal(back, "{\"msg\":\"a\nb\"}\0\xef\xbf\xbd\"end", (size_t)n);
}

static void test_cap_refuses_and_counts_existing_files(void **state)
{
    (void)state;
    char err[256];
    char payload[1000];
    memset(payload, 'x', sizeof payload);
    struct sl_dl_record r = sample(payload, sizeof payload);
    struct sl_dlq *q = sl_dlq_open(dir, 5000, err, sizeof err);
    assert_non_null(q);
    int ok = 0;
    while (sl_dlq_write(q, &r) == 0)
        ok++;
    /* refused, not dropped: the caller keeps the record; what was accepted stays within cap */
    assert_true(ok >= 1 && ok <= 4);
    assert_int_equal(sl_dlq_sync(q), 0);
    assert_true(sl_dlq_bytes(q) <= 5000);
    uint64_t used = sl_dlq_bytes(q);
    sl_dlq_close(q);
    /* a restart sees the bytes already on disk and still refuses */
    q = sl_dlq_open(dir, 5000, err, sizeof err);
    assert_non_null(q);
    assert_int_equal(sl_dlq_bytes(q), used);
    assert_int_equal(sl_dlq_write(q, &r), -1);
    sl_dlq_close(q);
    q = sl_dlq_open(dir, used + 2000, err, sizeof err);
    assert_int_equal(sl_dlq_write(q, &r), 0);
    assert_int_equal(sl_dlq_sync(q), 0);
    sl_dlq_close(q);
}

static void test_open_fails_clearly(void **state)
{
    (void)state;
    char err[256];
    assert_null(sl_dlq_open("/proc/self/no/such/dir", 1000, err, sizeof err));
    assert_non_null(strstr(err, "/proc/self/no/such/dir"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_is_one_valid_json_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_refuses_and_counts_existing_files, setup,
                                        teardown),
        cmocka_unit_test(test_open_fails_clearly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
