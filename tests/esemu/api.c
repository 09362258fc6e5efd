/* Request routing and every endpoint except _bulk.
 *
 * Data port: the Elasticsearch subset sluice uses (tests/esemu/README.md; resource endpoints such
 * as
 * /_index_template are in resources.c). Control port: /_emu/... (faults, down/up, stats, dump,
 * resources, reset). Handlers fill an eresp and never block; timing effects are
 * dispositions that server.c carries out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esemu.h"
#include "json.h"

uint64_t now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t now_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void es_error(struct eresp *rs, int status, const char *type, const char *reason)
{
    struct ebuf *b = &rs->body;
    size_t tn = strlen(type), rn = strlen(reason);
    b->len = 0;
    rs->body_off = 0;
    rs->status = status;
    EBUF_LIT(b, "{\"error\":{\"root_cause\":[{\"type\":");
    ebuf_json_str(b, type, tn);
    EBUF_LIT(b, ",\"reason\":");
    ebuf_json_str(b, reason, rn);
    EBUF_LIT(b, "}],\"type\":");
    ebuf_json_str(b, type, tn);
    EBUF_LIT(b, ",\"reason\":");
    ebuf_json_str(b, reason, rn);
    EBUF_LIT(b, "},\"status\":");
    ebuf_u64(b, (uint64_t)status);
    ebuf_addc(b, '}');
}

static int hexd(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int query_param(const struct ereq *rq, const char *name, struct ebuf *out)
{
    const char *p = rq->query, *end = rq->query + rq->query_len;
    size_t nn = strlen(name);
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *ke = eq ? eq : e;
        if ((size_t)(ke - p) == nn && memcmp(p, name, nn) == 0) {
            for (const char *v = eq ? eq + 1 : e; v < e; v++) {
                if (*v == '%' && e - v >= 3 && hexd(v[1]) >= 0 && hexd(v[2]) >= 0) {
                    ebuf_addc(out, (char)(hexd(v[1]) * 16 + hexd(v[2])));
                    v += 2;
                } else {
                    ebuf_addc(out, *v == '+' ? ' ' : *v);
                }
            }
            return 1;
        }
        p = amp ? amp + 1 : end;
    }
    return 0;
}

static long query_long(const struct ereq *rq, const char *name, long dflt)
{
    struct ebuf v = {0};
    long r = dflt;
    if (query_param(rq, name, &v) == 1 && v.len) {
        ebuf_addc(&v, 0);
        char *e;
        long x = strtol(v.p, &e, 10);
        if (*e == 0) r = x;
    }
    ebuf_free(&v);
    return r;
}

static void ok_json(struct eresp *rs, const char *json)
{
    rs->status = 200;
    ebuf_adds(&rs->body, json);
}

/* ---- info, health --------------------------------------------------------------------------- */

/* OpenSearch 2.19.6's answer as the real node gives it (pretty-printed, version.distribution,
 * no build_flavor). */
static void handle_info_opensearch(struct eresp *rs)
{
    struct ebuf *b = &rs->body;
    rs->status = 200;
    EBUF_LIT(b, "{\n  \"name\" : \"esemu\",\n  \"cluster_name\" : \"esemu\",\n"
                "  \"cluster_uuid\" : \"ZXNlbXUtY2x1c3Rlci11dWlk\",\n  \"version\" : {\n"
                "    \"distribution\" : \"opensearch\",\n    \"number\" : ");
    ebuf_json_str(b, g_emu.version_number, strlen(g_emu.version_number));
    EBUF_LIT(b, ",\n    \"build_type\" : \"unknown\",\n    \"build_hash\" : \"esemu\",\n"
                "    \"build_date\" : \"2026-07-01T04:27:16.038403104Z\",\n"
                "    \"build_snapshot\" : false,\n    \"lucene_version\" : \"9.12.3\",\n"
                "    \"minimum_wire_compatibility_version\" : \"7.10.0\",\n"
                "    \"minimum_index_compatibility_version\" : \"7.0.0\"\n  },\n"
                "  \"tagline\" : \"The OpenSearch Project: https://opensearch.org/\"\n}\n");
}

/* OpenSearch has no _ilm API. What the real node answers there, for any method: 400 with the bare
 * error string and no status field. */
static void opensearch_no_ilm(const struct ereq *rq, struct eresp *rs)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OTHER"};
    struct ebuf reason = {0};
    ebuf_printf(&reason, "no handler found for uri [%.*s] and method [%s]",
                (int)(rq->path_len > 300 ? 300 : rq->path_len), rq->path, names[rq->method]);
    rs->status = 400;
    EBUF_LIT(&rs->body, "{\"error\":");
    ebuf_json_str(&rs->body, reason.p, reason.len);
    ebuf_addc(&rs->body, '}');
    ebuf_free(&reason);
}

