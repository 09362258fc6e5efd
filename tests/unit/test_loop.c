/* Timers are how retries, batch lingering and the Kafka tick happen; a corrupted timer list hangs
 * the whole process. These tests stop and restart timers from inside callbacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "core/loop.h"

static struct sl_loop *L;
static struct sl_timer ta, tb, tc;
static int fired_a, fired_b, fired_c;

static void cb_a(struct sl_timer *t)
{
    (void)t;
    fired_a++;
    /* stop a timer that is also due, and restart one with delay 0 */
    sl_timer_stop(L, &tb);
    sl_timer_start(L, &tc, 0);
}

static void cb_b(struct sl_timer *t)
{
    (void)t;
    fired_b++;
}

static void cb_c(struct sl_timer *t)
{
    fired_c++;
    if (fired_c < 3) sl_timer_start(L, t, 0); /* re-arms itself: must not spin in one call */
}

static void test_stop_and_restart_from_callback(void **state)
{
    (void)state;
    L = sl_loop_new();
    ta = (struct sl_timer){.cb = cb_a};
    tb = (struct sl_timer){.cb = cb_b};
    tc = (struct sl_timer){.cb = cb_c};
    sl_timer_start(L, &ta, 0);
    sl_timer_start(L, &tb, 0);
    sl_timer_start(L, &tc, 0);
    usleep(2000);
    sl_loop_run_once(L, 0);
    assert_int_equal(fired_a, 1);
    assert_int_equal(fired_b, 0); /* stopped by a before it ran */
    assert_true(fired_c <= 1);    /* restarted, so at most the one due run happened */
    for (int i = 0; i < 10; i++)
        sl_loop_run_once(L, 5);
    assert_int_equal(fired_a, 1);
    assert_int_equal(fired_b, 0);
    assert_int_equal(fired_c, 3);
    sl_loop_free(L);
}

static int order[8], n_order;
static struct sl_timer ts[4];
static void cb_order(struct sl_timer *t)
{
    order[n_order++] = (int)(intptr_t)t->arg;
}

static void test_due_order(void **state)
{
    (void)state;
    L = sl_loop_new();
    n_order = 0;
    for (int i = 0; i < 4; i++)
        ts[i] = (struct sl_timer){.cb = cb_order, .arg = (void *)(intptr_t)i};
    sl_timer_start(L, &ts[0], 30);
    sl_timer_start(L, &ts[1], 10);
    sl_timer_start(L, &ts[2], 20);
    sl_timer_start(L, &ts[3], 10);
    sl_timer_stop(L, &ts[2]);
    for (int i = 0; i < 20 && n_order < 3; i++)
        sl_loop_run_once(L, 50);
    assert_int_equal(n_order, 3);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 3);
    assert_int_equal(order[2], 0);
    sl_loop_free(L);
}

/* The idle call is what lets outputs send a partial batch at once, so it must come only when
 * nothing is left to read: an input that stops after a capped burst (its fd still readable, or
 * a 0 ms timer re-armed) must not see it. */
static int n_idle, n_reads, reads_per_call;
static struct sl_timer t_from_idle;
static bool start_timer_in_idle;
static int fired_from_idle;

static void on_idle(void *arg)
{
    (void)arg;
    n_idle++;
    if (start_timer_in_idle) {
        start_timer_in_idle = false;
        sl_timer_start(L, &t_from_idle, 0);
    }
}

static void on_readable(struct sl_io *io, uint32_t events)
{
    (void)events;
    char c;
    for (int i = 0; i < reads_per_call; i++)
        if (read(io->fd, &c, 1) == 1) n_reads++;
}

static void cb_from_idle(struct sl_timer *t)
{
    (void)t;
    fired_from_idle++;
}

static void test_idle_only_when_drained(void **state)
{
    (void)state;
    L = sl_loop_new();
    sl_loop_set_idle(L, on_idle, NULL);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    struct sl_io io = {.fd = fds[0], .cb = on_readable};
    assert_int_equal(sl_loop_io_set(L, &io, EPOLLIN), 0);

    n_idle = 0;
    sl_loop_run_once(L, 5);
    assert_int_equal(n_idle, 1); /* nothing to do: idle before sleeping */

    /* three bytes, read one per call: readable after each of the first two calls */
    assert_int_equal(write(fds[1], "abc", 3), 3);
    n_idle = 0;
    reads_per_call = 1;
    sl_loop_run_once(L, 5);
    sl_loop_run_once(L, 5);
    assert_int_equal(n_reads, 2);
    assert_int_equal(n_idle, 0);
    sl_loop_run_once(L, 5);
    assert_int_equal(n_reads, 3);
    assert_int_equal(n_idle, 0); /* the call that read the last byte found it ready */
    sl_loop_run_once(L, 5);
    assert_int_equal(n_idle, 1);

    /* a timer due now (a re-armed burst) is not idle either */
    n_idle = 0;
    tc = (struct sl_timer){.cb = cb_b};
    sl_timer_start(L, &tc, 0);
    sl_loop_run_once(L, 5);
    assert_int_equal(n_idle, 0);

    /* what the idle call starts is waited for in the same call, not after max_wait_ms */
    t_from_idle = (struct sl_timer){.cb = cb_from_idle};
    start_timer_in_idle = true;
    uint64_t t0 = sl_now_ms();
    sl_loop_run_once(L, 2000);
    assert_int_equal(n_idle, 1);
    assert_int_equal(fired_from_idle, 1);
    assert_true(sl_now_ms() - t0 < 1000);

    sl_loop_io_set(L, &io, 0);
    close(fds[0]);
    close(fds[1]);
    sl_loop_free(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_and_restart_from_callback),
        cmocka_unit_test(test_due_order),
        cmocka_unit_test(test_idle_only_when_drained),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
