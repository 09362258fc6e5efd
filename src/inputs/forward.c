/* Forward input: a Fluentd Forward protocol v1 server on the loop.
 *
 * At-least-once with `ack: delivered`: every event of a connection is registered in that
 * connection's ack tracker under a running index. A request with a `chunk` option leaves an
 * entry (index after its last event, ack bytes) in the connection's FIFO; the ack is written
 * when the tracker's finished prefix covers that index, i.e. when every event of this chunk and
 * of every earlier chunk on the connection is delivered, 409-on-create, or durably
 * dead-lettered. Acks therefore leave in request order, and an ack never covers data we did not
 * take in. When the connection closes first its tracker is revoked: late results are counted but
 * not acked, and the client resends the chunk; the events' ids (`<chunk>-<index>`, used as the
 * Elasticsearch _id) make the resend overwrite instead of duplicate.
 *
 * Memory: each connection's read buffer grows only to the frame being cut (at most
 * max_frame_size) and is charged to the budget, like the JSON scratch buffer and the gzip output
 * buffer (shared by all connections: decoding is synchronous on the loop). A buffer grows only
 * if the budget has room for the growth (growth_fits); a connection refused is "starved": it
 * is not read until the next tick or release finds room, so reads do not take the budget past
 * its limit, however many connections have data waiting (but for one request the breaker lets
 * through when nothing else can be freed). When the pipeline signals backpressure no buffer
 * grows (TCP flow control pushes back on the clients), but room a buffer already has is still
 * filled, and the complete frames buffered are taken in as soon as the pipeline is below its
 * limit or has nothing in flight (process_held): memory that only read buffers hold is never
 * left waiting for a release that cannot come. Partial frames that make no progress for
 * PARTIAL_DEADLOCK_MS while nothing is in flight are closed without an ack, or the one the room
 * is kept for is let through (break_partial_deadlock); a stall the input cannot break is logged
 * and counted (watch_stall).
 *
 * TLS (tls: true, TCP listener only): each connection first runs a non-blocking SSL_accept on the
 * loop (the HELO, when a shared_key is set, is queued and written once it completes), bounded by
 * handshake_timeout. Reads and writes then go through SSL_read / SSL_write; an SSL call that needs
 * the other direction (WANT_READ while writing, WANT_WRITE while reading) sets the epoll interest
 * to that direction. Stopping reading for backpressure stops calling SSL_read; what OpenSSL has
 * already buffered (SSL_has_pending, invisible to epoll) is drained by the drain timer once the
 * connection reads again. OpenSSL's per-connection state is charged to the budget as
 * SL_TLS_CONN_COST.
 *
 * unix_path adds a Unix stream socket listener: the same connections (never TLS).
 *
 * Connections are freed only from a timer callback (after the current epoll batch, which may
 * still hold an event for them), and never closed from inside an ack-tracker callback (the
 * tracker is being walked there): a connection that must go is marked and closed by the reap
 * timer. */
#include "inputs/forward.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "codec/forward.h"
#include "codec/msgpack.h"
#include "core/log.h"
#include "core/tls.h"
#include "inputs/fwdstore.h"

#define TICK_MS 100
#define TICK_PAUSED_MS 10
#define PARTIAL_DEADLOCK_MS 2000
/* Paused or starved, nothing in flight, no byte read and no request taken in this long: a
 * stall the breaker did not resolve, logged and counted. */
#define STALL_WARN_MS 5000
#define RBUF_MIN (64u * 1024)
/* A buffer grown for one big frame is shrunk back once it is mostly empty, so a single large
 * request does not keep its budget share for the connection's lifetime. 1 MiB: a client sending
 * PackedForward requests of 1,000 ~250-byte records (~265 KB each) keeps its buffer; at 256 KiB
 * it was reallocated (mmap, page faults, munmap) twice per request (bench/fwd_client profile). */
#define RBUF_KEEP (1u << 20)
/* Room beyond a frame's known lower bound (a PackedForward option map is tens of bytes). */
#define FRAME_SLACK 4096u
#define SCRATCH_KEEP (1u << 20)
#define ZBUF_MIN (256u * 1024)
#define ZBUF_KEEP (1u << 20)
/* Bytes read from one connection per wakeup, so one fast client cannot starve the others. */
#define READ_BURST (1u << 20)
#define ACCEPT_BURST 64
/* Chunk strings up to this length are used verbatim in ids; longer or non-string chunks are
 * hashed, keeping ids within Elasticsearch's 512-byte _id limit. */
#define CHUNK_ID_MAX 200
/* ack: stored. A store that cannot write is retried this often. */
#define STORE_RETRY_MS 1000
/* Bytes the feeder hands to the pipeline per timer run, so sockets are served in between. */
#define FEED_BURST (4u << 20)

struct ackent {
    struct ackent *next;
    int64_t end; /* running index after the chunk's last event */
    size_t len;
    uint8_t bytes[]; /* {"ack": <chunk>} */
};

enum cstate { C_AUTH, C_OPEN };

struct fconn {
    struct sl_fwd_in *f;
    struct fconn *prev, *next;
    struct sl_io io;
    uint64_t id;
    char peer[64];
    enum cstate state;
    bool closed;            /* fd closed, on the dead list */
    bool doomed;            /* close at the next reap (set where closing is not allowed) */
    bool eof;               /* the peer finished sending; stays open only to write acks */
    bool close_after_write; /* PONG false: close once it is written */
    bool starved;           /* its buffer must grow and the budget had no room: not read */
    size_t need;            /* the buffer size the frame being cut needs, as far as known */
    SSL *ssl;               /* TLS connections */
    bool tls_hs;            /* the TLS handshake is not finished */
    uint32_t hs_want;       /* TLS handshake: the readiness it waits for */
    uint32_t rd_want;       /* TLS: SSL_read needs this readiness (EPOLLOUT), 0 = EPOLLIN */
    uint32_t wr_want;       /* TLS: SSL_write needs this readiness (EPOLLIN), 0 = EPOLLOUT */
    uint8_t *rbuf;
    size_t rlen, rcap;
    size_t wr_end; /* ack: stored: rbuf[0..wr_end) is appended to the store, not yet synced */
    struct sl_mp_framer fr;
    uint8_t *wbuf;
    size_t wlen, wpos, wcap;
    struct sl_acktrack *trk;
    int64_t next_index; /* running index of the next event */
    int64_t done_next;  /* every event with a smaller index is finished */
    struct ackent *ack_head, *ack_tail;
    size_t ack_bytes;
    uint64_t frame_seq;
    uint8_t nonce[16], auth[16];
    uint64_t opened_ms, last_ms;
};

struct sl_fwd_in {
    struct sl_pipeline *p;
    const struct sl_input_cfg *cfg;
    const struct sl_forward_input_cfg *fc;
    const char *name;
    char host[256];
    size_t host_len;
    int lfd, ufd, xfd; /* TCP listener, UDP heartbeat, Unix listener */
    struct sl_io lio, uio, xio;
    dev_t x_dev; /* the socket file we bound, removed at exit only if still ours */
    ino_t x_ino;
    SSL_CTX *tls;
    struct sl_timer drain; /* TLS: reads what OpenSSL buffered once a connection reads again */
    uint64_t tls_handshake_failures;
    int port;
    char addr[96];
    struct fconn *conns, *dead;
    size_t n_conns;
    uint64_t next_conn_id;
    char boot[17]; /* random per process: ids of chunkless requests never repeat across runs */
    struct sl_timer tick, reap;
    bool paused, stopping, accept_off;
    uint64_t accept_off_until;
    uint64_t paused_since, paused_ms, pauses;
    uint64_t progress_bytes, progress_frames; /* bytes_read and frames when last seen moving */
    uint64_t idle_since;                      /* waiting with no progress since (0: not) */
    bool stall_reported;                      /* this stall was logged and counted */
    uint64_t stalls, starved_waits;
    uint64_t held_turn;  /* process_held: the connection served last */
    bool starving;       /* some connection is starved: tick fast to hand room out */
    struct fconn *claim; /* the starved connection served first when room comes */
    size_t claim_bytes;  /* the growth it waits for */
    bool claim_granted;  /* the claim may pass the limit until its request is cut */
    struct sl_counters ctr;
    uint64_t connections_total, connections_rejected, protocol_errors, bytes_read, frames,
        acks_sent, handshake_failures, heartbeats, idle_closed, partial_closed;
    char *scratch;
    size_t scratch_cap;
    char *tagbuf;
    size_t tag_cap;
    uint8_t *zbuf;
    size_t zcap;
    struct sl_fwd_zarena *zarena;
    struct sl_edits *edits;
    /* ack: stored */
    bool stored;
    struct sl_fwdstore *st;
    struct sl_acktrack *strk; /* every event fed from the store, by running index */
    int64_t st_next_index;    /* running index of the next event fed */
    int64_t st_done;          /* every fed event with a smaller index is finished */
    uint64_t recs_written;    /* records appended */
    uint64_t recs_synced;     /* records durable: acks up to here may go out */
    bool st_full, st_error;   /* not reading connections: store full / write or sync failed */
    bool st_error_seen;       /* an error since the last good sync (to log the recovery) */
    bool feed_waiting;        /* records wait for budget */
    uint64_t st_retry_at;
    struct sl_timer sync_t, feed_t;
    uint64_t storage_errors, storage_full, stored_requests;
};

/* ---------------------------------------------------------------- budget helpers */

static void charge(struct sl_fwd_in *f, size_t old_cap, size_t new_cap)
{
    if (new_cap > old_cap)
        sl_budget_charge(&f->p->budget, new_cap - old_cap);
    else if (old_cap > new_cap)
        sl_budget_release(&f->p->budget, old_cap - new_cap);
}

static void *resize(struct sl_fwd_in *f, void *ptr, size_t *cap, size_t want)
{
    void *n = want ? realloc(ptr, want) : (free(ptr), NULL);
    if (want && !n) abort(); /* the pipeline cannot promise anything without memory */
    charge(f, *cap, want);
    *cap = want;
    return n;
}

static char *scratch(struct sl_fwd_in *f, size_t need)
{
    if (need > f->scratch_cap) f->scratch = resize(f, f->scratch, &f->scratch_cap, need);
    return f->scratch;
}

/* Whether a read buffer may grow by `more` bytes now. Growth is refused while the pipeline is
 * paused (the resume mark gives a paused input a window, not a trickle) and whenever it would
 * take the budget past its limit: with many connections holding data, growing each as its
 * bytes arrived took the budget to 25 times its limit (322 MB of 12.6 MB, peak RSS 275 MiB at
 * memory_limit 32MiB). ack: stored keeps its own rule (the feeder leaves an eighth free). The
 * one exception is a claim the breaker granted: a request that needs more than the room left
 * once nothing else can be freed passes the limit, by at most one request, rather than never
 * being read. */
