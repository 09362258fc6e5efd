/* The event loop and HTTP/1.1 framing.
 *
 * One thread, one epoll set (level-triggered), non-blocking sockets. A connection moves through:
 *
 *   HEAD --headers--> BODY --complete--> [WAIT: stall] --process--> [WAIT: delay] --> WRITE -->
 * HEAD
 *     \--oversized Content-Length--> DISCARD --> WRITE (413)
 *
 * Only one request per connection is in progress; pipelined bytes stay in the input buffer until
 * the current response is written. While a connection waits or writes it is not polled for input,
 * which bounds its buffer. Connections are freed only at the end of a loop iteration (the
 * graveyard), because /_emu/down closes other connections whose events may still be pending in the
 * same epoll batch. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "esemu.h"

#define MAX_HEADER_BYTES (64 * 1024)
#define DUMP_CHUNK (1024 * 1024)

enum { K_LISTEN, K_CONN, K_SIGNAL };
enum { S_HEAD, S_BODY, S_DISCARD, S_WAIT, S_WRITE, S_DEAD };
enum { CS_SIZE, CS_DATA, CS_CRLF, CS_TRAILER, CS_DONE };

struct listener {
    int kind;
    int fd;
    int control;
    struct sockaddr_in addr;
};

struct conn {
    int kind;
    int fd;
    int control;
    int state;
    int polled; /* events currently registered */
    struct conn *prev, *next;

    struct ebuf in;
    size_t scan; /* header search resumes here */
    size_t hdr_len;
    size_t req_end;

    /* request being read */
    int method, http10, keepalive, is_bulk, expect, gzip, chunked, has_clen, too_large;
    size_t clen;
    size_t q_off, q_len, ct_off, ct_len;
    struct ebuf path;
    int cs;
    size_t cpos, chunk_left;
    struct ebuf body;

    /* waiting */
    uint64_t wake_ns;
    int wake_process; /* 1: stalled before processing, 0: delayed response */

    /* response being written */
    struct eresp resp;
    struct ebuf hdr;
    size_t sent, limit;
    int close_after, truncate, dump_done;
    unsigned long served; /* responses started on this connection */
};

static int epfd = -1;
static struct listener data_l = {.kind = K_LISTEN, .fd = -1};
static struct listener ctl_l = {.kind = K_LISTEN, .fd = -1, .control = 1};
static struct {
    int kind;
    int fd;
} sig_ev = {.kind = K_SIGNAL, .fd = -1};
static struct conn *conns, *graveyard;
static size_t n_conns;
static uint64_t down_until_ns;
static int running = 1;

static void conn_advance(struct conn *c);

/* ---- small helpers -------------------------------------------------------------------------- */

