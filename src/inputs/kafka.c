/* Kafka input.
 *
 * At-least-once: enable.auto.offset.store=false; each partition has an ack
 * tracker and only its contiguous finished prefix is stored with rd_kafka_offsets_store;
 * librdkafka's auto-commit commits what was stored (every second, on revoke and on close).
 *
 * Memory: librdkafka's prefetch is bounded by queued.max.messages.kbytes and
 * fetch.max.bytes derived from the budget; every message is copied into an output batch and
 * destroyed at once (a kept message would pin its whole fetch buffer). When the pipeline's budget
 * is full the loop stops draining librdkafka's queue, which its prefetch settings bound; if that
 * lasts HOLD_MS all assigned partitions are paused, rd_kafka_consumer_poll keeps being called
 * (group membership, max.poll.interval.ms) and the pause is re-applied on every assignment,
 * because in 2.0.2 the application's pause flag survives a rebalance.
 *
 * The loop is woken through a pipe that librdkafka writes when the consumer queue becomes
 * non-empty, plus a periodic timer. */
#include "inputs/kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "codec/rxparse.h"
#include "codec/timefmt.h"
#include "core/log.h"

#define BURST 4096
#define TICK_MS 100
#define TICK_PAUSED_MS 10
/* How long backpressure only stops the draining of librdkafka's queue before the partitions are
 * paused. A pause drops what was prefetched, to be fetched again on resume (see set_purged). */
#define HOLD_MS 1000
#define DRAIN_MS 3000
#define STALL_MS 10000
#define DRAIN_KICK_MS 20 /* see poll_burst */
#define SCRATCH_KEEP (1u << 20)

struct kpart {
    struct sl_kafka_in *k;
    struct ktopic *t;
    int32_t partition;
    struct sl_acktrack *trk;
    int64_t to_store; /* commit_next not yet passed to rd_kafka_offsets_store */
    int64_t stored;
    int64_t committed; /* as confirmed by the offset-commit callback; -1 before the first */
    int64_t received;
    int64_t next_offset; /* last offset received + 1; -1 before the first message */
    uint64_t active_ms;  /* last message, assignment or resume: the stall watchdog's clock */
    /* Held: paused on its own because records kept finishing behind an unfinished one (an item
     * retried for ever) until its ack tracker reached the input's share of the budget. */
    bool held;
    uint64_t held_since_ms;
    int64_t head_offset;    /* the oldest unfinished record, as last looked at */
    uint64_t head_since_ms; /* since when that record is the oldest */
};

struct ktopic {
    char *name; /* interned: events point at it for the process lifetime */
    size_t name_len;
    char *tag;
    size_t tag_len;
    struct sl_route route; /* cached: the outputs this topic's tag goes to */
    struct kpart **parts;
    int32_t n_parts;
};

/* ---------------------------------------------------------------- fetcher wake-up
 *
 * librdkafka 2.0.2 does not wake a broker thread's fetcher when partitions are resumed: the
 * next FetchRequest leaves only on the fetcher's own timer, about 0.8-0.9 s later, so every
 * pause cost that much idle time (measured by bench/run.py: 47k events/s with 23 pauses of
 * 10-20 ms over 1M records; with a wake-up, a prototype reached 205-252k). Any request to the
 * partition's leader wakes its broker thread, so after a resume a helper thread asks for the
 * watermarks of a few assigned partitions (spread over the assignment, so several leaders are
 * reached). The call is synchronous, hence the thread: the loop never waits for a broker. */

#define WAKE_MAX 8
#define PROBE_MAX 8
#define PROBE_TIMEOUT_MS 5000

/* What the group and the leader say about a partition that has delivered nothing: the stall
 * watchdog's evidence (see check_stalled). */
struct probe {
    char topic[256];
    int32_t partition;
    int64_t committed, lo, hi;
    bool ok;
};

struct waker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, pending, quit;
    rd_kafka_t *rk;
    int n;
    char topic[WAKE_MAX][256];
    int32_t partition[WAKE_MAX];
    uint64_t wakes;
    /* probes: asked by the loop, answered here, taken back by the loop */
    bool probe_asked, probe_answered;
    int n_probe;
    struct probe probe[PROBE_MAX];
};