static bool growth_fits(const struct fconn *c, size_t more)
{
    const struct sl_fwd_in *f = c->f;
    if (f->stored || (f->claim == c && f->claim_granted)) return true;
    const struct sl_budget *b = &f->p->budget;
    /* The first connection refused keeps a claim on the room it needs: else new connections'
     * first 64 KiB took every bit of room as it came, and a request of megabytes never got
     * its buffer (the budget ended up split among hundreds of unfinished requests). */
    uint64_t claim = f->claim && f->claim != c ? f->claim_bytes : 0;
    return !f->paused && b->used + more + claim <= b->limit;
}

/* Grows c's read buffer to `want`, or to `min` (the least the request being cut needs) if only
 * that fits. Refused: c is starved (not read beyond its buffer's room) until room comes, and
 * the first connection refused claims `min`. */
static bool grow_rbuf(struct fconn *c, size_t want, size_t min)
{
    struct sl_fwd_in *f = c->f;
    if (min > want) min = want;
    if (want > c->rcap && !growth_fits(c, want - c->rcap)) {
        if (min <= c->rcap || !growth_fits(c, min - c->rcap)) {
            if (!c->starved) f->starved_waits++;
            c->starved = true;
            f->starving = true;
            if (!f->claim || f->claim == c) {
                f->claim = c;
                f->claim_bytes = min > c->rcap ? min - c->rcap : want - c->rcap;
            }
            return false;
        }
        want = min;
    }
    if (f->claim == c && !f->claim_granted) f->claim = NULL;
    c->rbuf = resize(f, c->rbuf, &c->rcap, want);
    return true;
}

/* ---------------------------------------------------------------- connection lifetime */

static void conn_update_events(struct fconn *c);
static void conn_close(struct fconn *c, const char *why);
static int conn_process(struct fconn *c);
static void update_backpressure(struct sl_fwd_in *f);

static void reap_cb(struct sl_timer *t)
{
    struct sl_fwd_in *f = t->arg;
    for (struct fconn *c = f->conns, *next; c; c = next) {
        next = c->next;
        if (c->doomed) conn_close(c, NULL);
    }
    while (f->dead) {
        struct fconn *c = f->dead;
        f->dead = c->next;
        free(c);
    }
}

static void schedule_reap(struct sl_fwd_in *f)
{
    if (!f->reap.active) sl_timer_start(f->p->loop, &f->reap, 0);
}

static void doom(struct fconn *c)
{
    c->doomed = true;
    schedule_reap(c->f);
}

static bool reading(const struct fconn *c)
{
    const struct sl_fwd_in *f = c->f;
    if (f->stored && (f->st_error || f->st_full || (c->wr_end && c->rlen == c->rcap)))
        return false; /* the store takes nothing now, or the buffer waits for its group's sync */
    /* While paused, a request being read still fills the room its buffer already has: that room
     * is charged, so reading costs nothing, and stopping there could leave a request that needs
     * the whole budget half-read for good. Growing the buffer waits for the resume. */
    bool charged_room = !f->stored && c->rlen > 0 && c->rlen < c->rcap;
    bool granted = f->claim == c && f->claim_granted;
    return !c->closed && !c->doomed && !c->eof && !c->close_after_write &&
           (charged_room || granted || (!f->paused && !c->starved)) && !f->stopping;
}

static void conn_update_events(struct fconn *c)
{
    if (c->closed) return;
    uint32_t ev;
    if (c->tls_hs) {
        ev = c->hs_want;
    } else {
        bool rd = reading(c);
        ev = (rd ? (c->rd_want ? c->rd_want : EPOLLIN) : 0) |
             (c->wpos < c->wlen ? (c->wr_want ? c->wr_want : EPOLLOUT) : 0);
        /* Decrypted or undecrypted bytes OpenSSL holds raise no epoll event. */
        if (rd && c->ssl && SSL_has_pending(c->ssl) && !c->f->drain.active)
            sl_timer_start(c->f->p->loop, &c->f->drain, 0);
    }
    /* Without any event the fd leaves epoll; a reset while paused is then seen on resume. */
    sl_loop_io_set(c->f->p->loop, &c->io, ev);
}

/* recv or SSL_read: >0 bytes, 0 at the end of the stream, -1 with errno (EAGAIN: wait). */
static ssize_t conn_recv(struct fconn *c, void *buf, size_t n)
{
    if (!c->ssl) return recv(c->io.fd, buf, n, 0);
    char err[320];
    int st;
    ssize_t r = sl_tls_read(c->ssl, buf, n, &st, err, sizeof err);
    c->rd_want = 0;
    if (r > 0) return r;
    if (st == SL_TLS_EOF) return 0;
    if (st == SL_TLS_WANT_READ || st == SL_TLS_WANT_WRITE) {
        if (st == SL_TLS_WANT_WRITE) c->rd_want = EPOLLOUT;
        errno = EAGAIN;
        return -1;
    }
    SL_WARN(c->f->name, "tls", "%s: %s; closing this connection", c->peer, err);
    errno = EPROTO;
    return -1;
}

/* send or SSL_write, like conn_recv. */
static ssize_t conn_send(struct fconn *c, const void *buf, size_t n)
{
    if (!c->ssl) return send(c->io.fd, buf, n, MSG_NOSIGNAL);
    char err[320];
    int st;
    ssize_t r = sl_tls_write(c->ssl, buf, n, &st, err, sizeof err);
    c->wr_want = 0;
    if (r > 0) return r;
    if (st == SL_TLS_WANT_READ || st == SL_TLS_WANT_WRITE) {
        if (st == SL_TLS_WANT_READ) c->wr_want = EPOLLIN;
        errno = EAGAIN;
        return -1;
    }
    if (st == SL_TLS_EOF) {
        errno = EPIPE;
        return -1;
    }
    SL_DEBUG(c->f->name, "%s: %s", c->peer, err);
    errno = EPROTO;
    return -1;
}

/* Whether a connection that stopped reading has anything left to do. */
static bool finished(const struct fconn *c)
{
    return c->wpos == c->wlen && (c->close_after_write || (c->eof && !c->ack_head));
}

static void conn_write(struct fconn *c)
{
    if (c->closed) return;
    if (c->tls_hs) {
        conn_update_events(c); /* queued (HELO): written once the TLS handshake is done */
        return;
    }
    while (!c->closed && c->wpos < c->wlen) {
        ssize_t w = conn_send(c, c->wbuf + c->wpos, c->wlen - c->wpos);
        if (w > 0) {
            c->wpos += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            SL_DEBUG(c->f->name, "%s: write failed: %s", c->peer, strerror(errno));
            doom(c);
            return;
        }
    }
    if (c->wpos == c->wlen) c->wpos = c->wlen = 0;
    if (finished(c)) doom(c);
    conn_update_events(c);
}

static void queue_write(struct fconn *c, const void *p, size_t n)
{
    if (c->wlen + n > c->wcap) {
        size_t want = c->wcap ? c->wcap : 256;
        while (want < c->wlen + n)
            want *= 2;
        c->wbuf = resize(c->f, c->wbuf, &c->wcap, want);
    }
    memcpy(c->wbuf + c->wlen, p, n);
    c->wlen += n;
}

/* Writes every ack whose events (and all earlier ones) are finished. Called from the tracker's
 * advance callback, so it must not close the connection (doom it instead). */
static void flush_acks(struct fconn *c)
{
    if (c->closed) return;
    bool any = false;
    /* delivered: the connection's finished prefix; stored: the records synced so far */
    int64_t upto = c->f->stored ? (int64_t)c->f->recs_synced : c->done_next;
    while (c->ack_head && c->ack_head->end <= upto) {
        struct ackent *a = c->ack_head;
        c->ack_head = a->next;
        if (!c->ack_head) c->ack_tail = NULL;
        queue_write(c, a->bytes, a->len);
        size_t sz = sizeof *a + a->len;
        c->ack_bytes -= sz;
        sl_budget_release(&c->f->p->budget, sz);
        free(a);
        c->f->acks_sent++;
        any = true;
    }
    if (any || finished(c)) conn_write(c);
}

static void on_advance(struct sl_acktrack *trk, int64_t commit_next, void *owner)
{
    (void)trk;
    struct fconn *c = owner;
    c->done_next = commit_next;
    flush_acks(c);
}