static void set_events(struct conn *c, int ev)
{
    if (c->polled == ev) return;
    struct epoll_event e = {.events = (uint32_t)ev, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
    c->polled = ev;
}

/* Keeps the body buffer: reallocating a multi-megabyte response per request costs page faults. */
static void reset_resp(struct conn *c)
{
    struct ebuf keep = c->resp.body;
    free(c->resp.dump.sel);
    memset(&c->resp, 0, sizeof c->resp);
    keep.len = 0;
    c->resp.body = keep;
    c->hdr.len = 0;
    c->sent = c->limit = 0;
    c->close_after = c->truncate = c->dump_done = 0;
}

static void conn_close(struct conn *c, int rst)
{
    if (c->state == S_DEAD) return;
    if (rst) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = S_DEAD;
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = graveyard;
    graveyard = c;
    n_conns--;
}

static void bury(void)
{
    while (graveyard) {
        struct conn *c = graveyard;
        graveyard = c->next;
        ebuf_free(&c->in);
        ebuf_free(&c->path);
        ebuf_free(&c->body);
        reset_resp(c);
        ebuf_free(&c->resp.body);
        ebuf_free(&c->hdr);
        free(c);
    }
}

size_t server_connections_open(void)
{
    return n_conns;
}

size_t server_stalled_now(void)
{
    size_t n = 0;
    for (struct conn *c = conns; c; c = c->next)
        n += c->state == S_WAIT && c->wake_process;
    return n;
}

static const char *reason_phrase(int s)
{
    switch (s) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Request Entity Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

/* ---- writing -------------------------------------------------------------------------------- */

static void dump_refill(struct conn *c)
{
    struct ebuf *b = &c->resp.body;
    b->len = 0;
    ebuf_reserve(b, DUMP_CHUNK + 4096);
    b->len = 16; /* room for the chunk-size line, written right-aligned below */
    int r = api_dump_fill(&c->resp.dump, b, DUMP_CHUNK);
    if (r < 0) {
        /* The store changed shape under the cursor; an aborted chunked body tells the reader. */
        c->dump_done = 1;
        c->close_after = 1;
        b->len = 0;
        c->resp.body_off = 0;
        c->limit = 0;
        return;
    }
    size_t data = b->len - 16;
    char line[16];
    int ln = snprintf(line, sizeof line, "%zx\r\n", data);
    c->resp.body_off = 16 - (size_t)ln;
    memcpy(b->p + c->resp.body_off, line, (size_t)ln);
    EBUF_LIT(b, "\r\n");
    if (data == 0)
        b->len =
            c->resp.body_off + (size_t)ln; /* the terminating 0-size chunk needs no data CRLF */
    if (r == 0) {
        if (data) EBUF_LIT(b, "0\r\n");
        EBUF_LIT(b, "\r\n");
        c->dump_done = 1;
    }
    c->sent = 0;
    c->limit = c->hdr.len + b->len - c->resp.body_off;
}

static void request_done(struct conn *c);

static void conn_write(struct conn *c)
{
    for (;;) {
        while (c->sent < c->limit) {
            struct iovec iov[2];
            int n = 0;
            if (c->sent < c->hdr.len) {
                iov[n].iov_base = c->hdr.p + c->sent;
                iov[n++].iov_len = c->hdr.len - c->sent;
                iov[n].iov_base = c->resp.body.p + c->resp.body_off;
                iov[n++].iov_len = c->limit - c->hdr.len;
            } else {
                iov[n].iov_base = c->resp.body.p + c->resp.body_off + (c->sent - c->hdr.len);
                iov[n++].iov_len = c->limit - c->sent;
            }
            if (n == 2 && iov[1].iov_len == 0) n = 1;
            if (c->sent < c->hdr.len && c->limit < c->hdr.len) {
                iov[0].iov_len = c->limit - c->sent;
                n = 1;
            }
            ssize_t w = writev(c->fd, iov, n);
            if (w < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    set_events(c, EPOLLOUT);
                    return;
                }
                if (errno == EINTR) continue;
                conn_close(c, 0);
                return;
            }
            c->sent += (size_t)w;
        }
        if (c->resp.disp == DISP_DUMP && !c->dump_done) {
            c->hdr.len = 0;
            dump_refill(c);
            continue;
        }
        break;
    }
    if (c->close_after || c->truncate) {
        shutdown(c->fd, SHUT_WR);
        conn_close(c, 0);
        return;
    }
    request_done(c);
}

static void start_response(struct conn *c)
{
    struct eresp *r = &c->resp;
    struct ebuf *h = &c->hdr;
    c->served++;
    h->len = 0;
    ebuf_printf(h, "HTTP/1.1 %d %s\r\n", r->status, reason_phrase(r->status));
    if (!g_emu.opensearch) EBUF_LIT(h, "X-Elastic-Product: Elasticsearch\r\n");
    const char *ct = r->content_type ? r->content_type : "application/json";
    if (*ct) ebuf_printf(h, "Content-Type: %s\r\n", ct);
    if (!c->keepalive || r->close) c->close_after = 1;
    if (r->disp == DISP_DUMP) {
        EBUF_LIT(h, "Transfer-Encoding: chunked\r\n");
    } else {
        EBUF_LIT(h, "Content-Length: ");
        ebuf_u64(h, r->body.len - r->body_off);
        EBUF_LIT(h, "\r\n");
    }
    if (c->close_after) EBUF_LIT(h, "Connection: close\r\n");
    EBUF_LIT(h, "\r\n");
    size_t body = r->body.len >= r->body_off ? r->body.len - r->body_off : 0;
    if (r->disp == DISP_DUMP) {
        dump_refill(c);
        c->sent = 0;
    } else {
        c->limit = h->len + (c->method == M_HEAD ? 0 : body);
        if (r->disp == DISP_TRUNCATE) {
            c->limit = h->len + body / 2;
            c->truncate = 1;
        }
    }
    c->state = S_WRITE;
    conn_write(c);
}

static void simple_response(struct conn *c, int status, int close)
{
    reset_resp(c);
    c->resp.status = status;
    c->resp.content_type = "";
    c->resp.close = close;
    start_response(c);
}

/* ---- processing ----------------------------------------------------------------------------- */

static void count_ctype(const char *ct, size_t n)
{
    struct stats *s = &g_emu.stats;
    if (!ct) {
        ct = "(none)";
        n = 6;
    }
    for (size_t i = 0; i < s->n_ctypes; i++)
        if (strlen(s->ctype_name[i]) == n && memcmp(s->ctype_name[i], ct, n) == 0) {
            s->ctype_count[i]++;
            return;
        }
    if (s->n_ctypes == MAX_CTYPES) return;
    char *name = malloc(n + 1);
    if (!name) abort();
    memcpy(name, ct, n);
    name[n] = 0;
    s->ctype_name[s->n_ctypes] = name;
    s->ctype_count[s->n_ctypes++] = 1;
}

/* Inflates gzip or zlib data, concatenated members included, into out. Returns 0, -1 on corrupt
 * data, -2 when the output would exceed limit. */
static int inflate_body(const char *in, size_t n, size_t limit, struct ebuf *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 32) != Z_OK) return -1;
    zs.next_in = (Bytef *)in;
    int rc = 0;
    out->len = 0;
    size_t left = n;
    while (left > 0 || zs.avail_in > 0) {
        size_t feed = left > (1u << 30) ? (1u << 30) : left;
        if (zs.avail_in == 0) {
            zs.avail_in = (uInt)feed;
            left -= feed;
        }
        ebuf_reserve(out, n * 4 < 65536 ? 65536 : n * 4 > limit + 1 ? limit + 1 : n * 4);
        size_t room = out->cap - out->len;
        zs.next_out = (Bytef *)out->p + out->len;
        zs.avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
        size_t before = zs.avail_out;
        int zr = inflate(&zs, Z_NO_FLUSH);
        out->len += before - zs.avail_out;
        if (out->len > limit) {
            rc = -2;
            break;
        }
        if (zr == Z_STREAM_END) {
            if (zs.avail_in == 0 && left == 0) break;
            /* Another gzip member follows (RFC 1952 allows concatenation). */
            inflateReset(&zs);
            continue;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = -1;
            break;
        }
        if (zr == Z_BUF_ERROR && zs.avail_in == 0 && left == 0) {
            rc = -1; /* truncated stream */
            break;
        }
    }
    inflateEnd(&zs);
    return rc;
}

