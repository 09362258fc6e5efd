/* Elasticsearch output.
 *
 * Records are appended to an open batch: the NDJSON body itself (action line + the payload, the
 * only copy sluice makes) plus a small es_rec per record pointing at its slice of the body. A
 * batch is sealed when full or after batch_max_wait and queued; up to `concurrency` batches are
 * in flight as libcurl multi transfers driven by the loop.
 *
 * Batch life:  OPEN --seal--> READY --start--> IN FLIGHT --response--> (records finish)
 *                                ^                 |
 *                                +-- RETRY WAIT <--+  whole-request failures keep the batch;
 *                                                     per-item retries build a new batch of
 *                                                     just those items; 413 splits it in two.
 *
 * Item fates follow docs/guarantees.md (sl_bulk_classify_item): delivered and dead-lettered
 * records are acknowledged to their source; retryable ones are resent with capped exponential
 * backoff and jitter, forever, while the budget makes the inputs wait. */
#include "outputs/elasticsearch.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <zlib.h>

#include "codec/bulk.h"
#include "codec/esinfo.h"
#include "codec/timefmt.h"
#include "core/acktrack.h"
#include "core/log.h"

#define BODY_POOL 8
#define FILTER_PATH "filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason"

enum retry_reason {
    RR_TRANSPORT,
    RR_TIMEOUT,
    RR_HTTP_429,
    RR_HTTP_5XX,
    RR_HTTP_AUTH,
    RR_HTTP_OTHER,
    RR_BAD_RESPONSE,
    RR_ITEM,
    RR_SPLIT_413,
    RR_SETUP,
    RR_COUNT
};
static const char *retry_names[RR_COUNT] = {"transport", "timeout",    "http_429",     "http_5xx",
                                            "http_auth", "http_other", "bad_response", "item",
                                            "split_413", "setup"};

/* Elasticsearch and OpenSearch refuse a whole bulk request with a longer _id. */
#define SL_ES_ID_MAX 512

struct es_rec {
    struct sl_ackref ack;
    const char *input; /* interned by the input, valid for the process lifetime */
    const char *topic; /* interned too */
    uint32_t tag_off;  /* the tag is copied into the batch's tags buffer: inputs may pass */
    uint16_t tag_len;  /* a tag that lives only during submit (Forward frames) */
    int64_t time_ns;
    int64_t offset;
    int32_t partition;
    uint32_t off;      /* item start in body */
    uint32_t src_off;  /* payload start, relative to off */
    uint32_t len;      /* action + payload + 2 newlines */
    uint16_t attempts; /* sends of this record so far */
    uint32_t first_s;  /* when the output took it, monotonic seconds (item_retry_timeout) */
};

struct es_out;

struct batch {
    struct es_out *o;
    char *body;
    size_t len, cap;
    struct es_rec *recs;
    size_t n, cap_recs;
    char *tags;
    size_t tags_len, tags_cap;
    uint32_t last_tag_off; /* consecutive records mostly share a tag: stored once */
    size_t last_tag_len;
    char *gz;
    size_t gz_len, gz_cap; /* gz_len > 0: the body is compressed */
    uint64_t charged;
    uint32_t attempts; /* whole-request attempts */
    uint32_t sends;    /* times libcurl started sending this transfer (prereq_cb) */
    struct sl_timer timer;
    struct batch *next;                /* ready queue */
    struct batch *all_prev, *all_next; /* every batch of the output, for teardown */
    /* transfer */
    CURL *easy;
    struct curl_slist *hdrs;
    char *resp;
    size_t resp_len, resp_cap, resp_max;
    uint64_t started_ms;
};

enum tmpl_kind { T_LIT, T_TOPIC, T_TAG, T_RECORD, T_TIME };

struct tmpl_part {
    enum tmpl_kind kind;
    char *lit;
    size_t lit_len;
    int path_idx;
    char conv; /* strftime conversion for T_TIME */
};

/* Before the first batch, and again after the cluster was unreachable (it may have been rebuilt):
 * GET / says what the cluster is, so a configuration it cannot serve stops sluice before anything
 * is sent (the ILM policy on OpenSearch). Then the resources: the ILM policy, the index template
 * (which may name the policy), the data stream (which needs the template). Each is read first and
 * written only when absent or when overwrite is set, so many sluice processes starting together
 * do not fight over them. */
enum setup_step {
    SS_INFO,
    SS_ILM_GET,
    SS_ILM_PUT,
    SS_TMPL_GET,
    SS_TMPL_PUT,
    SS_DS_GET,
    SS_DS_PUT,
    SS_DONE
};

struct setup {
    enum setup_step step;
    bool active;    /* a run is under way */
    bool gate_open; /* batches may be sent: the run finished, or setup_timeout passed */
    uint32_t attempts;
    CURL *easy;
    struct curl_slist *hdrs;
    char resp[2048];
    size_t resp_len;
    char *ilm_body, *tmpl_body;
    size_t ilm_len, tmpl_len;
    char *ds_name; /* a data stream without placeholders, created explicitly */
    struct sl_timer retry, deadline;
    uint64_t runs, failures;
    struct sl_es_info info; /* valid when info_known */
    bool info_known;
    bool identified;  /* GET / was answered once (info_known or not): no run needed for it */
    bool info_warned; /* the answer that said nothing was logged (once per process) */
    bool fatal;       /* the cluster cannot serve this configuration: the process stops */
    const char *host; /* where the step in flight went */
};

struct es_out {
    struct sl_pipeline *p;
    const struct sl_output_cfg *cfg;
    const struct sl_es_output_cfg *es;
    const char *name;
    CURLM *multi;
    struct sl_timer curl_timer;
    struct sl_io **fdio;
    size_t n_fdio;
    CURL **easy_pool;
    size_t n_easy_pool;
    struct batch *open;
    struct batch *ready_head, *ready_tail;
    struct batch *all;
    struct sl_timer linger;
    size_t inflight;
    size_t retry_waiting;  /* batches whose retry timer runs: each holds a request slot */
    uint64_t recs_pending; /* records held in any batch */
    size_t eff_max;
    struct tmpl_part parts[64];
    size_t n_parts;
    int id_path_idx;
    size_t host_idx;
    char *auth_header;
    struct sl_output_stats st;
    uint64_t retries[RR_COUNT];
    /* Full-size batches kept for reuse with every buffer they grew (body, records, tags,
     * response, gzip): mapping and faulting in fresh memory for every batch was a quarter of
     * sluice's CPU in a profile of the code without the pool. At most BODY_POOL. Their
     * bytes are the budget's cached bytes: under the limit with everything else, but not what
     * holds inputs paused; a charge that needs the room frees them (es_reclaim). */
    struct batch *pool[BODY_POOL];
    size_t n_pool;
    uint64_t pool_hits, pool_misses;
    z_stream zs; /* reused with deflateReset: its ~256 KiB state is not rebuilt per batch */
    /* per-response scratch, kept: at 40 B an item, a full batch's array is a fresh mapping
     * (above the 128 KiB mmap threshold) that each response would map, fault in and unmap */
    struct sl_bulk_item *items;
    size_t *retry_idx;
    size_t items_cap;
    bool zs_ready;
    int ts_path_idx; /* timestamp_key in the record's scan, -1 when off */
    char *ts_buf;    /* ,"<timestamp_key>":" then room for the time and "} */
    size_t ts_prefix_len;
    struct sl_time_cache ts_cache; /* records of one second share their date and time */
    /* The action line's head for the last index rendered: most records of a batch share it. */
    char act_index[512];
    size_t act_index_len, act_head_len;
    char act_head[32 + 6 * 512];
    char *pipeline_arg; /* "pipeline=<escaped>&" or "" */
    struct setup setup;
};

/* ---------------------------------------------------------------- templates */

static int parse_index_template(struct es_out *o, const char *t, char *err, size_t errlen)
{
    const char *s = t;
    while (*s) {
        if (o->n_parts == 64) {
            snprintf(err, errlen, "index template too long");
            return -1;
        }
        struct tmpl_part *pt = &o->parts[o->n_parts];
        if (s[0] == '$' && s[1] == '{') {
            const char *end = strchr(s, '}');
            if (!end) {
                snprintf(err, errlen, "unterminated ${ in index template");
                return -1;
            }
            size_t n = (size_t)(end - s - 2);
            if (n == 5 && memcmp(s + 2, "topic", 5) == 0) {
                pt->kind = T_TOPIC;
            } else if (n == 3 && memcmp(s + 2, "tag", 3) == 0) {
                pt->kind = T_TAG;
            } else if (n > 7 && memcmp(s + 2, "record.", 7) == 0) {
                pt->kind = T_RECORD;
                char *path = strndup(s + 9, n - 7);
                pt->lit = path; /* owned, freed with parts */
                pt->path_idx = path ? sl_pipeline_path(o->p, path) : -1;
                if (pt->path_idx < 0) {
                    snprintf(err, errlen, "too many record fields referenced");
                    return -1;
                }
            } else {
                snprintf(err, errlen, "unknown placeholder in index template");
                return -1;
            }
            s = end + 1;
        } else if (s[0] == '%' && s[1]) {
            pt->kind = T_TIME;
            pt->conv = s[1];
            if (!strchr("YmdHMSjy%", pt->conv)) {
                snprintf(err, errlen, "unsupported %%%c in index template", pt->conv);
                return -1;
            }
            s += 2;
        } else {
            size_t n = strcspn(s, "$%");
            if (n == 0) n = 1;
            pt->kind = T_LIT;
            pt->lit = strndup(s, n);
            pt->lit_len = n;
            s += n;
        }
        o->n_parts++;
    }
    return 0;
}

