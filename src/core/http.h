/* A tiny HTTP/1.1 server for the status endpoints (/metrics, /healthz, /status, /), running on
 * the sl_loop thread.
 *
 * What it does: GET and HEAD on exact paths from a route table, keep-alive and pipelining,
 * HTTP/1.0 and 1.1, non-blocking writes (EPOLLOUT only while a response is pending).
 *
 * Bounded memory, always:
 *   - at most max_conns connections; one more is accepted, answered 503 (best effort) and closed,
 *     so the listen backlog cannot fill with clients we will never serve;
 *   - each connection owns one read buffer of max_head bytes (the request head must fit: else
 *     431 and close) and one response buffer; responses larger than max_response, or that would
 *     push the sum over all connections past max_response_total, become 503;
 *   - request bodies are not read, only discarded, up to max_body (else 413 and close);
 *     Transfer-Encoding gets 501 and close;
 *   - a connection idle for idle_timeout_ms is closed. The timer restarts when a response has been
 *     written or a write made progress, not on reads: a client trickling a request byte by byte
 *     still gets closed.
 * Nothing is allocated per request: buffers live as long as their connection; a response buffer
 * that grew past 64 KiB is released once written so idle keep-alive connections stay small.
 *
 * Errors: malformed request 400 and close; unknown path 404; a known path with another method
 * than GET or HEAD 405 (with Allow). Handlers run synchronously on the loop thread and must not
 * block; everything they read is therefore one consistent snapshot (see core/metrics.h).
 *
 * Non-goals: TLS, chunked request bodies, HTTP/2, Expect: 100-continue, virtual hosts.
 *
 * ---- /status JSON, the shape the live page (core/status_page.h) reads ----
 *
 * {
 *   "time_ms": 1700000000000,          wall clock, ms since the epoch
 *   "uptime_ms": 12345,                optional
 *   "inputs": [{
 *       "name": "kafka.0",
 *       "received": 10, "delivered": 7, "dead_lettered": 1, "dropped": 0, "in_flight": 2,
 *       "paused": false,               any partition of this input paused for backpressure
 *       "paused_ms": 1500,             total time spent paused (ms, counter)
 *       "partitions": [{"topic": "logs", "partition": 0, "committed": 100,
 *                       "high_watermark": 120, "lag": 20, "paused": false}]
 *   }],
 *   "outputs": [{
 *       "name": "elasticsearch.0",
 *       "requests": 12, "retries": {"429": 3, "timeout": 1}, "bytes_sent": 123456,
 *       "delivered": 7, "dead_lettered": 1, "in_flight": 2
 *   }],
 *   "budget": {"used": 1048576, "limit": 25165824},
 *   "rss_bytes": 31457280,
 *   "dead_letter_lines": 1,
 *   "health": {"ok": true, "reason": ""}     optional; reason set when /healthz says 503
 * }
 * Counters are cumulative; the page derives rates from consecutive polls. Unknown fields are
 * ignored, missing ones show as "-". Retry reasons are free-form keys. */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"
#include "core/metrics.h"

/* ---- request-head parser (pure: no I/O, no allocation) ---- */

enum sl_http_parse_rc {
    SL_HTTP_PARSE_ERROR = -1,   /* malformed: answer 400 and close */
    SL_HTTP_PARSE_COMPLETE = 0, /* a whole head is in buf[0, head_len) */
    SL_HTTP_PARSE_NEED_MORE = 1 /* no end of head yet; everything so far may still be valid */
};

struct sl_http_request {
    const char *method; /* slices of the parsed buffer, valid while it is */
    size_t method_len;
    const char *path; /* origin-form target up to '?', starts with '/' */
    size_t path_len;
    const char *query; /* after '?'; NULL if none */
    size_t query_len;
    int minor_version; /* HTTP/1.<minor>: 0 or 1 */
    bool keep_alive;   /* from the version and the Connection header */
    bool has_content_length;
    uint64_t content_length;
    bool has_transfer_encoding;
    size_t head_len; /* bytes of the head including the blank line (and skipped leading CRLFs) */
};

