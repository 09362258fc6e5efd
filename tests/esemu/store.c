#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Tables from this size on come straight from mmap with transparent huge pages requested: a
 * count-only benchmark grows one table to tens of megabytes, and 4 KiB page faults and TLB misses
 * then dominate the emulator's CPU time. */
#define BIG_TABLE (4u << 20)

static struct slot *slots_alloc(size_t n)
{
    size_t bytes = n * sizeof(struct slot);
    if (bytes < BIG_TABLE) {
        struct slot *p = calloc(n, sizeof *p);
        if (!p) abort();
        return p;
    }
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "esemu: out of memory (%zu bytes)\n", bytes);
        abort();
    }
    madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

static void slots_free(struct slot *p, size_t n)
{
    if (n * sizeof(struct slot) < BIG_TABLE)
        free(p);
    else
        munmap(p, n * sizeof(struct slot));
}

static uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t fmix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

uint64_t emu_hash(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL);
    while (n >= 8) {
        uint64_t k;
        memcpy(&k, b, 8);
        k *= 0x87c37b91114253d5ULL;
        k = rotl(k, 31) * 0x4cf5ad432745937fULL;
        h = rotl(h ^ k, 27) * 5 + 0x52dce729;
        b += 8;
        n -= 8;
    }
    uint64_t t = 0;
    memcpy(&t, b, n);
    h ^= t * 0x87c37b91114253d5ULL;
    return fmix(h);
}

static uint64_t rng_state = 0x853c49e6748fea9bULL;

void emu_seed(uint64_t seed)
{
    rng_state = seed ^ 0x853c49e6748fea9bULL;
}

/* splitmix64: fast, seedable, and good enough for fault rolls and ids. */
uint64_t emu_rand(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void emu_gen_id(char out[20])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    /* 120 random bits, like the 15 bytes behind an Elasticsearch auto id. */
    uint64_t a = emu_rand(), b = emu_rand();
    for (int i = 0; i < 10; i++, a >>= 6)
        out[i] = b64[a & 63];
    for (int i = 10; i < 20; i++, b >>= 6)
        out[i] = b64[b & 63];
}

#define ARENA_CHUNK (32u << 20)

struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used;
    char data[];
};

static void *arena_alloc(struct eindex *ix, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct arena_chunk *a = ix->arena;
    if (!a || a->size - a->used < n) {
        size_t size = n + sizeof *a > ARENA_CHUNK ? n + sizeof *a : ARENA_CHUNK;
        a = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (a == MAP_FAILED) {
            fprintf(stderr, "esemu: out of memory\n");
            abort();
        }
        madvise(a, size, MADV_HUGEPAGE);
        a->next = ix->arena;
        a->size = size - sizeof *a;
        a->used = 0;
        ix->arena = a;
    }
    void *p = a->data + a->used;
    a->used += n;
    return p;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n, sz);
    if (!p) {
        fprintf(stderr, "esemu: out of memory\n");
        abort();
    }
    return p;
}

struct eindex *store_index(struct store *s, const char *name, size_t n, int create)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->idx[i]->name_len == n && memcmp(s->idx[i]->name, name, n) == 0) return s->idx[i];
    if (!create) return NULL;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->idx = realloc(s->idx, s->cap * sizeof *s->idx);
        if (!s->idx) abort();
    }
    struct eindex *ix = xcalloc(1, sizeof *ix);
    ix->name = xcalloc(1, n + 1);
    memcpy(ix->name, name, n);
    ix->name_len = n;
    emu_gen_id(ix->uuid);
    ix->uuid[20] = 'A';
    ix->uuid[21] = 'g';
    ix->uuid[22] = 0;
    ix->cap = 1024;
    ix->slots = slots_alloc(ix->cap);
    s->idx[s->n++] = ix;
    return ix;
}

uint64_t store_id_hash(const char *id, size_t n)
{
    uint64_t hv = emu_hash(id, n, 0x5eed);
    return hv ? hv : 1;
}

long store_find(const struct store *s, const struct eindex *ix, const char *id, size_t n,
                uint64_t *h)
{
    uint64_t hv = *h ? *h : store_id_hash(id, n);
    *h = hv;
    size_t mask = ix->cap - 1;
    for (size_t i = hv & mask;; i = (i + 1) & mask) {
        const struct slot *sl = &ix->slots[i];
        if (sl->hash == 0) return -1 - (long)i;
        if (sl->hash != hv) continue;
        if (s->count_only || (sl->u.doc->id_len == n && memcmp(sl->u.doc->data, id, n) == 0))
            return (long)i;
    }
}

int64_t slot_version(const struct store *s, const struct slot *sl)
{
    return s->count_only ? sl->u.version : sl->u.doc->version;
}

static void grow(struct store *s, struct eindex *ix)
{
    size_t ncap = ix->cap * 2, mask = ncap - 1;
    struct slot *ns = slots_alloc(ncap);
    for (size_t i = 0; i < ix->cap; i++) {
        if (!ix->slots[i].hash) continue;
        size_t j = ix->slots[i].hash & mask;
        while (ns[j].hash)
            j = (j + 1) & mask;
        ns[j] = ix->slots[i];
    }
    slots_free(ix->slots, ix->cap);
    ix->slots = ns;
    ix->cap = ncap;
    s->layout_gen++;
}