/* Civil date from days since 1970-01-01 (H. Hinnant's algorithm), UTC only: index dates come
 * from the event time in UTC, never from the local clock or time zone. */
static void civil(int64_t days, int *y, int *m, int *d, int *yday)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
    int leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
    static const int cum[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    *yday = cum[*m - 1] + *d + (leap && *m > 2);
}

/* Digits without snprintf: these run for every record (index date, id), where snprintf was a
 * few percent of sluice's CPU in a profile of the benchmark. */
static size_t put_fixed(char *out, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return (size_t)width;
}

static size_t put_i64(char *out, int64_t v)
{
    char tmp[24];
    size_t n = 0, w = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) out[w++] = '-';
    while (n)
        out[w++] = tmp[--n];
    return w;
}

static size_t render_index(const struct es_out *o, const struct sl_event *ev, char *out, size_t cap)
{
    size_t n = 0;
    int64_t secs = ev->time_ns / 1000000000;
    if (ev->time_ns < 0 && ev->time_ns % 1000000000) secs--;
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t sod = secs - days * 86400;
    int y, m, d, yd;
    civil(days, &y, &m, &d, &yd);
    for (size_t i = 0; i < o->n_parts; i++) {
        const struct tmpl_part *pt = &o->parts[i];
        char tmp[32];
        const char *src = tmp;
        size_t len = 0;
        switch (pt->kind) {
        case T_LIT:
            src = pt->lit;
            len = pt->lit_len;
            break;
        case T_TOPIC:
            src = ev->topic ? ev->topic : "";
            len = ev->topic ? ev->topic_len : 0;
            break;
        case T_TAG:
            src = ev->tag;
            len = ev->tag_len;
            break;
        case T_RECORD: {
            const char *v = ev->scan ? ev->scan->val[pt->path_idx] : NULL;
            size_t vl = v ? ev->scan->vlen[pt->path_idx] : 0;
            if (v && vl >= 2 && v[0] == '"') {
                ssize_t u = sl_json_unescape(v, vl, out + n, cap - n);
                if (u > 0) n += (size_t)u;
                continue;
            }
            src = v ? v : "";
            len = vl;
            break;
        }
        case T_TIME:
            switch (pt->conv) {
            case 'Y':
                len = put_fixed(tmp, (unsigned)y, 4);
                break;
            case 'y':
                len = put_fixed(tmp, (unsigned)(y % 100), 2);
                break;
            case 'm':
                len = put_fixed(tmp, (unsigned)m, 2);
                break;
            case 'd':
                len = put_fixed(tmp, (unsigned)d, 2);
                break;
            case 'j':
                len = put_fixed(tmp, (unsigned)yd, 3);
                break;
            case 'H':
                len = put_fixed(tmp, (unsigned)(sod / 3600), 2);
                break;
            case 'M':
                len = put_fixed(tmp, (unsigned)(sod / 60 % 60), 2);
                break;
            case 'S':
                len = put_fixed(tmp, (unsigned)(sod % 60), 2);
                break;
            default:
                tmp[0] = '%';
                len = 1;
                break;
            }
            break;
        }
        if (n + len > cap) len = cap - n;
        memcpy(out + n, src, len);
        n += len;
    }
    return n;
}

/* ---------------------------------------------------------------- batches */

static void batch_link(struct es_out *o, struct batch *b)
{
    b->all_prev = NULL;
    b->all_next = o->all;
    if (o->all) o->all->all_prev = b;
    o->all = b;
}

static struct batch *batch_new(struct es_out *o, size_t cap, size_t cap_recs)
{
    if (cap == o->eff_max && o->n_pool > 0 && o->pool[o->n_pool - 1]->cap_recs >= cap_recs) {
        /* cached since its last use: its bytes become live again, no new memory */
        struct batch *b = o->pool[--o->n_pool];
        o->pool_hits++;
        sl_budget_uncache(&o->p->budget, b->charged);
        batch_link(o, b);
        return b;
    }
    struct batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    if (cap == o->eff_max) o->pool_misses++;
    b->o = o;
    b->body = malloc(cap);
    b->recs = malloc(cap_recs * sizeof *b->recs);
    if (!b->body || !b->recs) {
        free(b->body);
        free(b->recs);
        free(b);
        return NULL;
    }
    b->cap = cap;
    b->cap_recs = cap_recs;
    b->timer.arg = b;
    batch_link(o, b);
    b->charged = sizeof *b + cap + cap_recs * sizeof *b->recs;
    sl_budget_charge(&o->p->budget, b->charged);
    return b;
}

/* Frees a batch whose charge was already given back (or moved) by the caller. */
static void batch_destroy_mem(struct batch *b)
{
    free(b->resp);
    free(b->gz);
    free(b->body);
    free(b->recs);
    free(b->tags);
    free(b);
}

static void batch_destroy(struct batch *b)
{
    sl_budget_release(&b->o->p->budget, b->charged);
    batch_destroy_mem(b);
}

/* Drops pooled batches, newest first, until `want` bytes are freed or the pool is empty. */
static uint64_t pool_drop(struct es_out *o, uint64_t want)
{
    uint64_t freed = 0;
    while (o->n_pool && freed < want) {
        struct batch *b = o->pool[--o->n_pool];
        freed += b->charged;
        sl_budget_release_cached(&o->p->budget, b->charged);
        batch_destroy_mem(b);
    }
    return freed;
}

static void retry_timer_cb(struct sl_timer *t);

static void batch_free(struct batch *b)
{
    struct es_out *o = b->o;
    if (b->timer.active && b->timer.cb == retry_timer_cb) o->retry_waiting--;
    sl_timer_stop(o->p->loop, &b->timer);
    if (b->all_prev)
        b->all_prev->all_next = b->all_next;
    else
        o->all = b->all_next;
    if (b->all_next) b->all_next->all_prev = b->all_prev;
    curl_slist_free_all(b->hdrs);
    b->hdrs = NULL;
    if (b->cap != o->eff_max || o->n_pool == BODY_POOL || !sl_budget_cache_room(&o->p->budget, 0)) {
        batch_destroy(b);
    } else {
        /* kept whole, and charged, for the next batch */
        b->len = b->n = b->tags_len = b->gz_len = b->resp_len = 0;
        b->last_tag_len = 0;
        b->attempts = 0;
        b->next = b->all_prev = b->all_next = NULL;
        b->easy = NULL;
        o->pool[o->n_pool++] = b;
        sl_budget_cache(&o->p->budget, b->charged);
    }
}

/* Copies a tag into the batch; returns its offset, or UINT32_MAX when out of memory. */
static uint32_t batch_add_tag(struct batch *b, const char *tag, size_t len)
{
    if (b->last_tag_len == len && len && memcmp(b->tags + b->last_tag_off, tag, len) == 0)
        return b->last_tag_off;
    if (b->tags_len + len > b->tags_cap) {
        size_t ncap = b->tags_cap ? b->tags_cap * 2 : 4096;
        while (ncap < b->tags_len + len)
            ncap *= 2;
        char *nt = realloc(b->tags, ncap);
        if (!nt) return UINT32_MAX;
        sl_budget_charge(&b->o->p->budget, ncap - b->tags_cap);
        b->charged += ncap - b->tags_cap;
        b->tags = nt;
        b->tags_cap = ncap;
    }
    memcpy(b->tags + b->tags_len, tag, len);
    uint32_t off = (uint32_t)b->tags_len;
    b->tags_len += len;
    b->last_tag_off = off;
    b->last_tag_len = len;
    return off;
}

