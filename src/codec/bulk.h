/* Elasticsearch Bulk API codec (pure, no I/O): action lines, response parsing, classification.
 * References: the Bulk API reference
 * (elastic.co/docs/api/doc/elasticsearch/operation/operation-bulk) and its source,
 * elastic/elasticsearch-specification specification/_global/bulk/ (BulkRequest.ts, BulkResponse.ts,
 * examples). */
#ifndef SL_BULK_H
#define SL_BULK_H

#include <stddef.h>

enum sl_bulk_op { SL_BULK_CREATE = 0, SL_BULK_INDEX = 1 };

/* Writes `{"create":{"_index":"<index>","_id":"<id>"}}\n` (or "index"; no "_id" key when id is
 * NULL) into out, JSON-escaping index and id. Returns bytes written, or 0 if cap is too small.
 * cap of 64 + 6 * (index_len + id_len) is always enough. */
size_t sl_bulk_action(char *out, size_t cap, enum sl_bulk_op op, const char *index,
                      size_t index_len, const char *id, size_t id_len);

/* The same line in two parts, so a caller can keep the first while the index does not change:
 * the head `{"create":{"_index":"<index>"` and the tail `,"_id":"<id>"}}\n` (or `}}\n` when id is
 * NULL), written at out + head_len. Each returns the bytes written (the tail: head_len plus its
 * own), or 0 if cap is too small. */
size_t sl_bulk_action_head(char *out, size_t cap, enum sl_bulk_op op, const char *index,
                           size_t index_len);
size_t sl_bulk_action_tail(char *out, size_t cap, size_t head_len, const char *id, size_t id_len);

/* One item of a bulk response. type/reason point into the response body at the raw contents of the
 * JSON string (without quotes, still escaped), or are NULL/0 when absent. */
struct sl_bulk_item {
    int status;
    const char *type;
    size_t type_len;
    const char *reason;
    size_t reason_len;
};

/* Parses a bulk response body ({"took":..,"errors":..,"items":[{"<op>":{..,"status":N,
 * "error":{"type":..,"reason":..}}},..]}, in any key order, unknown keys ignored, with or without
 * filter_path) into items[0..n_expected).
 * Returns 0 when the body is well-formed JSON and holds exactly n_expected items each with a
 * status; -1 otherwise with a message in err (a truncated body, a count mismatch or a missing
 * status are all errors: the caller retries the whole request). */
int sl_bulk_parse_response(const char *body, size_t len, struct sl_bulk_item *items,
                           size_t n_expected, char *err, size_t errlen);

/* Extracts error.type and error.reason from a whole-request error body
 * ({"error":{"type":..,"reason":..},"status":N}; or {"error":"text","status":N}).
 * Returns 0 if found (pointers into body as above), -1 if the body has no such shape. */
int sl_bulk_parse_error(const char *body, size_t len, struct sl_bulk_item *out);

enum sl_bulk_class {
    SL_BULK_DELIVERED,   /* 2xx, or 409 on create */
    SL_BULK_RETRY,       /* 429, 408, 5xx, 401, 403 (config problems block, never drop) */
    SL_BULK_DEAD_LETTER, /* any other 4xx: permanent for this document */
};

/* Classifies one item status (the table in docs/guarantees.md, "Per bulk item"). */
enum sl_bulk_class sl_bulk_classify_item(int status, enum sl_bulk_op op);

#endif
