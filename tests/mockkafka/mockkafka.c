/*
 * mockkafka: a controllable Kafka cluster for tests, demos and benchmarks.
 *
 * librdkafka's mock cluster speaks the real wire protocol on loopback, so sluice, kcat and
 * confluent_kafka can all talk to it. This program owns one cluster and drives it from line
 * commands on stdin (see README.md for the protocol). Every command gets exactly one reply line
 * on stdout, flushed, so a test can drive it like a pipe-based RPC.
 *
 * Threads:
 *   - main: reads stdin and SIGTERM (signalfd), runs commands one at a time.
 *   - per produce job: a producer thread (own rd_kafka_t) and a monitor thread. The monitor
 *     polls watermarks and the group's committed offsets every MONITOR_INTERVAL_MS and
 *     publishes a snapshot; the producer only does arithmetic on it, so throttling costs
 *     almost nothing when the consumer keeps up.
 *
 * Why throttle at all: the 2.0.2 mock partition keeps at most 5 MiB or 100000 message sets
 * (rdkafka_mock.c, rd_kafka_mock_partition_init: max_size = 1024*1024*5, max_cnt = 100000)
 * and silently frees the oldest sets beyond that. A consumer that falls behind would lose data
 * inside the mock and a test would blame the shipper. So with group=, the producer keeps the
 * uncommitted backlog below max_lag_bytes per partition, and the monitor counts any record the
 * mock dropped before the group committed past it (broker_dropped) and says so on stderr.
 *
 * Throttle invariant (per partition p, checked before producing to p):
 *   est_end = hi_snap + (enqueued_now - delivered_at_snap)
 * where delivered_at_snap is read *before* the watermark query. Every record delivered before
 * the snapshot is inside hi_snap, every later one is counted by the second term, so est_end
 * never underestimates the log end (it may double-count records delivered during the query,
 * which only throttles a little early).
 *
 * Non-goals: transactions, idempotence, compression, multiple clusters per process.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MONITOR_INTERVAL_MS 50
/* Without a group the monitor only looks for drops; every query competes with produce traffic
 * for the mock's single I/O thread, so look less often. */
#define MONITOR_INTERVAL_NOGROUP_MS 200
#define QUERY_TIMEOUT_MS 3000
#define DEFAULT_RECORD_SIZE 250
#define DEFAULT_MAX_LAG_BYTES (2 * 1024 * 1024)
#define DEFAULT_WAIT_MS 300000
/* produce-b64 must carry 10 MB payloads; librdkafka caps message.max.bytes per handle. */
#define MAX_MESSAGE_BYTES "16777216"
#define MAX_LINE_BYTES (64u * 1024 * 1024)
#define MAX_ARGS 64

/* 2026-11-27T00:00:00Z: record times are BASE + seq ms, so they are plausible and increasing. */
#define TIME_BASE_MS 1795737600000LL

struct lossmark {
    struct lossmark *next;
    char *topic;
    int nparts;
    int64_t *counted_upto; /* records below this offset are already in broker_dropped */
};

struct job {
    struct job *next;
    pthread_t producer_thr;
    pthread_t monitor_thr;
    bool monitor_started;

    /* immutable after start */
    char *topic;
    char *group; /* NULL: produce freely */
    long long count;
    size_t size;
    long long max_lag_bytes;
    long long rate;
    int nparts;

    rd_kafka_t *rk;
    atomic_bool stop;
    atomic_bool producing_done; /* tells the monitor to do a last check and exit */

    /* written by the producer thread; delivered is read by the monitor */
    int64_t *enqueued;
    atomic_llong *delivered;
    long long payload_bytes;
    long long payload_cnt;

    /* snapshot published by the monitor, guarded by snap_lock */
    pthread_mutex_t snap_lock;
    pthread_cond_t snap_cond;
    unsigned snap_gen;
    int64_t *snap_lo;
    int64_t *snap_hi;
    int64_t *snap_committed; /* -1: group has none */
    int64_t *snap_delivered;
};

static struct {
    rd_kafka_t *mock_rk;
    rd_kafka_mock_cluster_t *mc;
    char *bootstraps;
    rd_kafka_t *ctl; /* produce-b64, watermark and committed queries */
    int sigfd;

    atomic_llong next_seq;
    atomic_llong produced;
    atomic_llong delivered;
    atomic_llong failed;
    atomic_llong broker_dropped;

    pthread_mutex_t lock; /* jobs, jobs_running, lossmarks */
    pthread_cond_t jobs_cond;
    struct job *jobs;
    int jobs_running;
    struct lossmark *lossmarks;
} g = {.sigfd = -1};

/* ------------------------------------------------------------------------------------------ */
/* small helpers */

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) {
        fprintf(stderr, "mockkafka: out of memory\n");
        abort();
    }
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p) {
        fprintf(stderr, "mockkafka: out of memory\n");
        abort();
    }
    return p;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void reply(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static bool parse_ll(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

static bool parse_int(const char *s, int min, int max, int *out)
{
    long long v;
    if (!parse_ll(s, min, max, &v)) return false;
    *out = (int)v;
    return true;
}

static bool conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "mockkafka: config %s=%s: %s\n", k, v, errstr);
        return false;
    }
    return true;
}

/* A producer aimed at the mock. Returns NULL with a reason on stderr. */
static rd_kafka_t *new_producer(void *opaque, const char *msg_timeout_ms,
                                void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *))
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bool ok = conf_set(conf, "bootstrap.servers", g.bootstraps) && conf_set(conf, "acks", "all") &&
              conf_set(conf, "linger.ms", "5") && conf_set(conf, "batch.num.messages", "10000") &&
              conf_set(conf, "message.max.bytes", MAX_MESSAGE_BYTES) &&
              conf_set(conf, "queue.buffering.max.kbytes", "131072") &&
              conf_set(conf, "compression.type", "none") &&
              conf_set(conf, "message.timeout.ms", msg_timeout_ms);
    if (!ok) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, opaque);
    if (dr_cb) rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "mockkafka: rd_kafka_new: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Partition count of an existing topic, or -1. Lists all topics so that asking does not
 * auto-create the topic in the mock. */
