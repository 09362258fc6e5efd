/* The property check every fuzz target uses. Unlike assert(), it stays armed in -DNDEBUG builds
 * (RelWithDebInfo), and names the property that failed. */
#ifndef SL_FUZZ_CHECK_H
#define SL_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
