/* The memory budget: every buffer that holds record bytes is charged here before it is filled.
 *
 * Charging never fails: a record that librdkafka already handed over must be kept (dropping it
 * would lose it), so the budget may overshoot by at most one record or batch. Inputs check
 * sl_budget_full() after charging and apply backpressure (pause partitions) until usage drops
 * below the resume mark. The overshoot is bounded because inputs stop as soon as it happens.
 *
 * Cached bytes: buffers an output keeps idle for reuse (whole bulk batches, so the next batch
 * does not fault in fresh pages). They are memory like the rest and count against the limit, but
 * not against the inputs: `used` (what backpressure looks at) is live bytes only, and a charge
 * that would take used + cached over the limit first asks the owner (reclaim) to free cache. An
 * idle pool therefore never holds an input paused, and never makes the process bigger. */
#ifndef SL_BUDGET_H
#define SL_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

struct sl_budget {
    uint64_t limit;     /* bytes the pipeline may hold */
    uint64_t resume_at; /* backpressure ends below this */
    uint64_t used;      /* live bytes */
    uint64_t cached;    /* idle bytes kept for reuse */
    uint64_t peak;      /* of used + cached */
    /* Called (when set) by the release that brings usage below the resume mark, so paused inputs
     * resume at once rather than at their next poll. It runs inside whatever freed the memory
     * (an output's completion handler), so it may only schedule work, never take records. */
    void (*on_room)(void *arg);
    void *room_arg;
    /* Frees at least `want` cached bytes if it can (each freed byte through
     * sl_budget_release_cached). Runs inside whatever charged: it may only free idle buffers. */
    void (*reclaim)(void *arg, uint64_t want);
    void *reclaim_arg;
};

void sl_budget_init(struct sl_budget *b, uint64_t limit);
void sl_budget_charge(struct sl_budget *b, uint64_t n);
void sl_budget_release(struct sl_budget *b, uint64_t n);
/* Live bytes become cached (a buffer goes idle) or cached bytes live again (it is reused). */
void sl_budget_cache(struct sl_budget *b, uint64_t n);
void sl_budget_uncache(struct sl_budget *b, uint64_t n);
/* A cached buffer was freed. */
void sl_budget_release_cached(struct sl_budget *b, uint64_t n);
/* Whether n more cached bytes would still fit under the limit. */
bool sl_budget_cache_room(const struct sl_budget *b, uint64_t n);
bool sl_budget_full(const struct sl_budget *b);
bool sl_budget_can_resume(const struct sl_budget *b);

#endif
