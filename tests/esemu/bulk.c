/* The _bulk endpoint.
 *
 * A request is handled in two passes, because Elasticsearch rejects a malformed request as a whole
 * before executing any item:
 *   1. split the body into lines and parse every action line (structure errors -> whole 400);
 *   2. execute the items in order, each failing or succeeding on its own.
 * Item results are written straight into the response buffer after a reserved prefix; the
 * top-level {"took":..,"errors":..} is known only at the end and is written into that prefix.
 *
 * filter_path is evaluated once per request against the fixed set of leaf paths a bulk response
 * can contain, which gives a boolean per field; writing a filtered item then costs nothing more
 * than writing a full one. Objects whose fields are all filtered out are omitted, and so are array
 * entries left empty: that is Elasticsearch's behaviour (items.*.error drops successful items). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "esemu.h"
#include "json.h"

enum { A_INDEX, A_CREATE, A_UPDATE, A_DELETE, A_COUNT };
static const char *const action_name[A_COUNT] = {"index", "create", "update", "delete"};

enum {
    FI_INDEX,
    FI_ID,
    FI_VERSION,
    FI_RESULT,
    FI_SH_TOTAL,
    FI_SH_SUCC,
    FI_SH_FAIL,
    FI_SEQ,
    FI_PTERM,
    FI_STATUS,
    FI_E_TYPE,
    FI_E_REASON,
    FI_E_UUID,
    FI_E_SHARD,
    FI_E_INDEX,
    FI_COUNT
};
static const char *const field_path[FI_COUNT] = {
    "_index",           "_id",           "_version",
    "result",           "_shards.total", "_shards.successful",
    "_shards.failed",   "_seq_no",       "_primary_term",
    "status",           "error.type",    "error.reason",
    "error.index_uuid", "error.shard",   "error.index"};

#define RESERVE 64 /* prefix kept free for {"took":N,"errors":B, */

struct filter {
    unsigned char took, errors;
    unsigned char f[A_COUNT][FI_COUNT];
    unsigned char any_ok[A_COUNT], any_fail[A_COUNT], any_shards[A_COUNT], any_err[A_COUNT];
};

struct item {
    uint64_t hash; /* of the raw _id when it has no escapes, else 0 (computed later) */
    unsigned char action, index_esc, id_esc, has_index, has_id, pipeline_esc, has_pipeline;
    unsigned line;
    const char *index;
    size_t index_len;
    const char *id;
    size_t id_len;
    const char *src;
    size_t src_len;
    const char *pipeline; /* the action's "pipeline" metadata */
    size_t pipeline_len;
};

enum { R_CREATED, R_UPDATED, R_DELETED, R_NOT_FOUND };
static const char *const result_name[] = {"created", "updated", "deleted", "not_found"};

struct outcome {
    int status;
    int result;
    int64_t version, seq_no;
    const char *etype; /* NULL = success */
    int e_uuid;        /* error carries index_uuid and shard */
    const char *uuid;
};

static struct item *items;
static size_t items_cap;

/* ---- filter_path ---------------------------------------------------------------------------- */

#define MAX_PATHS 32
#define MAX_SEGS 8

struct fpath {
    int n;
    const char *seg[MAX_SEGS];
    size_t len[MAX_SEGS];
};

static int seg_match(const struct fpath *p, int pi, const char **path, const size_t *plen, int n,
                     int li)
{
    if (pi == p->n) return 1; /* an ancestor matched: its whole subtree is included */
    if (li == n) return 0;
    if (p->len[pi] == 2 && memcmp(p->seg[pi], "**", 2) == 0)
        return seg_match(p, pi + 1, path, plen, n, li) || seg_match(p, pi, path, plen, n, li + 1);
    return glob_match(p->seg[pi], p->len[pi], path[li], plen[li]) &&
           seg_match(p, pi + 1, path, plen, n, li + 1);
}

static int any_match(const struct fpath *ps, int np, const char **path, const size_t *plen, int n)
{
    for (int i = 0; i < np; i++)
        if (seg_match(&ps[i], 0, path, plen, n, 0)) return 1;
    return 0;
}

/* Returns 0 with *flt filled, or -1 when the expression uses something we do not implement (then
 * the caller sends the full body, which clients must cope with anyway). */
