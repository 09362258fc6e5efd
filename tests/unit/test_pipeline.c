/* Routing with copy: true and the fan-out of acks: a record copied to several outputs is finished
 * at its source (counters, offset tracker) only when every copy is, and counted once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/pipeline.h"

/* A fake output: keeps the ackrefs it was given; the test decides their fates. */
struct fake {
    struct sl_ackref acks[64];
    size_t n;
    int ack_now; /* -1: keep; else the fate to report from inside submit */
};

static void fake_submit(void *impl, const struct sl_event *ev)
{
    struct fake *f = impl;
    assert_true(f->n < 64);
    if (f->ack_now >= 0) {
        sl_ack(&ev->ack, (enum sl_fate)f->ack_now);
        return;
    }
    f->acks[f->n++] = ev->ack;
}

static const struct sl_output_ops fake_ops = {.submit = fake_submit};

struct fixture {
    struct sl_pipeline p;
    struct fake fakes[4];
    struct sl_counters ctr;
    struct sl_acktrack *trk;
};

static int64_t advanced;

static void on_adv(struct sl_acktrack *t, int64_t next, void *owner)
{
    (void)t;
    (void)owner;
    advanced = next;
}

/* outputs: patterns and copy flags */
static void setup(struct fixture *fx, size_t n, const char *const *pats, const bool *copy)
{
    memset(fx, 0, sizeof *fx);
    sl_budget_init(&fx->p.budget, 1 << 20);
    char err[128];
    for (size_t i = 0; i < n; i++) {
        struct sl_output *o = &fx->p.outputs[i];
        o->name = "fake";
        o->match[0] = sl_tagpat_compile(pats[i], err, sizeof err);
        assert_non_null(o->match[0]);
        o->n_match = 1;
        o->copy = copy[i];
        o->ops = &fake_ops;
        o->impl = &fx->fakes[i];
        fx->fakes[i].ack_now = -1;
    }
    fx->p.n_outputs = n;
    fx->trk = sl_acktrack_new(NULL, on_adv);
    advanced = -1;
}

static void teardown(struct fixture *fx)
{
    for (size_t i = 0; i < fx->p.n_outputs; i++)
        sl_tagpat_free(fx->p.outputs[i].match[0]);
    sl_acktrack_revoke(fx->trk);
}

/* Adds a record at offset off to the tracker and routes it by tag. */
static void send(struct fixture *fx, const char *tag, int64_t off)
{
    struct sl_route r;
    uint64_t seq = sl_acktrack_add(fx->trk, off);
    fx->ctr.received++;
    struct sl_event ev = {
        .input = "in",
        .tag = tag,
        .tag_len = strlen(tag),
        .payload = "{}",
        .payload_len = 2,
        .ack = {.trk = fx->trk, .seq = seq, .ctr = &fx->ctr},
    };
    assert_true(sl_pipeline_route(&fx->p, tag, strlen(tag), &r) > 0);
    sl_pipeline_submit(&fx->p, &r, &ev);
}

static uint64_t in_flight(const struct fixture *fx)
{
    const struct sl_counters *c = &fx->ctr;
    assert_true(c->received >= c->delivered + c->dead_lettered + c->dropped);
    return c->received - c->delivered - c->dead_lettered - c->dropped;
}

static void test_route_lists(void **state)
{
    (void)state;
    struct fixture fx;
    const char *pats[] = {"a.**", "**", "a.b", "**"};
    const bool copy[] = {true, false, false, false};
    setup(&fx, 4, pats, copy);
    struct sl_route r;
    /* copy output, then the first plain match stops routing */
    assert_int_equal(sl_pipeline_route(&fx.p, "a.b", 3, &r), 2);
    assert_ptr_equal(r.out[0], &fx.p.outputs[0]);
    assert_ptr_equal(r.out[1], &fx.p.outputs[1]);
    /* the copy output does not match: as before, first match only */
    assert_int_equal(sl_pipeline_route(&fx.p, "x", 1, &r), 1);
    assert_ptr_equal(r.out[0], &fx.p.outputs[1]);
    teardown(&fx);

    /* only copy outputs match: the record goes to all of them; nothing matches: n == 0 */
    const char *pats2[] = {"a.*", "a.*", "b"};
    const bool copy2[] = {true, true, false};
    setup(&fx, 3, pats2, copy2);
    assert_int_equal(sl_pipeline_route(&fx.p, "a.x", 3, &r), 2);
    assert_int_equal(sl_pipeline_route(&fx.p, "c", 1, &r), 0);
    teardown(&fx);
}