/* Both calls wait for brokers, hence this thread. */
static void run_probes(rd_kafka_t *rk, struct probe *pr, int n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, pr[i].topic, pr[i].partition);
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, l, PROBE_TIMEOUT_MS);
    for (int i = 0; i < n; i++) {
        const rd_kafka_topic_partition_t *e = &l->elems[i];
        pr[i].committed = e->offset >= 0 ? e->offset : -1;
        pr[i].ok = !err && !e->err &&
                   rd_kafka_query_watermark_offsets(rk, pr[i].topic, pr[i].partition, &pr[i].lo,
                                                    &pr[i].hi, PROBE_TIMEOUT_MS) == 0;
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void *waker_main(void *arg)
{
    struct waker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->pending && !w->probe_asked && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit) break;
        if (w->probe_asked) {
            struct probe pr[PROBE_MAX];
            int n = w->n_probe;
            memcpy(pr, w->probe, sizeof pr);
            pthread_mutex_unlock(&w->mu);
            run_probes(w->rk, pr, n);
            pthread_mutex_lock(&w->mu);
            memcpy(w->probe, pr, sizeof pr);
            w->probe_asked = false;
            w->probe_answered = true;
            continue;
        }
        char topic[WAKE_MAX][256];
        int32_t part[WAKE_MAX];
        int n = w->n;
        memcpy(topic, w->topic, sizeof topic);
        memcpy(part, w->partition, sizeof part);
        w->pending = false;
        pthread_mutex_unlock(&w->mu);
        for (int i = 0; i < n; i++) {
            int64_t lo, hi;
            /* the answer does not matter; the request wakes the leader's broker thread */
            rd_kafka_query_watermark_offsets(w->rk, topic[i], part[i], &lo, &hi, 1000);
        }
        pthread_mutex_lock(&w->mu);
        w->wakes++;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void waker_kick(struct waker *w, const rd_kafka_topic_partition_list_t *l)
{
    if (!w->started || !l || l->cnt == 0) return;
    pthread_mutex_lock(&w->mu);
    int n = l->cnt < WAKE_MAX ? l->cnt : WAKE_MAX;
    for (int i = 0; i < n; i++) {
        const rd_kafka_topic_partition_t *e = &l->elems[(size_t)i * (size_t)l->cnt / (size_t)n];
        snprintf(w->topic[i], sizeof w->topic[i], "%s", e->topic);
        w->partition[i] = e->partition;
    }
    w->n = n;
    w->pending = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Returns false when the thread is not running or a probe is still out. */
static bool waker_probe_ask(struct waker *w, const struct probe *pr, int n)
{
    if (!w->started || n <= 0) return false;
    pthread_mutex_lock(&w->mu);
    bool busy = w->probe_asked || w->probe_answered;
    if (!busy) {
        memcpy(w->probe, pr, (size_t)n * sizeof *pr);
        w->n_probe = n;
        w->probe_asked = true;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return !busy;
}

/* The answers to the last probe, once: their count, 0 while none are ready. */
static int waker_probe_take(struct waker *w, struct probe *out)
{
    if (!w->started) return 0;
    pthread_mutex_lock(&w->mu);
    int n = 0;
    if (w->probe_answered) {
        n = w->n_probe;
        memcpy(out, w->probe, (size_t)n * sizeof *out);
        w->probe_answered = false;
    }
    pthread_mutex_unlock(&w->mu);
    return n;
}

static int waker_start(struct waker *w, rd_kafka_t *rk)
{
    w->rk = rk;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->th, NULL, waker_main, w) != 0) return -1;
    w->started = true;
    return 0;
}

static void waker_stop(struct waker *w)
{
    if (!w->started) return;
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    w->started = false;
}

struct sl_kafka_in {
    struct sl_pipeline *p;
    const struct sl_input_cfg *cfg;
    const struct sl_kafka_input_cfg *kc;
    const char *name;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    int pipefd[2];
    struct sl_io io;
    struct sl_timer tick;
    struct ktopic **topics;
    size_t n_topics;
    rd_kafka_topic_partition_list_t *assignment;
    bool paused; /* backpressure: the queue is not drained (held), or partitions are paused */
    bool purged; /* rd_kafka_pause_partitions in force (after HOLD_MS, or stopping) */
    bool kick_on_empty;
    bool stopping;
    bool in_rebalance;
    bool store_dirty;
    int time_path;
    struct sl_rxparse *rx; /* format regexp */
    struct sl_edits *edits;
    struct sl_counters ctr;
    char *scratch;
    size_t scratch_cap;
    char *meta; /* add_metadata's output: the payload may live in scratch */
    size_t meta_cap;
    uint64_t pauses, paused_ms, paused_since, rebalances, purges;
    uint64_t commits, commit_failures;
    /* Errors the client reported (error_cb: transport, resolution, authentication...). From a
     * report that every broker is down until the client shows it reached one again (a record,
     * a confirmed commit, a watchdog probe answered), brokers_down is set. */
    uint64_t client_errors;
    bool brokers_down;
    /* A broker answered this client at least once (an assignment, a record, a commit, a probe).
     * Until then an authentication or certificate failure is a configuration error: the
     * process stops with it instead of retrying for ever. */
    bool reached_once;
    uint64_t no_timestamp; /* records without a Kafka timestamp: given the time they were read */
    uint64_t trk_share;    /* one partition's ack tracker may hold this much before it is held */
    uint64_t holds;
    uint64_t last_drain_kick_ms;
    uint64_t last_poll_ms, last_resume_ms, last_stall_check_ms, stall_recoveries;
    bool reset_earliest; /* auto.offset.reset: where a partition without a commit starts */
    struct waker waker;
    /* SLUICE_FAULT_STRAND=topic:partition (tests only): pause that partition behind our back
     * after every assignment, so it is assigned, holds data and never fetches. From 1 s after
     * the assignment and then on every tick until the watchdog restarts it: a pause made in the
     * rebalance callback itself did not always hold in librdkafka 2.0.2 (twice in about 30 runs
     * the partition was fetched anyway, records produced after the pause included). */
    char *strand_topic;
    int32_t strand_partition;
    uint64_t strand_from_ms; /* 0: not (or no longer) stranding */
    bool strand_logged;
};

static void brokers_reached(struct sl_kafka_in *k);
static void repause_held(struct sl_kafka_in *k);

/* ---------------------------------------------------------------- topics, partitions */

static char *render_tag(const char *tmpl, const char *topic, size_t *len)
{
    size_t tl = strlen(topic), cap = strlen(tmpl) + 1, n = 0;
    for (const char *s = strstr(tmpl, "${topic}"); s; s = strstr(s + 8, "${topic}"))
        cap += tl;
    char *out = malloc(cap);
    if (!out) return NULL;
    for (const char *s = tmpl; *s;) {
        if (strncmp(s, "${topic}", 8) == 0) {
            memcpy(out + n, topic, tl);
            n += tl;
            s += 8;
        } else {
            out[n++] = *s++;
        }
    }
    out[n] = 0;
    *len = n;
    return out;
}

static struct ktopic *get_topic(struct sl_kafka_in *k, const char *name)
{
    for (size_t i = 0; i < k->n_topics; i++)
        if (strcmp(k->topics[i]->name, name) == 0) return k->topics[i];
    struct ktopic *t = calloc(1, sizeof *t);
    struct ktopic **nt = realloc(k->topics, (k->n_topics + 1) * sizeof *nt);
    if (!t || !nt) abort();
    k->topics = nt;
    t->name = strdup(name);
    t->name_len = strlen(name);
    t->tag = render_tag(k->kc->tag, name, &t->tag_len);
    if (!t->name || !t->tag) abort();
    if (sl_pipeline_route(k->p, t->tag, t->tag_len, &t->route) == 0)
        SL_WARN(k->name, "unmatched", "topic %s: tag %s matches no output; its records are %s",
                name, t->tag,
                k->p->cfg->service.unmatched == SL_UNMATCHED_DROP ? "dropped (counted)"
                                                                  : "dead-lettered");
    k->topics[k->n_topics++] = t;
    return t;
}

static struct kpart *get_part(struct sl_kafka_in *k, struct ktopic *t, int32_t partition)
{
    if (partition >= t->n_parts) {
        int32_t n = partition + 1;
        struct kpart **np = realloc(t->parts, (size_t)n * sizeof *np);
        if (!np) abort();
        memset(np + t->n_parts, 0, (size_t)(n - t->n_parts) * sizeof *np);
        t->parts = np;
        t->n_parts = n;
    }
    if (!t->parts[partition]) {
        struct kpart *kp = calloc(1, sizeof *kp);
        if (!kp) abort();
        kp->k = k;
        kp->t = t;
        kp->partition = partition;
        kp->to_store = -1;
        kp->stored = -1;
        kp->committed = -1;
        t->parts[partition] = kp;
    }
    return t->parts[partition];
}

static void on_advance(struct sl_acktrack *trk, int64_t commit_next, void *owner)
{
    (void)trk;
    struct kpart *kp = owner;
    kp->to_store = commit_next;
    kp->k->store_dirty = true;
}

/* Passes every advanced watermark to librdkafka; auto-commit sends them to the group. */
static void store_offsets(struct sl_kafka_in *k)
{
    if (!k->store_dirty) return;
    k->store_dirty = false;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (size_t i = 0; i < k->n_topics; i++) {
        struct ktopic *t = k->topics[i];
        for (int32_t j = 0; j < t->n_parts; j++) {
            struct kpart *kp = t->parts[j];
            if (!kp || !kp->trk || kp->to_store <= kp->stored) continue;
            rd_kafka_topic_partition_list_add(l, t->name, j)->offset = kp->to_store;
        }
    }
    if (l->cnt) {
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(k->rk, l);
        if (err)
            SL_WARN(k->name, "offsets_store", "storing offsets failed: %s", rd_kafka_err2str(err));
        for (int i = 0; i < l->cnt; i++) {
            struct kpart *kp = get_part(k, get_topic(k, l->elems[i].topic), l->elems[i].partition);
            /* _STATE means the partition was revoked meanwhile: its new owner re-reads from
             * the last commit, which is a duplicate, never a loss. */
            if (l->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
                kp->stored = l->elems[i].offset;
            else
                SL_WARN(k->name, "offsets_store", "storing offset %lld of %s [%d] failed: %s",
                        (long long)l->elems[i].offset, l->elems[i].topic, l->elems[i].partition,
                        rd_kafka_err2str(l->elems[i].err));
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* ---------------------------------------------------------------- backpressure */

/* rd_kafka_pause_partitions, or its undoing. In 2.0.2 a pause bumps each partition's version:
 * everything prefetched is dropped and fetched again from the application's position on resume,
 * so a pause of 10 ms costs up to a whole prefetch of receive, parse and page faults. Short
 * backpressure therefore only holds (set_paused); this is for one that lasts, where the
 * consumer must go on polling for its group membership. */
static void set_purged(struct sl_kafka_in *k, bool purge)
{
    if (k->purged == purge) return;
    k->purged = purge;
    if (purge) k->purges++;
    if (!k->assignment || k->assignment->cnt == 0) return;
    rd_kafka_resp_err_t err = purge ? rd_kafka_pause_partitions(k->rk, k->assignment)
                                    : rd_kafka_resume_partitions(k->rk, k->assignment);
    if (err)
        SL_ERROR(k->name, "pause", "%s partitions failed: %s", purge ? "pausing" : "resuming",
                 rd_kafka_err2str(err));
    if (!purge) {
        repause_held(k);
        waker_kick(&k->waker, k->assignment);
    }
    SL_DEBUG(k->name, "%s %d partitions (budget %llu/%llu bytes)", purge ? "paused" : "resumed",
             k->assignment->cnt, (unsigned long long)k->p->budget.used,
             (unsigned long long)k->p->budget.limit);
}

/* Backpressure on or off. On, the loop stops draining librdkafka's queue, which is bounded by
 * the prefetch settings and stops fetching when full; update_backpressure pauses the partitions
 * after HOLD_MS, or at once when stopping. */
static void set_paused(struct sl_kafka_in *k, bool pause)
{
    if (k->paused == pause) return;
    k->paused = pause;
    uint64_t now = sl_now_ms();
    if (pause) {
        k->pauses++;
        k->paused_since = now;
        return;
    }
    k->paused_ms += now - k->paused_since;
    k->last_resume_ms = now;
    if (k->purged) {
        set_purged(k, false);
    } else {
        /* The fetcher stopped when the queue filled and nothing wakes it when the queue drains
         * (see the waker): kick it once the queue is empty. */
        k->kick_on_empty = true;
    }
    sl_timer_start(k->p->loop, &k->tick, 0);
}

static void update_backpressure(struct sl_kafka_in *k)
{
    if (k->stopping) {
        set_paused(k, true);
        set_purged(k, true);
        return;
    }
    if (k->paused && !k->purged && sl_now_ms() - k->paused_since >= HOLD_MS) set_purged(k, true);
    if (!k->paused && sl_pipeline_backpressure(k->p)) {
        /* Send what is batched now: waiting for batch_max_wait would only hold memory longer. */
        for (size_t i = 0; i < k->p->n_outputs; i++)
            k->p->outputs[i].ops->flush(k->p->outputs[i].impl);
        set_paused(k, true);
    } else if (k->paused && sl_budget_can_resume(&k->p->budget) &&
               !sl_pipeline_backpressure(k->p)) {
        set_paused(k, false);
    }
}

/* ---------------------------------------------------------------- stuck records */

static void pause_one(struct sl_kafka_in *k, struct kpart *kp, bool pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, kp->t->name, kp->partition);
    rd_kafka_resp_err_t err =
        pause ? rd_kafka_pause_partitions(k->rk, l) : rd_kafka_resume_partitions(k->rk, l);
    if (err)
        SL_ERROR(k->name, "pause", "%s %s [%d] failed: %s", pause ? "pausing" : "resuming",
                 kp->t->name, kp->partition, rd_kafka_err2str(err));
    if (!pause) waker_kick(&k->waker, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* A record retried for ever (401, 403, 429, 5xx: never lost) stays at the head of its
 * partition's ack tracker while the records behind it finish; the tracker keeps every one of
 * them until the head finishes, 9 bytes each. The tracker is charged to the budget; once it
 * reaches the input's share that partition alone stops fetching, and says on which record it
 * waits and why. */
static void hold_partition(struct sl_kafka_in *k, struct kpart *kp)
{
    kp->held = true;
    kp->held_since_ms = sl_now_ms();
    k->holds++;
    if (!k->purged) pause_one(k, kp, true);
    const char *why = sl_acktrack_head_note(kp->trk);
    SL_WARN(k->name, "partition_held",
            "%s [%d] paused: waiting on offset %lld: %s; %u records consumed since, its offset "
            "tracker holds %zu bytes (share %llu)",
            kp->t->name, kp->partition, (long long)sl_acktrack_head_offset(kp->trk),
            why ? why : "no error reported yet", kp->trk->pending, sl_acktrack_bytes(kp->trk),
            (unsigned long long)k->trk_share);
}

static void release_partition(struct sl_kafka_in *k, struct kpart *kp)
{
    kp->held = false;
    if (!k->purged) pause_one(k, kp, false);
    kp->active_ms = sl_now_ms();
    SL_INFO(k->name, "%s [%d] resumed: the record it waited on finished after %llu ms", kp->t->name,
            kp->partition, (unsigned long long)(sl_now_ms() - kp->held_since_ms));
}

/* On every tick: the head each partition waits on, and held partitions whose tracker shrank. */
static void check_heads(struct sl_kafka_in *k, uint64_t now)
{
    for (size_t i = 0; i < k->n_topics; i++) {
        struct ktopic *t = k->topics[i];
        for (int32_t j = 0; j < t->n_parts; j++) {
            struct kpart *kp = t->parts[j];
            if (!kp || !kp->trk) continue;
            int64_t head = sl_acktrack_head_offset(kp->trk);
            if (head != kp->head_offset) {
                kp->head_offset = head;
                kp->head_since_ms = now;
            }
            if (kp->held && sl_acktrack_bytes(kp->trk) <= k->trk_share / 2)
                release_partition(k, kp);
        }
    }
}

/* Held partitions stay paused whatever the input as a whole does. */
static void repause_held(struct sl_kafka_in *k)
{
    for (size_t i = 0; i < k->n_topics; i++)
        for (int32_t j = 0; j < k->topics[i]->n_parts; j++) {
            struct kpart *kp = k->topics[i]->parts[j];
            if (kp && kp->trk && kp->held) pause_one(k, kp, true);
        }
}

/* ---------------------------------------------------------------- rebalance */

static uint64_t revoked_pending(struct sl_kafka_in *k, const rd_kafka_topic_partition_list_t *l)
{
    uint64_t n = 0;
    for (int i = 0; i < l->cnt; i++) {
        struct kpart *kp = get_part(k, get_topic(k, l->elems[i].topic), l->elems[i].partition);
        if (kp->trk) n += kp->trk->pending;
    }
    return n;
}

/* Gives records of revoked partitions a bounded time to finish, so their offsets are committed
 * before the new owner starts and it does not redeliver them. The bound stays well under the
 * session timeout and max.poll.interval.ms. */
static void drain_revoked(struct sl_kafka_in *k, const rd_kafka_topic_partition_list_t *parts)
{
    if (revoked_pending(k, parts) == 0) return;
    uint64_t start = sl_now_ms(), deadline = start + DRAIN_MS;
    for (size_t i = 0; i < k->p->n_outputs; i++)
        k->p->outputs[i].ops->flush(k->p->outputs[i].impl);
    k->in_rebalance = true;
    while (revoked_pending(k, parts) > 0 && sl_now_ms() < deadline) {
        sl_pipeline_dl_commit(k->p);
        sl_loop_run_once(k->p->loop, 20);
    }
    k->in_rebalance = false;
    uint64_t left = revoked_pending(k, parts);
    if (left)
        SL_WARN(k->name, "revoke_drain",
                "%llu records of revoked partitions still in flight "
                "after %d ms; the new owner redelivers them (same ids, no duplicates)",
                (unsigned long long)left, DRAIN_MS);
    else
        SL_INFO(k->name, "revoke: in-flight records drained in %llu ms",
                (unsigned long long)(sl_now_ms() - start));
}

static bool is_strand(const struct sl_kafka_in *k, const char *topic, int32_t partition)
{
    return k->strand_topic && !strcmp(topic, k->strand_topic) && partition == k->strand_partition;
}

static void strand_fault(struct sl_kafka_in *k, uint64_t now)
{
    if (!k->strand_from_ms || now < k->strand_from_ms || !k->assignment) return;
    const rd_kafka_topic_partition_list_t *parts = k->assignment;
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *e = &parts->elems[i];
        if (!is_strand(k, e->topic, e->partition)) continue;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, e->topic, e->partition);
        rd_kafka_pause_partitions(k->rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (!k->strand_logged)
            SL_WARN(k->name, "fault_injection",
                    "SLUICE_FAULT_STRAND: %s [%d] paused in the client without sluice knowing "
                    "(a test fault)",
                    e->topic, e->partition);
        k->strand_logged = true;
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct sl_kafka_in *k = opaque;
    k->rebalances++;
    k->reached_once = true; /* the group coordinator answered */
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++) {
            struct kpart *kp =
                get_part(k, get_topic(k, parts->elems[i].topic), parts->elems[i].partition);
            if (kp->trk) sl_acktrack_revoke(kp->trk);
            kp->trk = sl_acktrack_new(kp, on_advance);
            if (!kp->trk) abort();
            sl_acktrack_set_budget(kp->trk, &k->p->budget);
            kp->held = false;
            kp->head_offset = -1;
            kp->to_store = -1;
            kp->stored = -1;
            kp->next_offset = -1;
            kp->active_ms = sl_now_ms();
        }
        rd_kafka_assign(rk, parts);
        if (k->assignment) rd_kafka_topic_partition_list_destroy(k->assignment);
        k->assignment = rd_kafka_topic_partition_list_copy(parts);
        /* The application pause flag survives rebalances in 2.0.2: state it explicitly. */
        if (k->purged)
            rd_kafka_pause_partitions(rk, parts);
        else
            rd_kafka_resume_partitions(rk, parts);
        SL_INFO(k->name, "assigned %d partitions%s", parts->cnt, k->purged ? " (paused)" : "");
        if (k->strand_topic) {
            k->strand_from_ms = sl_now_ms() + 1000;
            k->strand_logged = false;
        }
        return;
    }
    if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
        SL_ERROR(k->name, "rebalance", "rebalance error: %s", rd_kafka_err2str(err));
    /* At shutdown main has drained for shutdown_timeout already. */
    if (!rd_kafka_assignment_lost(rk) && !k->stopping) drain_revoked(k, parts);
    /* Store the final watermarks now: unassign commits stored offsets of removed partitions.
     * Records still in flight after the drain finish later; the partitions' new owners re-read
     * them, which the deterministic ids turn into no-ops. */
    if (!rd_kafka_assignment_lost(rk)) store_offsets(k);
    for (int i = 0; i < parts->cnt; i++) {
        struct kpart *kp =
            get_part(k, get_topic(k, parts->elems[i].topic), parts->elems[i].partition);
        if (kp->trk) sl_acktrack_revoke(kp->trk);
        kp->trk = NULL;
    }
    rd_kafka_assign(rk, NULL);
    if (k->assignment) rd_kafka_topic_partition_list_destroy(k->assignment);
    k->assignment = NULL;
    SL_INFO(k->name, "revoked %d partitions", parts->cnt);
}

/* ---------------------------------------------------------------- records */

/* Per-record work buffers, reused for every record, so each is charged once at its largest
 * size. */
static char *buf_room(struct sl_kafka_in *k, char **buf, size_t *cap, size_t need)
{
    if (need > *cap) {
        char *n = realloc(*buf, need);
        if (!n) abort();
        sl_budget_charge(&k->p->budget, need - *cap);
        *buf = n;
        *cap = need;
    }
    return *buf;
}

/* A huge record (10 MB text is 60 MB escaped) must not keep a buffer charged forever: the
 * budget would stay full and the input paused for good. */
static void buf_shrink(struct sl_kafka_in *k, char **buf, size_t *cap)
{
    if (*cap <= SCRATCH_KEEP) return;
    free(*buf);
    sl_budget_release(&k->p->budget, *cap);
    *buf = NULL;
    *cap = 0;
}

static char *scratch(struct sl_kafka_in *k, size_t need)
{
    return buf_room(k, &k->scratch, &k->scratch_cap, need);
}

static void shrink_scratch(struct sl_kafka_in *k)
{
    buf_shrink(k, &k->scratch, &k->scratch_cap);
    buf_shrink(k, &k->meta, &k->meta_cap);
}

/* {"message":"<escaped payload>"} for text payloads and unparsable JSON kept as text. */
static void wrap_text(struct sl_kafka_in *k, struct sl_event *ev)
{
    char *s = scratch(k, ev->payload_len * 6 + 16);
    size_t n = 0;
    memcpy(s, "{\"message\":\"", 12);
    n = 12 + sl_json_escape(ev->payload, ev->payload_len, s + 12);
    memcpy(s + n, "\"}", 2);
    ev->payload = s;
    ev->payload_len = n + 2;
}

/* Appends "<metadata_key>":{"topic":..,"partition":..,"offset":..,"key":..} to the object. */
static void add_metadata(struct sl_kafka_in *k, struct sl_event *ev)
{
    const char *mk = k->kc->metadata_key;
    size_t need = ev->payload_len + strlen(mk) * 6 + ev->topic_len * 6 + ev->key_len * 6 + 128;
    char *buf = buf_room(k, &k->meta, &k->meta_cap, need);
    size_t n = ev->payload_len;
    while (n && ev->payload[n - 1] != '}')
        n--; /* strip trailing whitespace and the brace */
    if (n) n--;
    memcpy(buf, ev->payload, n);
    size_t w = n;
    /* An empty object gets no leading comma. */
    size_t j = n;
    while (j && (buf[j - 1] == ' ' || buf[j - 1] == '\t'))
        j--;
    if (!(j && buf[j - 1] == '{')) buf[w++] = ',';
    buf[w++] = '"';
    w += sl_json_escape(mk, strlen(mk), buf + w);
    w += (size_t)sprintf(buf + w, "\":{\"topic\":\"");
    w += sl_json_escape(ev->topic, ev->topic_len, buf + w);
    w += (size_t)sprintf(buf + w, "\",\"partition\":%d,\"offset\":%lld", ev->partition,
                         (long long)ev->offset);
    if (ev->key) {
        w += (size_t)sprintf(buf + w, ",\"key\":\"");
        w += sl_json_escape(ev->key, ev->key_len, buf + w);
        buf[w++] = '"';
    }
    buf[w++] = '}';
    buf[w++] = '}';
    ev->payload = buf;
    ev->payload_len = w;
}

/* The event time from the record's time_key token, per time_format; on failure the Kafka
 * timestamp stays and the record is counted. */
static void record_time(struct sl_kafka_in *k, struct sl_event *ev, const char *tok, size_t len)
{
    int64_t ns;
    int rc;
    if (!k->kc->time_format) {
        rc = sl_json_parse_time(tok, len, &ns);
    } else if (len >= 2 && tok[0] == '"' && !memchr(tok, '\\', len)) {
        rc = sl_time_parse_fmt(tok + 1, len - 2, k->kc->time_format, ev->time_ns, &ns);
    } else {
        /* an escaped string (rare in a time) or a number: decode it first */
        char buf[128];
        ssize_t n = tok[0] == '"' ? sl_json_unescape(tok, len, buf, sizeof buf) : -1;
        if (n < 0 && tok[0] != '"' && len < sizeof buf) {
            memcpy(buf, tok, len);
            n = (ssize_t)len;
        }
        rc = n < 0 ? -1 : sl_time_parse_fmt(buf, (size_t)n, k->kc->time_format, ev->time_ns, &ns);
    }
    if (rc == 0)
        ev->time_ns = ns;
    else
        k->ctr.time_errors++;
}

static void parse_failed(struct sl_kafka_in *k, struct sl_event *ev, const char *reason,
                         const char *etype, const char *why, size_t why_len)
{
    k->ctr.parse_errors++;
    if (k->kc->on_parse_error == SL_PARSE_ERROR_AS_TEXT) {
        wrap_text(k, ev);
        return;
    }
    SL_WARN(k->name, etype, "%.*s [%d] offset %lld: %s (%.*s); dead-lettered", (int)ev->topic_len,
            ev->topic, ev->partition, (long long)ev->offset, reason, (int)why_len, why);
    sl_pipeline_dead_letter(k->p, ev, reason, 0, etype, strlen(etype), why, why_len, false, NULL,
                            NULL, 0, 0);
}

/* Turns the message value into the record: JSON (validated, compacted if it spans lines), a
 * regexp match, or text. Fills scan and the event time. Returns -1 when the record was
 * dead-lettered instead. */
static int parse_payload(struct sl_kafka_in *k, struct sl_event *ev, struct sl_json_scan *scan)
{
    if (k->kc->format == SL_FORMAT_TEXT) {
        wrap_text(k, ev);
        return 0;
    }
    if (k->kc->format == SL_FORMAT_REGEXP) {
        ssize_t need = sl_rxparse_match(k->rx, ev->payload, ev->payload_len);
        if (need < 0) {
            static const char why[] = "the line does not match the input's pattern";
            parse_failed(k, ev, "pattern did not match", "pattern_mismatch", why, sizeof why - 1);
            return k->kc->on_parse_error == SL_PARSE_ERROR_AS_TEXT ? 0 : -1;
        }
        unsigned terr = 0;
        char *s = scratch(k, (size_t)need);
        ev->payload_len = sl_rxparse_write(k->rx, s, &terr);
        ev->payload = s;
        k->ctr.type_errors += terr;
    }
    memset(scan, 0, sizeof *scan);
    for (size_t i = 0; i < k->p->n_paths; i++)
        scan->paths[i] = k->p->paths[i];
    scan->n_paths = k->p->n_paths;
    if (sl_json_scan_object(ev->payload, ev->payload_len, scan) != 0) {
        char why[256];
        int wl = snprintf(why, sizeof why, "%s at byte %zu", scan->err_msg, scan->err_offset);
        parse_failed(k, ev, "invalid JSON", "json_parse_error", why, (size_t)wl);
        return k->kc->on_parse_error == SL_PARSE_ERROR_AS_TEXT ? 0 : -1;
    }
    ev->scan = scan;
    if (k->time_path >= 0 && scan->val[k->time_path])
        record_time(k, ev, scan->val[k->time_path], scan->vlen[k->time_path]);
    if (scan->has_raw_newline) {
        char *s = scratch(k, ev->payload_len);
        ev->payload_len = sl_json_compact(ev->payload, ev->payload_len, s);
        ev->payload = s;
        /* scan values pointed into the original; rescan the compact copy */
        if (sl_json_scan_object(ev->payload, ev->payload_len, scan) != 0) abort();
    }
    return 0;
}

static void handle_message(struct sl_kafka_in *k, rd_kafka_message_t *m)
{
    if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
        SL_WARN(k->name, "consumer_error", "%s%s%s", rd_kafka_err2str(m->err),
                m->payload ? ": " : "", m->payload ? (const char *)m->payload : "");
        return;
    }
    struct ktopic *t = get_topic(k, rd_kafka_topic_name(m->rkt));
    struct kpart *kp = get_part(k, t, m->partition);
    if (!kp->trk) {
        /* A message for a partition we do not hold (can only happen around a revoke): not
         * tracked, not stored, so its new owner delivers it. Skipping it loses nothing. */
        SL_WARN(k->name, "unassigned", "message for unassigned %s [%d] skipped", t->name,
                m->partition);
        return;
    }
    uint64_t seq = sl_acktrack_add(kp->trk, m->offset);
    if (seq == UINT64_MAX) abort();
    if (!kp->held && sl_acktrack_bytes(kp->trk) > k->trk_share) hold_partition(k, kp);
    brokers_reached(k);
    k->ctr.received++;
    kp->received++;
    kp->next_offset = m->offset + 1;
    kp->active_ms = k->last_poll_ms;
    rd_kafka_timestamp_type_t tst;
    int64_t ts_ms = rd_kafka_message_timestamp(m, &tst);
    if (ts_ms < 0) {
        /* Only records of message format v0 (producers before Kafka 0.10) have none; a time_key
         * value still replaces it. */
        k->no_timestamp++;
        SL_WARN(k->name, "no_timestamp",
                "%s [%d] offset %lld has no timestamp (message format v0); it gets the time it "
                "was read, unless its time_key says otherwise",
                t->name, m->partition, (long long)m->offset);
    }
    struct sl_json_scan scan;
    struct sl_event ev = {
        .input = k->name,
        .tag = t->tag,
        .tag_len = t->tag_len,
        .topic = t->name,
        .topic_len = t->name_len,
        .partition = m->partition,
        .offset = m->offset,
        .key = m->key,
        .key_len = m->key_len,
        .time_ns = ts_ms >= 0 ? ts_ms * 1000000 : sl_wall_ns(),
        .payload = m->payload ? (const char *)m->payload : "",
        .payload_len = m->len,
        .ack = {.trk = kp->trk, .seq = seq, .ctr = &k->ctr},
    };
    if (t->route.n == 0) {
        k->ctr.unmatched++;
        if (k->p->cfg->service.unmatched == SL_UNMATCHED_DROP) {
            sl_ack(&ev.ack, SL_FATE_DROPPED);
        } else {
            static const char why[] = "no output's match pattern matches this tag";
            sl_pipeline_dead_letter(k->p, &ev, "unmatched tag", 0, "unmatched_tag", 13, why,
                                    sizeof why - 1, false, NULL, NULL, 0, 0);
        }
        return;
    }
    if (parse_payload(k, &ev, &scan) < 0) return;
    if (k->kc->metadata_key) add_metadata(k, &ev);
    if (k->edits) sl_edits_apply(k->edits, k->p, &ev, &scan);
    sl_pipeline_submit(k->p, &t->route, &ev);
    sl_edits_done(k->edits);
    shrink_scratch(k);
}

static void poll_burst(struct sl_kafka_in *k)
{
    /* The revoke handler runs the loop to drain; it is itself inside rd_kafka_consumer_poll,
     * which must not be re-entered. */
    if (k->in_rebalance) return;
    char drain[256];
    while (read(k->pipefd[0], drain, sizeof drain) > 0) {
    }
    /* Held: the queue keeps what it has (a pause would drop it). Resuming polls at once. */
    if (k->paused && !k->purged) return;
    int n = 0;
    rd_kafka_message_t *m = NULL;
    k->last_poll_ms = sl_now_ms();
    while (n < BURST && (m = rd_kafka_consumer_poll(k->rk, 0))) {
        handle_message(k, m);
        rd_kafka_message_destroy(m);
        n++;
        if (!k->paused && sl_pipeline_backpressure(k->p)) {
            update_backpressure(k);
            if (k->paused) break;
        }
    }
    if (!m && k->kick_on_empty && !k->paused) {
        k->kick_on_empty = false;
        if (k->assignment && k->assignment->cnt) waker_kick(&k->waker, k->assignment);
    } else if (!m && n > 0 && k->last_poll_ms - k->last_drain_kick_ms >= DRAIN_KICK_MS) {
        /* The queue ran dry. If it had reached its limits, librdkafka 2.0.2 stopped fetching and
         * nothing but a request wakes its broker thread, which sleeps up to a second meanwhile:
         * the prefetch share is small enough for that to happen on every burst of backpressure.
         * A wake-up at most every DRAIN_KICK_MS (a watermark query to the leaders) restarts the
         * fetch. Measured with memory_limit 32MiB, 1,000,000 records, medians: a real Kafka 4.4
         * broker 91k -> 360k records/s (zstd 200k -> 404k), peak RSS 31.6 -> 32.9 MiB; the mock
         * cluster with gzip bodies 24k -> 162k, add_fields 161k -> 286k, the default config
         * within noise (277k against 328k, ranges 258k-319k and 250k-386k). */
        k->last_drain_kick_ms = k->last_poll_ms;
        if (k->assignment && k->assignment->cnt) waker_kick(&k->waker, k->assignment);
    }
    sl_pipeline_dl_commit(k->p);
    /* A full burst means the queue may still hold messages, and librdkafka only writes to the
     * pipe when the queue goes from empty to non-empty: come back on the next iteration. */
    if (n == BURST) sl_timer_start(k->p->loop, &k->tick, 0);
}

static void io_cb(struct sl_io *io, uint32_t events)
{
    (void)events;
    poll_burst(io->arg);
}

/* The stall watchdog. A partition that has data past our position but delivered nothing for
 * STALL_MS while nothing was paused is stuck inside the client. Seen in benchmarks and once in
 * CI: one of many partitions assigned, holding records, never fetched, nothing committed, no
 * error anywhere (librdkafka #5591 reports the same on later versions). Nothing is lost - no
 * offset of it was committed past the gap - but nothing would ever arrive, silently. Resuming
 * it and seeking to where it should be restarts its fetcher; the event is logged and counted.
 *
 * Where it should be: the next offset after what we received; or, for a partition that never
 * delivered a record, the group's committed offset, else (auto.offset.reset earliest) the log
 * start. Those two and the high watermark come from brokers, so the waker thread asks them. */
static void restart_fetch(struct sl_kafka_in *k, struct ktopic *t, int32_t j, int64_t pos,
                          int64_t hi, uint64_t quiet_ms, const char *why)
{
    struct kpart *kp = t->parts[j];
    k->stall_recoveries++;
    if (is_strand(k, t->name, j)) k->strand_from_ms = 0;
    SL_WARN(k->name, "partition_stalled",
            "%s [%d]: no message for %llu ms although the log reaches %lld and %s %lld; "
            "restarting its fetch at %lld",
            t->name, j, (unsigned long long)quiet_ms, (long long)hi, why, (long long)pos,
            (long long)pos);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, t->name, j)->offset = pos;
    /* in case the client holds it paused although we do not (the resume is a no-op if not) */
    rd_kafka_resume_partitions(k->rk, l);
    rd_kafka_error_t *e = rd_kafka_seek_partitions(k->rk, l, 0);
    if (e) {
        SL_WARN(k->name, "seek", "seek failed: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    waker_kick(&k->waker, l);
    rd_kafka_topic_partition_list_destroy(l);
    kp->active_ms = sl_now_ms();
}

static uint64_t quiet_since(const struct sl_kafka_in *k, const struct kpart *kp)
{
    return kp->active_ms > k->last_resume_ms ? kp->active_ms : k->last_resume_ms;
}

/* Acts on the brokers' answers about partitions that had delivered nothing. */
static void probe_answers(struct sl_kafka_in *k, uint64_t now)
{
    struct probe pr[PROBE_MAX];
    int n = waker_probe_take(&k->waker, pr);
    for (int i = 0; i < n; i++) {
        if (pr[i].ok) brokers_reached(k);
        struct ktopic *t = get_topic(k, pr[i].topic);
        struct kpart *kp = pr[i].partition < t->n_parts ? t->parts[pr[i].partition] : NULL;
        /* still held and still silent? */
        if (!kp || !kp->trk || kp->held || kp->next_offset >= 0) continue;
        uint64_t since = quiet_since(k, kp);
        /* asked again after another STALL_MS at the earliest, whatever the answer */
        kp->active_ms = now;
        if (!pr[i].ok) continue;
        if (pr[i].committed > kp->committed) kp->committed = pr[i].committed;
        int64_t start = pr[i].committed >= 0 ? pr[i].committed : k->reset_earliest ? pr[i].lo : -1;
        if (start < 0 || pr[i].hi <= start || now - since < STALL_MS) continue;
        restart_fetch(k, t, pr[i].partition, start, pr[i].hi, now - since,
                      pr[i].committed >= 0 ? "the group's committed offset is"
                                           : "nothing is committed; the log starts at");
    }
}

static void check_stalled(struct sl_kafka_in *k, uint64_t now)
{
    if (k->paused || k->stopping) return;
    probe_answers(k, now);
    if (now - k->last_stall_check_ms < 1000) return;
    k->last_stall_check_ms = now;
    struct probe ask[PROBE_MAX];
    int n_ask = 0;
    for (size_t i = 0; i < k->n_topics; i++) {
        struct ktopic *t = k->topics[i];
        for (int32_t j = 0; j < t->n_parts; j++) {
            struct kpart *kp = t->parts[j];
            if (!kp || !kp->trk || kp->held) continue;
            uint64_t since = quiet_since(k, kp);
            if (now - since < STALL_MS) continue;
            if (kp->next_offset < 0) {
                if (n_ask < PROBE_MAX) {
                    snprintf(ask[n_ask].topic, sizeof ask[n_ask].topic, "%s", t->name);
                    ask[n_ask++].partition = j;
                }
                continue;
            }
            int64_t lo = -1, hi = -1;
            rd_kafka_get_watermark_offsets(k->rk, t->name, j, &lo, &hi);
            if (hi <= kp->next_offset) continue;
            restart_fetch(k, t, j, kp->next_offset, hi, now - since, "we are at");
        }
    }
    waker_probe_ask(&k->waker, ask, n_ask);
}

static void tick_cb(struct sl_timer *t)
{
    struct sl_kafka_in *k = t->arg;
    poll_burst(k);
    update_backpressure(k);
    store_offsets(k);
    check_heads(k, sl_now_ms());
    check_stalled(k, sl_now_ms());
    if (k->strand_from_ms) strand_fault(k, sl_now_ms());
    if (!k->tick.active) sl_timer_start(k->p->loop, &k->tick, k->paused ? TICK_PAUSED_MS : TICK_MS);
}

/* ---------------------------------------------------------------- commits */

/* librdkafka reports every commit here (auto-commit timer, unassign, close): it is the only
 * place that knows what the group really holds, and a failed commit must not go unseen. */
static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    (void)rk;
    struct sl_kafka_in *k = opaque;
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) return; /* nothing was stored since the last one */
    k->commits++;
    if (!err) brokers_reached(k);
    if (err) {
        k->commit_failures++;
        SL_WARN(k->name, "commit",
                "offset commit failed: %s (the stored offsets are committed "
                "again by the next attempt; at worst records are redelivered)",
                rd_kafka_err2str(err));
    }
    if (!offsets) return;
    for (int i = 0; i < offsets->cnt; i++) {
        const rd_kafka_topic_partition_t *e = &offsets->elems[i];
        if (e->err || e->offset < 0) continue;
        struct kpart *kp = get_part(k, get_topic(k, e->topic), e->partition);
        if (e->offset > kp->committed) kp->committed = e->offset;
    }
}

void sl_kafka_in_partitions(struct sl_kafka_in *k, sl_kafka_partition_cb cb, void *ctx)
{
    for (size_t i = 0; i < k->n_topics; i++) {
        struct ktopic *t = k->topics[i];
        for (int32_t j = 0; j < t->n_parts; j++) {
            struct kpart *kp = t->parts[j];
            if (!kp || !kp->trk) continue; /* only partitions held now */
            int64_t lo = -1, hi = -1;
            /* cached from fetch responses: no broker round trip on the loop thread */
            rd_kafka_get_watermark_offsets(k->rk, t->name, j, &lo, &hi);
            struct sl_kafka_partition_info info = {
                .topic = t->name,
                .partition = j,
                .committed = kp->committed,
                .stored = kp->stored,
                .high_watermark = hi,
                .lag = hi >= 0 ? hi - (kp->committed >= 0 ? kp->committed
                                       : lo >= 0          ? lo
                                                          : 0)
                               : -1,
                .pending = kp->trk->pending,
                .paused = k->paused || kp->held,
                .held = kp->held,
                .waiting_offset = kp->head_offset,
                .waiting_ms = kp->head_offset >= 0 ? sl_now_ms() - kp->head_since_ms : 0,
                .waiting_why = kp->head_offset >= 0 ? sl_acktrack_head_note(kp->trk) : NULL,
                .uncommitted = kp->next_offset >= 0
                                   ? kp->next_offset - (kp->committed >= 0 ? kp->committed
                                                        : lo >= 0          ? lo
                                                                           : kp->next_offset)
                                   : 0,
            };
            cb(&info, ctx);
        }
    }
}

void sl_kafka_in_info(const struct sl_kafka_in *k, struct sl_kafka_in_info *out)
{
    uint64_t paused = k->paused_ms + (k->paused ? sl_now_ms() - k->paused_since : 0);
    *out = (struct sl_kafka_in_info){
        .paused = k->paused,
        .paused_ms = paused,
        .pauses = k->pauses,
        .rebalances = k->rebalances,
        .commits = k->commits,
        .commit_failures = k->commit_failures,
        .time_parse_errors = k->ctr.time_errors,
        .stall_recoveries = k->stall_recoveries,
        .partition_pauses = k->purges,
        .client_errors = k->client_errors,
        .holds = k->holds,
        .no_timestamp = k->no_timestamp,
        .brokers_down = k->brokers_down,
        .assigned = k->assignment ? k->assignment->cnt : 0,
    };
}

/* ---------------------------------------------------------------- set-up */

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    enum sl_log_level l = level <= 3 ? SL_LOG_ERROR : level <= 4 ? SL_LOG_WARN : SL_LOG_DEBUG;
    sl_log(l, "librdkafka", fac, "%s", buf);
}

/* Whether an error says the client's security settings are wrong, not that a broker is
 * away: SASL refused the credentials, or the broker's certificate did not verify (a TLS error
 * of another kind, a reset mid-handshake, can be an outage). */
static bool security_error(int err, const char *reason)
{
    return err == RD_KAFKA_RESP_ERR__AUTHENTICATION ||
           err == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED ||
           (err == RD_KAFKA_RESP_ERR__SSL && reason && strstr(reason, "certificate"));
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    struct sl_kafka_in *k = opaque;
    k->client_errors++;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) k->brokers_down = true;
    if (security_error(err, reason)) {
        if (!k->reached_once && !k->p->fatal) {
            /* Retrying cannot fix a wrong password or CA file: say so and stop (exit 2).
             * librdkafka before 2.6.1 repeats the client nonce in its SCRAM final message,
             * which Apache Kafka 4.x brokers refuse as invalid credentials: with a right
             * password that is the cause, and nothing in the settings can change it. */
            char hint[256] = "";
            if (reason && strstr(reason, "SCRAM") && rd_kafka_version() < 0x020601ff)
                snprintf(hint, sizeof hint,
                         ". If they are right and the brokers run Kafka 4.x: librdkafka %s "
                         "cannot authenticate with SCRAM to them (2.6.1 can); use SASL PLAIN "
                         "over TLS, or a newer librdkafka",
                         rd_kafka_version_str());
            SL_ERROR(k->name, "security",
                     "cannot connect to the brokers: %s (%s). Check the input's security "
                     "settings (librdkafka: security.protocol, sasl.mechanisms, sasl.username, "
                     "sasl.password, ssl.ca.location)%s; stopping",
                     reason, rd_kafka_err2name(err), hint);
            k->p->fatal = true;
            return;
        }
        SL_ERROR(k->name, rd_kafka_err2name(err), "%s (retrying)", reason);
        return;
    }
    SL_WARN(k->name, rd_kafka_err2name(err), "%s", reason);
}

