/* Large allocations for the sluice binary: a small, bounded cache of freed big blocks.
 *
 * Why: with glibc's fixed 128 KiB mmap threshold (needed so freed batch bodies go back to the
 * kernel and RSS stays within the budget, see main.c) every big block is a fresh mapping.
 * librdkafka reads each Fetch response into a new buffer of the response's size (up to
 * fetch.max.bytes), so each one is mapped, faulted in page by page and unmapped again. In a
 * page-fault profile of the code without this cache, 89% of sluice's faults were in librdkafka's
 * recvmsg, and on a paravirtualised VM each fault costs microseconds (docs/performance.md, "Page
 * faults", "Block cache").
 * glibc's heap reuse avoids the faults but keeps freed holes, and peak RSS then broke the bound
 * in test_core_stall; jemalloc and mimalloc used more memory still.
 *
 * So blocks of SL_BIG_MIN bytes and more are served here, each from a slot of a reserved
 * address range, and a freed block stays mapped in a cache of at most `cap` bytes (set from
 * memory_limit) and SL_BIG_CACHED blocks, to serve the next big request without faults. Beyond
 * the cap a freed block's pages go back to the kernel at once, as glibc's mmapped chunks do.
 * Everything smaller, and anything this cannot serve, is glibc's.
 *
 * The functions below replace glibc's malloc family for the whole process (glibc supports
 * this: "Replacing malloc" in its manual) and forward to glibc's __libc_* entry points. They
 * are linked into the sluice executable only, never under the sanitizers, which replace
 * malloc themselves. */
#include "bigalloc.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if SLUICE_CHUNK_HANDOFF
#include <valgrind/valgrind.h>
#endif

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

#define SLOT_SHIFT 25 /* 32 MiB per slot: bigger requests are glibc's */
#define SLOT_SIZE ((size_t)1 << SLOT_SHIFT)
#define NSLOTS 256 /* 8 GiB of address space, reserved, never committed as a whole */
#define PAGE 4096u

static atomic_uintptr_t g_base; /* 0 until the range is reserved */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_reserve_failed;
/* Per slot: bytes mapped read-write from its start (0: free). Only the block's owner touches
 * its own entry between malloc and free; free lists and the cache are under g_mu. */
static size_t g_mapped[NSLOTS];
static uint16_t g_free[NSLOTS];
static int g_nfree;
static uint16_t g_cache[SL_BIG_CACHED];
static int g_ncache;
static size_t g_cached_bytes;
static size_t g_cap;
static atomic_int g_on; /* 0: every request is glibc's (blocks already out are still freed here) */
static struct sl_bigalloc_stats g_stats;
static size_t (*g_glibc_usable)(void *);

static size_t page_round(size_t n)
{
    return (n + PAGE - 1) & ~(size_t)(PAGE - 1);
}

static char *slot_addr(uintptr_t base, int i)
{
    return (char *)base + ((size_t)i << SLOT_SHIFT);
}

static int ours(const void *p, uintptr_t *base, int *slot)
{
    uintptr_t b = atomic_load_explicit(&g_base, memory_order_acquire);
    if (!b || (uintptr_t)p - b >= (size_t)NSLOTS << SLOT_SHIFT) return 0;
    *base = b;
    *slot = (int)(((uintptr_t)p - b) >> SLOT_SHIFT);
    return 1;
}

/* Replaces [addr, addr+len) with an inaccessible, uncommitted mapping: its pages go back to
 * the kernel and the range stays reserved. */
static int release(char *addr, size_t len)
{
    if (!len) return 0;
    void *r =
        mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    return r == MAP_FAILED ? -1 : 0;
}

/* Grows or shrinks a slot's read-write region to `want` bytes (page-rounded). */
static int resize(char *addr, size_t have, size_t want)
{
    if (want > have) {
        void *r = mmap(addr + have, want - have, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        return r == MAP_FAILED ? -1 : 0;
    }
    return release(addr + want, have - want);
}

static void reserve_locked(void)
{
    if (atomic_load_explicit(&g_base, memory_order_relaxed) || g_reserve_failed) return;
    /* Aligned to the slot size so a slot's index is a shift away. */
    size_t span = ((size_t)NSLOTS + 1) << SLOT_SHIFT;
    char *r = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) {
        g_reserve_failed = 1; /* e.g. under a tight RLIMIT_AS: everything stays glibc's */
        return;
    }
    uintptr_t b = ((uintptr_t)r + SLOT_SIZE - 1) & ~(uintptr_t)(SLOT_SIZE - 1);
    if (b > (uintptr_t)r) munmap(r, b - (uintptr_t)r);
    munmap((char *)b + ((size_t)NSLOTS << SLOT_SHIFT),
           (uintptr_t)r + span - b - ((size_t)NSLOTS << SLOT_SHIFT));
    for (int i = 0; i < NSLOTS; i++)
        g_free[i] = (uint16_t)(NSLOTS - 1 - i);
    g_nfree = NSLOTS;
    atomic_store_explicit(&g_base, b, memory_order_release);
}