static void handle_info(struct eresp *rs)
{
    if (g_emu.opensearch) {
        handle_info_opensearch(rs);
        return;
    }
    struct ebuf *b = &rs->body;
    rs->status = 200;
    EBUF_LIT(b, "{\"name\":\"esemu\",\"cluster_name\":\"esemu\",\"cluster_uuid\":"
                "\"ZXNlbXUtY2x1c3Rlci11dWlk\",\"version\":{\"number\":");
    ebuf_json_str(b, g_emu.version_number, strlen(g_emu.version_number));
    EBUF_LIT(b, ",\"build_flavor\":\"default\",\"build_type\":\"tar\",\"build_hash\":\"esemu\","
                "\"build_date\":\"2023-11-04T10:04:57.184859352Z\",\"build_snapshot\":false,"
                "\"lucene_version\":\"9.8.0\",\"minimum_wire_compatibility_version\":\"7.17.0\","
                "\"minimum_index_compatibility_version\":\"7.0.0\"},\"tagline\":\"You Know, for "
                "Search\"}");
}

static void handle_health(struct eresp *rs)
{
    rs->status = 200;
    size_t n = g_emu.store.n;
    ebuf_printf(&rs->body,
                "{\"cluster_name\":\"esemu\",\"status\":\"green\",\"timed_out\":false,"
                "\"number_of_nodes\":1,\"number_of_data_nodes\":1,\"active_primary_shards\":%zu,"
                "\"active_shards\":%zu,\"relocating_shards\":0,\"initializing_shards\":0,"
                "\"unassigned_shards\":0,\"delayed_unassigned_shards\":0,"
                "\"number_of_pending_tasks\":0,\"number_of_in_flight_fetch\":0,"
                "\"task_max_waiting_in_queue_millis\":0,\"active_shards_percent_as_number\":100.0}",
                n, n);
}

/* ---- count and search ----------------------------------------------------------------------- */

#define MAX_IDS 1024

struct query {
    int all;
    size_t nids;
    struct ebuf ids; /* decoded ids, back to back */
    size_t off[MAX_IDS + 1];
    long size, from;
};

static int add_id(struct query *q, const char *raw, size_t n, int esc)
{
    if (q->nids == MAX_IDS) return -1;
    if (esc)
        json_unescape(raw, n, &q->ids);
    else
        ebuf_add(&q->ids, raw, n);
    q->off[++q->nids] = q->ids.len;
    return 0;
}

static int id_list(struct query *q, const char *v, size_t vn)
{
    struct jcur c;
    jc_init(&c, v, vn);
    if (c.p < c.end && *c.p == '"') {
        const char *raw;
        size_t n;
        int esc;
        jc_string(&c, &raw, &n, &esc);
        return add_id(q, raw, n, esc);
    }
    if (c.p >= c.end || *c.p != '[') return -1;
    c.p++;
    for (;;) {
        jc_ws(&c);
        if (c.p < c.end && *c.p == ']') return 0;
        const char *raw;
        size_t n;
        int esc;
        if (jc_string(&c, &raw, &n, &esc) < 0 || add_id(q, raw, n, esc) < 0) return -1;
        jc_ws(&c);
        if (c.p < c.end && *c.p == ',') c.p++;
    }
}

/* Parses the request body's query. Returns 0, or -1 after writing a 400. */
static int parse_query(const struct ereq *rq, struct query *q, struct eresp *rs)
{
    memset(q, 0, sizeof *q);
    q->all = 1;
    q->size = query_long(rq, "size", 10);
    q->from = query_long(rq, "from", 0);
    if (rq->body_len == 0) return 0;
    struct jerr je;
    if (json_validate(rq->body, rq->body_len, 1, &je) < 0) {
        char reason[300];
        snprintf(reason, sizeof reason, "[1:%zu] %s", je.off + 1, je.msg);
        es_error(rs, 400, "x_content_parse_exception", reason);
        return -1;
    }
    const char *v;
    size_t vn;
    if (json_get(rq->body, rq->body_len, "size", &v, &vn) == 1) q->size = strtol(v, NULL, 10);
    if (json_get(rq->body, rq->body_len, "from", &v, &vn) == 1) q->from = strtol(v, NULL, 10);
    if (json_get(rq->body, rq->body_len, "query", &v, &vn) != 1) return 0;
    if (json_get(rq->body, rq->body_len, "query.match_all", &v, &vn) == 1) return 0;
    int r = -1;
    q->all = 0;
    if (json_get(rq->body, rq->body_len, "query.term._id.value", &v, &vn) == 1 ||
        json_get(rq->body, rq->body_len, "query.term._id", &v, &vn) == 1 ||
        json_get(rq->body, rq->body_len, "query.terms._id", &v, &vn) == 1 ||
        json_get(rq->body, rq->body_len, "query.ids.values", &v, &vn) == 1)
        r = id_list(q, v, vn);
    if (r < 0) {
        es_error(rs, 400, "parsing_exception",
                 "unsupported query: the emulator (esemu) supports match_all, term/terms on _id "
                 "and ids");
        ebuf_free(&q->ids);
        return -1;
    }
    return 0;
}

