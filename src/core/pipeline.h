/* The pipeline: what inputs hand to outputs, and how results flow back.
 *
 * An input turns each source record into a struct sl_event (borrowed pointers, valid only during
 * the call), routes it by tag (sl_pipeline_route: the first matching output, plus every earlier
 * matching output that has `copy: true`) and submits it (sl_pipeline_submit). The output copies
 * what it needs (the one copy of the payload sluice makes) and later reports the record's fate
 * through sl_ack(): delivered, dead-lettered (after the dead-letter line is durable) or dropped
 * (counted). sl_ack() updates the input's conservation counters and the source's offset tracker.
 *
 * Conservation, per input, at every moment: received = delivered + dead_lettered + dropped +
 * in_flight. */
#ifndef SL_PIPELINE_H
#define SL_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/json.h"
#include "core/acktrack.h"
#include "core/budget.h"
#include "core/config.h"
#include "core/deadletter.h"
#include "core/edits.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/tagmatch.h"

struct sl_counters {
    uint64_t received;
    uint64_t delivered;
    uint64_t dead_lettered;
    uint64_t dropped;
    uint64_t parse_errors;
    uint64_t unmatched;
    /* records kept with a fallback, counted so the fallback is visible: */
    uint64_t time_errors;  /* time_key present but unparsable: the source's time was used */
    uint64_t type_errors;  /* typed fields (format regexp) whose text did not convert: null */
    uint64_t edit_skipped; /* field edits that could not apply (a path through a non-object) */
};

struct sl_fanout;

struct sl_ackref {
    struct sl_acktrack *trk; /* NULL for sources without offsets */
    uint64_t seq;
    struct sl_counters *ctr;
    struct sl_fanout *fan; /* set on each copy of a record routed to several outputs */
};

enum sl_fate { SL_FATE_DELIVERED, SL_FATE_DEAD_LETTERED, SL_FATE_DROPPED };

/* A record that went to several outputs (copy: true). Each copy's ackref points here; the record
 * is finished at its source (counters, ack tracker) only when the last copy is, with one fate:
 * dead-lettered if any copy was, else delivered if every copy was, else dropped. Allocated only
 * for such routes and charged to the budget (sizeof) until resolved. */
struct sl_fanout {
    struct sl_ackref src; /* the record's own ackref (fan NULL) */
    struct sl_budget *budget;
    uint32_t left; /* copies not yet finished, plus one while the router still submits */
    uint32_t n_dead_lettered, n_dropped;
};

/* Reports the fate of a record, or of one copy of it (ref->fan set). Call once per ref. */
void sl_ack(const struct sl_ackref *ref, enum sl_fate fate);
/* Tells the record's source why it is not finished yet (an output retries it: "HTTP 403 ..."),
 * so that a source held up by it can say which record and why. Any number of times. */
void sl_ack_note(const struct sl_ackref *ref, const char *why);

/* Lifetimes: `input` and `topic` must stay valid for the process lifetime (inputs intern them;
 * outputs keep those pointers with records in flight). Everything else, `tag` included, is
 * borrowed for the submit call only: outputs copy what they keep (the Forward input passes tags
 * that live in its request frame). */
struct sl_event {
    const char *input; /* input name */
    const char *tag;
    size_t tag_len;
    const char *topic;
    size_t topic_len;
    int32_t partition;
    int64_t offset;
    const char *key;
    size_t key_len;
    /* deterministic id of the record at a source without Kafka coordinates (Forward: chunk id
     * and index), so a resend is written over, not added; NULL when topic is set */
    const char *src_id;
    size_t src_id_len;
    int64_t time_ns;
    const char *payload; /* one JSON object, no raw newlines */
    size_t payload_len;
    const struct sl_json_scan *scan; /* values of the pipeline's paths (sl_pipeline_path) */
    struct sl_ackref ack;
};

/* What an output counts, kept in the output and read in place by /metrics and /status. */
struct sl_output_stats {
    uint64_t requests, items_sent, bytes_sent, delivered, dead_lettered;
    uint64_t id_missing; /* records without a usable id in the id field (id_missing decides) */
    uint64_t retries_exhausted; /* items dead-lettered after item_retry_timeout */
    uint64_t latency_ms_sum;
    const uint64_t *retries; /* n_reasons counters, by reason */
    const char *const *reason_names;
    size_t n_reasons;
    struct sl_histogram *latency; /* request latency in seconds; set by main, may be NULL */
};

struct sl_output_ops {
    /* Takes the record over; its fate is reported later through sl_ack. */
    void (*submit)(void *impl, const struct sl_event *ev);
    /* Seals partly filled batches so they are sent now (backpressure, shutdown). */
    void (*flush)(void *impl);
    /* Optional: the loop is about to sleep, so every input has taken all that was ready. An
     * output with a request slot free (nothing queued, in flight or waiting to be retried in
     * it) sends its partly filled batch now instead of after batch_max_wait; with every slot
     * busy the records keep accumulating, so under load batches still fill. */
    void (*idle)(void *impl);
    /* Records held (queued, in flight, awaiting retry). */
    uint64_t (*pending)(void *impl);
    /* Optional: frees up to about `want` bytes of idle cached buffers (the budget's cached
     * bytes); returns the bytes freed. */
    uint64_t (*reclaim)(void *impl, uint64_t want);
    void (*log_stats)(void *impl);
    struct sl_output_stats *(*stats)(void *impl);
    void (*destroy)(void *impl);
};

