/* Forward output: a Fluentd Forward protocol v1 client (the spec's handshake and ack sections).
 *
 * Records are converted from JSON to msgpack maps (sl_json_to_mp) and appended as
 * [EventTime, record] entries to an open PackedForward frame for their tag: one open batch per
 * tag, since a request carries one tag. A batch is sealed when the next entry would push it over
 * batch_max_bytes or after batch_max_wait; sealing writes the options (size, chunk, compressed)
 * and fixes the frame for good, so every resend is the same bytes with the same chunk id.
 *
 * Batch life:  OPEN --seal--> READY --taken by a connection--> SENT --ack--> (records delivered)
 *                                             ^                   |
 *                                             +-- backoff <-------+  timeout, EOF, wrong ack,
 *                                                                   error: the batch stays with
 *                                                                   its connection, which drops
 *                                                                   its socket and reconnects
 *
 * Connections (concurrency of them) each carry at most one batch at a time, like fluentd's
 * out_forward: the ack of a request is the only answer on the socket, so a socket that failed
 * (timeout, EOF, mismatch) is never reused - a late ack would be taken for the next request's.
 * States: IDLE -> CONNECTING -> (HELO -> PONG when shared_key is set) -> READY -> SENDING ->
 * WAIT_ACK -> READY ...; any failure -> BACKOFF -> IDLE -> CONNECTING. A failed connect or
 * handshake moves the output to the next server; an ack failure first reconnects to the same one.
 * A server that accepts requests but never acks them would keep every batch for ever, so
 * max_ack_timeouts ack timeouts in a row (from any of its connections) mark it unhealthy for
 * recover_wait: the failover list moves on, weighted mode leaves it out of the round-robin, and
 * the batch that timed out is resent elsewhere (same chunk; the stuck server may have kept it,
 * which is at-least-once). With every server unhealthy, batches are still resent, never dropped.
 *
 * TLS (tls: true): after the TCP connect a non-blocking SSL_connect runs on the loop (SNI and the
 * verified name are the server's host; an IP literal is matched against IP SANs), still within
 * connect_timeout; a failure counts as a handshake retry and moves to the next server. All reads
 * and writes then go through SSL_read / SSL_write; a call that needs the other direction sets the
 * epoll interest to it (ssl_want).
 * With `weights`, each server has its own `concurrency` connections and batches are spread by
 * smooth weighted round-robin (nginx's) over the servers that are up and weighted; weight-0
 * servers are standbys, used only while no weighted server is up. The split is strict: the next
 * batch waits for a free connection of the server whose turn it is. A failed connect or handshake
 * marks the server down and hands the connection's batch back to the front of the ready queue
 * (another server sends it, same bytes and chunk id); the down server's connections keep probing
 * it with backoff, and it is up again once a connection to it is ready.
 *
 * Fates: every record of an acked batch is delivered (sl_ack), so the Kafka input stores its
 * offset only then. Retries go on forever with capped exponential backoff; the budget makes the
 * inputs wait meanwhile. Records are dead-lettered only before they are batched: JSON that cannot
 * be converted, or a record that alone exceeds a request. Without require_ack a batch counts as
 * delivered once written to the socket: at-most-once at the receiver, like fluentd's default.
 *
 * Memory: frames grow in steps charged to the budget and are trimmed to their size when sealed;
 * the conversion scratch buffer and the ack-ref arrays are charged too. Reads are bounded by a
 * fixed per-connection buffer (acks and handshake messages are a few hundred bytes). */
#include "outputs/forward.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec/forward.h"
#include "codec/json_mp.h"
#include "codec/msgpack.h"
#include "core/log.h"
#include "core/tls.h"

/* Bytes reserved for the option map {"size": N, "compressed": "gzip", "chunk": "<24>"} and the
 * shrinking bin header, when deciding whether an entry still fits a frame. */
#define OPTS_RESERVE 80
/* An ack is ~30 bytes, a HELO ~65, a PONG ~150 plus the server's host name. */
#define RBUF_SIZE 2048
#define FRAME_MIN_CAP (64u * 1024)
#define SCRATCH_KEEP (256u * 1024)

enum retry_reason { RR_CONNECT, RR_HANDSHAKE, RR_TIMEOUT, RR_MISMATCH, RR_EOF, RR_IO, RR_COUNT };
static const char *retry_names[RR_COUNT] = {"connect",  "handshake", "timeout",
                                            "mismatch", "eof",       "io"};

struct fwd_out;

struct fbatch {
    struct fwd_out *o;
    char *tag;
    size_t tag_len;
    struct sl_mp_wbuf w; /* the frame */
    struct sl_fwd_packer pk;
    struct sl_ackref *acks;
    size_t n, cap_acks;
    uint64_t charged; /* bytes charged to the budget for this batch */
    char chunk[25];
    uint32_t attempts;
    struct sl_timer linger;
    struct fbatch *next;                /* open list or ready queue */
    struct fbatch *all_prev, *all_next; /* every batch, for teardown */
};

enum cstate {
    CS_IDLE,
    CS_CONNECTING,
    CS_TLS,
    CS_HELO,
    CS_PONG,
    CS_READY,
    CS_SENDING,
    CS_WAIT_ACK,
    CS_BACKOFF
};

struct fconn {
    struct fwd_out *o;
    unsigned idx;
    enum cstate st;
    struct sl_io io; /* fd -1 without a socket */
    SSL *ssl;
    uint32_t ssl_want; /* the readiness the last TLS call waits for (0: none) */
    struct sl_timer timer;
    struct fbatch *b;
    size_t server;
    size_t wpos;
    uint8_t ping[1024];
    size_t ping_len, ping_pos;
    uint8_t nonce[64];
    size_t nonce_len;
    char salt[33];
    uint8_t rbuf[RBUF_SIZE];
    size_t rlen;
    uint32_t fails; /* consecutive failures: the backoff exponent */
    uint64_t sent_ms;
};

struct server {
    char host[256];
    char port[8];
    char addr[272]; /* host:port, for logs and metrics */
    uint32_t weight;
    bool down;                /* weighted mode: the last connect or handshake failed */
    int64_t cw;               /* smooth weighted round-robin: current weight */
    uint64_t sends;           /* requests sent to it */
    uint32_t ack_timeouts;    /* in a row, since its last ack */
    uint64_t unhealthy_until; /* ms; left out until then (0: healthy) */
    uint64_t failovers;       /* times it was marked unhealthy */
};

struct fwd_out {
    struct sl_pipeline *p;
    const struct sl_fwd_output_cfg *fc;
    const char *name;
    struct server *servers;
    size_t n_servers, cur_server;
    char hostname[256];
    struct fconn *conns;
    unsigned n_conns;
    struct fbatch *open;
    struct fbatch *ready_head, *ready_tail;
    struct fbatch *all;
    uint64_t recs_pending;
    size_t eff_max;
    struct sl_mp_wbuf scr; /* one record's msgpack map, reused */
    uint64_t scr_charged;
    struct sl_output_stats st;
    uint64_t retries[RR_COUNT];
    uint64_t connects, handshakes;
    SSL_CTX *tls;
    bool weighted; /* weights set: connections pinned per server, weighted round-robin */
    bool pumping;
};