static void process(struct conn *c)
{
    const char *body = c->chunked ? c->body.p : c->in.p + c->hdr_len;
    size_t blen = c->chunked ? c->body.len : c->clen;
    struct ebuf inflated = {0};
    reset_resp(c);
    if (c->gzip) {
        if (c->is_bulk) g_emu.stats.gzip_requests++;
        int r = inflate_body(body, blen, g_emu.max_content_length, &inflated);
        if (r == -2) {
            ebuf_free(&inflated);
            g_emu.stats.status_413++;
            simple_response(c, 413, 0);
            return;
        }
        if (r < 0) {
            ebuf_free(&inflated);
            es_error(&c->resp, 400, "illegal_argument_exception",
                     "failed to decompress the gzip request body");
            start_response(c);
            return;
        }
        body = inflated.p;
        blen = inflated.len;
    }
    if (c->is_bulk) {
        g_emu.stats.bytes_in_decompressed += blen;
        if (blen > g_emu.stats.max_body_bytes) g_emu.stats.max_body_bytes = blen;
    }
    struct ereq rq = {
        .method = c->method,
        .control = c->control,
        .path = c->path.p,
        .path_len = c->path.len,
        .query = c->in.p + c->q_off,
        .query_len = c->q_len,
        .ctype = c->ct_len ? c->in.p + c->ct_off : NULL,
        .ctype_len = c->ct_len,
        .body = body ? body : "",
        .body_len = blen,
        .reused = c->served > 0,
    };
    api_handle(&rq, &c->resp);
    ebuf_free(&inflated);
    if (c->resp.disp == DISP_RESET || c->resp.disp == DISP_CLOSE) {
        conn_close(c, c->resp.disp == DISP_RESET);
        return;
    }
    if (c->resp.delay_ms) {
        c->state = S_WAIT;
        c->wake_process = 0;
        c->wake_ns = now_mono_ns() + c->resp.delay_ms * 1000000u;
        set_events(c, 0);
        return;
    }
    start_response(c);
}