static int select_indices(const struct ereq *rq, const char *expr, size_t n, unsigned char **sel,
                          struct eresp *rs)
{
    (void)rq;
    *sel = malloc(g_emu.store.n + 1);
    const char *missing;
    size_t mn;
    if (res_select(expr, n, *sel, &missing, &mn) < 0) {
        char reason[400];
        snprintf(reason, sizeof reason, "no such index [%.*s]", (int)(mn > 255 ? 255 : mn),
                 missing);
        es_error(rs, 404, "index_not_found_exception", reason);
        free(*sel);
        return -1;
    }
    return 0;
}

static const struct doc *slot_doc(const struct slot *sl)
{
    return g_emu.store.count_only ? NULL : sl->u.doc;
}

static void write_hit(struct ebuf *b, const struct eindex *ix, const struct slot *sl,
                      const char *qid, size_t qidn)
{
    const struct doc *d = slot_doc(sl);
    EBUF_LIT(b, "{\"_index\":");
    ebuf_json_str(b, ix->name, ix->name_len);
    if (d) {
        EBUF_LIT(b, ",\"_id\":");
        ebuf_json_str(b, d->data, d->id_len);
    } else if (qid) {
        EBUF_LIT(b, ",\"_id\":");
        ebuf_json_str(b, qid, qidn);
    }
    EBUF_LIT(b, ",\"_score\":1.0");
    if (d) {
        EBUF_LIT(b, ",\"_source\":");
        ebuf_add(b, d->data + d->id_len, d->src_len);
    }
    ebuf_addc(b, '}');
}

static void handle_search(const struct ereq *rq, const char *expr, size_t en, int count_only,
                          struct eresp *rs)
{
    struct query q;
    unsigned char *sel;
    if (parse_query(rq, &q, rs) < 0) return;
    if (select_indices(rq, expr, en, &sel, rs) < 0) {
        ebuf_free(&q.ids);
        return;
    }
    struct store *st = &g_emu.store;
    struct ebuf hits = {0};
    uint64_t total = 0;
    long from = q.from < 0 ? 0 : q.from, size = q.size < 0 ? 10 : q.size;
    for (size_t i = 0; i < st->n; i++) {
        if (!sel[i]) continue;
        struct eindex *ix = st->idx[i];
        if (q.all) {
            if (count_only || (long)(total + ix->count) <= from) {
                total += ix->count;
                continue;
            }
            for (size_t j = 0; j < ix->cap; j++) {
                if (!ix->slots[j].hash) continue;
                if ((long)total >= from && (long)total < from + size) {
                    if (hits.len) ebuf_addc(&hits, ',');
                    write_hit(&hits, ix, &ix->slots[j], NULL, 0);
                }
                total++;
            }
            continue;
        }
        for (size_t k = 0; k < q.nids; k++) {
            uint64_t h = 0;
            const char *id = q.ids.p + q.off[k];
            size_t idn = q.off[k + 1] - q.off[k];
            long at = store_find(st, ix, id, idn, &h);
            if (at < 0) continue;
            if (!count_only && (long)total >= from && (long)total < from + size) {
                if (hits.len) ebuf_addc(&hits, ',');
                write_hit(&hits, ix, &ix->slots[at], id, idn);
            }
            total++;
        }
    }
    free(sel);
    ebuf_free(&q.ids);
    rs->status = 200;
    if (count_only) {
        ebuf_printf(&rs->body,
                    "{\"count\":%llu,\"_shards\":{\"total\":1,\"successful\":1,\"skipped\":0,"
                    "\"failed\":0}}",
                    (unsigned long long)total);
    } else {
        ebuf_printf(&rs->body,
                    "{\"took\":1,\"timed_out\":false,\"_shards\":{\"total\":1,\"successful\":1,"
                    "\"skipped\":0,\"failed\":0},\"hits\":{\"total\":{\"value\":%llu,\"relation\":"
                    "\"eq\"},\"max_score\":%s,\"hits\":[",
                    (unsigned long long)total, total ? "1.0" : "null");
        ebuf_add(&rs->body, hits.p, hits.len);
        EBUF_LIT(&rs->body, "]}}");
    }
    ebuf_free(&hits);
}