static void conn_close(struct fconn *c, const char *why)
{
    struct sl_fwd_in *f = c->f;
    if (c->closed) return;
    if (why) SL_DEBUG(f->name, "%s: closing: %s", c->peer, why);
    c->closed = true;
    if (f->claim == c) {
        f->claim = NULL;
        f->claim_granted = false;
    }
    c->wr_end = 0; /* appended but unsynced requests are not acked; the client resends them */
    sl_loop_io_set(f->p->loop, &c->io, 0);
    if (c->ssl) {
        sl_tls_close(c->ssl);
        c->ssl = NULL;
        sl_budget_release(&f->p->budget, SL_TLS_CONN_COST);
    }
    close(c->io.fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        f->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    f->n_conns--;
    c->prev = NULL;
    c->next = f->dead;
    f->dead = c;
    /* Events still in flight finish into the revoked tracker: counted, never acked. */
    if (c->trk) sl_acktrack_revoke(c->trk);
    c->trk = NULL;
    while (c->ack_head) {
        struct ackent *a = c->ack_head;
        c->ack_head = a->next;
        free(a);
    }
    sl_budget_release(&f->p->budget, c->ack_bytes);
    c->ack_bytes = 0;
    c->rbuf = resize(f, c->rbuf, &c->rcap, 0);
    c->wbuf = resize(f, c->wbuf, &c->wcap, 0);
    schedule_reap(f);
}

static void protocol_error(struct fconn *c, const char *what, const char *msg)
{
    struct sl_fwd_in *f = c->f;
    f->protocol_errors++;
    SL_WARN(f->name, "protocol_error",
            "%s: %s: %s; closing this connection (requests not acked are resent by the client)",
            c->peer, what, msg);
}

/* ---------------------------------------------------------------- events */

/* Decoding context of one request: from a connection (ack: delivered) or from the store. */
struct dctx {
    struct sl_fwd_in *f;
    const char *peer;         /* for messages */
    struct sl_acktrack *trk;  /* where the events' fates go */
    int64_t *next_index;      /* running index in trk */
    const char *chunkless_id; /* id prefix of a request without a chunk option */
    size_t chunkless_id_len;
    bool ready;
    struct sl_route route; /* cached for the request (one tag) */
    const char *tag;
    size_t tag_len;
    char idbase[CHUNK_ID_MAX + 64];
    size_t idbase_len;
};

/* Tag, route and id prefix, once per request (every event of a request has the same ones). */
static void frame_setup(struct dctx *d, const struct sl_fwd_request *req)
{
    struct sl_fwd_in *f = d->f;
    const char *pre = f->fc->tag_prefix;
    if (pre) {
        size_t pl = strlen(pre), need = pl + 1 + req->tag_len;
        if (need > f->tag_cap) f->tagbuf = resize(f, f->tagbuf, &f->tag_cap, need);
        memcpy(f->tagbuf, pre, pl);
        f->tagbuf[pl] = '.';
        memcpy(f->tagbuf + pl + 1, req->tag, req->tag_len);
        d->tag = f->tagbuf;
        d->tag_len = need;
    } else {
        d->tag = req->tag;
        d->tag_len = req->tag_len;
    }
    sl_pipeline_route(f->p, d->tag, d->tag_len, &d->route);
    const struct sl_fwd_options *o = &req->opt;
    int n;
    if (o->chunk && o->chunk_is_str && o->chunk_str_len <= CHUNK_ID_MAX) {
        memcpy(d->idbase, o->chunk_str, o->chunk_str_len);
        n = (int)o->chunk_str_len;
    } else if (o->chunk) {
        char hex[129];
        const void *parts[] = {o->chunk};
        size_t lens[] = {o->chunk_len};
        if (sl_fwd_sha512_hex(parts, lens, 1, hex) != 0) abort();
        n = snprintf(d->idbase, sizeof d->idbase, "h%.32s", hex);
    } else {
        n = snprintf(d->idbase, sizeof d->idbase, "%.*s", (int)d->chunkless_id_len,
                     d->chunkless_id);
    }
    d->idbase_len = (size_t)n;
    d->ready = true;
}

/* {"msgpack":"<base64 of the entry>"}: a record that cannot be JSON is kept losslessly. */
static void raw_payload(struct sl_fwd_in *f, const struct sl_fwd_event *ev, struct sl_event *e)
{
    char *s = scratch(f, 4 * ((ev->entry_len + 2) / 3) + 16);
    memcpy(s, "{\"msgpack\":\"", 12);
    size_t n = 12 + sl_mp_base64(ev->entry, ev->entry_len, s + 12);
    memcpy(s + n, "\"}", 2);
    e->payload = s;
    e->payload_len = n + 2;
}

/* Interned topic names: events keep the pointer for the process lifetime. */
static const char *intern_topic(const uint8_t *p, size_t n)
{
    static char *tab[256];
    static size_t ntab;
    for (size_t i = 0; i < ntab; i++)
        if (strlen(tab[i]) == n && memcmp(tab[i], p, n) == 0) return tab[i];
    if (ntab == 256 || memchr(p, 0, n)) {
        /* the record then keeps its chunk-based id: still delivered, but a resend from the
         * Kafka side is no longer recognised as the same document */
        SL_WARN("forward", "topics_full",
                "more than 256 distinct kafka_topic values (or a NUL "
                "in one); records of further topics get chunk-based ids");
        return NULL;
    }
    tab[ntab] = strndup((const char *)p, n);
    return tab[ntab] ? tab[ntab++] : NULL;
}

static void kafka_coords(const uint8_t *rec, size_t len, struct sl_event *e)
{
    struct sl_mp_reader r;
    struct sl_mp_obj m, k, v;
    sl_mp_reader_init(&r, rec, len);
    if (sl_mp_read(&r, &m) != 0 || m.type != SL_MP_MAP) return;
    const char *topic = NULL;
    int64_t part = -1, off = -1;
    for (uint32_t i = 0; i < m.n; i++) {
        if (sl_mp_read(&r, &k) != 0) return;
        if (k.type != SL_MP_STR) {
            if (sl_mp_skip(&r) != 0) return;
            continue;
        }
        size_t save = r.pos;
        if (sl_mp_read(&r, &v) != 0) return;
        if (k.n == 11 && memcmp(k.p, "kafka_topic", 11) == 0 && v.type == SL_MP_STR)
            topic = intern_topic(v.p, v.n);
        else if (k.n == 15 && memcmp(k.p, "kafka_partition", 15) == 0 && v.type == SL_MP_UINT &&
                 v.v.u <= INT32_MAX)
            part = (int64_t)v.v.u;
        else if (k.n == 12 && memcmp(k.p, "kafka_offset", 12) == 0 && v.type == SL_MP_UINT &&
                 v.v.u <= INT64_MAX)
            off = (int64_t)v.v.u;
        else {
            r.pos = save;
            if (sl_mp_skip(&r) != 0) return;
        }
    }
    if (topic && part >= 0 && off >= 0) {
        e->topic = topic;
        e->topic_len = strlen(topic);
        e->partition = (int32_t)part;
        e->offset = off;
    }
}

static int on_event(void *ctx, const struct sl_fwd_request *req, const struct sl_fwd_event *ev)
{
    struct dctx *d = ctx;
    struct sl_fwd_in *f = d->f;
    if (!d->ready) frame_setup(d, req);
    uint64_t seq = sl_acktrack_add(d->trk, (*d->next_index)++);
    if (seq == UINT64_MAX) abort();
    f->ctr.received++;
    /* <chunk id>-<index>, without snprintf (3-4% of the Forward row's profile) */
    char id[sizeof d->idbase + 24];
    memcpy(id, d->idbase, d->idbase_len);
    size_t il = d->idbase_len;
    id[il++] = '-';
    char digits[24];
    size_t nd = 0;
    size_t v = ev->index;
    do {
        digits[nd++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (nd)
        id[il++] = digits[--nd];
    struct sl_event e = {
        .input = f->name,
        .tag = d->tag,
        .tag_len = d->tag_len,
        .src_id = id,
        .src_id_len = il,
        .time_ns = ev->error || ev->time_ns == 0 ? sl_wall_ns() : ev->time_ns,
        .ack = {.trk = d->trk, .seq = seq, .ctr = &f->ctr},
    };
    if (f->fc->id_from_kafka_fields && !ev->error) kafka_coords(ev->record, ev->record_len, &e);
    const char *why = ev->error;
    const char *etype = "invalid_event";
    /* Index templates, id fields and @timestamp need values from the record: found while it is
     * converted, so the JSON is not scanned again (4-10% of the Forward row's CPU). */
    struct sl_json_scan scan;
    struct sl_json_scan *sp = NULL;
    if (f->p->n_paths) {
        memset(&scan, 0, sizeof scan);
        for (size_t i = 0; i < f->p->n_paths; i++)
            scan.paths[i] = f->p->paths[i];
        scan.n_paths = f->p->n_paths;
        sp = &scan;
    }
    if (!why) {
        const char *jerr = NULL;
        ssize_t r =
            sl_mp_to_json_scan(ev->record, ev->record_len, f->scratch, f->scratch_cap, &jerr, sp);
        if (r > (ssize_t)f->scratch_cap) {
            scratch(f, (size_t)r);
            r = sl_mp_to_json_scan(ev->record, ev->record_len, f->scratch, f->scratch_cap, &jerr,
                                   sp);
        }
        if (r < 0) {
            why = jerr ? jerr : "record cannot be converted to JSON";
            etype = "json_conversion_error";
        } else {
            e.payload = f->scratch;
            e.payload_len = (size_t)r;
        }
    }
    if (why) {
        f->ctr.parse_errors++;
        raw_payload(f, ev, &e);
        SL_WARN(f->name, "invalid_event", "%s: tag %.*s: %s; dead-lettered", d->peer,
                (int)d->tag_len, d->tag, why);
        sl_pipeline_dead_letter(f->p, &e, "invalid event", 0, etype, strlen(etype), why,
                                strlen(why), false, NULL, NULL, 0, 0);
        return 0;
    }
    if (d->route.n == 0) {
        f->ctr.unmatched++;
        bool drop = f->p->cfg->service.unmatched == SL_UNMATCHED_DROP;
        SL_WARN(f->name, "unmatched", "tag %.*s matches no output; its events are %s",
                (int)d->tag_len, d->tag, drop ? "dropped (counted)" : "dead-lettered");
        if (drop) {
            sl_ack(&e.ack, SL_FATE_DROPPED);
        } else {
            static const char msg[] = "no output's match pattern matches this tag";
            sl_pipeline_dead_letter(f->p, &e, "unmatched tag", 0, "unmatched_tag", 13, msg,
                                    sizeof msg - 1, false, NULL, NULL, 0, 0);
        }
        return 0;
    }
    e.scan = sp;
    if (f->edits) sl_edits_apply(f->edits, f->p, &e, &scan);
    sl_pipeline_submit(f->p, &d->route, &e);
    sl_edits_done(f->edits);
    return 0;
}

/* Queues the ack of a request; it is written once `end` is reached (see flush_acks). */
static void push_ack(struct fconn *c, const struct sl_fwd_options *o, int64_t end)
{
    struct sl_fwd_in *f = c->f;
    size_t cap = o->chunk_len + 16;
    struct ackent *a = malloc(sizeof *a + cap);
    if (!a) abort();
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, a->bytes, cap);
    sl_fwd_ack(o->chunk, o->chunk_len, &w);
    if (w.overflow || w.len > cap) abort(); /* cap covers the map and key headers */
    a->len = w.len;
    a->end = end;
    a->next = NULL;
    if (c->ack_tail)
        c->ack_tail->next = a;
    else
        c->ack_head = a;
    c->ack_tail = a;
    c->ack_bytes += sizeof *a + a->len;
    sl_budget_charge(&f->p->budget, sizeof *a + a->len);
    flush_acks(c);
}

/* ---------------------------------------------------------------- handshake */

static void send_pong_fail_why(struct fconn *c, const char *reason, const char *detail)
{
    uint8_t buf[256];
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, buf, sizeof buf);
    sl_fwd_pong(0, reason, strlen(reason), "", 0, NULL, &w);
    queue_write(c, buf, w.len);
    c->close_after_write = true;
    c->f->handshake_failures++;
    SL_WARN(c->f->name, "handshake", "%s: handshake failed: %s%s; closing this connection", c->peer,
            reason, detail ? detail : "");
    conn_write(c);
}

static void send_pong_fail(struct fconn *c, const char *reason)
{
    send_pong_fail_why(c, reason, NULL);
}

/* users: the PING's username must be configured and its password digest match. Returns 0, or
 * -1 after answering PONG false. The log names a configured user, never an unknown one (it may
 * be a mistyped password) and never a password. */
static int check_user(struct fconn *c, const struct sl_fwd_ping *ping)
{
    const struct sl_forward_input_cfg *fc = c->f->fc;
    for (size_t i = 0; i < fc->n_users; i++) {
        const struct sl_kv *u = &fc->users[i];
        size_t ul = strlen(u->key);
        if (ul != ping->user_len || memcmp(u->key, ping->user, ul) != 0) continue;
        if (sl_fwd_verify_password(ping, c->auth, sizeof c->auth, u->key, ul, u->value,
                                   strlen(u->value)) == 0)
            return 0;
        char why[160];
        snprintf(why, sizeof why, " (wrong password for user '%.100s')", u->key);
        send_pong_fail_why(c, "username/password mismatch", why);
        return -1;
    }
    send_pong_fail_why(c, "username/password mismatch",
                       ping->user_len ? " (unknown user)" : " (no username sent)");
    return -1;
}

static void handle_ping(struct fconn *c, const uint8_t *frame, size_t n)
{
    struct sl_fwd_in *f = c->f;
    struct sl_fwd_ping ping;
    char err[SL_FWD_ERRLEN];
    if (sl_fwd_parse_ping(frame, n, &ping, err, sizeof err) != 0) {
        send_pong_fail(c, err);
        return;
    }
    const char *key = f->fc->shared_key;
    if (sl_fwd_verify_ping(&ping, c->nonce, sizeof c->nonce, key, strlen(key)) != 0) {
        send_pong_fail(c, "shared_key mismatch");
        return;
    }
    if (f->fc->n_users && check_user(c, &ping) != 0) return;
    char digest[129];
    if (sl_fwd_ping_digest(ping.salt, ping.salt_len, f->host, f->host_len, c->nonce,
                           sizeof c->nonce, key, strlen(key), digest) != 0) {
        send_pong_fail(c, "internal error computing the digest");
        return;
    }
    uint8_t buf[512];
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, buf, sizeof buf);
    sl_fwd_pong(1, "", 0, f->host, f->host_len, digest, &w);
    if (w.overflow) {
        send_pong_fail(c, "self_hostname too long");
        return;
    }
    queue_write(c, buf, w.len);
    c->state = C_OPEN;
    SL_DEBUG(f->name, "%s: authenticated (client host %.*s%s%.*s)", c->peer, (int)ping.host_len,
             ping.host, f->fc->n_users ? ", user " : "", f->fc->n_users ? (int)ping.user_len : 0,
             ping.user);
    conn_write(c);
}