static void body_complete(struct conn *c)
{
    if (c->too_large) {
        g_emu.stats.status_413++;
        simple_response(c, 413, 0);
        return;
    }
    if (c->is_bulk) g_emu.stats.bulk_body_bytes += c->chunked ? c->body.len : c->clen;
    if (!c->control) count_ctype(c->ct_len ? c->in.p + c->ct_off : NULL, c->ct_len);
    uint64_t now = now_mono_ns();
    if (c->is_bulk && g_emu.faults.stall_until_ns > now) {
        g_emu.stats.stalls_injected++;
        c->state = S_WAIT;
        c->wake_process = 1;
        c->wake_ns = g_emu.faults.stall_until_ns;
        set_events(c, 0);
        return;
    }
    process(c);
}

static void request_done(struct conn *c)
{
    if (c->req_end > c->in.len) c->req_end = c->in.len;
    size_t rest = c->in.len - c->req_end;
    memmove(c->in.p, c->in.p + c->req_end, rest);
    c->in.len = rest;
    /* Give back the memory of a 100 MB body instead of keeping it per idle connection. */
    if (c->in.cap > (8u << 20) && rest < (1u << 20)) {
        struct ebuf small = {0};
        ebuf_add(&small, c->in.p, rest);
        ebuf_free(&c->in);
        c->in = small;
    }
    if (c->body.cap > (8u << 20)) ebuf_free(&c->body);
    c->body.len = 0;
    if (c->resp.body.cap > (8u << 20)) ebuf_free(&c->resp.body);
    c->resp.body.len = 0;
    c->state = S_HEAD;
    c->scan = c->hdr_len = c->req_end = 0;
    set_events(c, EPOLLIN);
    conn_advance(c);
}

/* ---- parsing -------------------------------------------------------------------------------- */

