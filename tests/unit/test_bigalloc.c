/* The big-block cache (src/bigalloc.c): this test binary links it, so its malloc family is the
 * one under test, as in the sluice binary. */
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "bigalloc.h"

#define MiB ((size_t)1 << 20)

static long minflt(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_minflt;
}

/* Resident bytes of the process, from /proc/self/statm. */
static size_t rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (size_t)sysconf(_SC_PAGESIZE);
}

/* The compiler may drop stores to memory that is freed next: make it believe they are read. */
static void touch(void *p, int c, size_t n)
{
    memset(p, c, n);
    __asm__ volatile("" ::"r"(p) : "memory");
}

static int setup(void **state)
{
    (void)state;
    sl_bigalloc_set_cache(0);
    return 0;
}

static void test_freed_block_is_reused_without_faults(void **state)
{
    (void)state;
    sl_bigalloc_set_cache(8 * MiB);
    char *p = malloc(MiB);
    assert_non_null(p);
    touch(p, 1, MiB);
    free(p);
    struct sl_bigalloc_stats s0 = sl_bigalloc_stats();
    assert_int_equal(s0.cached_blocks, 1);
    long f0 = minflt();
    char *q = malloc(MiB - 4096);
    touch(q, 2, MiB - 4096);
    long faults = minflt() - f0;
    assert_ptr_equal(q, p);
    /* 256 pages; a fresh mapping faults on each of them */
    assert_true(faults < 32);
    assert_int_equal(sl_bigalloc_stats().reused, s0.reused + 1);
    free(q);
}

static void test_calloc_of_reused_block_is_zero(void **state)
{
    (void)state;
    sl_bigalloc_set_cache(8 * MiB);
    size_t n = 3 * MiB / 2;
    unsigned char *p = malloc(n);
    touch(p, 0xAA, n);
    free(p);
    unsigned char *q = calloc(1, 2 * MiB); /* bigger: part old pages, part fresh */
    assert_ptr_equal(q, p);
    for (size_t i = 0; i < 2 * MiB; i++)
        if (q[i]) fail_msg("byte %zu is %d", i, q[i]);
    free(q);
    volatile size_t huge = SIZE_MAX / 2; /* volatile: gcc rejects a constant overflow */
    assert_null(calloc(huge, 4));
}

static void test_cache_is_capped(void **state)
{
    (void)state;
    sl_bigalloc_set_cache(2 * MiB);
    char *p[6];
    for (int i = 0; i < 6; i++) {
        p[i] = malloc(MiB);
        touch(p[i], i, MiB);
    }
    size_t before = rss();
    for (int i = 0; i < 6; i++)
        free(p[i]);
    struct sl_bigalloc_stats s = sl_bigalloc_stats();
    assert_true(s.cached_bytes <= 2 * MiB);
    assert_int_equal(s.cached_blocks, 2);
    /* the other four went back to the kernel */
    assert_true(rss() + 3 * MiB < before);
    sl_bigalloc_set_cache(0);
    s = sl_bigalloc_stats();
    assert_int_equal(s.cached_bytes, 0);
    assert_int_equal(s.cached_blocks, 0);
}

static void test_realloc_keeps_content(void **state)
{
    (void)state;
    sl_bigalloc_set_cache(8 * MiB);
    /* small (glibc's) to big (ours) */
    unsigned char *p = malloc(1000);
    for (int i = 0; i < 1000; i++)
        p[i] = (unsigned char)i;
    unsigned char *q = realloc(p, 300 * 1024);
    assert_non_null(q);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(q[i], (unsigned char)i);
    assert_true(malloc_usable_size(q) >= 300 * 1024);
    /* ours grows in place */
    q[300 * 1024 - 1] = 7;
    unsigned char *r = realloc(q, 8 * MiB);
    assert_ptr_equal(r, q);
    assert_int_equal(r[999], (unsigned char)999);
    assert_int_equal(r[300 * 1024 - 1], 7);
    r[8 * MiB - 1] = 9;
    /* past the slot size: moved to glibc, content kept */
    unsigned char *big = realloc(r, 40 * MiB);
    assert_non_null(big);
    assert_int_equal(big[999], (unsigned char)999);
    assert_int_equal(big[8 * MiB - 1], 9);
    free(big);
    /* realloc to 0 frees */
    void *z = malloc(MiB);
    assert_null(realloc(z, 0));
}