static void handle_delete_index(const struct ereq *rq, const char *expr, size_t en,
                                struct eresp *rs)
{
    (void)rq;
    if (res_stream_backing(expr, en)) {
        char reason[400];
        snprintf(reason, sizeof reason,
                 "The provided expression [%.*s] matches a data stream, specify the corresponding "
                 "concrete indices instead.",
                 (int)(en > 255 ? 255 : en), expr);
        es_error(rs, 400, "illegal_argument_exception", reason);
        return;
    }
    /* Plain index resolution: deleting indices never resolves data streams. */
    struct store *st = &g_emu.store;
    unsigned char *sel = malloc(st->n + 1);
    const char *missing;
    size_t mn;
    if (store_select(st, expr, en, sel, &missing, &mn) < 0) {
        char reason[400];
        snprintf(reason, sizeof reason, "no such index [%.*s]", (int)(mn > 255 ? 255 : mn),
                 missing);
        es_error(rs, 404, "index_not_found_exception", reason);
        free(sel);
        return;
    }
    int any = 0;
    for (size_t i = st->n; i-- > 0;) {
        if (sel[i]) {
            store_drop(st, i);
            any = 1;
        }
    }
    free(sel);
    if (!any && !memchr(expr, '*', en)) {
        es_error(rs, 404, "index_not_found_exception", "no such index");
        return;
    }
    ok_json(rs, "{\"acknowledged\":true}");
}

static void handle_get_doc(const char *index, size_t in, const char *id, size_t idn,
                           struct eresp *rs)
{
    struct eindex *ix = store_index(&g_emu.store, index, in, 0);
    const char *backing = ix ? NULL : res_stream_backing(index, in);
    if (backing) {
        /* (Elasticsearch itself wants the backing index here; the emulator lets tests use the
         * data stream name.) */
        index = backing;
        in = strlen(backing);
        ix = store_index(&g_emu.store, index, in, 0);
    }
    if (!ix) {
        char reason[300];
        snprintf(reason, sizeof reason, "no such index [%.*s]", (int)(in > 255 ? 255 : in), index);
        es_error(rs, 404, "index_not_found_exception", reason);
        return;
    }
    uint64_t h = 0;
    long at = store_find(&g_emu.store, ix, id, idn, &h);
    struct ebuf *b = &rs->body;
    EBUF_LIT(b, "{\"_index\":");
    ebuf_json_str(b, index, in);
    EBUF_LIT(b, ",\"_id\":");
    ebuf_json_str(b, id, idn);
    if (at < 0) {
        rs->status = 404;
        EBUF_LIT(b, ",\"found\":false}");
        return;
    }
    const struct slot *sl = &ix->slots[at];
    const struct doc *d = slot_doc(sl);
    rs->status = 200;
    EBUF_LIT(b, ",\"_version\":");
    ebuf_i64(b, slot_version(&g_emu.store, sl));
    if (d) {
        EBUF_LIT(b, ",\"_seq_no\":");
        ebuf_i64(b, d->seq_no);
    }
    EBUF_LIT(b, ",\"_primary_term\":1,\"found\":true");
    if (d) {
        EBUF_LIT(b, ",\"_source\":");
        ebuf_add(b, d->data + d->id_len, d->src_len);
    }
    ebuf_addc(b, '}');
}

/* ---- routing (data port) -------------------------------------------------------------------- */

static int seg_is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

void wrong_method(const struct ereq *rq, const char *allowed, struct eresp *rs)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OTHER"};
    rs->status = 405;
    struct ebuf reason = {0};
    ebuf_printf(&reason, "Incorrect HTTP method for uri [%.*s] and method [%s], allowed: [%s]",
                (int)(rq->path_len > 300 ? 300 : rq->path_len), rq->path, names[rq->method],
                allowed);
    EBUF_LIT(&rs->body, "{\"error\":");
    ebuf_json_str(&rs->body, reason.p, reason.len);
    EBUF_LIT(&rs->body, ",\"status\":405}");
    ebuf_free(&reason);
}

