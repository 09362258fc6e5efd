#include "core/http.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

/* ---- request-head parser ---- */

static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Header value bytes: visible ASCII, space, tab and obs-text; no other controls. */
static bool is_field_byte(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool ieq(const char *a, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(a, lit, n) == 0;
}

/* Connection: a comma-separated token list; close wins over keep-alive. */
static void parse_connection(const char *v, size_t n, bool *close, bool *keep)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (ieq(v + s, i - s, "close")) *close = true;
        if (ieq(v + s, i - s, "keep-alive")) *keep = true;
    }
}

static int parse_content_length(const char *v, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19) return -1; /* 19 digits cannot overflow uint64_t */
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return 0;
}

/* One line of the head: [p, eol) without the line ending; returns the start of the next line. */
static const char *line_end(const char *p, const char *end, const char **eol)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *eol = (nl > p && nl[-1] == '\r') ? nl - 1 : nl;
    return nl + 1;
}

static int parse_request_line(const char *p, const char *eol, struct sl_http_request *req)
{
    const char *s = p;
    while (p < eol && is_tchar((unsigned char)*p))
        p++;
    if (p == s || p == eol || *p != ' ') return -1;
    req->method = s;
    req->method_len = (size_t)(p - s);
    s = ++p;
    while (p < eol && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
        p++;
    if (p == s || p == eol || *p != ' ' || *s != '/') return -1;
    const char *q = memchr(s, '?', (size_t)(p - s));
    req->path = s;
    req->path_len = (size_t)((q ? q : p) - s);
    req->query = q ? q + 1 : NULL;
    req->query_len = q ? (size_t)(p - q - 1) : 0;
    p++;
    if (eol - p != 8 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1')) return -1;
    req->minor_version = p[7] - '0';
    return 0;
}

enum sl_http_parse_rc sl_http_parse_head(const char *buf, size_t len, struct sl_http_request *req)
{
    memset(req, 0, sizeof *req);
    const char *p = buf, *end = buf + len;
    while (p < end && (*p == '\r' || *p == '\n')) {
        if (*p == '\r' && p + 1 < end && p[1] != '\n') return SL_HTTP_PARSE_ERROR;
        p++;
    }
    /* The head is complete once a line is empty; until then there is nothing to decide. */
    const char *head_end = NULL;
    for (const char *nl = p; (nl = memchr(nl, '\n', (size_t)(end - nl))) != NULL; nl++) {
        const char *next = nl + 1;
        if (next < end && *next == '\n') {
            head_end = next + 1;
            break;
        }
        if (next + 1 < end && next[0] == '\r' && next[1] == '\n') {
            head_end = next + 2;
            break;
        }
    }
    if (!head_end) return SL_HTTP_PARSE_NEED_MORE;

    const char *eol;
    const char *next = line_end(p, head_end, &eol);
    if (parse_request_line(p, eol, req) < 0) return SL_HTTP_PARSE_ERROR;
    bool conn_close = false, conn_keep = false;
    for (p = next; p < head_end; p = next) {
        next = line_end(p, head_end, &eol);
        if (eol == p) break; /* the blank line */
        const char *name = p;
        while (p < eol && is_tchar((unsigned char)*p))
            p++;
        /* no name (also catches obs-fold, which starts with SP/HT), or space before the colon */
        if (p == name || p == eol || *p != ':') return SL_HTTP_PARSE_ERROR;
        size_t name_len = (size_t)(p - name);
        p++;
        for (const char *c = p; c < eol; c++)
            if (!is_field_byte((unsigned char)*c)) return SL_HTTP_PARSE_ERROR;
        while (p < eol && (*p == ' ' || *p == '\t'))
            p++;
        const char *ve = eol;
        while (ve > p && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vlen = (size_t)(ve - p);
        if (ieq(name, name_len, "content-length")) {
            uint64_t cl;
            if (parse_content_length(p, vlen, &cl) < 0) return SL_HTTP_PARSE_ERROR;
            if (req->has_content_length && cl != req->content_length) return SL_HTTP_PARSE_ERROR;
            req->has_content_length = true;
            req->content_length = cl;
        } else if (ieq(name, name_len, "transfer-encoding")) {
            req->has_transfer_encoding = true;
        } else if (ieq(name, name_len, "connection")) {
            parse_connection(p, vlen, &conn_close, &conn_keep);
        }
    }
    /* Both framings at once is the request-smuggling shape; RFC 9112 6.1 allows rejecting it. */
    if (req->has_transfer_encoding && req->has_content_length) return SL_HTTP_PARSE_ERROR;
    req->keep_alive = !conn_close && (req->minor_version == 1 || conn_keep);
    req->head_len = (size_t)(head_end - buf);
    return SL_HTTP_PARSE_COMPLETE;
}

/* ---- server ---- */

#define MAX_ROUTES 16
#define RESP_KEEP (64 * 1024) /* response buffer capacity kept between requests */
#define ACCEPT_BATCH 32       /* accepts per wakeup, so a connect storm cannot starve the loop */
#define ACCEPT_PAUSE_MS 100   /* after EMFILE and friends */

struct route {
    char *path;
    sl_http_handler handler;
    void *ctx;
};

struct conn {
    struct sl_http_server *srv;
    struct conn *prev, *next;
    struct sl_io io;
    struct sl_timer idle;
    size_t in_len;
    uint64_t discard; /* request body bytes still to drop */
    bool eof;         /* the peer shut down its sending side */
    bool writing;     /* a response is (partly) unsent; reading is suspended meanwhile */
    bool close_after; /* close once the response is written */
    char out_head[512];
    size_t out_head_len, out_head_off;
    const char *out_body;
    size_t out_body_len, out_body_off;
    struct sl_http_response resp;
    char in[]; /* limits.max_head bytes */
};

struct sl_http_server {
    struct sl_loop *loop;
    struct sl_http_limits lim;
    struct sl_io lio;
    struct sl_timer accept_pause;
    uint16_t port;
    struct route routes[MAX_ROUTES];
    size_t n_routes;
    struct conn *conns;
    size_t held; /* sum of response buffer capacities */
    struct sl_http_stats stats;
};

struct sl_http_server *sl_http_new(struct sl_loop *loop, const struct sl_http_limits *limits)
{
    struct sl_http_server *srv = calloc(1, sizeof *srv);
    if (!srv) return NULL;
    srv->loop = loop;
    if (limits) srv->lim = *limits;
    if (!srv->lim.max_conns) srv->lim.max_conns = 64;
    if (!srv->lim.max_head) srv->lim.max_head = 8192;
    if (!srv->lim.max_body) srv->lim.max_body = 65536;
    if (!srv->lim.max_response) srv->lim.max_response = 4u << 20;
    if (!srv->lim.max_response_total) srv->lim.max_response_total = 8u << 20;
    if (!srv->lim.idle_timeout_ms) srv->lim.idle_timeout_ms = 30000;
    srv->lio.fd = -1;
    return srv;
}

static void conn_close(struct conn *c)
{
    struct sl_http_server *srv = c->srv;
    sl_loop_io_set(srv->loop, &c->io, 0);
    sl_timer_stop(srv->loop, &c->idle);
    close(c->io.fd);
    srv->held -= c->resp.body.cap;
    sl_buf_free(&c->resp.body);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    srv->stats.conns--;
    free(c);
}

void sl_http_free(struct sl_http_server *srv)
{
    if (!srv) return;
    while (srv->conns)
        conn_close(srv->conns);
    if (srv->lio.fd >= 0) {
        sl_loop_io_set(srv->loop, &srv->lio, 0);
        close(srv->lio.fd);
    }
    sl_timer_stop(srv->loop, &srv->accept_pause);
    for (size_t i = 0; i < srv->n_routes; i++)
        free(srv->routes[i].path);
    free(srv);
}

int sl_http_route(struct sl_http_server *srv, const char *path, sl_http_handler handler, void *ctx)
{
    if (path[0] != '/') return -1;
    for (size_t i = 0; i < srv->n_routes; i++) {
        if (strcmp(srv->routes[i].path, path) == 0) {
            srv->routes[i].handler = handler;
            srv->routes[i].ctx = ctx;
            return 0;
        }
    }
    if (srv->n_routes == MAX_ROUTES) return -1;
    char *p = strdup(path);
    if (!p) return -1;
    srv->routes[srv->n_routes++] = (struct route){p, handler, ctx};
    return 0;
}

uint16_t sl_http_port(const struct sl_http_server *srv)
{
    return srv->port;
}

const struct sl_http_stats *sl_http_stats(const struct sl_http_server *srv)
{
    return &srv->stats;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

/* Queues status line + headers, and the body unless head_only. */
static void start_response(struct conn *c, int status, const char *ctype, const char *body,
                           size_t body_len, bool head_only, const char *extra)
{
    int n = snprintf(c->out_head, sizeof c->out_head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: %s\r\n%s\r\n",
                     status, reason_phrase(status), ctype, body_len,
                     c->close_after ? "close" : "keep-alive", extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof c->out_head) {
        /* only a handler's absurdly long content type gets here */
        c->close_after = true;
        static const char fallback[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: "
                                       "0\r\nConnection: close\r\n\r\n";
        memcpy(c->out_head, fallback, sizeof fallback - 1);
        n = (int)(sizeof fallback - 1);
        body_len = 0;
    }
    c->out_head_len = (size_t)n;
    c->out_head_off = 0;
    c->out_body = head_only ? NULL : body;
    c->out_body_len = head_only ? 0 : body_len;
    c->out_body_off = 0;
    c->writing = true;
    c->srv->stats.requests++;
}

/* A response the server makes itself; close says whether the connection is unusable after it. */
static void server_response(struct conn *c, int status, bool close, bool head_only)
{
    static const char *const bodies[][2] = {
        {"400", "Bad Request\n"},
        {"404", "Not Found\n"},
        {"405", "Method Not Allowed\n"},
        {"413", "Request body too large\n"},
        {"431", "Request head too large\n"},
        {"501", "Transfer-Encoding is not supported\n"},
        {"503", "Response too large\n"},
    };
    char code[4];
    snprintf(code, sizeof code, "%d", status);
    const char *body = "";
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        if (strcmp(bodies[i][0], code) == 0) body = bodies[i][1];
    if (close) c->close_after = true;
    c->srv->stats.errors++;
    start_response(c, status, "text/plain; charset=utf-8", body, strlen(body), head_only,
                   status == 405 ? "Allow: GET, HEAD\r\n" : NULL);
}

static const struct route *find_route(const struct sl_http_server *srv,
                                      const struct sl_http_request *req)
{
    for (size_t i = 0; i < srv->n_routes; i++) {
        const char *p = srv->routes[i].path;
        if (strlen(p) == req->path_len && memcmp(p, req->path, req->path_len) == 0)
            return &srv->routes[i];
    }
    return NULL;
}

static void call_handler(struct conn *c, const struct route *r, const struct sl_http_request *req,
                         bool head_only)
{
    struct sl_http_server *srv = c->srv;
    struct sl_http_response *resp = &c->resp;
    size_t others = srv->held - resp->body.cap;
    size_t room = srv->lim.max_response_total > others ? srv->lim.max_response_total - others : 0;
    size_t old_cap = resp->body.cap;
    sl_buf_reset(&resp->body);
    resp->body.max = room < srv->lim.max_response ? room : srv->lim.max_response;
    resp->status = 200;
    resp->content_type = "text/plain; charset=utf-8";
    resp->static_body = NULL;
    resp->static_len = 0;
    r->handler(req, resp, r->ctx);
    srv->held = srv->held - old_cap + resp->body.cap;
    if (resp->body.failed) {
        SL_WARN("http", "response_too_large", "%.*s: response exceeds %zu bytes, answered 503",
                (int)req->path_len, req->path, resp->body.max);
        server_response(c, 503, false, head_only);
        return;
    }
    const char *body = resp->static_body ? resp->static_body : resp->body.data;
    size_t len = resp->static_body ? resp->static_len : resp->body.len;
    start_response(c, resp->status, resp->content_type ? resp->content_type : "text/plain",
                   body ? body : "", len, head_only, NULL);
}

static void dispatch(struct conn *c, const struct sl_http_request *req)
{
    bool get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
    bool head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    if (!req->keep_alive || c->eof) c->close_after = true;
    const struct route *r = find_route(c->srv, req);
    if (!r)
        server_response(c, 404, false, head);
    else if (!get && !head)
        server_response(c, 405, false, false);
    else
        call_handler(c, r, req, head);
}

static void consume(struct conn *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

/* Starts the response to the next buffered request, if there is one. Returns false when more
 * input is needed. */
static bool next_request(struct conn *c)
{
    if (c->discard) {
        size_t n = c->in_len < c->discard ? c->in_len : (size_t)c->discard;
        consume(c, n);
        c->discard -= n;
        if (c->discard) return false;
    }
    struct sl_http_request req;
    enum sl_http_parse_rc rc = sl_http_parse_head(c->in, c->in_len, &req);
    if (rc == SL_HTTP_PARSE_NEED_MORE) {
        if (c->in_len < c->srv->lim.max_head) return false;
        server_response(c, 431, true, false);
        return true;
    }
    if (rc == SL_HTTP_PARSE_ERROR) {
        server_response(c, 400, true, false);
        return true;
    }
    if (req.has_transfer_encoding) {
        server_response(c, 501, true, false);
        return true;
    }
    if (req.content_length > c->srv->lim.max_body) {
        server_response(c, 413, true, false);
        return true;
    }
    dispatch(c, &req); /* req points into c->in: respond before consuming */
    consume(c, req.head_len);
    c->discard = req.content_length;
    return true;
}

enum flush_rc { FLUSH_DONE, FLUSH_AGAIN, FLUSH_ERROR };

static enum flush_rc flush_out(struct conn *c)
{
    for (;;) {
        struct iovec iov[2];
        int n = 0;
        if (c->out_head_off < c->out_head_len)
            iov[n++] =
                (struct iovec){c->out_head + c->out_head_off, c->out_head_len - c->out_head_off};
        if (c->out_body_off < c->out_body_len)
            iov[n++] = (struct iovec){(char *)c->out_body + c->out_body_off,
                                      c->out_body_len - c->out_body_off};
        if (n == 0) return FLUSH_DONE;
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(c->io.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? FLUSH_AGAIN : FLUSH_ERROR;
        }
        size_t left = (size_t)w;
        size_t h = c->out_head_len - c->out_head_off;
        size_t step = left < h ? left : h;
        c->out_head_off += step;
        c->out_body_off += left - step;
        sl_timer_start(c->srv->loop, &c->idle, c->srv->lim.idle_timeout_ms);
    }
}

static void response_done(struct conn *c)
{
    c->writing = false;
    struct sl_buf *b = &c->resp.body;
    if (b->cap > RESP_KEEP) {
        c->srv->held -= b->cap;
        sl_buf_free(b);
    }
    sl_timer_start(c->srv->loop, &c->idle, c->srv->lim.idle_timeout_ms);
}

/* Writes what is pending, then serves buffered (pipelined) requests until input runs out or the
 * socket is full. */
static void conn_drive(struct conn *c)
{
    for (;;) {
        if (c->writing) {
            enum flush_rc rc = flush_out(c);
            if (rc == FLUSH_ERROR) {
                conn_close(c);
                return;
            }
            if (rc == FLUSH_AGAIN) {
                if (sl_loop_io_set(c->srv->loop, &c->io, EPOLLOUT) < 0) conn_close(c);
                return;
            }
            if (c->close_after) {
                conn_close(c);
                return;
            }
            response_done(c);
        }
        if (!next_request(c)) break;
    }
    if (c->eof) {
        conn_close(c); /* nothing complete is left and nothing more will come */
        return;
    }
    if (sl_loop_io_set(c->srv->loop, &c->io, EPOLLIN) < 0) conn_close(c);
}

static void conn_io(struct sl_io *io, uint32_t events)
{
    struct conn *c = io->arg;
    if (!c->writing && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        size_t room = c->srv->lim.max_head - c->in_len;
        ssize_t n = room ? read(io->fd, c->in + c->in_len, room) : 0;
        if (n > 0) {
            c->in_len += (size_t)n;
        } else if (n == 0 && room) {
            c->eof = true;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_close(c);
            return;
        }
    }
    conn_drive(c);
}

static void conn_idle(struct sl_timer *t)
{
    conn_close(t->arg);
}

static void reject(struct sl_http_server *srv, int fd)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 17\r\nConnection: close\r\n\r\n"
                               "Too many clients\n";
    /* best effort: a fresh socket's send buffer is empty, so this does not block or split */
    if (send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* the client learns from the close alone */
    }
    close(fd);
    srv->stats.rejected++;
    SL_WARN("http", "too_many_connections", "status server: %zu connections open, refused one",
            srv->lim.max_conns);
}

static void accept_resume(struct sl_timer *t)
{
    struct sl_http_server *srv = t->arg;
    sl_loop_io_set(srv->loop, &srv->lio, EPOLLIN);
}

static void accept_conns(struct sl_io *io, uint32_t events)
{
    (void)events;
    struct sl_http_server *srv = io->arg;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            if (errno == ECONNABORTED || errno == EPROTO) continue;
            /* EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connection stays in the backlog and
             * would wake us in a busy loop; stop listening for a moment instead. */
            SL_WARN("http", "accept", "status server: accept: %s", strerror(errno));
            sl_loop_io_set(srv->loop, &srv->lio, 0);
            sl_timer_start(srv->loop, &srv->accept_pause, ACCEPT_PAUSE_MS);
            return;
        }
        if (srv->stats.conns >= srv->lim.max_conns) {
            reject(srv, fd);
            continue;
        }
        struct conn *c = calloc(1, sizeof *c + srv->lim.max_head);
        if (!c) {
            reject(srv, fd);
            continue;
        }
        c->srv = srv;
        c->io = (struct sl_io){.fd = fd, .cb = conn_io, .arg = c};
        c->idle = (struct sl_timer){.cb = conn_idle, .arg = c};
        sl_buf_init(&c->resp.body, 0);
        if (sl_loop_io_set(srv->loop, &c->io, EPOLLIN) < 0) {
            close(fd);
            free(c);
            srv->stats.rejected++;
            continue;
        }
        c->next = srv->conns;
        if (srv->conns) srv->conns->prev = c;
        srv->conns = c;
        srv->stats.conns++;
        srv->stats.accepted++;
        sl_timer_start(srv->loop, &c->idle, srv->lim.idle_timeout_ms);
    }
}

/* Splits "host:port", "[v6]:port" or ":port" into host (NUL-terminated) and port. */
static int split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon;
    const char *h = addr;
    size_t hl;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':') return -1;
        h = addr + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon) return -1;
        hl = (size_t)(colon - addr);
        if (memchr(addr, ':', hl)) return -1; /* bare IPv6 needs brackets */
    }
    const char *p = colon + 1;
    size_t pl = strlen(p);
    if (pl == 0 || pl >= portlen || hl >= hostlen) return -1;
    unsigned long v = 0;
    for (size_t i = 0; i < pl; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (unsigned long)(p[i] - '0');
        if (v > 65535) return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (hl == 0) snprintf(host, hostlen, "127.0.0.1");
    memcpy(port, p, pl + 1);
    return 0;
}