static int hexdig(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static int header_is(const char *name, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(name, lit, n) == 0;
}

static int contains_token(const char *v, size_t n, const char *tok)
{
    size_t tn = strlen(tok);
    for (size_t i = 0; i + tn <= n; i++)
        if (strncasecmp(v + i, tok, tn) == 0) return 1;
    return 0;
}

/* Parses the request line and headers in in[0, hdr_len). Returns 0 or an HTTP status to fail
 * with. */
static int parse_head(struct conn *c)
{
    char *p = c->in.p, *end = c->in.p + c->hdr_len - 2;
    char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    if (!sp1) return 400;
    char *sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (!sp2) return 400;
    size_t mn = (size_t)(sp1 - p);
    c->method = header_is(p, mn, "GET")      ? M_GET
                : header_is(p, mn, "HEAD")   ? M_HEAD
                : header_is(p, mn, "POST")   ? M_POST
                : header_is(p, mn, "PUT")    ? M_PUT
                : header_is(p, mn, "DELETE") ? M_DELETE
                                             : M_OTHER;
    c->http10 = (size_t)(eol - sp2 - 1) == 8 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0;
    c->keepalive = !c->http10;
    char *t = sp1 + 1, *te = sp2;
    if (te - t > 7 && strncasecmp(t, "http://", 7) == 0) {
        t = memchr(t + 7, '/', (size_t)(te - t - 7));
        if (!t) t = te;
    }
    char *q = memchr(t, '?', (size_t)(te - t));
    c->q_off = q ? (size_t)(q + 1 - c->in.p) : 0;
    c->q_len = q ? (size_t)(te - q - 1) : 0;
    c->path.len = 0;
    for (char *s = t; s < (q ? q : te); s++) {
        if (*s == '%' && (q ? q : te) - s >= 3 && hexdig(s[1]) >= 0 && hexdig(s[2]) >= 0) {
            ebuf_addc(&c->path, (char)(hexdig(s[1]) * 16 + hexdig(s[2])));
            s += 2;
        } else {
            ebuf_addc(&c->path, *s);
        }
    }
    if (c->path.len == 0) ebuf_addc(&c->path, '/');
    ebuf_addc(&c->path, 0);
    c->path.len--;

    c->gzip = c->chunked = c->has_clen = c->expect = c->too_large = 0;
    c->clen = 0;
    c->ct_len = c->ct_off = 0;
    for (p = eol + 2; p < end; p = eol + 2) {
        eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon) return 400;
        size_t nn = (size_t)(colon - p);
        char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vn = (size_t)(ve - v);
        if (header_is(p, nn, "content-length")) {
            char *e;
            errno = 0;
            unsigned long long x = strtoull(v, &e, 10);
            if (e != ve || errno || vn == 0) return 400;
            c->clen = (size_t)x;
            c->has_clen = 1;
        } else if (header_is(p, nn, "transfer-encoding")) {
            if (contains_token(v, vn, "chunked"))
                c->chunked = 1;
            else
                return 501;
        } else if (header_is(p, nn, "content-encoding")) {
            if (header_is(v, vn, "gzip") || header_is(v, vn, "x-gzip") ||
                header_is(v, vn, "deflate"))
                c->gzip = 1;
            else if (!header_is(v, vn, "identity"))
                return 415;
        } else if (header_is(p, nn, "content-type")) {
            c->ct_off = (size_t)(v - c->in.p);
            c->ct_len = vn;
        } else if (header_is(p, nn, "expect")) {
            c->expect = contains_token(v, vn, "100-continue");
        } else if (header_is(p, nn, "authorization")) {
            struct stats *st = &g_emu.stats;
            size_t n =
                vn < sizeof st->last_authorization - 1 ? vn : sizeof st->last_authorization - 1;
            memcpy(st->last_authorization, v, n);
            st->last_authorization[n] = 0;
            if (vn > 6 && strncasecmp(v, "Basic ", 6) == 0)
                st->auth_basic++;
            else if (vn > 7 && strncasecmp(v, "ApiKey ", 7) == 0)
                st->auth_apikey++;
            else
                st->auth_other++;
        } else if (header_is(p, nn, "connection")) {
            if (contains_token(v, vn, "close"))
                c->keepalive = 0;
            else if (contains_token(v, vn, "keep-alive"))
                c->keepalive = 1;
        }
    }
    if (c->chunked) c->has_clen = 0;
    struct ereq probe = {
        .method = c->method, .control = c->control, .path = c->path.p, .path_len = c->path.len};
    c->is_bulk = api_is_bulk(&probe);
    return 0;
}

