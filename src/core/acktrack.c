#include "core/acktrack.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct sl_acktrack *sl_acktrack_new(void *owner, sl_acktrack_advance_cb cb)
{
    struct sl_acktrack *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->commit_next = -1;
    t->owner = owner;
    t->on_advance = cb;
    return t;
}

static void free_tracker(struct sl_acktrack *t)
{
    free(t->offsets);
    free(t->done);
    free(t);
}

static int grow(struct sl_acktrack *t)
{
    uint32_t ncap = t->cap ? t->cap * 2 : 256;
    int64_t *no = malloc(sizeof *no * ncap);
    uint8_t *nd = malloc(ncap);
    if (!no || !nd) {
        free(no);
        free(nd);
        return -1;
    }
    /* Unroll the ring so head is at 0 again. */
    for (uint32_t i = 0; i < t->pending; i++) {
        uint32_t j = (t->head + i) & (t->cap - 1);
        no[i] = t->offsets[j];
        nd[i] = t->done[j];
    }
    free(t->offsets);
    free(t->done);
    t->offsets = no;
    t->done = nd;
    t->head = 0;
    t->cap = ncap;
    return 0;
}

uint64_t sl_acktrack_add(struct sl_acktrack *t, int64_t offset)
{
    assert(!t->revoked);
    if (t->pending == t->cap && grow(t) != 0) return UINT64_MAX;
    uint32_t idx = (t->head + t->pending) & (t->cap - 1);
    assert(t->pending == 0 || offset > t->offsets[(idx - 1) & (t->cap - 1)]);
    t->offsets[idx] = offset;
    t->done[idx] = 0;
    t->pending++;
    return t->base_seq + t->pending - 1;
}

void sl_acktrack_done(struct sl_acktrack *t, uint64_t seq)
{
    assert(seq >= t->base_seq && seq - t->base_seq < t->pending);
    uint32_t idx = (uint32_t)((t->head + (seq - t->base_seq)) & (t->cap - 1));
    assert(!t->done[idx]);
    t->done[idx] = 1;
    if (idx != t->head) return;
    /* The head finished: pop the finished prefix. */
    int64_t last = -1;
    while (t->pending && t->done[t->head]) {
        last = t->offsets[t->head];
        t->head = (t->head + 1) & (t->cap - 1);
        t->pending--;
        t->base_seq++;
    }
    if (last + 1 > t->commit_next) {
        t->commit_next = last + 1;
        if (!t->revoked && t->on_advance) t->on_advance(t, t->commit_next, t->owner);
    }
    if (t->revoked && t->pending == 0) free_tracker(t);
}

void sl_acktrack_revoke(struct sl_acktrack *t)
{
    t->revoked = true;
    if (t->pending == 0) free_tracker(t);
}

size_t sl_acktrack_bytes(const struct sl_acktrack *t)
{
    return sizeof *t + (size_t)t->cap * (sizeof(int64_t) + 1);
}
