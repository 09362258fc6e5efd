/* Large allocations for the sluice binary: see bigalloc.c for why. */
#ifndef SLUICE_BIGALLOC_H
#define SLUICE_BIGALLOC_H

#include <stdbool.h>
#include <stddef.h>

/* Requests of this many bytes and more come from bigalloc; glibc keeps the rest. Equal to the
 * mmap threshold main.c gives glibc, so no size is mapped by both. */
#define SL_BIG_MIN ((size_t)128 * 1024)
/* At most this many freed blocks wait for reuse. */
#define SL_BIG_CACHED 16

struct sl_bigalloc_stats {
    unsigned long long fresh;    /* blocks mapped anew */
    unsigned long long reused;   /* blocks served from the cache */
    unsigned long long released; /* freed blocks whose pages went back to the kernel */
    size_t cached_bytes, cached_blocks, cap;
    size_t chunk_depot_bytes; /* small freed chunks waiting in the shared depot for reuse */
};

/* At most this many bytes of freed small chunks (glibc sizes 256-512) wait in the shared depot
 * to be handed to another thread; each thread also keeps up to 32 per size. */
#define SL_CHUNK_DEPOT_MAX ((size_t)1 << 20)

/* Bytes of freed big blocks kept mapped for reuse. 0, as at start, turns the cache off: glibc
 * then serves every size, and blocks already handed out are still freed here. Small chunks are
 * handed between threads (see bigalloc.c) while it is on, in builds with SLUICE_CHUNK_HANDOFF,
 * except under valgrind. Returns whether chunks are handed over now. */
bool sl_bigalloc_set_cache(size_t bytes);
struct sl_bigalloc_stats sl_bigalloc_stats(void);

#endif