static void no_handler(const struct ereq *rq, struct eresp *rs)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OTHER"};
    struct ebuf reason = {0};
    ebuf_printf(&reason, "no handler found for uri [%.*s] and method [%s]",
                (int)(rq->path_len > 300 ? 300 : rq->path_len), rq->path, names[rq->method]);
    rs->status = 404;
    EBUF_LIT(&rs->body, "{\"error\":");
    ebuf_json_str(&rs->body, reason.p, reason.len);
    EBUF_LIT(&rs->body, ",\"status\":404}");
    ebuf_free(&reason);
}

#define MAX_SEGS 4

static int split_path(const char *p, size_t n, const char **seg, size_t *len)
{
    int ns = 0;
    const char *end = p + n;
    while (p < end) {
        while (p < end && *p == '/')
            p++;
        if (p >= end) break;
        const char *s = memchr(p, '/', (size_t)(end - p));
        const char *e = s ? s : end;
        if (ns == MAX_SEGS) return MAX_SEGS + 1;
        seg[ns] = p;
        len[ns++] = (size_t)(e - p);
        p = e;
    }
    return ns;
}

int api_is_bulk(const struct ereq *rq)
{
    const char *seg[MAX_SEGS];
    size_t len[MAX_SEGS];
    int ns = split_path(rq->path, rq->path_len, seg, len);
    if (rq->control || (rq->method != M_POST && rq->method != M_PUT)) return 0;
    return (ns == 1 && seg_is(seg[0], len[0], "_bulk")) ||
           (ns == 2 && seg_is(seg[1], len[1], "_bulk"));
}

static void handle_data(const struct ereq *rq, struct eresp *rs)
{
    const char *seg[MAX_SEGS];
    size_t len[MAX_SEGS];
    int ns = split_path(rq->path, rq->path_len, seg, len);
    int get = rq->method == M_GET || rq->method == M_HEAD;
    int post = rq->method == M_POST, put = rq->method == M_PUT;
    const char *last = ns ? seg[ns - 1] : "";
    size_t lastn = ns ? len[ns - 1] : 0;

    if (ns == 0) {
        if (get)
            handle_info(rs);
        else
            wrong_method(rq, "GET, HEAD", rs);
        return;
    }
    if (ns == 2 && seg_is(seg[0], len[0], "_cluster") && seg_is(seg[1], len[1], "health")) {
        if (get)
            handle_health(rs);
        else
            wrong_method(rq, "GET", rs);
        return;
    }
    if ((ns == 1 || ns == 2) && seg_is(last, lastn, "_bulk")) {
        if (post || put)
            bulk_handle(rq, ns == 2 ? seg[0] : NULL, ns == 2 ? len[0] : 0, rs);
        else
            wrong_method(rq, "POST, PUT", rs);
        if (g_emu.faults.delay_ms > 0 && rs->disp == DISP_SEND)
            rs->delay_ms = (uint64_t)g_emu.faults.delay_ms;
        return;
    }
    if ((ns == 1 || ns == 2) && (seg_is(last, lastn, "_count") || seg_is(last, lastn, "_search"))) {
        if (get || post)
            handle_search(rq, ns == 2 ? seg[0] : "", ns == 2 ? len[0] : 0,
                          seg_is(last, lastn, "_count"), rs);
        else
            wrong_method(rq, "GET, POST", rs);
        return;
    }
    if ((ns == 1 || ns == 2) && seg_is(last, lastn, "_refresh")) {
        if (get || post)
            ok_json(rs, "{\"_shards\":{\"total\":2,\"successful\":1,\"failed\":0}}");
        else
            wrong_method(rq, "GET, POST", rs);
        return;
    }
    if (ns == 3 && seg_is(seg[1], len[1], "_doc") && get) {
        handle_get_doc(seg[0], len[0], seg[2], len[2], rs);
        return;
    }
    if (g_emu.opensearch && seg_is(seg[0], len[0], "_ilm")) {
        opensearch_no_ilm(rq, rs);
        return;
    }
    if (ns >= 1 && idx_route(rq, seg, len, ns, rs)) return;
    if (ns >= 1 && res_route(rq, seg, len, ns, rs)) return;
    if (ns == 1 && seg[0][0] != '_') {
        if (rq->method == M_DELETE) {
            handle_delete_index(rq, seg[0], len[0], rs);
        } else if (rq->method == M_HEAD || rq->method == M_GET) {
            unsigned char *sel;
            if (select_indices(rq, seg[0], len[0], &sel, rs) == 0) {
                free(sel);
                ok_json(rs, "{}");
            }
        } else {
            wrong_method(rq, "GET, HEAD, PUT, DELETE", rs);
        }
        return;
    }
    no_handler(rq, rs);
}