static int batch_add_rec(struct batch *b, const struct es_rec *r)
{
    if (b->n == b->cap_recs) {
        size_t ncap = b->cap_recs * 2;
        struct es_rec *nr = realloc(b->recs, ncap * sizeof *nr);
        if (!nr) return -1;
        sl_budget_charge(&b->o->p->budget, (ncap - b->cap_recs) * sizeof *nr);
        b->charged += (ncap - b->cap_recs) * sizeof *nr;
        b->recs = nr;
        b->cap_recs = ncap;
    }
    b->recs[b->n++] = *r;
    return 0;
}

static void ready_push(struct es_out *o, struct batch *b, bool front)
{
    b->next = NULL;
    if (!o->ready_head) {
        o->ready_head = o->ready_tail = b;
    } else if (front) {
        b->next = o->ready_head;
        o->ready_head = b;
    } else {
        o->ready_tail->next = b;
        o->ready_tail = b;
    }
}

static void pump(struct es_out *o);

static void seal_open(struct es_out *o)
{
    if (!o->open) return;
    if (o->open->n)
        ready_push(o, o->open, false);
    else
        batch_free(o->open);
    o->open = NULL;
    sl_timer_stop(o->p->loop, &o->linger);
}

static void linger_cb(struct sl_timer *t)
{
    struct es_out *o = t->arg;
    seal_open(o);
    pump(o);
}

/* A new batch holding the items idx[0..n) of src (for per-item retries and 413 splits). */
static struct batch *batch_subset(struct batch *src, const size_t *idx, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += src->recs[idx[i]].len;
    struct batch *b = batch_new(src->o, bytes ? bytes : 1, n ? n : 1);
    if (!b) return NULL;
    for (size_t i = 0; i < n; i++) {
        struct es_rec r = src->recs[idx[i]];
        memcpy(b->body + b->len, src->body + r.off, r.len);
        r.off = (uint32_t)b->len;
        b->len += r.len;
        r.tag_off = batch_add_tag(b, src->tags + r.tag_off, r.tag_len);
        if (r.tag_off == UINT32_MAX) {
            batch_free(b);
            return NULL;
        }
        b->recs[b->n++] = r;
    }
    return b;
}

/* ---------------------------------------------------------------- fates */

static void rec_event(const struct batch *b, const struct es_rec *r, struct sl_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->input = r->input;
    ev->tag = b->tags + r->tag_off;
    ev->tag_len = r->tag_len;
    ev->topic = r->topic;
    ev->topic_len = r->topic ? strlen(r->topic) : 0;
    ev->partition = r->partition;
    ev->offset = r->offset;
    ev->time_ns = r->time_ns;
    ev->payload = b->body + r->off + r->src_off;
    ev->payload_len = r->len - r->src_off - 1;
    ev->ack = r->ack;
}

/* The index of a record, read back from its action line. */
static void rec_index(const struct batch *b, const struct es_rec *r, char *out, size_t cap,
                      size_t *len)
{
    const char *a = b->body + r->off;
    const char *k = memmem(a, r->src_off, "\"_index\":\"", 10);
    *len = 0;
    if (!k) return;
    k += 10;
    const char *e = k;
    while (e < a + r->src_off && *e != '"')
        e += (*e == '\\') ? 2 : 1;
    ssize_t u = sl_json_unescape(k - 1, (size_t)(e - k) + 2, out, cap);
    if (u > 0) *len = (size_t)u;
}

static void dead_letter_rec(struct es_out *o, const struct batch *b, const struct es_rec *r,
                            const char *reason, int status, const struct sl_bulk_item *it)
{
    struct sl_event ev;
    char index[512];
    size_t index_len;
    rec_event(b, r, &ev);
    rec_index(b, r, index, sizeof index, &index_len);
    sl_pipeline_dead_letter(o->p, &ev, reason, status, it ? it->type : NULL, it ? it->type_len : 0,
                            it ? it->reason : NULL, it ? it->reason_len : 0, true, o->name, index,
                            index_len, r->attempts);
    o->st.dead_lettered++;
    o->recs_pending--;
}

static uint64_t backoff_ms(const struct es_out *o, uint32_t attempt)
{
    uint64_t d = o->es->retry_base_ms;
    for (uint32_t i = 1; i < attempt && d < o->es->retry_max_ms; i++)
        d *= 2;
    if (d > o->es->retry_max_ms) d = o->es->retry_max_ms;
    /* Jitter in [d/2, d] so many sluice processes hitting one cluster do not retry in step. */
    return d / 2 + (uint64_t)rand() % (d / 2 + 1);
}

static void retry_timer_cb(struct sl_timer *t)
{
    struct batch *b = t->arg;
    b->o->retry_waiting--;
    ready_push(b->o, b, true);
    pump(b->o);
}

/* Tells the records' sources why they wait (a source held up by one of them shows it). */
static void note_batch(struct batch *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_batch(struct batch *b, const char *fmt, ...)
{
    char why[SL_ACKTRACK_NOTE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < b->n; i++)
        sl_ack_note(&b->recs[i].ack, why);
}

static void schedule_retry(struct es_out *o, struct batch *b, enum retry_reason why,
                           uint32_t attempt)
{
    o->retries[why]++;
    if (!(b->timer.active && b->timer.cb == retry_timer_cb)) o->retry_waiting++;
    b->timer.cb = retry_timer_cb;
    sl_timer_start(o->p->loop, &b->timer, backoff_ms(o, attempt));
}

/* ---------------------------------------------------------------- transfers */

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    struct batch *b = userp;
    size_t n = size * nmemb;
    if (b->resp_len + n > b->resp_max) return 0; /* aborts: an oversized answer is retried */
    if (b->resp_len + n > b->resp_cap) {
        size_t ncap = b->resp_cap ? b->resp_cap * 2 : 16384;
        while (ncap < b->resp_len + n)
            ncap *= 2;
        char *nr = realloc(b->resp, ncap);
        if (!nr) return 0;
        sl_budget_charge(&b->o->p->budget, ncap - b->resp_cap);
        b->charged += ncap - b->resp_cap;
        b->resp = nr;
        b->resp_cap = ncap;
    }
    memcpy(b->resp + b->resp_len, data, n);
    b->resp_len += n;
    return n;
}

static int compress_body(struct batch *b, int level)
{
    struct es_out *o = b->o;
    z_stream *zs = &o->zs;
    if (!o->zs_ready) {
        if (deflateInit2(zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
        o->zs_ready = true;
    } else if (deflateReset(zs) != Z_OK) {
        return -1;
    }
    size_t bound = deflateBound(zs, b->len);
    if (b->gz_cap < bound) {
        char *g = realloc(b->gz, bound);
        if (!g) return -1;
        sl_budget_charge(&o->p->budget, bound - b->gz_cap);
        b->charged += bound - b->gz_cap;
        b->gz = g;
        b->gz_cap = bound;
    }
    zs->next_in = (Bytef *)b->body;
    zs->avail_in = (uInt)b->len;
    zs->next_out = (Bytef *)b->gz;
    zs->avail_out = (uInt)bound;
    int rc = deflate(zs, Z_FINISH);
    b->gz_len = rc == Z_STREAM_END ? zs->total_out : 0;
    return rc == Z_STREAM_END ? 0 : -1;
}

static CURL *easy_get(struct es_out *o)
{
    if (o->n_easy_pool) return o->easy_pool[--o->n_easy_pool];
    return curl_easy_init();
}

static void easy_put(struct es_out *o, CURL *e)
{
    curl_easy_reset(e);
    o->easy_pool[o->n_easy_pool++] = e;
}

/* What every request to the cluster shares: URL on the current host, headers (content type,
 * no Expect, auth), TLS and timeouts. The caller owns *hdrs and frees it after the transfer. */
static void request_opts(struct es_out *o, CURL *e, const char *path, const char *ctype,
                         struct curl_slist **hdrs)
{
    const struct sl_es_output_cfg *es = o->es;
    char url[2048];
    const char *host = es->hosts[o->host_idx % es->n_hosts];
    size_t hl = strlen(host);
    while (hl && host[hl - 1] == '/')
        hl--;
    snprintf(url, sizeof url, "%.*s%s", (int)hl, host, path);
    curl_slist_free_all(*hdrs);
    *hdrs = curl_slist_append(NULL, ctype);
    /* libcurl would add Expect: 100-continue to large bodies and stall 1 s on servers that do not
     * answer it (libcurl's 1 s expect_100_timeout). */
    *hdrs = curl_slist_append(*hdrs, "Expect:");
    if (o->auth_header) *hdrs = curl_slist_append(*hdrs, o->auth_header);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)es->request_timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, es->tls_verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, es->tls_verify ? 2L : 0L);
    if (es->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, es->ca_file);
    if (es->user) {
        curl_easy_setopt(e, CURLOPT_USERNAME, es->user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, es->password ? es->password : "");
    }
}