/* ---------------------------------------------------------------- buffers */

/* Grows a wbuf by doubling, charging the budget for the growth (ctx: the uint64_t that records
 * what this buffer has been charged). */
static int grow_charged(struct sl_mp_wbuf *w, size_t need)
{
    uint64_t *charged = w->ctx;
    size_t ncap = w->cap ? w->cap : 4096;
    while (ncap < need)
        ncap *= 2;
    uint8_t *nd = realloc(w->data, ncap);
    if (!nd) return -1;
    w->data = nd;
    *charged += ncap - w->cap;
    w->cap = ncap;
    return 0;
}

/* The budget is charged after each write by the difference in charged bytes: grow callbacks
 * have no pipeline pointer, and charging never fails, so settling afterwards is equivalent. */
static void settle(struct fwd_out *o, uint64_t *charged, uint64_t *accounted)
{
    if (*charged > *accounted)
        sl_budget_charge(&o->p->budget, *charged - *accounted);
    else if (*accounted > *charged)
        sl_budget_release(&o->p->budget, *accounted - *charged);
    *accounted = *charged;
}

/* ---------------------------------------------------------------- batches */

static struct fbatch *batch_new(struct fwd_out *o, const char *tag, size_t tag_len)
{
    struct fbatch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->o = o;
    b->tag = malloc(tag_len + 1);
    b->cap_acks = 256;
    b->acks = malloc(b->cap_acks * sizeof *b->acks);
    size_t cap = FRAME_MIN_CAP < o->eff_max ? FRAME_MIN_CAP : o->eff_max;
    uint8_t *data = malloc(cap);
    if (!b->tag || !b->acks || !data) {
        free(b->tag);
        free(b->acks);
        free(data);
        free(b);
        return NULL;
    }
    memcpy(b->tag, tag, tag_len);
    b->tag[tag_len] = '\0';
    b->tag_len = tag_len;
    sl_mp_wbuf_init(&b->w, data, cap);
    b->w.grow = grow_charged;
    b->w.ctx = &b->charged;
    b->charged = sizeof *b + tag_len + 1 + b->cap_acks * sizeof *b->acks + cap;
    sl_budget_charge(&o->p->budget, b->charged);
    b->linger.arg = b;
    b->all_next = o->all;
    if (o->all) o->all->all_prev = b;
    o->all = b;
    sl_fwd_packed_begin(&b->pk, &b->w, b->tag, tag_len);
    return b;
}

static void batch_free(struct fbatch *b)
{
    struct fwd_out *o = b->o;
    sl_budget_release(&o->p->budget, b->charged);
    sl_timer_stop(o->p->loop, &b->linger);
    if (b->all_prev)
        b->all_prev->all_next = b->all_next;
    else
        o->all = b->all_next;
    if (b->all_next) b->all_next->all_prev = b->all_prev;
    free(b->w.data);
    free(b->acks);
    free(b->tag);
    free(b);
}

static void pump(struct fwd_out *o);

static void ready_push(struct fwd_out *o, struct fbatch *b)
{
    b->next = NULL;
    if (o->ready_tail)
        o->ready_tail->next = b;
    else
        o->ready_head = b;
    o->ready_tail = b;
}

static void ready_push_front(struct fwd_out *o, struct fbatch *b)
{
    b->next = o->ready_head;
    o->ready_head = b;
    if (!o->ready_tail) o->ready_tail = b;
}

static struct fbatch *ready_pop(struct fwd_out *o)
{
    struct fbatch *b = o->ready_head;
    if (!b) return NULL;
    o->ready_head = b->next;
    if (!o->ready_head) o->ready_tail = NULL;
    b->next = NULL;
    return b;
}

/* Finishes the frame (options, optional gzip), trims it, and queues it. */
static void seal(struct fwd_out *o, struct fbatch *b)
{
    for (struct fbatch **pp = &o->open; *pp; pp = &(*pp)->next) {
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    }
    sl_timer_stop(o->p->loop, &b->linger);
    if (b->n == 0) {
        batch_free(b);
        return;
    }
    const char *chunk = NULL;
    if (o->fc->require_ack) {
        /* 16 random bytes, as fluentd's unique_id: the chunk only has to be unique among this
         * client's requests awaiting an ack, but random ids keep it so across restarts too. */
        uint8_t id[16];
        if (getrandom(id, sizeof id, 0) != (ssize_t)sizeof id) {
            for (size_t i = 0; i < sizeof id; i++)
                id[i] = (uint8_t)rand();
        }
        sl_fwd_chunk_id(id, b->chunk);
        chunk = b->chunk;
    }
    int level = o->fc->compression == SL_COMPRESSION_GZIP ? o->fc->gzip_level : 0;
    uint64_t before = b->charged;
    if (sl_fwd_packed_end(&b->pk, chunk, chunk ? 24 : 0, level) != 0) {
        SL_ERROR(o->name, "oom", "cannot finish a request of %zu records (out of memory)", b->n);
        abort();
    }
    /* A frame grown by doubling (and by gzip's output area) is trimmed to what it holds. */
    if (b->w.len < b->w.cap) {
        uint8_t *nd = realloc(b->w.data, b->w.len);
        if (nd) {
            b->w.data = nd;
            b->charged -= b->w.cap - b->w.len;
            b->w.cap = b->w.len;
        }
    }
    settle(o, &b->charged, &before);
    ready_push(o, b);
}

static void linger_cb(struct sl_timer *t)
{
    struct fbatch *b = t->arg;
    struct fwd_out *o = b->o;
    seal(o, b);
    pump(o);
}

/* ---------------------------------------------------------------- connections */

static void conn_start_send(struct fconn *c);
static void conn_connect(struct fconn *c);

static void conn_close_socket(struct fconn *c)
{
    if (c->io.fd < 0) return;
    sl_loop_io_set(c->o->p->loop, &c->io, 0);
    if (c->ssl) {
        sl_tls_close(c->ssl);
        c->ssl = NULL;
        c->ssl_want = 0;
        sl_budget_release(&c->o->p->budget, SL_TLS_CONN_COST);
    }
    close(c->io.fd);
    c->io.fd = -1;
    c->rlen = 0;
}

static uint64_t backoff_ms(const struct fwd_out *o, uint32_t attempt)
{
    uint64_t d = o->fc->retry_base_ms;
    for (uint32_t i = 1; i < attempt && d < o->fc->retry_max_ms; i++)
        d *= 2;
    if (d > o->fc->retry_max_ms) d = o->fc->retry_max_ms;
    /* Jitter in [d/2, d] so connections and processes do not reconnect in step. */
    return d / 2 + (uint64_t)rand() % (d / 2 + 1);
}

static bool unhealthy(const struct server *s, uint64_t now)
{
    return s->unhealthy_until > now;
}

/* Weighted mode: whether some server is neither down nor unhealthy. Until none is, the
 * round-robin passes unhealthy servers by; then they get batches again, so nothing waits out
 * recover_wait doing nothing. */
static bool any_healthy(const struct fwd_out *o, uint64_t now)
{
    for (size_t i = 0; i < o->n_servers; i++)
        if (!o->servers[i].down && !unhealthy(&o->servers[i], now)) return true;
    return false;
}