/* ---- control port --------------------------------------------------------------------------- */

static void handle_faults(const struct ereq *rq, struct eresp *rs)
{
    struct faults nf = {0};
    nf.request_count = -1;
    for (int i = 0; i < 4; i++)
        nf.res_count[i] = -1;
    struct jcur c;
    struct jerr je;
    if (rq->body_len && json_validate(rq->body, rq->body_len, 1, &je) < 0) {
        char reason[300];
        snprintf(reason, sizeof reason, "[1:%zu] %s", je.off + 1, je.msg);
        es_error(rs, 400, "x_content_parse_exception", reason);
        return;
    }
    if (rq->body_len) {
        jc_init(&c, rq->body, rq->body_len);
        jc_ws(&c);
        jc_obj_begin(&c);
        int first = 1;
        const char *k;
        size_t kn;
        int kesc;
        while (jc_obj_next(&c, &first, &k, &kn, &kesc) == 1) {
            const char *v = c.p;
            jc_value(&c);
            char num[64];
            size_t vn = (size_t)(c.p - v);
            snprintf(num, sizeof num, "%.*s", (int)(vn > 63 ? 63 : vn), v);
            char *e;
            double d = strtod(num, &e);
            if (*e != 0) {
                char reason[200];
                snprintf(reason, sizeof reason, "fault key [%.*s] needs a number", (int)kn, k);
                es_error(rs, 400, "illegal_argument_exception", reason);
                return;
            }
#define IS(name) (kn == sizeof(name) - 1 && memcmp(k, name, kn) == 0)
            if (IS("request_status"))
                nf.request_status = (int)d;
            else if (IS("request_count"))
                nf.request_count = (long)d;
            else if (IS("item_retryable_rate"))
                nf.item_retryable_rate = d;
            else if (IS("item_retryable_status"))
                nf.item_retryable_status = (int)d;
            else if (IS("item_permanent_rate"))
                nf.item_permanent_rate = d;
            else if (IS("item_permanent_status"))
                nf.item_permanent_status = (int)d;
            else if (IS("stall_ms"))
                nf.stall_until_ns = d > 0 ? now_mono_ns() + (uint64_t)(d * 1e6) : 0;
            else if (IS("reset_after_write_count"))
                nf.reset_after_write_count = (long)d;
            else if (IS("reset_before_write_count"))
                nf.reset_before_write_count = (long)d;
            else if (IS("close_after_write_count"))
                nf.close_after_write_count = (long)d;
            else if (IS("truncate_response_count"))
                nf.truncate_response_count = (long)d;
            else if (IS("delay_ms"))
                nf.delay_ms = (long)d;
            else if (IS("template_status"))
                nf.res_status[0] = (int)d;
            else if (IS("template_count"))
                nf.res_count[0] = (long)d;
            else if (IS("ilm_status"))
                nf.res_status[1] = (int)d;
            else if (IS("ilm_count"))
                nf.res_count[1] = (long)d;
            else if (IS("data_stream_status"))
                nf.res_status[2] = (int)d;
            else if (IS("data_stream_count"))
                nf.res_count[2] = (long)d;
            else if (IS("pipeline_status"))
                nf.res_status[3] = (int)d;
            else if (IS("pipeline_count"))
                nf.res_count[3] = (long)d;
            else if (IS("resource_faults_reads"))
                nf.res_reads = d != 0;
            else {
                char reason[200];
                snprintf(reason, sizeof reason, "unknown fault key [%.*s]", (int)kn, k);
                es_error(rs, 400, "illegal_argument_exception", reason);
                return;
            }
#undef IS
        }
    }
    g_emu.faults = nf;
    ok_json(rs, "{\"acknowledged\":true}");
}

