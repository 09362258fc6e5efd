/* The offset tracker decides what Kafka may commit: these tests pin the contiguous-prefix rule
 * with out-of-order acks, gaps in offsets, ring growth, revokes and restarts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/acktrack.h"
#include "core/budget.h"

static int64_t last_advance;
static int n_advances;

static void on_adv(struct sl_acktrack *t, int64_t next, void *owner)
{
    (void)t;
    (void)owner;
    last_advance = next;
    n_advances++;
}

static void reset(void)
{
    last_advance = -7;
    n_advances = 0;
}

static void test_in_order(void **state)
{
    (void)state;
    reset();
    struct sl_acktrack *t = sl_acktrack_new(NULL, on_adv);
    uint64_t s0 = sl_acktrack_add(t, 100);
    uint64_t s1 = sl_acktrack_add(t, 101);
    assert_int_equal(t->commit_next, -1);
    sl_acktrack_done(t, s0);
    assert_int_equal(t->commit_next, 101);
    sl_acktrack_done(t, s1);
    assert_int_equal(t->commit_next, 102);
    assert_int_equal(last_advance, 102);
    assert_int_equal(t->pending, 0);
    sl_acktrack_revoke(t);
}

static void test_out_of_order_holds_watermark(void **state)
{
    (void)state;
    reset();
    struct sl_acktrack *t = sl_acktrack_new(NULL, on_adv);
    uint64_t s[5];
    for (int i = 0; i < 5; i++)
        s[i] = sl_acktrack_add(t, 10 + i);
    sl_acktrack_done(t, s[4]);
    sl_acktrack_done(t, s[2]);
    sl_acktrack_done(t, s[1]);
    /* offset 10 is unfinished: nothing may be committed even though 11, 12, 14 are done */
    assert_int_equal(t->commit_next, -1);
    assert_int_equal(n_advances, 0);
    sl_acktrack_done(t, s[0]);
    assert_int_equal(t->commit_next, 13);
    assert_int_equal(n_advances, 1);
    sl_acktrack_done(t, s[3]);
    assert_int_equal(t->commit_next, 15);
    sl_acktrack_revoke(t);
}

static void test_offset_gaps(void **state)
{
    (void)state;
    reset();
    /* Compacted topics and transaction markers leave gaps: commit_next is last finished + 1. */
    struct sl_acktrack *t = sl_acktrack_new(NULL, on_adv);
    uint64_t a = sl_acktrack_add(t, 5);
    uint64_t b = sl_acktrack_add(t, 9);
    uint64_t c = sl_acktrack_add(t, 40);
    sl_acktrack_done(t, b);
    sl_acktrack_done(t, a);
    assert_int_equal(t->commit_next, 10);
    sl_acktrack_done(t, c);
    assert_int_equal(t->commit_next, 41);
    sl_acktrack_revoke(t);
}

static void test_growth_with_random_order(void **state)
{
    (void)state;
    reset();
    struct sl_acktrack *t = sl_acktrack_new(NULL, on_adv);
    enum { N = 5000 };
    static uint64_t seqs[N];
    static int order[N];
    int64_t base = 1000000;
    uint64_t done_so_far = 0;
    /* Interleave adds and acks so the ring wraps and grows while records are pending. */
    for (int i = 0; i < N; i++) {
        seqs[i] = sl_acktrack_add(t, base + i);
        order[i] = i;
    }
    srand(42);
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1);
        int tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    static char finished[N];
    int64_t prev = -1;
    for (int k = 0; k < N; k++) {
        sl_acktrack_done(t, seqs[order[k]]);
        finished[order[k]] = 1;
        done_so_far++;
        /* expected: first unfinished index */
        int first = 0;
        while (first < N && finished[first])
            first++;
        int64_t expect = first == 0 ? -1 : base + first;
        assert_int_equal(t->commit_next, expect);
        assert_true(t->commit_next >= prev);
        prev = t->commit_next;
    }
    assert_int_equal(done_so_far, N);
    assert_int_equal(t->commit_next, base + N);
    assert_int_equal(t->pending, 0);
    sl_acktrack_revoke(t);
}