/* ---------------------------------------------------------------- frames */

/* Decodes one frame, growing the gzip buffer as needed. */
static int decode_frame(struct sl_fwd_in *f, const uint8_t *frame, size_t n,
                        struct sl_fwd_request *req, sl_fwd_event_cb cb, void *ctx, char *err,
                        size_t errlen)
{
    int rc;
    for (;;) {
        struct sl_fwd_decode_opts o = {.zbuf = f->zbuf, .zcap = f->zcap, .zarena = f->zarena};
        rc = sl_fwd_decode(frame, n, &o, req, cb, ctx, err, errlen);
        /* The inflated size is unknown until inflating: start small and retry larger up to
         * the frame limit. A rejected frame yielded no events, so a retry repeats nothing. */
        size_t max = f->fc->max_frame_size;
        if (rc == SL_FWD_ERROR && f->zcap < max &&
            (strncmp(err, "decompressed size exceeds", 25) == 0 ||
             strncmp(err, "gzip payload but no decompression buffer", 40) == 0)) {
            size_t want = f->zcap ? f->zcap * 2 : ZBUF_MIN;
            if (want < 4 * n) want = 4 * n;
            if (want > max) want = max;
            f->zbuf = resize(f, f->zbuf, &f->zcap, want);
            continue;
        }
        break;
    }
    if (f->zcap > ZBUF_KEEP) f->zbuf = resize(f, f->zbuf, &f->zcap, 0);
    if (f->scratch_cap > SCRATCH_KEEP) f->scratch = resize(f, f->scratch, &f->scratch_cap, 0);
    return rc;
}

/* The id prefix of a request without a chunk option: unique per process, connection, request. */
static size_t chunkless_id(const struct fconn *c, char *out, size_t n)
{
    int r = snprintf(out, n, "%s.%llu.%llu", c->f->boot, (unsigned long long)c->id,
                     (unsigned long long)c->frame_seq);
    return r < 0 ? 0 : (size_t)r;
}

/* Returns 0, or -1 when the connection must close (protocol error, logged). */
static int process_frame(struct fconn *c, const uint8_t *frame, size_t n)
{
    struct sl_fwd_in *f = c->f;
    f->frames++;
    if (c->state == C_AUTH) {
        handle_ping(c, frame, n);
        return 0;
    }
    struct sl_fwd_request req;
    char err[SL_FWD_ERRLEN + 64];
    char cid[64];
    struct dctx d = {.f = f,
                     .peer = c->peer,
                     .trk = c->trk,
                     .next_index = &c->next_index,
                     .chunkless_id = cid,
                     .chunkless_id_len = chunkless_id(c, cid, sizeof cid)};
    int rc = decode_frame(f, frame, n, &req, on_event, &d, err, sizeof err);
    c->frame_seq++;
    if (rc == SL_FWD_ERROR) {
        protocol_error(c, "invalid request", err);
        return -1;
    }
    if (req.mode != SL_FWD_KEEPALIVE && req.opt.chunk) push_ack(c, &req.opt, c->next_index);
    return 0;
}

/* ---------------------------------------------------------------- ack: stored
 *
 * Reading a connection appends each complete request to the store (it stays in the read buffer,
 * rbuf[0..wr_end), until synced). After the loop iteration, one fdatasync makes the whole group
 * durable (sync_cb); then the acks of the group go out and the read buffers drop those bytes.
 * The pipeline is fed from the store, not from the sockets (feed_cb): in order, as the budget
 * allows, at start-up first what an earlier run left. A write or sync error rolls the group back:
 * no ack, the requests stay in the read buffers, no connection is read, and a retry every
 * STORE_RETRY_MS rewrites them into a new segment. */

static void conn_update_all(struct sl_fwd_in *f)
{
    for (struct fconn *c = f->conns; c; c = c->next)
        conn_update_events(c);
}

/* Re-processes every connection's buffered requests (after the store can take them again). */
static void conn_process_all(struct sl_fwd_in *f)
{
    for (struct fconn *c = f->conns, *next; c; c = next) {
        next = c->next;
        if (c->closed || c->doomed) continue;
        if (conn_process(c) != 0) {
            conn_close(c, NULL);
            continue;
        }
        conn_update_events(c);
    }
}

static void drop_unsynced_acks(struct fconn *c)
{
    struct sl_fwd_in *f = c->f;
    struct ackent **pp = &c->ack_head;
    c->ack_tail = NULL;
    while (*pp && (*pp)->end <= (int64_t)f->recs_synced) {
        c->ack_tail = *pp;
        pp = &(*pp)->next;
    }
    while (*pp) {
        struct ackent *a = *pp;
        *pp = a->next;
        size_t sz = sizeof *a + a->len;
        c->ack_bytes -= sz;
        sl_budget_release(&f->p->budget, sz);
        free(a);
    }
}

static void store_failed(struct sl_fwd_in *f, const char *op)
{
    int e = errno;
    f->storage_errors++;
    SL_ERROR(f->name, "storage_error",
             "%s %s failed: %s; requests are not acknowledged and connections are not read "
             "until the store works again (retrying every %d ms)",
             op, sl_fwdstore_errpath(f->st), strerror(e), STORE_RETRY_MS);
    sl_fwdstore_rollback(f->st);
    f->recs_written = f->recs_synced;
    for (struct fconn *c = f->conns; c; c = c->next) {
        drop_unsynced_acks(c);
        c->wr_end = 0;
        sl_mp_framer_reset(&c->fr);
    }
    f->st_error = true;
    f->st_error_seen = true;
    f->st_retry_at = sl_now_ms() + STORE_RETRY_MS;
    conn_update_all(f);
}

static void store_full(struct sl_fwd_in *f)
{
    if (!f->st_full) {
        struct sl_fwdstore_stats ss;
        sl_fwdstore_stats(f->st, &ss);
        f->st_full = true;
        f->storage_full++;
        SL_WARN(f->name, "storage_full",
                "store %s is full (%llu bytes, storage_max_size %llu): not reading connections "
                "until delivered events free space",
                sl_fwdstore_dir(f->st), (unsigned long long)ss.used,
                (unsigned long long)f->p->cfg->service.storage_max_size);
    }
    conn_update_all(f);
}

static int stop_at_first_event(void *ctx, const struct sl_fwd_request *req,
                               const struct sl_fwd_event *ev)
{
    (void)ctx;
    (void)req;
    (void)ev;
    return 1;
}

/* Appends one request to the store. Returns 0 (appended), 1 (the store takes nothing now: full
 * or failed), -1 (invalid request: close the connection). */
static int store_frame(struct fconn *c, const uint8_t *frame, size_t n)
{
    struct sl_fwd_in *f = c->f;
    struct sl_fwd_request req;
    char err[SL_FWD_ERRLEN + 64];
    /* Frame errors are found before the first event, so stopping there validates the request
     * without converting anything: a request we would reject is neither stored nor acked. */
    if (decode_frame(f, frame, n, &req, stop_at_first_event, NULL, err, sizeof err) ==
        SL_FWD_ERROR) {
        protocol_error(c, "invalid request", err);
        return -1;
    }
    char cid[64];
    size_t cl = req.opt.chunk ? 0 : chunkless_id(c, cid, sizeof cid);
    errno = 0;
    int r = sl_fwdstore_append(f->st, cid, cl, frame, n);
    if (r == SL_FWDSTORE_FULL) {
        store_full(f);
        return 1;
    }
    if (r != 0) {
        store_failed(f, "write");
        return 1;
    }
    c->frame_seq++;
    f->frames++;
    f->stored_requests++;
    f->recs_written++;
    if (req.mode != SL_FWD_KEEPALIVE && req.opt.chunk)
        push_ack(c, &req.opt, (int64_t)f->recs_written);
    if (!f->sync_t.active) sl_timer_start(f->p->loop, &f->sync_t, 0);
    return 0;
}

static int conn_process_stored(struct fconn *c)
{
    struct sl_fwd_in *f = c->f;
    while (!c->closed && !c->doomed && !c->close_after_write && !f->st_error && !f->st_full &&
           c->wr_end < c->rlen) {
        size_t off = c->wr_end, n = 0;
        const char *err = NULL;
        enum sl_mp_frame_status st = sl_mp_framer_scan(&c->fr, c->rbuf + off, c->rlen - off,
                                                       f->fc->max_frame_size, &n, &err);
        if (st == SL_MP_FRAME_MORE) {
            /* Grow only while nothing waits for a sync; else the sync makes room. */
            if (off == 0 && n > c->rcap && c->rcap < f->fc->max_frame_size) {
                size_t want = c->rcap * 2 > n ? c->rcap * 2 : n;
                if (want > f->fc->max_frame_size) want = f->fc->max_frame_size;
                c->rbuf = resize(f, c->rbuf, &c->rcap, want);
            }
            return 0;
        }
        if (st == SL_MP_FRAME_ERROR) {
            char msg[160];
            snprintf(msg, sizeof msg, "%s (max_frame_size %llu)", err ? err : "invalid frame",
                     (unsigned long long)f->fc->max_frame_size);
            protocol_error(c, "cannot cut a request from the stream", msg);
            return -1;
        }
        int r = store_frame(c, c->rbuf + off, n);
        if (r < 0) return -1;
        if (r > 0) return 0;
        sl_mp_framer_reset(&c->fr);
        c->wr_end = off + n;
    }
    return 0;
}

