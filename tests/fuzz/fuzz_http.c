/* libFuzzer target for sl_http_parse_head (src/core/http.c), the one piece of the status server
 * that reads bytes from the network. Properties checked, beyond "no crash" (ASan bounds the reads:
 * the input is an exact-size heap copy):
 *  1. the result is COMPLETE, NEED_MORE or ERROR;
 *  2. on COMPLETE: 0 < head_len <= len; method, path and query are non-empty-where-required
 *     slices inside buf[0, head_len); path starts with '/'; the method is a token; the version is
 *     1.0 or 1.1; parsing exactly buf[0, head_len) gives the same result (bytes after the head,
 *     i.e. a body or a pipelined request, never change it), and buf[0, head_len - 1) is not
 *     COMPLETE (the end of the head is where the parser says);
 *  3. on NEED_MORE: every prefix is NEED_MORE as well (a longer input is needed, never a shorter
 *     one), checked on the half-length prefix. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/http.h"
#include "fuzz_check.h"

static int inside(const char *buf, size_t len, const char *p, size_t n)
{
    return p >= buf && p <= buf + len && n <= (size_t)(buf + len - p);
}

static char *copy(const uint8_t *data, size_t n)
{
    char *b = malloc(n ? n : 1);
    if (!b) abort();
    if (n) memcpy(b, data, n);
    return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = copy(data, size);
    struct sl_http_request r;
    enum sl_http_parse_rc rc = sl_http_parse_head(buf, size, &r);
    CHECK(rc == SL_HTTP_PARSE_COMPLETE || rc == SL_HTTP_PARSE_NEED_MORE ||
          rc == SL_HTTP_PARSE_ERROR);
    if (rc == SL_HTTP_PARSE_COMPLETE) {
        size_t hl = r.head_len;
        CHECK(hl > 0 && hl <= size);
        CHECK(r.method_len > 0 && inside(buf, hl, r.method, r.method_len));
        CHECK(r.path_len > 0 && inside(buf, hl, r.path, r.path_len) && r.path[0] == '/');
        CHECK(r.query == NULL ? r.query_len == 0 : inside(buf, hl, r.query, r.query_len));
        CHECK(r.minor_version == 0 || r.minor_version == 1);
        for (size_t i = 0; i < r.method_len; i++)
            CHECK(r.method[i] > 0x20 && r.method[i] < 0x7f);
        CHECK(!(r.has_content_length && r.has_transfer_encoding));

        char *head = copy(data, hl);
        struct sl_http_request r2;
        CHECK(sl_http_parse_head(head, hl, &r2) == SL_HTTP_PARSE_COMPLETE);
        CHECK(r2.head_len == hl && r2.method_len == r.method_len && r2.path_len == r.path_len &&
              r2.query_len == r.query_len && r2.keep_alive == r.keep_alive &&
              r2.content_length == r.content_length && r2.minor_version == r.minor_version);
        CHECK(r2.method - head == r.method - buf && r2.path - head == r.path - buf);
        CHECK(sl_http_parse_head(head, hl - 1, &r2) != SL_HTTP_PARSE_COMPLETE);
        free(head);
    } else if (rc == SL_HTTP_PARSE_NEED_MORE) {
        char *half = copy(data, size / 2);
        struct sl_http_request r2;
        CHECK(sl_http_parse_head(half, size / 2, &r2) == SL_HTTP_PARSE_NEED_MORE);
        free(half);
    }
    free(buf);
    return 0;
}