static int topic_partitions(const char *topic)
{
    const struct rd_kafka_metadata *md;
    if (rd_kafka_metadata(g.ctl, 1, NULL, &md, QUERY_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    int n = -1;
    for (int i = 0; i < md->topic_cnt; i++) {
        if (strcmp(md->topics[i].topic, topic) == 0 && !md->topics[i].err) {
            n = md->topics[i].partition_cnt;
            break;
        }
    }
    rd_kafka_metadata_destroy(md);
    return n;
}

/* Committed offsets of group for partitions 0..nparts-1 of topic; -1 where none. Uses the admin
 * API (FindCoordinator + OffsetFetch only), so it never joins or rebalances the group. */
static rd_kafka_resp_err_t fetch_committed(const char *group, const char *topic, int nparts,
                                           int64_t *out, char *why, size_t whysz)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(nparts);
    for (int p = 0; p < nparts; p++) {
        rd_kafka_topic_partition_list_add(parts, topic, p);
        out[p] = -1;
    }
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, parts);
    rd_kafka_topic_partition_list_destroy(parts);

    rd_kafka_AdminOptions_t *opts =
        rd_kafka_AdminOptions_new(g.ctl, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_AdminOptions_set_request_timeout(opts, QUERY_TIMEOUT_MS, NULL, 0);
    rd_kafka_queue_t *q = rd_kafka_queue_new(g.ctl);
    rd_kafka_ListConsumerGroupOffsets(g.ctl, &req, 1, opts, q);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(opts);

    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    snprintf(why, whysz, "timeout");
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, QUERY_TIMEOUT_MS + 1000);
    if (ev) {
        err = rd_kafka_event_error(ev);
        snprintf(why, whysz, "%s", err ? rd_kafka_event_error_string(ev) : "");
        const rd_kafka_ListConsumerGroupOffsets_result_t *res =
            rd_kafka_event_ListConsumerGroupOffsets_result(ev);
        size_t cnt = 0;
        const rd_kafka_group_result_t **gr =
            !err && res ? rd_kafka_ListConsumerGroupOffsets_result_groups(res, &cnt) : NULL;
        if (!err && cnt != 1) {
            err = RD_KAFKA_RESP_ERR__BAD_MSG;
            snprintf(why, whysz, "expected 1 group result, got %zu", cnt);
        }
        if (!err) {
            const rd_kafka_error_t *gerr = rd_kafka_group_result_error(gr[0]);
            if (gerr) {
                err = rd_kafka_error_code(gerr);
                snprintf(why, whysz, "%s", rd_kafka_error_string(gerr));
            }
        }
        const rd_kafka_topic_partition_list_t *pl =
            err ? NULL : rd_kafka_group_result_partitions(gr[0]);
        for (int i = 0; pl && i < pl->cnt; i++) {
            const rd_kafka_topic_partition_t *e = &pl->elems[i];
            if (e->err) {
                err = e->err;
                snprintf(why, whysz, "partition %" PRId32 ": %s", e->partition,
                         rd_kafka_err2str(e->err));
                break;
            }
            if (strcmp(e->topic, topic) == 0 && e->partition >= 0 && e->partition < nparts)
                out[e->partition] = e->offset >= 0 ? e->offset : -1;
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    return err;
}

/* ------------------------------------------------------------------------------------------ */
/* data-loss guard */

static struct lossmark *lossmark_get(const char *topic, int nparts)
{
    struct lossmark *m;
    for (m = g.lossmarks; m; m = m->next)
        if (strcmp(m->topic, topic) == 0) break;
    if (m && m->nparts < nparts) {
        int64_t *grown = xcalloc((size_t)nparts, sizeof(*grown));
        memcpy(grown, m->counted_upto, (size_t)m->nparts * sizeof(*grown));
        free(m->counted_upto);
        m->counted_upto = grown;
        m->nparts = nparts;
    }
    if (!m) {
        m = xcalloc(1, sizeof(*m));
        m->topic = xstrdup(topic);
        m->nparts = nparts;
        m->counted_upto = xcalloc((size_t)nparts, sizeof(*m->counted_upto));
        m->next = g.lossmarks;
        g.lossmarks = m;
    }
    return m;
}

/* The mock's low watermark passed `floor` (the group's committed offset, or 0): records in
 * [floor, lo) were freed before anyone committed them. Counted once per offset across jobs. */
static void loss_check(const char *topic, int nparts, int p, int64_t floor, int64_t lo)
{
    if (lo <= floor) return;
    pthread_mutex_lock(&g.lock);
    struct lossmark *m = lossmark_get(topic, nparts);
    int64_t from = floor > m->counted_upto[p] ? floor : m->counted_upto[p];
    int64_t lost = lo - from;
    if (lost > 0) {
        m->counted_upto[p] = lo;
        atomic_fetch_add(&g.broker_dropped, lost);
    }
    pthread_mutex_unlock(&g.lock);
    if (lost > 0)
        fprintf(stderr,
                "mockkafka: !!! BROKER DROPPED %" PRId64 " unconsumed records of %s [%d] "
                "(offsets %" PRId64 "..%" PRId64 ", mock retention) - not a client bug !!!\n",
                lost, topic, p, from, lo - 1);
}

/* ------------------------------------------------------------------------------------------ */
/* record generator: deterministic JSON log lines, one object per record */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static const char *const services[] = {"checkout", "cart",      "auth",    "search",
                                       "payments", "inventory", "gateway", "notifications"};
static const char *const filler_words[] = {"request", "handled", "upstream", "latency", "region",
                                           "shard",   "replica", "session",  "tenant",  "bucket",
                                           "retry",   "window",  "cache",    "pool",    "worker"};

static const char *pick_level(uint64_t h)
{
    unsigned r = (unsigned)(h % 100);
    if (r < 12) return "DEBUG";
    if (r < 82) return "INFO";
    if (r < 95) return "WARN";
    return "ERROR";
}

/* The message text, already JSON-escaped. Some variants carry escapes and non-ASCII UTF-8 on
 * purpose so consumers see more than plain ASCII. */
static int format_message(char *buf, size_t cap, uint64_t h)
{
    unsigned a = (unsigned)(h >> 8) % 10000, b = (unsigned)(h >> 24) % 900 + 3;
    unsigned c = (unsigned)(h >> 40) % 250;
    switch ((h >> 16) % 9) {
    case 0:
        return snprintf(buf, cap, "GET /api/v1/cart/%u 200 %ums", a, b);
    case 1:
        return snprintf(buf, cap,
                        "POST /api/v1/checkout 201 %ums user_agent=\\\"Mozilla/5.0 (X11; Linux "
                        "x86_64)\\\"",
                        b);
    case 2:
        return snprintf(buf, cap, "user %u logged in from 10.%u.%u.%u", a, c, (c * 7) % 256,
                        (a + c) % 256);
    case 3:
        return snprintf(buf, cap, "payment declined for order %u: insufficient funds (code=%u)", a,
                        c);
    case 4:
        return snprintf(buf, cap, "cache miss for key sku:%u, fetching from primary", a);
    case 5:
        return snprintf(buf, cap, "slow query took %ums: SELECT * FROM orders WHERE id = %u", b, a);
    case 6:
        return snprintf(buf, cap, "Lieferung nach Z\xc3\xbcrich best\xc3\xa4tigt, Bestellung %u",
                        a);
    case 7:
        return snprintf(buf, cap,
                        "upstream timeout calling inventory (attempt %u/5)\\n\\tat "
                        "shop.Client.call(Client.java:%u)",
                        c % 5 + 1, b);
    default:
        return snprintf(buf, cap, "GET /healthz 200 %ums", c % 9 + 1);
    }
}

/* Writes one record for seq into buf (cap >= size + 1024). Returns its length: exactly `size`
 * when size is at least the unpadded record, else the unpadded length. */
static size_t make_record(char *buf, size_t cap, uint64_t seq, size_t size)
{
    uint64_t h = mix64(seq);
    int64_t ms = TIME_BASE_MS + (int64_t)seq;
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char ts[32];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

    char msg[256];
    format_message(msg, sizeof(msg), h);

    int n = snprintf(buf, cap,
                     "{\"seq\":%" PRIu64 ",\"time\":\"%s.%03dZ\",\"level\":\"%s\","
                     "\"service\":\"%s\",\"host\":\"web-%02u\",\"trace_id\":\"%016" PRIx64
                     "%016" PRIx64 "\",\"message\":\"%s",
                     seq, ts, (int)(ms % 1000), pick_level(h >> 3),
                     services[(h >> 12) % (sizeof(services) / sizeof(services[0]))],
                     (unsigned)((h >> 20) % 12 + 1), h, mix64(h), msg);
    size_t len = (size_t)n;
    const size_t tail = 2; /* "} */
    if (len + tail < size) {
        /* Pad with words; the last one is cut so the record hits `size` exactly. */
        static const char sep[] = " ctx:";
        size_t want = size - tail;
        uint64_t w = h;
        memcpy(buf + len, sep, sizeof(sep) - 1);
        len += sizeof(sep) - 1;
        while (len < want) {
            w = mix64(w);
            const char *word = filler_words[w % (sizeof(filler_words) / sizeof(filler_words[0]))];
            size_t wl = strlen(word);
            buf[len++] = ' ';
            if (wl > want - len) wl = want - len;
            memcpy(buf + len, word, wl);
            len += wl;
        }
        len = want < len ? want : len;
        if (buf[len - 1] == ' ') buf[len - 1] = '.';
    }
    buf[len++] = '"';
    buf[len++] = '}';
    buf[len] = '\0';
    return len;
}

/* ------------------------------------------------------------------------------------------ */
/* produce jobs */

static void job_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct job *j = opaque;
    if (m->err) {
        atomic_fetch_add(&g.failed, 1);
        fprintf(stderr, "mockkafka: delivery to %s [%" PRId32 "] failed: %s\n", j->topic,
                m->partition, rd_kafka_err2str(m->err));
        return;
    }
    atomic_fetch_add(&g.delivered, 1);
    if (m->partition >= 0 && m->partition < j->nparts)
        atomic_fetch_add(&j->delivered[m->partition], 1);
}

static void monitor_once(struct job *j, int64_t *lo, int64_t *hi, int64_t *committed,
                         int64_t *deliv)
{
    for (int p = 0; p < j->nparts; p++)
        deliv[p] = atomic_load(&j->delivered[p]);
    bool ok = true;
    for (int p = 0; p < j->nparts && ok; p++)
        ok = rd_kafka_query_watermark_offsets(g.ctl, j->topic, p, &lo[p], &hi[p],
                                              QUERY_TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR;
    char why[256];
    if (ok && j->group)
        ok = fetch_committed(j->group, j->topic, j->nparts, committed, why, sizeof(why)) ==
             RD_KAFKA_RESP_ERR_NO_ERROR;
    if (!ok) return; /* e.g. brokers down: keep the old snapshot, the producer stays conservative */

    for (int p = 0; p < j->nparts; p++) {
        int64_t floor = j->group && committed[p] >= 0 ? committed[p] : 0;
        loss_check(j->topic, j->nparts, p, floor, lo[p]);
    }
    pthread_mutex_lock(&j->snap_lock);
    for (int p = 0; p < j->nparts; p++) {
        j->snap_lo[p] = lo[p];
        j->snap_hi[p] = hi[p];
        j->snap_committed[p] = j->group ? committed[p] : -1;
        j->snap_delivered[p] = deliv[p];
    }
    j->snap_gen++;
    pthread_cond_broadcast(&j->snap_cond);
    pthread_mutex_unlock(&j->snap_lock);
}

static void *monitor_main(void *arg)
{
    struct job *j = arg;
    size_t n = (size_t)j->nparts;
    int64_t *lo = xcalloc(n, sizeof(*lo)), *hi = xcalloc(n, sizeof(*hi));
    int64_t *committed = xcalloc(n, sizeof(*committed)), *deliv = xcalloc(n, sizeof(*deliv));
    while (!atomic_load(&j->stop) && !atomic_load(&j->producing_done)) {
        int64_t t0 = now_ms();
        monitor_once(j, lo, hi, committed, deliv);
        int64_t interval = j->group ? MONITOR_INTERVAL_MS : MONITOR_INTERVAL_NOGROUP_MS;
        int64_t left = interval - (now_ms() - t0);
        if (left > 0) usleep((useconds_t)left * 1000);
    }
    if (!atomic_load(&j->stop))
        monitor_once(j, lo, hi, committed, deliv); /* catch drops caused by the last records */
    free(lo);
    free(hi);
    free(committed);
    free(deliv);
    return NULL;
}

/* Blocks while producing to partition p would push the group's backlog over max_lag_bytes. */
static void throttle(struct job *j, int p)
{
    for (;;) {
        if (atomic_load(&j->stop)) return;
        double avg =
            j->payload_cnt ? (double)j->payload_bytes / (double)j->payload_cnt : (double)j->size;
        pthread_mutex_lock(&j->snap_lock);
        unsigned gen = j->snap_gen;
        bool over = true;
        if (gen > 0) {
            int64_t end = j->snap_hi[p] + (j->enqueued[p] - j->snap_delivered[p]);
            int64_t base = j->snap_committed[p] >= 0 ? j->snap_committed[p] : j->snap_lo[p];
            /* +1: the record we are about to add must fit too */
            over = (double)(end - base + 1) * avg > (double)j->max_lag_bytes;
        }
        if (over) {
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_nsec += 20 * 1000000L;
            if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000L;
            }
            while (j->snap_gen == gen &&
                   pthread_cond_timedwait(&j->snap_cond, &j->snap_lock, &dl) == 0)
                ;
        }
        pthread_mutex_unlock(&j->snap_lock);
        if (!over) return;
        rd_kafka_poll(j->rk, 0); /* keep delivery reports flowing while we wait */
    }
}

static void pace(struct job *j, long long i, int64_t t_start)
{
    if (j->rate <= 0) return;
    int64_t due = t_start + (int64_t)(i * 1000 / j->rate);
    int64_t wait = due - now_ms();
    if (wait > 0) rd_kafka_poll(j->rk, (int)wait);
}

static void produce_one(struct job *j, char *buf, size_t cap)
{
    uint64_t seq = (uint64_t)atomic_fetch_add(&g.next_seq, 1);
    int p = (int)(seq % (uint64_t)j->nparts);
    if (j->group) throttle(j, p);
    if (atomic_load(&j->stop)) return;
    size_t len = make_record(buf, cap, seq, j->size);
    char key[24];
    int klen = snprintf(key, sizeof(key), "%" PRIu64, seq);
    for (;;) {
        rd_kafka_resp_err_t err =
            rd_kafka_producev(j->rk, RD_KAFKA_V_TOPIC(j->topic), RD_KAFKA_V_PARTITION(p),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE(buf, len),
                              RD_KAFKA_V_KEY(key, (size_t)klen),
                              RD_KAFKA_V_TIMESTAMP(TIME_BASE_MS + (int64_t)seq), RD_KAFKA_V_END);
        if (!err) break;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || atomic_load(&j->stop)) {
            atomic_fetch_add(&g.produced, 1);
            atomic_fetch_add(&g.failed, 1);
            fprintf(stderr, "mockkafka: produce seq %" PRIu64 " to %s [%d]: %s\n", seq, j->topic, p,
                    rd_kafka_err2str(err));
            return;
        }
        rd_kafka_poll(j->rk, 10);
    }
    j->enqueued[p]++;
    j->payload_bytes += (long long)len;
    j->payload_cnt++;
    atomic_fetch_add(&g.produced, 1);
}