/* Gives a slot's pages back and returns it to the free list. A slot the kernel would not
 * release is leaked rather than handed out again with stale pages. */
static void slot_free(uintptr_t b, int slot)
{
    if (release(slot_addr(b, slot), g_mapped[slot]) != 0) return;
    g_mapped[slot] = 0;
    pthread_mutex_lock(&g_mu);
    g_free[g_nfree++] = (uint16_t)slot;
    pthread_mutex_unlock(&g_mu);
}

/* A block of at least n bytes, or NULL when this allocator cannot serve it. *dirty is how many
 * leading bytes may hold old data (the rest is fresh zero pages). */
static void *big_alloc(size_t n, size_t *dirty)
{
    if (n < SL_BIG_MIN || n > SLOT_SIZE || !atomic_load_explicit(&g_on, memory_order_relaxed))
        return NULL;
    size_t want = page_round(n);
    pthread_mutex_lock(&g_mu);
    reserve_locked();
    uintptr_t b = atomic_load_explicit(&g_base, memory_order_relaxed);
    int slot = -1;
    if (b && g_ncache) {
        /* The cached block nearest in size: fewest pages to fault in or to give back. */
        int best = 0;
        size_t bestd = SIZE_MAX;
        for (int i = 0; i < g_ncache; i++) {
            size_t m = g_mapped[g_cache[i]];
            size_t d = m > want ? m - want : want - m;
            if (d < bestd) bestd = d, best = i;
        }
        slot = g_cache[best];
        g_cache[best] = g_cache[--g_ncache];
        g_cached_bytes -= g_mapped[slot];
        g_stats.reused++;
    } else if (b && g_nfree) {
        slot = g_free[--g_nfree];
        g_stats.fresh++;
    }
    pthread_mutex_unlock(&g_mu);
    if (slot < 0) return NULL;
    char *a = slot_addr(b, slot);
    size_t have = g_mapped[slot];
    if (resize(a, have, want) != 0) {
        slot_free(b, slot);
        return NULL;
    }
    g_mapped[slot] = want;
    *dirty = have < want ? have : want;
    return a;
}

static void big_free(uintptr_t b, int slot)
{
    pthread_mutex_lock(&g_mu);
    size_t m = g_mapped[slot];
    if (g_ncache < SL_BIG_CACHED && g_cached_bytes + m <= g_cap) {
        g_cache[g_ncache++] = (uint16_t)slot;
        g_cached_bytes += m;
        pthread_mutex_unlock(&g_mu);
        return;
    }
    g_stats.released++;
    pthread_mutex_unlock(&g_mu);
    /* outside the lock: the slot is still ours until it is on the free list */
    slot_free(b, slot);
}

/* ---- small chunks handed from one thread to another ----
 *
 * Why: librdkafka's broker thread callocs one ~300-byte op per fetched message and the thread that
 * consumes it frees it. glibc's per-thread cache cannot carry chunks across threads, so every
 * calloc took the broker arena's lock and every free took it again from the other side, and the
 * two threads contended for it: malloc, free and the lock waits were about a third of the broker
 * thread's samples and an eighth of the main thread's in a profile of the benchmark.
 *
 * So a freed chunk whose glibc size is in [RC_MIN, RC_MAX] goes onto the freeing thread's list
 * for its size; a full list (RC_BATCH chunks) moves to a shared depot under one lock, and a
 * thread whose list is empty takes a whole batch from there: one lock per RC_BATCH chunks
 * instead of two per chunk. The chunks stay glibc's (in use, as far as it knows), so realloc and
 * malloc_usable_size keep working on them. What is kept is bounded: RC_DEPOT_MAX bytes in the
 * depot, beyond which batches go back to glibc, and fewer than RC_BATCH chunks per size per thread,
 * which go back to glibc when the thread exits. */
#if SLUICE_CHUNK_HANDOFF
#define RC_MIN 256
#define RC_MAX 512
#define RC_N ((RC_MAX - RC_MIN) / 16 + 1)
#define RC_BATCH 32
#define RC_DEPOT_MAX SL_CHUNK_DEPOT_MAX

