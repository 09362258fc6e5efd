/* The memory budget: every buffer that holds record bytes is charged here before it is filled.
 *
 * Charging never fails: a record that librdkafka already handed over must be kept (dropping it
 * would lose it), so the budget may overshoot by at most one record or batch. Inputs check
 * sl_budget_full() after charging and apply backpressure (pause partitions) until usage drops
 * below the resume mark. The overshoot is bounded because inputs stop as soon as it happens. */
#ifndef SL_BUDGET_H
#define SL_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

struct sl_budget {
    uint64_t limit;     /* bytes the pipeline may hold */
    uint64_t resume_at; /* backpressure ends below this */
    uint64_t used;
    uint64_t peak;
    /* Called (when set) by the release that brings usage below the resume mark, so paused inputs
     * resume at once rather than at their next poll. It runs inside whatever freed the memory
     * (an output's completion handler), so it may only schedule work, never take records. */
    void (*on_room)(void *arg);
    void *room_arg;
};

void sl_budget_init(struct sl_budget *b, uint64_t limit);
void sl_budget_charge(struct sl_budget *b, uint64_t n);
void sl_budget_release(struct sl_budget *b, uint64_t n);
bool sl_budget_full(const struct sl_budget *b);
bool sl_budget_can_resume(const struct sl_budget *b);

#endif