static void *producer_main(void *arg)
{
    struct job *j = arg;
    size_t cap = j->size + 1024;
    char *buf = xcalloc(cap, 1);
    int64_t t_start = now_ms();
    for (long long i = 0; i < j->count && !atomic_load(&j->stop); i++) {
        pace(j, i, t_start);
        produce_one(j, buf, cap);
        if ((i & 1023) == 0) rd_kafka_poll(j->rk, 0);
    }
    while (!atomic_load(&j->stop) && rd_kafka_outq_len(j->rk) > 0)
        rd_kafka_poll(j->rk, 50);
    free(buf);
    atomic_store(&j->producing_done, true);
    if (j->monitor_started) pthread_join(j->monitor_thr, NULL);
    if (atomic_load(&j->stop)) {
        rd_kafka_purge(j->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(j->rk, 0);
    }
    rd_kafka_destroy(j->rk);
    j->rk = NULL;

    pthread_mutex_lock(&g.lock);
    g.jobs_running--;
    pthread_cond_broadcast(&g.jobs_cond);
    pthread_mutex_unlock(&g.lock);
    return NULL;
}

static void job_free(struct job *j)
{
    free(j->topic);
    free(j->group);
    free(j->enqueued);
    free(j->delivered);
    free(j->snap_lo);
    free(j->snap_hi);
    free(j->snap_committed);
    free(j->snap_delivered);
    pthread_mutex_destroy(&j->snap_lock);
    pthread_cond_destroy(&j->snap_cond);
    free(j);
}

static const char *job_start(struct job *j)
{
    size_t n = (size_t)j->nparts;
    j->enqueued = xcalloc(n, sizeof(*j->enqueued));
    j->delivered = xcalloc(n, sizeof(*j->delivered));
    for (size_t i = 0; i < n; i++)
        atomic_init(&j->delivered[i], 0);
    j->snap_lo = xcalloc(n, sizeof(int64_t));
    j->snap_hi = xcalloc(n, sizeof(int64_t));
    j->snap_committed = xcalloc(n, sizeof(int64_t));
    j->snap_delivered = xcalloc(n, sizeof(int64_t));
    pthread_mutex_init(&j->snap_lock, NULL);
    pthread_cond_init(&j->snap_cond, NULL);
    atomic_init(&j->stop, false);
    atomic_init(&j->producing_done, false);

    /* Jobs ride out long broker-down tests; delivery fails only after 5 minutes. */
    j->rk = new_producer(j, "300000", job_dr_cb);
    if (!j->rk) return "cannot create producer";
    if (pthread_create(&j->monitor_thr, NULL, monitor_main, j) != 0) {
        rd_kafka_destroy(j->rk);
        return "cannot start monitor thread";
    }
    j->monitor_started = true;

    pthread_mutex_lock(&g.lock);
    g.jobs_running++;
    if (pthread_create(&j->producer_thr, NULL, producer_main, j) != 0) {
        g.jobs_running--;
        pthread_mutex_unlock(&g.lock);
        atomic_store(&j->stop, true);
        pthread_join(j->monitor_thr, NULL);
        rd_kafka_destroy(j->rk);
        return "cannot start producer thread";
    }
    j->next = g.jobs;
    g.jobs = j;
    pthread_mutex_unlock(&g.lock);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* name tables for push-errors */

static const struct {
    const char *name;
    int16_t key;
} api_names[] = {
    {"Produce", 0},         {"Fetch", 1},       {"ListOffsets", 2},      {"Metadata", 3},
    {"OffsetCommit", 8},    {"OffsetFetch", 9}, {"FindCoordinator", 10}, {"JoinGroup", 11},
    {"Heartbeat", 12},      {"LeaveGroup", 13}, {"SyncGroup", 14},       {"ApiVersion", 18},
    {"InitProducerId", 22},
};

static bool parse_apikey(const char *s, int16_t *out)
{
    int v;
    if (parse_int(s, 0, 100, &v)) {
        *out = (int16_t)v;
        return true;
    }
    for (size_t i = 0; i < sizeof(api_names) / sizeof(api_names[0]); i++) {
        if (strcasecmp(api_names[i].name, s) == 0) {
            *out = api_names[i].key;
            return true;
        }
    }
    return false;
}

static bool parse_err(const char *s, rd_kafka_resp_err_t *out)
{
    int v;
    if (parse_int(s, -200, 1000, &v)) {
        *out = (rd_kafka_resp_err_t)v;
        return true;
    }
    if (strncmp(s, "RD_KAFKA_RESP_ERR_", 18) == 0) s += 18;
    const struct rd_kafka_err_desc *descs;
    size_t cnt;
    rd_kafka_get_err_descs(&descs, &cnt);
    for (size_t i = 0; i < cnt; i++) {
        if (descs[i].name && strcasecmp(descs[i].name, s) == 0) {
            *out = descs[i].code;
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* commands */

static const char *opt_value(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1 : NULL;
}

static void cmd_produce(int argc, char **argv)
{
    long long count;
    if (argc < 3 || !parse_ll(argv[2], 0, LLONG_MAX / 2, &count)) {
        reply("err usage: produce TOPIC COUNT [size=B] [group=G] [max_lag_bytes=B] [rate=N]");
        return;
    }
    struct job *j = xcalloc(1, sizeof(*j));
    j->count = count;
    j->size = DEFAULT_RECORD_SIZE;
    j->max_lag_bytes = DEFAULT_MAX_LAG_BYTES;
    for (int i = 3; i < argc; i++) {
        const char *v;
        long long n;
        bool ok = true;
        if ((v = opt_value(argv[i], "size")))
            ok = parse_ll(v, 1, 8 * 1024 * 1024, &n) && ((j->size = (size_t)n), true);
        else if ((v = opt_value(argv[i], "group")))
            ok = *v && (free(j->group), (j->group = xstrdup(v)), true);
        else if ((v = opt_value(argv[i], "max_lag_bytes")))
            ok = parse_ll(v, 1, LLONG_MAX / 4, &j->max_lag_bytes);
        else if ((v = opt_value(argv[i], "rate")))
            ok = parse_ll(v, 0, 100000000, &j->rate);
        else
            ok = false;
        if (!ok) {
            reply("err bad option '%s'", argv[i]);
            free(j->group);
            free(j);
            return;
        }
    }
    j->topic = xstrdup(argv[1]);
    j->nparts = topic_partitions(j->topic);
    if (j->nparts <= 0) {
        reply("err unknown topic %s", j->topic);
        free(j->topic);
        free(j->group);
        free(j);
        return;
    }
    const char *why = job_start(j);
    if (why) {
        reply("err %s", why);
        job_free(j);
        return;
    }
    reply("ok");
}

/* Base64 decode (standard alphabet, padding optional). Returns length or -1. */
static long b64_decode(const char *in, unsigned char *out)
{
    static signed char tbl[256];
    static bool init;
    if (!init) {
        memset(tbl, -1, sizeof(tbl));
        const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (int i = 0; a[i]; i++)
            tbl[(unsigned char)a[i]] = (signed char)i;
        init = true;
    }
    long n = 0;
    unsigned acc = 0;
    int bits = 0;
    const char *s = in;
    for (; *s && *s != '='; s++) {
        int v = tbl[(unsigned char)*s];
        if (v < 0) return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    for (; *s == '='; s++)
        ;
    return *s ? -1 : n;
}

struct single_dr {
    bool done;
    rd_kafka_resp_err_t err;
    int64_t offset;
};

static void single_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    struct single_dr *r = m->_private;
    r->done = true;
    r->err = m->err;
    r->offset = m->offset;
}

static void cmd_produce_b64(int argc, char **argv)
{
    int part;
    if (argc < 4 || argc > 6 || !parse_int(argv[2], 0, INT32_MAX, &part)) {
        reply("err usage: produce-b64 TOPIC PARTITION BASE64 [key=BASE64] [timestamp=MS]");
        return;
    }
    unsigned char *val = xcalloc(strlen(argv[3]) / 4 * 3 + 4, 1);
    unsigned char *key = NULL;
    long vlen = b64_decode(argv[3], val), klen = 0;
    long long ts = 0; /* 0: librdkafka stamps the produce time */
    bool bad = vlen < 0;
    for (int i = 4; i < argc && !bad; i++) {
        const char *kb = opt_value(argv[i], "key");
        const char *tv = opt_value(argv[i], "timestamp");
        if (kb && !key) {
            key = xcalloc(strlen(kb) / 4 * 3 + 4, 1);
            klen = b64_decode(kb, key);
            bad = klen < 0;
        } else if (tv) {
            char *end;
            ts = strtoll(tv, &end, 10);
            bad = *end != '\0' || ts <= 0;
        } else {
            bad = true;
        }
    }
    if (bad) {
        reply("err bad base64 or option");
        free(val);
        free(key);
        return;
    }
    struct single_dr r = {0};
    rd_kafka_resp_err_t err = rd_kafka_producev(
        g.ctl, RD_KAFKA_V_TOPIC(argv[1]), RD_KAFKA_V_PARTITION(part),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE(val, (size_t)vlen),
        RD_KAFKA_V_KEY(key, (size_t)klen), RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_OPAQUE(&r),
        RD_KAFKA_V_END);
    free(val);
    free(key);
    if (err) {
        reply("err %s", rd_kafka_err2name(err));
        return;
    }
    /* The ctl handle is only polled here, so no other delivery report can race for r. */
    while (!r.done)
        rd_kafka_poll(g.ctl, 100);
    if (r.err)
        reply("err %s", rd_kafka_err2name(r.err));
    else
        reply("ok offset=%" PRId64, r.offset);
}

static bool sigterm_pending(void)
{
    struct pollfd pfd = {.fd = g.sigfd, .events = POLLIN};
    return poll(&pfd, 1, 0) > 0;
}

static void cmd_wait_produced(int argc, char **argv)
{
    long long timeout = DEFAULT_WAIT_MS;
    if (argc > 2 || (argc == 2 && !parse_ll(argv[1], 0, LLONG_MAX / 4, &timeout))) {
        reply("err usage: wait-produced [timeout_ms]");
        return;
    }
    int64_t deadline = now_ms() + timeout;
    bool done = false;
    pthread_mutex_lock(&g.lock);
    for (;;) {
        done = g.jobs_running == 0;
        if (done || now_ms() >= deadline || sigterm_pending()) break;
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += 100 * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g.jobs_cond, &g.lock, &dl);
    }
    pthread_mutex_unlock(&g.lock);
    long long produced = atomic_load(&g.produced), failed = atomic_load(&g.failed);
    if (!done)
        reply("err timeout produced=%lld", produced);
    else if (failed)
        reply("err failed=%lld produced=%lld", failed, produced);
    else
        reply("ok produced=%lld", produced);
}

static void cmd_status(void)
{
    pthread_mutex_lock(&g.lock);
    int running = g.jobs_running;
    pthread_mutex_unlock(&g.lock);
    reply("ok produced=%lld delivered=%lld failed=%lld jobs_running=%d broker_dropped=%lld",
          (long long)atomic_load(&g.produced), (long long)atomic_load(&g.delivered),
          (long long)atomic_load(&g.failed), running, (long long)atomic_load(&g.broker_dropped));
}

/* Appends " P=V" pairs to a reply buffer; the reply is one line however many partitions. */
static char *pairs_reply(int n, const int64_t *a, const int64_t *b)
{
    size_t cap = 8 + (size_t)n * 48;
    char *out = xcalloc(cap, 1);
    size_t len = (size_t)snprintf(out, cap, "ok");
    for (int p = 0; p < n; p++) {
        if (b)
            len +=
                (size_t)snprintf(out + len, cap - len, " %d=%" PRId64 ":%" PRId64, p, a[p], b[p]);
        else
            len += (size_t)snprintf(out + len, cap - len, " %d=%" PRId64, p, a[p]);
    }
    return out;
}

static void cmd_watermarks(int argc, char **argv)
{
    if (argc != 2) {
        reply("err usage: watermarks TOPIC");
        return;
    }
    int n = topic_partitions(argv[1]);
    if (n <= 0) {
        reply("err unknown topic %s", argv[1]);
        return;
    }
    int64_t *lo = xcalloc((size_t)n, sizeof(*lo)), *hi = xcalloc((size_t)n, sizeof(*hi));
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int p = 0; p < n && !err; p++)
        err = rd_kafka_query_watermark_offsets(g.ctl, argv[1], p, &lo[p], &hi[p], QUERY_TIMEOUT_MS);
    if (err) {
        reply("err %s", rd_kafka_err2name(err));
    } else {
        char *out = pairs_reply(n, lo, hi);
        reply("%s", out);
        free(out);
    }
    free(lo);
    free(hi);
}

static void cmd_committed(int argc, char **argv)
{
    if (argc != 3) {
        reply("err usage: committed GROUP TOPIC");
        return;
    }
    int n = topic_partitions(argv[2]);
    if (n <= 0) {
        reply("err unknown topic %s", argv[2]);
        return;
    }
    int64_t *off = xcalloc((size_t)n, sizeof(*off));
    char why[256];
    rd_kafka_resp_err_t err = fetch_committed(argv[1], argv[2], n, off, why, sizeof(why));
    if (err) {
        reply("err %s %s", rd_kafka_err2name(err), why);
    } else {
        char *out = pairs_reply(n, off, NULL);
        reply("%s", out);
        free(out);
    }
    free(off);
}

static bool parse_broker(const char *s, int32_t *id)
{
    int v;
    if (!parse_int(s, -1, 1 << 20, &v)) return false;
    *id = v;
    return true;
}

static void reply_err(rd_kafka_resp_err_t err)
{
    if (err)
        reply("err %s", rd_kafka_err2name(err));
    else
        reply("ok");
}

static void cmd_broker_updown(int argc, char **argv, bool up)
{
    int32_t id;
    if (argc != 2 || !parse_broker(argv[1], &id)) {
        reply("err usage: %s ID|-1", argv[0]);
        return;
    }
    reply_err(up ? rd_kafka_mock_broker_set_up(g.mc, id) : rd_kafka_mock_broker_set_down(g.mc, id));
}

static void cmd_push_errors(int argc, char **argv)
{
    int16_t api;
    int cnt;
    if (argc < 4 || !parse_apikey(argv[1], &api) || !parse_int(argv[2], 1, 100000, &cnt)) {
        reply("err usage: push-errors APIKEY CNT ERR [ERR...]");
        return;
    }
    /* Fewer names than CNT: the last one repeats, so "push-errors Fetch 5 _TRANSPORT" works. */
    rd_kafka_resp_err_t *errs = xcalloc((size_t)cnt, sizeof(*errs));
    for (int i = 0; i < cnt; i++) {
        const char *name = argv[3 + (i < argc - 3 ? i : argc - 4)];
        if (!parse_err(name, &errs[i])) {
            reply("err unknown error %s", name);
            free(errs);
            return;
        }
    }
    if (argc - 3 > cnt) {
        reply("err more errors than CNT");
        free(errs);
        return;
    }
    rd_kafka_mock_push_request_errors_array(g.mc, api, (size_t)cnt, errs);
    free(errs);
    reply("ok");
}

static void cmd_leader(int argc, char **argv)
{
    int part;
    int32_t id;
    if (argc != 4 || !parse_int(argv[2], 0, INT32_MAX, &part) || !parse_broker(argv[3], &id)) {
        reply("err usage: leader TOPIC PARTITION BROKER");
        return;
    }
    reply_err(rd_kafka_mock_partition_set_leader(g.mc, argv[1], part, id));
}

static void cmd_coordinator(int argc, char **argv)
{
    int32_t id;
    if (argc != 3 || !parse_broker(argv[2], &id)) {
        reply("err usage: coordinator GROUP BROKER");
        return;
    }
    reply_err(rd_kafka_mock_coordinator_set(g.mc, "group", argv[1], id));
}

static void cmd_rtt(int argc, char **argv)
{
    int32_t id;
    int ms;
    if (argc != 3 || !parse_broker(argv[1], &id) || !parse_int(argv[2], 0, 600000, &ms)) {
        reply("err usage: rtt BROKER MS");
        return;
    }
    reply_err(rd_kafka_mock_broker_set_rtt(g.mc, id, ms));
}

static bool create_topic(const char *spec, char *why, size_t whysz)
{
    const char *colon = strrchr(spec, ':');
    int parts;
    if (!colon || colon == spec || !parse_int(colon + 1, 1, 100000, &parts)) {
        snprintf(why, whysz, "topic spec must be NAME:PARTITIONS, got '%s'", spec);
        return false;
    }
    char *name = xstrdup(spec);
    name[colon - spec] = '\0';
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(g.mc, name, parts, 1);
    free(name);
    if (err) {
        snprintf(why, whysz, "%s", rd_kafka_err2str(err));
        return false;
    }
    return true;
}

static void cmd_topic(int argc, char **argv)
{
    char why[256];
    if (argc != 2) {
        reply("err usage: topic NAME:PARTITIONS");
        return;
    }
    if (create_topic(argv[1], why, sizeof(why)))
        reply("ok");
    else
        reply("err %s", why);
}

/* Returns false when the command asks to quit. */
static bool run_command(char *line)
{
    char *argv[MAX_ARGS];
    int argc = 0;
    for (char *save = NULL, *tok = strtok_r(line, " \t\r", &save); tok;
         tok = strtok_r(NULL, " \t\r", &save)) {
        if (argc == MAX_ARGS) {
            reply("err too many arguments");
            return true;
        }
        argv[argc++] = tok;
    }
    if (argc == 0) return true; /* blank lines get no reply: there is no command to answer */
    const char *c = argv[0];
    if (!strcmp(c, "quit")) {
        reply("ok");
        return false;
    }
    if (!strcmp(c, "produce"))
        cmd_produce(argc, argv);
    else if (!strcmp(c, "produce-b64"))
        cmd_produce_b64(argc, argv);
    else if (!strcmp(c, "wait-produced"))
        cmd_wait_produced(argc, argv);
    else if (!strcmp(c, "status"))
        cmd_status();
    else if (!strcmp(c, "watermarks"))
        cmd_watermarks(argc, argv);
    else if (!strcmp(c, "committed"))
        cmd_committed(argc, argv);
    else if (!strcmp(c, "broker-down") || !strcmp(c, "broker-up"))
        cmd_broker_updown(argc, argv, !strcmp(c, "broker-up"));
    else if (!strcmp(c, "push-errors"))
        cmd_push_errors(argc, argv);
    else if (!strcmp(c, "leader"))
        cmd_leader(argc, argv);
    else if (!strcmp(c, "coordinator"))
        cmd_coordinator(argc, argv);
    else if (!strcmp(c, "rtt"))
        cmd_rtt(argc, argv);
    else if (!strcmp(c, "topic"))
        cmd_topic(argc, argv);
    else if (!strcmp(c, "bootstrap"))
        reply("ok %s", g.bootstraps);
    else
        reply("err unknown command %s", c);
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* setup, main loop, teardown */

static bool write_bootstrap_file(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return false;
    bool ok = fprintf(f, "%s\n", g.bootstraps) > 0;
    ok = (fclose(f) == 0) && ok;
    if (ok && rename(tmp, path) != 0) ok = false;
    if (!ok) unlink(tmp);
    return ok;
}

static bool cluster_start(int brokers)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The mock reads requests with this handle's receive limit; leave room for 10 MB records. */
    if (!conf_set(conf, "receive.message.max.bytes", "200000000")) {
        rd_kafka_conf_destroy(conf);
        return false;
    }
    g.mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!g.mock_rk) {
        fprintf(stderr, "mockkafka: rd_kafka_new: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return false;
    }
    g.mc = rd_kafka_mock_cluster_new(g.mock_rk, brokers);
    if (!g.mc) {
        fprintf(stderr, "mockkafka: cannot create mock cluster\n");
        return false;
    }
    g.bootstraps = xstrdup(rd_kafka_mock_cluster_bootstraps(g.mc));
    /* produce-b64 blocks the command loop until delivery, so bound it. */
    g.ctl = new_producer(NULL, "30000", single_dr_cb);
    return g.ctl != NULL;
}

static void shutdown_all(void)
{
    pthread_mutex_lock(&g.lock);
    struct job *jobs = g.jobs;
    g.jobs = NULL;
    pthread_mutex_unlock(&g.lock);
    for (struct job *j = jobs; j; j = j->next)
        atomic_store(&j->stop, true);
    while (jobs) {
        struct job *next = jobs->next;
        pthread_join(jobs->producer_thr, NULL);
        job_free(jobs);
        jobs = next;
    }
    if (g.ctl) {
        rd_kafka_purge(g.ctl, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_destroy(g.ctl);
    }
    if (g.mc) rd_kafka_mock_cluster_destroy(g.mc);
    if (g.mock_rk) rd_kafka_destroy(g.mock_rk);
    while (g.lossmarks) {
        struct lossmark *next = g.lossmarks->next;
        free(g.lossmarks->topic);
        free(g.lossmarks->counted_upto);
        free(g.lossmarks);
        g.lossmarks = next;
    }
    free(g.bootstraps);
}

/* Reads stdin with read(2), not stdio, so poll() sees exactly what is unread and SIGTERM can
 * interrupt the wait. */
static void serve(void)
{
    size_t cap = 65536, len = 0;
    char *buf = xcalloc(cap, 1);
    bool running = true, eof = false;
    while (running) {
        char *nl;
        while (running && (nl = memchr(buf, '\n', len))) {
            *nl = '\0';
            size_t used = (size_t)(nl - buf) + 1;
            running = run_command(buf);
            memmove(buf, buf + used, len - used);
            len -= used;
        }
        if (!running || eof) break;
        struct pollfd pfd[2] = {{.fd = 0, .events = POLLIN}, {.fd = g.sigfd, .events = POLLIN}};
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (pfd[1].revents) break;
        if (len + 1 >= cap) {
            if (cap >= MAX_LINE_BYTES) {
                reply("err line longer than %u bytes", MAX_LINE_BYTES);
                len = 0; /* the rest of that line will be rejected as garbage */
                continue;
            }
            cap *= 2;
            char *grown = realloc(buf, cap);
            if (!grown) abort();
            buf = grown;
        }
        ssize_t n = read(0, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            eof = true;
            if (len > 0) buf[len++] = '\n'; /* a final command without newline still runs */
            continue;
        }
        len += (size_t)n;
    }
    free(buf);
}

static void usage(void)
{
    fprintf(stderr, "usage: mockkafka [--brokers N] [--topic NAME:PARTITIONS]... "
                    "[--bootstrap-file PATH]\n");
}

int main(int argc, char **argv)
{
    int brokers = 1;
    const char *bootstrap_file = NULL;
    const char *topics[256];
    int ntopics = 0;
    for (int i = 1; i < argc; i++) {
        bool has = i + 1 < argc;
        if (!strcmp(argv[i], "--brokers") && has && parse_int(argv[i + 1], 1, 64, &brokers)) {
            i++;
        } else if (!strcmp(argv[i], "--topic") && has && ntopics < 256) {
            topics[ntopics++] = argv[++i];
        } else if (!strcmp(argv[i], "--bootstrap-file") && has) {
            bootstrap_file = argv[++i];
        } else {
            usage();
            return 2;
        }
    }

    /* Block before any thread exists so librdkafka's threads inherit the mask and the
     * signalfd is the only receiver. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    g.sigfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (g.sigfd < 0) {
        perror("mockkafka: signalfd");
        return 1;
    }
    pthread_mutex_init(&g.lock, NULL);
    pthread_cond_init(&g.jobs_cond, NULL);

    int rc = 0;
    if (!cluster_start(brokers)) {
        rc = 1;
        goto out;
    }
    for (int i = 0; i < ntopics; i++) {
        char why[256];
        if (!create_topic(topics[i], why, sizeof(why))) {
            fprintf(stderr, "mockkafka: --topic: %s\n", why);
            rc = 2;
            goto out;
        }
    }
    if (bootstrap_file && !write_bootstrap_file(bootstrap_file)) {
        fprintf(stderr, "mockkafka: cannot write %s: %s\n", bootstrap_file, strerror(errno));
        rc = 1;
        goto out;
    }
    printf("bootstrap %s\n", g.bootstraps);
    fflush(stdout);
    serve();
out:
    shutdown_all();
    close(g.sigfd);
    return rc;
}