/* Failover list: the first healthy server after `from` (wrapping around), or the next one
 * when none is healthy. */
static size_t next_server(const struct fwd_out *o, size_t from)
{
    uint64_t now = sl_now_ms();
    for (size_t k = 1; k <= o->n_servers; k++) {
        size_t i = (from + k) % o->n_servers;
        if (i != from && !unhealthy(&o->servers[i], now)) return i;
    }
    return (from + 1) % o->n_servers;
}

/* Counts an ack timeout on c's server; at max_ack_timeouts in a row the server is marked
 * unhealthy for recover_wait, and the failover list moves past it. Returns whether the server
 * is unhealthy now (then c's batch goes elsewhere). */
static bool ack_timed_out(struct fwd_out *o, struct fconn *c)
{
    struct server *s = &o->servers[c->server];
    uint64_t now = sl_now_ms();
    if (unhealthy(s, now)) return true; /* another connection's timeout marked it already */
    if (o->fc->max_ack_timeouts == 0 || ++s->ack_timeouts < o->fc->max_ack_timeouts) return false;
    s->ack_timeouts = 0;
    s->unhealthy_until = now + o->fc->recover_wait_ms;
    s->failovers++;
    const struct server *to = NULL;
    if (o->weighted) {
        for (size_t i = 0; i < o->n_servers && !to; i++)
            if (!o->servers[i].down && !unhealthy(&o->servers[i], now)) to = &o->servers[i];
    } else {
        if (o->cur_server == c->server) o->cur_server = next_server(o, c->server);
        if (!unhealthy(&o->servers[o->cur_server], now)) to = &o->servers[o->cur_server];
    }
    if (to)
        SL_WARN(o->name, "unhealthy",
                "%s: %u ack timeouts in a row (ack_timeout %llu ms): marked unhealthy for %llu "
                "ms; its requests go to %s%s",
                s->addr, o->fc->max_ack_timeouts, (unsigned long long)o->fc->ack_timeout_ms,
                (unsigned long long)o->fc->recover_wait_ms,
                o->weighted ? "the other servers, e.g. " : "", to->addr);
    else
        SL_WARN(o->name, "unhealthy",
                "%s: %u ack timeouts in a row (ack_timeout %llu ms): marked unhealthy for %llu "
                "ms; every server is unhealthy, so requests are still resent%s%s (nothing is "
                "dropped)",
                s->addr, o->fc->max_ack_timeouts, (unsigned long long)o->fc->ack_timeout_ms,
                (unsigned long long)o->fc->recover_wait_ms, o->weighted ? "" : " to ",
                o->weighted ? "" : o->servers[o->cur_server].addr);
    return true;
}