/* libcurl resends a request by itself when the reused keep-alive connection it went out on died
 * before any answer byte ("Connection died, retrying a fresh connect"). That is harmless (the ids
 * make the resend overwrite), but it is a transport retry all the same, so it is counted and
 * logged like ours. libcurl calls this once per connection the request is about to go out on. */
static int prereq_cb(void *userp, char *remote_ip, char *local_ip, int remote_port, int local_port)
{
    (void)local_ip;
    (void)local_port;
    struct batch *b = userp;
    if (++b->sends > 1) {
        /* The attempt that died reached the cluster, which may have processed it: counted and
         * timed like any request, so these counters match what the cluster received. */
        struct es_out *o = b->o;
        uint64_t now = sl_now_ms(), took = now - b->started_ms;
        o->st.latency_ms_sum += took;
        if (o->st.latency) sl_histogram_observe(o->st.latency, (double)took / 1000.0);
        b->started_ms = now;
        o->st.requests++;
        o->st.items_sent += b->n;
        o->st.bytes_sent += b->gz_len ? b->gz_len : b->len;
        o->retries[RR_TRANSPORT]++;
        SL_WARN(o->name, retry_names[RR_TRANSPORT],
                "bulk request resent by libcurl to %s:%d on a fresh connection: the reused one "
                "closed before any answer",
                remote_ip, remote_port);
    }
    return CURL_PREREQFUNC_OK;
}

static int start_transfer(struct es_out *o, struct batch *b)
{
    const struct sl_es_output_cfg *es = o->es;
    if (es->compression == SL_COMPRESSION_GZIP && !b->gz_len &&
        compress_body(b, es->gzip_level) != 0)
        return -1;
    CURL *e = easy_get(o);
    if (!e) return -1;
    char path[600];
    snprintf(path, sizeof path, "/_bulk?%s" FILTER_PATH, o->pipeline_arg);
    request_opts(o, e, path, "Content-Type: application/x-ndjson", &b->hdrs);
    if (b->gz_len) b->hdrs = curl_slist_append(b->hdrs, "Content-Encoding: gzip");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, b->hdrs);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, b->gz_len ? b->gz : b->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(b->gz_len ? b->gz_len : b->len));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(e, CURLOPT_PRIVATE, b);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, prereq_cb);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, b);
    b->sends = 0;
    b->resp_len = 0;
    /* Bounded: with filter_path an item answer is tens of bytes, an error a few hundred. */
    b->resp_max = 65536 + b->n * 2048;
    b->easy = e;
    b->started_ms = sl_now_ms();
    if (curl_multi_add_handle(o->multi, e) != CURLM_OK) {
        easy_put(o, e);
        b->easy = NULL;
        return -1;
    }
    o->inflight++;
    o->st.requests++;
    o->st.items_sent += b->n;
    o->st.bytes_sent += b->gz_len ? b->gz_len : b->len;
    for (size_t i = 0; i < b->n; i++)
        b->recs[i].attempts++;
    return 0;
}

static void pump(struct es_out *o)
{
    if (!o->setup.gate_open) return;
    while (o->inflight < o->es->concurrency && o->ready_head) {
        struct batch *b = o->ready_head;
        o->ready_head = b->next;
        if (!o->ready_head) o->ready_tail = NULL;
        if (start_transfer(o, b) != 0) {
            SL_ERROR(o->name, "start", "cannot start a bulk request (out of memory?); retrying");
            schedule_retry(o, b, RR_TRANSPORT, ++b->attempts);
        }
    }
}

static void handle_items(struct es_out *o, struct batch *b)
{
    char err[256];
    if (b->n > o->items_cap) {
        struct sl_bulk_item *ni = realloc(o->items, b->n * sizeof *ni);
        if (ni) o->items = ni;
        size_t *nr = realloc(o->retry_idx, b->n * sizeof *nr);
        if (nr) o->retry_idx = nr;
        if (!ni || !nr) {
            schedule_retry(o, b, RR_BAD_RESPONSE, ++b->attempts);
            return;
        }
        /* bounded by the largest batch, which the budget bounds */
        sl_budget_charge(&o->p->budget, (b->n - o->items_cap) * (sizeof *ni + sizeof *nr));
        o->items_cap = b->n;
    }
    struct sl_bulk_item *items = o->items;
    size_t *retry_idx = o->retry_idx;
    memset(items, 0, b->n * sizeof *items);
    if (sl_bulk_parse_response(b->resp, b->resp_len, items, b->n, err, sizeof err) != 0) {
        SL_WARN(o->name, "bad_response", "unusable bulk response (%s); resending the batch", err);
        schedule_retry(o, b, RR_BAD_RESPONSE, ++b->attempts);
        return;
    }
    enum sl_bulk_op op = o->es->op == SL_ES_OP_CREATE ? SL_BULK_CREATE : SL_BULK_INDEX;
    size_t n_retry = 0, n_dl = 0, n_exhausted = 0;
    uint32_t max_attempts = 0;
    int first_retry_status = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct es_rec *r = &b->recs[i];
        switch (sl_bulk_classify_item(items[i].status, op)) {
        case SL_BULK_DELIVERED:
            o->st.delivered++;
            o->recs_pending--;
            sl_ack(&r->ack, SL_FATE_DELIVERED);
            break;
        case SL_BULK_DEAD_LETTER:
            dead_letter_rec(o, b, r, "rejected by elasticsearch", items[i].status, &items[i]);
            n_dl++;
            break;
        case SL_BULK_RETRY: {
            if (o->es->item_retry_timeout_ms &&
                (uint64_t)(sl_now_ms() / 1000 - r->first_s) * 1000 >=
                    o->es->item_retry_timeout_ms) {
                dead_letter_rec(o, b, r, "retries exhausted", items[i].status, &items[i]);
                o->st.retries_exhausted++;
                n_dl++;
                n_exhausted++;
                break;
            }
            char why[SL_ACKTRACK_NOTE_MAX];
            snprintf(why, sizeof why, "HTTP %d %.*s: %.*s", items[i].status, (int)items[i].type_len,
                     items[i].type ? items[i].type : "", (int)items[i].reason_len,
                     items[i].reason ? items[i].reason : "");
            sl_ack_note(&r->ack, why);
            if (!first_retry_status) first_retry_status = items[i].status;
            retry_idx[n_retry++] = i;
            if (r->attempts > max_attempts) max_attempts = r->attempts;
            break;
        }
        }
    }
    /* Dead-letter lines must be durable before their records are acknowledged, and before the
     * body they point into is freed. */
    if (n_dl) sl_pipeline_dl_commit(o->p);
    if (n_retry) {
        SL_WARN(o->name, "item_retry",
                "%zu of %zu items failed transiently (first status %d); "
                "resending only those",
                n_retry, b->n, first_retry_status);
        struct batch *rb = batch_subset(b, retry_idx, n_retry);
        if (rb) {
            schedule_retry(o, rb, RR_ITEM, max_attempts);
        } else {
            /* Out of memory for the subset: resend the whole batch rather than lose items. */
            SL_ERROR(o->name, "oom", "cannot build a retry batch; records are redelivered");
            abort();
        }
    }
    if (n_dl)
        SL_WARN(o->name, "item_dead_letter",
                "%zu of %zu items rejected permanently (%zu of them still refused after "
                "item_retry_timeout); written to the dead-letter store",
                n_dl, b->n, n_exhausted);
    batch_free(b);
}

static void split_413(struct es_out *o, struct batch *b)
{
    if (b->n == 1) {
        struct sl_bulk_item it = {.status = 413};
        static const char t[] = "request_entity_too_large";
        static const char why[] = "a bulk request holding only this document was refused "
                                  "with HTTP 413";
        it.type = t;
        it.type_len = sizeof t - 1;
        it.reason = why;
        it.reason_len = sizeof why - 1;
        dead_letter_rec(o, b, &b->recs[0], "document too large", 413, &it);
        sl_pipeline_dl_commit(o->p);
        batch_free(b);
        return;
    }
    size_t half = b->n / 2;
    size_t *idx = malloc(b->n * sizeof *idx);
    if (!idx) abort();
    for (size_t i = 0; i < b->n; i++)
        idx[i] = i;
    struct batch *a = batch_subset(b, idx, half);
    struct batch *c = batch_subset(b, idx + half, b->n - half);
    free(idx);
    if (!a || !c) abort();
    o->retries[RR_SPLIT_413]++;
    SL_WARN(o->name, "split_413",
            "bulk request of %zu bytes refused with 413; splitting %zu "
            "items in two",
            b->len, b->n);
    ready_push(o, c, true);
    ready_push(o, a, true);
    batch_free(b);
}

/* ---------------------------------------------------------------- resources */

static bool setup_wanted(const struct es_out *o)
{
    const struct setup *su = &o->setup;
    return !su->identified || su->ilm_body || su->tmpl_body || su->ds_name;
}