void store_put(struct store *s, struct eindex *ix, long at, uint64_t h, const char *id, size_t idn,
               const char *src, size_t srcn, int64_t version)
{
    struct doc *d = NULL;
    if (!s->count_only) {
        d = arena_alloc(ix, sizeof *d + idn + srcn);
        d->id_len = (uint32_t)idn;
        d->src_len = (uint32_t)srcn;
        memcpy(d->data, id, idn);
        memcpy(d->data + idn, src, srcn);
        d->seq_no = ix->seq_no;
        d->version = version;
    }
    if (at >= 0) {
        if (d) {
            ix->slots[at].u.doc = d;
        } else {
            ix->slots[at].u.version = version;
        }
        return;
    }
    size_t i = (size_t)(-1 - at);
    /* Load factor 1/2 keeps linear probe chains short for the count-only benchmark path. */
    if ((ix->count + 1) * 2 > ix->cap) {
        grow(s, ix);
        size_t mask = ix->cap - 1;
        for (i = h & mask; ix->slots[i].hash; i = (i + 1) & mask)
            ;
    }
    ix->slots[i].hash = h;
    if (d)
        ix->slots[i].u.doc = d;
    else
        ix->slots[i].u.version = version;
    ix->count++;
    s->total_docs++;
}

void store_del(struct store *s, struct eindex *ix, size_t at)
{
    size_t mask = ix->cap - 1;
    ix->slots[at] = (struct slot){0};
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    size_t hole = at;
    for (size_t j = (at + 1) & mask; ix->slots[j].hash; j = (j + 1) & mask) {
        size_t home = ix->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            ix->slots[hole] = ix->slots[j];
            ix->slots[j] = (struct slot){0};
            hole = j;
        }
    }
    ix->count--;
    s->total_docs--;
    s->layout_gen++;
}

static void free_index(struct eindex *ix)
{
    while (ix->arena) {
        struct arena_chunk *a = ix->arena;
        ix->arena = a->next;
        munmap(a, a->size + sizeof *a);
    }
    slots_free(ix->slots, ix->cap);
    for (size_t i = 0; i < ix->n_fields; i++)
        free(ix->fields[i].path);
    free(ix->fields);
    free(ix->name);
    free(ix);
}

void store_drop(struct store *s, size_t i)
{
    s->total_docs -= s->idx[i]->count;
    free_index(s->idx[i]);
    memmove(&s->idx[i], &s->idx[i + 1], (s->n - i - 1) * sizeof *s->idx);
    s->n--;
    s->layout_gen++;
}

void store_reset(struct store *s)
{
    for (size_t i = 0; i < s->n; i++)
        free_index(s->idx[i]);
    s->n = 0;
    s->total_docs = 0;
    s->layout_gen++;
}

int index_name_invalid(const char *name, size_t n, char *reason, size_t rn)
{
    int nn = n > 300 ? 300 : (int)n;
    if (n == 0) {
        snprintf(reason, rn, "Invalid index name [], must not be empty");
        return 1;
    }
    if (n > 255) {
        snprintf(reason, rn, "Invalid index name [%.*s], index name is too long, (%zu > 255)", nn,
                 name, n);
        return 1;
    }
    if ((n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.')) {
        snprintf(reason, rn, "Invalid index name [%.*s], must not be '.' or '..'", nn, name);
        return 1;
    }
    if (name[0] == '_' || name[0] == '-' || name[0] == '+') {
        snprintf(reason, rn, "Invalid index name [%.*s], must not start with '_', '-', or '+'", nn,
                 name);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '#') {
            snprintf(reason, rn, "Invalid index name [%.*s], must not contain '#'", nn, name);
            return 1;
        }
        if (c == ':') {
            snprintf(reason, rn, "Invalid index name [%.*s], must not contain ':'", nn, name);
            return 1;
        }
        if (strchr("\\/*?\"<>| ,", c) || (unsigned char)c < 0x20) {
            snprintf(reason, rn,
                     "Invalid index name [%.*s], must not contain the following characters [ , "
                     "\", *, \\, <, |, ,, >, /, ?]",
                     nn, name);
            return 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (name[i] >= 'A' && name[i] <= 'Z') {
            snprintf(reason, rn, "Invalid index name [%.*s], must be lowercase", nn, name);
            return 1;
        }
    }
    return 0;
}

int glob_match(const char *pat, size_t pn, const char *s, size_t sn)
{
    size_t p = 0, i = 0, star_p = (size_t)-1, star_i = 0;
    while (i < sn) {
        if (p < pn && pat[p] == '*') {
            star_p = p++;
            star_i = i;
        } else if (p < pn && pat[p] == s[i]) {
            p++;
            i++;
        } else if (star_p != (size_t)-1) {
            p = star_p + 1;
            i = ++star_i;
        } else {
            return 0;
        }
    }
    while (p < pn && pat[p] == '*')
        p++;
    return p == pn;
}

int store_select(const struct store *s, const char *expr, size_t n, unsigned char *sel,
                 const char **missing, size_t *missing_n)
{
    memset(sel, 0, s->n);
    if (n == 0 || (n == 4 && memcmp(expr, "_all", 4) == 0)) {
        memset(sel, 1, s->n);
        return 0;
    }
    const char *p = expr, *end = expr + n;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        size_t len = (size_t)(e - p);
        if (len) {
            int wild = memchr(p, '*', len) != NULL, hit = 0;
            for (size_t i = 0; i < s->n; i++) {
                const struct eindex *ix = s->idx[i];
                if (wild ? glob_match(p, len, ix->name, ix->name_len)
                         : (ix->name_len == len && memcmp(ix->name, p, len) == 0)) {
                    sel[i] = 1;
                    hit = 1;
                }
            }
            if (!wild && !hit) {
                *missing = p;
                *missing_n = len;
                return -1;
            }
        }
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}