static void conn_fail(struct fconn *c, enum retry_reason why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Drops the socket (never reused after a failure: a late ack could match a later request),
 * counts the retry and schedules a reconnect; the batch stays with the connection and is resent
 * as the same bytes with the same chunk. */
static void conn_fail(struct fconn *c, enum retry_reason why, const char *fmt, ...)
{
    struct fwd_out *o = c->o;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const struct server *s = &o->servers[c->server];
    SL_WARN(o->name, retry_names[why], "%s:%s: %s; %s", s->host, s->port, msg,
            c->b ? "resending the request with the same chunk after a backoff"
                 : "reconnecting after a backoff");
    conn_close_socket(c);
    o->retries[why]++;
    struct fbatch *requeue = NULL;
    bool left = why == RR_TIMEOUT && ack_timed_out(o, c);
    if (o->weighted && (why == RR_CONNECT || why == RR_HANDSHAKE)) {
        /* The server is down: its batch goes to another one; this connection probes it. */
        o->servers[c->server].down = true;
        requeue = c->b;
        c->b = NULL;
    } else if (o->weighted && left) {
        requeue = c->b; /* the round-robin passes the unhealthy server by */
        c->b = NULL;
    } else if ((why == RR_CONNECT || why == RR_HANDSHAKE) && o->n_servers > 1 &&
               o->cur_server == c->server) {
        /* The server could not be reached or would not let us in: try the next one. An ack
         * failure says less about the server, so the same one is tried again first (until
         * max_ack_timeouts of them mark it unhealthy: ack_timed_out moved on then). */
        o->cur_server = next_server(o, c->server);
    }
    c->fails++;
    c->st = CS_BACKOFF;
    sl_timer_start(o->p->loop, &c->timer, backoff_ms(o, c->fails));
    if (requeue) {
        ready_push_front(o, requeue);
        pump(o);
    }
}

static void conn_set_events(struct fconn *c, uint32_t ev)
{
    if (c->ssl && c->ssl_want && ev) ev = c->ssl_want; /* TLS needs the other direction */
    int rc = sl_loop_io_set(c->o->p->loop, &c->io, ev);
    if (rc != 0 && ev) conn_fail(c, RR_IO, "cannot watch the socket: %s", strerror(-rc));
}

/* recv or SSL_read: >0 bytes, 0 at the end of the stream, -1 with errno (EAGAIN: wait; then
 * ssl_want tells conn_set_events what for; EPROTO: TLS error, text in *tls_err). */
static ssize_t c_recv(struct fconn *c, void *buf, size_t n, char *tls_err, size_t errlen)
{
    if (!c->ssl) return recv(c->io.fd, buf, n, 0);
    int st;
    ssize_t r = sl_tls_read(c->ssl, buf, n, &st, tls_err, errlen);
    c->ssl_want = 0;
    if (r > 0) return r;
    if (st == SL_TLS_EOF) return 0;
    if (st == SL_TLS_WANT_READ || st == SL_TLS_WANT_WRITE) {
        c->ssl_want = st == SL_TLS_WANT_READ ? EPOLLIN : EPOLLOUT;
        errno = EAGAIN;
        return -1;
    }
    errno = EPROTO;
    return -1;
}

static ssize_t c_send(struct fconn *c, const void *buf, size_t n, char *tls_err, size_t errlen)
{
    if (!c->ssl) return send(c->io.fd, buf, n, MSG_NOSIGNAL);
    int st;
    ssize_t r = sl_tls_write(c->ssl, buf, n, &st, tls_err, errlen);
    c->ssl_want = 0;
    if (r > 0) return r;
    if (st == SL_TLS_WANT_READ || st == SL_TLS_WANT_WRITE) {
        c->ssl_want = st == SL_TLS_WANT_READ ? EPOLLIN : EPOLLOUT;
        errno = EAGAIN;
        return -1;
    }
    errno = st == SL_TLS_EOF ? EPIPE : EPROTO;
    return -1;
}

/* strerror, or the TLS reason for EPROTO from c_recv/c_send. */
static const char *io_err(int e, const char *tls_err)
{
    return e == EPROTO && tls_err[0] ? tls_err : strerror(e);
}

static void deliver(struct fconn *c)
{
    struct fwd_out *o = c->o;
    struct fbatch *b = c->b;
    c->b = NULL;
    c->fails = 0;
    o->servers[c->server].ack_timeouts = 0;
    uint64_t took = sl_now_ms() - c->sent_ms;
    o->st.latency_ms_sum += took;
    if (o->st.latency) sl_histogram_observe(o->st.latency, (double)took / 1000.0);
    for (size_t i = 0; i < b->n; i++)
        sl_ack(&b->acks[i], SL_FATE_DELIVERED);
    o->st.delivered += b->n;
    o->recs_pending -= b->n;
    batch_free(b);
}

/* The connection is usable: send its batch, or take the next one. */
static void conn_ready(struct fconn *c)
{
    struct fwd_out *o = c->o;
    sl_timer_stop(o->p->loop, &c->timer);
    c->st = CS_READY;
    c->rlen = 0;
    if (o->weighted) {
        o->servers[c->server].down = false;
        if (c->b) {
            conn_start_send(c);
        } else {
            conn_set_events(c, EPOLLIN);
            pump(o); /* the round-robin decides whether this connection gets the next batch */
        }
        return;
    }
    if (c->server != o->cur_server && unhealthy(&o->servers[c->server], sl_now_ms())) {
        /* Still connected to a server the list has moved past: reconnect to the current one
         * rather than hand it another batch. */
        conn_close_socket(c);
        c->st = CS_IDLE;
        if (!c->b) c->b = ready_pop(o);
        if (c->b) conn_connect(c);
        return;
    }
    if (!c->b) c->b = ready_pop(o);
    if (c->b) {
        conn_start_send(c);
    } else {
        /* Idle keepalive: readable means the server closed it (or misbehaves). */
        conn_set_events(c, EPOLLIN);
    }
}

static void conn_write_frame(struct fconn *c)
{
    struct fbatch *b = c->b;
    char terr[320] = "";
    while (c->wpos < b->w.len) {
        ssize_t w = c_send(c, b->w.data + c->wpos, b->w.len - c->wpos, terr, sizeof terr);
        if (w > 0) {
            c->wpos += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_set_events(c, EPOLLOUT);
            return;
        } else {
            int e = errno;
            conn_fail(c, e == EPIPE || e == ECONNRESET ? RR_EOF : RR_IO,
                      "writing the request failed: %s", io_err(e, terr));
            return;
        }
    }
    if (c->o->fc->require_ack) {
        c->st = CS_WAIT_ACK;
        c->rlen = 0;
        conn_set_events(c, EPOLLIN);
        return;
    }
    /* Without acks a written request is all the certainty there is. */
    deliver(c);
    conn_ready(c);
}

static void conn_start_send(struct fconn *c)
{
    struct fwd_out *o = c->o;
    struct fbatch *b = c->b;
    c->st = CS_SENDING;
    c->wpos = 0;
    c->sent_ms = sl_now_ms();
    b->attempts++;
    o->servers[c->server].sends++;
    o->st.requests++;
    o->st.items_sent += b->n;
    o->st.bytes_sent += b->w.len;
    sl_timer_start(o->p->loop, &c->timer, o->fc->ack_timeout_ms);
    conn_write_frame(c);
}

static void conn_write_ping(struct fconn *c)
{
    char terr[320] = "";
    while (c->ping_pos < c->ping_len) {
        ssize_t w = c_send(c, c->ping + c->ping_pos, c->ping_len - c->ping_pos, terr, sizeof terr);
        if (w > 0) {
            c->ping_pos += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_set_events(c, EPOLLOUT);
            return;
        } else {
            conn_fail(c, RR_HANDSHAKE, "writing PING failed: %s", io_err(errno, terr));
            return;
        }
    }
    conn_set_events(c, EPOLLIN);
}

static void on_helo(struct fconn *c);

/* Transport ready (TCP, or TLS established): the Forward handshake, or straight to work. */
static void conn_transport_ready(struct fconn *c)
{
    struct fwd_out *o = c->o;
    if (o->fc->shared_key) {
        /* The server speaks first; connect_timeout still runs and covers the handshake. */
        c->st = CS_HELO;
        c->rlen = 0;
        if (c->ssl) {
            on_helo(c); /* it may be buffered in OpenSSL already (no epoll event then) */
            if (c->st != CS_HELO || c->io.fd < 0) return;
        }
        conn_set_events(c, EPOLLIN);
        return;
    }
    conn_ready(c);
}

static void conn_tls_step(struct fconn *c)
{
    struct fwd_out *o = c->o;
    char err[320];
    int r = sl_tls_handshake(c->ssl, err, sizeof err);
    if (r == SL_TLS_WANT_READ || r == SL_TLS_WANT_WRITE) {
        c->ssl_want = r == SL_TLS_WANT_READ ? EPOLLIN : EPOLLOUT;
        conn_set_events(c, c->ssl_want);
        return;
    }
    if (r == SL_TLS_EOF) {
        conn_fail(c, RR_HANDSHAKE, "the server closed the connection during the TLS handshake");
        return;
    }
    if (r != SL_TLS_OK) {
        conn_fail(c, RR_HANDSHAKE, "%s", err);
        return;
    }
    c->ssl_want = 0;
    SL_DEBUG(o->name, "connection %u: TLS established (%s, %s)", c->idx, SSL_get_version(c->ssl),
             SSL_get_cipher_name(c->ssl));
    conn_transport_ready(c);
}

static void conn_connected(struct fconn *c)
{
    struct fwd_out *o = c->o;
    int one = 1;
    /* A request is one write and the client then waits for its ack: Nagle would only delay. */
    setsockopt(c->io.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    o->connects++;
    SL_DEBUG(o->name, "connection %u: connected to %s:%s", c->idx, o->servers[c->server].host,
             o->servers[c->server].port);
    if (o->tls) {
        char err[320];
        c->ssl = sl_tls_client_new(o->tls, c->io.fd, o->servers[c->server].host, o->fc->tls_verify,
                                   err, sizeof err);
        if (!c->ssl) {
            conn_fail(c, RR_HANDSHAKE, "%s", err);
            return;
        }
        sl_budget_charge(&o->p->budget, SL_TLS_CONN_COST);
        c->st = CS_TLS; /* connect_timeout still runs and covers the TLS handshake */
        conn_tls_step(c);
        return;
    }
    conn_transport_ready(c);
}

static void conn_connect(struct fconn *c)
{
    struct fwd_out *o = c->o;
    if (!o->weighted) c->server = o->cur_server; /* weighted: pinned to its server */
    const struct server *s = &o->servers[c->server];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    /* Blocking resolution on the loop: fine for literal addresses and /etc/hosts names, which
     * is what log shippers are pointed at; a slow DNS server would stall the loop here. */
    int gai = getaddrinfo(s->host, s->port, &hints, &res);
    if (gai != 0 || !res) {
        c->st = CS_CONNECTING;
        conn_fail(c, RR_CONNECT, "cannot resolve: %s", gai_strerror(gai));
        return;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        c->st = CS_CONNECTING;
        conn_fail(c, RR_CONNECT, "socket: %s", strerror(errno));
        return;
    }
    c->io.fd = fd;
    c->io.added = false;
    c->rlen = 0;
    c->st = CS_CONNECTING;
    sl_timer_start(o->p->loop, &c->timer, o->fc->connect_timeout_ms);
    int rc = connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc == 0) {
        conn_connected(c);
    } else if (errno == EINPROGRESS) {
        conn_set_events(c, EPOLLOUT);
    } else {
        conn_fail(c, RR_CONNECT, "connect: %s", strerror(errno));
    }
}

/* Reads what is there into rbuf. Returns 1 when a complete msgpack object is at its start
 * (*n its length), 0 when more is needed, -1 after failing the connection. */
static int conn_read_obj(struct fconn *c, enum retry_reason why, size_t *n)
{
    for (;;) {
        if (c->rlen > 0) {
            const char *e = NULL;
            enum sl_mp_frame_status fs = sl_mp_frame_len(c->rbuf, c->rlen, RBUF_SIZE, n, &e);
            if (fs == SL_MP_FRAME_DONE) return 1;
            if (fs == SL_MP_FRAME_ERROR) {
                conn_fail(c, why == RR_EOF ? RR_MISMATCH : why, "unusable answer: %s",
                          e ? e : "malformed msgpack");
                return -1;
            }
        }
        if (c->rlen == RBUF_SIZE) {
            conn_fail(c, why == RR_EOF ? RR_MISMATCH : why, "answer larger than %d bytes",
                      RBUF_SIZE);
            return -1;
        }
        char terr[320] = "";
        ssize_t r = c_recv(c, c->rbuf + c->rlen, RBUF_SIZE - c->rlen, terr, sizeof terr);
        if (r > 0) {
            c->rlen += (size_t)r;
        } else if (r == 0) {
            conn_fail(c, why, "connection closed by the server%s",
                      c->rlen ? " inside an answer" : "");
            return -1;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (c->ssl) conn_set_events(c, EPOLLIN); /* or what TLS waits for (ssl_want) */
            return 0;
        } else {
            conn_fail(c, why == RR_EOF ? RR_IO : why, "read failed: %s", io_err(errno, terr));
            return -1;
        }
    }
}

static void on_helo(struct fconn *c)
{
    struct fwd_out *o = c->o;
    size_t n;
    if (conn_read_obj(c, RR_HANDSHAKE, &n) != 1) return;
    struct sl_fwd_helo h;
    char err[SL_FWD_ERRLEN];
    if (sl_fwd_parse_helo(c->rbuf, n, &h, err, sizeof err) != 0) {
        conn_fail(c, RR_HANDSHAKE, "bad HELO: %s", err);
        return;
    }
    if (n != c->rlen || h.nonce_len > sizeof c->nonce) {
        conn_fail(c, RR_HANDSHAKE, "unexpected data after HELO or oversized nonce");
        return;
    }
    memcpy(c->nonce, h.nonce, h.nonce_len);
    c->nonce_len = h.nonce_len;
    /* 32 hex characters, as fluentd's SecureRandom.hex(16): only its raw bytes are hashed. */
    uint8_t rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        conn_fail(c, RR_HANDSHAKE, "getrandom failed: %s", strerror(errno));
        return;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(c->salt + 2 * i, 3, "%02x", rnd[i]);
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, c->ping, sizeof c->ping);
    const char *key = o->fc->shared_key;
    const char *user = o->fc->username ? o->fc->username : "";
    const char *pw = o->fc->password ? o->fc->password : "";
    if (h.auth_len > 0 && !o->fc->username)
        SL_DEBUG(o->name,
                 "connection %u: the server asks for user authentication but no "
                 "username is configured; sending an empty one",
                 c->idx);
    if (sl_fwd_make_ping(&h, o->hostname, strlen(o->hostname), c->salt, 32, key, strlen(key), user,
                         strlen(user), pw, strlen(pw), &w) != 0 ||
        w.overflow) {
        conn_fail(c, RR_HANDSHAKE, "cannot build PING");
        return;
    }
    c->ping_len = w.len;
    c->ping_pos = 0;
    c->rlen = 0;
    c->st = CS_PONG;
    conn_write_ping(c);
}