static void test_single_output_no_fanout(void **state)
{
    (void)state;
    struct fixture fx;
    const char *pats[] = {"**"};
    const bool copy[] = {false};
    setup(&fx, 1, pats, copy);
    send(&fx, "t", 10);
    assert_null(fx.fakes[0].acks[0].fan);
    assert_int_equal(sl_pipeline_fanouts(), 0);
    assert_int_equal(fx.p.budget.used, 0);
    sl_ack(&fx.fakes[0].acks[0], SL_FATE_DELIVERED);
    assert_int_equal(fx.ctr.delivered, 1);
    assert_int_equal(advanced, 11);
    teardown(&fx);
}

/* Copies finish out of order, across records: the offset only moves when every copy of every
 * earlier record is finished; each record is counted once. */
static void test_out_of_order(void **state)
{
    (void)state;
    struct fixture fx;
    const char *pats[] = {"**", "**", "**"};
    const bool copy[] = {true, true, false};
    setup(&fx, 3, pats, copy);
    for (int64_t off = 100; off < 103; off++)
        send(&fx, "t", off);
    assert_int_equal(sl_pipeline_fanouts(), 3);
    assert_true(fx.p.budget.used >= 3 * sizeof(struct sl_fanout));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx.fakes[i].n, 3);
        assert_ptr_equal(fx.fakes[i].acks[0].fan, fx.fakes[(i + 1) % 3].acks[0].fan);
    }
    assert_int_equal(in_flight(&fx), 3);
    /* record 101 finished on every output, record 100 on two of three */
    for (int i = 0; i < 3; i++)
        sl_ack(&fx.fakes[i].acks[1], SL_FATE_DELIVERED);
    sl_ack(&fx.fakes[2].acks[0], SL_FATE_DELIVERED);
    sl_ack(&fx.fakes[0].acks[0], SL_FATE_DELIVERED);
    assert_int_equal(fx.ctr.delivered, 1);
    assert_int_equal(advanced, -1); /* 100 still has a copy out */
    assert_int_equal(in_flight(&fx), 2);
    sl_ack(&fx.fakes[1].acks[0], SL_FATE_DELIVERED);
    assert_int_equal(fx.ctr.delivered, 2);
    assert_int_equal(advanced, 102);
    /* record 102: last output first */
    sl_ack(&fx.fakes[2].acks[2], SL_FATE_DELIVERED);
    sl_ack(&fx.fakes[1].acks[2], SL_FATE_DELIVERED);
    assert_int_equal(advanced, 102);
    sl_ack(&fx.fakes[0].acks[2], SL_FATE_DELIVERED);
    assert_int_equal(advanced, 103);
    assert_int_equal(fx.ctr.delivered, 3);
    assert_int_equal(in_flight(&fx), 0);
    assert_int_equal(sl_pipeline_fanouts(), 0);
    assert_int_equal(fx.p.budget.used, 0);
    teardown(&fx);
}

