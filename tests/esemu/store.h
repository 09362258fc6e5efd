/* Document storage: one open-addressing hash table per index.
 *
 * Normal mode keeps id, version, seq_no and the raw source bytes per document. Count-only mode
 * keeps just the 64-bit hash of the id and its version, so a benchmark can push millions of
 * documents through without the emulator's memory or cache misses mattering; ids are then only as
 * unique as the 64-bit hash (collisions are vanishingly unlikely at benchmark sizes). */
#ifndef ESEMU_STORE_H
#define ESEMU_STORE_H

#include <stddef.h>
#include <stdint.h>

struct doc {
    int64_t version;
    int64_t seq_no;
    uint32_t id_len;
    uint32_t src_len;
    char data[]; /* id bytes, then source bytes */
};

/* 16 bytes, so a table of millions of count-only entries stays cache- and TLB-friendly. */
struct slot {
    uint64_t hash; /* 0 = empty */
    union {
        struct doc *doc; /* normal mode */
        int64_t version; /* count-only mode */
    } u;
};

struct arena_chunk;

/* A field an index maps explicitly with a type esemu checks (indices.c). */
struct efield {
    char *path; /* dotted */
    int type;
};

/* index.blocks.* (indices.c) */
enum { IXB_WRITE = 1, IXB_READ_ONLY = 2, IXB_READ_ONLY_ALLOW_DELETE = 4 };

struct eindex {
    struct arena_chunk *arena; /* document memory; freed only with the index */
    char *name;
    size_t name_len;
    char uuid[23];
    struct slot *slots;
    size_t cap; /* power of two */
    size_t count;
    int64_t seq_no;
    struct efield *fields; /* from PUT /{index} mappings; none for auto-created indices */
    size_t n_fields;
    unsigned blocks; /* IXB_* */
};

struct store {
    int count_only;
    struct eindex **idx;
    size_t n, cap;
    size_t total_docs;
    /* Bumped whenever existing slots move or vanish, so a streaming dump can tell its cursor went
     * stale. */
    uint64_t layout_gen;
};

uint64_t emu_hash(const void *p, size_t n, uint64_t seed);
uint64_t emu_rand(void);
void emu_seed(uint64_t seed);
void emu_gen_id(char out[20]);

struct eindex *store_index(struct store *s, const char *name, size_t n, int create);
uint64_t store_id_hash(const char *id, size_t n);
/* Finds id in ix. Returns the slot index when present, else -1 - (the free slot it would take).
 * *h gets the id hash; pass a precomputed one in *h, or 0 to have it computed. */
long store_find(const struct store *s, const struct eindex *ix, const char *id, size_t n,
                uint64_t *h);
int64_t slot_version(const struct store *s, const struct slot *sl);
/* Replaces slot `at` when at >= 0, else inserts the new document where store_find said. */
void store_put(struct store *s, struct eindex *ix, long at, uint64_t h, const char *id, size_t idn,
               const char *src, size_t srcn, int64_t version);
void store_del(struct store *s, struct eindex *ix, size_t at);
void store_drop(struct store *s, size_t i);
void store_reset(struct store *s);

/* Checks an index name against the Elasticsearch rules; on failure writes the ES reason text. */
int index_name_invalid(const char *name, size_t n, char *reason, size_t rn);
/* Resolves an index expression (comma list, '*' wildcards, _all). Fills sel (s->n entries) with
 * 0/1. Returns 0, or -1 with the first concrete name that does not exist in *missing. */
int store_select(const struct store *s, const char *expr, size_t n, unsigned char *sel,
                 const char **missing, size_t *missing_n);
int glob_match(const char *pat, size_t pn, const char *s, size_t sn);

#endif