static void sync_cb(struct sl_timer *t)
{
    struct sl_fwd_in *f = t->arg;
    if (sl_fwdstore_dirty(f->st)) {
        errno = 0;
        if (sl_fwdstore_sync(f->st) != 0) {
            store_failed(f, "fdatasync");
            return;
        }
        if (f->st_error_seen) {
            f->st_error_seen = false;
            SL_INFO(f->name, "store %s works again; acknowledging", sl_fwdstore_dir(f->st));
        }
    }
    f->recs_synced = f->recs_written;
    for (struct fconn *c = f->conns, *next; c; c = next) {
        next = c->next;
        if (c->wr_end) {
            memmove(c->rbuf, c->rbuf + c->wr_end, c->rlen - c->wr_end);
            c->rlen -= c->wr_end;
            c->wr_end = 0;
            if (c->rcap > RBUF_KEEP && c->rlen <= RBUF_MIN / 2)
                c->rbuf = resize(f, c->rbuf, &c->rcap, RBUF_MIN);
        }
        flush_acks(c);
        if (c->closed || c->doomed) continue;
        /* complete requests that did not fit before the sync */
        if (conn_process(c) != 0) {
            conn_close(c, NULL);
            continue;
        }
        conn_update_events(c);
    }
    if (!f->feed_t.active) sl_timer_start(f->p->loop, &f->feed_t, 0);
}

static bool feed_room(const struct sl_fwd_in *f)
{
    const struct sl_budget *b = &f->p->budget;
    /* An eighth of the budget stays for the connections' read buffers, which go on filling
     * the store while the outputs hold the rest (e.g. Elasticsearch down). */
    return !f->stopping && !sl_pipeline_backpressure(f->p) && b->used < b->limit - b->limit / 8;
}

static void store_gc(struct sl_fwd_in *f)
{
    uint64_t freed = sl_fwdstore_gc(f->st, f->st_done, f->st_next_index);
    if (freed && f->st_full) {
        f->st_full = false;
        SL_DEBUG(f->name, "store has room again (%llu bytes freed)", (unsigned long long)freed);
        conn_process_all(f);
    }
}

static void feed_cb(struct sl_timer *t)
{
    struct sl_fwd_in *f = t->arg;
    size_t fed = 0;
    int r = 0;
    while (fed < FEED_BURST && feed_room(f)) {
        struct sl_fwdrec rec;
        r = sl_fwdstore_next(f->st, f->st_next_index, &rec);
        if (r <= 0) break;
        struct sl_fwd_request req;
        char err[SL_FWD_ERRLEN + 64];
        struct dctx d = {.f = f,
                         .peer = "stored request",
                         .trk = f->strk,
                         .next_index = &f->st_next_index,
                         .chunkless_id = (const char *)rec.id,
                         .chunkless_id_len = rec.id_len};
        if (decode_frame(f, rec.frame, rec.frame_len, &req, on_event, &d, err, sizeof err) ==
            SL_FWD_ERROR) {
            /* only if max_frame_size shrank since it was stored: it was valid then */
            f->protocol_errors++;
            SL_ERROR(f->name, "storage_decode", "a stored request cannot be decoded: %s; skipped",
                     err);
        }
        fed += rec.total;
    }
    f->feed_waiting = r == 1;
    store_gc(f);
    sl_pipeline_dl_commit(f->p);
    if (r == 1 && feed_room(f) && !f->feed_t.active) sl_timer_start(f->p->loop, &f->feed_t, 0);
}

/* The store's tracker moved: segments may be deletable. Not here (the tracker is being walked
 * and a record being fed may point into the store's buffer): on the feed timer. */
static void store_advance(struct sl_acktrack *trk, int64_t commit_next, void *owner)
{
    (void)trk;
    struct sl_fwd_in *f = owner;
    f->st_done = commit_next;
    if (!f->feed_t.active) sl_timer_start(f->p->loop, &f->feed_t, 0);
}

/* Whether a buffered request may be taken in now. While paused, complete requests are still
 * taken in below the limit (the resume mark is for reading) and when nothing is in flight: then
 * the buffers hold the memory and nothing else would ever release it: complete requests sat
 * there unacked for good, with nothing in flight, when this waited for the resume mark. */
static bool may_take(const struct sl_fwd_in *f)
{
    if (f->stopping) return false;
    if (!f->paused) return true;
    return !sl_pipeline_backpressure(f->p) || sl_pipeline_pending(f->p) == 0;
}

/* Cuts and processes the complete frames in the read buffer. Returns -1 when the connection
 * must close. */
static int conn_process_mem(struct fconn *c)
{
    struct sl_fwd_in *f = c->f;
    size_t off = 0;
    int rc = 0;
    while (!c->closed && !c->doomed && !c->close_after_write && may_take(f) && off < c->rlen &&
           !(f->stored && c->state == C_OPEN)) {
        size_t n = 0;
        const char *err = NULL;
        enum sl_mp_frame_status st = sl_mp_framer_scan(&c->fr, c->rbuf + off, c->rlen - off,
                                                       f->fc->max_frame_size, &n, &err);
        if (st == SL_MP_FRAME_MORE) {
            c->need = n + FRAME_SLACK;
            /* Make room for the frame's known minimum size, so it can arrive in few reads:
             * first by moving it to the front, and only if it still does not fit by growing.
             * (Growing before moving doubled the buffer of a client that pipelines requests,
             * to 2 MiB per connection for 265 KB requests, all of it charged to the budget.) */
            if (n > c->rcap - off) {
                if (off) {
                    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
                    c->rlen -= off;
                    off = 0;
                }
                if (n > c->rcap && c->rcap < f->fc->max_frame_size) {
                    /* n is a lower bound: for PackedForward it lacks the option map, whose
                     * few bytes would otherwise need a second growth of the whole frame */
                    size_t want = c->rcap * 2 > c->need ? c->rcap * 2 : c->need;
                    size_t min = c->need;
                    if (want > f->fc->max_frame_size) want = f->fc->max_frame_size;
                    if (min > f->fc->max_frame_size) min = f->fc->max_frame_size;
                    grow_rbuf(c, want, min); /* refused: fills its room, then waits */
                }
            }
            break;
        }
        if (st == SL_MP_FRAME_ERROR) {
            char msg[160];
            snprintf(msg, sizeof msg, "%s (max_frame_size %llu)", err ? err : "invalid frame",
                     (unsigned long long)f->fc->max_frame_size);
            protocol_error(c, "cannot cut a request from the stream", msg);
            rc = -1;
            break;
        }
        sl_mp_framer_reset(&c->fr);
        c->need = 0;
        if (f->claim == c) { /* a granted claim ends with its request */
            f->claim = NULL;
            f->claim_granted = false;
        }
        if (process_frame(c, c->rbuf + off, n) != 0) {
            rc = -1;
            break;
        }
        off += n;
        if (!f->stored && !f->paused && sl_pipeline_backpressure(f->p)) {
            /* Leave the rest buffered: it is neither taken in nor acked until we resume. */
            update_backpressure(f);
        }
    }
    if (c->closed) return rc;
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    if (c->rcap > RBUF_KEEP && c->rlen <= RBUF_MIN / 2) {
        size_t want = RBUF_MIN;
        c->rbuf = resize(f, c->rbuf, &c->rcap, want);
    }
    return rc;
}

static int conn_process(struct fconn *c)
{
    if (!c->f->stored) return conn_process_mem(c);
    if (c->state == C_AUTH) {
        /* the handshake is answered directly; what follows it is stored */
        int rc = conn_process_mem(c);
        if (rc != 0 || c->closed || c->state == C_AUTH) return rc;
    }
    return conn_process_stored(c);
}

