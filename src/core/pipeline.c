#include "core/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/plugin.h"

/* A dead-letter record on its way: once written (pending) it needs only its ack; when the store
 * refused it (blocked) it keeps a private copy of everything so it can be written later. */
struct sl_dl_pending {
    struct sl_ackref ack;
    struct sl_dl_record rec; /* strings point into copy (blocked only) */
    char *copy;
};

/* Unsynced dead-letter lines beyond this are synced at once rather than after the input's burst. */
#define SL_DL_SYNC_BYTES (1u << 20)

static uint64_t n_fanouts; /* unresolved, process-wide (the loop is single-threaded) */

uint64_t sl_pipeline_fanouts(void)
{
    return n_fanouts;
}

static void source_ack(const struct sl_ackref *ref, enum sl_fate fate);

/* Drops one reference (a finished copy or the router's hold); the last one resolves. */
static void fan_put(struct sl_fanout *fan)
{
    if (--fan->left) return;
    enum sl_fate fate = fan->n_dead_lettered ? SL_FATE_DEAD_LETTERED
                        : fan->n_dropped     ? SL_FATE_DROPPED
                                             : SL_FATE_DELIVERED;
    struct sl_ackref src = fan->src;
    sl_budget_release(fan->budget, sizeof *fan);
    free(fan);
    n_fanouts--;
    source_ack(&src, fate);
}

void sl_ack(const struct sl_ackref *ref, enum sl_fate fate)
{
    struct sl_fanout *fan = ref->fan;
    if (!fan) {
        source_ack(ref, fate);
        return;
    }
    if (fate == SL_FATE_DEAD_LETTERED) fan->n_dead_lettered++;
    if (fate == SL_FATE_DROPPED) fan->n_dropped++;
    fan_put(fan);
}

void sl_ack_note(const struct sl_ackref *ref, const char *why)
{
    const struct sl_ackref *src = ref->fan ? &ref->fan->src : ref;
    if (src->trk) sl_acktrack_note(src->trk, src->seq, why);
}

static void source_ack(const struct sl_ackref *ref, enum sl_fate fate)
{
    switch (fate) {
    case SL_FATE_DELIVERED:
        ref->ctr->delivered++;
        break;
    case SL_FATE_DEAD_LETTERED:
        ref->ctr->dead_lettered++;
        break;
    case SL_FATE_DROPPED:
        ref->ctr->dropped++;
        break;
    }
    if (ref->trk) sl_acktrack_done(ref->trk, ref->seq);
}

static void dl_retry_cb(struct sl_timer *t);

/* A charge needs room that outputs' idle pools hold: they give it back. */
static void reclaim(void *arg, uint64_t want)
{
    struct sl_pipeline *p = arg;
    uint64_t freed = 0;
    for (size_t i = 0; i < p->n_outputs && freed < want; i++)
        if (p->outputs[i].ops->reclaim)
            freed += p->outputs[i].ops->reclaim(p->outputs[i].impl, want - freed);
}

/* The budget fell below its resume mark. Inputs check backpressure on their poll timers (10 ms
 * apart while paused, but a timer armed before the pause may be 100 ms out): fire them now, so
 * an input does not sit paused while the outputs run dry (the Forward bench's input was paused
 * 60% of the time, resuming only once every batch had drained). */
static void on_room(void *arg)
{
    struct sl_pipeline *p = arg;
    for (size_t i = 0; i < p->n_room_watch; i++)
        if (p->room_watch[i]->active) sl_timer_start(p->loop, p->room_watch[i], 0);
}

/* The loop drained everything readable: records that arrived will not be joined by more soon,
 * so outputs with a free request slot send what they hold (sl_output_ops.idle). */
static void on_idle(void *arg)
{
    struct sl_pipeline *p = arg;
    for (size_t i = 0; i < p->n_outputs; i++)
        if (p->outputs[i].ops->idle) p->outputs[i].ops->idle(p->outputs[i].impl);
}

