/* The dead-letter store is where records go when they cannot be delivered; a record counts as
 * finished only after its line is durable. These tests pin the line format, the permissions, the
 * size cap (refuse, never drop) and the byte accounting across restarts. */
#include <dirent.h>
#include <errno.h>
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

/* Disk faults, injected by linking this test with -Wl,--wrap=write,--wrap=fdatasync,
 * --wrap=ftruncate,--wrap=fsync (CMakeLists.txt): the store's own calls go through these. */
static long write_budget = -1; /* bytes the next writes may still put down, then ENOSPC; -1: off */
static int fsync_fail, truncate_fail, dirsync_fail;
ssize_t __real_write(int fd, const void *b, size_t n);
int __real_fdatasync(int fd);
int __real_ftruncate(int fd, off_t len);
int __real_fsync(int fd);

/* The store fsyncs only its directory (its files get fdatasync). */
int __wrap_fsync(int fd)
{
    if (dirsync_fail) {
        dirsync_fail--;
        errno = EIO;
        return -1;
    }
    return __real_fsync(fd);
}

ssize_t __wrap_write(int fd, const void *b, size_t n)
{
    if (write_budget < 0) return __real_write(fd, b, n);
    if (write_budget == 0) {
        errno = ENOSPC;
        return -1;
    }
    if (n > (size_t)write_budget) n = (size_t)write_budget;
    ssize_t w = __real_write(fd, b, n);
    if (w > 0) write_budget -= w;
    return w;
}

int __wrap_fdatasync(int fd)
{
    if (fsync_fail) {
        fsync_fail--;
        errno = EIO;
        return -1;
    }
    return __real_fdatasync(fd);
}

int __wrap_ftruncate(int fd, off_t len)
{
    if (truncate_fail) {
        truncate_fail--;
        errno = EROFS;
        return -1;
    }
    return __real_ftruncate(fd, len);
}

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

/* Every line of the store parses as one JSON object; returns the number of lines and fills
 * offsets[] with their source.offset values. */
static int check_lines(int64_t *offsets, int max, int *files)
{
    static char buf[1 << 20];
    size_t len;
    *files = read_store(buf, sizeof buf, &len);
    assert_true(len == 0 || buf[len - 1] == '\n');
    int n = 0;
    for (size_t at = 0; at < len;) {
        char *nl = memchr(buf + at, '\n', len - at);
        assert_non_null(nl);
        struct sl_json_scan s = {.paths = {"source.offset"}, .n_paths = 1};
        assert_int_equal(sl_json_scan_object(buf + at, (size_t)(nl - (buf + at)), &s), 0);
        assert_true(n < max);
        offsets[n++] = strtoll(s.val[0], NULL, 10);
        at = (size_t)(nl - buf) + 1;
    }
    return n;
}

static void put_lines(struct sl_dlq *q, int64_t first, int n)
{
    char payload[300];
    memset(payload, 'p', sizeof payload);
    for (int i = 0; i < n; i++) {
        struct sl_dl_record r = sample(payload, sizeof payload);
        r.offset = first + i;
        assert_int_equal(sl_dlq_write(q, &r), 0);
    }
}

/* ENOSPC in the middle of a write: the part that made it to the file is cut off again, the lines
 * stay buffered and not durable; once there is room, every line is there exactly once. */
