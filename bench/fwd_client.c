/* bench/fwd_client: a Forward protocol load generator for sluice's Forward input.
 *
 * N connections on one epoll loop; each sends PackedForward requests of B records with a chunk
 * option and keeps up to K of them un-acked (pipelined, as Fluent Bit's require_ack_response
 * client would with several workers); every ack must name a chunk this connection has in flight.
 * Records are ~S bytes as JSON: {"seq":N,"level":"info","service":"checkout","host":"web-17",
 * "code":200,"msg":"..."} with msg padded to the size; seq runs 0..total-1 over all connections.
 * Frames are encoded with sluice's own pure codec (src/codec/forward.h) while the others are in
 * flight, so the client's cost is part of its loop, not a pre-built corpus in memory.
 *
 *   fwd_client -p PORT [-h HOST] [-n TOTAL] [-c CONNS] [-k WINDOW] [-b BATCH] [-s SIZE] [-t TAG]
 *              [-r RATE] [-T FIELD]
 *
 * -r RATE paces the events (bench/latency.py): event i is due at start + i / RATE seconds, and a
 * connection with room in its window sends what is due (at most BATCH events per request,
 * checked every millisecond), so requests are small at low rates. Without it every request has
 * BATCH events and goes as soon as the window allows. -T FIELD adds the event's time in
 * nanoseconds (CLOCK_REALTIME) under FIELD: when it was due with -r, when its request was built
 * without; esemu --latency-field FIELD measures from it.
 *
 * Output (stdout, one JSON line): {"events":N,"requests":R,"conns":C,"window":K,"batch":B,
 * "seconds":S,"events_per_s":E,"ack_ms":{"p50":..,"p99":..,"max":..},"errors":N,
 * "first_send_ns":T,"last_ack_ns":T}  (seconds: first send to last ack, CLOCK_MONOTONIC;
 * ack_ms: from the request's first byte written to its ack; *_ns: CLOCK_REALTIME). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "codec/forward.h"
#include "codec/msgpack.h"

#define MAX_WINDOW 4096

struct req {
    char chunk[32];
    size_t chunk_len;
    uint64_t sent_ns;
};

struct conn {
    int fd;
    unsigned idx;
    uint64_t next_req; /* requests started */
    uint64_t n_reqs;   /* requests this connection sends */
    uint64_t first_seq;
    struct req fly[MAX_WINDOW];
    unsigned n_fly;
    struct sl_mp_wbuf w; /* frame being written */
    size_t wpos;
    bool writing;
    uint8_t rbuf[4096];
    size_t rlen;
    bool done;
    bool ready; /* had an epoll event this round */
};

static uint64_t now_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int grow(struct sl_mp_wbuf *w, size_t need)
{
    size_t cap = w->cap ? w->cap : 65536;
    while (cap < need)
        cap *= 2;
    uint8_t *d = realloc(w->data, cap);
    if (!d) return -1;
    w->data = d;
    w->cap = cap;
    return 0;
}

static unsigned batch = 1000, rec_size = 250, window = 16;
static const char *tag = "bench.app";
static double rate;           /* -r: events per second, 0 = as fast as the windows allow */
static const char *stamp_key; /* -T */
static uint64_t total_events; /* -r: events over all connections */
static uint64_t next_seq;     /* -r: the next event to send, over all connections */
static uint64_t t0_mono, t0_real;
static uint64_t *lat_us;
static size_t n_lat;
static unsigned long errors;