/* Decodes chunked framing from in[cpos..). Returns 1 when the body is complete, 0 when more bytes
 * are needed, -1 on a framing error. */
static int dechunk(struct conn *c)
{
    for (;;) {
        char *p = c->in.p + c->cpos;
        size_t avail = c->in.len - c->cpos;
        switch (c->cs) {
        case CS_SIZE:
        case CS_TRAILER: {
            char *eol = memmem(p, avail, "\r\n", 2);
            if (!eol) return avail > 4096 ? -1 : 0;
            size_t ln = (size_t)(eol - p);
            c->cpos += ln + 2;
            if (c->cs == CS_TRAILER) {
                if (ln == 0) {
                    c->cs = CS_DONE;
                    return 1;
                }
                continue;
            }
            size_t size = 0, i = 0;
            for (; i < ln && hexdig(p[i]) >= 0; i++) {
                if (size > ((size_t)1 << 40)) return -1;
                size = size * 16 + (size_t)hexdig(p[i]);
            }
            if (i == 0 || (i < ln && p[i] != ';' && p[i] != ' ')) return -1;
            c->chunk_left = size;
            c->cs = size ? CS_DATA : CS_TRAILER;
            continue;
        }
        case CS_DATA: {
            size_t take = avail < c->chunk_left ? avail : c->chunk_left;
            if (!c->too_large) {
                if (c->body.len + take > g_emu.max_content_length && !c->gzip)
                    c->too_large = 1;
                else
                    ebuf_add(&c->body, p, take);
            }
            c->cpos += take;
            c->chunk_left -= take;
            if (c->chunk_left) return 0;
            c->cs = CS_CRLF;
            continue;
        }
        case CS_CRLF:
            if (avail < 2) return 0;
            if (p[0] != '\r' || p[1] != '\n') return -1;
            c->cpos += 2;
            c->cs = CS_SIZE;
            continue;
        default:
            return 1;
        }
    }
}

static void bad_framing(struct conn *c, int status)
{
    reset_resp(c);
    c->keepalive = 0;
    es_error(&c->resp, status, "illegal_argument_exception",
             status == 431   ? "request headers too large"
             : status == 415 ? "unsupported Content-Encoding"
             : status == 501 ? "unsupported Transfer-Encoding"
                             : "malformed HTTP request");
    c->resp.close = 1;
    c->req_end = c->in.len;
    start_response(c);
}

static void conn_advance(struct conn *c)
{
    while (c->state == S_HEAD || c->state == S_BODY || c->state == S_DISCARD) {
        if (c->state == S_HEAD) {
            size_t from = c->scan > 3 ? c->scan - 3 : 0;
            char *e =
                c->in.len > from ? memmem(c->in.p + from, c->in.len - from, "\r\n\r\n", 4) : NULL;
            if (!e) {
                c->scan = c->in.len;
                if (c->in.len > MAX_HEADER_BYTES) bad_framing(c, 431);
                return;
            }
            c->hdr_len = (size_t)(e + 4 - c->in.p);
            int st = parse_head(c);
            if (st) {
                bad_framing(c, st);
                return;
            }
            c->body.len = 0;
            c->cs = CS_SIZE;
            c->cpos = c->hdr_len;
            int oversized = !c->chunked && c->clen > g_emu.max_content_length;
            if (c->expect && c->in.len == c->hdr_len && (c->chunked || c->clen > 0)) {
                g_emu.stats.expect_100_continue++;
                if (oversized) {
                    /* Refuse before the client sends the body, as the RFC 9110 flow intends. */
                    g_emu.stats.status_413++;
                    c->req_end = c->hdr_len;
                    simple_response(c, 413, 1);
                    return;
                }
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                if (send(c->fd, cont, sizeof cont - 1, MSG_NOSIGNAL) != (ssize_t)sizeof cont - 1) {
                    conn_close(c, 0);
                    return;
                }
            }
            c->state = oversized ? S_DISCARD : S_BODY;
            if (!c->chunked && !c->has_clen && (c->method == M_POST || c->method == M_PUT))
                c->clen = 0; /* no body framing: treat as empty, like Netty */
            continue;
        }
        if (c->state == S_DISCARD) {
            /* Swallow the oversized body so the 413 reaches a client that sends it anyway. */
            size_t have = c->in.len - c->hdr_len;
            if (have < c->clen) {
                c->clen -= have;
                c->in.len = c->hdr_len;
                return;
            }
            c->req_end = c->hdr_len + c->clen;
            g_emu.stats.status_413++;
            simple_response(c, 413, 0);
            return;
        }
        if (c->chunked) {
            int r = dechunk(c);
            if (r < 0) {
                bad_framing(c, 400);
                return;
            }
            if (r == 0) return;
            c->req_end = c->cpos;
        } else {
            if (c->in.len - c->hdr_len < c->clen) return;
            c->req_end = c->hdr_len + c->clen;
        }
        body_complete(c);
        return;
    }
}

