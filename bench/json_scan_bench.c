/* Micro-benchmark of sl_json_scan_object on realistic ~250-byte log lines.
 *
 * Build and run (from the repo root):
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -Isrc -o /tmp/json_scan_bench \
 *       bench/json_scan_bench.c src/codec/json.c src/codec/timefmt.c
 *   /tmp/json_scan_bench [seconds]
 *
 * It builds 4096 distinct lines (varying lengths, ASCII and some UTF-8/escapes, like application
 * logs), then scans them round-robin for the given CPU time (default 3 s) with the paths the Kafka
 * input asks for ("time" and "kafka.ts"), and prints MB/s and records/s. A second pass with no
 * paths shows what path tracking costs, and a third measures sl_json_compact. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/json.h"

#include "log_lines.h"

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    static char lines[N_LINES][512];
    static size_t lens[N_LINES];
    size_t total = make_log_lines(lines, lens);
    printf("lines: %d, mean length %.1f bytes\n", N_LINES, (double)total / N_LINES);

    for (int mode = 0; mode < 3; mode++) {
        struct sl_json_scan s;
        memset(&s, 0, sizeof(s));
        if (mode == 0) {
            s.paths[0] = "time";
            s.paths[1] = "kafka.ts";
            s.n_paths = 2;
        }
        static char out[512];
        uint64_t recs = 0, bytes = 0, sink = 0;
        double t0 = now(), t1;
        do {
            for (size_t k = 0; k < N_LINES; k++) {
                if (mode < 2) {
                    if (sl_json_scan_object(lines[k], lens[k], &s) != 0) {
                        fprintf(stderr, "line %zu invalid: %s at %zu\n", k, s.err_msg,
                                s.err_offset);
                        return 1;
                    }
                    sink += s.vlen[0] + s.vlen[1];
                } else {
                    sink += sl_json_compact(lines[k], lens[k], out);
                }
                bytes += lens[k];
            }
            recs += N_LINES;
            t1 = now();
        } while (t1 - t0 < seconds);
        double dt = t1 - t0;
        const char *name = mode == 0   ? "scan, paths time+kafka.ts"
                           : mode == 1 ? "scan, no paths"
                                       : "compact";
        printf("%-26s %8.1f MB/s %10.0f records/s  (%.0f ns/record, sink %llu)\n", name,
               (double)bytes / dt / 1e6, (double)recs / dt, dt / (double)recs * 1e9,
               (unsigned long long)(sink & 1));
    }
    return 0;
}
