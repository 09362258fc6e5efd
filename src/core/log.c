#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "codec/json.h"

/* A small fixed table keyed by (component, kind) pointers' contents: the set of kinds is static
 * and small, so a linear scan is cheaper than hashing and needs no allocation. */
#define SL_LOG_SLOTS 128

struct slot {
    const char *component;
    const char *kind;
    uint64_t last_ms;
    uint64_t suppressed;
};

static struct slot slots[SL_LOG_SLOTS];
static size_t n_slots;
static enum sl_log_level max_level = SL_LOG_INFO;
static uint64_t interval = 10000;

static const char *level_names[] = {"error", "warn", "info", "debug"};

void sl_log_init(enum sl_log_level level, uint64_t interval_ms)
{
    max_level = level;
    interval = interval_ms;
}

uint64_t sl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t sl_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct slot *find_slot(const char *component, const char *kind)
{
    for (size_t i = 0; i < n_slots; i++)
        if (strcmp(slots[i].component, component) == 0 && strcmp(slots[i].kind, kind) == 0)
            return &slots[i];
    if (n_slots == SL_LOG_SLOTS) return NULL; /* table full: log everything rather than hide it */
    slots[n_slots] = (struct slot){.component = component, .kind = kind};
    return &slots[n_slots++];
}

void sl_log(enum sl_log_level level, const char *component, const char *kind, const char *fmt, ...)
{
    if (level > max_level) return;
    uint64_t suppressed = 0;
    if (kind) {
        struct slot *s = find_slot(component, kind);
        if (s) {
            uint64_t now = sl_now_ms();
            if (s->last_ms && now - s->last_ms < interval) {
                s->suppressed++;
                return;
            }
            s->last_ms = now ? now : 1;
            suppressed = s->suppressed;
            s->suppressed = 0;
        }
    }
    char ts[32];
    sl_time_format_rfc3339(sl_wall_ns(), ts);
    ts[23] = 'Z'; /* milliseconds are enough in a log line */
    ts[24] = 0;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (suppressed)
        fprintf(stderr, "%s %s %s: %s (suppressed %llu similar)\n", ts, level_names[level],
                component, msg, (unsigned long long)suppressed);
    else
        fprintf(stderr, "%s %s %s: %s\n", ts, level_names[level], component, msg);
}
