#include "core/budget.h"

#include <assert.h>
#include <stddef.h>

void sl_budget_init(struct sl_budget *b, uint64_t limit)
{
    b->limit = limit;
    /* Resume at 3/4 so a paused input gets a sizeable window and does not flap per record. */
    b->resume_at = limit / 4 * 3;
    b->used = 0;
    b->peak = 0;
    b->on_room = NULL;
    b->room_arg = NULL;
}

void sl_budget_charge(struct sl_budget *b, uint64_t n)
{
    b->used += n;
    if (b->used > b->peak) b->peak = b->used;
}

void sl_budget_release(struct sl_budget *b, uint64_t n)
{
    assert(n <= b->used);
    bool was_above = b->used >= b->resume_at;
    b->used -= n;
    if (was_above && b->used < b->resume_at && b->on_room) b->on_room(b->room_arg);
}

bool sl_budget_full(const struct sl_budget *b)
{
    return b->used >= b->limit;
}

bool sl_budget_can_resume(const struct sl_budget *b)
{
    return b->used < b->resume_at;
}