static void on_pong(struct fconn *c)
{
    struct fwd_out *o = c->o;
    size_t n;
    if (conn_read_obj(c, RR_HANDSHAKE, &n) != 1) return;
    struct sl_fwd_pong pg;
    char err[SL_FWD_ERRLEN];
    const char *key = o->fc->shared_key;
    if (sl_fwd_parse_pong(c->rbuf, n, &pg, err, sizeof err) != 0 ||
        sl_fwd_verify_pong(&pg, c->salt, 32, c->nonce, c->nonce_len, key, strlen(key), err,
                           sizeof err) != 0) {
        conn_fail(c, RR_HANDSHAKE, "handshake refused: %s", err);
        return;
    }
    if (n != c->rlen) {
        conn_fail(c, RR_HANDSHAKE, "unexpected data after PONG");
        return;
    }
    o->handshakes++;
    conn_ready(c);
}

/* True if the msgpack object is {"ack": <str equal to chunk>} (other keys ignored). */
static bool ack_matches(const uint8_t *p, size_t n, const char *chunk)
{
    struct sl_mp_reader r;
    struct sl_mp_obj obj;
    sl_mp_reader_init(&r, p, n);
    if (sl_mp_read(&r, &obj) != 0 || obj.type != SL_MP_MAP) return false;
    bool ok = false;
    for (uint32_t i = 0; i < obj.n; i++) {
        struct sl_mp_obj k, v;
        if (sl_mp_read(&r, &k) != 0) return false;
        bool is_ack = k.type == SL_MP_STR && k.n == 3 && memcmp(k.p, "ack", 3) == 0;
        if (!is_ack) {
            if (k.type == SL_MP_ARRAY || k.type == SL_MP_MAP) return false;
            if (sl_mp_skip(&r) != 0) return false;
            continue;
        }
        if (sl_mp_read(&r, &v) != 0) return false;
        if (v.type == SL_MP_ARRAY || v.type == SL_MP_MAP) return false;
        ok = (v.type == SL_MP_STR || v.type == SL_MP_BIN) && v.n == 24 &&
             memcmp(v.p, chunk, 24) == 0;
    }
    return ok;
}

static void on_ack(struct fconn *c)
{
    struct fwd_out *o = c->o;
    size_t n;
    if (conn_read_obj(c, RR_EOF, &n) != 1) return;
    if (!ack_matches(c->rbuf, n, c->b->chunk)) {
        /* A server that wants a handshake answers a request with HELO. */
        bool helo = n > 5 && memmem(c->rbuf, n < 16 ? n : 16, "HELO", 4);
        conn_fail(c, RR_MISMATCH, "%s",
                  helo ? "the server requires a shared_key handshake"
                       : "the answer is not the ack of the request's chunk");
        return;
    }
    bool extra = n != c->rlen;
    deliver(c);
    if (extra) {
        /* Bytes beyond the one answer we asked for: the stream cannot be trusted to line up
         * with later requests. The batch is safe, the socket is not. */
        SL_WARN(o->name, "protocol", "%zu unexpected bytes after an ack; reconnecting",
                c->rlen - n);
        conn_close_socket(c);
        c->st = CS_IDLE;
        pump(o);
        return;
    }
    conn_ready(c);
    pump(o);
}