static void test_failed_write_leaves_no_torn_line(void **state)
{
    (void)state;
    char err[256];
    int64_t offs[16];
    int files;
    struct sl_dlq *q = sl_dlq_open(dir, 1 << 20, err, sizeof err);
    assert_non_null(q);
    put_lines(q, 0, 3);
    assert_int_equal(sl_dlq_sync(q), 0);
    put_lines(q, 3, 2);
    write_budget = 100; /* part of the first new line, then ENOSPC */
    assert_int_equal(sl_dlq_sync(q), -1);
    assert_int_equal(sl_dlq_lines(q), 3);
    assert_int_equal(check_lines(offs, 16, &files), 3); /* no torn fourth line */
    assert_int_equal(sl_dlq_sync(q), -1);               /* still full */
    write_budget = -1;
    assert_int_equal(sl_dlq_sync(q), 0);
    assert_int_equal(sl_dlq_lines(q), 5);
    assert_int_equal(check_lines(offs, 16, &files), 5);
    assert_int_equal(files, 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(offs[i], i);
    sl_dlq_close(q);
}

/* The cut itself fails (e.g. the filesystem went read-only): the torn tail is cut before the next
 * write, so later lines never follow a partial one. */
static void test_torn_tail_cut_before_next_write(void **state)
{
    (void)state;
    char err[256];
    int64_t offs[16];
    int files;
    struct sl_dlq *q = sl_dlq_open(dir, 1 << 20, err, sizeof err);
    assert_non_null(q);
    put_lines(q, 0, 2);
    assert_int_equal(sl_dlq_sync(q), 0);
    put_lines(q, 2, 2);
    write_budget = 150;
    truncate_fail = 1;
    assert_int_equal(sl_dlq_sync(q), -1);
    write_budget = -1;
    truncate_fail = 1; /* the cut fails again: nothing may be written after the torn bytes */
    assert_int_equal(sl_dlq_sync(q), -1);
    assert_int_equal(sl_dlq_lines(q), 2);
    assert_int_equal(sl_dlq_sync(q), 0);
    assert_int_equal(check_lines(offs, 16, &files), 4);
    assert_int_equal(files, 1);
    for (int i = 0; i < 4; i++)
        assert_int_equal(offs[i], i);
    sl_dlq_close(q);
}

/* A failed fdatasync: the file is not trusted any more. Its unsynced lines are cut, the next sync
 * writes them to a new file, and no line appears twice. */
static void test_fsync_failure_starts_a_new_file(void **state)
{
    (void)state;
    char err[256];
    int64_t offs[16];
    int files;
    struct sl_dlq *q = sl_dlq_open(dir, 1 << 20, err, sizeof err);
    assert_non_null(q);
    put_lines(q, 0, 2);
    assert_int_equal(sl_dlq_sync(q), 0);
    put_lines(q, 2, 3);
    fsync_fail = 1;
    assert_int_equal(sl_dlq_sync(q), -1);
    assert_int_equal(sl_dlq_lines(q), 2);
    assert_int_equal(check_lines(offs, 16, &files), 2);
    assert_int_equal(sl_dlq_sync(q), 0);
    assert_int_equal(sl_dlq_lines(q), 5);
    assert_int_equal(check_lines(offs, 16, &files), 5);
    assert_int_equal(files, 2);
    int seen[5] = {0};
    for (int i = 0; i < 5; i++) {
        assert_true(offs[i] >= 0 && offs[i] < 5);
        seen[offs[i]]++;
    }
    for (int i = 0; i < 5; i++)
        assert_int_equal(seen[i], 1);
    sl_dlq_close(q);
}

/* A failed fdatasync whose cut fails too: the old file's unsynced tail is cut before anything
 * goes to the new file, so no line is in the store twice. */
static void test_fsync_failure_then_failed_cut(void **state)
{
    (void)state;
    char err[256];
    int64_t offs[16];
    int files;
    struct sl_dlq *q = sl_dlq_open(dir, 1 << 20, err, sizeof err);
    assert_non_null(q);
    put_lines(q, 0, 2);
    assert_int_equal(sl_dlq_sync(q), 0);
    put_lines(q, 2, 3);
    fsync_fail = 1;
    truncate_fail = 2; /* the cut after the failed fdatasync, and the first retry of it */
    assert_int_equal(sl_dlq_sync(q), -1);
    assert_int_equal(sl_dlq_sync(q), -1);
    assert_int_equal(check_lines(offs, 16, &files), 5); /* the untrusted tail, not cut yet */
    assert_int_equal(files, 1);                         /* and nothing written elsewhere */
    assert_int_equal(sl_dlq_sync(q), 0);
    assert_int_equal(sl_dlq_lines(q), 5);
    assert_int_equal(check_lines(offs, 16, &files), 5);
    assert_int_equal(files, 2);
    int seen[5] = {0};
    for (int i = 0; i < 5; i++)
        seen[offs[i]]++;
    for (int i = 0; i < 5; i++)
        assert_int_equal(seen[i], 1);
    sl_dlq_close(q);
}

/* An idle store holds no file open for writing (a read-only remount needs that). */
static void test_idle_store_holds_no_file_open(void **state)
{
    (void)state;
    char err[256];
    struct sl_dlq *q = sl_dlq_open(dir, 1 << 20, err, sizeof err);
    assert_non_null(q);
    put_lines(q, 0, 1);
    assert_int_equal(sl_dlq_sync(q), 0);
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int open_in_store = 0;
    while ((e = readdir(d))) {
        char p[300], target[512];
        snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(p, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = '\0';
        if (strncmp(target, dir, strlen(dir)) == 0 && strstr(target, ".ndjson")) open_in_store++;
    }
    closedir(d);
    assert_int_equal(open_in_store, 0);
    sl_dlq_close(q);
}

/* A new file whose directory entry could not be synced may vanish in a crash, with lines whose
 * records were acknowledged: that sync fails, the lines stay buffered, and no empty file is left.
 */
static void test_dir_sync_failure_is_a_failed_sync(void **state)
{
    (void)state;
    char err[256];
    int64_t offs[16];
    int files;
    struct sl_dlq *q = sl_dlq_open(dir, 1 << 20, err, sizeof err);
    assert_non_null(q);
    put_lines(q, 0, 2);
    assert_int_equal(sl_dlq_sync(q), 0);
    put_lines(q, 2, 2);
    fsync_fail = 1; /* the next sync must start a new file */
    assert_int_equal(sl_dlq_sync(q), -1);
    dirsync_fail = 1;
    assert_int_equal(sl_dlq_sync(q), -1);
    assert_int_equal(sl_dlq_lines(q), 2);
    assert_int_equal(check_lines(offs, 16, &files), 2);
    assert_int_equal(files, 1);
    assert_int_equal(sl_dlq_sync(q), 0);
    assert_int_equal(sl_dlq_lines(q), 4);
    assert_int_equal(check_lines(offs, 16, &files), 4);
    assert_int_equal(files, 2);
    sl_dlq_close(q);
    dirsync_fail = 1;
    q = sl_dlq_open(dir, 1 << 20, err, sizeof err);
    assert_null(q); /* at start too */
}

/* A full store notices the room its files' removal (or a replay) made, without a restart. */
static void test_full_store_notices_room(void **state)
{
    (void)state;
    char err[256];
    char payload[1000];
    memset(payload, 'x', sizeof payload);
    struct sl_dl_record r = sample(payload, sizeof payload);
    struct sl_dlq *q = sl_dlq_open(dir, 5000, err, sizeof err);
    assert_non_null(q);
    while (sl_dlq_write(q, &r) == 0) {
    }
    assert_int_equal(sl_dlq_sync(q), 0);
    assert_int_equal(sl_dlq_write(q, &r), -1);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -f %s/*.ndjson", dir);
    assert_int_equal(system(cmd), 0);
    usleep(1100 * 1000); /* looked again at most once a second */
    assert_int_equal(sl_dlq_write(q, &r), 0);
    assert_true(sl_dlq_bytes(q) < 5000);
    assert_int_equal(sl_dlq_sync(q), 0);
    sl_dlq_close(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_is_one_valid_json_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_refuses_and_counts_existing_files, setup,
                                        teardown),
        cmocka_unit_test(test_open_fails_clearly),
        cmocka_unit_test_setup_teardown(test_failed_write_leaves_no_torn_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_cut_before_next_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_failure_starts_a_new_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_failure_then_failed_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_store_holds_no_file_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_sync_failure_is_a_failed_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_store_notices_room, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
