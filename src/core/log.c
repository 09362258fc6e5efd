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
static enum sl_log_format log_fmt = SL_LOG_TEXT;
static FILE *out_file; /* NULL: stderr */

static const char *level_names[] = {"error", "warn", "info", "debug"};

void sl_log_init(enum sl_log_level level, uint64_t interval_ms)
{
    max_level = level;
    interval = interval_ms;
}

void sl_log_set_format(enum sl_log_format format)
{
    log_fmt = format;
}

int sl_log_open(const char *path)
{
    if (!path) return 0;
    FILE *f = fopen(path, "ae");
    if (!f) return -1;
    setvbuf(f, NULL, _IOLBF, 0);
    if (out_file) fclose(out_file);
    out_file = f;
    return 0;
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
    FILE *o = out_file ? out_file : stderr;
    if (log_fmt == SL_LOG_JSON) {
        /* escaped: messages carry peer data (topic names, error reasons from Elasticsearch) */
        char emsg[sizeof msg * 6], ecomp[256 * 6];
        size_t cl = strlen(component);
        if (cl > 255) cl = 255;
        emsg[sl_json_escape(msg, strlen(msg), emsg)] = 0;
        ecomp[sl_json_escape(component, cl, ecomp)] = 0;
        fprintf(o,
                "{\"time\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",\"kind\":\"%s\","
                "\"msg\":\"%s\",\"suppressed\":%llu}\n",
                ts, level_names[level], ecomp, kind ? kind : "", emsg,
                (unsigned long long)suppressed);
    } else if (suppressed) {
        fprintf(o, "%s %s %s: %s (suppressed %llu similar)\n", ts, level_names[level], component,
                msg, (unsigned long long)suppressed);
    } else {
        fprintf(o, "%s %s %s: %s\n", ts, level_names[level], component, msg);
    }
}
