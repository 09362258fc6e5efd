#include "core/acktrack.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/budget.h"

#define MIN_CAP 256u

/* The loop is single-threaded: one list for the process. */
static struct sl_acktrack *live;

struct sl_acktrack *sl_acktrack_new(void *owner, sl_acktrack_advance_cb cb)
{
    struct sl_acktrack *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->commit_next = -1;
    t->owner = owner;
    t->on_advance = cb;
    t->live_next = live;
    if (live) live->live_prev = t;
    live = t;
    return t;
}

static void account(struct sl_acktrack *t)
{
    if (!t->budget) return;
    size_t now = sl_acktrack_bytes(t);
    if (now > t->charged)
        sl_budget_charge(t->budget, now - t->charged);
    else if (now < t->charged)
        sl_budget_release(t->budget, t->charged - now);
    t->charged = now;
}

static void free_tracker(struct sl_acktrack *t)
{
    if (t->live_prev)
        t->live_prev->live_next = t->live_next;
    else
        live = t->live_next;
    if (t->live_next) t->live_next->live_prev = t->live_prev;
    if (t->budget) sl_budget_release(t->budget, t->charged);
    free(t->offsets);
    free(t->done);
    free(t);
}

/* Moves the ring into arrays of ncap entries (>= pending), head at 0. */
static int resize(struct sl_acktrack *t, uint32_t ncap)
{
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
    account(t);
    return 0;
}

static int grow(struct sl_acktrack *t)
{
    return resize(t, t->cap ? t->cap * 2 : MIN_CAP);
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
    if (t->revoked && t->pending == 0) {
        free_tracker(t);
        return;
    }
    /* A ring that grew behind a record stuck at its head gives the memory back as soon as that
     * record finished, all at once: its source may have stopped adding until it does. Shrinking
     * only below a quarter keeps a steady load from resizing back and forth. A failed shrink
     * keeps the larger ring, which is still correct. */
    uint32_t ncap = t->cap;
    while (ncap > MIN_CAP && t->pending <= ncap / 4)
        ncap /= 2;
    if (ncap != t->cap) (void)resize(t, ncap);
}

void sl_acktrack_revoke(struct sl_acktrack *t)
{
    t->revoked = true;
    if (t->pending == 0) free_tracker(t);
}

void sl_acktrack_free_all(void)
{
    while (live)
        free_tracker(live);
}

size_t sl_acktrack_bytes(const struct sl_acktrack *t)
{
    return sizeof *t + (size_t)t->cap * (sizeof(int64_t) + 1);
}

void sl_acktrack_set_budget(struct sl_acktrack *t, struct sl_budget *b)
{
    t->budget = b;
    t->charged = 0;
    account(t);
}

int64_t sl_acktrack_head_offset(const struct sl_acktrack *t)
{
    return t->pending ? t->offsets[t->head] : -1;
}

void sl_acktrack_note(struct sl_acktrack *t, uint64_t seq, const char *why)
{
    if (seq < t->base_seq) return; /* finished already */
    if (t->has_note && t->note_seq >= t->base_seq && t->note_seq < seq) return;
    t->note_seq = seq;
    t->has_note = true;
    snprintf(t->note, sizeof t->note, "%s", why);
}

const char *sl_acktrack_head_note(const struct sl_acktrack *t)
{
    return t->pending && t->has_note && t->note_seq == t->base_seq ? t->note : NULL;
}
