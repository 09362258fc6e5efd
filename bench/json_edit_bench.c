/* Micro-benchmark of sl_jedit_apply on realistic ~250-byte log lines.
 *
 * Build and run (from the repo root):
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -Isrc -o /tmp/json_edit_bench \
 *       bench/json_edit_bench.c src/codec/json_edit.c src/codec/json.c src/codec/timefmt.c
 *   /tmp/json_edit_bench [seconds]
 *
 * It builds 4096 distinct lines like bench/json_scan_bench.c, then for the given CPU time each
 * (default 2 s) measures: a plain memcpy of each record (the floor), the add_fields fast path
 * (two top-level sets, "tag" and "@timestamp"), one top-level set replacing an existing member,
 * and a mixed plan (remove a nested member, rename a top-level one, one set). Prints ns/record. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/json_edit.h"

#include "log_lines.h"

static struct sl_jedit *plan(int mode)
{
    struct sl_jedit *e = sl_jedit_new();
    char why[128];
    int rc = 0;
    if (mode == 1) {
        rc |= sl_jedit_set(e, "tag", 0, why, sizeof(why));
        rc |= sl_jedit_set(e, "@timestamp", 1, why, sizeof(why));
    } else if (mode == 2) {
        rc |= sl_jedit_set(e, "level", 0, why, sizeof(why));
    } else if (mode == 3) {
        rc |= sl_jedit_remove(e, "kafka.partition", why, sizeof(why));
        rc |= sl_jedit_rename(e, "msg", "message", why, sizeof(why));
        rc |= sl_jedit_set(e, "tag", 0, why, sizeof(why));
    }
    if (rc) {
        fprintf(stderr, "plan %d: %s\n", mode, why);
        exit(1);
    }
    return e;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    static char lines[N_LINES][512];
    static size_t lens[N_LINES];
    size_t total = make_log_lines(lines, lens);
    printf("lines: %d, mean length %.1f bytes\n", N_LINES, (double)total / N_LINES);

    const struct sl_jval vals[2] = {{"\"app.web\"", 9}, {"\"2026-11-27T10:00:00.123Z\"", 26}};
    static char out[1024];
    for (int mode = 0; mode < 4; mode++) {
        struct sl_jedit *e = mode ? plan(mode) : NULL;
        uint64_t recs = 0, sink = 0;
        double t0 = now(), t1;
        do {
            for (size_t k = 0; k < N_LINES; k++) {
                if (mode == 0) {
                    memcpy(out, lines[k], lens[k]);
                    __asm__ volatile("" : : "r"(out) : "memory");
                    sink += out[lens[k] / 2];
                } else {
                    size_t n =
                        sl_jedit_apply(e, lines[k], lens[k], vals, 2, out, sizeof(out), NULL);
                    if (!n) {
                        fprintf(stderr, "line %zu: apply failed\n", k);
                        return 1;
                    }
                    sink += n;
                }
            }
            recs += N_LINES;
            t1 = now();
        } while (t1 - t0 < seconds);
        double dt = t1 - t0;
        const char *name = mode == 0   ? "memcpy"
                           : mode == 1 ? "add 2 top-level fields"
                           : mode == 2 ? "replace 1 top-level field"
                                       : "remove+rename+set";
        printf("%-26s %7.1f ns/record  (sink %llu)\n", name, dt / (double)recs * 1e9,
               (unsigned long long)(sink & 1));
        sl_jedit_free(e);
    }
    return 0;
}