/* A readable idle connection: the server closed it, or sent something unasked. */
static void on_idle_readable(struct fconn *c)
{
    struct fwd_out *o = c->o;
    uint8_t tmp[64];
    char terr[320] = "";
    ssize_t r = c_recv(c, tmp, sizeof tmp, terr, sizeof terr);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (c->ssl) conn_set_events(c, EPOLLIN); /* e.g. a TLS 1.3 session ticket was read */
        return;
    }
    if (r > 0)
        SL_WARN(o->name, "protocol", "connection %u: unexpected data from an idle server; closing",
                c->idx);
    else
        SL_DEBUG(o->name, "connection %u: closed by the server while idle", c->idx);
    conn_close_socket(c);
    c->st = CS_IDLE;
    pump(o);
}

static void conn_io(struct sl_io *io, uint32_t events)
{
    struct fconn *c = io->arg;
    (void)events; /* each state knows what it waits for; errors surface in send/recv */
    if (io->fd < 0) return;
    switch (c->st) {
    case CS_CONNECTING: {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) soerr = errno;
        if (soerr) {
            conn_fail(c, RR_CONNECT, "connect: %s", strerror(soerr));
            return;
        }
        /* An event left over from an earlier socket of this connection must not be taken for
         * this one's completion. */
        struct sockaddr_storage ss;
        socklen_t al = sizeof ss;
        if (getpeername(io->fd, (struct sockaddr *)&ss, &al) != 0) return;
        conn_connected(c);
        break;
    }
    case CS_TLS:
        conn_tls_step(c);
        break;
    case CS_HELO:
        on_helo(c);
        break;
    case CS_PONG:
        if (c->ping_pos < c->ping_len)
            conn_write_ping(c);
        else
            on_pong(c);
        break;
    case CS_SENDING:
        conn_write_frame(c);
        break;
    case CS_WAIT_ACK:
        on_ack(c);
        break;
    case CS_READY:
        on_idle_readable(c);
        break;
    default:
        break;
    }
}

static void conn_timer(struct sl_timer *t)
{
    struct fconn *c = t->arg;
    struct fwd_out *o = c->o;
    switch (c->st) {
    case CS_CONNECTING:
        conn_fail(c, RR_CONNECT, "connect timed out after %llu ms",
                  (unsigned long long)o->fc->connect_timeout_ms);
        break;
    case CS_TLS:
        conn_fail(c, RR_HANDSHAKE, "TLS handshake timed out after %llu ms",
                  (unsigned long long)o->fc->connect_timeout_ms);
        break;
    case CS_HELO:
    case CS_PONG:
        conn_fail(c, RR_HANDSHAKE, "handshake timed out after %llu ms",
                  (unsigned long long)o->fc->connect_timeout_ms);
        break;
    case CS_SENDING:
    case CS_WAIT_ACK:
        conn_fail(c, RR_TIMEOUT, "no ack within %llu ms",
                  (unsigned long long)o->fc->ack_timeout_ms);
        break;
    case CS_BACKOFF:
        c->st = CS_IDLE;
        if (c->b || (o->weighted && o->servers[c->server].down))
            conn_connect(c); /* resend, or probe a down server */
        else
            pump(o);
        break;
    default:
        break;
    }
}

/* Smooth weighted round-robin over the servers that are up: weighted ones, else the standbys
 * (weight 0, taken as equal). Returns the server whose turn it is, or -1 when all are down;
 * *total is what commit_pick subtracts. Does not change state. */
static int wrr_pick(const struct fwd_out *o, int64_t *total)
{
    uint64_t now = sl_now_ms();
    bool skip_unhealthy = any_healthy(o, now);
    for (int standby = 0; standby < 2; standby++) {
        int best = -1;
        int64_t best_cw = 0;
        *total = 0;
        for (size_t i = 0; i < o->n_servers; i++) {
            const struct server *s = &o->servers[i];
            if (s->down || (s->weight == 0) != (standby == 1)) continue;
            if (skip_unhealthy && unhealthy(s, now)) continue;
            int64_t w = standby ? 1 : s->weight;
            *total += w;
            if (best < 0 || s->cw + w > best_cw) {
                best = (int)i;
                best_cw = s->cw + w;
            }
        }
        if (best >= 0) return best;
    }
    return -1;
}

static void wrr_commit(struct fwd_out *o, int best, int64_t total)
{
    bool standby = o->servers[best].weight == 0;
    uint64_t now = sl_now_ms();
    bool skip_unhealthy = any_healthy(o, now);
    for (size_t i = 0; i < o->n_servers; i++) {
        struct server *s = &o->servers[i];
        if (s->down || (s->weight == 0) != standby) continue;
        if (skip_unhealthy && unhealthy(s, now)) continue;
        s->cw += standby ? 1 : s->weight;
    }
    o->servers[best].cw -= total;
}

static void pump_weighted(struct fwd_out *o)
{
    if (o->pumping) return; /* re-entered from a send that finished at once */
    o->pumping = true;
    while (o->ready_head) {
        int64_t total;
        int s = wrr_pick(o, &total);
        if (s < 0) break; /* every server down: the batches wait, the connections probe */
        struct fconn *free_c = NULL;
        unsigned per = o->fc->concurrency;
        for (unsigned i = (unsigned)s * per; i < (unsigned)(s + 1) * per; i++) {
            struct fconn *c = &o->conns[i];
            if (!c->b && (c->st == CS_READY || c->st == CS_IDLE)) {
                free_c = c;
                if (c->st == CS_READY) break; /* prefer a connected one */
            }
        }
        if (!free_c) break; /* strict split: wait for that server's connection */
        wrr_commit(o, s, total);
        free_c->b = ready_pop(o);
        if (free_c->st == CS_READY)
            conn_start_send(free_c);
        else
            conn_connect(free_c);
    }
    o->pumping = false;
}

/* Puts idle connections to work on ready batches. */
static void pump(struct fwd_out *o)
{
    if (o->weighted) {
        pump_weighted(o);
        return;
    }
    for (unsigned i = 0; i < o->n_conns && o->ready_head; i++) {
        struct fconn *c = &o->conns[i];
        if (c->st == CS_READY && !c->b) {
            conn_ready(c);
        } else if (c->st == CS_IDLE && !c->b) {
            c->b = ready_pop(o);
            conn_connect(c);
        }
    }
}

/* ---------------------------------------------------------------- output ops */

static void dead_letter(struct fwd_out *o, const struct sl_event *ev, const char *reason,
                        const char *etype, const char *why)
{
    sl_pipeline_dead_letter(o->p, ev, reason, 0, etype, strlen(etype), why, strlen(why), false,
                            o->name, NULL, 0, 0);
    o->st.dead_lettered++;
    o->recs_pending--;
}

static struct fbatch *open_for(struct fwd_out *o, const char *tag, size_t tag_len)
{
    for (struct fbatch *b = o->open; b; b = b->next)
        if (b->tag_len == tag_len && memcmp(b->tag, tag, tag_len) == 0) return b;
    return NULL;
}