/* One record as a msgpack map of ~rec_size JSON bytes, plus stamp_key: stamp_ns. */
static size_t encode_record(uint8_t *out, size_t cap, uint64_t seq, uint64_t stamp_ns)
{
    static char pad[4096];
    if (!pad[0]) memset(pad, 'x', sizeof pad - 1);
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, out, cap);
    sl_mp_w_map(&w, stamp_key ? 7 : 6);
    if (stamp_key) {
        sl_mp_w_str(&w, stamp_key, strlen(stamp_key));
        sl_mp_w_uint(&w, stamp_ns);
    }
    sl_mp_w_str(&w, "seq", 3);
    sl_mp_w_uint(&w, seq);
    sl_mp_w_str(&w, "level", 5);
    sl_mp_w_str(&w, "info", 4);
    sl_mp_w_str(&w, "service", 7);
    sl_mp_w_str(&w, "checkout", 8);
    sl_mp_w_str(&w, "host", 4);
    sl_mp_w_str(&w, "web-17", 6);
    sl_mp_w_str(&w, "code", 4);
    sl_mp_w_uint(&w, 200);
    /* JSON without msg: {"seq":1234567,"level":"info","service":"checkout","host":"web-17",
     * "code":200,"msg":""} is about 95 bytes */
    size_t base = 95, msg = rec_size > base + 8 ? rec_size - base : 8;
    if (msg > sizeof pad - 1) msg = sizeof pad - 1;
    static const char words[] = "GET /api/v1/orders/4711 served in 12 ms by worker 3; ";
    char m[4096];
    for (size_t i = 0; i < msg; i++)
        m[i] = words[i % (sizeof words - 1)];
    sl_mp_w_str(&w, "msg", 3);
    sl_mp_w_str(&w, m, msg);
    return w.overflow ? 0 : w.len;
}

/* A request of n events from seq on. */
static void build_frame(struct conn *c, uint64_t seq, uint64_t n_events)
{
    uint64_t r = c->next_req;
    struct req *q = &c->fly[c->n_fly];
    q->chunk_len = (size_t)snprintf(q->chunk, sizeof q->chunk, "b%03u-%010" PRIu64, c->idx, r);
    c->w.len = 0;
    c->w.overflow = 0;
    struct sl_fwd_packer pk;
    sl_fwd_packed_begin(&pk, &c->w, tag, strlen(tag));
    uint8_t rec[8192];
    int64_t t = (int64_t)now_ns(CLOCK_REALTIME);
    for (uint64_t i = 0; i < n_events; i++) {
        uint64_t stamp =
            rate > 0 ? t0_real + (uint64_t)((double)(seq + i) * 1e9 / rate) : (uint64_t)t;
        size_t n = encode_record(rec, sizeof rec, seq + i, stamp);
        sl_fwd_packed_add(&pk, t, rec, n);
    }
    if (sl_fwd_packed_end(&pk, q->chunk, q->chunk_len, 0) != 0) {
        fprintf(stderr, "fwd_client: encoding failed\n");
        exit(2);
    }
    c->wpos = 0;
    c->writing = true;
    c->next_req++;
    q->sent_ns = now_ns(CLOCK_MONOTONIC);
    c->n_fly++;
}

