/* libFuzzer target for src/core/dlfile.c, the reader of dead-letter files (`sluice dead-letter
 * list|show|replay` reads whatever is in the directory, including lines cut by a crash).
 * Properties, beyond "no crash" (ASan bounds the reads: the line is libFuzzer's exact-size copy):
 *  1. a line either parses or fails with a non-empty reason;
 *  2. on success every text field is NUL-terminated within its array, the payload length is at
 *     most the line's length, and freeing leaves nothing behind (LeakSanitizer);
 *  3. parsing is deterministic: the same line parses to the same fields again. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "core/dlfile.h"

#define TERMINATED(f) CHECK(memchr((f), 0, sizeof(f)) != NULL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_dl_line a, b;
    char err[256] = "", err2[256] = "";
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    int ra = sl_dl_parse_line((const char *)data, size, &a, err, sizeof err);
    int rb = sl_dl_parse_line((const char *)data, size, &b, err2, sizeof err2);
    CHECK(ra == rb);
    if (ra != 0) {
        CHECK(err[0] != '\0');
        CHECK(strcmp(err, err2) == 0);
    } else {
        TERMINATED(a.reason);
        TERMINATED(a.error_type);
        TERMINATED(a.error_reason);
        TERMINATED(a.input);
        TERMINATED(a.output);
        TERMINATED(a.index);
        TERMINATED(a.tag);
        TERMINATED(a.topic);
        CHECK(a.payload_len <= size);
        CHECK(a.payload_len == b.payload_len);
        CHECK(a.payload_len == 0 || memcmp(a.payload, b.payload, a.payload_len) == 0);
        CHECK(strcmp(a.reason, b.reason) == 0 && a.offset == b.offset &&
              a.partition == b.partition && a.status == b.status);
    }
    sl_dl_line_free(&a);
    sl_dl_line_free(&b);
    return 0;
}