static void conn_read(struct fconn *c)
{
    struct sl_fwd_in *f = c->f;
    size_t left = READ_BURST;
    while (reading(c) && left > 0) {
        if (c->rcap == 0 && !grow_rbuf(c, RBUF_MIN, RBUF_MIN)) break;
        if (c->rlen == c->rcap) {
            /* Full of one unfinished frame that the framer has not sized yet: grow, by at most
             * 1 MiB at a time past that, so a large frame's last bytes ask little room. */
            size_t want = c->rcap + (c->rcap < RBUF_KEEP ? c->rcap : RBUF_KEEP);
            size_t min = c->rcap + RBUF_MIN;
            if (min < c->need) min = c->need; /* a growth refused earlier: all at once */
            if (want < min) want = min;
            if (want > f->fc->max_frame_size) want = f->fc->max_frame_size;
            if (min > f->fc->max_frame_size) min = f->fc->max_frame_size;
            if (want <= c->rcap) {
                protocol_error(c, "request too large", "exceeds max_frame_size");
                conn_close(c, NULL);
                return;
            }
            if (!grow_rbuf(c, want, min)) break;
        }
        ssize_t r = conn_recv(c, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (r > 0) {
            c->rlen += (size_t)r;
            f->bytes_read += (uint64_t)r;
            left -= (size_t)r < left ? (size_t)r : left;
            c->last_ms = sl_now_ms();
            if (conn_process(c) != 0) {
                conn_close(c, NULL);
                return;
            }
        } else if (r == 0) {
            c->eof = true;
            if (c->rlen > c->wr_end) {
                char msg[96];
                snprintf(msg, sizeof msg, "%zu bytes of an incomplete request", c->rlen);
                protocol_error(c, "connection closed inside a request", msg);
                conn_close(c, NULL);
                return;
            }
            if (c->state == C_AUTH || finished(c)) {
                conn_close(c, "end of stream");
                return;
            }
            /* Half-closed: the client may still wait for acks of what it sent. */
            conn_update_events(c);
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            SL_DEBUG(f->name, "%s: read failed: %s", c->peer, strerror(errno));
            conn_close(c, NULL);
            return;
        }
    }
}

/* Drives the TLS handshake of a new connection. */
static void conn_tls_step(struct fconn *c)
{
    struct sl_fwd_in *f = c->f;
    char err[320];
    int r = sl_tls_handshake(c->ssl, err, sizeof err);
    if (r == SL_TLS_WANT_READ || r == SL_TLS_WANT_WRITE) {
        c->hs_want = r == SL_TLS_WANT_READ ? EPOLLIN : EPOLLOUT;
        conn_update_events(c);
        return;
    }
    if (r == SL_TLS_EOF) {
        /* a TCP connect-and-close (fluentd's transport heartbeat) is no failure */
        conn_close(c, "closed during the TLS handshake");
        return;
    }
    if (r != SL_TLS_OK) {
        f->tls_handshake_failures++;
        SL_WARN(f->name, "tls_handshake", "%s: %s; closing this connection", c->peer, err);
        conn_close(c, NULL);
        return;
    }
    c->tls_hs = false;
    c->last_ms = sl_now_ms();
    SL_DEBUG(f->name, "%s: TLS established (%s, %s)", c->peer, SSL_get_version(c->ssl),
             SSL_get_cipher_name(c->ssl));
    conn_write(c); /* the HELO, if any */
    if (!c->closed && !c->doomed && reading(c)) conn_read(c);
}

static void conn_io(struct sl_io *io, uint32_t events)
{
    struct fconn *c = io->arg;
    struct sl_fwd_in *f = c->f;
    if (c->closed) return;
    if (c->tls_hs) {
        conn_tls_step(c);
        if (!c->closed && c->doomed) conn_close(c, NULL);
        sl_pipeline_dl_commit(f->p);
        return;
    }
    /* TLS may need the other direction to make progress (rd_want / wr_want). */
    uint32_t wr_ev = c->wr_want ? c->wr_want : EPOLLOUT;
    uint32_t rd_ev = (c->rd_want ? c->rd_want : EPOLLIN) | EPOLLHUP | EPOLLERR;
    if (events & (wr_ev | EPOLLERR)) conn_write(c);
    if (!c->closed && !c->doomed && (events & rd_ev)) {
        if (reading(c))
            conn_read(c);
        else if (events & (EPOLLHUP | EPOLLERR))
            conn_close(c, "peer gone"); /* whatever it sent unacked is resent elsewhere */
    }
    if (!c->closed) {
        if (c->doomed)
            conn_close(c, NULL);
        else
            conn_update_events(c);
    }
    /* Records dead-lettered in this burst are acked once their lines are durable. */
    sl_pipeline_dl_commit(f->p);
}

/* ---------------------------------------------------------------- accept, heartbeat */

static void peer_name(const struct sockaddr *sa, socklen_t len, char *out, size_t n)
{
    char h[64], s[16];
    if (sa->sa_family == AF_UNIX) {
        static unsigned long long seq; /* Unix peers have no address: number them */
        snprintf(out, n, "unix#%llu", ++seq);
        return;
    }
    if (getnameinfo(sa, len, h, sizeof h, s, sizeof s, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, n, "?");
        return;
    }
    snprintf(out, n, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", h, s);
}

static void conn_new(struct sl_fwd_in *f, int fd, const struct sockaddr *sa, socklen_t len,
                     bool tls)
{
    struct fconn *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->f = f;
    c->id = ++f->next_conn_id;
    peer_name(sa, len, c->peer, sizeof c->peer);
    c->io = (struct sl_io){.fd = fd, .cb = conn_io, .arg = c};
    sl_mp_framer_reset(&c->fr);
    c->trk = sl_acktrack_new(c, on_advance);
    if (!c->trk) abort();
    c->opened_ms = c->last_ms = sl_now_ms();
    c->state = f->fc->shared_key ? C_AUTH : C_OPEN;
    int one = 1;
    /* Acks are small and a client waits for each: do not let Nagle hold them back. */
    if (sa->sa_family != AF_UNIX) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->next = f->conns;
    if (f->conns) f->conns->prev = c;
    f->conns = c;
    f->n_conns++;
    f->connections_total++;
    SL_DEBUG(f->name, "%s: connected (%zu open)", c->peer, f->n_conns);
    if (tls) {
        c->ssl = SSL_new(f->tls);
        if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
            SL_ERROR(f->name, "tls", "%s: cannot set up TLS (out of memory?)", c->peer);
            if (c->ssl) SSL_free(c->ssl);
            c->ssl = NULL;
            conn_close(c, NULL);
            return;
        }
        sl_budget_charge(&f->p->budget, SL_TLS_CONN_COST);
        SSL_set_accept_state(c->ssl);
        c->tls_hs = true;
        c->hs_want = EPOLLIN;
    }
    if (c->state == C_AUTH) {
        if (getrandom(c->nonce, sizeof c->nonce, 0) != (ssize_t)sizeof c->nonce ||
            getrandom(c->auth, sizeof c->auth, 0) != (ssize_t)sizeof c->auth) {
            SL_ERROR(f->name, "getrandom", "getrandom failed: %s", strerror(errno));
            conn_close(c, NULL);
            return;
        }
        uint8_t buf[128];
        struct sl_mp_wbuf w;
        sl_mp_wbuf_init(&w, buf, sizeof buf);
        sl_fwd_helo(c->nonce, c->auth, 1, &w);
        queue_write(c, buf, w.len);
        conn_write(c);
    } else {
        conn_update_events(c);
    }
}

/* TLS: connections that read again while OpenSSL holds bytes for them (no epoll event comes). */
static void drain_cb(struct sl_timer *t)
{
    struct sl_fwd_in *f = t->arg;
    for (struct fconn *c = f->conns, *next; c; c = next) {
        next = c->next;
        if (c->closed || c->doomed || !c->ssl || c->tls_hs || !reading(c) ||
            !SSL_has_pending(c->ssl))
            continue;
        conn_read(c);
        if (c->closed) continue;
        if (c->doomed)
            conn_close(c, NULL);
        else
            conn_update_events(c);
    }
    sl_pipeline_dl_commit(f->p);
}

static void listeners_set(struct sl_fwd_in *f, uint32_t ev)
{
    if (f->lfd >= 0) sl_loop_io_set(f->p->loop, &f->lio, ev);
    if (f->xfd >= 0) sl_loop_io_set(f->p->loop, &f->xio, ev);
}

static void listen_io(struct sl_io *io, uint32_t events)
{
    (void)events;
    struct sl_fwd_in *f = io->arg;
    for (int i = 0; i < ACCEPT_BURST; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(io->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            /* EMFILE and friends leave the listener readable: stop polling it for a while
             * instead of spinning. */
            SL_WARN(f->name, "accept", "accept: %s; not accepting for 1 s", strerror(errno));
            f->accept_off = true;
            f->accept_off_until = sl_now_ms() + 1000;
            listeners_set(f, 0);
            return;
        }
        if (f->n_conns >= f->fc->max_connections) {
            char peer[64];
            peer_name((struct sockaddr *)&ss, len, peer, sizeof peer);
            f->connections_rejected++;
            SL_WARN(f->name, "max_connections", "%s: refused: max_connections (%u) reached", peer,
                    (unsigned)f->fc->max_connections);
            close(fd);
            continue;
        }
        conn_new(f, fd, (struct sockaddr *)&ss, len, io == &f->lio && f->tls);
    }
}

static void udp_io(struct sl_io *io, uint32_t events)
{
    (void)events;
    struct sl_fwd_in *f = io->arg;
    for (int i = 0; i < 64; i++) {
        char buf[128];
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        ssize_t r = recvfrom(f->ufd, buf, sizeof buf, 0, (struct sockaddr *)&ss, &len);
        if (r < 0) return;
        f->heartbeats++;
        /* fluentd answers every datagram with one 0x00 byte to its source. */
        static const char zero = 0;
        sendto(f->ufd, &zero, 1, MSG_DONTWAIT, (struct sockaddr *)&ss, len);
    }
}

/* ---------------------------------------------------------------- backpressure, timers */

static void set_paused(struct sl_fwd_in *f, bool pause)
{
    if (f->paused == pause) return;
    f->paused = pause;
    if (pause) {
        f->pauses++;
        f->paused_since = sl_now_ms();
    } else {
        f->paused_ms += sl_now_ms() - f->paused_since;
    }
    SL_DEBUG(f->name, "%s reading %zu connections (budget %llu/%llu bytes)",
             pause ? "stopped" : "resumed", f->n_conns, (unsigned long long)f->p->budget.used,
             (unsigned long long)f->p->budget.limit);
    for (struct fconn *c = f->conns, *next; c; c = next) {
        next = c->next;
        if (!pause && !f->stopping && conn_process(c) != 0) {
            conn_close(c, NULL);
            continue;
        }
        conn_update_events(c);
    }
}

static void update_backpressure(struct sl_fwd_in *f)
{
    if (f->stopping) {
        set_paused(f, true);
        return;
    }
    /* With ack: stored, reading only writes to the store (the feeder is what waits for the
     * pipeline), so only a full budget stops it. */
    bool bp = f->stored ? sl_budget_full(&f->p->budget) : sl_pipeline_backpressure(f->p);
    if (!f->paused && bp) {
        /* Send what is batched now: waiting for batch_max_wait would only hold memory longer. */
        for (size_t i = 0; i < f->p->n_outputs; i++)
            f->p->outputs[i].ops->flush(f->p->outputs[i].impl);
        set_paused(f, true);
    } else if (f->paused && sl_budget_can_resume(&f->p->budget) && !bp) {
        set_paused(f, false);
    }
}

static bool has_whole_frame(const struct fconn *c)
{
    size_t n = 0;
    return !c->doomed && !c->closed && c->rlen &&
           sl_mp_frame_len(c->rbuf, c->rlen, c->f->fc->max_frame_size, &n, NULL) ==
               SL_MP_FRAME_DONE;
}

/* Paused: takes in the complete requests the buffers hold, as far as may_take allows (one
 * request when nothing is in flight). The scan starts after the connection served last, so
 * one pipelining client does not keep the others' requests waiting. */
static void process_held(struct sl_fwd_in *f)
{
    if (f->stored || !f->paused || !may_take(f)) return;
    struct fconn *start = f->conns;
    for (struct fconn *c = f->conns; c; c = c->next)
        if (c->id == f->held_turn && c->next) start = c->next;
    for (int pass = 0; pass < 2; pass++) {
        for (struct fconn *c = pass ? f->conns : start, *next; c; c = next) {
            next = c->next;
            if (pass && c == start) return;
            if (!has_whole_frame(c)) continue;
            f->held_turn = c->id;
            if (conn_process(c) != 0)
                conn_close(c, NULL);
            else
                conn_update_events(c);
            if (!may_take(f)) return;
        }
    }
}

/* Starved connections are read again once the budget has room; the first to read grows.
 * force (the breaker): without a claim, wake them anyway, so that the first refused again
 * claims the room it needs and the next breaker run frees it. */
static void unstarve(struct sl_fwd_in *f, bool force)
{
    const struct sl_budget *b = &f->p->budget;
    if (f->claim && f->claim_granted) {
        f->claim->starved = false;
        conn_update_events(f->claim);
        return;
    }
    if (f->paused) return;
    if (f->claim) {
        /* only the claim's owner: waking the others would only refuse them again */
        if (b->used + f->claim_bytes > b->limit) return;
        f->claim->starved = false;
        conn_update_events(f->claim);
        return;
    }
    if (b->used + RBUF_MIN > b->limit && !force) return;
    f->starving = false;
    for (struct fconn *c = f->conns; c; c = c->next) {
        if (!c->starved) continue;
        c->starved = false;
        conn_update_events(c);
    }
}

/* Reading waits (paused, or a connection starved) while nothing is in flight: only the read
 * buffers' own progress (bytes arriving, requests taken in) can change anything. */
static bool waiting_idle(struct sl_fwd_in *f, uint64_t now)
{
    bool starved = false;
    for (struct fconn *c = f->conns; c && !starved; c = c->next)
        starved = c->starved && !c->closed && !c->doomed;
    bool waiting = (f->paused || starved) && !f->stopping && sl_pipeline_pending(f->p) == 0;
    if (!waiting || f->bytes_read != f->progress_bytes || f->frames != f->progress_frames) {
        f->progress_bytes = f->bytes_read;
        f->progress_frames = f->frames;
        f->idle_since = waiting ? now : 0;
        f->stall_reported = false;
        return false;
    }
    if (!f->idle_since) f->idle_since = now;
    return true;
}

/* The connection the breaker closes: one whose unfinished request waits for budget (it cannot
 * finish, only hold memory), the biggest first; else the biggest holder of an unfinished
 * request. Never the claim's owner: it is the one the room is freed for. */
static struct fconn *pick_partial(struct sl_fwd_in *f)
{
    struct fconn *big = NULL, *any = NULL;
    for (struct fconn *c = f->conns; c; c = c->next) {
        if (c->doomed || c->closed || !c->rlen || c == f->claim) continue;
        if (!any || c->rcap > any->rcap) any = c;
        if (c->starved && (!big || c->rcap > big->rcap)) big = c;
    }
    return big ? big : any;
}

/* Whether the breaker freed enough: the claim fits, and a paused input can resume. */
static bool broken_enough(const struct sl_fwd_in *f)
{
    const struct sl_budget *b = &f->p->budget;
    if (f->claim && b->used + f->claim_bytes > b->limit) return false;
    return !f->paused || sl_budget_can_resume(b);
}

/* Partial requests wait in read buffers that count against the budget. If they hold it while
 * nothing is in flight and no byte arrives, no release will come and nothing is read: the
 * connections holding the most are closed without an ack until the input can read again; their
 * clients resend later, which loses nothing. */
static void break_partial_deadlock(struct sl_fwd_in *f, uint64_t now)
{
    if (f->stored || !f->idle_since || now - f->idle_since < PARTIAL_DEADLOCK_MS) return;
    while (!broken_enough(f)) {
        struct fconn *big = pick_partial(f);
        if (!big) {
            /* Nothing left to free but the claim's own request: it needs more than the budget
             * has beside what cannot be given back. Read it anyway, past the limit by at most
             * this one request (max_frame_size), instead of refusing it for ever. */
            if (f->claim && !f->claim_granted) {
                f->claim_granted = true;
                SL_INFO(f->name,
                        "%s: its request needs %zu more bytes than the budget has room for "
                        "(%llu of %llu bytes used, nothing in flight); reading it past the limit",
                        f->claim->peer, f->claim_bytes, (unsigned long long)f->p->budget.used,
                        (unsigned long long)f->p->budget.limit);
            }
            break;
        }
        f->partial_closed++;
        SL_WARN(f->name, "partial_deadlock",
                "%s: its unfinished request holds %zu bytes while reading waits for the budget "
                "(%llu of %llu bytes used) and nothing is in flight; closing it without an ack "
                "so the client resends",
                big->peer, big->rcap, (unsigned long long)f->p->budget.used,
                (unsigned long long)f->p->budget.limit);
        conn_close(big, NULL);
        if (broken_enough(f)) break;
    }
    f->idle_since = now; /* give the freed memory a period to take effect */
    update_backpressure(f);
    unstarve(f, true);
}

/* What the breaker could not resolve (the budget held by something else, or nothing to close)
 * is at least loud: once per stall, with the budget state. */
static void watch_stall(struct sl_fwd_in *f, uint64_t now)
{
    if (!f->idle_since || f->stall_reported || now - f->idle_since < STALL_WARN_MS) return;
    size_t held = 0, conns = 0, starved = 0;
    for (struct fconn *c = f->conns; c; c = c->next) {
        held += c->rcap;
        conns += c->rlen > 0;
        starved += c->starved;
    }
    f->stall_reported = true;
    f->stalls++;
    SL_WARN(f->name, "stalled",
            "no request taken in and no byte read for %llu ms while %s and nothing is in "
            "flight: budget %llu of %llu bytes used, read buffers hold %zu bytes in %zu "
            "connections, %zu waiting for budget",
            (unsigned long long)(now - f->idle_since),
            f->paused ? "paused for backpressure" : "connections wait for budget",
            (unsigned long long)f->p->budget.used, (unsigned long long)f->p->budget.limit, held,
            conns, starved);
}

static void tick_cb(struct sl_timer *t)
{
    struct sl_fwd_in *f = t->arg;
    uint64_t now = sl_now_ms();
    update_backpressure(f);
    process_held(f);
    unstarve(f, false);
    if (waiting_idle(f, now)) {
        break_partial_deadlock(f, now);
        watch_stall(f, now);
    }
    if (f->accept_off && now >= f->accept_off_until && !f->stopping) {
        f->accept_off = false;
        listeners_set(f, EPOLLIN);
    }
    for (struct fconn *c = f->conns, *next; c; c = next) {
        next = c->next;
        if (c->doomed) continue;
        if (c->tls_hs && now - c->opened_ms >= f->fc->handshake_timeout_ms) {
            f->tls_handshake_failures++;
            SL_WARN(f->name, "tls_handshake",
                    "%s: no TLS handshake within handshake_timeout (%llu ms); closing this "
                    "connection",
                    c->peer, (unsigned long long)f->fc->handshake_timeout_ms);
            conn_close(c, NULL);
        } else if (c->state == C_AUTH && !c->close_after_write &&
                   now - c->opened_ms >= f->fc->handshake_timeout_ms) {
            f->handshake_failures++;
            SL_WARN(f->name, "handshake", "%s: no valid PING within handshake_timeout (%llu ms)",
                    c->peer, (unsigned long long)f->fc->handshake_timeout_ms);
            conn_close(c, NULL);
        } else if (f->fc->idle_timeout_ms && c->state == C_OPEN && !c->ack_head &&
                   c->wpos == c->wlen && now - c->last_ms >= f->fc->idle_timeout_ms) {
            f->idle_closed++;
            conn_close(c, "idle_timeout");
        }
    }
    if (f->stored) {
        if (f->st_error && now >= f->st_retry_at && !f->stopping) {
            f->st_error = false;
            conn_process_all(f); /* rewrites what the failed group held, into a new segment */
            conn_update_all(f);
        }
        if (!f->feed_t.active) sl_timer_start(f->p->loop, &f->feed_t, 0);
    }
    sl_pipeline_dl_commit(f->p);
    sl_timer_start(f->p->loop, &f->tick,
                   f->paused || f->starving || (f->stored && f->feed_waiting) ? TICK_PAUSED_MS
                                                                              : TICK_MS);
}

/* ---------------------------------------------------------------- set-up */

static int split_listen(const char *s, char *host, size_t hn, char *port, size_t pn)
{
    const char *colon = strrchr(s, ':');
    if (!colon) return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= hn || strlen(colon + 1) >= pn) return -1;
    memcpy(host, h, hl);
    host[hl] = 0;
    snprintf(port, pn, "%s", colon + 1);
    return 0;
}