static int filter_compile(const char *s, size_t n, struct filter *flt)
{
    struct fpath ps[MAX_PATHS];
    int np = 0;
    const char *p = s, *end = s + n;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        while (p < e && *p == ' ')
            p++;
        while (e > p && e[-1] == ' ')
            e--;
        if (e > p) {
            if (*p == '-' || np == MAX_PATHS) return -1;
            struct fpath *fp = &ps[np++];
            fp->n = 0;
            const char *q = p;
            while (q <= e) {
                const char *dot = memchr(q, '.', (size_t)(e - q));
                const char *se = dot ? dot : e;
                if (se == q || fp->n == MAX_SEGS) return -1;
                fp->seg[fp->n] = q;
                fp->len[fp->n++] = (size_t)(se - q);
                if (!dot) break;
                q = dot + 1;
            }
        }
        if (!comma) break;
        p = comma + 1;
    }
    if (np == 0) return -1;
    const char *path[5];
    size_t plen[5];
    path[0] = "took";
    plen[0] = 4;
    flt->took = (unsigned char)any_match(ps, np, path, plen, 1);
    path[0] = "errors";
    plen[0] = 6;
    flt->errors = (unsigned char)any_match(ps, np, path, plen, 1);
    for (int a = 0; a < A_COUNT; a++) {
        for (int f = 0; f < FI_COUNT; f++) {
            path[0] = "items";
            plen[0] = 5;
            path[1] = action_name[a];
            plen[1] = strlen(action_name[a]);
            const char *fpth = field_path[f], *dot = strchr(fpth, '.');
            int n = 3;
            path[2] = fpth;
            plen[2] = dot ? (size_t)(dot - fpth) : strlen(fpth);
            if (dot) {
                path[3] = dot + 1;
                plen[3] = strlen(dot + 1);
                n = 4;
            }
            flt->f[a][f] = (unsigned char)any_match(ps, np, path, plen, n);
        }
    }
    return 0;
}

static void filter_finish(struct filter *flt)
{
    for (int a = 0; a < A_COUNT; a++) {
        const unsigned char *f = flt->f[a];
        flt->any_shards[a] = f[FI_SH_TOTAL] | f[FI_SH_SUCC] | f[FI_SH_FAIL];
        flt->any_err[a] =
            f[FI_E_TYPE] | f[FI_E_REASON] | f[FI_E_UUID] | f[FI_E_SHARD] | f[FI_E_INDEX];
        flt->any_ok[a] = f[FI_INDEX] | f[FI_ID] | f[FI_VERSION] | f[FI_RESULT] |
                         flt->any_shards[a] | f[FI_SEQ] | f[FI_PTERM] | f[FI_STATUS];
        flt->any_fail[a] = f[FI_INDEX] | f[FI_ID] | f[FI_STATUS] | flt->any_err[a];
    }
}

/* ---- response writing ----------------------------------------------------------------------- */

static void key(struct ebuf *b, int *first, const char *k, size_t kn)
{
    if (!*first) ebuf_addc(b, ',');
    *first = 0;
    ebuf_add(b, k, kn);
}
#define KEY(b, first, lit) key((b), (first), (lit), sizeof(lit) - 1)

struct writer {
    struct ebuf *out;
    const struct filter *flt;
    int items_open;
    int any_error;
};

static void write_item(struct writer *w, int action, const char *index, size_t index_len,
                       const char *id, size_t id_len, const struct outcome *o,
                       const struct ebuf *reason)
{
    const unsigned char *f = w->flt->f[action];
    if (o->etype ? !w->flt->any_fail[action] : !w->flt->any_ok[action]) return;
    struct ebuf *b = w->out;
    if (!w->items_open) {
        EBUF_LIT(b, "\"items\":[");
        w->items_open = 1;
    } else {
        ebuf_addc(b, ',');
    }
    ebuf_addc(b, '{');
    ebuf_json_str(b, action_name[action], strlen(action_name[action]));
    EBUF_LIT(b, ":{");
    int first = 1;
    if (f[FI_INDEX]) {
        KEY(b, &first, "\"_index\":");
        if (index)
            ebuf_json_str(b, index, index_len);
        else
            EBUF_LIT(b, "null");
    }
    if (f[FI_ID]) {
        KEY(b, &first, "\"_id\":");
        if (id)
            ebuf_json_str(b, id, id_len);
        else
            EBUF_LIT(b, "null");
    }
    if (!o->etype) {
        if (f[FI_VERSION]) {
            KEY(b, &first, "\"_version\":");
            ebuf_i64(b, o->version);
        }
        if (f[FI_RESULT]) {
            KEY(b, &first, "\"result\":");
            ebuf_json_str(b, result_name[o->result], strlen(result_name[o->result]));
        }
        if (w->flt->any_shards[action]) {
            int f2 = 1;
            KEY(b, &first, "\"_shards\":{");
            if (f[FI_SH_TOTAL]) KEY(b, &f2, "\"total\":2");
            if (f[FI_SH_SUCC]) KEY(b, &f2, "\"successful\":1");
            if (f[FI_SH_FAIL]) KEY(b, &f2, "\"failed\":0");
            ebuf_addc(b, '}');
        }
        if (f[FI_SEQ]) {
            KEY(b, &first, "\"_seq_no\":");
            ebuf_i64(b, o->seq_no);
        }
        if (f[FI_PTERM]) KEY(b, &first, "\"_primary_term\":1");
    }
    if (f[FI_STATUS]) {
        KEY(b, &first, "\"status\":");
        ebuf_u64(b, (uint64_t)o->status);
    }
    if (o->etype && w->flt->any_err[action]) {
        int f2 = 1;
        KEY(b, &first, "\"error\":{");
        if (f[FI_E_TYPE]) {
            KEY(b, &f2, "\"type\":");
            ebuf_json_str(b, o->etype, strlen(o->etype));
        }
        if (f[FI_E_REASON]) {
            KEY(b, &f2, "\"reason\":");
            ebuf_json_str(b, reason->p, reason->len);
        }
        if (f[FI_E_UUID] && index) {
            KEY(b, &f2, "\"index_uuid\":");
            const char *u = o->e_uuid && o->uuid ? o->uuid : "_na_";
            ebuf_json_str(b, u, strlen(u));
        }
        if (f[FI_E_SHARD] && o->e_uuid) KEY(b, &f2, "\"shard\":\"0\"");
        if (f[FI_E_INDEX] && index) {
            KEY(b, &f2, "\"index\":");
            ebuf_json_str(b, index, index_len);
        }
        ebuf_addc(b, '}');
    }
    EBUF_LIT(b, "}}");
}

