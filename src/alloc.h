/* The process's allocator policy, in one place: glibc's malloc settings and, in builds with
 * SLUICE_ALLOCATOR=blockcache (the default), sluice's own big-block cache and small-chunk
 * hand-off (bigalloc.c). Called once at start, before any thread exists. */
#ifndef SLUICE_ALLOC_H
#define SLUICE_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sl_alloc_info {
    uint64_t block_cache; /* bytes of freed big blocks kept for reuse (0: off or not built) */
    bool chunk_handoff;   /* small chunks are handed between threads */
    const char *tunables; /* GLIBC_TUNABLES when it sets malloc options (left as given) */
};

/* Applies the policy for a process whose budget is memory_limit. Returns 0, or -1 with a
 * message in err (a malformed SLUICE_BLOCK_CACHE). */
int sl_alloc_setup(uint64_t memory_limit, struct sl_alloc_info *out, char *err, size_t errlen);

#endif