static void fwd_submit(void *impl, const struct sl_event *ev)
{
    struct fwd_out *o = impl;
    const struct sl_fwd_output_cfg *fc = o->fc;
    o->recs_pending++;
    bool coords = fc->kafka_fields && ev->topic;
    struct sl_mp_wbuf *s = &o->scr;
    uint64_t accounted = o->scr_charged;
    s->len = 0;
    s->overflow = 0;
    const char *jerr = NULL;
    size_t at = 0;
    int rc = sl_json_to_mp(ev->payload, ev->payload_len, s, coords ? 3 : 0, &jerr, &at);
    if (rc == 0 && coords) {
        /* Added after the record's own fields: a receiver that keeps the last of duplicate keys
         * (fluentd, Fluent Bit, a sluice forward input) sees the real coordinates. */
        sl_mp_w_str(s, fc->kafka_topic_key, strlen(fc->kafka_topic_key));
        sl_mp_w_str(s, ev->topic, ev->topic_len);
        sl_mp_w_str(s, fc->kafka_partition_key, strlen(fc->kafka_partition_key));
        sl_mp_w_int(s, ev->partition);
        sl_mp_w_str(s, fc->kafka_offset_key, strlen(fc->kafka_offset_key));
        sl_mp_w_int(s, ev->offset);
    }
    settle(o, &o->scr_charged, &accounted);
    if (rc != 0 || s->overflow) {
        char why[160];
        snprintf(why, sizeof why, "cannot convert the JSON record to msgpack: %s at byte %zu",
                 jerr ? jerr : "out of memory", at);
        SL_WARN(o->name, "conversion", "tag %.*s: %s; dead-lettered", (int)ev->tag_len, ev->tag,
                why);
        dead_letter(o, ev, "record not convertible", "conversion_error", why);
        return;
    }
    size_t entry = 1 + 10 + s->len;
    size_t frame_hdr = 1 + 5 + ev->tag_len + 5;
    if (frame_hdr + entry + OPTS_RESERVE > o->eff_max) {
        char why[200];
        snprintf(why, sizeof why,
                 "the record needs %zu bytes in a Forward request, more than the %zu allowed "
                 "(batch_max_bytes and memory_limit)",
                 frame_hdr + entry + OPTS_RESERVE, o->eff_max);
        dead_letter(o, ev, "record too large", "record_too_large", why);
        return;
    }
    int64_t t = ev->time_ns;
    /* EventTime holds unsigned 32-bit seconds: times before 1970 or after 2106 are clamped. */
    if (t < 0) t = 0;
    if (t >= (int64_t)UINT32_MAX * 1000000000) t = (int64_t)UINT32_MAX * 1000000000;
    struct fbatch *b = open_for(o, ev->tag, ev->tag_len);
    if (b && b->w.len + entry + OPTS_RESERVE > o->eff_max) {
        seal(o, b);
        b = NULL;
    }
    if (!b) {
        b = batch_new(o, ev->tag, ev->tag_len);
        if (!b) {
            SL_ERROR(o->name, "oom", "cannot allocate a batch");
            abort();
        }
        b->next = o->open;
        o->open = b;
        b->linger.cb = linger_cb;
        sl_timer_start(o->p->loop, &b->linger, fc->batch_max_wait_ms);
    }
    if (b->n == b->cap_acks) {
        size_t ncap = b->cap_acks * 2;
        struct sl_ackref *na = realloc(b->acks, ncap * sizeof *na);
        if (!na) abort();
        sl_budget_charge(&o->p->budget, (ncap - b->cap_acks) * sizeof *na);
        b->charged += (ncap - b->cap_acks) * sizeof *na;
        b->acks = na;
        b->cap_acks = ncap;
    }
    uint64_t before = b->charged;
    sl_fwd_packed_add(&b->pk, t, s->data, s->len);
    settle(o, &b->charged, &before);
    if (b->w.overflow) {
        SL_ERROR(o->name, "oom", "cannot grow a request (out of memory)");
        abort();
    }
    b->acks[b->n++] = ev->ack;
    /* The conversion buffer keeps its size for the next record unless one huge record grew it. */
    if (s->cap > SCRATCH_KEEP) {
        free(s->data);
        sl_budget_release(&o->p->budget, o->scr_charged);
        o->scr_charged = 0;
        sl_mp_wbuf_init(s, NULL, 0);
        s->grow = grow_charged;
        s->ctx = &o->scr_charged;
    }
    if (o->eff_max - b->w.len < OPTS_RESERVE + 64) {
        seal(o, b);
        pump(o);
    }
}

static void fwd_flush(void *impl)
{
    struct fwd_out *o = impl;
    while (o->open)
        seal(o, o->open);
    pump(o);
}

/* Whether the next ready batch would be taken now: a connection without a batch that is connected
 * or may connect (one in backoff is not free); with weights, one of the server whose turn it is,
 * since the split is strict and a standby's free connection takes nothing while a weighted
 * server is up. */
static bool conn_free_for_next(const struct fwd_out *o)
{
    unsigned lo = 0, hi = o->n_conns;
    if (o->weighted) {
        int64_t total;
        int s = wrr_pick(o, &total);
        if (s < 0) return false;
        lo = (unsigned)s * o->fc->concurrency;
        hi = lo + o->fc->concurrency;
    }
    for (unsigned i = lo; i < hi; i++) {
        const struct fconn *c = &o->conns[i];
        if (!c->b && (c->st == CS_READY || c->st == CS_IDLE)) return true;
    }
    return false;
}

/* Nothing more is ready to read: if no request is in flight, open batches (one per tag) go now,
 * oldest first, while a connection is free to take them, instead of after batch_max_wait. While
 * a request is in flight they keep filling, so partial batches go at most once per round trip
 * (ack included). A connection in backoff is not free, so a failing server does not get small
 * batches any faster than before. */
static void fwd_idle(void *impl)
{
    struct fwd_out *o = impl;
    for (unsigned i = 0; i < o->n_conns; i++)
        if (o->conns[i].b) return;
    /* Each pass seals one batch, so this ends; a batch that stays ready (not taken) ends it too. */
    while (o->open && !o->ready_head && conn_free_for_next(o)) {
        struct fbatch *oldest = o->open;
        while (oldest->next)
            oldest = oldest->next;
        seal(o, oldest);
        pump(o);
    }
}

static uint64_t fwd_pending(void *impl)
{
    return ((struct fwd_out *)impl)->recs_pending;
}

static struct sl_output_stats *fwd_stats(void *impl)
{
    return &((struct fwd_out *)impl)->st;
}

static void fwd_log_stats(void *impl)
{
    struct fwd_out *o = impl;
    char r[256];
    size_t n = 0;
    for (int i = 0; i < RR_COUNT; i++)
        n += (size_t)snprintf(r + n, sizeof r - n, "%s%s=%llu", i ? "," : "", retry_names[i],
                              (unsigned long long)o->retries[i]);
    unsigned busy = 0;
    for (unsigned i = 0; i < o->n_conns; i++)
        busy += o->conns[i].b != NULL;
    if (o->weighted) {
        /* weighted mode: requests per server (the split) and which ones are down */
        char w[512];
        size_t wn = 0;
        for (size_t i = 0; i < o->n_servers && wn < sizeof w; i++)
            wn += (size_t)snprintf(w + wn, sizeof w - wn, "%s%s:%s=%llu%s", i ? "," : "",
                                   o->servers[i].host, o->servers[i].port,
                                   (unsigned long long)o->servers[i].sends,
                                   o->servers[i].down ? "(down)" : "");
        SL_INFO(o->name, "requests per server (weights): %s", w);
    }
    SL_INFO(o->name,
            "requests=%llu items_sent=%llu delivered=%llu dead_lettered=%llu pending=%llu "
            "inflight=%u bytes_sent=%llu avg_latency_ms=%llu connects=%llu server=%s:%s "
            "retries{%s}",
            (unsigned long long)o->st.requests, (unsigned long long)o->st.items_sent,
            (unsigned long long)o->st.delivered, (unsigned long long)o->st.dead_lettered,
            (unsigned long long)o->recs_pending, busy, (unsigned long long)o->st.bytes_sent,
            (unsigned long long)(o->st.requests ? o->st.latency_ms_sum / o->st.requests : 0),
            (unsigned long long)o->connects, o->servers[o->cur_server].host,
            o->servers[o->cur_server].port, r);
}