/* The Unix listener. A socket file left by a process that did not exit cleanly is replaced; one
 * a live process listens on, or a file that is not a socket, is an error. */
static int open_unix(struct sl_fwd_in *f, char *err, size_t errlen)
{
    const char *path = f->fc->unix_path;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "%s: unix_path %s is longer than %zu bytes", f->name, path,
                 sizeof sa.sun_path - 1);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s: unix_path %s exists and is not a socket; not replacing it",
                     f->name, path);
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int rc = probe < 0 ? -1 : connect(probe, (struct sockaddr *)&sa, sizeof sa);
        int e = errno;
        if (probe >= 0) close(probe);
        if (rc == 0) {
            snprintf(err, errlen, "%s: unix_path %s: another process is listening on it", f->name,
                     path);
            return -1;
        }
        if (e != ECONNREFUSED && e != ENOENT) {
            snprintf(err, errlen, "%s: unix_path %s: cannot tell whether it is in use: %s", f->name,
                     path, strerror(e));
            return -1;
        }
        if (unlink(path) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "%s: unix_path %s: cannot remove the stale socket: %s", f->name,
                     path, strerror(errno));
            return -1;
        }
        SL_INFO(f->name, "replaced the stale socket file %s (left by an unclean exit)", path);
    }
    f->xfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* Permissions are set between bind and listen: until listen, connects are refused. */
    if (f->xfd < 0 || bind(f->xfd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(err, errlen, "%s: unix_path %s: %s", f->name, path, strerror(errno));
        return -1;
    }
    if (chmod(path, (mode_t)f->fc->unix_mode) != 0 || listen(f->xfd, 512) != 0 ||
        stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: unix_path %s: %s", f->name, path, strerror(errno));
        unlink(path);
        return -1;
    }
    f->x_dev = st.st_dev;
    f->x_ino = st.st_ino;
    f->xio = (struct sl_io){.fd = f->xfd, .cb = listen_io, .arg = f};
    sl_loop_io_set(f->p->loop, &f->xio, EPOLLIN);
    return 0;
}

