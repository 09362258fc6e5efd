/* libFuzzer target for the cluster-info parser (the answer to GET /, read from the network).
 * Properties: it never reads outside the input (ASan, exact-size copy); on success both strings are
 * NUL-terminated inside their fields, major and minor are -1 or what
 * the number starts with, and the product name is never NULL; on failure the message is set. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/esinfo.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size ? size : 1);
    memcpy(body, data, size);
    struct sl_es_info info;
    char err[128];
    err[0] = '\0';
    if (sl_es_info_parse(body, size, &info, err, sizeof err) == 0) {
        CHECK(memchr(info.number, '\0', sizeof info.number) != NULL);
        CHECK(memchr(info.distribution, '\0', sizeof info.distribution) != NULL);
        CHECK(info.number[0] != '\0' || info.major == -1);
        CHECK(info.major == -1 || (info.number[0] >= '0' && info.number[0] <= '9'));
        CHECK(info.minor == -1 || info.major >= 0);
        CHECK(sl_es_info_product(&info) != NULL);
    } else {
        CHECK(err[0] != '\0');
        CHECK(memchr(err, '\0', sizeof err) != NULL);
    }
    free(body);
    return 0;
}