static void fwd_destroy(void *impl)
{
    struct fwd_out *o = impl;
    /* Whatever is still held is not acknowledged: its sources redeliver it after a restart. */
    for (unsigned i = 0; i < o->n_conns; i++) {
        struct fconn *c = &o->conns[i];
        conn_close_socket(c);
        sl_timer_stop(o->p->loop, &c->timer);
        c->b = NULL;
    }
    while (o->all)
        batch_free(o->all);
    free(o->scr.data);
    sl_budget_release(&o->p->budget, o->scr_charged);
    if (o->tls) SSL_CTX_free(o->tls);
    free(o->conns);
    free(o->servers);
    free(o);
}

static const struct sl_output_ops fwd_ops = {
    .submit = fwd_submit,
    .flush = fwd_flush,
    .idle = fwd_idle,
    .pending = fwd_pending,
    .log_stats = fwd_log_stats,
    .stats = fwd_stats,
    .destroy = fwd_destroy,
};

static int split_server(const char *s, struct server *out)
{
    const char *colon = strrchr(s, ':');
    if (!colon) return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof out->host || strlen(colon + 1) >= sizeof out->port) return -1;
    memcpy(out->host, h, hl);
    out->host[hl] = '\0';
    snprintf(out->port, sizeof out->port, "%s", colon + 1);
    snprintf(out->addr, sizeof out->addr, "%.*s", (int)(colon - s), s);
    snprintf(out->addr + strlen(out->addr), sizeof out->addr - strlen(out->addr), ":%s", out->port);
    return 0;
}

int sl_fwd_output_new(struct sl_pipeline *p, const struct sl_output_cfg *cfg, char *err,
                      size_t errlen)
{
    const struct sl_fwd_output_cfg *fc = &cfg->fwd;
    struct fwd_out *o = calloc(1, sizeof *o);
    if (!o) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    o->p = p;
    o->fc = fc;
    o->name = cfg->name;
    o->st.retries = o->retries;
    o->st.reason_names = retry_names;
    o->st.n_reasons = RR_COUNT;
    o->weighted = fc->n_weights > 0;
    unsigned n_conns = fc->concurrency * (o->weighted ? (unsigned)fc->n_servers : 1u);
    o->servers = calloc(fc->n_servers ? fc->n_servers : 1, sizeof *o->servers);
    o->conns = calloc(n_conns ? n_conns : 1, sizeof *o->conns);
    if (!o->servers || !o->conns) {
        free(o->servers);
        free(o->conns);
        free(o);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct sl_output *so = &p->outputs[p->n_outputs];
    so->name = cfg->name;
    so->ops = &fwd_ops;
    so->impl = o;
    so->n_match = 0;
    for (size_t i = 0; i < cfg->n_match; i++) {
        so->match[i] = sl_tagpat_compile(cfg->match[i], err, errlen);
        if (!so->match[i]) {
            for (size_t j = 0; j < so->n_match; j++)
                sl_tagpat_free(so->match[j]);
            so->n_match = 0;
            fwd_destroy(o);
            return -1;
        }
        so->n_match++;
    }
    /* Registered from here on: sl_pipeline_fini destroys it, also after a later error. */
    p->n_outputs++;
    for (size_t i = 0; i < fc->n_servers; i++) {
        if (split_server(fc->servers[i], &o->servers[o->n_servers]) != 0) {
            snprintf(err, errlen, "server '%s' is not host:port", fc->servers[i]);
            return -1;
        }
        if (o->weighted) o->servers[o->n_servers].weight = fc->weight[i];
        o->n_servers++;
    }
    if (o->n_servers == 0) {
        snprintf(err, errlen, "no servers");
        return -1;
    }
    if (fc->tls) {
        char terr[600];
        o->tls = sl_tls_client_ctx(fc->tls_ca_file, fc->tls_verify, fc->tls_cert_file,
                                   fc->tls_key_file, (int)fc->tls_min_version, terr, sizeof terr);
        if (!o->tls) {
            snprintf(err, errlen, "tls: %s", terr);
            return -1;
        }
    }
    if (fc->self_hostname)
        snprintf(o->hostname, sizeof o->hostname, "%s", fc->self_hostname);
    else if (gethostname(o->hostname, sizeof o->hostname - 1) != 0)
        snprintf(o->hostname, sizeof o->hostname, "localhost");
    /* Every connection's request, one open batch and one waiting must fit the budget together,
     * or the pipeline would hold less than one request's worth and stall. */
    uint64_t share = p->budget.limit / (2 * (uint64_t)(n_conns + 2));
    o->eff_max = fc->batch_max_bytes < share ? fc->batch_max_bytes : share;
    if (o->eff_max < 64 * 1024) o->eff_max = 64 * 1024;
    sl_mp_wbuf_init(&o->scr, NULL, 0);
    o->scr.grow = grow_charged;
    o->scr.ctx = &o->scr_charged;
    o->n_conns = n_conns;
    for (unsigned i = 0; i < o->n_conns; i++) {
        struct fconn *c = &o->conns[i];
        c->o = o;
        c->idx = i;
        c->server = o->weighted ? i / fc->concurrency : 0;
        c->st = CS_IDLE;
        c->io = (struct sl_io){.fd = -1, .cb = conn_io, .arg = c};
        c->timer.cb = conn_timer;
        c->timer.arg = c;
    }
    SL_INFO(o->name,
            "servers=%s:%s%s batch_max_bytes=%zu (configured %llu) concurrency=%u "
            "require_ack=%s compression=%s handshake=%s%s tls=%s%s",
            o->servers[0].host, o->servers[0].port, o->n_servers > 1 ? ",..." : "", o->eff_max,
            (unsigned long long)fc->batch_max_bytes, fc->concurrency,
            fc->require_ack ? "true" : "false",
            fc->compression == SL_COMPRESSION_GZIP ? "gzip" : "none", fc->shared_key ? "on" : "off",
            fc->username ? " (with user)" : "", fc->tls ? "on" : "off",
            fc->tls && !fc->tls_verify ? " (verify off)" : "");
    return 0;
}

bool sl_fwd_output_server(const struct sl_output *out, size_t i, struct sl_fwd_server_state *st)
{
    if (out->ops != &fwd_ops) return false;
    const struct fwd_out *o = out->impl;
    if (i >= o->n_servers) return false;
    const struct server *s = &o->servers[i];
    st->addr = s->addr;
    st->unhealthy = unhealthy(s, sl_now_ms());
    st->failovers = &s->failovers;
    return true;
}