static void brokers_reached(struct sl_kafka_in *k)
{
    k->reached_once = true;
    if (!k->brokers_down) return;
    k->brokers_down = false;
    SL_INFO(k->name, "brokers reachable again");
}

static int set(rd_kafka_conf_t *conf, const char *key, const char *val, char *err, size_t errlen)
{
    if (rd_kafka_conf_set(conf, key, val, err, errlen) != RD_KAFKA_CONF_OK) return -1;
    return 0;
}

struct sl_kafka_in *sl_kafka_in_new(struct sl_pipeline *p, const struct sl_input_cfg *cfg,
                                    uint64_t prefetch_bytes, char *err, size_t errlen)
{
    struct sl_kafka_in *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->p = p;
    k->cfg = cfg;
    k->kc = &cfg->kafka;
    k->name = cfg->name;
    k->pipefd[0] = k->pipefd[1] = -1;
    k->time_path = -1;
    if (k->kc->time_key && (k->time_path = sl_pipeline_path(p, k->kc->time_key)) < 0) {
        snprintf(err, errlen, "%s: too many record fields referenced", k->name);
        goto fail;
    }
    err[0] = '\0';
    k->edits = sl_edits_new(&cfg->edits, &p->budget, err, errlen);
    if (!k->edits && err[0]) goto fail;
    if (k->kc->format == SL_FORMAT_REGEXP) {
        char why[256];
        k->rx = sl_rxparse_new(k->kc->pattern, k->kc->types, k->kc->n_types, why, sizeof why);
        if (!k->rx) {
            snprintf(err, errlen, "%s: pattern: %s", k->name, why);
            goto fail;
        }
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char num[32];
    /* librdkafka's prefetch is part of the budget. Its fetch queue may hold a quarter of
     * prefetch_bytes in payload bytes, and a message count that also bounds its per-message
     * overhead (not counted in queued.max.messages.kbytes). Compressed batches are decompressed
     * whole into a buffer that librdkafka sizes by doubling a guess (zstd, lz4), up to twice
     * the records' size, and every queued record pins its batch's buffer: the queue costs up to
     * half the share. The queue is checked before a fetch is sent, so one response comes on top
     * of it, and a response's limits count compressed bytes: a response is at most a 32nd of
     * the share, which keeps it inside the other half for batches compressed up to 8:1 (JSON
     * logs: about 10:1 with gzip); a partition's part of it a quarter, so several partitions
     * fill it. The queue stays many uncompressed responses deep, and two compressed ones: in
     * 2.0.2 a partition that finds the queue full backs off fetch.error.backoff.ms.
     * Measured on a real broker (Kafka 4.4, 200,000 records on 8 partitions, memory_limit 32MiB,
     * OpenSearch slower than Kafka): with the former 2 MiB fetches and a 4 MiB queue, zstd
     * batches peaked at 103 MiB RSS (gzip 85, lz4 71, snappy 70, none 45); with these, zstd
     * peaked at 42 MiB and none at 34. A bare consumer of 500,000 records (5 runs each, bimodal
     * on this machine) got 84-101k zstd records/s with the former settings and 385k-1.4M with
     * these; uncompressed, 245k-1.1M and 229k-1.2M, at 0.80-0.86 and 0.59-0.74 us of CPU each.
     * message.max.bytes (a producer setting) must not exceed fetch.max.bytes in a consumer. */
    uint64_t qbytes = prefetch_bytes / 4;
    if (qbytes < 1048576) qbytes = 1048576;
    uint64_t fetch = prefetch_bytes / 32;
    if (fetch < 65536) fetch = 65536;
    uint64_t qkb = qbytes / 1024;
    uint64_t qmsgs = qbytes / 128;
    struct {
        const char *k, *v;
    } defaults[] = {
        {"bootstrap.servers", k->kc->brokers},
        {"group.id", k->kc->group_id},
        {"enable.auto.commit", "true"},
        {"enable.auto.offset.store", "false"},
        {"auto.commit.interval.ms", "1000"},
        {"auto.offset.reset", "earliest"},
        /* cooperative-sticky aborts on close before the first assignment in 2.0.2 */
        {"partition.assignment.strategy", "range"},
        {"enable.partition.eof", "false"},
        {"fetch.wait.max.ms", "100"},
    };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (set(conf, defaults[i].k, defaults[i].v, err, errlen) != 0) goto fail_conf;
    snprintf(num, sizeof num, "%llu", (unsigned long long)qkb);
    if (set(conf, "queued.max.messages.kbytes", num, err, errlen) != 0) goto fail_conf;
    snprintf(num, sizeof num, "%llu", (unsigned long long)fetch);
    if (set(conf, "fetch.max.bytes", num, err, errlen) != 0) goto fail_conf;
    snprintf(num, sizeof num, "%llu", (unsigned long long)qmsgs);
    if (set(conf, "queued.min.messages", num, err, errlen) != 0) goto fail_conf;
    snprintf(num, sizeof num, "%llu", (unsigned long long)(fetch / 4));
    if (set(conf, "max.partition.fetch.bytes", num, err, errlen) != 0) goto fail_conf;
    snprintf(num, sizeof num, "%llu", (unsigned long long)fetch);
    if (set(conf, "message.max.bytes", num, err, errlen) != 0) goto fail_conf;
    for (size_t i = 0; i < k->kc->n_librdkafka; i++) {
        if (set(conf, k->kc->librdkafka[i].key, k->kc->librdkafka[i].value, err, errlen) != 0) {
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%s: librdkafka.%s: %s", k->name, k->kc->librdkafka[i].key,
                     err);
            snprintf(err, errlen, "%s", tmp);
            goto fail_conf;
        }
    }
    char reset[32];
    size_t reset_len = sizeof reset;
    k->trk_share = p->budget.limit / 8 > 65536 ? p->budget.limit / 8 : 65536;
    k->reset_earliest =
        rd_kafka_conf_get(conf, "auto.offset.reset", reset, &reset_len) == RD_KAFKA_CONF_OK &&
        (!strcmp(reset, "earliest") || !strcmp(reset, "smallest") || !strcmp(reset, "beginning"));
    const char *strand = getenv("SLUICE_FAULT_STRAND");
    const char *colon = strand ? strrchr(strand, ':') : NULL;
    if (colon) {
        k->strand_topic = strndup(strand, (size_t)(colon - strand));
        k->strand_partition = (int32_t)atoi(colon + 1);
    }
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_offset_commit_cb(conf, commit_cb);
    k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (!k->rk) goto fail_conf;
    rd_kafka_poll_set_consumer(k->rk);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new((int)k->kc->n_topics);
    for (size_t i = 0; i < k->kc->n_topics; i++)
        rd_kafka_topic_partition_list_add(subs, k->kc->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(k->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        snprintf(err, errlen, "%s: subscribe failed: %s", k->name, rd_kafka_err2str(e));
        goto fail;
    }
    if (waker_start(&k->waker, k->rk) != 0) {
        snprintf(err, errlen, "%s: cannot start the fetcher wake-up thread", k->name);
        goto fail;
    }
    if (pipe2(k->pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    k->q = rd_kafka_queue_get_consumer(k->rk);
    rd_kafka_queue_io_event_enable(k->q, k->pipefd[1], "1", 1);
    k->io.fd = k->pipefd[0];
    k->io.cb = io_cb;
    k->io.arg = k;
    sl_loop_io_set(p->loop, &k->io, EPOLLIN);
    k->tick.cb = tick_cb;
    k->tick.arg = k;
    sl_timer_start(p->loop, &k->tick, 0);
    sl_pipeline_watch_room(p, &k->tick);
    SL_INFO(k->name,
            "brokers=%s group=%s topics=%zu prefetch: queued.max.messages.kbytes=%llu "
            "queued.min.messages=%llu fetch.max.bytes=%llu",
            k->kc->brokers, k->kc->group_id, k->kc->n_topics, (unsigned long long)qkb,
            (unsigned long long)qmsgs, (unsigned long long)fetch);
    return k;
fail_conf:
    rd_kafka_conf_destroy(conf);
fail:
    sl_kafka_in_close(k);
    return NULL;
}

void sl_kafka_in_stop(struct sl_kafka_in *k)
{
    k->stopping = true;
    update_backpressure(k);
}

void sl_kafka_in_close(struct sl_kafka_in *k)
{
    if (!k) return;
    waker_stop(&k->waker);
    if (k->rk) {
        store_offsets(k);
        rd_kafka_resp_err_t e = rd_kafka_consumer_close(k->rk);
        if (e) SL_WARN(k->name, "close", "consumer close: %s", rd_kafka_err2str(e));
        if (k->q) rd_kafka_queue_destroy(k->q);
        rd_kafka_destroy(k->rk);
    }
    sl_pipeline_unwatch_room(k->p, &k->tick);
    sl_timer_stop(k->p->loop, &k->tick);
    if (k->pipefd[0] >= 0) {
        sl_loop_io_set(k->p->loop, &k->io, 0);
        close(k->pipefd[0]);
        close(k->pipefd[1]);
    }
    for (size_t i = 0; i < k->n_topics; i++) {
        struct ktopic *t = k->topics[i];
        for (int32_t j = 0; j < t->n_parts; j++) {
            /* Trackers with records still pending stay alive: those records' batches point at
             * them until the outputs are destroyed (sl_acktrack_free_all). No offset was stored
             * past them. */
            if (t->parts[j] && t->parts[j]->trk) sl_acktrack_revoke(t->parts[j]->trk);
            free(t->parts[j]);
        }
        free(t->parts);
        free(t->name);
        free(t->tag);
        free(t);
    }
    free(k->topics);
    if (k->assignment) rd_kafka_topic_partition_list_destroy(k->assignment);
    free(k->scratch);
    free(k->meta);
    free(k->strand_topic);
    sl_rxparse_free(k->rx);
    sl_edits_free(k->edits);
    free(k);
}

const struct sl_counters *sl_kafka_in_counters(const struct sl_kafka_in *k)
{
    return &k->ctr;
}

const char *sl_kafka_in_name(const struct sl_kafka_in *k)
{
    return k->name;
}

void sl_kafka_in_log_stats(struct sl_kafka_in *k)
{
    const struct sl_counters *c = &k->ctr;
    uint64_t paused = k->paused_ms + (k->paused ? sl_now_ms() - k->paused_since : 0);
    SL_INFO(k->name,
            "received=%llu delivered=%llu dead_lettered=%llu dropped=%llu in_flight=%llu "
            "parse_errors=%llu unmatched=%llu time_parse_errors=%llu pauses=%llu paused_ms=%llu "
            "partition_pauses=%llu "
            "rebalances=%llu commits=%llu commit_failures=%llu stall_recoveries=%llu "
            "budget=%llu/%llu",
            (unsigned long long)c->received, (unsigned long long)c->delivered,
            (unsigned long long)c->dead_lettered, (unsigned long long)c->dropped,
            (unsigned long long)(c->received - c->delivered - c->dead_lettered - c->dropped),
            (unsigned long long)c->parse_errors, (unsigned long long)c->unmatched,
            (unsigned long long)k->ctr.time_errors, (unsigned long long)k->pauses,
            (unsigned long long)paused, (unsigned long long)k->purges,
            (unsigned long long)k->rebalances, (unsigned long long)k->commits,
            (unsigned long long)k->commit_failures, (unsigned long long)k->stall_recoveries,
            (unsigned long long)k->p->budget.used, (unsigned long long)k->p->budget.limit);
}

static const char *ops_name(const void *impl)
{
    return sl_kafka_in_name(impl);
}

static const struct sl_counters *ops_counters(const void *impl)
{
    return sl_kafka_in_counters(impl);
}

static void ops_stop(void *impl)
{
    sl_kafka_in_stop(impl);
}

static void ops_close(void *impl)
{
    sl_kafka_in_close(impl);
}

static void ops_log_stats(void *impl)
{
    sl_kafka_in_log_stats(impl);
}

const struct sl_input_ops sl_kafka_in_ops = {
    .name = ops_name,
    .counters = ops_counters,
    .stop = ops_stop,
    .close = ops_close,
    .log_stats = ops_log_stats,
};
