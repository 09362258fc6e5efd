/* See alloc.h. What each setting costs and saves is measured in docs/performance.md ("Page
 * faults", "Block cache", "Allocator"). */
#include "alloc.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SLUICE_BIGALLOC
#include "bigalloc.h"
#endif

int sl_alloc_setup(uint64_t memory_limit, struct sl_alloc_info *out, char *err, size_t errlen)
{
    *out = (struct sl_alloc_info){0};
    /* Batch bodies are hundreds of KiB. With glibc's dynamic mmap threshold, the first free of
     * one raises the threshold and later bodies come from the heap, where freed space is kept
     * rather than returned: RSS then creeps above what the budget accounts for. A fixed
     * threshold keeps big buffers in their own mappings, given back on free (with the block
     * cache on, bigalloc.c serves those sizes instead); two arenas stop librdkafka's threads
     * from each growing a heap of their own.
     * An operator who sets these through GLIBC_TUNABLES chose otherwise, knowingly: heap reuse
     * of librdkafka's fetch buffers costs fewer page faults and more peak RSS, so their setting
     * is left alone. */
    const char *tunables = getenv("GLIBC_TUNABLES");
    bool tuned = tunables && strstr(tunables, "glibc.malloc.");
    if (tuned) out->tunables = tunables;
    if (!tuned || !strstr(tunables, "glibc.malloc.mmap_threshold"))
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    if (!tuned || !strstr(tunables, "glibc.malloc.arena_max")) mallopt(M_ARENA_MAX, 2);
    /* A fixed mmap threshold also keeps glibc's trim threshold at its 128 KiB default, so the
     * heap that holds librdkafka's per-message allocations was given back and faulted in again
     * with every burst of fetched messages (about 5,000 page faults per million records, in the
     * broker thread). Keeping up to 4 MiB of free heap top cannot raise peak RSS: those pages
     * were resident at the peak that freed them. */
    if (!tuned || !strstr(tunables, "glibc.malloc.trim_threshold"))
        mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);
#ifdef SLUICE_BIGALLOC
    /* Freed big blocks (librdkafka's fetch buffers, batch bodies) kept for reuse: a quarter of
     * the budget, at most 16 MiB, is what the RSS bound could spare. Off when the operator
     * tuned glibc's malloc. */
    uint64_t cache = memory_limit / 4 < 16 * 1024 * 1024 ? memory_limit / 4 : 16 * 1024 * 1024;
    const char *bc = getenv("SLUICE_BLOCK_CACHE");
    if (bc) {
        char *end;
        cache = strtoull(bc, &end, 10);
        if (*end || end == bc) {
            snprintf(err, errlen, "SLUICE_BLOCK_CACHE=%s: want a number of bytes", bc);
            return -1;
        }
    } else if (tuned) {
        cache = 0;
    }
    out->chunk_handoff = sl_bigalloc_set_cache((size_t)cache);
    out->block_cache = cache;
#else
    (void)memory_limit;
    (void)err;
    (void)errlen;
#endif
    return 0;
}