static void test_alignment(void **state)
{
    (void)state;
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, 4096, MiB), 0);
    assert_int_equal((uintptr_t)p % 4096, 0);
    free(p);
    void *q = aligned_alloc(65536, MiB); /* beyond a page: glibc's */
    assert_non_null(q);
    assert_int_equal((uintptr_t)q % 65536, 0);
    free(q);
    void *v = valloc(200 * 1024);
    assert_int_equal((uintptr_t)v % 4096, 0);
    free(v);
    assert_int_equal(posix_memalign(&p, 3, 16), 22 /* EINVAL */);
}

static void test_small_blocks_are_glibcs(void **state)
{
    (void)state;
    sl_bigalloc_set_cache(8 * MiB);
    struct sl_bigalloc_stats s0 = sl_bigalloc_stats();
    void *p = malloc(SL_BIG_MIN - 1);
    touch(p, 0, 1);
    free(p);
    struct sl_bigalloc_stats s1 = sl_bigalloc_stats();
    assert_int_equal(s1.fresh + s1.reused, s0.fresh + s0.reused);
    p = malloc(SL_BIG_MIN);
    touch(p, 0, 1);
    free(p);
    s1 = sl_bigalloc_stats();
    assert_int_equal(s1.fresh + s1.reused, s0.fresh + s0.reused + 1);
}

/* A cap of 0 hands every size to glibc; a block served before is still freed right. */
static void test_off(void **state)
{
    (void)state;
    sl_bigalloc_set_cache(8 * MiB);
    char *mine = malloc(MiB);
    touch(mine, 3, MiB);
    sl_bigalloc_set_cache(0);
    struct sl_bigalloc_stats s0 = sl_bigalloc_stats();
    char *p = malloc(MiB);
    touch(p, 4, MiB);
    char *grown = realloc(mine, 2 * MiB); /* still ours: grows in place */
    assert_ptr_equal(grown, mine);
    assert_int_equal(grown[MiB - 1], 3);
    free(p);
    free(grown);
    struct sl_bigalloc_stats s1 = sl_bigalloc_stats();
    assert_int_equal(s1.fresh + s1.reused, s0.fresh + s0.reused);
    assert_int_equal(s1.cached_blocks, 0);
    assert_int_equal(s1.released, s0.released + 1);
}

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    unsigned char *held[4] = {0};
    size_t len[4] = {0};
    for (int i = 0; i < 3000; i++) {
        int k = (int)(rand_r(&seed) % 4);
        if (held[k]) {
            unsigned char tag = (unsigned char)(k + 16 * (uintptr_t)arg);
            if (held[k][0] != tag || held[k][len[k] - 1] != tag || held[k][len[k] / 2] != tag)
                return (void *)1;
            free(held[k]);
        }
        len[k] = SL_BIG_MIN + rand_r(&seed) % (3 * MiB);
        held[k] = malloc(len[k]);
        if (!held[k]) return (void *)1;
        unsigned char tag = (unsigned char)(k + 16 * (uintptr_t)arg);
        held[k][0] = held[k][len[k] - 1] = held[k][len[k] / 2] = tag;
    }
    for (int k = 0; k < 4; k++)
        free(held[k]);
    return NULL;
}

/* Blocks move between threads' use through the shared cache: none is handed out twice. */
static void test_threads(void **state)
{
    (void)state;
    sl_bigalloc_set_cache(6 * MiB);
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, churn, (void *)(i + 1));
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_null(r);
    }
    struct sl_bigalloc_stats s = sl_bigalloc_stats();
    assert_true(s.cached_bytes <= 6 * MiB);
    assert_true(s.reused > 0);
}

#if SLUICE_CHUNK_HANDOFF
/* ---- small chunks handed between threads ---- */

#define CHUNK 300 /* glibc chunk 320, like librdkafka's per-message op */
#define NCHUNK 128

struct handoff {
    void *p[NCHUNK];
    int bad;
};

static void *alloc_chunks(void *arg)
{
    struct handoff *h = arg;
    for (int i = 0; i < NCHUNK; i++) {
        unsigned char *c = calloc(1, CHUNK);
        if (!c) return (void *)1;
        for (int k = 0; k < CHUNK; k++)
            if (c[k]) h->bad = 1;
        touch(c, 0x5a, CHUNK);
        h->p[i] = c;
    }
    return NULL;
}