/* Parses the request line and headers at the start of buf. Lines end in CRLF or LF; leading
 * empty lines are skipped (RFC 9112 2.2). Rejects: non-token methods, targets not starting with
 * '/', versions other than HTTP/1.0 and 1.1, control bytes, obs-folded lines, whitespace before
 * a colon, an invalid or conflicting Content-Length, Content-Length with Transfer-Encoding.
 * Reads only buf[0, len); never writes it. */
enum sl_http_parse_rc sl_http_parse_head(const char *buf, size_t len, struct sl_http_request *req);

/* ---- server ---- */

struct sl_http_limits {
    size_t max_conns;          /* 64 */
    size_t max_head;           /* 8192: request line + headers */
    uint64_t max_body;         /* 65536: request body bytes discarded before 413 */
    size_t max_response;       /* 4 MiB: one response body */
    size_t max_response_total; /* 8 MiB: all connections' response buffers together */
    uint64_t idle_timeout_ms;  /* 30000 */
};

struct sl_http_response {
    /* public: what handlers set */
    int status;               /* 200 unless changed */
    const char *content_type; /* static string; "text/plain; charset=utf-8" unless changed */
    struct sl_buf body;       /* append the body here (capped, see limits); */
    const char *static_body;  /* or point here at bytes that outlive the server (no copy) */
    size_t static_len;
};

/* req->method is "GET" or "HEAD"; for HEAD the server drops the body itself (the handler need not
 * care). If the handler overfills resp->body the client gets 503. */
typedef void (*sl_http_handler)(const struct sl_http_request *req, struct sl_http_response *resp,
                                void *ctx);

struct sl_http_stats {
    uint64_t accepted;
    uint64_t rejected; /* over max_conns, or accept failed */
    uint64_t requests; /* responses started, any status */
    uint64_t errors;   /* 4xx/5xx produced by the server itself (not by handlers) */
    uint64_t conns;    /* open now */
};

struct sl_http_server;

/* limits NULL means the defaults above; zero fields also take their default. NULL on out of
 * memory. */
struct sl_http_server *sl_http_new(struct sl_loop *loop, const struct sl_http_limits *limits);
/* Closes the listener and every connection. Call outside loop dispatch (e.g. after the main loop
 * returned): a pending epoll event for a freed connection would otherwise be dispatched. */
void sl_http_free(struct sl_http_server *srv);

/* addr: "HOST:PORT", "[IPV6]:PORT" or ":PORT" (= 127.0.0.1); HOST may be a name ("localhost").
 * PORT 0 picks a free port (see sl_http_port). Listens and starts accepting on the loop. Returns
 * 0, or -1 with a reason in err. One listener per server. */
int sl_http_listen(struct sl_http_server *srv, const char *addr, char *err, size_t errlen);
uint16_t sl_http_port(const struct sl_http_server *srv); /* bound port, 0 before listen */

/* Exact match on the path (the query string is ignored). path is copied. Returns 0, or -1 if
 * the table (16 routes) is full or the path does not start with '/'. A later route for the
 * same path replaces the earlier one. */
int sl_http_route(struct sl_http_server *srv, const char *path, sl_http_handler handler, void *ctx);

const struct sl_http_stats *sl_http_stats(const struct sl_http_server *srv);

/* Ready-made handlers. */
struct sl_http_static {
    const char *content_type;
    const char *data;
    size_t len;
};
/* ctx: const struct sl_http_static * (e.g. the live page). */
void sl_http_static_handler(const struct sl_http_request *req, struct sl_http_response *resp,
                            void *ctx);
/* ctx: struct sl_metrics *. Prometheus text format 0.0.4. */
void sl_http_metrics_handler(const struct sl_http_request *req, struct sl_http_response *resp,
                             void *ctx);

#endif