static int listen_on(const struct addrinfo *ai, char *err, size_t errlen)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    /* a restart must not wait out TIME_WAIT of the previous process's connections */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int sl_http_listen(struct sl_http_server *srv, const char *addr, char *err, size_t errlen)
{
    char host[256], port[8];
    if (srv->lio.fd >= 0) {
        snprintf(err, errlen, "already listening");
        return -1;
    }
    if (split_addr(addr, host, sizeof host, port, sizeof port) < 0) {
        snprintf(err, errlen, "%s: expected HOST:PORT or [IPV6]:PORT", addr);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", addr, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    char why[128] = "no address";
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = listen_on(ai, why, sizeof why);
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", addr, why);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    srv->lio = (struct sl_io){.fd = fd, .cb = accept_conns, .arg = srv};
    srv->accept_pause = (struct sl_timer){.cb = accept_resume, .arg = srv};
    rc = sl_loop_io_set(srv->loop, &srv->lio, EPOLLIN);
    if (rc < 0) {
        snprintf(err, errlen, "%s: epoll: %s", addr, strerror(-rc));
        close(fd);
        srv->lio.fd = -1;
        return -1;
    }
    return 0;
}

void sl_http_static_handler(const struct sl_http_request *req, struct sl_http_response *resp,
                            void *ctx)
{
    (void)req;
    const struct sl_http_static *s = ctx;
    resp->content_type = s->content_type;
    resp->static_body = s->data;
    resp->static_len = s->len;
}

void sl_http_metrics_handler(const struct sl_http_request *req, struct sl_http_response *resp,
                             void *ctx)
{
    (void)req;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    sl_metrics_render_prometheus(ctx, &resp->body);
}