struct rc_list {
    void *head; /* chunks linked through their first word */
    unsigned n;
};
static __thread struct rc_list t_rc[RC_N];
/* 0: not registered for the exit flush, 1: registered, 2: exiting */
static __thread int t_rc_state;
static pthread_key_t g_rc_key;
static pthread_once_t g_rc_once = PTHREAD_ONCE_INIT;
static int g_rc_key_ok;
static atomic_int g_rc_on;
static pthread_mutex_t g_rc_mu = PTHREAD_MUTEX_INITIALIZER;
/* Per size, a stack of full batches, each linked to the next through its head's second word. */
static void *g_rc_depot[RC_N];
static size_t g_rc_depot_bytes;

/* glibc's chunk size for a request (request2size: 8 bytes of header, 16-byte alignment). */
static inline size_t rc_request_chunk(size_t n)
{
    size_t c = (n + 8 + 15) & ~(size_t)15;
    return c < 32 ? 32 : c;
}

/* The size field of a glibc chunk, 0 for an mmapped one (never recycled). */
static inline size_t rc_ptr_chunk(const void *p)
{
    size_t f = ((const size_t *)p)[-1];
    return (f & 2) ? 0 : f & ~(size_t)7;
}

static void rc_release(void *l)
{
    while (l) {
        void *next = *(void **)l;
        __libc_free(l);
        l = next;
    }
}

/* Gives a full batch to the depot, or back to glibc when the depot is full. */
static void rc_deposit(int c, void *batch)
{
    size_t bytes = (size_t)RC_BATCH * (RC_MIN + 16 * (size_t)c);
    pthread_mutex_lock(&g_rc_mu);
    if (g_rc_depot_bytes + bytes <= RC_DEPOT_MAX) {
        ((void **)batch)[1] = g_rc_depot[c];
        __atomic_store_n(&g_rc_depot[c], batch, __ATOMIC_RELAXED);
        g_rc_depot_bytes += bytes;
        batch = NULL;
    }
    pthread_mutex_unlock(&g_rc_mu);
    rc_release(batch);
}

/* A thread's lists are never full (a full one moves to the depot at once): back to glibc. */
static void rc_thread_exit(void *unused)
{
    (void)unused;
    t_rc_state = 2;
    for (int c = 0; c < RC_N; c++) {
        rc_release(t_rc[c].head);
        t_rc[c].head = NULL;
        t_rc[c].n = 0;
    }
}

static void rc_key_init(void)
{
    g_rc_key_ok = pthread_key_create(&g_rc_key, rc_thread_exit) == 0;
}

/* A thread's lists must be flushed when it exits: the first use registers it. */
static int rc_ready(void)
{
    if (t_rc_state == 1) return 1;
    if (t_rc_state == 2) return 0;
    pthread_once(&g_rc_once, rc_key_init);
    t_rc_state = g_rc_key_ok && pthread_setspecific(g_rc_key, (void *)1) == 0 ? 1 : 2;
    return t_rc_state == 1;
}

static int rc_push(void *p)
{
    size_t cs = rc_ptr_chunk(p);
    if (cs < RC_MIN || cs > RC_MAX || !rc_ready()) return 0;
    int c = (int)((cs - RC_MIN) >> 4);
    struct rc_list *l = &t_rc[c];
    *(void **)p = l->head;
    l->head = p;
    if (++l->n == RC_BATCH) {
        void *batch = l->head;
        l->head = NULL;
        l->n = 0;
        rc_deposit(c, batch);
    }
    return 1;
}

/* A chunk handed over by another thread for a request of n < SL_BIG_MIN bytes, or NULL. */
static void *rc_pop(size_t n)
{
    if (!atomic_load_explicit(&g_rc_on, memory_order_relaxed)) return NULL;
    size_t cs = rc_request_chunk(n);
    if (cs < RC_MIN || cs > RC_MAX) return NULL;
    int c = (int)((cs - RC_MIN) >> 4);
    struct rc_list *l = &t_rc[c];
    if (!l->head) {
        /* Unlocked peek first: most sizes a thread allocates are never in the depot. */
        if (!__atomic_load_n(&g_rc_depot[c], __ATOMIC_RELAXED) || !rc_ready()) return NULL;
        pthread_mutex_lock(&g_rc_mu);
        void *b = g_rc_depot[c];
        if (b) {
            __atomic_store_n(&g_rc_depot[c], ((void **)b)[1], __ATOMIC_RELAXED);
            g_rc_depot_bytes -= (size_t)RC_BATCH * cs;
        }
        pthread_mutex_unlock(&g_rc_mu);
        if (!b) return NULL;
        l->head = b;
        l->n = RC_BATCH;
    }
    void *p = l->head;
    l->head = *(void **)p;
    l->n--;
    return p;
}
#else
static atomic_int g_rc_on; /* never set: this build hands no chunks over */
static size_t g_rc_depot_bytes;
static pthread_mutex_t g_rc_mu = PTHREAD_MUTEX_INITIALIZER;
static int rc_push(void *p)
{
    (void)p;
    return 0;
}
static void *rc_pop(size_t n)
{
    (void)n;
    return NULL;
}
#endif

