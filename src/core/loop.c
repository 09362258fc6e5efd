#include "core/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/log.h"

struct sl_loop {
    int epfd;
    struct sl_timer *timers; /* sorted by due_ms, ties in start order */
    uint64_t start_seq;
    sl_idle_cb idle;
    void *idle_arg;
};

struct sl_loop *sl_loop_new(void)
{
    struct sl_loop *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        free(l);
        return NULL;
    }
    return l;
}

void sl_loop_free(struct sl_loop *l)
{
    if (!l) return;
    close(l->epfd);
    free(l);
}

int sl_loop_io_set(struct sl_loop *l, struct sl_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    int rc;
    if (events == 0) {
        if (!io->added) return 0;
        rc = epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
        io->added = false;
    } else if (io->added) {
        if (events == io->events) return 0;
        rc = epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev);
    } else {
        rc = epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev);
        if (rc == 0) io->added = true;
    }
    io->events = events;
    return rc == 0 ? 0 : -errno;
}

void sl_timer_stop(struct sl_loop *l, struct sl_timer *t)
{
    if (!t->active) return;
    for (struct sl_timer **pp = &l->timers; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    t->active = false;
    t->next = NULL;
}

void sl_timer_start(struct sl_loop *l, struct sl_timer *t, uint64_t delay_ms)
{
    sl_timer_stop(l, t);
    t->due_ms = sl_now_ms() + delay_ms;
    t->seq = ++l->start_seq;
    struct sl_timer **pp = &l->timers;
    while (*pp && (*pp)->due_ms <= t->due_ms)
        pp = &(*pp)->next;
    t->next = *pp;
    *pp = t;
    t->active = true;
}

static void run_timers(struct sl_loop *l)
{
    uint64_t now = sl_now_ms();
    uint64_t last = l->start_seq;
    /* Pop one due timer at a time, so a callback may stop or restart any timer (itself included)
     * while the list stays consistent. Timers started by callbacks (seq > last) wait for the next
     * iteration: they sort after the ones due now, so a timer re-armed with delay 0 cannot starve
     * I/O. */
    while (l->timers && l->timers->due_ms <= now && l->timers->seq <= last) {
        struct sl_timer *t = l->timers;
        l->timers = t->next;
        t->next = NULL;
        t->active = false;
        t->cb(t);
    }
}

void sl_loop_set_idle(struct sl_loop *l, sl_idle_cb cb, void *arg)
{
    l->idle = cb;
    l->idle_arg = arg;
}

static int wait_ms(const struct sl_loop *l, int max_wait_ms)
{
    int wait = max_wait_ms;
    if (l->timers) {
        uint64_t now = sl_now_ms();
        uint64_t due = l->timers->due_ms;
        int until = due <= now ? 0 : (int)(due - now);
        if (until < wait) wait = until;
    }
    return wait;
}

void sl_loop_run_once(struct sl_loop *l, int max_wait_ms)
{
    int wait = wait_ms(l, max_wait_ms);
    struct epoll_event evs[64];
    int n;
    if (l->idle && wait > 0) {
        /* About to sleep: only when a poll finds nothing ready is everything readable drained.
         * The extra poll is paid only on the way to sleeping, never while events keep coming. */
        n = epoll_wait(l->epfd, evs, 64, 0);
        if (n == 0) {
            l->idle(l->idle_arg);
            n = epoll_wait(l->epfd, evs, 64, wait_ms(l, max_wait_ms));
        }
    } else {
        n = epoll_wait(l->epfd, evs, 64, wait);
    }
    if (n < 0 && errno != EINTR) SL_ERROR("loop", "epoll", "epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        struct sl_io *io = evs[i].data.ptr;
        io->cb(io, evs[i].events);
    }
    run_timers(l);
}
