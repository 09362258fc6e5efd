/* libFuzzer target for the record framing of the Forward input's `ack: stored` segments
 * (src/inputs/fwdstore.c), which reads files a crash may have cut or a disk may have damaged.
 * Properties, beyond "no crash":
 *  1. parse of any bytes is OK (with total <= len, the id and frame inside the buffer, the
 *     header's lengths adding up), MORE (with need > len), or BAD;
 *  2. resync always moves forward and stays within the buffer;
 *  3. walking a buffer record by record (resyncing after BAD) terminates;
 *  4. a record written with sl_fwdrec_header around fuzz bytes parses back to exactly them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "inputs/fwdstore.h"

#define MAX_BODY (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* 3: walk */
    size_t pos = 0, steps = 0;
    while (pos < size) {
        struct sl_fwdrec r;
        size_t need = 0;
        enum sl_fwdrec_status st = sl_fwdrec_parse(data + pos, size - pos, MAX_BODY, &r, &need);
        if (st == SL_FWDREC_OK) {
            CHECK(r.total >= SL_FWDREC_HDR && r.total <= size - pos);
            CHECK(r.id_len <= SL_FWDREC_ID_MAX);
            CHECK(r.total == SL_FWDREC_HDR + r.id_len + r.frame_len);
            CHECK(r.id == data + pos + SL_FWDREC_HDR);
            CHECK(r.frame == r.id + r.id_len);
            pos += r.total;
        } else if (st == SL_FWDREC_MORE) {
            CHECK(need > size - pos);
            break;
        } else {
            size_t skip = sl_fwdrec_resync(data + pos, size - pos, MAX_BODY);
            CHECK(skip >= 1 && skip <= size - pos);
            pos += skip;
        }
        CHECK(++steps <= size + 1);
    }
    /* 4: round trip */
    size_t id_len = size ? data[0] % (SL_FWDREC_ID_MAX + 1) : 0;
    if (id_len > size) id_len = size;
    const uint8_t *id = data, *frame = data + id_len;
    size_t frame_len = size - id_len;
    uint8_t *buf = malloc(SL_FWDREC_HDR + size + 1);
    CHECK(buf != NULL);
    sl_fwdrec_header(buf, id, id_len, frame, frame_len);
    memcpy(buf + SL_FWDREC_HDR, id, id_len);
    memcpy(buf + SL_FWDREC_HDR + id_len, frame, frame_len);
    struct sl_fwdrec r;
    size_t need = 0;
    CHECK(sl_fwdrec_parse(buf, SL_FWDREC_HDR + size, MAX_BODY, &r, &need) == SL_FWDREC_OK);
    CHECK(r.id_len == id_len && r.frame_len == frame_len);
    CHECK(memcmp(r.id, id, id_len) == 0 && memcmp(r.frame, frame, frame_len) == 0);
    /* one flipped byte anywhere is never OK with different contents */
    if (size) {
        size_t at = (size_t)data[size - 1] * 7919 % (SL_FWDREC_HDR + size);
        buf[at] ^= 0x40;
        enum sl_fwdrec_status st = sl_fwdrec_parse(buf, SL_FWDREC_HDR + size, MAX_BODY, &r, &need);
        CHECK(st != SL_FWDREC_OK);
    }
    free(buf);
    return 0;
}
