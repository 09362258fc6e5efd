/* Helpers shared by the codec unit tests (header-only: each test is its own executable). */
#ifndef SL_TEST_UTIL_H
#define SL_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hex text ("93 a7 61 ..."; spaces and newlines ignored) to bytes; returns the count. */
static inline size_t unhex(const char *h, uint8_t *out)
{
    size_t n = 0;
    while (*h) {
        if (*h == ' ' || *h == '\n') {
            h++;
            continue;
        }
        unsigned v;
        if (sscanf(h, "%2x", &v) != 1) abort();
        out[n++] = (uint8_t)v;
        h += 2;
    }
    return n;
}

/* An exact-size heap copy, so ASan catches any read past the end. */
static inline uint8_t *dup_exact(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (!d) abort();
    if (n) memcpy(d, p, n);
    return d;
}

#endif