int sl_pipeline_init(struct sl_pipeline *p, struct sl_loop *loop, const struct sl_config *cfg,
                     uint64_t budget_bytes, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->loop = loop;
    p->cfg = cfg;
    sl_budget_init(&p->budget, budget_bytes);
    p->budget.on_room = on_room;
    p->budget.room_arg = p;
    p->budget.reclaim = reclaim;
    p->budget.reclaim_arg = p;
    p->dl_retry.cb = dl_retry_cb;
    p->dl_retry.arg = p;
    p->dlq =
        sl_dlq_open(cfg->service.dead_letter_path, cfg->service.dead_letter_max_size, err, errlen);
    if (!p->dlq) return -1;
    for (size_t i = 0; i < cfg->n_outputs; i++) {
        const struct sl_output_cfg *oc = &cfg->outputs[i];
        if (oc->plugin->create_output(p, oc, err, errlen) != 0) return -1;
        struct sl_output *o = &p->outputs[p->n_outputs - 1];
        o->copy = oc->copy;
        err[0] = '\0';
        o->edits = sl_edits_new(&oc->edits, &p->budget, err, errlen);
        if (!o->edits && err[0]) return -1;
    }
    sl_loop_set_idle(loop, on_idle, p);
    return 0;
}

void sl_output_submit(const struct sl_pipeline *p, struct sl_output *o, const struct sl_event *ev)
{
    if (!o->edits) {
        o->ops->submit(o->impl, ev);
        return;
    }
    struct sl_event e = *ev;
    sl_edits_apply(o->edits, p, &e, &o->scan);
    o->ops->submit(o->impl, &e);
    sl_edits_done(o->edits);
}

void sl_pipeline_fini(struct sl_pipeline *p)
{
    sl_loop_set_idle(p->loop, NULL, NULL);
    for (size_t i = 0; i < p->n_outputs; i++) {
        p->outputs[i].ops->destroy(p->outputs[i].impl);
        sl_edits_free(p->outputs[i].edits);
        for (size_t j = 0; j < p->outputs[i].n_match; j++)
            sl_tagpat_free(p->outputs[i].match[j]);
    }
    for (size_t i = 0; i < p->n_dl_blocked; i++)
        free(p->dl_blocked[i].copy);
    free(p->dl_blocked);
    free(p->dl_pending);
    sl_timer_stop(p->loop, &p->dl_retry);
    sl_dlq_close(p->dlq);
}

int sl_pipeline_path(struct sl_pipeline *p, const char *path)
{
    for (size_t i = 0; i < p->n_paths; i++)
        if (strcmp(p->paths[i], path) == 0) return (int)i;
    if (p->n_paths == SL_JSON_MAX_PATHS) return -1;
    p->paths[p->n_paths] = path;
    return (int)p->n_paths++;
}

size_t sl_pipeline_route(struct sl_pipeline *p, const char *tag, size_t tag_len, struct sl_route *r)
{
    r->n = 0;
    for (size_t i = 0; i < p->n_outputs; i++) {
        struct sl_output *o = &p->outputs[i];
        for (size_t j = 0; j < o->n_match; j++) {
            if (!sl_tagpat_match(o->match[j], tag, tag_len)) continue;
            r->out[r->n++] = o;
            if (!o->copy) return r->n;
            break;
        }
    }
    return r->n;
}

void sl_pipeline_submit(struct sl_pipeline *p, const struct sl_route *r, const struct sl_event *ev)
{
    if (r->n == 1) {
        sl_output_submit(p, r->out[0], ev);
        return;
    }
    struct sl_fanout *fan = malloc(sizeof *fan);
    if (!fan) {
        SL_ERROR("pipeline", "oom",
                 "out of memory copying a record to %zu outputs; exiting so the record is "
                 "redelivered from its source",
                 r->n);
        abort();
    }
    /* The extra reference keeps the record unresolved while copies are still being submitted:
     * an output may finish a copy (dead-letter it, say) before the next output has its own. */
    *fan = (struct sl_fanout){.src = ev->ack, .budget = &p->budget, .left = (uint32_t)r->n + 1};
    sl_budget_charge(&p->budget, sizeof *fan);
    n_fanouts++;
    struct sl_event e = *ev;
    e.ack.fan = fan;
    for (size_t i = 0; i < r->n; i++)
        sl_output_submit(p, r->out[i], &e);
    fan_put(fan);
}

