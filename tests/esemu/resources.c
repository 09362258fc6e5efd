/* Cluster resources that sluice installs at start-up: composable index templates, ILM policies,
 * data streams and ingest pipelines (Elasticsearch 8 shapes, status codes and error types).
 *
 * Everything here is small and rare, so it is kept in plain arrays searched linearly, and request
 * bodies are stored as (lightly normalised) JSON text and echoed back. Only what changes the bulk
 * behaviour is interpreted: a template's patterns, priority, data_stream flag and
 * index.lifecycle.name; a data stream's backing index; whether a pipeline exists. Processors are
 * never run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esemu.h"
#include "json.h"

struct res {
    char *name;
    size_t name_len;
    struct ebuf body;  /* templates, policies, pipelines: the stored JSON object */
    struct ebuf pats;  /* templates: index patterns, each followed by a NUL */
    long priority;     /* templates */
    int ds;            /* templates: has data_stream */
    char *ilm;         /* templates and data streams: index.lifecycle.name, or NULL */
    char *tmpl;        /* data streams: the template they were created from */
    char *backing;     /* data streams: the (only) backing index */
    int64_t version;   /* policies: bumped on every put */
    uint64_t modified; /* policies: CLOCK_REALTIME ms of the last put */
    uint64_t n;        /* pipeline_docs counters */
};

struct rlist {
    struct res **v;
    size_t n, cap;
};

static struct rlist templates, policies, streams, pipelines, pdocs;

enum { F_TEMPLATE, F_ILM, F_DATA_STREAM, F_PIPELINE };

/* ---- lists ---------------------------------------------------------------------------------- */

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) abort();
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static long rl_find(const struct rlist *l, const char *name, size_t n)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i]->name_len == n && memcmp(l->v[i]->name, name, n) == 0) return (long)i;
    return -1;
}

static void res_free(struct res *r)
{
    free(r->name);
    ebuf_free(&r->body);
    ebuf_free(&r->pats);
    free(r->ilm);
    free(r->tmpl);
    free(r->backing);
    free(r);
}

/* Returns the entry called name, creating it (empty) when absent; *fresh tells which. */
static struct res *rl_get(struct rlist *l, const char *name, size_t n, int *fresh)
{
    long at = rl_find(l, name, n);
    if (fresh) *fresh = at < 0;
    if (at >= 0) return l->v[at];
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v) abort();
    }
    struct res *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->name = dupn(name, n);
    r->name_len = n;
    l->v[l->n++] = r;
    return r;
}

static void rl_del(struct rlist *l, size_t i)
{
    res_free(l->v[i]);
    memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
    l->n--;
}

static void rl_clear(struct rlist *l)
{
    while (l->n)
        rl_del(l, l->n - 1);
}

static void update_active(void)
{
    int any = streams.n > 0;
    for (size_t i = 0; i < templates.n && !any; i++)
        any = templates.v[i]->ds;
    g_emu.ds_active = any;
}

void res_reset(void)
{
    rl_clear(&templates);
    rl_clear(&policies);
    rl_clear(&streams);
    rl_clear(&pipelines);
    rl_clear(&pdocs);
    update_active();
}

/* ---- helpers -------------------------------------------------------------------------------- */

static void ack(struct eresp *rs)
{
    rs->status = 200;
    EBUF_LIT(&rs->body, "{\"acknowledged\":true}");
}