static void set_events(int ep, struct conn *c)
{
    struct epoll_event ev = {.events = EPOLLIN | (c->writing ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Events due by now (-r), over all connections. */
static uint64_t due_events(void)
{
    uint64_t due = (uint64_t)((double)(now_ns(CLOCK_MONOTONIC) - t0_mono) / 1e9 * rate) + 1;
    return due < total_events ? due : total_events;
}

/* Writes while the window has room (and, with -r, events are due). Returns -1 on a socket
 * error. */
static int pump_writes(struct conn *c)
{
    for (;;) {
        if (!c->writing) {
            if (c->n_fly >= window) return 0;
            if (rate > 0) {
                uint64_t due = due_events();
                if (next_seq >= due) return 0;
                uint64_t n = due - next_seq < batch ? due - next_seq : batch;
                build_frame(c, next_seq, n);
                next_seq += n;
                c->n_reqs++;
            } else {
                if (c->next_req >= c->n_reqs) return 0;
                build_frame(c, c->first_seq + c->next_req * batch, batch);
            }
        }
        while (c->wpos < c->w.len) {
            ssize_t n = send(c->fd, c->w.data + c->wpos, c->w.len - c->wpos, MSG_NOSIGNAL);
            if (n > 0) {
                c->wpos += (size_t)n;
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                return 0;
            } else {
                return -1;
            }
        }
        c->writing = false;
    }
}

static int on_ack(struct conn *c, const uint8_t *p, size_t n)
{
    struct sl_mp_reader r;
    struct sl_mp_obj m, k, v;
    sl_mp_reader_init(&r, p, n);
    if (sl_mp_read(&r, &m) != 0 || m.type != SL_MP_MAP || m.n != 1 || sl_mp_read(&r, &k) != 0 ||
        k.type != SL_MP_STR || k.n != 3 || memcmp(k.p, "ack", 3) != 0 || sl_mp_read(&r, &v) != 0 ||
        (v.type != SL_MP_STR && v.type != SL_MP_BIN))
        return -1;
    for (unsigned i = 0; i < c->n_fly; i++) {
        struct req *q = &c->fly[i];
        if (q->chunk_len == v.n && memcmp(q->chunk, v.p, v.n) == 0) {
            if (c->writing && i == c->n_fly - 1) return -1; /* acked before fully written */
            lat_us[n_lat++] = (now_ns(CLOCK_MONOTONIC) - q->sent_ns) / 1000;
            memmove(q, q + 1, (c->n_fly - i - 1) * sizeof *q);
            c->n_fly--;
            return 0;
        }
    }
    return -1;
}

static int pump_reads(struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen, 0);
        if (n == 0) return -1;
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            return -1;
        }
        c->rlen += (size_t)n;
        size_t off = 0;
        for (;;) {
            size_t len;
            const char *err;
            enum sl_mp_frame_status st =
                sl_mp_frame_len(c->rbuf + off, c->rlen - off, sizeof c->rbuf, &len, &err);
            if (st == SL_MP_FRAME_ERROR) return -1;
            if (st == SL_MP_FRAME_MORE) break;
            if (on_ack(c, c->rbuf + off, len) != 0) {
                errors++;
                fprintf(stderr, "fwd_client: connection %u: unexpected answer\n", c->idx);
            }
            off += len;
        }
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    uint64_t total = 1000000;
    unsigned conns = 4;
    int opt;
    while ((opt = getopt(argc, argv, "h:p:n:c:k:b:s:t:r:T:")) != -1) {
        switch (opt) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'n':
            total = strtoull(optarg, NULL, 10);
            break;
        case 'c':
            conns = (unsigned)atoi(optarg);
            break;
        case 'k':
            window = (unsigned)atoi(optarg);
            break;
        case 'b':
            batch = (unsigned)atoi(optarg);
            break;
        case 's':
            rec_size = (unsigned)atoi(optarg);
            break;
        case 't':
            tag = optarg;
            break;
        case 'r':
            rate = strtod(optarg, NULL);
            break;
        case 'T':
            stamp_key = optarg;
            break;
        default:
            fprintf(stderr, "usage: fwd_client -p PORT [-h HOST] [-n TOTAL] [-c CONNS] "
                            "[-k WINDOW] [-b BATCH] [-s SIZE] [-t TAG] [-r RATE] [-T FIELD]\n");
            return 2;
        }
    }
    if (!port || !conns || !batch || !window || window > MAX_WINDOW || rec_size > 4000 ||
        rate < 0) {
        fprintf(stderr, "fwd_client: bad arguments\n");
        return 2;
    }
    /* with -r requests are as small as one event */
    uint64_t n_reqs = rate > 0 ? total : total / batch;
    total_events = total;
    lat_us = calloc(n_reqs + 1, sizeof *lat_us);
    struct conn *cs = calloc(conns, sizeof *cs);
    int ep = epoll_create1(0);
    if (!lat_us || !cs || ep < 0) return 2;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) return 2;
    uint64_t seq0 = 0;
    for (unsigned i = 0; i < conns; i++) {
        struct conn *c = &cs[i];
        c->idx = i;
        c->n_reqs = rate > 0 ? 0 : n_reqs / conns + (i < n_reqs % conns); /* -r: counted up */
        c->first_seq = seq0;
        seq0 += c->n_reqs * batch;
        c->w.grow = grow;
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            perror("fwd_client: connect");
            return 1;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    uint64_t t0 = now_ns(CLOCK_MONOTONIC), first_send_rt = now_ns(CLOCK_REALTIME);
    t0_mono = t0;
    t0_real = first_send_rt;
    unsigned active = conns;
    for (unsigned i = 0; i < conns; i++) {
        if (pump_writes(&cs[i]) != 0) return 1;
        set_events(ep, &cs[i]);
    }
    struct epoll_event evs[64];
    uint64_t progress_ns = t0;
    unsigned rr = 0;
    while (active) {
        int timeout = 60000;
        if (rate > 0 && next_seq < total_events) {
            /* until the next event is due, in whole milliseconds: at high rates a request takes
             * what fell due during the last millisecond */
            double next_s = (double)next_seq / rate;
            double now_s = (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
            timeout = next_s <= now_s ? 0 : (int)((next_s - now_s) * 1000.0) + 1;
        }
        int n = epoll_wait(ep, evs, 64, timeout);
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        if (n > 0) progress_ns = now;
        if (now - progress_ns > 60000000000ull) {
            fprintf(stderr, "fwd_client: no progress for 60 s\n");
            return 1;
        }
        for (int e = 0; e < n; e++) {
            struct conn *c = evs[e].data.ptr;
            if (c->done) continue;
            c->ready = true;
            if ((evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && pump_reads(c) != 0) {
                fprintf(stderr, "fwd_client: connection %u closed by the server\n", c->idx);
                return 1;
            }
        }
        /* Writes: with -r on every connection, as events fall due without any socket event (the
         * first with room takes them, starting one further each round); else where an event
         * came. */
        for (unsigned k = 0; k < conns; k++) {
            struct conn *c = &cs[(rr + k) % conns];
            if (c->done || (rate == 0 && !c->ready)) continue;
            c->ready = false;
            if (pump_writes(c) != 0) {
                fprintf(stderr, "fwd_client: connection %u: write failed\n", c->idx);
                return 1;
            }
            bool all_sent = rate > 0 ? next_seq >= total_events : c->next_req >= c->n_reqs;
            if (all_sent && c->n_fly == 0 && !c->writing) {
                c->done = true;
                active--;
                close(c->fd);
                continue;
            }
            set_events(ep, c);
        }
        rr++;
    }
    uint64_t t1 = now_ns(CLOCK_MONOTONIC), last_ack_rt = now_ns(CLOCK_REALTIME);
    qsort(lat_us, n_lat, sizeof *lat_us, cmp_u64);
    double secs = (double)(t1 - t0) / 1e9;
    uint64_t events = rate > 0 ? total_events : n_reqs * batch;
    if (rate > 0) {
        n_reqs = 0;
        for (unsigned i = 0; i < conns; i++)
            n_reqs += cs[i].n_reqs;
    }
#define PCT(p) (n_lat ? (double)lat_us[(size_t)((double)(n_lat - 1) * (p))] / 1000.0 : 0.0)
    printf("{\"events\":%" PRIu64 ",\"requests\":%" PRIu64
           ",\"conns\":%u,\"window\":%u,\"batch\":%u,\"record_bytes\":%u,\"seconds\":%.3f,"
           "\"events_per_s\":%.0f,\"ack_ms\":{\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f},"
           "\"errors\":%lu,\"first_send_ns\":%" PRIu64 ",\"last_ack_ns\":%" PRIu64 "}\n",
           events, n_reqs, conns, window, batch, rec_size, secs, (double)events / secs, PCT(0.5),
           PCT(0.99), PCT(1.0), errors, first_send_rt, last_ack_rt);
    return errors ? 1 : 0;
}