static bool step_applies(const struct es_out *o, enum setup_step st)
{
    switch (st) {
    case SS_INFO:
        return true;
    case SS_ILM_GET:
    case SS_ILM_PUT:
        return o->setup.ilm_body != NULL;
    case SS_TMPL_GET:
    case SS_TMPL_PUT:
        return o->setup.tmpl_body != NULL;
    case SS_DS_GET:
    case SS_DS_PUT:
        return o->setup.ds_name != NULL;
    case SS_DONE:
        break;
    }
    return true;
}

static size_t setup_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    struct setup *su = userp;
    size_t n = size * nmemb, room = sizeof su->resp - 1 - su->resp_len;
    /* only the start of an answer is kept: GET / fits, and errors are quoted from it */
    memcpy(su->resp + su->resp_len, data, n < room ? n : room);
    su->resp_len += n < room ? n : room;
    return n;
}

static void setup_send(struct es_out *o);

static void setup_finish(struct es_out *o)
{
    struct setup *su = &o->setup;
    su->active = false;
    sl_timer_stop(o->p->loop, &su->deadline);
    if (!su->gate_open && (su->ilm_body || su->tmpl_body || su->ds_name))
        SL_INFO(o->name, "resources in place (%s%s%s)", su->ilm_body ? "ILM policy " : "",
                su->tmpl_body ? "index template " : "", su->ds_name ? "data stream" : "");
    su->gate_open = true;
    pump(o);
}

/* Moves to step st, or the next one that applies, and sends it. */
static void setup_goto(struct es_out *o, enum setup_step st)
{
    while (st != SS_DONE && !step_applies(o, st))
        st++;
    o->setup.step = st;
    o->setup.attempts = 0;
    if (st == SS_DONE)
        setup_finish(o);
    else
        setup_send(o);
}

static void setup_retry_cb(struct sl_timer *t)
{
    setup_send(t->arg);
}

static void setup_deadline_cb(struct sl_timer *t)
{
    struct es_out *o = t->arg;
    if (o->setup.gate_open) return;
    if (o->setup.step == SS_INFO)
        SL_ERROR(o->name, "setup_timeout",
                 "the cluster at %s still did not answer GET / after %llums; sending batches "
                 "anyway and still retrying it",
                 o->es->hosts[o->host_idx % o->es->n_hosts],
                 (unsigned long long)o->es->setup_timeout_ms);
    else
        SL_ERROR(o->name, "setup_timeout",
                 "Elasticsearch resources still not in place after %llums; sending batches "
                 "anyway and still retrying the setup%s",
                 (unsigned long long)o->es->setup_timeout_ms,
                 o->es->data_stream ? " (without its template, a write to the data stream's "
                                      "name creates a plain index)"
                                    : "");
    o->setup.gate_open = true;
    pump(o);
}

/* Starts a run: at start-up, and when the cluster was unreachable (it may have been rebuilt).
 * Batches wait for the run, at most setup_timeout. */
static void setup_start(struct es_out *o)
{
    struct setup *su = &o->setup;
    if (!setup_wanted(o)) {
        su->gate_open = true;
        return;
    }
    if (su->active || su->fatal) return;
    su->active = true;
    su->gate_open = false;
    su->runs++;
    sl_timer_start(o->p->loop, &su->deadline, o->es->setup_timeout_ms);
    setup_goto(o, SS_INFO);
}

/* The step's URL path: the root for the cluster's info, else the resource's endpoint and name. */
static void setup_path(const struct es_out *o, CURL *e, char *path, size_t cap)
{
    static const char *const what[] = {"",
                                       "_ilm/policy/",
                                       "_ilm/policy/",
                                       "_index_template/",
                                       "_index_template/",
                                       "_data_stream/",
                                       "_data_stream/"};
    enum setup_step st = o->setup.step;
    const char *name = st == SS_INFO       ? ""
                       : st <= SS_ILM_PUT  ? o->es->ilm_policy_name
                       : st <= SS_TMPL_PUT ? o->es->template_name
                                           : o->setup.ds_name;
    char *esc = name[0] ? curl_easy_escape(e, name, 0) : NULL;
    snprintf(path, cap, "/%s%s", what[st], esc ? esc : "");
    curl_free(esc);
}

static void setup_send(struct es_out *o)
{
    struct setup *su = &o->setup;
    CURL *e = easy_get(o);
    if (!e) {
        sl_timer_start(o->p->loop, &su->retry, backoff_ms(o, ++su->attempts));
        return;
    }
    char path[1024];
    setup_path(o, e, path, sizeof path);
    su->host = o->es->hosts[o->host_idx % o->es->n_hosts];
    request_opts(o, e, path, "Content-Type: application/json", &su->hdrs);
    bool put = su->step == SS_ILM_PUT || su->step == SS_TMPL_PUT || su->step == SS_DS_PUT;
    if (put) {
        const char *body = su->step == SS_ILM_PUT    ? su->ilm_body
                           : su->step == SS_TMPL_PUT ? su->tmpl_body
                                                     : "";
        size_t len = su->step == SS_ILM_PUT    ? su->ilm_len
                     : su->step == SS_TMPL_PUT ? su->tmpl_len
                                               : 0;
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, setup_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, su);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)su);
    su->resp_len = 0;
    su->easy = e;
    if (curl_multi_add_handle(o->multi, e) != CURLM_OK) {
        easy_put(o, e);
        su->easy = NULL;
        sl_timer_start(o->p->loop, &su->retry, backoff_ms(o, ++su->attempts));
    }
}

/* A step that failed is retried with backoff, however long it takes: an operator can fix the
 * cluster side without restarting us. */
static void setup_failed(struct es_out *o, CURLcode res, long status)
{
    static const char *const names[] = {"reading the cluster's version (GET /)",
                                        "reading ILM policy",
                                        "installing ILM policy",
                                        "reading index template",
                                        "installing index template",
                                        "reading data stream",
                                        "creating data stream"};
    struct setup *su = &o->setup;
    enum setup_step st = su->step;
    su->failures++;
    o->retries[RR_SETUP]++;
    struct sl_bulk_item eb = {0};
    bool have = res == CURLE_OK && sl_bulk_parse_error(su->resp, su->resp_len, &eb) == 0;
    /* 4xx other than 404: the cluster refuses what we send (a bad template, a missing
     * template for the data stream): loud */
    if (res != CURLE_OK)
        SL_WARN(o->name, "setup", "%s failed: %s; retrying", names[st], curl_easy_strerror(res));
    else
        SL_ERROR(o->name, "setup", "%s: HTTP %ld%s%.*s%s%.*s; retrying", names[st], status,
                 have ? ": " : "", have ? (int)eb.type_len : 0, have ? eb.type : "",
                 have ? ": " : "", have ? (int)eb.reason_len : 0, have ? eb.reason : "");
    if (res != CURLE_OK && o->es->n_hosts > 1) o->host_idx++;
    sl_timer_start(o->p->loop, &su->retry, backoff_ms(o, ++su->attempts));
}

/* ILM on OpenSearch cannot work, however long we retry: said once, loudly, and the process stops
 * (exit code 2, a configuration error) before anything reached _ilm or a record was sent. */
static void setup_fatal_ilm(struct es_out *o)
{
    struct setup *su = &o->setup;
    SL_ERROR(o->name, NULL,
             "ilm_policy_name and ilm_policy_file cannot work here: the cluster at %s is %s %s, "
             "which has no _ilm API (index lifecycle on OpenSearch is the Index State "
             "Management plugin, _plugins/_ism). Remove the ilm_policy_* keys from this output "
             "(and index.lifecycle.* from its template), and manage the indices' lifecycle with "
             "an ISM policy whose ism_template matches them; stopping",
             su->host, sl_es_info_product(&su->info), su->info.number);
    su->fatal = true;
    su->active = false;
    sl_timer_stop(o->p->loop, &su->deadline);
    o->p->fatal = true;
}

static void info_found(struct es_out *o, const struct sl_es_info *info)
{
    struct setup *su = &o->setup;
    bool same = su->info_known && su->info.dist == info->dist &&
                strcmp(su->info.number, info->number) == 0 &&
                strcmp(su->info.distribution, info->distribution) == 0;
    su->info = *info;
    su->info_known = su->identified = true;
    if (!same)
        SL_INFO(o->name, "cluster at %s: %s %s", su->host, sl_es_info_product(info), info->number);
    if (info->dist == SL_ES_DIST_OPENSEARCH && (o->es->ilm_policy_name || o->es->ilm_policy_file)) {
        setup_fatal_ilm(o);
        return;
    }
    if (!same && info->dist == SL_ES_DIST_ELASTICSEARCH && info->major >= 0 && info->major < 7)
        SL_WARN(o->name, NULL,
                "Elasticsearch %s: versions before 7 require a _type in bulk actions, which "
                "sluice does not send; expect its bulk requests to be refused (400, type is "
                "missing) and their records dead-lettered",
                info->number);
    setup_goto(o, SS_INFO + 1);
}

