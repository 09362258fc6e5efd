#include "core/budget.h"

#include <assert.h>
#include <stddef.h>

void sl_budget_init(struct sl_budget *b, uint64_t limit)
{
    b->limit = limit;
    /* Resume at 3/4 so a paused input gets a sizeable window and does not flap per record. */
    b->resume_at = limit / 4 * 3;
    b->used = 0;
    b->cached = 0;
    b->peak = 0;
    b->on_room = NULL;
    b->room_arg = NULL;
    b->reclaim = NULL;
    b->reclaim_arg = NULL;
}

static void note_peak(struct sl_budget *b)
{
    if (b->used + b->cached > b->peak) b->peak = b->used + b->cached;
}

void sl_budget_charge(struct sl_budget *b, uint64_t n)
{
    b->used += n;
    if (b->cached && b->reclaim && b->used + b->cached > b->limit) {
        uint64_t over = b->used + b->cached - b->limit;
        b->reclaim(b->reclaim_arg, over < b->cached ? over : b->cached);
    }
    note_peak(b);
}

static void released(struct sl_budget *b, uint64_t before)
{
    if (before >= b->resume_at && b->used < b->resume_at && b->on_room) b->on_room(b->room_arg);
}

void sl_budget_release(struct sl_budget *b, uint64_t n)
{
    assert(n <= b->used);
    uint64_t before = b->used;
    b->used -= n;
    released(b, before);
}

void sl_budget_cache(struct sl_budget *b, uint64_t n)
{
    assert(n <= b->used);
    uint64_t before = b->used;
    b->used -= n;
    b->cached += n;
    released(b, before);
}

void sl_budget_uncache(struct sl_budget *b, uint64_t n)
{
    assert(n <= b->cached);
    b->cached -= n;
    b->used += n;
}

void sl_budget_release_cached(struct sl_budget *b, uint64_t n)
{
    assert(n <= b->cached);
    b->cached -= n;
}

bool sl_budget_cache_room(const struct sl_budget *b, uint64_t n)
{
    return b->used + b->cached + n <= b->limit;
}

bool sl_budget_full(const struct sl_budget *b)
{
    return b->used >= b->limit;
}

bool sl_budget_can_resume(const struct sl_budget *b)
{
    return b->used < b->resume_at;
}
