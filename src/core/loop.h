/* The event loop: one thread, epoll for sockets, a sorted list of timers.
 *
 * Everything that touches records runs on this thread: librdkafka wakes it through a pipe
 * (rd_kafka_queue_io_event_enable), libcurl's multi interface registers its sockets and timeout
 * here, signals arrive through a signalfd. Callbacks must not block. */
#ifndef SL_LOOP_H
#define SL_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct sl_loop;
struct sl_io;
struct sl_timer;

typedef void (*sl_io_cb)(struct sl_io *io, uint32_t events);
typedef void (*sl_timer_cb)(struct sl_timer *t);
typedef void (*sl_idle_cb)(void *arg);

struct sl_io {
    /* public */
    int fd;
    sl_io_cb cb;
    void *arg;
    /* private */
    uint32_t events;
    bool added;
};

struct sl_timer {
    /* public */
    sl_timer_cb cb;
    void *arg;
    /* private */
    uint64_t due_ms;
    uint64_t seq;
    bool active;
    struct sl_timer *next;
};

struct sl_loop *sl_loop_new(void);
void sl_loop_free(struct sl_loop *l);

/* events: EPOLLIN | EPOLLOUT. Setting 0 removes the fd from epoll. Returns 0 or -errno. */
int sl_loop_io_set(struct sl_loop *l, struct sl_io *io, uint32_t events);

void sl_timer_start(struct sl_loop *l, struct sl_timer *t, uint64_t delay_ms);
void sl_timer_stop(struct sl_loop *l, struct sl_timer *t);

/* Called each time the loop is about to sleep: no fd is ready and no timer is due, so every
 * callback has taken all it could (an input that stops early, say after a burst, keeps a timer
 * due or its fd readable). What it starts (timers, fds) is waited for in the same call. */
void sl_loop_set_idle(struct sl_loop *l, sl_idle_cb cb, void *arg);

/* Waits at most max_wait_ms (or until the next timer) and dispatches what is ready. */
void sl_loop_run_once(struct sl_loop *l, int max_wait_ms);

#endif