/* One copy dead-lettered, the other delivered: the record counts once, as dead-lettered. */
static void test_dead_letter_one_copy(void **state)
{
    (void)state;
    struct fixture fx;
    const char *pats[] = {"**", "**"};
    const bool copy[] = {true, false};
    setup(&fx, 2, pats, copy);
    send(&fx, "t", 0);
    send(&fx, "t", 1);
    sl_ack(&fx.fakes[1].acks[0], SL_FATE_DEAD_LETTERED);
    assert_int_equal(fx.ctr.dead_lettered, 0);
    sl_ack(&fx.fakes[0].acks[0], SL_FATE_DELIVERED);
    assert_int_equal(fx.ctr.dead_lettered, 1);
    assert_int_equal(fx.ctr.delivered, 0);
    assert_int_equal(advanced, 1);
    /* both copies dead-lettered: still one record */
    sl_ack(&fx.fakes[0].acks[1], SL_FATE_DEAD_LETTERED);
    sl_ack(&fx.fakes[1].acks[1], SL_FATE_DEAD_LETTERED);
    assert_int_equal(fx.ctr.dead_lettered, 2);
    assert_int_equal(fx.ctr.received, 2);
    assert_int_equal(in_flight(&fx), 0);
    assert_int_equal(advanced, 2);
    assert_int_equal(fx.p.budget.used, 0);
    teardown(&fx);
}

/* Dropped only when every copy was; delivered + dropped is not delivered everywhere: dropped. */
static void test_dropped(void **state)
{
    (void)state;
    struct fixture fx;
    const char *pats[] = {"**", "**"};
    const bool copy[] = {true, false};
    setup(&fx, 2, pats, copy);
    send(&fx, "t", 0);
    send(&fx, "t", 1);
    send(&fx, "t", 2);
    sl_ack(&fx.fakes[0].acks[0], SL_FATE_DROPPED);
    sl_ack(&fx.fakes[1].acks[0], SL_FATE_DROPPED);
    sl_ack(&fx.fakes[0].acks[1], SL_FATE_DELIVERED);
    sl_ack(&fx.fakes[1].acks[1], SL_FATE_DROPPED);
    sl_ack(&fx.fakes[0].acks[2], SL_FATE_DROPPED);
    sl_ack(&fx.fakes[1].acks[2], SL_FATE_DEAD_LETTERED);
    assert_int_equal(fx.ctr.dropped, 2);
    assert_int_equal(fx.ctr.dead_lettered, 1);
    assert_int_equal(fx.ctr.delivered, 0);
    assert_int_equal(in_flight(&fx), 0);
    assert_int_equal(advanced, 3);
    teardown(&fx);
}

/* An output that finishes its copy inside submit (dead-letters at once, say) must not resolve
 * the record before the later outputs have their copies. */
static void test_ack_inside_submit(void **state)
{
    (void)state;
    struct fixture fx;
    const char *pats[] = {"**", "**"};
    const bool copy[] = {true, false};
    setup(&fx, 2, pats, copy);
    fx.fakes[0].ack_now = SL_FATE_DELIVERED;
    send(&fx, "t", 5);
    assert_int_equal(fx.ctr.delivered, 0);
    assert_int_equal(advanced, -1);
    assert_int_equal(fx.fakes[1].n, 1);
    sl_ack(&fx.fakes[1].acks[0], SL_FATE_DELIVERED);
    assert_int_equal(fx.ctr.delivered, 1);
    assert_int_equal(advanced, 6);
    /* both synchronous: resolved when submit returns */
    fx.fakes[1].ack_now = SL_FATE_DEAD_LETTERED;
    send(&fx, "t", 6);
    assert_int_equal(fx.ctr.dead_lettered, 1);
    assert_int_equal(advanced, 7);
    assert_int_equal(sl_pipeline_fanouts(), 0);
    assert_int_equal(fx.p.budget.used, 0);
    teardown(&fx);
}

