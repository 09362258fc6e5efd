/* libFuzzer target for src/codec/timefmt.c. Input: a format, a NUL byte, then the text to parse
 * (without a NUL, a format from a pool chosen by the first byte). Properties checked, beyond "no
 * crash" (ASan: the text is an exact-size heap copy, so any read past it is caught):
 *  1. a format sl_time_fmt_valid refuses never parses, and the refusal has a reason;
 *  2. a time parsed with the format or by sl_time_parse_auto, formatted with
 *     sl_time_format_rfc3339_short, parses back with sl_time_parse_auto to the same ns, and (when
 *     it has a fraction) with "%Y-%m-%dT%H:%M:%S.%N%z" too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/timefmt.h"
#include "fuzz_check.h"

static const char *const pool[8] = {"%d/%b/%Y:%H:%M:%S %z",
                                    "%Y-%m-%dT%H:%M:%S.%N%z",
                                    "%b %e %H:%M:%S",
                                    "%Y-%m-%d %H:%M:%S,%L",
                                    "%s.%N",
                                    "%a %B %d %I:%M:%S %p %Z %y",
                                    "%F %T.%3N %j",
                                    "%D %R %k %l %f %6N %%"};

static void round_trip(int64_t ns)
{
    char out[31];
    size_t n = sl_time_format_rfc3339_short(ns, out);
    CHECK(n == strlen(out) && (n == 20 || n == 24 || n == 27 || n == 30));
    int64_t back = 0;
    CHECK(sl_time_parse_auto(out, n, &back) == 0 && back == ns);
    if (n > 20) {
        CHECK(sl_time_parse_fmt(out, n, "%Y-%m-%dT%H:%M:%S.%N%z", 0, &back) == 0 && back == ns);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    char fmtbuf[256];
    const char *fmt;
    const uint8_t *text;
    size_t len;
    if (nul && (size_t)(nul - data) < sizeof(fmtbuf)) {
        memcpy(fmtbuf, data, (size_t)(nul - data) + 1);
        fmt = fmtbuf;
        text = nul + 1;
        len = size - (size_t)(nul - data) - 1;
    } else {
        if (size == 0) return 0;
        fmt = pool[data[0] & 7];
        text = data + 1;
        len = size - 1;
    }
    char *s = malloc(len ? len : 1);
    memcpy(s, text, len);
    /* a reference time from the text's length and first byte, spread over 1970..2100 */
    int64_t ref =
        ((int64_t)len * 7919 + (len ? (unsigned char)s[0] : 0)) % 4102444800LL * 1000000000LL;

    char why[128];
    int valid = sl_time_fmt_valid(fmt, why, sizeof(why)) == 0;
    if (!valid) CHECK(why[0] != '\0');
    int64_t ns;
    if (sl_time_parse_fmt(s, len, fmt, ref, &ns) == 0) {
        CHECK(valid);
        round_trip(ns);
    }
    if (sl_time_parse_auto(s, len, &ns) == 0) round_trip(ns);
    free(s);
    return 0;
}