static int open_sockets(struct sl_fwd_in *f, char *err, size_t errlen)
{
    if (f->fc->unix_path && open_unix(f, err, errlen) != 0) return -1;
    if (!f->fc->listen) return 0;
    char host[256], port[16];
    if (split_listen(f->fc->listen, host, sizeof host, port, sizeof port) != 0) {
        snprintf(err, errlen, "%s: invalid listen address %s", f->name, f->fc->listen);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "%s: listen %s: %s", f->name, f->fc->listen, gai_strerror(gai));
        return -1;
    }
    f->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (f->lfd < 0 || setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(f->lfd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(f->lfd, 512) != 0 ||
        getsockname(f->lfd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(err, errlen, "%s: listen %s: %s", f->name, f->fc->listen, strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    /* The heartbeat socket takes the port the listener got (which matters for port 0). */
    f->ufd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f->ufd < 0 || bind(f->ufd, (struct sockaddr *)&ss, sl) != 0) {
        snprintf(err, errlen, "%s: UDP heartbeat socket on %s: %s", f->name, f->fc->listen,
                 strerror(errno));
        return -1;
    }
    char hbuf[64], sbuf[16];
    getnameinfo((struct sockaddr *)&ss, sl, hbuf, sizeof hbuf, sbuf, sizeof sbuf,
                NI_NUMERICHOST | NI_NUMERICSERV);
    f->port = atoi(sbuf);
    snprintf(f->addr, sizeof f->addr, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", hbuf, sbuf);
    f->lio = (struct sl_io){.fd = f->lfd, .cb = listen_io, .arg = f};
    f->uio = (struct sl_io){.fd = f->ufd, .cb = udp_io, .arg = f};
    sl_loop_io_set(f->p->loop, &f->lio, EPOLLIN);
    sl_loop_io_set(f->p->loop, &f->uio, EPOLLIN);
    return 0;
}

struct sl_fwd_in *sl_fwd_in_new(struct sl_pipeline *p, const struct sl_input_cfg *cfg, char *err,
                                size_t errlen)
{
    struct sl_fwd_in *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->p = p;
    f->cfg = cfg;
    f->fc = &cfg->forward;
    f->name = cfg->name;
    f->lfd = f->ufd = f->xfd = -1;
    f->tick = (struct sl_timer){.cb = tick_cb, .arg = f};
    f->drain = (struct sl_timer){.cb = drain_cb, .arg = f};
    f->reap = (struct sl_timer){.cb = reap_cb, .arg = f};
    err[0] = '\0';
    f->edits = sl_edits_new(&cfg->edits, &p->budget, err, errlen);
    if (!f->edits && err[0]) goto fail;
    if (f->fc->self_hostname)
        snprintf(f->host, sizeof f->host, "%s", f->fc->self_hostname);
    else if (gethostname(f->host, sizeof f->host - 1) != 0)
        snprintf(f->host, sizeof f->host, "localhost");
    f->host_len = strlen(f->host);
    uint8_t rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        snprintf(err, errlen, "%s: getrandom: %s", f->name, strerror(errno));
        goto fail;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(f->boot + 2 * i, 3, "%02x", rnd[i]);
    f->zarena = malloc(sizeof *f->zarena);
    if (!f->zarena) {
        snprintf(err, errlen, "%s: out of memory", f->name);
        goto fail;
    }
    sl_budget_charge(&p->budget, sizeof *f->zarena);
    scratch(f, RBUF_MIN);
    f->stored = f->fc->ack == SL_FWD_ACK_STORED;
    if (f->stored) {
        const struct sl_service_cfg *svc = &p->cfg->service;
        char serr[4400];
        f->st = sl_fwdstore_open(svc->storage_path, f->name, svc->storage_max_size,
                                 f->fc->max_frame_size + SL_FWDREC_ID_MAX, &p->budget, serr,
                                 sizeof serr);
        if (!f->st) {
            snprintf(err, errlen, "%s: %s", f->name, serr);
            goto fail;
        }
        f->strk = sl_acktrack_new(f, store_advance);
        if (!f->strk) {
            snprintf(err, errlen, "%s: out of memory", f->name);
            goto fail;
        }
        f->sync_t = (struct sl_timer){.cb = sync_cb, .arg = f};
        f->feed_t = (struct sl_timer){.cb = feed_cb, .arg = f};
        sl_timer_start(p->loop, &f->feed_t, 0);
    }
    if (f->fc->tls) {
        char terr[600];
        f->tls = sl_tls_server_ctx(f->fc->tls_cert_file, f->fc->tls_key_file, f->fc->tls_ca_file,
                                   f->fc->tls_verify_client, (int)f->fc->tls_min_version, terr,
                                   sizeof terr);
        if (!f->tls) {
            snprintf(err, errlen, "%s: tls: %s", f->name, terr);
            goto fail;
        }
    }
    if (open_sockets(f, err, errlen) != 0) goto fail;
    sl_timer_start(p->loop, &f->tick, TICK_MS);
    sl_pipeline_watch_room(p, &f->tick);
    char where[400];
    if (f->fc->listen)
        snprintf(where, sizeof where, "%s (tcp%s, udp heartbeat)%s%s", f->addr,
                 f->tls ? " with tls" : "", f->fc->unix_path ? " and unix:" : "",
                 f->fc->unix_path ? f->fc->unix_path : "");
    else
        snprintf(where, sizeof where, "unix:%s", f->fc->unix_path);
    SL_INFO(f->name,
            "listening on %s ack=%s handshake=%s users=%zu max_frame_size=%llu "
            "max_connections=%u",
            where, f->stored ? "stored" : "delivered", f->fc->shared_key ? "on" : "off",
            f->fc->n_users, (unsigned long long)f->fc->max_frame_size,
            (unsigned)f->fc->max_connections);
    return f;
fail:
    sl_fwd_in_close(f);
    return NULL;
}

static void close_listeners(struct sl_fwd_in *f)
{
    if (f->lfd >= 0) {
        sl_loop_io_set(f->p->loop, &f->lio, 0);
        close(f->lfd);
        f->lfd = -1;
    }
    if (f->ufd >= 0) {
        sl_loop_io_set(f->p->loop, &f->uio, 0);
        close(f->ufd);
        f->ufd = -1;
    }
    if (f->xfd >= 0) {
        sl_loop_io_set(f->p->loop, &f->xio, 0);
        close(f->xfd);
        f->xfd = -1;
        /* Removed only if it is still the file we bound (not one a newer process made). */
        struct stat st;
        if (lstat(f->fc->unix_path, &st) == 0 && st.st_dev == f->x_dev && st.st_ino == f->x_ino)
            unlink(f->fc->unix_path);
    }
}

void sl_fwd_in_stop(struct sl_fwd_in *f)
{
    f->stopping = true;
    close_listeners(f);
    update_backpressure(f);
}

void sl_fwd_in_close(struct sl_fwd_in *f)
{
    if (!f) return;
    close_listeners(f);
    while (f->conns)
        conn_close(f->conns, NULL);
    sl_pipeline_unwatch_room(f->p, &f->tick);
    sl_timer_stop(f->p->loop, &f->tick);
    sl_timer_stop(f->p->loop, &f->reap);
    sl_timer_stop(f->p->loop, &f->drain);
    reap_cb(&f->reap);
    if (f->tls) SSL_CTX_free(f->tls);
    if (f->stored) {
        sl_timer_stop(f->p->loop, &f->sync_t);
        sl_timer_stop(f->p->loop, &f->feed_t);
        /* Events still in flight finish into the revoked tracker; their segments stay and are
         * replayed by the next start (same ids: overwritten, not duplicated). */
        if (f->strk) sl_acktrack_revoke(f->strk);
        f->strk = NULL;
        sl_fwdstore_close(f->st);
        f->st = NULL;
    }
    f->scratch = resize(f, f->scratch, &f->scratch_cap, 0);
    f->tagbuf = resize(f, f->tagbuf, &f->tag_cap, 0);
    f->zbuf = resize(f, f->zbuf, &f->zcap, 0);
    if (f->zarena) sl_budget_release(&f->p->budget, sizeof *f->zarena);
    free(f->zarena);
    sl_edits_free(f->edits);
    free(f);
}

const struct sl_counters *sl_fwd_in_counters(const struct sl_fwd_in *f)
{
    return &f->ctr;
}

const char *sl_fwd_in_name(const struct sl_fwd_in *f)
{
    return f->name;
}

int sl_fwd_in_port(const struct sl_fwd_in *f)
{
    return f->port;
}

void sl_fwd_in_info(const struct sl_fwd_in *f, struct sl_fwd_in_info *out)
{
    *out = (struct sl_fwd_in_info){
        .paused = f->paused,
        .connections = f->n_conns,
        .connections_total = f->connections_total,
        .connections_rejected = f->connections_rejected,
        .protocol_errors = f->protocol_errors,
        .bytes_read = f->bytes_read,
        .frames = f->frames,
        .acks_sent = f->acks_sent,
        .handshake_failures = f->handshake_failures,
        .tls_handshake_failures = f->tls_handshake_failures,
        .heartbeats = f->heartbeats,
        .paused_ms = f->paused_ms + (f->paused ? sl_now_ms() - f->paused_since : 0),
        .partial_closed = f->partial_closed,
        .stalls = f->stalls,
        .starved_waits = f->starved_waits,
        .storage_errors = f->storage_errors,
        .storage_full = f->storage_full,
        .stored_requests = f->stored_requests,
    };
    if (f->st) {
        struct sl_fwdstore_stats ss;
        sl_fwdstore_stats(f->st, &ss);
        out->stored_bytes = ss.used;
        out->storage_corrupt = ss.corrupt;
        out->storage_torn_bytes = ss.torn_bytes;
    }
}

void sl_fwd_in_log_stats(struct sl_fwd_in *f)
{
    const struct sl_counters *c = &f->ctr;
    uint64_t paused = f->paused_ms + (f->paused ? sl_now_ms() - f->paused_since : 0);
    SL_INFO(f->name,
            "received=%llu delivered=%llu dead_lettered=%llu dropped=%llu in_flight=%llu "
            "parse_errors=%llu unmatched=%llu connections=%zu connections_total=%llu "
            "rejected=%llu protocol_errors=%llu handshake_failures=%llu "
            "tls_handshake_failures=%llu bytes_read=%llu "
            "frames=%llu acks=%llu heartbeats=%llu idle_closed=%llu partial_closed=%llu "
            "stalls=%llu starved_waits=%llu pauses=%llu paused_ms=%llu budget=%llu/%llu",
            (unsigned long long)c->received, (unsigned long long)c->delivered,
            (unsigned long long)c->dead_lettered, (unsigned long long)c->dropped,
            (unsigned long long)(c->received - c->delivered - c->dead_lettered - c->dropped),
            (unsigned long long)c->parse_errors, (unsigned long long)c->unmatched, f->n_conns,
            (unsigned long long)f->connections_total, (unsigned long long)f->connections_rejected,
            (unsigned long long)f->protocol_errors, (unsigned long long)f->handshake_failures,
            (unsigned long long)f->tls_handshake_failures, (unsigned long long)f->bytes_read,
            (unsigned long long)f->frames, (unsigned long long)f->acks_sent,
            (unsigned long long)f->heartbeats, (unsigned long long)f->idle_closed,
            (unsigned long long)f->partial_closed, (unsigned long long)f->stalls,
            (unsigned long long)f->starved_waits, (unsigned long long)f->pauses,
            (unsigned long long)paused, (unsigned long long)f->p->budget.used,
            (unsigned long long)f->p->budget.limit);
    if (f->st) {
        struct sl_fwdstore_stats ss;
        sl_fwdstore_stats(f->st, &ss);
        SL_INFO(f->name,
                "store: stored_requests=%llu stored_bytes=%llu segments=%llu replay_left=%llu "
                "fed_events=%lld finished_events=%lld storage_errors=%llu storage_full=%llu "
                "corrupt=%llu torn_bytes=%llu",
                (unsigned long long)f->stored_requests, (unsigned long long)ss.used,
                (unsigned long long)ss.segments, (unsigned long long)ss.replay_left,
                (long long)f->st_next_index, (long long)f->st_done,
                (unsigned long long)f->storage_errors, (unsigned long long)f->storage_full,
                (unsigned long long)ss.corrupt, (unsigned long long)ss.torn_bytes);
    }
}

static const char *ops_name(const void *impl)
{
    return sl_fwd_in_name(impl);
}

static const struct sl_counters *ops_counters(const void *impl)
{
    return sl_fwd_in_counters(impl);
}

static void ops_stop(void *impl)
{
    sl_fwd_in_stop(impl);
}

static void ops_close(void *impl)
{
    sl_fwd_in_close(impl);
}

static void ops_log_stats(void *impl)
{
    sl_fwd_in_log_stats(impl);
}

const struct sl_input_ops sl_fwd_in_ops = {
    .name = ops_name,
    .counters = ops_counters,
    .stop = ops_stop,
    .close = ops_close,
    .log_stats = ops_log_stats,
};