/* Many records, random fates in random order: conservation at every step. */
static void test_conservation_random(void **state)
{
    (void)state;
    struct fixture fx;
    const char *pats[] = {"**", "**", "**"};
    const bool copy[] = {true, true, false};
    setup(&fx, 3, pats, copy);
    srand(7);
    uint64_t want_dl = 0, want_del = 0;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 3; i++)
            fx.fakes[i].n = 0;
        int64_t base = round * 20;
        for (int64_t k = 0; k < 20; k++)
            send(&fx, "t", base + k);
        /* fates chosen per copy; order shuffled */
        int order[60], fate[60];
        for (int i = 0; i < 60; i++) {
            order[i] = i;
            fate[i] = rand() % 10 == 0 ? SL_FATE_DEAD_LETTERED : SL_FATE_DELIVERED;
        }
        for (int rec = 0; rec < 20; rec++) {
            bool dl = false;
            for (int o = 0; o < 3; o++)
                dl |= fate[o * 20 + rec] == SL_FATE_DEAD_LETTERED;
            if (dl)
                want_dl++;
            else
                want_del++;
        }
        for (int i = 59; i > 0; i--) {
            int j = rand() % (i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int i = 0; i < 60; i++) {
            int o = order[i] / 20, rec = order[i] % 20;
            sl_ack(&fx.fakes[o].acks[rec], (enum sl_fate)fate[order[i]]);
            (void)in_flight(&fx); /* asserts the identity holds */
        }
        assert_int_equal(in_flight(&fx), 0);
        assert_int_equal(advanced, base + 20);
    }
    assert_int_equal(fx.ctr.dead_lettered, want_dl);
    assert_int_equal(fx.ctr.delivered, want_del);
    assert_int_equal(fx.ctr.received, 1000);
    assert_int_equal(sl_pipeline_fanouts(), 0);
    assert_int_equal(fx.p.budget.used, 0);
    teardown(&fx);
}

/* A pipeline from sl_pipeline_init (budget callbacks installed), with no outputs, its dead-letter
 * store in a fresh directory, on a loop of its own. */
struct real_pipe {
    char dir[32];
    struct sl_config cfg;
    struct sl_loop *l;
    struct sl_pipeline p;
};

static void real_pipe_open(struct real_pipe *rp, uint64_t budget)
{
    memset(rp, 0, sizeof *rp);
    strcpy(rp->dir, "/tmp/sl-test-pipe-XXXXXX");
    assert_non_null(mkdtemp(rp->dir));
    rp->cfg.service.dead_letter_path = rp->dir;
    rp->cfg.service.dead_letter_max_size = 1 << 20;
    rp->l = sl_loop_new();
    assert_non_null(rp->l);
    char err[256];
    assert_int_equal(sl_pipeline_init(&rp->p, rp->l, &rp->cfg, budget, err, sizeof err), 0);
}

static void real_pipe_close(struct real_pipe *rp)
{
    sl_budget_release(&rp->p.budget, rp->p.budget.used);
    sl_pipeline_fini(&rp->p);
    sl_loop_free(rp->l);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", rp->dir);
    assert_int_equal(system(cmd), 0);
}

static int fired;

static void count_cb(struct sl_timer *t)
{
    (void)t;
    fired++;
}

/* A paused input checks backpressure on its poll timer. When outputs free memory the input must
 * learn it at once, not when a timer armed before the pause comes due: the budget's drop below
 * its resume mark restarts every watched timer that is running, and only then. */
static void test_room_restarts_watched_timers(void **state)
{
    (void)state;
    static struct real_pipe rp;
    real_pipe_open(&rp, 1000);
    struct sl_pipeline *p = &rp.p;
    struct sl_loop *l = rp.l;
    struct sl_timer polled = {.cb = count_cb}, stopped = {.cb = count_cb};
    sl_timer_start(l, &polled, 60000); /* armed long before, as a poll timer can be */
    sl_pipeline_watch_room(p, &polled);
    sl_pipeline_watch_room(p, &stopped); /* not running (an input that stopped): left so */
    fired = 0;

    sl_budget_charge(&p->budget, 1000); /* full */
    assert_true(sl_pipeline_backpressure(p));
    sl_budget_release(&p->budget, 200); /* 800: still at or above the resume mark (750) */
    sl_loop_run_once(l, 0);
    assert_int_equal(fired, 0);
    sl_budget_release(&p->budget, 100); /* 700: room */
    assert_true(polled.active);
    assert_false(stopped.active);
    sl_loop_run_once(l, 0);
    assert_int_equal(fired, 1);
    sl_budget_release(&p->budget, 100); /* already below: no second wake-up */
    sl_loop_run_once(l, 0);
    assert_int_equal(fired, 1);

    /* unwatched timers are never touched again (the input that owned them may be gone) */
    sl_timer_start(l, &polled, 60000);
    sl_pipeline_unwatch_room(p, &polled);
    sl_pipeline_unwatch_room(p, &stopped);
    sl_budget_charge(&p->budget, 500);
    sl_budget_release(&p->budget, 500);
    sl_loop_run_once(l, 0);
    assert_int_equal(fired, 1);
    sl_timer_stop(l, &polled);
    real_pipe_close(&rp);
}