/* An answer that does not say what the cluster is (a proxy's page, or 401/403 for a user without
 * the monitor privilege) skips the check rather than holding the records: everything else works
 * without it. */
static void info_unknown(struct es_out *o, const char *why)
{
    struct setup *su = &o->setup;
    if (!su->info_warned)
        SL_WARN(o->name, NULL,
                "the cluster at %s did not say what it is (GET /: %s); going on without "
                "checking that this configuration suits it",
                su->host, why);
    su->info_warned = true;
    su->info_known = false;
    su->identified = true;
    setup_goto(o, SS_INFO + 1);
}

static void info_done(struct es_out *o, CURLcode res, long status)
{
    struct setup *su = &o->setup;
    char why[256];
    if (res == CURLE_OK && status >= 200 && status < 300) {
        struct sl_es_info info;
        char err[128];
        if (sl_es_info_parse(su->resp, su->resp_len, &info, err, sizeof err) == 0) {
            info_found(o, &info);
            return;
        }
        snprintf(why, sizeof why, "HTTP %ld, %s", status, err);
    } else if (res == CURLE_OK && status >= 400 && status < 500 && status != 408 && status != 429) {
        struct sl_bulk_item eb = {0};
        bool have = sl_bulk_parse_error(su->resp, su->resp_len, &eb) == 0;
        snprintf(why, sizeof why, "HTTP %ld%s%.*s", status, have ? ": " : "",
                 have ? (int)eb.reason_len : 0, have ? eb.reason : "");
    } else {
        setup_failed(o, res, status);
        return;
    }
    info_unknown(o, why);
}

static void setup_done(struct es_out *o, CURLcode res, long status)
{
    struct setup *su = &o->setup;
    su->easy = NULL;
    su->resp[su->resp_len] = '\0';
    enum setup_step st = su->step;
    if (st == SS_INFO) {
        info_done(o, res, status);
        return;
    }
    bool get = st == SS_ILM_GET || st == SS_TMPL_GET || st == SS_DS_GET;
    if (res == CURLE_OK && get && status == 200) {
        /* it exists: keep it, unless the configuration says to replace it */
        bool overwrite = (st == SS_ILM_GET && o->es->ilm_policy_overwrite) ||
                         (st == SS_TMPL_GET && o->es->template_overwrite);
        setup_goto(o, overwrite ? st + 1 : st + 2);
        return;
    }
    if (res == CURLE_OK && ((get && status == 404) || (!get && status >= 200 && status < 300))) {
        setup_goto(o, st + 1);
        return;
    }
    setup_failed(o, res, status);
}

/* Reads a JSON body checked by the config loader; NULL with err set on failure. */
static char *read_body(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (f && fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
            fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
            *len = (size_t)n;
            fclose(f);
            return buf;
        }
    }
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    free(buf);
    if (f) fclose(f);
    return NULL;
}

static int setup_init(struct es_out *o, char *err, size_t errlen)
{
    struct setup *su = &o->setup;
    su->retry.cb = setup_retry_cb;
    su->retry.arg = o;
    su->deadline.cb = setup_deadline_cb;
    su->deadline.arg = o;
    if (o->es->ilm_policy_file &&
        !(su->ilm_body = read_body(o->es->ilm_policy_file, &su->ilm_len, err, errlen)))
        return -1;
    if (o->es->template_file &&
        !(su->tmpl_body = read_body(o->es->template_file, &su->tmpl_len, err, errlen)))
        return -1;
    if (o->es->data_stream && !strchr(o->es->data_stream, '$')) {
        su->ds_name = strdup(o->es->data_stream);
        if (!su->ds_name) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

static void setup_fini(struct es_out *o)
{
    struct setup *su = &o->setup;
    if (su->easy) {
        curl_multi_remove_handle(o->multi, su->easy);
        curl_easy_cleanup(su->easy);
    }
    sl_timer_stop(o->p->loop, &su->retry);
    sl_timer_stop(o->p->loop, &su->deadline);
    curl_slist_free_all(su->hdrs);
    free(su->ilm_body);
    free(su->tmpl_body);
    free(su->ds_name);
}

static void on_done(struct es_out *o, CURL *e, CURLcode res)
{
    struct batch *b = NULL;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&b);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(o->multi, e);
    easy_put(o, e);
    if ((void *)b == (void *)&o->setup) {
        setup_done(o, res, status);
        return;
    }
    b->easy = NULL;
    o->inflight--;
    uint64_t took = sl_now_ms() - b->started_ms;
    o->st.latency_ms_sum += took;
    if (o->st.latency) sl_histogram_observe(o->st.latency, (double)took / 1000.0);
    const char *host = o->es->hosts[o->host_idx % o->es->n_hosts];
    if (res != CURLE_OK) {
        enum retry_reason why = res == CURLE_OPERATION_TIMEDOUT ? RR_TIMEOUT : RR_TRANSPORT;
        SL_WARN(o->name, retry_names[why], "bulk request to %s failed: %s; retrying", host,
                curl_easy_strerror(res));
        note_batch(b, "bulk request to %s failed: %s", host, curl_easy_strerror(res));
        if (o->es->n_hosts > 1) o->host_idx++;
        schedule_retry(o, b, why, ++b->attempts);
        /* the cluster was out of reach: it may come back without our resources */
        setup_start(o);
        return;
    }
    if (status >= 200 && status < 300) {
        handle_items(o, b);
        return;
    }
    if (status == 413) {
        split_413(o, b);
        return;
    }
    struct sl_bulk_item eb = {0};
    int have_err = sl_bulk_parse_error(b->resp, b->resp_len, &eb) == 0;
    if (status == 429 || status == 408 || status >= 500 || status == 401 || status == 403 ||
        status == 404 || status < 200) {
        enum retry_reason why = status == 429                      ? RR_HTTP_429
                                : status >= 500                    ? RR_HTTP_5XX
                                : (status == 401 || status == 403) ? RR_HTTP_AUTH
                                                                   : RR_HTTP_OTHER;
        SL_WARN(o->name, retry_names[why], "bulk request to %s answered HTTP %ld%s%.*s; retrying",
                host, status, have_err ? ": " : "", have_err ? (int)eb.reason_len : 0,
                have_err ? eb.reason : "");
        note_batch(b, "bulk request to %s answered HTTP %ld%s%.*s", host, status,
                   have_err ? ": " : "", have_err ? (int)eb.reason_len : 0,
                   have_err ? eb.reason : "");
        if (status >= 502 && status <= 504 && o->es->n_hosts > 1) o->host_idx++;
        schedule_retry(o, b, why, ++b->attempts);
        return;
    }
    /* Any other 4xx refuses the request itself (e.g. malformed NDJSON): permanent for these
     * records. This should never happen with a correct body, so it is loud. */
    SL_ERROR(o->name, "http_4xx",
             "bulk request refused with HTTP %ld%s%.*s; dead-lettering its "
             "%zu records",
             status, have_err ? ": " : "", have_err ? (int)eb.reason_len : 0,
             have_err ? eb.reason : "", b->n);
    for (size_t i = 0; i < b->n; i++)
        dead_letter_rec(o, b, &b->recs[i], "request rejected by elasticsearch", (int)status,
                        have_err ? &eb : NULL);
    sl_pipeline_dl_commit(o->p);
    batch_free(b);
}

static void check_done(struct es_out *o)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(o->multi, &left)))
        if (m->msg == CURLMSG_DONE) on_done(o, m->easy_handle, m->data.result);
    pump(o);
}

/* ---------------------------------------------------------------- curl <-> loop */

