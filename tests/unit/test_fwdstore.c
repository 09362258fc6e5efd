/* The ack: stored request store: record framing (magic, lengths, CRC), resynchronisation after
 * damage, and the store's append / sync / feed / delete cycle, its size cap and torn-tail repair
 * on reopen. */
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

#include "core/budget.h"
#include "inputs/fwdstore.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sluice-fwdstore-test-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static size_t make_rec(uint8_t *out, const char *id, const char *frame)
{
    size_t il = strlen(id), fl = strlen(frame);
    sl_fwdrec_header(out, id, il, frame, fl);
    memcpy(out + SL_FWDREC_HDR, id, il);
    memcpy(out + SL_FWDREC_HDR + il, frame, fl);
    return SL_FWDREC_HDR + il + fl;
}

static void test_roundtrip_and_prefixes(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t n = make_rec(buf, "boot.1.2", "\x93\xa3tag...");
    struct sl_fwdrec r;
    size_t need = 0;
    assert_int_equal(sl_fwdrec_parse(buf, n, 1024, &r, &need), SL_FWDREC_OK);
    assert_int_equal(r.total, n);
    assert_int_equal(r.id_len, 8);
    assert_memory_equal(r.id, "boot.1.2", 8);
    assert_int_equal(r.frame_len, n - SL_FWDREC_HDR - 8);
    /* every proper prefix asks for more, never claims a record */
    for (size_t k = 0; k < n; k++) {
        need = 0;
        assert_int_equal(sl_fwdrec_parse(buf, k, 1024, &r, &need), SL_FWDREC_MORE);
        assert_true(need > k && need <= n);
    }
    /* no id (a request with a chunk option) */
    n = make_rec(buf, "", "frame");
    assert_int_equal(sl_fwdrec_parse(buf, n, 1024, &r, &need), SL_FWDREC_OK);
    assert_int_equal(r.id_len, 0);
    assert_int_equal(r.frame_len, 5);
}

static void test_damage_is_bad(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t n = make_rec(buf, "id", "some frame bytes");
    struct sl_fwdrec r;
    size_t need;
    for (size_t i = 0; i < n; i++) {
        buf[i] ^= 0x01;
        enum sl_fwdrec_status st = sl_fwdrec_parse(buf, n, 1024, &r, &need);
        /* a flipped length bit may make it look short (MORE) but never OK */
        assert_int_not_equal(st, SL_FWDREC_OK);
        buf[i] ^= 0x01;
    }
    assert_int_equal(sl_fwdrec_parse(buf, n, 1024, &r, &need), SL_FWDREC_OK);
    /* a body longer than max_body is implausible */
    assert_int_equal(sl_fwdrec_parse(buf, n, 4, &r, &need), SL_FWDREC_BAD);
}

static void test_resync(void **state)
{
    (void)state;
    uint8_t buf[512];
    memset(buf, 'S', 40); /* garbage, with the magic's first byte all over */
    memcpy(buf + 10, "SLF1", 4);
    size_t n = make_rec(buf + 40, "", "payload");
    assert_int_equal(sl_fwdrec_resync(buf, 40 + n, 1024), 40);
    /* a magic cut at the end may still be a record once more bytes arrive */
    memcpy(buf, "xxxxSL", 6);
    assert_int_equal(sl_fwdrec_resync(buf, 6, 1024), 4);
    memcpy(buf, "xxxxxx", 6);
    assert_int_equal(sl_fwdrec_resync(buf, 6, 1024), 6);
}

static void test_store_cycle(void **state)
{
    (void)state;
    struct sl_budget b;
    sl_budget_init(&b, 64 << 20);
    char err[256];
    struct sl_fwdstore *s = sl_fwdstore_open(dir, "in", 1 << 20, 4096, &b, err, sizeof err);
    assert_non_null(s);
    struct sl_fwdrec r;
    assert_int_equal(sl_fwdstore_next(s, 0, &r), 0);
    assert_int_equal(sl_fwdstore_append(s, "a", 1, "one", 3), 0);
    assert_int_equal(sl_fwdstore_append(s, "", 0, "two", 3), 0);
    assert_true(sl_fwdstore_dirty(s));
    /* nothing is fed before it is synced */
    assert_int_equal(sl_fwdstore_next(s, 0, &r), 0);
    assert_int_equal(sl_fwdstore_sync(s), 0);
    assert_int_equal(sl_fwdstore_next(s, 0, &r), 1);
    assert_memory_equal(r.frame, "one", 3);
    assert_int_equal(sl_fwdstore_next(s, 1, &r), 1);
    assert_memory_equal(r.frame, "two", 3);
    assert_int_equal(sl_fwdstore_next(s, 2, &r), 0);
    struct sl_fwdstore_stats st;
    sl_fwdstore_stats(s, &st);
    assert_int_equal(st.segments, 1);
    /* events 0 and 1 fed; only 0 finished: the segment stays */
    assert_int_equal(sl_fwdstore_gc(s, 1, 2), 0);
    assert_true(sl_fwdstore_gc(s, 2, 2) > 0);
    sl_fwdstore_stats(s, &st);
    assert_int_equal(st.segments, 0);
    assert_int_equal(st.used, 0);
    /* the cap refuses instead of writing */
    static uint8_t big[600 << 10];
    assert_int_equal(sl_fwdstore_append(s, "", 0, big, sizeof big), 0);
    assert_int_equal(sl_fwdstore_append(s, "", 0, big, sizeof big), SL_FWDSTORE_FULL);
    /* a rollback drops what was not synced */
    sl_fwdstore_rollback(s);
    sl_fwdstore_stats(s, &st);
    assert_int_equal(st.used, 0);
    assert_int_equal(sl_fwdstore_append(s, "", 0, "three", 5), 0);
    assert_int_equal(sl_fwdstore_append(s, "", 0, "four", 4), 0);
    assert_int_equal(sl_fwdstore_sync(s), 0);
    sl_fwdstore_close(s);

    /* cut the last record short, as a crash before its sync could */
    char path[512];
    snprintf(path, sizeof path, "%s/in/seg-0000000000000002.fwd", dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size - 2), 0);
    s = sl_fwdstore_open(dir, "in", 1 << 20, 4096, &b, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(sl_fwdstore_next(s, 0, &r), 1);
    assert_memory_equal(r.frame, "three", 5);
    assert_int_equal(sl_fwdstore_next(s, 1, &r), 0);
    sl_fwdstore_stats(s, &st);
    assert_int_equal(st.torn_bytes, SL_FWDREC_HDR + 4 - 2);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, SL_FWDREC_HDR + 5);
    assert_true(sl_fwdstore_gc(s, 1, 1) > 0);
    sl_fwdstore_close(s);
    assert_int_equal(b.used, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_prefixes),
        cmocka_unit_test(test_damage_is_bad),
        cmocka_unit_test(test_resync),
        cmocka_unit_test_setup_teardown(test_store_cycle, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
