/* esemu: an Elasticsearch Bulk-API emulator for sluice's tests and benchmarks.
 *
 * Shape of the program:
 *   server.c  single-threaded epoll loop, HTTP/1.1 framing (Content-Length, chunked, gzip,
 *             Expect: 100-continue), timers for stalls, delays and "down" periods.
 *   api.c     routes a complete request to an Elasticsearch or /_emu/... handler.
 *   bulk.c    the _bulk endpoint: validation, storage, item faults, filter_path.
 *   resources.c  index templates, ILM policies, data streams, ingest pipelines.
 *   store.c   per-index document tables.  json.c  strict JSON reading.  buf.c  byte buffers.
 *
 * Handlers never block: anything that has to wait (stall, delay) is expressed as a disposition in
 * the response and carried out by the loop, so the control port stays responsive. */
#ifndef ESEMU_H
#define ESEMU_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"

struct faults {
    int request_status;
    long request_count; /* -1 = until cleared */
    double item_retryable_rate;
    int item_retryable_status;
    double item_permanent_rate;
    int item_permanent_status;
    uint64_t stall_until_ns; /* CLOCK_MONOTONIC */
    long reset_after_write_count;
    long reset_before_write_count;
    long close_after_write_count; /* on a reused connection: stored, then FIN, no answer */
    long truncate_response_count;
    long delay_ms;
    /* Resource endpoints, indexed by family: 0 _index_template, 1 _ilm/policy, 2 _data_stream,
     * 3 _ingest/pipeline. Writes only, unless res_reads. */
    int res_status[4];
    long res_count[4]; /* -1 = until cleared */
    int res_reads;
};

#define MAX_CTYPES 32
#define LAT_BUCKETS 4096

struct stats {
    uint64_t requests, control_requests, bulk_requests, bulk_items;
    uint64_t created, updated, deleted, conflicts_409, item_errors;
    uint64_t injected_request_errors, injected_item_errors, permanent_item_errors;
    uint64_t bytes_in, bulk_body_bytes, bytes_in_decompressed, gzip_requests;
    uint64_t expect_100_continue, missing_trailing_newline, max_body_bytes, status_413;
    uint64_t resets_injected, truncations_injected, stalls_injected, closes_injected;
    uint64_t first_doc_ns, last_doc_ns;
    /* resources.c */
    uint64_t resource_requests, injected_resource_errors, templates_put, templates_deleted;
    uint64_t ilm_put, ilm_deleted, data_streams_created, data_streams_auto_created;
    uint64_t data_streams_deleted, pipelines_put, pipelines_deleted;
    uint64_t data_stream_op_type_errors, data_stream_timestamp_errors, pipeline_missing_errors;
    /* indices.c */
    uint64_t indices_created, mapping_item_errors, block_item_errors, auto_create_refusals;
    /* Authorization headers seen, so tests can check a client's credentials arrive */
    uint64_t auth_basic, auth_apikey, auth_other;
    char last_authorization[256];
    size_t n_ctypes;
    char *ctype_name[MAX_CTYPES];
    uint64_t ctype_count[MAX_CTYPES];
    /* latency.c (--latency-field) */
    uint64_t lat_docs, lat_missing, lat_ahead, lat_sum_us, lat_max_us;
    uint64_t lat_hist[LAT_BUCKETS];
};

struct emu {
    struct store store;
    struct faults faults;
    struct stats stats;
    size_t max_content_length;
    uint64_t seed;
    int ds_active; /* a data stream or a data-stream template exists: bulk must resolve names */
    /* --distribution opensearch: GET / answers as an OpenSearch node, without
     * X-Elastic-Product, and /_ilm is unknown (400, no handler) */
    int opensearch;
    const char *version_number; /* what GET / reports */
    const char *latency_field;  /* --latency-field: a record field holding its sent time in ns */
};

extern struct emu g_emu;

enum { M_GET, M_HEAD, M_POST, M_PUT, M_DELETE, M_OTHER };

/* A complete request. All pointers are into the connection's buffers and stay valid only for the
 * duration of api_handle(). path is percent-decoded; query is raw. */
struct ereq {
    int method;
    int control;
    const char *path;
    size_t path_len;
    const char *query;
    size_t query_len;
    const char *ctype; /* NULL when absent */
    size_t ctype_len;
    const char *body;
    size_t body_len;
    int reused; /* the connection already answered a request (keep-alive) */
};