static int push_pending(struct sl_dl_pending **arr, size_t *n, size_t *cap,
                        const struct sl_dl_pending *e)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        struct sl_dl_pending *na = realloc(*arr, ncap * sizeof *na);
        if (!na) return -1;
        *arr = na;
        *cap = ncap;
    }
    (*arr)[(*n)++] = *e;
    return 0;
}

/* Copies every string of r into one allocation so the record outlives the caller's buffers. */
static char *deep_copy(struct sl_dl_record *r)
{
    const char *src[] = {r->reason, r->error_type, r->error_reason, r->input,  r->output,
                         r->index,  r->tag,        r->topic,        r->payload};
    size_t len[] = {strlen(r->reason) + 1,
                    r->error_type_len,
                    r->error_reason_len,
                    strlen(r->input) + 1,
                    r->output ? strlen(r->output) + 1 : 0,
                    r->index_len,
                    r->tag_len,
                    r->topic_len,
                    r->payload_len};
    size_t total = 0;
    for (size_t i = 0; i < 9; i++)
        total += src[i] ? len[i] : 0;
    char *c = malloc(total ? total : 1), *w = c;
    if (!c) return NULL;
    const char **dst[] = {&r->reason, &r->error_type, &r->error_reason, &r->input,  &r->output,
                          &r->index,  &r->tag,        &r->topic,        &r->payload};
    for (size_t i = 0; i < 9; i++) {
        if (!src[i]) continue;
        memcpy(w, src[i], len[i]);
        *dst[i] = w;
        w += len[i];
    }
    return c;
}

/* The store's write buffer is pipeline memory like any batch: charged to the budget as it grows
 * and shrinks, so a burst of dead letters applies backpressure instead of passing the bound. */
static void dl_account(struct sl_pipeline *p)
{
    uint64_t now = sl_dlq_buffer_bytes(p->dlq);
    if (now > p->dl_charged)
        sl_budget_charge(&p->budget, now - p->dl_charged);
    else if (now < p->dl_charged)
        sl_budget_release(&p->budget, p->dl_charged - now);
    p->dl_charged = now;
}

static void dl_sync(struct sl_pipeline *p);

void sl_pipeline_dead_letter(struct sl_pipeline *p, const struct sl_event *ev, const char *reason,
                             int status, const char *etype, size_t etype_len, const char *ereason,
                             size_t ereason_len, bool escaped, const char *output,
                             const char *index, size_t index_len, int attempts)
{
    struct sl_dl_pending e = {.ack = ev->ack};
    e.rec = (struct sl_dl_record){
        .reason = reason,
        .status = status,
        .error_type = etype,
        .error_type_len = etype_len,
        .error_reason = ereason,
        .error_reason_len = ereason_len,
        .error_escaped = escaped,
        .input = ev->input,
        .output = output,
        .index = index,
        .index_len = index_len,
        .tag = ev->tag,
        .tag_len = ev->tag_len,
        .topic = ev->topic,
        .topic_len = ev->topic_len,
        .partition = ev->partition,
        .offset = ev->offset,
        .attempts = attempts,
        .time_ns = ev->time_ns,
        .payload = ev->payload,
        .payload_len = ev->payload_len,
    };
    if (p->n_dl_blocked == 0 && sl_dlq_write(p->dlq, &e.rec) == 0 &&
        push_pending(&p->dl_pending, &p->n_dl_pending, &p->cap_dl_pending, &e) == 0) {
        dl_account(p);
        /* An input syncs after each burst it read; a burst of large binary records escapes to
         * many times its size, so a full write buffer is synced here, mid-burst. */
        if (sl_dlq_unsynced_bytes(p->dlq) >= SL_DL_SYNC_BYTES && !p->dl_sync_failed) dl_sync(p);
        return;
    }
    /* The store is full (or failing): keep the record, pause inputs, retry later. Never drop. */
    e.copy = deep_copy(&e.rec);
    if (!e.copy || push_pending(&p->dl_blocked, &p->n_dl_blocked, &p->cap_dl_blocked, &e) != 0) {
        SL_ERROR("dead-letter", "oom",
                 "out of memory holding a dead-letter record; exiting so "
                 "the record is redelivered from its source");
        abort();
    }
    sl_budget_charge(&p->budget, e.rec.payload_len + sizeof e);
    SL_ERROR("dead-letter", "full",
             "dead-letter store %s refused a record (%llu bytes used, max_size %llu); inputs "
             "paused until it has room (replaying or removing its files makes room: it looks "
             "again every second)",
             sl_dlq_dir(p->dlq), (unsigned long long)sl_dlq_bytes(p->dlq),
             (unsigned long long)p->cfg->service.dead_letter_max_size);
    if (!p->dl_retry.active) sl_timer_start(p->loop, &p->dl_retry, 1000);
}

