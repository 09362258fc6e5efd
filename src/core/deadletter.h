/* The dead-letter store: NDJSON files, one line per record that could not be delivered, with the
 * reason, the error as the output reported it, the source coordinates and the original payload.
 *
 * A dead-lettered record counts as finished for the offset tracker only after sl_dlq_sync()
 * returned 0, i.e. the line is written and fdatasync'd. The store is capped by max_size over all
 * its files; when a write would pass the cap it fails and the caller keeps the record pending
 * (and inputs pause) rather than dropping it. Files are created 0600: payloads may hold secrets. */
#ifndef SL_DEADLETTER_H
#define SL_DEADLETTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sl_dlq;

struct sl_dl_record {
    const char *reason;     /* short class, e.g. "unmatched tag", "rejected by elasticsearch" */
    int status;             /* HTTP status, 0 if none */
    const char *error_type; /* may be NULL */
    size_t error_type_len;
    const char *error_reason; /* may be NULL */
    size_t error_reason_len;
    bool error_escaped; /* error_type/error_reason are already JSON string contents */
    const char *input;
    const char *output; /* may be NULL */
    const char *index;  /* may be NULL */
    size_t index_len;
    const char *tag;
    size_t tag_len;
    const char *topic; /* Kafka coordinates; topic NULL for other sources */
    size_t topic_len;
    int32_t partition;
    int64_t offset;
    int attempts;
    int64_t time_ns; /* event time */
    const char *payload;
    size_t payload_len;
};

struct sl_dlq *sl_dlq_open(const char *dir, uint64_t max_size, char *err, size_t errlen);
void sl_dlq_close(struct sl_dlq *q);
/* Appends one line to the write buffer. Returns 0, or -1 when the store is full (the cap would be
 * passed) or the buffer cannot grow. */
int sl_dlq_write(struct sl_dlq *q, const struct sl_dl_record *r);
/* Writes the buffer and fdatasyncs, opening the current file for this sync only (an idle store
 * holds no file open). Returns 0, or -1 (message logged with the file and errno); on -1 the lines
 * stay buffered, are not durable, and their records must not be acknowledged until a later sync
 * returns 0. What a failed write appended is cut off again (now, or before the next write if the
 * cut fails too), so a file never keeps a torn line in front of later ones; after a failed
 * fdatasync the file is not written again and the next sync starts a new one, but only once the
 * old file's unsynced tail is cut (so no line is in the store twice). */
int sl_dlq_sync(struct sl_dlq *q);
uint64_t sl_dlq_lines(const struct sl_dlq *q); /* durable lines written since start */
uint64_t sl_dlq_bytes(const struct sl_dlq *q); /* bytes used by all files of the store */
const char *sl_dlq_dir(const struct sl_dlq *q);
/* Memory held by the write buffer (its capacity), and the bytes of lines waiting in it for a
 * sync. An escaped line can be six times its record's size (a byte below 0x20 becomes \u00XX):
 * the caller charges the first to its memory budget and syncs once the second grows large. */
size_t sl_dlq_buffer_bytes(const struct sl_dlq *q);
size_t sl_dlq_unsynced_bytes(const struct sl_dlq *q);

#endif