static void test_wraparound_reuse(void **state)
{
    (void)state;
    reset();
    struct sl_acktrack *t = sl_acktrack_new(NULL, on_adv);
    int64_t off = 0;
    /* Keep ~100 pending while pushing 100,000 through: the ring must wrap without growing. */
    uint64_t window[100];
    for (int i = 0; i < 100; i++)
        window[i] = sl_acktrack_add(t, off++);
    for (int round = 0; round < 1000; round++) {
        for (int i = 99; i >= 0; i--)
            sl_acktrack_done(t, window[i]);
        assert_int_equal(t->commit_next, off);
        for (int i = 0; i < 100; i++)
            window[i] = sl_acktrack_add(t, off++);
    }
    assert_true(t->cap <= 256);
    for (int i = 0; i < 100; i++)
        sl_acktrack_done(t, window[i]);
    assert_int_equal(t->commit_next, off);
    sl_acktrack_revoke(t);
}

static void test_revoke_with_pending_then_late_acks(void **state)
{
    (void)state;
    reset();
    struct sl_acktrack *t = sl_acktrack_new(NULL, on_adv);
    uint64_t a = sl_acktrack_add(t, 1);
    uint64_t b = sl_acktrack_add(t, 2);
    sl_acktrack_revoke(t);
    /* Late acks after a revoke must not report advances (the partition belongs to another
     * consumer now) and the tracker frees itself after the last one (ASan checks the free). */
    sl_acktrack_done(t, b);
    sl_acktrack_done(t, a);
    assert_int_equal(n_advances, 0);
}

static void test_restart_resumes_from_commit(void **state)
{
    (void)state;
    reset();
    /* A restart is a new tracker that starts at the committed offset; redelivered records are
     * added again and the watermark continues from there. */
    struct sl_acktrack *t = sl_acktrack_new(NULL, on_adv);
    uint64_t s0 = sl_acktrack_add(t, 0);
    uint64_t s1 = sl_acktrack_add(t, 1);
    uint64_t s2 = sl_acktrack_add(t, 2);
    sl_acktrack_done(t, s0);
    sl_acktrack_done(t, s2);
    int64_t committed = t->commit_next;
    assert_int_equal(committed, 1);
    (void)s1; /* crash before offset 1 finished */
    sl_acktrack_revoke(t);
    struct sl_acktrack *t2 = sl_acktrack_new(NULL, on_adv);
    uint64_t r1 = sl_acktrack_add(t2, committed);
    uint64_t r2 = sl_acktrack_add(t2, committed + 1);
    sl_acktrack_done(t2, r2);
    assert_int_equal(t2->commit_next, -1);
    sl_acktrack_done(t2, r1);
    assert_int_equal(t2->commit_next, 3);
    sl_acktrack_revoke(t2);
    /* the first tracker still has offset 1 pending; finishing it frees it */
    sl_acktrack_done(t, s1);
}

static void test_stuck_head_charged_and_shrinks(void **state)
{
    (void)state;
    reset();
    /* One record never finishes while 100,000 behind it do: the ring keeps them all, and the
     * budget sees every byte of it; once the head finishes the ring shrinks back and gives it
     * back, down to nothing when the tracker is freed. */
    struct sl_budget b;
    sl_budget_init(&b, 1u << 30);
    struct sl_acktrack *t = sl_acktrack_new(NULL, on_adv);
    sl_acktrack_set_budget(t, &b);
    assert_int_equal(b.used, sl_acktrack_bytes(t));
    uint64_t head = sl_acktrack_add(t, 0);
    for (int64_t o = 1; o <= 100000; o++)
        sl_acktrack_done(t, sl_acktrack_add(t, o));
    assert_int_equal(t->pending, 100001);
    assert_int_equal(sl_acktrack_head_offset(t), 0);
    assert_true(sl_acktrack_bytes(t) >= 100001 * 9);
    assert_int_equal(b.used, sl_acktrack_bytes(t));
    size_t big = sl_acktrack_bytes(t);
    sl_acktrack_done(t, head);
    assert_int_equal(t->commit_next, 100001);
    assert_int_equal(sl_acktrack_head_offset(t), -1);
    /* at once, all the way down: a source that paused for it may add nothing until it shrank */
    assert_int_equal(t->cap, 256);
    assert_true(sl_acktrack_bytes(t) < big);
    assert_int_equal(b.used, sl_acktrack_bytes(t));
    /* a steady load shrinks it all the way down and it still works */
    for (int64_t o = 100002; o < 100100; o++)
        sl_acktrack_done(t, sl_acktrack_add(t, o));
    assert_int_equal(t->cap, 256);
    assert_int_equal(t->commit_next, 100100);
    sl_acktrack_revoke(t);
    assert_int_equal(b.used, 0);
}