static void show_faults(struct eresp *rs)
{
    const struct faults *f = &g_emu.faults;
    uint64_t now = now_mono_ns();
    rs->status = 200;
    ebuf_printf(
        &rs->body,
        "{\"request_status\":%d,\"request_count\":%ld,\"item_retryable_rate\":%g,"
        "\"item_retryable_status\":%d,\"item_permanent_rate\":%g,"
        "\"item_permanent_status\":%d,\"stall_remaining_ms\":%llu,"
        "\"reset_after_write_count\":%ld,\"reset_before_write_count\":%ld,"
        "\"close_after_write_count\":%ld,\"truncate_response_count\":%ld,\"delay_ms\":%ld,",
        f->request_status, f->request_count, f->item_retryable_rate, f->item_retryable_status,
        f->item_permanent_rate, f->item_permanent_status,
        (unsigned long long)(f->stall_until_ns > now ? (f->stall_until_ns - now) / 1000000 : 0),
        f->reset_after_write_count, f->reset_before_write_count, f->close_after_write_count,
        f->truncate_response_count, f->delay_ms);
    static const char *const fam[4] = {"template", "ilm", "data_stream", "pipeline"};
    for (int i = 0; i < 4; i++)
        ebuf_printf(&rs->body, "\"%s_status\":%d,\"%s_count\":%ld,", fam[i], f->res_status[i],
                    fam[i], f->res_count[i]);
    ebuf_printf(&rs->body, "\"resource_faults_reads\":%d}", f->res_reads);
}

static void show_stats(struct eresp *rs)
{
    const struct stats *s = &g_emu.stats;
    struct ebuf *b = &rs->body;
    rs->status = 200;
    ebuf_printf(
        b,
        "{\"requests\":%llu,\"control_requests\":%llu,\"bulk_requests\":%llu,"
        "\"bulk_items\":%llu,\"docs\":%zu,\"indices\":%zu,\"created\":%llu,"
        "\"updated\":%llu,\"deleted\":%llu,\"conflicts_409\":%llu,\"item_errors\":%llu,"
        "\"injected_request_errors\":%llu,\"injected_item_errors\":%llu,"
        "\"permanent_item_errors\":%llu,\"resets_injected\":%llu,"
        "\"truncations_injected\":%llu,\"stalls_injected\":%llu,\"closes_injected\":%llu,"
        "\"bytes_in\":%llu,"
        "\"bulk_body_bytes\":%llu,\"bytes_in_decompressed\":%llu,\"gzip_requests\":%llu,"
        "\"expect_100_continue\":%llu,\"missing_trailing_newline\":%llu,"
        "\"status_413\":%llu,\"max_body_bytes\":%llu,\"first_doc_ns\":%llu,"
        "\"last_doc_ns\":%llu,\"stalled_now\":%zu,\"connections_open\":%zu,"
        "\"count_only\":%s,",
        (unsigned long long)s->requests, (unsigned long long)s->control_requests,
        (unsigned long long)s->bulk_requests, (unsigned long long)s->bulk_items,
        g_emu.store.total_docs, g_emu.store.n, (unsigned long long)s->created,
        (unsigned long long)s->updated, (unsigned long long)s->deleted,
        (unsigned long long)s->conflicts_409, (unsigned long long)s->item_errors,
        (unsigned long long)s->injected_request_errors, (unsigned long long)s->injected_item_errors,
        (unsigned long long)s->permanent_item_errors, (unsigned long long)s->resets_injected,
        (unsigned long long)s->truncations_injected, (unsigned long long)s->stalls_injected,
        (unsigned long long)s->closes_injected, (unsigned long long)s->bytes_in,
        (unsigned long long)s->bulk_body_bytes, (unsigned long long)s->bytes_in_decompressed,
        (unsigned long long)s->gzip_requests, (unsigned long long)s->expect_100_continue,
        (unsigned long long)s->missing_trailing_newline, (unsigned long long)s->status_413,
        (unsigned long long)s->max_body_bytes, (unsigned long long)s->first_doc_ns,
        (unsigned long long)s->last_doc_ns, server_stalled_now(), server_connections_open(),
        g_emu.store.count_only ? "true" : "false");
    EBUF_LIT(b, "\"authorization_basic\":");
    ebuf_u64(b, s->auth_basic);
    EBUF_LIT(b, ",\"authorization_apikey\":");
    ebuf_u64(b, s->auth_apikey);
    EBUF_LIT(b, ",\"authorization_other\":");
    ebuf_u64(b, s->auth_other);
    EBUF_LIT(b, ",\"last_authorization\":");
    ebuf_json_str(b, s->last_authorization, strlen(s->last_authorization));
    ebuf_addc(b, ',');
    idx_stats(b);
    ebuf_addc(b, ',');
    res_stats(b);
    ebuf_addc(b, ',');
    lat_stats(b);
    EBUF_LIT(b, ",\"content_types\":{");
    for (size_t i = 0; i < s->n_ctypes; i++) {
        if (i) ebuf_addc(b, ',');
        ebuf_json_str(b, s->ctype_name[i], strlen(s->ctype_name[i]));
        ebuf_addc(b, ':');
        ebuf_u64(b, s->ctype_count[i]);
    }
    EBUF_LIT(b, "}}");
}