struct sl_output {
    const char *name;
    bool copy; /* routing goes on to later outputs after this one matched */
    struct sl_tagpat *match[SL_CFG_MAX_LIST];
    size_t n_match;
    const struct sl_output_ops *ops;
    void *impl;
    struct sl_edits *edits;   /* the output's field edits, or NULL */
    struct sl_json_scan scan; /* of the edited record */
};

/* An input, as main sees it. */
struct sl_input_ops {
    const char *(*name)(const void *impl);
    const struct sl_counters *(*counters)(const void *impl);
    /* stop taking records so the pipeline can drain (SIGTERM) */
    void (*stop)(void *impl);
    /* final commit/acks, release everything */
    void (*close)(void *impl);
    void (*log_stats)(void *impl);
};

struct sl_input {
    const struct sl_input_ops *ops;
    void *impl;
};

struct sl_dl_pending;

struct sl_pipeline {
    struct sl_loop *loop;
    const struct sl_config *cfg;
    struct sl_budget budget;
    struct sl_dlq *dlq;
    struct sl_output outputs[SL_CFG_MAX_OUTPUTS];
    size_t n_outputs;
    /* JSON paths every input must look up (time keys, id fields, index template fields) */
    const char *paths[SL_JSON_MAX_PATHS];
    size_t n_paths;
    /* dead-letter lines written but not yet synced, and records the store refused (full) */
    struct sl_dl_pending *dl_pending;
    size_t n_dl_pending, cap_dl_pending;
    struct sl_dl_pending *dl_blocked;
    size_t n_dl_blocked, cap_dl_blocked;
    struct sl_timer dl_retry;
    uint64_t dl_charged; /* the dead-letter store's write buffer, as charged to the budget */
    /* inputs' poll timers, restarted at once when the budget drops below its resume mark */
    struct sl_timer *room_watch[SL_CFG_MAX_INPUTS];
    size_t n_room_watch;
    bool dl_sync_failed;
    /* An output found that its cluster cannot serve the configuration (logged there): main
     * stops at once and exits 2, as for a configuration error. */
    bool fatal;
};

int sl_pipeline_init(struct sl_pipeline *p, struct sl_loop *loop, const struct sl_config *cfg,
                     uint64_t budget_bytes, char *err, size_t errlen);
void sl_pipeline_fini(struct sl_pipeline *p);
/* Index of path in p->paths, adding it if new; -1 if the table is full. */
int sl_pipeline_path(struct sl_pipeline *p, const char *path);
/* Hands ev to o, after o's field edits. */
void sl_output_submit(const struct sl_pipeline *p, struct sl_output *o, const struct sl_event *ev);
/* Where a tag goes: every matching output up to and including the first one without copy: true,
 * in the order of the outputs list. n == 0: unmatched. Inputs cache it per topic / per tag. */
struct sl_route {
    struct sl_output *out[SL_CFG_MAX_OUTPUTS];
    size_t n;
};
/* Fills r; returns r->n. */
size_t sl_pipeline_route(struct sl_pipeline *p, const char *tag, size_t tag_len,
                         struct sl_route *r);
/* Hands ev to every output of r (r->n >= 1). With more than one output the copies share one
 * struct sl_fanout; ev->ack must be the record's own ackref (fan NULL). */
void sl_pipeline_submit(struct sl_pipeline *p, const struct sl_route *r, const struct sl_event *ev);
/* Fan-out records not yet resolved (for tests and /status). */
uint64_t sl_pipeline_fanouts(void);
/* Dead-letters ev (the line is buffered; the ack happens in sl_pipeline_dl_commit). */
void sl_pipeline_dead_letter(struct sl_pipeline *p, const struct sl_event *ev, const char *reason,
                             int status, const char *etype, size_t etype_len, const char *ereason,
                             size_t ereason_len, bool escaped, const char *output,
                             const char *index, size_t index_len, int attempts);
/* Syncs the buffered dead-letter lines and acknowledges their records. */
void sl_pipeline_dl_commit(struct sl_pipeline *p);
/* t (an input's poll timer, which checks backpressure) is restarted with delay 0 whenever the
 * budget drops below its resume mark. An input unwatches before its timer goes away. */
void sl_pipeline_watch_room(struct sl_pipeline *p, struct sl_timer *t);
void sl_pipeline_unwatch_room(struct sl_pipeline *p, struct sl_timer *t);
/* True while inputs must not take more records (budget full or dead-letter store refusing). */
bool sl_pipeline_backpressure(const struct sl_pipeline *p);
uint64_t sl_pipeline_pending(const struct sl_pipeline *p);

#endif
