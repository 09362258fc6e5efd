/* The realistic ~250-byte JSON log lines the micro-benchmarks (json_scan_bench, json_edit_bench)
 * run on: varying lengths, ASCII with some UTF-8 and escapes, a nested object, like application
 * logs. Header-only: each benchmark is one translation unit built by hand (see its comment). */
#ifndef SL_BENCH_LOG_LINES_H
#define SL_BENCH_LOG_LINES_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define N_LINES 4096

/* Fills lines[k] (and lens[k]) with N_LINES distinct lines; returns their total length. */
static size_t make_log_lines(char lines[N_LINES][512], size_t lens[N_LINES])
{
    static const char *const levels[] = {"info", "warn", "error", "debug"};
    static const char *const services[] = {"checkout", "payments", "search-api", "auth", "cart"};
    static const char *const msgs[] = {
        "GET /api/v1/cart/%u 200 %ums",
        "POST /api/v1/orders 201 %ums user=%u",
        "upstream timeout after %ums, retrying (attempt %u)",
        "cache miss for key \\\"sku:%u\\\" in %ums",
        "Zahlung %u abgelehnt: Karte ung\xc3\xbcltig (%ums)",
        "user %u logged in from 10.0.%u.7 \xe2\x86\x92 session started",
    };
    size_t total = 0;
    uint32_t x = 2463534242u;
    for (size_t k = 0; k < N_LINES; k++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        char msg[160];
        snprintf(msg, sizeof(msg), msgs[x % 6], (x >> 8) % 100000, (x >> 20) % 900);
        lens[k] = (size_t)snprintf(
            lines[k], 512,
            "{\"time\":\"2026-11-27T10:%02u:%02u.%06uZ\",\"level\":\"%s\",\"service\":\"%s\","
            "\"host\":\"web-%02u\",\"msg\":\"%s\",\"trace_id\":\"%08x%08x\","
            "\"kafka\":{\"topic\":\"app-logs\",\"partition\":%u,\"ts\":%u},\"latency_ms\":%u.%u}",
            x % 60, (x >> 6) % 60, x % 1000000, levels[(x >> 3) % 4], services[(x >> 5) % 5],
            (x >> 9) % 32, msg, x, x * 2654435761u, (x >> 11) % 12, 1795773600u + (x % 1000),
            (x >> 7) % 2000, x % 10);
        total += lens[k];
    }
    return total;
}

/* CPU time of this thread, not wall time: on a shared build machine the wall clock mostly measures
 * the neighbours. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