static void errorf(struct eresp *rs, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#include <stdarg.h>
static void errorf(struct eresp *rs, int status, const char *type, const char *fmt, ...)
{
    char reason[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    es_error(rs, status, type, reason);
}

static int clip(size_t n)
{
    return (int)(n > 255 ? 255 : n);
}

/* Jackson-style [line:column] of p in base (both 1-based). */
static void where(const char *base, const char *p, char *out, size_t on)
{
    unsigned line = 1;
    const char *ls = base;
    for (const char *q = base; q < p; q++)
        if (*q == '\n') {
            line++;
            ls = q + 1;
        }
    snprintf(out, on, "[%u:%zu]", line, (size_t)(p - ls) + 1);
}

/* Checks that the request body is one JSON object. Writes the ES error and returns -1 if not. */
static int body_object(const struct ereq *rq, struct eresp *rs)
{
    struct jerr je;
    if (rq->body_len == 0) {
        es_error(rs, 400, "parse_exception", "request body is required");
        return -1;
    }
    if (json_validate(rq->body, rq->body_len, 0, &je) < 0) {
        char at[40];
        where(rq->body, rq->body + je.off, at, sizeof at);
        errorf(rs, 400, "x_content_parse_exception", "%s %s", at, je.msg);
        return -1;
    }
    if (json_validate(rq->body, rq->body_len, 1, &je) < 0) {
        es_error(rs, 400, "parse_exception",
                 "request body or source parameter is required (the body must be a JSON object)");
        return -1;
    }
    return 0;
}

static int key_is(const char *k, size_t kn, const char *lit)
{
    return strlen(lit) == kn && memcmp(k, lit, kn) == 0;
}

static int key_in(const char *k, size_t kn, const char *const *set)
{
    for (int i = 0; set[i]; i++)
        if (key_is(k, kn, set[i])) return 1;
    return 0;
}

/* Rejects members of the object at v not in allowed, as ObjectParser does. */
static int known_keys(const char *base, const char *v, size_t vn, const char *parser,
                      const char *const *allowed, struct eresp *rs)
{
    struct jcur c;
    jc_init(&c, v, vn);
    jc_ws(&c);
    jc_obj_begin(&c);
    int first = 1;
    const char *k;
    size_t kn;
    int kesc;
    while (jc_obj_next(&c, &first, &k, &kn, &kesc) == 1) {
        if (!key_in(k, kn, allowed)) {
            char at[40];
            where(base, k - 1, at, sizeof at);
            errorf(rs, 400, "x_content_parse_exception", "%s [%s] unknown field [%.*s]", at, parser,
                   clip(kn), k);
            return -1;
        }
        jc_value(&c);
    }
    return 0;
}

/* Does name match any of the comma-separated, '*'-wildcarded names in expr ("" and _all = all)? */
static int name_matches(const char *expr, size_t en, const char *name, size_t nn)
{
    if (en == 0 || key_is(expr, en, "_all")) return 1;
    const char *p = expr, *end = expr + en;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        if (e > p && glob_match(p, (size_t)(e - p), name, nn)) return 1;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

static int has_wildcard(const char *expr, size_t en)
{
    return en == 0 || key_is(expr, en, "_all") || memchr(expr, '*', en) != NULL;
}

static void iso_date(struct ebuf *b, uint64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    ebuf_printf(b, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03uZ\"", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
}

static void str_or_null(struct ebuf *b, const char *s)
{
    if (s)
        ebuf_json_str(b, s, strlen(s));
    else
        EBUF_LIT(b, "null");
}

/* ---- fault injection ------------------------------------------------------------------------ */

static const char *const family_name[] = {"index template", "lifecycle policy", "data stream",
                                          "ingest pipeline"};

/* Returns 1 after writing an injected failure for this request. */
static int injected(int fam, const struct ereq *rq, struct eresp *rs)
{
    struct faults *f = &g_emu.faults;
    int write = rq->method != M_GET && rq->method != M_HEAD;
    if (!f->res_status[fam] || f->res_count[fam] == 0 || (!write && !f->res_reads)) return 0;
    if (f->res_count[fam] > 0) f->res_count[fam]--;
    g_emu.stats.injected_resource_errors++;
    int st = f->res_status[fam];
    switch (st) {
    case 503:
        errorf(rs, 503, "master_not_discovered_exception",
               "no master node available for the %s request (injected by esemu)", family_name[fam]);
        break;
    case 429:
        errorf(rs, 429, "es_rejected_execution_exception",
               "rejected execution of the %s request (injected by esemu)", family_name[fam]);
        break;
    case 500:
        errorf(rs, 500, "process_cluster_event_timeout_exception",
               "failed to process cluster event for the %s request within 30s (injected by "
               "esemu)",
               family_name[fam]);
        break;
    case 401:
    case 403:
        errorf(rs, st, "security_exception",
               "action on the %s is unauthorized for user [esemu] (injected by esemu)",
               family_name[fam]);
        break;
    case 400:
    case 413:
    case 502:
    case 504:
        bulk_request_fault(rs, st, rq->body_len);
        break;
    default:
        es_error(rs, st, "exception", "injected failure (esemu)");
    }
    return 1;
}

/* ---- index templates ------------------------------------------------------------------------ */

static const struct res *best_template(const char *name, size_t n)
{
    const struct res *best = NULL;
    for (size_t i = 0; i < templates.n; i++) {
        const struct res *t = templates.v[i];
        for (const char *p = t->pats.p; p && p < t->pats.p + t->pats.len; p += strlen(p) + 1) {
            if (glob_match(p, strlen(p), name, n)) {
                if (!best || t->priority > best->priority) best = t;
                break;
            }
        }
    }
    return best;
}

/* Finds a string setting under a settings object, whether written nested ({"index":{"lifecycle":
 * {"name":..}}}), flat ("index.lifecycle.name") or without the index. prefix. */
static void find_setting(const char *v, size_t vn, struct ebuf *path, const char *want, char **out)
{
    struct jcur c;
    jc_init(&c, v, vn);
    jc_ws(&c);
    if (c.p >= c.end || *c.p != '{') return;
    jc_obj_begin(&c);
    int first = 1;
    const char *k;
    size_t kn;
    int kesc;
    size_t base = path->len;
    while (jc_obj_next(&c, &first, &k, &kn, &kesc) == 1) {
        path->len = base;
        if (base) ebuf_addc(path, '.');
        ebuf_add(path, k, kn);
        const char *val = c.p;
        jc_value(&c);
        size_t valn = (size_t)(c.p - val);
        if (*val == '{') {
            find_setting(val, valn, path, want, out);
        } else if (*val == '"') {
            size_t pl = path->len;
            int hit = (pl == strlen(want) && memcmp(path->p, want, pl) == 0) ||
                      (pl == strlen(want) - 6 && memcmp(path->p, want + 6, pl) == 0);
            if (hit) {
                struct ebuf s = {0};
                json_unescape(val + 1, valn - 2, &s);
                free(*out);
                *out = dupn(s.p ? s.p : "", s.len);
                ebuf_free(&s);
            }
        }
    }
    path->len = base;
}

static void template_put(const struct ereq *rq, const char *name, size_t nn, struct eresp *rs)
{
    static const char *const allowed[] = {"index_patterns",
                                          "template",
                                          "composed_of",
                                          "priority",
                                          "version",
                                          "_meta",
                                          "data_stream",
                                          "allow_auto_create",
                                          "ignore_missing_component_templates",
                                          "deprecated",
                                          NULL};
    if (body_object(rq, rs) < 0) return;
    if (known_keys(rq->body, rq->body, rq->body_len, "index_template", allowed, rs) < 0) return;
    struct ebuf create = {0};
    int must_create = query_param(rq, "create", &create) == 1 &&
                      (create.len == 0 || key_is(create.p, create.len, "true"));
    ebuf_free(&create);
    if (must_create && rl_find(&templates, name, nn) >= 0) {
        errorf(rs, 400, "illegal_argument_exception", "index template [%.*s] already exists",
               clip(nn), name);
        return;
    }

    struct ebuf norm = {0}, pats = {0};
    long priority = 0;
    int ds = 0, have_pats = 0, have_composed = 0;
    struct jcur c;
    jc_init(&c, rq->body, rq->body_len);
    jc_ws(&c);
    jc_obj_begin(&c);
    int first = 1;
    const char *k;
    size_t kn;
    int kesc;
    ebuf_addc(&norm, '{');
    while (jc_obj_next(&c, &first, &k, &kn, &kesc) == 1) {
        const char *v = c.p;
        jc_value(&c);
        size_t vn = (size_t)(c.p - v);
        if (norm.len > 1) ebuf_addc(&norm, ',');
        ebuf_add(&norm, k - 1, kn + 2);
        ebuf_addc(&norm, ':');
        if (key_is(k, kn, "index_patterns")) {
            /* A single string is accepted and stored as a one-element array, as ES does. */
            struct jcur a;
            jc_init(&a, v, vn);
            int arr = *v == '[', n = 0;
            if (arr) {
                a.p++;
                jc_ws(&a);
            }
            ebuf_addc(&norm, '[');
            while (!(arr && *a.p == ']')) {
                const char *s;
                size_t sn;
                int sesc;
                if (*a.p != '"' || jc_string(&a, &s, &sn, &sesc) < 0) {
                    char at[40];
                    where(rq->body, a.p, at, sizeof at);
                    errorf(rs, 400, "x_content_parse_exception",
                           "%s [index_template] failed to parse field [index_patterns]", at);
                    ebuf_free(&norm);
                    ebuf_free(&pats);
                    return;
                }
                if (n++) ebuf_addc(&norm, ',');
                ebuf_add(&norm, s - 1, sn + 2);
                json_unescape(s, sn, &pats);
                ebuf_addc(&pats, 0);
                if (!arr) break;
                jc_ws(&a);
                if (*a.p == ',') a.p++;
                jc_ws(&a);
            }
            ebuf_addc(&norm, ']');
            have_pats = 1;
            continue;
        }
        if (key_is(k, kn, "priority")) {
            char num[32];
            snprintf(num, sizeof num, "%.*s", (int)(vn > 31 ? 31 : vn), v);
            char *e;
            priority = strtol(num, &e, 10);
            if (*e != 0 || priority < 0) {
                char at[40];
                where(rq->body, v, at, sizeof at);
                errorf(rs, 400, "x_content_parse_exception",
                       "%s [index_template] failed to parse field [priority]", at);
                ebuf_free(&norm);
                ebuf_free(&pats);
                return;
            }
        }
        if (key_is(k, kn, "data_stream")) ds = *v == '{';
        if (key_is(k, kn, "composed_of")) have_composed = 1;
        ebuf_add(&norm, v, vn);
    }
    if (!have_composed) {
        if (norm.len > 1) ebuf_addc(&norm, ',');
        EBUF_LIT(&norm, "\"composed_of\":[]");
    }
    ebuf_addc(&norm, '}');
    if (!have_pats) {
        es_error(rs, 400, "illegal_argument_exception", "Required [index_patterns]");
    } else if (pats.len == 0) {
        es_error(rs, 400, "action_request_validation_exception",
                 "Validation Failed: 1: index patterns are missing;");
    } else {
        struct res *t = rl_get(&templates, name, nn, NULL);
        ebuf_free(&t->body);
        ebuf_free(&t->pats);
        t->body = norm;
        t->pats = pats;
        t->priority = priority;
        t->ds = ds;
        free(t->ilm);
        t->ilm = NULL;
        const char *sv;
        size_t svn;
        if (json_get(rq->body, rq->body_len, "template.settings", &sv, &svn) == 1) {
            struct ebuf path = {0};
            find_setting(sv, svn, &path, "index.lifecycle.name", &t->ilm);
            ebuf_free(&path);
        }
        g_emu.stats.templates_put++;
        update_active();
        ack(rs);
        return;
    }
    ebuf_free(&norm);
    ebuf_free(&pats);
}

static void template_get(const struct ereq *rq, const char *name, size_t nn, struct eresp *rs)
{
    struct ebuf *b = &rs->body;
    EBUF_LIT(b, "{\"index_templates\":[");
    int any = 0;
    for (size_t i = 0; i < templates.n; i++) {
        const struct res *t = templates.v[i];
        if (!name_matches(name, nn, t->name, t->name_len)) continue;
        if (any++) ebuf_addc(b, ',');
        EBUF_LIT(b, "{\"name\":");
        ebuf_json_str(b, t->name, t->name_len);
        EBUF_LIT(b, ",\"index_template\":");
        ebuf_add(b, t->body.p, t->body.len);
        ebuf_addc(b, '}');
    }
    EBUF_LIT(b, "]}");
    rs->status = 200;
    if (!any && !has_wildcard(name, nn))
        errorf(rs, 404, "resource_not_found_exception", "index template matching [%.*s] not found",
               clip(nn), name);
    if (rq->method == M_HEAD) b->len = 0;
}

static void template_delete(const char *name, size_t nn, struct eresp *rs)
{
    long at = rl_find(&templates, name, nn);
    if (at < 0) {
        errorf(rs, 404, "resource_not_found_exception", "index_template [%.*s] missing", clip(nn),
               name);
        return;
    }
    for (size_t i = 0; i < streams.n; i++) {
        if (strlen(streams.v[i]->tmpl) == nn && memcmp(streams.v[i]->tmpl, name, nn) == 0) {
            errorf(rs, 400, "illegal_argument_exception",
                   "unable to remove composable templates [%.*s] as they are in use by a data "
                   "streams [%s]",
                   clip(nn), name, streams.v[i]->name);
            return;
        }
    }
    rl_del(&templates, (size_t)at);
    g_emu.stats.templates_deleted++;
    update_active();
    ack(rs);
}

/* ---- ILM policies --------------------------------------------------------------------------- */

static void policy_put(const struct ereq *rq, const char *name, size_t nn, struct eresp *rs)
{
    static const char *const top[] = {"policy", NULL};
    static const char *const inner[] = {"phases", "_meta", "deprecated", NULL};
    if (body_object(rq, rs) < 0) return;
    if (known_keys(rq->body, rq->body, rq->body_len, "put_lifecycle_request", top, rs) < 0) return;
    const char *v;
    size_t vn;
    if (json_get(rq->body, rq->body_len, "policy", &v, &vn) != 1) {
        es_error(rs, 400, "illegal_argument_exception", "Required [policy]");
        return;
    }
    if (*v != '{') {
        char at[40];
        where(rq->body, v, at, sizeof at);
        errorf(rs, 400, "x_content_parse_exception",
               "%s [put_lifecycle_request] policy doesn't support values of type: %s", at,
               *v == '[' ? "START_ARRAY" : "VALUE_STRING");
        return;
    }
    if (known_keys(rq->body, v, vn, "lifecycle_policy", inner, rs) < 0) return;
    struct res *p = rl_get(&policies, name, nn, NULL);
    p->body.len = 0;
    ebuf_add(&p->body, v, vn);
    p->version++;
    p->modified = now_real_ns() / 1000000;
    g_emu.stats.ilm_put++;
    ack(rs);
}

static void in_use_by(struct ebuf *b, const char *policy, size_t pn)
{
    const struct rlist *ls[3] = {&streams, &streams, &templates};
    static const char *const keys[3] = {"indices", "data_streams", "composable_templates"};
    EBUF_LIT(b, "\"in_use_by\":{");
    for (int k = 0; k < 3; k++) {
        if (k) ebuf_addc(b, ',');
        ebuf_printf(b, "\"%s\":[", keys[k]);
        int any = 0;
        for (size_t i = 0; i < ls[k]->n; i++) {
            const struct res *r = ls[k]->v[i];
            if (!r->ilm || strlen(r->ilm) != pn || memcmp(r->ilm, policy, pn) != 0) continue;
            if (any++) ebuf_addc(b, ',');
            if (k == 0)
                ebuf_json_str(b, r->backing, strlen(r->backing));
            else
                ebuf_json_str(b, r->name, r->name_len);
        }
        ebuf_addc(b, ']');
    }
    ebuf_addc(b, '}');
}

static void policy_get(const char *name, size_t nn, struct eresp *rs)
{
    struct ebuf *b = &rs->body;
    ebuf_addc(b, '{');
    int any = 0;
    for (size_t i = 0; i < policies.n; i++) {
        const struct res *p = policies.v[i];
        if (!name_matches(name, nn, p->name, p->name_len)) continue;
        if (any++) ebuf_addc(b, ',');
        ebuf_json_str(b, p->name, p->name_len);
        EBUF_LIT(b, ":{\"version\":");
        ebuf_i64(b, p->version);
        EBUF_LIT(b, ",\"modified_date\":");
        iso_date(b, p->modified);
        EBUF_LIT(b, ",\"policy\":");
        ebuf_add(b, p->body.p, p->body.len);
        ebuf_addc(b, ',');
        in_use_by(b, p->name, p->name_len);
        ebuf_addc(b, '}');
    }
    ebuf_addc(b, '}');
    rs->status = 200;
    if (!any && !has_wildcard(name, nn))
        errorf(rs, 404, "resource_not_found_exception", "Lifecycle policy not found: [%.*s]",
               clip(nn), name);
}

static void policy_delete(const char *name, size_t nn, struct eresp *rs)
{
    long at = rl_find(&policies, name, nn);
    if (at < 0) {
        errorf(rs, 404, "resource_not_found_exception", "Lifecycle policy not found: [%.*s]",
               clip(nn), name);
        return;
    }
    rl_del(&policies, (size_t)at);
    g_emu.stats.ilm_deleted++;
    ack(rs);
}

/* ---- data streams --------------------------------------------------------------------------- */

static struct res *stream_create(const char *name, size_t nn, const struct res *t, int automatic)
{
    struct res *d = rl_get(&streams, name, nn, NULL);
    d->tmpl = dupn(t->name, t->name_len);
    d->ilm = t->ilm ? dupn(t->ilm, strlen(t->ilm)) : NULL;
    time_t now = (time_t)(now_real_ns() / 1000000000u);
    struct tm tm;
    gmtime_r(&now, &tm);
    struct ebuf b = {0};
    ebuf_printf(&b, ".ds-%.*s-%04d.%02d.%02d-000001", (int)nn, name, tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday);
    d->backing = dupn(b.p, b.len);
    ebuf_free(&b);
    store_index(&g_emu.store, d->backing, strlen(d->backing), 1);
    g_emu.stats.data_streams_created++;
    if (automatic) g_emu.stats.data_streams_auto_created++;
    update_active();
    return d;
}

static void stream_put(const char *name, size_t nn, struct eresp *rs)
{
    char why[512];
    if (index_name_invalid(name, nn, why, sizeof why)) {
        /* Same rules as index names; ES words them "data_stream [x] must ...". */
        const char *rest = strstr(why, "], ");
        errorf(rs, 400, "illegal_argument_exception", "data_stream [%.*s] %s", clip(nn), name,
               rest ? rest + 3 : why);
        return;
    }
    if (nn >= 4 && memcmp(name, ".ds-", 4) == 0) {
        errorf(rs, 400, "illegal_argument_exception",
               "data_stream [%.*s] must not start with '.ds-'", clip(nn), name);
        return;
    }
    if (rl_find(&streams, name, nn) >= 0) {
        errorf(rs, 400, "resource_already_exists_exception", "data_stream [%.*s] already exists",
               clip(nn), name);
        return;
    }
    struct eindex *ix = store_index(&g_emu.store, name, nn, 0);
    if (ix) {
        errorf(rs, 400, "resource_already_exists_exception", "index [%.*s/%s] already exists",
               clip(nn), name, ix->uuid);
        return;
    }
    const struct res *t = best_template(name, nn);
    if (!t) {
        errorf(rs, 400, "illegal_argument_exception",
               "no matching index template found for data stream [%.*s]", clip(nn), name);
        return;
    }
    if (!t->ds) {
        errorf(rs, 400, "illegal_argument_exception",
               "matching index template [%s] for data stream [%.*s] has no data stream template",
               t->name, clip(nn), name);
        return;
    }
    stream_create(name, nn, t, 0);
    ack(rs);
}

static void stream_json(struct ebuf *b, const struct res *d)
{
    const struct eindex *ix = store_index(&g_emu.store, d->backing, strlen(d->backing), 1);
    EBUF_LIT(b, "{\"name\":");
    ebuf_json_str(b, d->name, d->name_len);
    EBUF_LIT(b, ",\"timestamp_field\":{\"name\":\"@timestamp\"},\"indices\":[{\"index_name\":");
    ebuf_json_str(b, d->backing, strlen(d->backing));
    EBUF_LIT(b, ",\"index_uuid\":");
    ebuf_json_str(b, ix->uuid, strlen(ix->uuid));
    if (d->ilm) {
        EBUF_LIT(b, ",\"prefer_ilm\":true,\"ilm_policy\":");
        ebuf_json_str(b, d->ilm, strlen(d->ilm));
        EBUF_LIT(b, ",\"managed_by\":\"Index Lifecycle Management\"");
    } else {
        EBUF_LIT(b, ",\"prefer_ilm\":true,\"managed_by\":\"Unmanaged\"");
    }
    EBUF_LIT(b, "}],\"generation\":1,\"status\":\"GREEN\",\"template\":");
    ebuf_json_str(b, d->tmpl, strlen(d->tmpl));
    if (d->ilm) {
        EBUF_LIT(b, ",\"ilm_policy\":");
        ebuf_json_str(b, d->ilm, strlen(d->ilm));
    }
    EBUF_LIT(b, ",\"next_generation_managed_by\":");
    if (d->ilm)
        EBUF_LIT(b, "\"Index Lifecycle Management\"");
    else
        EBUF_LIT(b, "\"Unmanaged\"");
    EBUF_LIT(b, ",\"prefer_ilm\":true,\"hidden\":false,\"system\":false,"
                "\"allow_custom_routing\":false,\"replicated\":false}");
}

static void stream_get(const char *name, size_t nn, struct eresp *rs)
{
    struct ebuf *b = &rs->body;
    EBUF_LIT(b, "{\"data_streams\":[");
    int any = 0;
    for (size_t i = 0; i < streams.n; i++) {
        const struct res *d = streams.v[i];
        if (!name_matches(name, nn, d->name, d->name_len)) continue;
        if (any++) ebuf_addc(b, ',');
        stream_json(b, d);
    }
    EBUF_LIT(b, "]}");
    rs->status = 200;
    if (!any && !has_wildcard(name, nn))
        errorf(rs, 404, "index_not_found_exception", "no such index [%.*s]", clip(nn), name);
}

static void stream_delete(const char *name, size_t nn, struct eresp *rs)
{
    int any = 0;
    for (size_t i = streams.n; i-- > 0;) {
        struct res *d = streams.v[i];
        if (!name_matches(name, nn, d->name, d->name_len)) continue;
        struct store *st = &g_emu.store;
        for (size_t j = 0; j < st->n; j++) {
            if (strcmp(st->idx[j]->name, d->backing) == 0) {
                store_drop(st, j);
                break;
            }
        }
        rl_del(&streams, i);
        g_emu.stats.data_streams_deleted++;
        any = 1;
    }
    update_active();
    if (!any && !has_wildcard(name, nn)) {
        errorf(rs, 404, "index_not_found_exception", "no such index [%.*s]", clip(nn), name);
        return;
    }
    ack(rs);
}

const char *res_stream_backing(const char *name, size_t n)
{
    if (!g_emu.ds_active) return NULL;
    long at = rl_find(&streams, name, n);
    return at < 0 ? NULL : streams.v[at]->backing;
}

const char *res_bulk_stream(const char *name, size_t n, int may_create)
{
    long at = rl_find(&streams, name, n);
    if (at >= 0) return streams.v[at]->backing;
    if (!may_create || (n >= 4 && memcmp(name, ".ds-", 4) == 0)) return NULL;
    const struct res *t = best_template(name, n);
    if (!t || !t->ds) return NULL;
    return stream_create(name, n, t, 1)->backing;
}

int res_select(const char *expr, size_t n, unsigned char *sel, const char **missing, size_t *mn)
{
    struct store *st = &g_emu.store;
    if (streams.n == 0 || n == 0 || key_is(expr, n, "_all"))
        return store_select(st, expr, n, sel, missing, mn);
    memset(sel, 0, st->n);
    unsigned char *tmp = malloc(st->n + 1);
    if (!tmp) abort();
    const char *p = expr, *end = expr + n;
    int r = 0;
    while (p <= end && r == 0) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        size_t len = (size_t)(e - p);
        int wild = memchr(p, '*', len) != NULL, hit = 0;
        for (size_t i = 0; len && i < streams.n; i++) {
            const struct res *d = streams.v[i];
            if (wild ? !glob_match(p, len, d->name, d->name_len)
                     : !(d->name_len == len && memcmp(d->name, p, len) == 0))
                continue;
            hit = 1;
            for (size_t j = 0; j < st->n; j++)
                if (strcmp(st->idx[j]->name, d->backing) == 0) sel[j] = 1;
        }
        if (len && (wild || !hit)) {
            r = store_select(st, p, len, tmp, missing, mn);
            for (size_t j = 0; r == 0 && j < st->n; j++)
                sel[j] |= tmp[j];
        }
        if (!comma) break;
        p = comma + 1;
    }
    free(tmp);
    return r;
}

/* ---- ingest pipelines ----------------------------------------------------------------------- */

static void pipeline_put(const struct ereq *rq, const char *id, size_t idn, struct eresp *rs)
{
    if (body_object(rq, rs) < 0) return;
    const char *v;
    size_t vn;
    if (json_get(rq->body, rq->body_len, "processors", &v, &vn) != 1) {
        es_error(rs, 400, "parse_exception", "[processors] required property is missing");
        return;
    }
    if (*v != '[') {
        errorf(rs, 400, "parse_exception", "[processors] property isn't a list, but of type [%s]",
               *v == '"'   ? "java.lang.String"
               : *v == '{' ? "java.util.HashMap"
                           : "java.lang.Integer");
        return;
    }
    struct res *p = rl_get(&pipelines, id, idn, NULL);
    p->body.len = 0;
    ebuf_add(&p->body, rq->body, rq->body_len);
    g_emu.stats.pipelines_put++;
    ack(rs);
}

static void pipeline_get(const char *id, size_t idn, struct eresp *rs)
{
    struct ebuf *b = &rs->body;
    ebuf_addc(b, '{');
    int any = 0;
    for (size_t i = 0; i < pipelines.n; i++) {
        const struct res *p = pipelines.v[i];
        if (!name_matches(id, idn, p->name, p->name_len)) continue;
        if (any++) ebuf_addc(b, ',');
        ebuf_json_str(b, p->name, p->name_len);
        ebuf_addc(b, ':');
        ebuf_add(b, p->body.p, p->body.len);
    }
    ebuf_addc(b, '}');
    /* Elasticsearch answers a missing pipeline with 404 and an empty object. */
    rs->status = any || has_wildcard(id, idn) ? 200 : 404;
}

static void pipeline_delete(const char *id, size_t idn, struct eresp *rs)
{
    long at = rl_find(&pipelines, id, idn);
    if (at < 0) {
        errorf(rs, 404, "resource_not_found_exception", "pipeline [%.*s] is missing", clip(idn),
               id);
        return;
    }
    rl_del(&pipelines, (size_t)at);
    g_emu.stats.pipelines_deleted++;
    ack(rs);
}

int res_pipeline_exists(const char *id, size_t n)
{
    return rl_find(&pipelines, id, n) >= 0;
}

void res_pipeline_doc(const char *id, size_t n)
{
    rl_get(&pdocs, id, n, NULL)->n++;
}

/* ---- routing -------------------------------------------------------------------------------- */

static int seg_is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

int res_route(const struct ereq *rq, const char *const *seg, const size_t *len, int ns,
              struct eresp *rs)
{
    int m = rq->method, get = m == M_GET, head = m == M_HEAD, put = m == M_PUT, post = m == M_POST,
        del = m == M_DELETE;
    int fam;
    const char *name = "";
    size_t nn = 0;
    if (seg_is(seg[0], len[0], "_index_template") && ns <= 2)
        fam = F_TEMPLATE;
    else if (seg_is(seg[0], len[0], "_ilm") && ns >= 2 && ns <= 3 &&
             seg_is(seg[1], len[1], "policy"))
        fam = F_ILM;
    else if (seg_is(seg[0], len[0], "_data_stream") && ns <= 2)
        fam = F_DATA_STREAM;
    else if (seg_is(seg[0], len[0], "_ingest") && ns >= 2 && ns <= 3 &&
             seg_is(seg[1], len[1], "pipeline"))
        fam = F_PIPELINE;
    else
        return 0;
    int named = ns == (fam == F_ILM || fam == F_PIPELINE ? 3 : 2);
    if (named) {
        name = seg[ns - 1];
        nn = len[ns - 1];
    }
    g_emu.stats.resource_requests++;

    const char *allowed;
    switch (fam) {
    case F_TEMPLATE:
        allowed = named ? "GET, HEAD, PUT, POST, DELETE" : "GET";
        if (!(get || (named && (head || put || post || del)))) goto wrong;
        if (injected(fam, rq, rs)) return 1;
        if (get || head)
            template_get(rq, name, nn, rs);
        else if (del)
            template_delete(name, nn, rs);
        else
            template_put(rq, name, nn, rs);
        return 1;
    case F_ILM:
        allowed = named ? "GET, PUT, DELETE" : "GET";
        if (!(get || (named && (put || del)))) goto wrong;
        if (injected(fam, rq, rs)) return 1;
        if (get)
            policy_get(name, nn, rs);
        else if (del)
            policy_delete(name, nn, rs);
        else
            policy_put(rq, name, nn, rs);
        return 1;
    case F_DATA_STREAM:
        allowed = named ? "GET, PUT, DELETE" : "GET";
        if (!(get || (named && (put || del)))) goto wrong;
        if (injected(fam, rq, rs)) return 1;
        if (get)
            stream_get(name, nn, rs);
        else if (del)
            stream_delete(name, nn, rs);
        else
            stream_put(name, nn, rs);
        return 1;
    default:
        allowed = named ? "GET, PUT, DELETE" : "GET";
        if (!(get || (named && (put || del)))) goto wrong;
        if (injected(fam, rq, rs)) return 1;
        if (get)
            pipeline_get(name, nn, rs);
        else if (del)
            pipeline_delete(name, nn, rs);
        else
            pipeline_put(rq, name, nn, rs);
        return 1;
    }
wrong:
    wrong_method(rq, allowed, rs);
    return 1;
}

/* ---- control port --------------------------------------------------------------------------- */

void res_stats(struct ebuf *b)
{
    const struct stats *s = &g_emu.stats;
    ebuf_printf(
        b,
        "\"resource_requests\":%llu,\"injected_resource_errors\":%llu,"
        "\"templates_put\":%llu,\"templates_deleted\":%llu,\"ilm_put\":%llu,"
        "\"ilm_deleted\":%llu,\"data_streams_created\":%llu,"
        "\"data_streams_auto_created\":%llu,\"data_streams_deleted\":%llu,"
        "\"pipelines_put\":%llu,\"pipelines_deleted\":%llu,"
        "\"data_stream_op_type_errors\":%llu,\"data_stream_timestamp_errors\":%llu,"
        "\"pipeline_missing_errors\":%llu,\"templates\":%zu,\"ilm_policies\":%zu,"
        "\"data_streams\":%zu,\"pipelines\":%zu,\"pipeline_docs\":{",
        (unsigned long long)s->resource_requests, (unsigned long long)s->injected_resource_errors,
        (unsigned long long)s->templates_put, (unsigned long long)s->templates_deleted,
        (unsigned long long)s->ilm_put, (unsigned long long)s->ilm_deleted,
        (unsigned long long)s->data_streams_created,
        (unsigned long long)s->data_streams_auto_created,
        (unsigned long long)s->data_streams_deleted, (unsigned long long)s->pipelines_put,
        (unsigned long long)s->pipelines_deleted, (unsigned long long)s->data_stream_op_type_errors,
        (unsigned long long)s->data_stream_timestamp_errors,
        (unsigned long long)s->pipeline_missing_errors, templates.n, policies.n, streams.n,
        pipelines.n);
    for (size_t i = 0; i < pdocs.n; i++) {
        if (i) ebuf_addc(b, ',');
        ebuf_json_str(b, pdocs.v[i]->name, pdocs.v[i]->name_len);
        ebuf_addc(b, ':');
        ebuf_u64(b, pdocs.v[i]->n);
    }
    ebuf_addc(b, '}');
}

void res_dump(struct eresp *rs)
{
    struct ebuf *b = &rs->body;
    rs->status = 200;
    EBUF_LIT(b, "{\"index_templates\":{");
    for (size_t i = 0; i < templates.n; i++) {
        const struct res *t = templates.v[i];
        if (i) ebuf_addc(b, ',');
        ebuf_json_str(b, t->name, t->name_len);
        ebuf_addc(b, ':');
        ebuf_add(b, t->body.p, t->body.len);
    }
    EBUF_LIT(b, "},\"ilm_policies\":{");
    for (size_t i = 0; i < policies.n; i++) {
        const struct res *p = policies.v[i];
        if (i) ebuf_addc(b, ',');
        ebuf_json_str(b, p->name, p->name_len);
        EBUF_LIT(b, ":{\"version\":");
        ebuf_i64(b, p->version);
        EBUF_LIT(b, ",\"policy\":");
        ebuf_add(b, p->body.p, p->body.len);
        ebuf_addc(b, '}');
    }
    EBUF_LIT(b, "},\"data_streams\":{");
    for (size_t i = 0; i < streams.n; i++) {
        const struct res *d = streams.v[i];
        const struct eindex *ix = store_index(&g_emu.store, d->backing, strlen(d->backing), 0);
        if (i) ebuf_addc(b, ',');
        ebuf_json_str(b, d->name, d->name_len);
        EBUF_LIT(b, ":{\"template\":");
        str_or_null(b, d->tmpl);
        EBUF_LIT(b, ",\"ilm_policy\":");
        str_or_null(b, d->ilm);
        EBUF_LIT(b, ",\"backing_indices\":[");
        ebuf_json_str(b, d->backing, strlen(d->backing));
        EBUF_LIT(b, "],\"docs\":");
        ebuf_u64(b, ix ? ix->count : 0);
        ebuf_addc(b, '}');
    }
    EBUF_LIT(b, "},\"pipelines\":{");
    for (size_t i = 0; i < pipelines.n; i++) {
        const struct res *p = pipelines.v[i];
        if (i) ebuf_addc(b, ',');
        ebuf_json_str(b, p->name, p->name_len);
        ebuf_addc(b, ':');
        ebuf_add(b, p->body.p, p->body.len);
    }
    EBUF_LIT(b, "}}");
}