static void dl_sync(struct sl_pipeline *p)
{
    if (p->n_dl_pending == 0) return;
    if (sl_dlq_sync(p->dlq) != 0) {
        /* Not durable yet: the lines stay buffered and their records pending (inputs pause);
         * the retry timer syncs again. */
        p->dl_sync_failed = true;
        if (!p->dl_retry.active) sl_timer_start(p->loop, &p->dl_retry, 1000);
        return;
    }
    p->dl_sync_failed = false;
    dl_account(p);
    for (size_t i = 0; i < p->n_dl_pending; i++)
        sl_ack(&p->dl_pending[i].ack, SL_FATE_DEAD_LETTERED);
    p->n_dl_pending = 0;
}

void sl_pipeline_dl_commit(struct sl_pipeline *p)
{
    /* After a failed sync only the timer retries (once a second): a failing disk must not be
     * hammered with the whole buffer on every loop turn. */
    if (!p->dl_sync_failed) dl_sync(p);
}

static void dl_retry_cb(struct sl_timer *t)
{
    struct sl_pipeline *p = t->arg;
    if (p->dl_sync_failed) {
        dl_sync(p);
        if (p->dl_sync_failed) return; /* re-armed by dl_sync */
    }
    size_t done = 0;
    while (done < p->n_dl_blocked && sl_dlq_write(p->dlq, &p->dl_blocked[done].rec) == 0) {
        struct sl_dl_pending e = p->dl_blocked[done++];
        sl_budget_release(&p->budget, e.rec.payload_len + sizeof e);
        dl_account(p);
        free(e.copy); /* the line is in the store's buffer now; only the ack is still needed */
        e.copy = NULL;
        if (push_pending(&p->dl_pending, &p->n_dl_pending, &p->cap_dl_pending, &e) != 0) abort();
    }
    memmove(p->dl_blocked, p->dl_blocked + done, (p->n_dl_blocked - done) * sizeof *p->dl_blocked);
    p->n_dl_blocked -= done;
    dl_sync(p);
    if (p->n_dl_blocked && !t->active) sl_timer_start(p->loop, t, 1000);
}

void sl_pipeline_watch_room(struct sl_pipeline *p, struct sl_timer *t)
{
    if (p->n_room_watch < SL_CFG_MAX_INPUTS) p->room_watch[p->n_room_watch++] = t;
}

void sl_pipeline_unwatch_room(struct sl_pipeline *p, struct sl_timer *t)
{
    for (size_t i = 0; i < p->n_room_watch; i++)
        if (p->room_watch[i] == t) {
            p->room_watch[i] = p->room_watch[--p->n_room_watch];
            return;
        }
}

bool sl_pipeline_backpressure(const struct sl_pipeline *p)
{
    return sl_budget_full(&p->budget) || p->n_dl_blocked > 0 || p->dl_sync_failed;
}

uint64_t sl_pipeline_pending(const struct sl_pipeline *p)
{
    uint64_t n = p->n_dl_pending + p->n_dl_blocked;
    for (size_t i = 0; i < p->n_outputs; i++)
        n += p->outputs[i].ops->pending(p->outputs[i].impl);
    return n;
}
