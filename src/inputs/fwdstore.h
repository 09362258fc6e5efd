/* The Forward input's request store for `ack: stored`: append-only segment files under
 * <storage_path>/<input name>/, named seg-<16 hex digits>.fwd (hex = sequence, so the name order
 * is the write order).
 *
 * A segment is a sequence of records:
 *
 *     "SLF1" | body_len u32 LE | id_len u16 LE | flags u16 (0) | crc32 u32 LE | id | frame
 *
 * body_len = id_len + frame length; the CRC (zlib crc32) covers bytes 4..11 of the header, the
 * id and the frame. The frame is the request exactly as received, so replay goes through the
 * same decoder; the id is the event id prefix of a request without a `chunk` option (empty
 * otherwise: the chunk gives the prefix), so replayed events get the ids they had the first time.
 *
 * The writer appends records to the active segment and syncs them as a group (fdatasync). The
 * reader (the "feeder") walks the segments in order, up to what is synced, and hands records back
 * one at a time; the input decodes them into the pipeline. A segment is deleted once the feeder
 * has passed it and every event of it is finished (the input tells the store the running index of
 * events handed to the pipeline and the index below which all are finished). */
#ifndef SL_FWDSTORE_H
#define SL_FWDSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/budget.h"

/* ---- record framing (pure) ---- */

#define SL_FWDREC_HDR 16
#define SL_FWDREC_ID_MAX 255

struct sl_fwdrec {
    const uint8_t *id;
    size_t id_len;
    const uint8_t *frame;
    size_t frame_len;
    size_t total; /* header + body */
};

enum sl_fwdrec_status {
    SL_FWDREC_OK = 0,
    SL_FWDREC_MORE, /* a plausible header; *need bytes are needed in all */
    SL_FWDREC_BAD,  /* bad magic, implausible lengths or CRC mismatch */
};

/* Writes the header of a record with this id and frame. */
void sl_fwdrec_header(uint8_t hdr[SL_FWDREC_HDR], const void *id, size_t id_len, const void *frame,
                      size_t frame_len);
/* Parses the record at buf[0..len). max_body bounds body_len (larger is BAD). */
enum sl_fwdrec_status sl_fwdrec_parse(const uint8_t *buf, size_t len, size_t max_body,
                                      struct sl_fwdrec *r, size_t *need);
/* The first offset p in [1, len) where a record could start (magic, then OK or MORE), or, when
 * there is none, the offset from which a record could still start once more bytes arrive
 * (len - 3 at most, so a magic cut at the end is not skipped). */
size_t sl_fwdrec_resync(const uint8_t *buf, size_t len, size_t max_body);

/* ---- the store ---- */

struct sl_fwdstore;

enum { SL_FWDSTORE_FULL = 1 };

struct sl_fwdstore_stats {
    uint64_t used;        /* bytes in all segments */
    uint64_t segments;    /* segment files */
    uint64_t corrupt;     /* corrupt regions skipped in the middle of a segment */
    uint64_t torn_bytes;  /* bytes truncated from segment tails at start-up replay */
    uint64_t replay_left; /* segments from before this start not yet fed */
};

/* Creates <root>/<name>/ if needed and lists the segments left by an earlier run: they are fed
 * first. The read buffer is charged to budget. */
struct sl_fwdstore *sl_fwdstore_open(const char *root, const char *name, uint64_t max_size,
                                     uint64_t max_body, struct sl_budget *budget, char *err,
                                     size_t errlen);
void sl_fwdstore_close(struct sl_fwdstore *s);
const char *sl_fwdstore_dir(const struct sl_fwdstore *s);

/* Appends one record (not yet durable). Returns 0, SL_FWDSTORE_FULL (it would pass max_size;
 * nothing written), or -1 with errno set and sl_fwdstore_errpath naming the file (the caller
 * then calls sl_fwdstore_rollback). */
int sl_fwdstore_append(struct sl_fwdstore *s, const void *id, size_t id_len, const void *frame,
                       size_t frame_len);
/* Makes every appended record durable (fdatasync); 0 or -1 with errno (then roll back). */
int sl_fwdstore_sync(struct sl_fwdstore *s);
/* Drops what was appended since the last sync and stops using the active segment (an fsync
 * failure leaves the file untrustworthy); the next append starts a new segment. */
void sl_fwdstore_rollback(struct sl_fwdstore *s);
const char *sl_fwdstore_errpath(const struct sl_fwdstore *s);
/* Whether appends are unsynced. */
bool sl_fwdstore_dirty(const struct sl_fwdstore *s);

/* The next durable record not yet fed: 1 (r valid until the next call), 0 (none now), -1 (read
 * error, logged; retried on the next call). next_index is the input's running event index: a
 * segment the feeder leaves gets it as its end. */
int sl_fwdstore_next(struct sl_fwdstore *s, int64_t next_index, struct sl_fwdrec *r);
/* Deletes the segments the feeder has passed whose events are all below done_next (and the
 * active one if it is fully fed and done_next == next_index). Returns the bytes freed. */
uint64_t sl_fwdstore_gc(struct sl_fwdstore *s, int64_t done_next, int64_t next_index);
void sl_fwdstore_stats(const struct sl_fwdstore *s, struct sl_fwdstore_stats *out);

#endif