bool sl_bigalloc_set_cache(size_t bytes)
{
#if SLUICE_CHUNK_HANDOFF
    /* Under valgrind, glibc's malloc is valgrind's: its blocks have no glibc chunk header. */
    atomic_store(&g_rc_on, bytes > 0 && !RUNNING_ON_VALGRIND);
#endif
    pthread_mutex_lock(&g_mu);
    g_cap = bytes;
    atomic_store(&g_on, bytes > 0);
    pthread_mutex_unlock(&g_mu);
    /* Drop what the new cap no longer allows. */
    for (;;) {
        pthread_mutex_lock(&g_mu);
        if (g_cached_bytes <= g_cap || !g_ncache) {
            pthread_mutex_unlock(&g_mu);
            break;
        }
        int slot = g_cache[--g_ncache];
        g_cached_bytes -= g_mapped[slot];
        g_stats.released++;
        pthread_mutex_unlock(&g_mu);
        slot_free(atomic_load_explicit(&g_base, memory_order_relaxed), slot);
    }
    return atomic_load(&g_rc_on) != 0;
}

struct sl_bigalloc_stats sl_bigalloc_stats(void)
{
    pthread_mutex_lock(&g_mu);
    struct sl_bigalloc_stats s = g_stats;
    s.cached_bytes = g_cached_bytes;
    s.cached_blocks = (size_t)g_ncache;
    s.cap = g_cap;
    pthread_mutex_unlock(&g_mu);
    pthread_mutex_lock(&g_rc_mu);
    s.chunk_depot_bytes = g_rc_depot_bytes;
    pthread_mutex_unlock(&g_rc_mu);
    return s;
}

__attribute__((constructor)) static void find_glibc_usable(void)
{
    g_glibc_usable = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
}

void *malloc(size_t n)
{
    size_t dirty;
    void *p = n < SL_BIG_MIN ? rc_pop(n) : big_alloc(n, &dirty);
    return p ? p : __libc_malloc(n);
}

void free(void *p)
{
    uintptr_t b;
    int slot;
    if (!p) return;
    if (ours(p, &b, &slot))
        big_free(b, slot);
    else if (!atomic_load_explicit(&g_rc_on, memory_order_relaxed) || !rc_push(p))
        __libc_free(p);
}

void *calloc(size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    size_t dirty = n;
    void *p = n < SL_BIG_MIN ? rc_pop(n) : big_alloc(n, &dirty);
    if (!p) return __libc_calloc(nmemb, size);
    memset(p, 0, dirty < n ? dirty : n);
    return p;
}

void *realloc(void *p, size_t n)
{
    uintptr_t b;
    int slot;
    if (!p) return malloc(n);
    if (!ours(p, &b, &slot)) {
        if (n < SL_BIG_MIN || !g_glibc_usable) return __libc_realloc(p, n);
        size_t dirty, old = g_glibc_usable(p);
        if (n <= old) return p;
        void *q = big_alloc(n, &dirty);
        if (!q) return __libc_realloc(p, n);
        memcpy(q, p, old);
        __libc_free(p);
        return q;
    }
    if (!n) {
        big_free(b, slot);
        return NULL;
    }
    char *a = slot_addr(b, slot);
    size_t have = g_mapped[slot], want = page_round(n);
    if (n <= SLOT_SIZE) {
        /* In place, the slot is ours: growing maps pages after the block, no copy. */
        if (want == have || resize(a, have, want) == 0) {
            g_mapped[slot] = want;
            return a;
        }
        return NULL;
    }
    void *q = __libc_malloc(n);
    if (!q) return NULL;
    memcpy(q, a, have);
    big_free(b, slot);
    return q;
}

static void *aligned(size_t align, size_t n)
{
    size_t dirty;
    void *p = align <= PAGE ? big_alloc(n, &dirty) : NULL;
    return p ? p : __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n)
{
    return aligned(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    return aligned(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1))) return EINVAL;
    void *p = aligned(align, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

void *valloc(size_t n)
{
    return aligned(PAGE, n);
}

void *pvalloc(size_t n)
{
    return aligned(PAGE, page_round(n ? n : 1));
}

size_t malloc_usable_size(void *p)
{
    uintptr_t b;
    int slot;
    if (!p) return 0;
    if (ours(p, &b, &slot)) return g_mapped[slot];
    return g_glibc_usable ? g_glibc_usable(p) : 0;
}