static void conn_read(struct conn *c)
{
    for (int rounds = 0; rounds < 64; rounds++) {
        size_t want = 256 * 1024;
        if (c->state == S_BODY && !c->chunked) {
            size_t need = c->hdr_len + c->clen - c->in.len;
            if (need > want) want = need > (16u << 20) ? (16u << 20) : need;
        }
        ebuf_reserve(&c->in, want);
        ssize_t r = read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) conn_close(c, 0);
            break;
        }
        if (r == 0) {
            conn_close(c, 0);
            return;
        }
        if (!c->control) g_emu.stats.bytes_in += (uint64_t)r;
        c->in.len += (size_t)r;
        if (c->in.cap - c->in.len > 0) break; /* short read: the socket is drained */
    }
    if (c->state != S_DEAD) conn_advance(c);
}

/* ---- listeners and timers ------------------------------------------------------------------- */

static int open_listener(struct listener *l)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&l->addr, sizeof l->addr) < 0 || listen(fd, 1024) < 0) {
        close(fd);
        return -1;
    }
    socklen_t sl = sizeof l->addr;
    getsockname(fd, (struct sockaddr *)&l->addr, &sl);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = l};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e);
    l->fd = fd;
    return 0;
}

int server_down(uint64_t ms)
{
    if (data_l.fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, data_l.fd, NULL);
        close(data_l.fd);
        data_l.fd = -1;
    }
    for (struct conn *c = conns, *next; c; c = next) {
        next = c->next;
        if (!c->control) conn_close(c, 1);
    }
    down_until_ns = now_mono_ns() + ms * 1000000u;
    return 0;
}

int server_up(void)
{
    down_until_ns = 0;
    if (data_l.fd >= 0) return 0;
    return open_listener(&data_l);
}

static void accept_all(struct listener *l)
{
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) abort();
        c->kind = K_CONN;
        c->fd = fd;
        c->control = l->control;
        c->state = S_HEAD;
        c->polled = EPOLLIN;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e);
        c->next = conns;
        if (conns) conns->prev = c;
        conns = c;
        n_conns++;
    }
}

static int run_timers(void)
{
    uint64_t now = now_mono_ns(), next = UINT64_MAX;
    if (down_until_ns) {
        if (now >= down_until_ns) {
            if (server_up() < 0)
                down_until_ns = now + 100000000u; /* port still busy: retry shortly */
        }
        if (down_until_ns && down_until_ns < next) next = down_until_ns;
    }
    for (struct conn *c = conns, *nx; c; c = nx) {
        nx = c->next;
        if (c->state != S_WAIT) continue;
        if (c->wake_ns <= now) {
            if (c->wake_process) {
                c->wake_process = 0;
                process(c);
            } else {
                start_response(c);
            }
            nx = c->next; /* c may have been closed; its next pointer is still the list's */
            if (c->state == S_WAIT && c->wake_ns < next) next = c->wake_ns;
        } else if (c->wake_ns < next) {
            next = c->wake_ns;
        }
    }
    /* A stall that ends re-evaluates new arrivals too; nothing to wake for that. */
    if (next == UINT64_MAX) return -1;
    uint64_t ms = (next - now + 999999) / 1000000;
    return ms > 60000 ? 60000 : (int)ms;
}