enum disposition {
    DISP_SEND,     /* send the response (after delay_ms) */
    DISP_RESET,    /* send nothing, close with RST */
    DISP_CLOSE,    /* send nothing, close with FIN (what an idle-timeout proxy does) */
    DISP_TRUNCATE, /* send half of the response, then close */
    DISP_DUMP,     /* stream the document dump (chunked) */
};

struct dump_cursor {
    unsigned char *sel;
    size_t nsel;
    size_t i, j;
    uint64_t gen;
};

struct eresp {
    int status;
    const char *content_type; /* NULL = application/json; "" = none (Netty's empty 413) */
    int close;
    enum disposition disp;
    uint64_t delay_ms;
    struct ebuf body;
    size_t body_off; /* response text starts here (bulk reserves a prefix for its header) */
    struct dump_cursor dump;
};

/* api.c */
void api_handle(const struct ereq *rq, struct eresp *rs);
int api_is_bulk(const struct ereq *rq);
/* Appends up to about `budget` bytes of dump lines. Returns 1 when more remain, 0 when done, -1
 * when the store changed shape under the cursor. */
int api_dump_fill(struct dump_cursor *dc, struct ebuf *out, size_t budget);
void es_error(struct eresp *rs, int status, const char *type, const char *reason);
/* 405 for a known path called with a method it does not take. */
void wrong_method(const struct ereq *rq, const char *allowed, struct eresp *rs);
/* Percent-decodes query parameter `name` into out (appended). Returns 1 when present. */
int query_param(const struct ereq *rq, const char *name, struct ebuf *out);
uint64_t now_mono_ns(void);
uint64_t now_real_ns(void);

/* bulk.c */
void bulk_handle(const struct ereq *rq, const char *path_index, size_t pin, struct eresp *rs);
/* Appends an ES error body for a whole-request failure of the given status. */
void bulk_request_fault(struct eresp *rs, int status, size_t body_len);

/* resources.c */
/* Handles /_index_template, /_ilm/policy, /_data_stream and /_ingest/pipeline. Returns 0 when the
 * path is none of these. */
int res_route(const struct ereq *rq, const char *const *seg, const size_t *len, int ns,
              struct eresp *rs);
/* store_select that also resolves data stream names (and wildcards) to their backing indices. */
int res_select(const char *expr, size_t n, unsigned char *sel, const char **missing, size_t *mn);
/* The backing index of data stream name, or NULL. */
const char *res_stream_backing(const char *name, size_t n);
/* For a bulk item: the backing index when name is a data stream, or (may_create) when the
 * highest-priority template matching it is a data-stream template, which auto-creates the stream.
 * NULL for a plain index. */
const char *res_bulk_stream(const char *name, size_t n, int may_create);
int res_pipeline_exists(const char *id, size_t n);
void res_pipeline_doc(const char *id, size_t n);
void res_stats(struct ebuf *b); /* appends "key":value,... (no braces) */
void res_dump(struct eresp *rs);
void res_reset(void);

/* indices.c */
/* Handles PUT /{index}, PUT /{index}/_settings and /_cluster/settings. Returns 0 when the path is
 * none of these. */
int idx_route(const struct ereq *rq, const char *const *seg, const size_t *len, int ns,
              struct eresp *rs);
/* Whether action.auto_create_index lets a write create the index `name`. */
int idx_may_auto_create(const char *name, size_t n);
/* The error type when a block refuses a write to ix (status and reason filled), else NULL. */
const char *idx_block(const struct eindex *ix, int is_delete, int *status, struct ebuf *reason);
/* The error type when the source does not fit ix's mapped field types (reason filled; status
 * 400), else NULL. */
const char *idx_check_source(const struct eindex *ix, const char *src, size_t n, const char *id,
                             size_t idl, struct ebuf *reason);
void idx_stats(struct ebuf *b); /* appends "key":value,... (no braces) */
void idx_reset(void);

/* latency.c */
/* Records the latency of a stored document whose request was processed at recv_ns
 * (CLOCK_REALTIME); call only with g_emu.latency_field set. */
void lat_doc(const char *src, size_t n, uint64_t recv_ns);
void lat_stats(struct ebuf *b); /* appends "key":value,... (no braces) */

/* server.c */
int server_down(uint64_t ms);
int server_up(void);
size_t server_connections_open(void);
size_t server_stalled_now(void);
int server_run(const char *listen_addr, const char *control_addr, const char *port_file);

#endif