static void curl_io_cb(struct sl_io *io, uint32_t events)
{
    struct es_out *o = io->arg;
    int flags = 0, running;
    if (events & EPOLLIN) flags |= CURL_CSELECT_IN;
    if (events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
    if (events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(o->multi, io->fd, flags, &running);
    check_done(o);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    (void)socketp;
    struct es_out *o = userp;
    if (s < 0) return 0;
    if ((size_t)s >= o->n_fdio) {
        size_t n = (size_t)s + 64;
        struct sl_io **nf = realloc(o->fdio, n * sizeof *nf);
        if (!nf) return -1;
        memset(nf + o->n_fdio, 0, (n - o->n_fdio) * sizeof *nf);
        o->fdio = nf;
        o->n_fdio = n;
    }
    /* Slots are kept per fd number and never freed while running: a stale epoll event for a
     * socket curl just closed then still points at valid memory. */
    struct sl_io *io = o->fdio[s];
    if (!io) {
        io = calloc(1, sizeof *io);
        if (!io) return -1;
        o->fdio[s] = io;
    }
    io->fd = s;
    io->cb = curl_io_cb;
    io->arg = o;
    uint32_t ev = 0;
    if (what == CURL_POLL_IN)
        ev = EPOLLIN;
    else if (what == CURL_POLL_OUT)
        ev = EPOLLOUT;
    else if (what == CURL_POLL_INOUT)
        ev = EPOLLIN | EPOLLOUT;
    int rc = sl_loop_io_set(o->p->loop, io, ev);
    if (rc != 0 && ev) SL_ERROR(o->name, "epoll", "cannot watch socket %d: %s", s, strerror(-rc));
    return 0;
}

static void curl_timer_fire(struct sl_timer *t)
{
    struct es_out *o = t->arg;
    int running;
    curl_multi_socket_action(o->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(o);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    struct es_out *o = userp;
    if (timeout_ms < 0)
        sl_timer_stop(o->p->loop, &o->curl_timer);
    else
        sl_timer_start(o->p->loop, &o->curl_timer, (uint64_t)timeout_ms);
    return 0;
}

/* ---------------------------------------------------------------- output ops */

/* The id a record's source gives it: <topic>-<partition>-<offset> for Kafka (topic names are at
 * most 249 bytes), the chunk id and index for Forward; 0 when it has none. */
static size_t source_id(const struct sl_event *ev, char *buf, const char **id)
{
    if (ev->topic) {
        size_t n = ev->topic_len;
        memcpy(buf, ev->topic, n);
        buf[n++] = '-';
        n += put_i64(buf + n, ev->partition);
        buf[n++] = '-';
        n += put_i64(buf + n, ev->offset);
        *id = buf;
        return n;
    }
    *id = ev->src_id;
    return ev->src_id ? ev->src_id_len : 0;
}

/* The id field's value as an _id: a non-empty string or a number, at most SL_ES_ID_MAX bytes
 * (a cluster refuses the whole bulk request for a longer one); 0 when there is none. */
static size_t field_id(const struct es_out *o, const struct sl_event *ev, char *buf, size_t cap)
{
    if (!ev->scan || !ev->scan->val[o->id_path_idx]) return 0;
    const char *v = ev->scan->val[o->id_path_idx];
    size_t vl = ev->scan->vlen[o->id_path_idx];
    if (v[0] == '"') {
        ssize_t u = sl_json_unescape(v, vl, buf, cap);
        return u > 0 && (size_t)u <= SL_ES_ID_MAX ? (size_t)u : 0;
    }
    if ((v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) && vl <= SL_ES_ID_MAX) {
        memcpy(buf, v, vl);
        return vl;
    }
    return 0;
}

static void es_submit(void *impl, const struct sl_event *ev)
{
    struct es_out *o = impl;
    char index[512], idbuf[1024], action[8192];
    size_t index_len = render_index(o, ev, index, sizeof index);
    const char *id = NULL;
    size_t id_len = 0;
    if (o->es->id == SL_ID_KAFKA) {
        id_len = source_id(ev, idbuf, &id);
    } else if (o->es->id == SL_ID_FIELD) {
        id_len = field_id(o, ev, idbuf, sizeof idbuf);
        id = idbuf;
        if (id_len == 0) {
            /* Sent without an _id it would be a new document on every redelivery. */
            o->st.id_missing++;
            if (o->es->id_missing == SL_ID_MISSING_SOURCE) id_len = source_id(ev, idbuf, &id);
            SL_WARN(o->name, "id_missing",
                    "a record from %s has no usable _id in field %s (absent, empty, not a string "
                    "or number, or over %d bytes); %s",
                    ev->input, o->es->id_field, SL_ES_ID_MAX,
                    id_len ? "using its source's id (id_missing: source)" : "dead-lettered");
            if (id_len == 0) {
                static const char why[] = "the id field is absent, empty, not a string or "
                                          "number, or longer than 512 bytes";
                o->recs_pending++;
                sl_pipeline_dead_letter(o->p, ev, "no usable id", 0, "id_missing", 10, why,
                                        sizeof why - 1, false, o->name, index, index_len, 0);
                o->st.dead_lettered++;
                o->recs_pending--;
                return;
            }
        }
    }
    if (!o->act_head_len || index_len != o->act_index_len ||
        memcmp(index, o->act_index, index_len) != 0) {
        o->act_head_len = sl_bulk_action_head(
            o->act_head, sizeof o->act_head,
            o->es->op == SL_ES_OP_CREATE ? SL_BULK_CREATE : SL_BULK_INDEX, index, index_len);
        memcpy(o->act_index, index, index_len);
        o->act_index_len = index_len;
    }
    memcpy(action, o->act_head, o->act_head_len);
    size_t alen = o->act_head_len
                      ? sl_bulk_action_tail(action, sizeof action, o->act_head_len, id, id_len)
                      : 0;
    /* The event time as timestamp_key, unless the record has that field: appended inside the
     * object's closing brace, so the payload is still copied once, not re-serialised. */
    const char *ts = NULL;
    size_t ts_len = 0, body_len = ev->payload_len;
    if (o->ts_path_idx >= 0 && !(ev->scan && ev->scan->val[o->ts_path_idx])) {
        while (body_len && ev->payload[body_len - 1] != '}')
            body_len--;
        if (body_len) {
            body_len--;
            size_t j = body_len;
            while (j && (ev->payload[j - 1] == ' ' || ev->payload[j - 1] == '\t'))
                j--;
            bool empty = j && ev->payload[j - 1] == '{';
            char *t = o->ts_buf + o->ts_prefix_len;
            t += sl_time_format_rfc3339_short_cached(&o->ts_cache, ev->time_ns, t);
            *t++ = '"';
            *t++ = '}';
            ts = o->ts_buf + (empty ? 1 : 0);
            ts_len = (size_t)(t - ts);
        } else {
            body_len = ev->payload_len;
        }
    }
    size_t item = alen + body_len + ts_len + 1;
    o->recs_pending++;
    if (alen == 0 || item > o->eff_max) {
        char why[160];
        int wl = snprintf(why, sizeof why,
                          "the record needs %zu bytes in a bulk request, more than the %zu "
                          "allowed (batch_max_bytes and memory_limit)",
                          item, o->eff_max);
        sl_pipeline_dead_letter(o->p, ev, "record too large", 0, "record_too_large", 16, why,
                                (size_t)wl, false, o->name, index, index_len, 0);
        o->st.dead_lettered++;
        o->recs_pending--;
        return;
    }
    if (o->open && o->open->len + item > o->open->cap) seal_open(o);
    if (!o->open) {
        /* Sized once for a full batch: the body never reallocates, so what is charged to the
         * budget is what is held. */
        o->open = batch_new(o, o->eff_max, 1024);
        if (!o->open) {
            SL_ERROR(o->name, "oom", "cannot allocate a batch of %zu bytes", o->eff_max);
            abort();
        }
        sl_timer_start(o->p->loop, &o->linger, o->es->batch_max_wait_ms);
    }
    struct batch *b = o->open;
    struct es_rec r = {
        .ack = ev->ack,
        .input = ev->input,
        .topic = ev->topic,
        .tag_len = (uint16_t)(ev->tag_len < UINT16_MAX ? ev->tag_len : UINT16_MAX),
        .time_ns = ev->time_ns,
        .offset = ev->offset,
        .partition = ev->partition,
        .off = (uint32_t)b->len,
        .src_off = (uint32_t)alen,
        .len = (uint32_t)item,
        .first_s = (uint32_t)(sl_now_ms() / 1000),
    };
    r.tag_off = batch_add_tag(b, ev->tag, r.tag_len);
    if (r.tag_off == UINT32_MAX) abort();
    memcpy(b->body + b->len, action, alen);
    memcpy(b->body + b->len + alen, ev->payload, body_len);
    if (ts_len) memcpy(b->body + b->len + alen + body_len, ts, ts_len);
    b->body[b->len + item - 1] = '\n';
    b->len += item;
    if (batch_add_rec(b, &r) != 0) abort();
    if (b->cap - b->len < 256) {
        seal_open(o);
        pump(o);
    }
}

static void es_flush(void *impl)
{
    struct es_out *o = impl;
    seal_open(o);
    pump(o);
}

/* Nothing more is ready to read: a partial batch goes now if no request is in flight, so a record
 * waits about one round trip instead of batch_max_wait. While one is, records accumulate: partial
 * batches are at most one per round trip of the cluster, however many records arrive and however
 * many slots are free (the other slots are for batches that fill). Allowing one per free slot
 * sent 4 requests per round trip, of about one record each at 1,000 records/s. A batch waiting to
 * be retried counts as in flight: a cluster that refuses requests does not get more of them,
 * smaller, but the batch_max_wait of before. */
static void es_idle(void *impl)
{
    struct es_out *o = impl;
    if (!o->open || !o->open->n || !o->setup.gate_open || o->ready_head) return;
    if (o->inflight + o->retry_waiting > 0) return;
    seal_open(o);
    pump(o);
}

static struct sl_output_stats *es_stats(void *impl)
{
    return &((struct es_out *)impl)->st;
}

static uint64_t es_reclaim(void *impl, uint64_t want)
{
    return pool_drop(impl, want);
}

static uint64_t es_pending(void *impl)
{
    return ((struct es_out *)impl)->recs_pending;
}

static void es_log_stats(void *impl)
{
    struct es_out *o = impl;
    char r[512];
    size_t n = 0;
    for (int i = 0; i < RR_COUNT; i++)
        n += (size_t)snprintf(r + n, sizeof r - n, "%s%s=%llu", i ? "," : "", retry_names[i],
                              (unsigned long long)o->retries[i]);
    SL_INFO(o->name,
            "requests=%llu items_sent=%llu delivered=%llu dead_lettered=%llu pending=%llu "
            "inflight=%zu bytes_sent=%llu avg_latency_ms=%llu batches_reused=%llu/%llu "
            "retries{%s}",
            (unsigned long long)o->st.requests, (unsigned long long)o->st.items_sent,
            (unsigned long long)o->st.delivered, (unsigned long long)o->st.dead_lettered,
            (unsigned long long)o->recs_pending, o->inflight, (unsigned long long)o->st.bytes_sent,
            (unsigned long long)(o->st.requests ? o->st.latency_ms_sum / o->st.requests : 0),
            (unsigned long long)o->pool_hits, (unsigned long long)(o->pool_hits + o->pool_misses),
            r);
}

static void es_destroy(void *impl)
{
    struct es_out *o = impl;
    /* Whatever is still held is not acknowledged: its sources redeliver it after a restart. */
    while (o->all) {
        struct batch *b = o->all;
        if (b->easy) {
            curl_multi_remove_handle(o->multi, b->easy);
            curl_easy_cleanup(b->easy);
        }
        batch_free(b);
    }
    pool_drop(o, UINT64_MAX);
    sl_budget_release(&o->p->budget, o->items_cap * (sizeof *o->items + sizeof *o->retry_idx));
    free(o->items);
    free(o->retry_idx);
    if (o->zs_ready) deflateEnd(&o->zs);
    sl_timer_stop(o->p->loop, &o->linger);
    sl_timer_stop(o->p->loop, &o->curl_timer);
    setup_fini(o);
    free(o->pipeline_arg);
    free(o->ts_buf);
    for (size_t i = 0; i < o->n_easy_pool; i++)
        curl_easy_cleanup(o->easy_pool[i]);
    curl_multi_cleanup(o->multi);
    for (size_t i = 0; i < o->n_fdio; i++) {
        if (o->fdio[i]) sl_loop_io_set(o->p->loop, o->fdio[i], 0);
        free(o->fdio[i]);
    }
    free(o->fdio);
    free(o->easy_pool);
    for (size_t i = 0; i < o->n_parts; i++)
        free(o->parts[i].lit);
    free(o->auth_header);
    free(o);
}

static const struct sl_output_ops es_ops = {
    .submit = es_submit,
    .flush = es_flush,
    .idle = es_idle,
    .pending = es_pending,
    .reclaim = es_reclaim,
    .log_stats = es_log_stats,
    .stats = es_stats,
    .destroy = es_destroy,
};

bool sl_es_output_cluster(const struct sl_output *out, const char **distribution,
                          const char **version)
{
    if (out->ops != &es_ops) return false;
    const struct setup *su = &((const struct es_out *)out->impl)->setup;
    if (!su->identified) return false;
    *distribution = !su->info_known                             ? "unknown"
                    : su->info.dist == SL_ES_DIST_ELASTICSEARCH ? "elasticsearch"
                    : su->info.dist == SL_ES_DIST_OPENSEARCH    ? "opensearch"
                                                                : su->info.distribution;
    *version = su->info_known ? su->info.number : "";
    return true;
}

int sl_es_output_new(struct sl_pipeline *p, const struct sl_output_cfg *cfg, char *err,
                     size_t errlen)
{
    struct es_out *o = calloc(1, sizeof *o);
    if (!o) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    o->p = p;
    o->cfg = cfg;
    o->es = &cfg->es;
    o->name = cfg->name;
    o->linger.cb = linger_cb;
    o->linger.arg = o;
    o->curl_timer.cb = curl_timer_fire;
    o->curl_timer.arg = o;
    o->id_path_idx = -1;
    o->st.retries = o->retries;
    o->st.reason_names = retry_names;
    o->st.n_reasons = RR_COUNT;
    struct sl_output *so = &p->outputs[p->n_outputs];
    so->name = cfg->name;
    so->ops = &es_ops;
    so->impl = o;
    for (size_t i = 0; i < cfg->n_match; i++) {
        so->match[i] = sl_tagpat_compile(cfg->match[i], err, errlen);
        if (!so->match[i]) goto fail;
        so->n_match++;
    }
    p->n_outputs++;
    o->ts_path_idx = -1;
    if (parse_index_template(o, o->es->data_stream ? o->es->data_stream : o->es->index, err,
                             errlen) != 0)
        return -1;
    if (o->es->timestamp_key) {
        if ((o->ts_path_idx = sl_pipeline_path(p, o->es->timestamp_key)) < 0) {
            snprintf(err, errlen, "too many record fields referenced");
            return -1;
        }
        size_t kl = strlen(o->es->timestamp_key);
        if (!(o->ts_buf = malloc(6 * kl + 48))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        size_t w = 0;
        o->ts_cache.secs = INT64_MIN;
        o->ts_buf[w++] = ',';
        o->ts_buf[w++] = '"';
        w += sl_json_escape(o->es->timestamp_key, kl, o->ts_buf + w);
        memcpy(o->ts_buf + w, "\":\"", 3);
        o->ts_prefix_len = w + 3;
    }
    if (setup_init(o, err, errlen) != 0) return -1;
    if (o->es->id == SL_ID_FIELD) {
        o->id_path_idx = sl_pipeline_path(p, o->es->id_field);
        if (o->id_path_idx < 0) {
            snprintf(err, errlen, "too many record fields referenced");
            return -1;
        }
    }
    /* Every batch in flight, one open and one waiting must fit the budget together, or the
     * pipeline would hold less than one request's worth and stall. */
    uint64_t share = p->budget.limit / (2 * (uint64_t)(o->es->concurrency + 2));
    o->eff_max = o->es->batch_max_bytes < share ? o->es->batch_max_bytes : share;
    if (o->eff_max < 64 * 1024) o->eff_max = 64 * 1024;
    if (o->es->api_key) {
        size_t n = strlen(o->es->api_key) + 32;
        o->auth_header = malloc(n);
        if (o->auth_header) snprintf(o->auth_header, n, "Authorization: ApiKey %s", o->es->api_key);
    }
    o->multi = curl_multi_init();
    o->easy_pool = calloc(o->es->concurrency + 1, sizeof *o->easy_pool);
    if (!o->multi || !o->easy_pool) {
        snprintf(err, errlen, "cannot initialise libcurl");
        return -1;
    }
    curl_multi_setopt(o->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(o->multi, CURLMOPT_SOCKETDATA, o);
    curl_multi_setopt(o->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(o->multi, CURLMOPT_TIMERDATA, o);
    /* one more for a setup request while batches flow */
    curl_multi_setopt(o->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->es->concurrency + 1);
    o->pipeline_arg = strdup("");
    if (o->es->pipeline) {
        char *esc = curl_easy_escape(NULL, o->es->pipeline, 0);
        size_t n = esc ? strlen(esc) + 16 : 0;
        free(o->pipeline_arg);
        o->pipeline_arg = esc ? malloc(n) : NULL;
        if (o->pipeline_arg) snprintf(o->pipeline_arg, n, "pipeline=%s&", esc);
        curl_free(esc);
    }
    if (!o->pipeline_arg) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    setup_start(o);
    SL_INFO(o->name, "hosts=%s%s batch_max_bytes=%zu (configured %llu) concurrency=%u op=%s",
            o->es->hosts[0], o->es->n_hosts > 1 ? ",..." : "", o->eff_max,
            (unsigned long long)o->es->batch_max_bytes, o->es->concurrency,
            o->es->op == SL_ES_OP_CREATE ? "create" : "index");
    return 0;
fail:
    free(o);
    return -1;
}