/* ---- whole-request errors ------------------------------------------------------------------- */

static const char *token_name(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
        p++;
    if (p >= end) return "null";
    switch (*p) {
    case '{':
        return "START_OBJECT";
    case '}':
        return "END_OBJECT";
    case '[':
        return "START_ARRAY";
    case ']':
        return "END_ARRAY";
    case '"':
        return "VALUE_STRING";
    case 't':
        return "VALUE_TRUE";
    case 'f':
        return "VALUE_FALSE";
    case 'n':
        return "VALUE_NULL";
    case ',':
    case ':':
        return "FIELD_NAME";
    default:
        return (*p == '-' || (*p >= '0' && *p <= '9')) ? "VALUE_NUMBER" : "VALUE_EMBEDDED_OBJECT";
    }
}

static void bad_request(struct eresp *rs, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#include <stdarg.h>
static void bad_request(struct eresp *rs, const char *type, const char *fmt, ...)
{
    char reason[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    es_error(rs, 400, type, reason);
}

void bulk_request_fault(struct eresp *rs, int status, size_t body_len)
{
    char reason[400];
    switch (status) {
    case 413:
        /* Netty's HttpObjectAggregator answers an oversized body with an empty 413. */
        rs->status = 413;
        rs->content_type = "";
        return;
    case 429:
        snprintf(reason, sizeof reason,
                 "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, "
                 "replica_bytes=0, all_bytes=0, coordinating_operation_bytes=%zu, "
                 "max_coordinating_and_primary_bytes=0] (injected by esemu)",
                 body_len);
        es_error(rs, 429, "es_rejected_execution_exception", reason);
        return;
    case 503:
        es_error(
            rs, 503, "unavailable_shards_exception",
            "[esemu][0] primary shard is not active Timeout: [1m], request: [BulkShardRequest] "
            "(injected by esemu)");
        return;
    case 502:
    case 504:
        /* These come from proxies in front of Elasticsearch, which answer in plain text. */
        rs->status = status;
        rs->content_type = "text/plain";
        ebuf_printf(&rs->body, "%d %s (injected by esemu)\n", status,
                    status == 502 ? "Bad Gateway" : "Gateway Timeout");
        return;
    case 400:
        es_error(rs, 400, "illegal_argument_exception", "injected bad request (esemu)");
        return;
    case 401:
        es_error(
            rs, 401, "security_exception",
            "missing authentication credentials for REST request [/_bulk] (injected by esemu)");
        return;
    case 403:
        es_error(rs, 403, "security_exception",
                 "action [indices:data/write/bulk] is unauthorized for user [esemu] (injected by "
                 "esemu)");
        return;
    default:
        es_error(rs, status, "exception", "injected failure (esemu)");
    }
}

/* ---- pass 1: structure ---------------------------------------------------------------------- */

static int is_meta_key(const char *k, size_t n)
{
    static const char *const known[] = {"routing",           "if_seq_no",
                                        "if_primary_term",   "version",
                                        "version_type",      "pipeline",
                                        "require_alias",     "require_data_stream",
                                        "dynamic_templates", "retry_on_conflict",
                                        "_source",           "list_executed_pipelines",
                                        "op_type",           NULL};
    for (int i = 0; known[i]; i++)
        if (strlen(known[i]) == n && memcmp(known[i], k, n) == 0) return 1;
    return 0;
}

/* Parses one action line into it. On a structural error writes the whole-request 400. */
static int parse_action(const char *line, size_t n, unsigned lineno, struct item *it,
                        struct eresp *rs)
{
    struct jcur c;
    jc_init(&c, line, n);
    jc_ws(&c);
    if (c.p >= c.end || *c.p != '{') {
        bad_request(rs, "illegal_argument_exception",
                    "Malformed action/metadata line [%u], expected START_OBJECT or END_OBJECT but "
                    "found [%s]",
                    lineno, token_name(c.p, c.end));
        return -1;
    }
    jc_obj_begin(&c);
    int first = 1, r;
    const char *k;
    size_t kn;
    int kesc;
    r = jc_obj_next(&c, &first, &k, &kn, &kesc);
    if (r < 0) goto syntax;
    if (r == 0) {
        bad_request(rs, "illegal_argument_exception",
                    "Malformed action/metadata line [%u], expected FIELD_NAME but found "
                    "[END_OBJECT]",
                    lineno);
        return -1;
    }
    int action = -1;
    for (int a = 0; a < A_COUNT; a++)
        if (strlen(action_name[a]) == kn && memcmp(action_name[a], k, kn) == 0) action = a;
    if (action < 0) {
        bad_request(rs, "illegal_argument_exception",
                    "Malformed action/metadata line [%u], expected field [create], [delete], "
                    "[index] or [update] but found [%.*s]",
                    lineno, (int)(kn > 200 ? 200 : kn), k);
        return -1;
    }
    if (c.p >= c.end || *c.p != '{') {
        const char *at = c.p;
        if (jc_value(&c) < 0) goto syntax;
        bad_request(rs, "illegal_argument_exception",
                    "Malformed action/metadata line [%u], expected START_OBJECT but found [%s]",
                    lineno, token_name(at, c.end));
        return -1;
    }
    memset(it, 0, sizeof *it);
    it->action = (unsigned char)action;
    it->line = lineno;
    jc_obj_begin(&c);
    int f2 = 1;
    while ((r = jc_obj_next(&c, &f2, &k, &kn, &kesc)) == 1) {
        int is_index = kn == 6 && memcmp(k, "_index", 6) == 0;
        int is_id = kn == 3 && memcmp(k, "_id", 3) == 0;
        if (is_index || is_id) {
            const char *v;
            size_t vn;
            int vesc = 0;
            if (c.p < c.end && *c.p == '"') {
                if (jc_string(&c, &v, &vn, &vesc) < 0) goto syntax;
            } else if (is_id && c.p < c.end && (*c.p == '-' || (*c.p >= '0' && *c.p <= '9'))) {
                v = c.p;
                if (jc_value(&c) < 0) goto syntax;
                vn = (size_t)(c.p - v);
            } else {
                const char *at = c.p;
                if (jc_value(&c) < 0) goto syntax;
                bad_request(rs, "illegal_argument_exception",
                            "Malformed action/metadata line [%u], expected a simple value for "
                            "field [%s] but found [%s]",
                            lineno, is_index ? "_index" : "_id", token_name(at, c.end));
                return -1;
            }
            if (is_index) {
                it->index = v;
                it->index_len = vn;
                it->index_esc = (unsigned char)vesc;
                it->has_index = 1;
            } else {
                it->id = v;
                it->id_len = vn;
                it->id_esc = (unsigned char)vesc;
                it->has_id = 1;
            }
            continue;
        }
        if (kn == 8 && memcmp(k, "pipeline", 8) == 0 && c.p < c.end && *c.p == '"') {
            int vesc = 0;
            if (jc_string(&c, &it->pipeline, &it->pipeline_len, &vesc) < 0) goto syntax;
            it->pipeline_esc = (unsigned char)vesc;
            it->has_pipeline = 1;
            continue;
        }
        if (!is_meta_key(k, kn)) {
            bad_request(rs, "illegal_argument_exception",
                        "Action/metadata line [%u] contains an unknown parameter [%.*s]", lineno,
                        (int)(kn > 200 ? 200 : kn), k);
            return -1;
        }
        if (jc_value(&c) < 0) goto syntax;
    }
    if (r < 0) goto syntax;
    r = jc_obj_next(&c, &first, &k, &kn, &kesc);
    if (r < 0) goto syntax;
    if (r == 1) {
        bad_request(rs, "illegal_argument_exception",
                    "Malformed action/metadata line [%u], expected END_OBJECT but found "
                    "[FIELD_NAME]",
                    lineno);
        return -1;
    }
    if (!jc_at_end(&c)) {
        bad_request(rs, "illegal_argument_exception",
                    "Malformed action/metadata line [%u], unexpected data after the action line "
                    "(found [%s])",
                    lineno, token_name(c.p, c.end));
        return -1;
    }
    return 0;
syntax:
    bad_request(rs, "x_content_parse_exception", "[%u:%zu] %s", lineno, c.err.off + 1, c.err.msg);
    return -1;
}

static size_t strip_cr(const char *p, size_t n)
{
    return (n && p[n - 1] == '\r') ? n - 1 : n;
}

/* Returns the number of items, or -1 after writing a whole-request error. */
static long split_items(const char *body, size_t n, struct eresp *rs)
{
    const char *p = body, *end = body + n;
    unsigned lineno = 0;
    size_t count = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        lineno++;
        if (count == items_cap) {
            items_cap = items_cap ? items_cap * 2 : 4096;
            items = realloc(items, items_cap * sizeof *items);
            if (!items) abort();
        }
        struct item *it = &items[count];
        if (parse_action(p, strip_cr(p, (size_t)(nl - p)), lineno, it, rs) < 0) return -1;
        it->hash = it->has_id && !it->id_esc ? store_id_hash(it->id, it->id_len) : 0;
        p = nl + 1;
        if (it->action != A_DELETE) {
            if (p >= end) {
                es_error(rs, 400, "action_request_validation_exception",
                         "Validation Failed: 1: source is missing;");
                return -1;
            }
            nl = memchr(p, '\n', (size_t)(end - p));
            lineno++;
            it->src = p;
            it->src_len = strip_cr(p, (size_t)(nl - p));
            p = nl + 1;
        }
        count++;
    }
    if (count == 0) {
        es_error(rs, 400, "action_request_validation_exception",
                 "Validation Failed: 1: no requests added;");
        return -1;
    }
    return (long)count;
}

/* ---- pass 2: execution ---------------------------------------------------------------------- */

/* Cheap shape check for count-only mode: one line that starts with '{' and ends with '}'. */
static int quick_object(const char *s, size_t n, struct jerr *err)
{
    size_t a = 0, b = n;
    while (a < b && (s[a] == ' ' || s[a] == '\t'))
        a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
        b--;
    if (a == b) {
        err->off = a;
        snprintf(err->msg, sizeof err->msg, "document is empty");
        return -1;
    }
    if (s[a] != '{' || s[b - 1] != '}') {
        err->off = s[a] != '{' ? a : b - 1;
        snprintf(err->msg, sizeof err->msg,
                 "the document source must be one JSON object (count-only mode checks only the "
                 "outer braces)");
        return -1;
    }
    return 0;
}

static const char *item_fault(int status, const char *index, size_t il, const char *id, size_t idl,
                              const struct item *it, struct ebuf *reason)
{
    int inl = (int)(il > 255 ? 255 : il), idn = (int)(idl > 512 ? 512 : idl);
    switch (status) {
    case 400: {
        const char *v = NULL;
        size_t vn = 0;
        char preview[40] = "INFO";
        if (it->src && json_get(it->src, it->src_len, "level", &v, &vn) == 1 && vn >= 2 &&
            *v == '"')
            snprintf(preview, sizeof preview, "%.*s", (int)(vn - 2 > 30 ? 30 : vn - 2), v + 1);
        ebuf_printf(reason,
                    "failed to parse field [level] of type [long] in document with id '%.*s'. "
                    "Preview of field's value: '%s'",
                    idn, id, preview);
        return "mapper_parsing_exception";
    }
    case 429:
        ebuf_printf(reason,
                    "rejected execution of primary operation [shard_detail=[%.*s][0][esemu], "
                    "shard_max_bytes=0] (injected by esemu)",
                    inl, index);
        return "es_rejected_execution_exception";
    case 503:
        ebuf_printf(reason,
                    "[%.*s][0] primary shard is not active Timeout: [1m] (injected by esemu)", inl,
                    index);
        return "unavailable_shards_exception";
    case 404:
        ebuf_printf(reason, "no such index [%.*s]", inl, index);
        return "index_not_found_exception";
    case 409:
        ebuf_printf(reason, "[%.*s]: version conflict (injected by esemu)", idn, id);
        return "version_conflict_engine_exception";
    case 401:
    case 403:
        ebuf_printf(reason, "action [indices:data/write/bulk[s]] is unauthorized for user [esemu] "
                            "(injected by esemu)");
        return "security_exception";
    case 413:
        ebuf_printf(reason, "document too large (injected by esemu)");
        return "payload_too_large";
    case 500:
        ebuf_printf(reason, "internal failure on shard [%.*s][0] (injected by esemu)", inl, index);
        return "illegal_state_exception";
    default:
        ebuf_printf(reason, "injected item failure with status %d (esemu)", status);
        return "exception";
    }
}

struct exec {
    struct writer w;
    const char *path_index;
    size_t pin;
    struct eindex *last_ix;
    struct ebuf idxbuf, idbuf, reason, plbuf;
    struct ebuf pipeline; /* ?pipeline= (empty: none) */
    uint64_t created;
    uint64_t recv_ns; /* CLOCK_REALTIME when the request was processed (--latency-field) */
    double retry_rate, perm_rate;
    int retry_status, perm_status;
};

static void exec_item(struct exec *x, const struct item *it)
{
    struct store *st = &g_emu.store;
    struct outcome o = {0};
    const char *index = NULL, *id = NULL;
    size_t il = 0, idl = 0;
    char gen[20];
    x->reason.len = 0;

    if (it->has_index) {
        index = it->index;
        il = it->index_len;
        if (it->index_esc) {
            x->idxbuf.len = 0;
            json_unescape(index, il, &x->idxbuf);
            index = x->idxbuf.p;
            il = x->idxbuf.len;
        }
    } else if (x->pin) {
        index = x->path_index;
        il = x->pin;
    }
    if (it->has_id) {
        id = it->id;
        idl = it->id_len;
        if (it->id_esc) {
            x->idbuf.len = 0;
            json_unescape(id, idl, &x->idbuf);
            id = x->idbuf.p;
            idl = x->idbuf.len;
        }
    }

    struct eindex *ix = NULL;
    if (!index) {
        o.status = 400;
        o.etype = "action_request_validation_exception";
        EBUF_LIT(&x->reason, "Validation Failed: 1: index is missing;");
        goto done;
    }
    if (x->last_ix && x->last_ix->name_len == il && memcmp(x->last_ix->name, index, il) == 0) {
        ix = x->last_ix;
    } else {
        char why[512];
        if (index_name_invalid(index, il, why, sizeof why)) {
            /* a name that may not be auto-created is missing before it is malformed */
            if (!idx_may_auto_create(index, il)) {
                o.status = 404;
                o.etype = "index_not_found_exception";
                ebuf_printf(&x->reason, "no such index [%.*s]", (int)il, index);
                g_emu.stats.auto_create_refusals++;
                goto done;
            }
            o.status = 400;
            o.etype = "invalid_index_name_exception";
            ebuf_adds(&x->reason, why);
            goto done;
        }
        ix = store_index(st, index, il, 0);
        if (ix) x->last_ix = ix;
    }
    if (it->has_id && idl == 0) {
        /* thrown while routing the item, not by request validation: an item error of its own */
        o.status = 400;
        o.etype = "illegal_argument_exception";
        EBUF_LIT(&x->reason, "if _id is specified it must not be empty");
        goto done;
    }
    if (idl > 512) {
        o.status = 400;
        o.etype = "action_request_validation_exception";
        ebuf_printf(&x->reason,
                    "Validation Failed: 1: id is too long, must be no longer than 512 bytes but "
                    "was: %zu;",
                    idl);
        goto done;
    }
    if (!it->has_id) {
        if (it->action == A_DELETE || it->action == A_UPDATE) {
            o.status = 400;
            o.etype = "action_request_validation_exception";
            EBUF_LIT(&x->reason, "Validation Failed: 1: id is missing;");
            goto done;
        }
        emu_gen_id(gen);
        id = gen;
        idl = sizeof gen;
    }
    const char *pl = NULL;
    size_t pll = 0;
    if (it->action != A_DELETE && (it->has_pipeline || x->pipeline.len)) {
        pl = x->pipeline.p;
        pll = x->pipeline.len;
        if (it->has_pipeline) {
            pl = it->pipeline;
            pll = it->pipeline_len;
            if (it->pipeline_esc) {
                x->plbuf.len = 0;
                json_unescape(pl, pll, &x->plbuf);
                pl = x->plbuf.p;
                pll = x->plbuf.len;
            }
        }
        if (pll == 5 && memcmp(pl, "_none", 5) == 0) pl = NULL;
        if (pl && !res_pipeline_exists(pl, pll)) {
            o.status = 400;
            o.etype = "illegal_argument_exception";
            ebuf_printf(&x->reason, "pipeline with id [%.*s] does not exist", (int)pll, pl);
            g_emu.stats.pipeline_missing_errors++;
            goto done;
        }
    }
    const char *ds = NULL;
    if (!ix && g_emu.ds_active) {
        const char *backing = res_bulk_stream(index, il, it->action != A_DELETE);
        if (backing) {
            if (it->action != A_CREATE) {
                o.status = 400;
                o.etype = "illegal_argument_exception";
                EBUF_LIT(&x->reason,
                         "only write ops with an op_type of create are allowed in data streams");
                g_emu.stats.data_stream_op_type_errors++;
                goto done;
            }
            ds = index;
            index = backing;
            il = strlen(backing);
            ix = store_index(st, index, il, 1);
        }
    }
    /* Index existence and blocks are decided before the document is parsed, as on a cluster
     * (the coordinating node resolves the index; the shard parses). */
    if (!ix && !ds && it->action != A_DELETE && !idx_may_auto_create(index, il)) {
        o.status = 404;
        o.etype = "index_not_found_exception";
        ebuf_printf(&x->reason, "no such index [%.*s]", (int)il, index);
        g_emu.stats.auto_create_refusals++;
        goto done;
    }
    if (ix && ix->blocks &&
        (o.etype = idx_block(ix, it->action == A_DELETE, &o.status, &x->reason)) != NULL)
        goto done;
    if (it->action == A_UPDATE) {
        o.status = 400;
        o.etype = "illegal_argument_exception";
        EBUF_LIT(&x->reason, "the update action is not supported by the emulator (esemu); use "
                             "index or create");
        goto done;
    }
    if (it->action != A_DELETE) {
        struct jerr je;
        int bad = st->count_only ? quick_object(it->src, it->src_len, &je)
                                 : json_validate(it->src, it->src_len, 1, &je);
        if (bad) {
            o.status = 400;
            o.etype = "document_parsing_exception";
            ebuf_printf(&x->reason, "[1:%zu] failed to parse: %s", je.off + 1, je.msg);
            goto done;
        }
        const char *ts;
        size_t tsn;
        if (ds && (json_get(it->src, it->src_len, "@timestamp", &ts, &tsn) != 1 ||
                   (tsn == 4 && memcmp(ts, "null", 4) == 0))) {
            o.status = 400;
            o.etype = "document_parsing_exception";
            o.e_uuid = 1;
            o.uuid = ix->uuid;
            ebuf_printf(&x->reason,
                        "[1:%zu] failed to parse: data stream timestamp field [@timestamp] is "
                        "missing",
                        it->src_len + 1);
            g_emu.stats.data_stream_timestamp_errors++;
            goto done;
        }
        if (ix && ix->n_fields &&
            (o.etype = idx_check_source(ix, it->src, it->src_len, id, idl, &x->reason)) != NULL) {
            o.status = 400;
            o.e_uuid = 1;
            o.uuid = ix->uuid;
            goto done;
        }
    }
    if (x->perm_rate > 0) {
        uint64_t h = emu_hash(id, idl, emu_hash(index, il, g_emu.seed));
        if ((double)(h >> 11) * 0x1p-53 < x->perm_rate) {
            o.status = x->perm_status;
            o.etype = item_fault(o.status, index, il, id, idl, it, &x->reason);
            o.e_uuid = 1;
            o.uuid = ix ? ix->uuid : NULL;
            g_emu.stats.permanent_item_errors++;
            goto done;
        }
    }
    if (x->retry_rate > 0 && (double)(emu_rand() >> 11) * 0x1p-53 < x->retry_rate) {
        o.status = x->retry_status;
        o.etype = item_fault(o.status, index, il, id, idl, it, &x->reason);
        o.e_uuid = 1;
        o.uuid = ix ? ix->uuid : NULL;
        g_emu.stats.injected_item_errors++;
        goto done;
    }

    if (it->action == A_DELETE && !ix) {
        o.status = 404;
        o.etype = "index_not_found_exception";
        ebuf_printf(&x->reason, "no such index [%.*s]", (int)il, index);
        goto done;
    }
    if (!ix) {
        ix = store_index(st, index, il, 1);
        x->last_ix = ix;
    }
    uint64_t h = it->has_id && !it->id_esc ? it->hash : 0;
    long at = store_find(st, ix, id, idl, &h);
    o.e_uuid = 1;
    o.uuid = ix->uuid;
    if (it->action == A_DELETE) {
        o.seq_no = ix->seq_no++;
        if (at < 0) {
            o.status = 404;
            o.result = R_NOT_FOUND;
            o.version = 1;
        } else {
            o.status = 200;
            o.result = R_DELETED;
            o.version = slot_version(st, &ix->slots[at]) + 1;
            store_del(st, ix, (size_t)at);
            g_emu.stats.deleted++;
        }
        goto done;
    }
    if (at >= 0 && it->action == A_CREATE) {
        o.status = 409;
        o.etype = "version_conflict_engine_exception";
        ebuf_printf(&x->reason,
                    "[%.*s]: version conflict, document already exists (current version [%lld])",
                    (int)idl, id, (long long)slot_version(st, &ix->slots[at]));
        g_emu.stats.conflicts_409++;
        goto done;
    }
    o.seq_no = ix->seq_no++;
    o.version = at >= 0 ? slot_version(st, &ix->slots[at]) + 1 : 1;
    store_put(st, ix, at, h, id, idl, it->src, it->src_len, o.version);
    if (g_emu.latency_field) lat_doc(it->src, it->src_len, x->recv_ns);
    if (at >= 0) {
        o.status = 200;
        o.result = R_UPDATED;
        g_emu.stats.updated++;
    } else {
        o.status = 201;
        o.result = R_CREATED;
        g_emu.stats.created++;
        x->created++;
    }
    if (pl) res_pipeline_doc(pl, pll);
done:
    if (o.etype) {
        x->w.any_error = 1;
        g_emu.stats.item_errors++;
    }
    write_item(&x->w, it->action, index, il, id, idl, &o, &x->reason);
}

static int ctype_ok(const char *ct, size_t n)
{
    static const char *const ok[] = {"application/json", "application/x-ndjson",
                                     "application/vnd.elasticsearch+x-ndjson",
                                     "application/vnd.elasticsearch+json", NULL};
    if (!ct) return 0;
    const char *semi = memchr(ct, ';', n);
    size_t mn = semi ? (size_t)(semi - ct) : n;
    while (mn && (ct[mn - 1] == ' ' || ct[mn - 1] == '\t'))
        mn--;
    for (int i = 0; ok[i]; i++)
        if (strlen(ok[i]) == mn && strncasecmp(ok[i], ct, mn) == 0) return 1;
    return 0;
}

void bulk_handle(const struct ereq *rq, const char *path_index, size_t pin, struct eresp *rs)
{
    struct faults *fl = &g_emu.faults;
    g_emu.stats.bulk_requests++;
    if (!ctype_ok(rq->ctype, rq->ctype_len)) {
        char reason[300];
        snprintf(reason, sizeof reason, "Content-Type header [%.*s] is not supported",
                 rq->ctype ? (int)(rq->ctype_len > 200 ? 200 : rq->ctype_len) : 0,
                 rq->ctype ? rq->ctype : "");
        rs->status = 406;
        EBUF_LIT(&rs->body, "{\"error\":");
        ebuf_json_str(&rs->body, reason, strlen(reason));
        EBUF_LIT(&rs->body, ",\"status\":406}");
        return;
    }
    if (fl->request_status && fl->request_count != 0) {
        if (fl->request_count > 0) fl->request_count--;
        g_emu.stats.injected_request_errors++;
        bulk_request_fault(rs, fl->request_status, rq->body_len);
        return;
    }
    if (fl->reset_before_write_count > 0) {
        fl->reset_before_write_count--;
        g_emu.stats.resets_injected++;
        rs->disp = DISP_RESET;
        return;
    }
    if (rq->body_len == 0 || rq->body[rq->body_len - 1] != '\n') {
        if (rq->body_len) g_emu.stats.missing_trailing_newline++;
        if (rq->body_len == 0)
            es_error(rs, 400, "parse_exception", "request body is required");
        else
            es_error(rs, 400, "illegal_argument_exception",
                     "The bulk request must be terminated by a newline [\\n]");
        return;
    }
    uint64_t t0 = now_mono_ns();
    long n = split_items(rq->body, rq->body_len, rs);
    if (n < 0) return;
    g_emu.stats.bulk_items += (uint64_t)n;

    struct filter flt;
    struct ebuf fp = {0};
    if (query_param(rq, "filter_path", &fp) != 1 || filter_compile(fp.p, fp.len, &flt) < 0)
        memset(&flt, 1, sizeof flt);
    filter_finish(&flt);
    ebuf_free(&fp);

    struct exec x = {0};
    x.recv_ns = now_real_ns();
    x.w.out = &rs->body;
    x.w.flt = &flt;
    x.path_index = path_index;
    x.pin = pin;
    x.retry_rate = fl->item_retryable_rate;
    x.retry_status = fl->item_retryable_status ? fl->item_retryable_status : 429;
    x.perm_rate = fl->item_permanent_rate;
    x.perm_status = fl->item_permanent_status ? fl->item_permanent_status : 400;
    query_param(rq, "pipeline", &x.pipeline);

    /* Roughly 150 response bytes per item without a filter; reserving up front avoids repeated
     * doubling copies of a multi-megabyte buffer. */
    ebuf_reserve(&rs->body, RESERVE + (size_t)n * 160);
    rs->body.len = RESERVE;
    for (long i = 0; i < n; i++) {
        /* The id lookups are random accesses into a table that can be far larger than the cache;
         * fetching a few items ahead hides most of that latency. */
        const struct eindex *pix = x.last_ix;
        if (i + 8 < n && pix && items[i + 8].hash)
            __builtin_prefetch(&pix->slots[items[i + 8].hash & (pix->cap - 1)]);
        exec_item(&x, &items[i]);
    }
    if (x.w.items_open) ebuf_addc(&rs->body, ']');
    ebuf_addc(&rs->body, '}');

    if (x.created) {
        uint64_t t = now_real_ns();
        if (!g_emu.stats.first_doc_ns) g_emu.stats.first_doc_ns = t;
        g_emu.stats.last_doc_ns = t;
    }
    char head[RESERVE];
    int hn = 0, hfirst = 1;
    head[hn++] = '{';
    if (flt.took) {
        hn += snprintf(head + hn, sizeof head - (size_t)hn, "\"took\":%llu",
                       (unsigned long long)((now_mono_ns() - t0) / 1000000));
        hfirst = 0;
    }
    if (flt.errors) {
        hn += snprintf(head + hn, sizeof head - (size_t)hn, "%s\"errors\":%s", hfirst ? "" : ",",
                       x.w.any_error ? "true" : "false");
        hfirst = 0;
    }
    if (!hfirst && x.w.items_open) head[hn++] = ',';
    rs->body_off = RESERVE - (size_t)hn;
    memcpy(rs->body.p + rs->body_off, head, (size_t)hn);
    rs->status = 200;
    ebuf_free(&x.idxbuf);
    ebuf_free(&x.idbuf);
    ebuf_free(&x.reason);
    ebuf_free(&x.plbuf);
    ebuf_free(&x.pipeline);

    if (fl->reset_after_write_count > 0) {
        fl->reset_after_write_count--;
        g_emu.stats.resets_injected++;
        rs->disp = DISP_RESET;
    } else if (fl->close_after_write_count > 0 && rq->reused) {
        fl->close_after_write_count--;
        g_emu.stats.closes_injected++;
        rs->disp = DISP_CLOSE;
    } else if (fl->truncate_response_count > 0) {
        fl->truncate_response_count--;
        g_emu.stats.truncations_injected++;
        rs->disp = DISP_TRUNCATE;
    }
}