/* An output's idle pool (cached bytes): fits under the limit with everything else, is freed by a
 * charge that needs the room, and never holds an input paused. */
struct pool_fake {
    uint64_t held; /* cached bytes it owns */
    struct sl_budget *b;
    int calls;
};

static uint64_t pool_reclaim(void *impl, uint64_t want)
{
    struct pool_fake *f = impl;
    f->calls++;
    uint64_t n = want < f->held ? want : f->held;
    f->held -= n;
    sl_budget_release_cached(f->b, n);
    return n;
}

static const struct sl_output_ops pool_ops = {.reclaim = pool_reclaim};

static void test_cached_bytes_reclaimed_not_paused(void **state)
{
    (void)state;
    static struct real_pipe rp;
    real_pipe_open(&rp, 1000);
    struct sl_pipeline *p = &rp.p;
    struct pool_fake a = {.b = &p->budget}, b = {.b = &p->budget};
    p->outputs[0] = (struct sl_output){.name = "a", .ops = &pool_ops, .impl = &a};
    p->outputs[1] = (struct sl_output){.name = "b", .ops = &pool_ops, .impl = &b};
    p->n_outputs = 2;

    /* two batches of 400 go idle: the inputs see the room at once */
    sl_budget_charge(&p->budget, 800);
    assert_false(sl_budget_can_resume(&p->budget));
    assert_true(sl_budget_cache_room(&p->budget, 0));
    sl_budget_cache(&p->budget, 400);
    a.held = 400;
    sl_budget_cache(&p->budget, 400);
    b.held = 400;
    assert_int_equal(p->budget.used, 0);
    assert_int_equal(p->budget.cached, 800);
    assert_true(sl_budget_can_resume(&p->budget));
    assert_false(sl_pipeline_backpressure(p));
    assert_false(sl_budget_cache_room(&p->budget, 201));

    /* 150 more live bytes fit beside the cache: nothing is freed */
    sl_budget_charge(&p->budget, 150);
    assert_int_equal(a.calls + b.calls, 0);
    /* 350 more: used + cached would be 1300, so 300 cached bytes go, from the first pool on */
    sl_budget_charge(&p->budget, 350);
    assert_int_equal(p->budget.used, 500);
    assert_int_equal(p->budget.cached, 500);
    assert_int_equal(a.held, 100);
    assert_int_equal(b.held, 400);
    assert_int_equal(p->budget.peak, 1000);
    /* more than a holds: b gives the rest */
    sl_budget_charge(&p->budget, 300);
    assert_int_equal(a.held, 0);
    assert_int_equal(b.held, 200);
    assert_int_equal(p->budget.used + p->budget.cached, 1000);
    /* reuse: cached bytes live again, no new memory */
    sl_budget_uncache(&p->budget, 200);
    b.held = 0;
    assert_int_equal(p->budget.used, 1000);
    assert_int_equal(p->budget.cached, 0);
    assert_true(sl_pipeline_backpressure(p));
    /* nothing cached to give: the charge overshoots (the documented one-batch overshoot) */
    sl_budget_charge(&p->budget, 10);
    assert_int_equal(p->budget.used, 1010);
    assert_int_equal(p->budget.peak, 1010);

    p->n_outputs = 0;
    real_pipe_close(&rp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_lists),
        cmocka_unit_test(test_single_output_no_fanout),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_dead_letter_one_copy),
        cmocka_unit_test(test_dropped),
        cmocka_unit_test(test_ack_inside_submit),
        cmocka_unit_test(test_conservation_random),
        cmocka_unit_test(test_room_restarts_watched_timers),
        cmocka_unit_test(test_cached_bytes_reclaimed_not_paused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