static void handle_reset(struct eresp *rs)
{
    store_reset(&g_emu.store);
    res_reset();
    idx_reset();
    struct stats *s = &g_emu.stats;
    for (size_t i = 0; i < s->n_ctypes; i++)
        free(s->ctype_name[i]);
    memset(s, 0, sizeof *s);
    ok_json(rs, "{\"acknowledged\":true}");
}

static void handle_down(const struct ereq *rq, struct eresp *rs)
{
    const char *v;
    size_t vn;
    long ms = 1000;
    if (rq->body_len && json_get(rq->body, rq->body_len, "ms", &v, &vn) == 1)
        ms = strtol(v, NULL, 10);
    if (server_down(ms > 0 ? (uint64_t)ms : 0) < 0) {
        es_error(rs, 500, "exception", "could not close the data listener");
        return;
    }
    ok_json(rs, "{\"acknowledged\":true}");
}

int api_dump_fill(struct dump_cursor *dc, struct ebuf *out, size_t budget)
{
    struct store *st = &g_emu.store;
    if (dc->gen != st->layout_gen || dc->nsel != st->n) return -1;
    size_t start = out->len;
    for (; dc->i < st->n; dc->i++, dc->j = 0) {
        if (!dc->sel[dc->i]) continue;
        const struct eindex *ix = st->idx[dc->i];
        for (; dc->j < ix->cap; dc->j++) {
            const struct slot *sl = &ix->slots[dc->j];
            if (!sl->hash) continue;
            if (out->len - start >= budget) return 1;
            const struct doc *d = slot_doc(sl);
            EBUF_LIT(out, "{\"_index\":");
            ebuf_json_str(out, ix->name, ix->name_len);
            if (d) {
                EBUF_LIT(out, ",\"_id\":");
                ebuf_json_str(out, d->data, d->id_len);
            } else {
                ebuf_printf(out, ",\"_id_hash\":\"%016llx\"", (unsigned long long)sl->hash);
            }
            EBUF_LIT(out, ",\"_version\":");
            ebuf_i64(out, slot_version(&g_emu.store, sl));
            if (d) {
                EBUF_LIT(out, ",\"_source\":");
                ebuf_add(out, d->data + d->id_len, d->src_len);
            }
            EBUF_LIT(out, "}\n");
        }
    }
    return 0;
}

static void handle_dump(const struct ereq *rq, struct eresp *rs)
{
    struct ebuf pat = {0};
    query_param(rq, "index", &pat);
    unsigned char *sel = malloc(g_emu.store.n + 1);
    const char *missing;
    size_t mn;
    if (res_select(pat.p ? pat.p : "", pat.len, sel, &missing, &mn) < 0)
        memset(sel, 0, g_emu.store.n); /* a dump of a missing index is simply empty */
    ebuf_free(&pat);
    rs->status = 200;
    rs->content_type = "application/x-ndjson";
    rs->disp = DISP_DUMP;
    rs->dump =
        (struct dump_cursor){.sel = sel, .nsel = g_emu.store.n, .gen = g_emu.store.layout_gen};
}

static void handle_control(const struct ereq *rq, struct eresp *rs)
{
    const char *p = rq->path;
    size_t n = rq->path_len;
    int post = rq->method == M_POST || rq->method == M_PUT;
    int get = rq->method == M_GET;
#define PATH(lit) (n == sizeof(lit) - 1 && memcmp(p, lit, n) == 0)
    if (PATH("/_emu/faults") && post)
        handle_faults(rq, rs);
    else if (PATH("/_emu/faults") && get)
        show_faults(rs);
    else if (PATH("/_emu/down") && post)
        handle_down(rq, rs);
    else if (PATH("/_emu/up") && post) {
        if (server_up() < 0)
            es_error(rs, 500, "exception", "could not reopen the data listener");
        else
            ok_json(rs, "{\"acknowledged\":true}");
    } else if (PATH("/_emu/stats") && get)
        show_stats(rs);
    else if (PATH("/_emu/dump") && get)
        handle_dump(rq, rs);
    else if (PATH("/_emu/resources") && get)
        res_dump(rs);
    else if (PATH("/_emu/reset") && post)
        handle_reset(rs);
    else
        no_handler(rq, rs);
#undef PATH
}

void api_handle(const struct ereq *rq, struct eresp *rs)
{
    if (rq->control) {
        g_emu.stats.control_requests++;
        handle_control(rq, rs);
    } else {
        g_emu.stats.requests++;
        handle_data(rq, rs);
    }
}
