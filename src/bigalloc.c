/* Large allocations for the sluice binary: a small, bounded cache of freed big blocks.
 *
 * Why: with glibc's fixed 128 KiB mmap threshold (needed so freed batch bodies go back to the
 * kernel and RSS stays within the budget, see main.c) every big block is a fresh mapping.
 * librdkafka reads each Fetch response into a new buffer of the response's size (up to
 * fetch.max.bytes), so each one is mapped, faulted in page by page and unmapped again: on this
 * project's 2-core VM a minor fault costs about 20 us, and 89% of sluice's 75,000-88,000 faults
 * per million Kafka records were in librdkafka's recvmsg (docs/performance.md, "Page faults").
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
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

void sl_bigalloc_set_cache(size_t bytes)
{
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
}

struct sl_bigalloc_stats sl_bigalloc_stats(void)
{
    pthread_mutex_lock(&g_mu);
    struct sl_bigalloc_stats s = g_stats;
    s.cached_bytes = g_cached_bytes;
    s.cached_blocks = (size_t)g_ncache;
    s.cap = g_cap;
    pthread_mutex_unlock(&g_mu);
    return s;
}

__attribute__((constructor)) static void find_glibc_usable(void)
{
    g_glibc_usable = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
}

void *malloc(size_t n)
{
    size_t dirty;
    void *p = big_alloc(n, &dirty);
    return p ? p : __libc_malloc(n);
}

void free(void *p)
{
    uintptr_t b;
    int slot;
    if (ours(p, &b, &slot))
        big_free(b, slot);
    else
        __libc_free(p);
}

void *calloc(size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    size_t dirty;
    void *p = big_alloc(n, &dirty);
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