static int parse_addr(const char *s, struct sockaddr_in *a)
{
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    const char *colon = strrchr(s, ':');
    char host[64] = "127.0.0.1";
    const char *port = s;
    if (colon) {
        size_t hn = (size_t)(colon - s);
        if (hn >= sizeof host) return -1;
        if (hn) {
            memcpy(host, s, hn);
            host[hn] = 0;
        }
        port = colon + 1;
    }
    char *e;
    long p = strtol(port, &e, 10);
    if (*e || p < 0 || p > 65535 || inet_pton(AF_INET, host, &a->sin_addr) != 1) return -1;
    a->sin_port = htons((uint16_t)p);
    return 0;
}

static int write_port_file(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fprintf(f, "%u %u\n", ntohs(data_l.addr.sin_port), ntohs(ctl_l.addr.sin_port));
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int server_run(const char *listen_addr, const char *control_addr, const char *port_file)
{
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (parse_addr(listen_addr, &data_l.addr) < 0 || parse_addr(control_addr, &ctl_l.addr) < 0) {
        fprintf(stderr, "esemu: bad address (want HOST:PORT)\n");
        return 2;
    }
    if (open_listener(&data_l) < 0 || open_listener(&ctl_l) < 0) {
        fprintf(stderr, "esemu: cannot listen: %s\n", strerror(errno));
        return 1;
    }
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGINT);
    sigprocmask(SIG_BLOCK, &ss, NULL);
    signal(SIGPIPE, SIG_IGN);
    sig_ev.fd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
    struct epoll_event se = {.events = EPOLLIN, .data.ptr = &sig_ev};
    epoll_ctl(epfd, EPOLL_CTL_ADD, sig_ev.fd, &se);

    char ip[INET_ADDRSTRLEN], ip2[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &data_l.addr.sin_addr, ip, sizeof ip);
    inet_ntop(AF_INET, &ctl_l.addr.sin_addr, ip2, sizeof ip2);
    if (port_file && write_port_file(port_file) < 0) {
        fprintf(stderr, "esemu: cannot write port file %s: %s\n", port_file, strerror(errno));
        return 1;
    }
    printf("esemu listening on %s:%u control %s:%u\n", ip, ntohs(data_l.addr.sin_port), ip2,
           ntohs(ctl_l.addr.sin_port));
    fflush(stdout);

    struct epoll_event evs[256];
    while (running) {
        int timeout = run_timers();
        bury();
        int n = epoll_wait(epfd, evs, 256, timeout);
        if (n < 0 && errno != EINTR) break;
        for (int i = 0; i < n; i++) {
            int kind = *(int *)evs[i].data.ptr;
            if (kind == K_SIGNAL) {
                running = 0;
            } else if (kind == K_LISTEN) {
                struct listener *l = evs[i].data.ptr;
                if (l->fd >= 0) accept_all(l);
            } else {
                struct conn *c = evs[i].data.ptr;
                if (c->state == S_DEAD) continue;
                if (c->state == S_WRITE && (evs[i].events & EPOLLOUT))
                    conn_write(c);
                else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    conn_read(c);
            }
        }
    }
    while (conns)
        conn_close(conns, 0);
    bury();
    if (data_l.fd >= 0) close(data_l.fd);
    close(ctl_l.fd);
    close(sig_ev.fd);
    close(epfd);
    return 0;
}
