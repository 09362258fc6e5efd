/* --latency-field: how long each document took from its producer to this emulator.
 *
 * The producer writes its CLOCK_REALTIME in nanoseconds into a top-level field of every record;
 * a bulk request that stores the document compares it with the time the request was processed
 * (after it was read whole). Producer and emulator must share a clock, i.e. run on one machine.
 * Latencies go into a log-linear histogram of microseconds (128 exact values, then 64 buckets per
 * power of two: under 1.6% error), so millions of documents cost a fixed 32 KiB, kept in the
 * stats and cleared with them by /_emu/reset. */
#include <stdlib.h>
#include <string.h>

#include "esemu.h"
#include "json.h"

static unsigned bucket_of(uint64_t us)
{
    if (us < 128) return (unsigned)us;
    unsigned e = (unsigned)(63 - __builtin_clzll(us)) - 6; /* >= 1 */
    return 128 + (e - 1) * 64 + (unsigned)((us >> e) - 64);
}

/* The largest value that falls into bucket b. */
static uint64_t bucket_top(unsigned b)
{
    if (b < 128) return b;
    unsigned e = (b - 128) / 64 + 1;
    uint64_t sub = (b - 128) % 64 + 64;
    return ((sub + 1) << e) - 1;
}

void lat_doc(const char *src, size_t n, uint64_t recv_ns)
{
    struct stats *s = &g_emu.stats;
    const char *v;
    size_t vn;
    char num[24];
    if (json_get(src, n, g_emu.latency_field, &v, &vn) != 1 || vn == 0 || vn >= sizeof num ||
        v[0] < '0' || v[0] > '9') {
        s->lat_missing++;
        return;
    }
    memcpy(num, v, vn);
    num[vn] = '\0';
    char *end;
    unsigned long long sent = strtoull(num, &end, 10);
    if (*end) {
        s->lat_missing++;
        return;
    }
    /* a producer clock ahead of ours counts as no latency, and is counted */
    uint64_t us = recv_ns > sent ? (recv_ns - sent) / 1000 : 0;
    if (recv_ns < sent) s->lat_ahead++;
    unsigned b = bucket_of(us);
    if (b >= LAT_BUCKETS) b = LAT_BUCKETS - 1;
    s->lat_hist[b]++;
    s->lat_docs++;
    s->lat_sum_us += us;
    if (us > s->lat_max_us) s->lat_max_us = us;
}

static double pct_ms(const struct stats *s, double p)
{
    if (!s->lat_docs) return 0;
    uint64_t rank = (uint64_t)(p * (double)s->lat_docs + 0.999999);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < LAT_BUCKETS; b++) {
        seen += s->lat_hist[b];
        if (seen >= rank) {
            uint64_t top = bucket_top(b);
            return (double)(top < s->lat_max_us ? top : s->lat_max_us) / 1000.0;
        }
    }
    return (double)s->lat_max_us / 1000.0;
}

void lat_stats(struct ebuf *b)
{
    const struct stats *s = &g_emu.stats;
    EBUF_LIT(b, "\"latency_field\":");
    if (g_emu.latency_field)
        ebuf_json_str(b, g_emu.latency_field, strlen(g_emu.latency_field));
    else
        EBUF_LIT(b, "null");
    ebuf_printf(b,
                ",\"latency_docs\":%llu,\"latency_missing\":%llu,\"latency_ahead\":%llu,"
                "\"latency_mean_ms\":%.3f,\"latency_p50_ms\":%.3f,\"latency_p90_ms\":%.3f,"
                "\"latency_p99_ms\":%.3f,\"latency_max_ms\":%.3f",
                (unsigned long long)s->lat_docs, (unsigned long long)s->lat_missing,
                (unsigned long long)s->lat_ahead,
                s->lat_docs ? (double)s->lat_sum_us / (double)s->lat_docs / 1000.0 : 0.0,
                pct_ms(s, 0.50), pct_ms(s, 0.90), pct_ms(s, 0.99), (double)s->lat_max_us / 1000.0);
}