static void test_shrink_keeps_pending_in_order(void **state)
{
    (void)state;
    reset();
    /* Shrinking moves a wrapped ring: the records still pending keep their seqs and order. */
    struct sl_acktrack *t = sl_acktrack_new(NULL, on_adv);
    uint64_t seqs[2048];
    for (int i = 0; i < 2048; i++)
        seqs[i] = sl_acktrack_add(t, 10 + 2 * i);
    for (int i = 0; i < 1900; i++)
        sl_acktrack_done(t, seqs[i]);
    assert_int_equal(t->pending, 148);
    assert_true(t->cap < 2048);
    assert_int_equal(sl_acktrack_head_offset(t), 10 + 2 * 1900);
    for (int i = 2047; i >= 1900; i--)
        sl_acktrack_done(t, seqs[i]);
    assert_int_equal(t->commit_next, 10 + 2 * 2047 + 1);
    assert_int_equal(t->pending, 0);
    sl_acktrack_revoke(t);
}

static void test_head_note(void **state)
{
    (void)state;
    reset();
    /* The reason shown for a waiting partition is the one noted for its oldest record. */
    struct sl_acktrack *t = sl_acktrack_new(NULL, on_adv);
    uint64_t s0 = sl_acktrack_add(t, 5);
    uint64_t s1 = sl_acktrack_add(t, 6);
    uint64_t s2 = sl_acktrack_add(t, 7);
    assert_null(sl_acktrack_head_note(t));
    sl_acktrack_note(t, s1, "HTTP 429 later");
    assert_null(sl_acktrack_head_note(t)); /* not the head's */
    sl_acktrack_note(t, s0, "HTTP 403 security_exception: no");
    assert_string_equal(sl_acktrack_head_note(t), "HTTP 403 security_exception: no");
    sl_acktrack_note(t, s2, "HTTP 503 ignored: an older record's note is kept");
    assert_string_equal(sl_acktrack_head_note(t), "HTTP 403 security_exception: no");
    sl_acktrack_done(t, s0);
    assert_null(sl_acktrack_head_note(t)); /* s1 is the head now; its note was replaced */
    sl_acktrack_note(t, s1, "HTTP 429 again");
    assert_string_equal(sl_acktrack_head_note(t), "HTTP 429 again");
    sl_acktrack_note(t, s0, "late note of a finished record");
    assert_string_equal(sl_acktrack_head_note(t), "HTTP 429 again");
    sl_acktrack_done(t, s1);
    sl_acktrack_done(t, s2);
    assert_null(sl_acktrack_head_note(t));
    sl_acktrack_revoke(t);
}

static void test_free_all_at_exit(void **state)
{
    (void)state;
    reset();
    /* Revoked with records that will never finish (the process exits): freed at the end, and
     * their charge given back. Under the sanitizer build a leak fails this test. */
    struct sl_budget b;
    sl_budget_init(&b, 1u << 30);
    struct sl_acktrack *a = sl_acktrack_new(NULL, on_adv);
    struct sl_acktrack *c = sl_acktrack_new(NULL, on_adv);
    sl_acktrack_set_budget(a, &b);
    for (int64_t o = 0; o < 1000; o++)
        sl_acktrack_add(a, o);
    sl_acktrack_add(c, 7);
    sl_acktrack_revoke(a);
    assert_true(b.used > 0);
    sl_acktrack_free_all();
    assert_int_equal(b.used, 0);
    sl_acktrack_free_all(); /* nothing left: a no-op */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_out_of_order_holds_watermark),
        cmocka_unit_test(test_offset_gaps),
        cmocka_unit_test(test_growth_with_random_order),
        cmocka_unit_test(test_wraparound_reuse),
        cmocka_unit_test(test_revoke_with_pending_then_late_acks),
        cmocka_unit_test(test_restart_resumes_from_commit),
        cmocka_unit_test(test_stuck_head_charged_and_shrinks),
        cmocka_unit_test(test_shrink_keeps_pending_in_order),
        cmocka_unit_test(test_head_note),
        cmocka_unit_test(test_free_all_at_exit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
