/* Timers are how retries, batch lingering and the Kafka tick happen; a corrupted timer list hangs
 * the whole process. These tests stop and restart timers from inside callbacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_and_restart_from_callback),
        cmocka_unit_test(test_due_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