static int in_set(void *p, void *const *set, int n)
{
    for (int i = 0; i < n; i++)
        if (set[i] == p) return 1;
    return 0;
}

/* Chunks one thread allocates and another frees go back to an allocating thread, zeroed by
 * calloc, without glibc; the depot is empty again once they are taken. */
static void test_chunks_cross_threads(void **state)
{
    (void)state;
    sl_bigalloc_set_cache(8 * MiB);
    struct handoff a = {0}, b = {0};
    pthread_t t;
    pthread_create(&t, NULL, alloc_chunks, &a);
    pthread_join(t, NULL);
    size_t d0 = sl_bigalloc_stats().chunk_depot_bytes;
    for (int i = 0; i < NCHUNK; i++)
        free(a.p[i]); /* this thread frees what the other allocated */
    assert_int_equal(sl_bigalloc_stats().chunk_depot_bytes, d0 + NCHUNK * 320);
    pthread_create(&t, NULL, alloc_chunks, &b);
    pthread_join(t, NULL);
    assert_int_equal(b.bad, 0); /* calloc zeroed what was reused */
    for (int i = 0; i < NCHUNK; i++)
        assert_true(in_set(b.p[i], a.p, NCHUNK));
    assert_int_equal(sl_bigalloc_stats().chunk_depot_bytes, d0);
    /* a recycled chunk is still glibc's: realloc moves its content */
    char *r = realloc(b.p[0], 5000);
    assert_non_null(r);
    assert_int_equal((unsigned char)r[CHUNK - 1], 0x5a);
    assert_true(malloc_usable_size(b.p[1]) >= CHUNK);
    free(r);
    for (int i = 1; i < NCHUNK; i++)
        free(b.p[i]);
}

/* However many chunks are freed at once, the depot keeps at most SL_CHUNK_DEPOT_MAX bytes. */
static void test_chunk_depot_is_bounded(void **state)
{
    (void)state;
    sl_bigalloc_set_cache(8 * MiB);
    enum { N = 20000 };
    void **p = malloc(N * sizeof *p);
    for (int i = 0; i < N; i++)
        p[i] = malloc(CHUNK);
    for (int i = 0; i < N; i++)
        free(p[i]);
    free(p);
    size_t d = sl_bigalloc_stats().chunk_depot_bytes;
    assert_true(d > 0);
    assert_true(d <= SL_CHUNK_DEPOT_MAX);
}

static void *free_some(void *arg)
{
    void **p = arg;
    for (int i = 0; i < 40; i++)
        free(p[i]);
    return NULL; /* exits with 8 chunks on its list: they must go back */
}

/* A thread's list goes back when it exits; with the cache off nothing is kept. */
static void test_chunks_thread_exit_and_off(void **state)
{
    (void)state;
    sl_bigalloc_set_cache(8 * MiB);
    void *p[40];
    for (int i = 0; i < 40; i++)
        p[i] = malloc(CHUNK);
    size_t d0 = sl_bigalloc_stats().chunk_depot_bytes;
    pthread_t t;
    pthread_create(&t, NULL, free_some, p);
    pthread_join(t, NULL);
    size_t d1 = sl_bigalloc_stats().chunk_depot_bytes;
    assert_true(d1 == d0 + 32 * 320 || d1 == d0); /* one full batch, unless the depot was full */
    sl_bigalloc_set_cache(0);
    for (int i = 0; i < 40; i++)
        p[i] = malloc(CHUNK);
    for (int i = 0; i < 40; i++)
        free(p[i]);
    assert_int_equal(sl_bigalloc_stats().chunk_depot_bytes, d1);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_freed_block_is_reused_without_faults, setup),
        cmocka_unit_test_setup(test_calloc_of_reused_block_is_zero, setup),
        cmocka_unit_test_setup(test_cache_is_capped, setup),
        cmocka_unit_test_setup(test_realloc_keeps_content, setup),
        cmocka_unit_test_setup(test_alignment, setup),
        cmocka_unit_test_setup(test_small_blocks_are_glibcs, setup),
        cmocka_unit_test_setup(test_off, setup),
        cmocka_unit_test_setup(test_threads, setup),
#if SLUICE_CHUNK_HANDOFF
        cmocka_unit_test_setup(test_chunks_cross_threads, setup),
        cmocka_unit_test_setup(test_chunk_depot_is_bounded, setup),
        cmocka_unit_test_setup(test_chunks_thread_exit_and_off, setup),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
