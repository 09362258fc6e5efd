/* libFuzzer target for the bulk response parser. Properties: parsing never reads outside the
 * input (ASan; the input is libFuzzer's exact-size copy) nor writes past items[n_expected); when it
 * returns 0 every item has a status in 100..599 and its type/reason slices lie inside the input;
 * when it returns -1 the message is set. The first input byte chooses n_expected (0..31), so count
 * mismatches are reached as well as full parses. sl_bulk_parse_error gets the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/bulk.h"
#include "fuzz_check.h"

#define MAX_ITEMS 32

static void check_slice(const char *p, size_t n, const char *body, size_t len)
{
    if (!p) {
        CHECK(n == 0);
        return;
    }
    CHECK(p >= body && p + n <= body + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    size_t n_expected = data[0] % MAX_ITEMS;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;

    /* exact-size heap array: a write past n_expected is an ASan report */
    struct sl_bulk_item *items = malloc((n_expected ? n_expected : 1) * sizeof(*items));
    char err[96];
    err[0] = '\0';
    if (sl_bulk_parse_response(body, len, items, n_expected, err, sizeof(err)) == 0) {
        for (size_t k = 0; k < n_expected; k++) {
            CHECK(items[k].status >= 100 && items[k].status <= 599);
            check_slice(items[k].type, items[k].type_len, body, len);
            check_slice(items[k].reason, items[k].reason_len, body, len);
            (void)sl_bulk_classify_item(items[k].status, SL_BULK_CREATE);
        }
    } else {
        CHECK(err[0] != '\0');
        CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    }
    free(items);

    struct sl_bulk_item e;
    if (sl_bulk_parse_error(body, len, &e) == 0) {
        CHECK(e.type || e.reason);
        check_slice(e.type, e.type_len, body, len);
        check_slice(e.reason, e.reason_len, body, len);
        CHECK(e.status == 0 || (e.status >= 100 && e.status <= 599));
    }
    return 0;
}
