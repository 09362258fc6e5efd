/* Index and cluster state that changes how a bulk item is answered, as a real cluster has it:
 *   PUT /{index}             creates an index, optionally with explicit mappings; fields mapped
 *                            as a number or boolean are then checked in every document, so a
 *                            string in a long field is a 400 (what a user meets most often);
 *   PUT /{index}/_settings   index.blocks.write / read_only (items 403 cluster_block_exception)
 *                            and read_only_allow_delete (429, what the disk flood stage sets);
 *   GET|PUT /_cluster/settings  action.auto_create_index (false, or +/- patterns): a write to a
 *                            missing index that may not be created is a 404 item.
 * Shapes, statuses and error types follow Elasticsearch 8; OpenSearch 2.19 answers the same
 * statuses (tests/integration/test_real_esemu.py compares them). Not emulated: dynamic mapping
 * (an index created by a write has no types), mappings from templates, fields under arrays of
 * objects, dotted field names, `dynamic: strict`. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esemu.h"
#include "json.h"

enum ftype {
    FT_LONG,
    FT_INTEGER,
    FT_SHORT,
    FT_BYTE,
    FT_UNSIGNED_LONG,
    FT_DOUBLE,
    FT_FLOAT,
    FT_HALF_FLOAT,
    FT_SCALED_FLOAT,
    FT_BOOLEAN,
    FT_COUNT
};

static const struct {
    const char *name;
    double lo, hi; /* numbers outside are refused; 0/0 = no range */
} ftypes[FT_COUNT] = {
    {"long", -9223372036854775808.0, 9223372036854775807.0},
    {"integer", -2147483648.0, 2147483647.0},
    {"short", -32768.0, 32767.0},
    {"byte", -128.0, 127.0},
    {"unsigned_long", 0.0, 18446744073709551615.0},
    {"double", 0, 0},
    {"float", 0, 0},
    {"half_float", 0, 0},
    {"scaled_float", 0, 0},
    {"boolean", 0, 0},
};

/* action.auto_create_index, persistent [0] and transient [1] (which wins); NULL = unset */
static char *auto_create[2];

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) abort();
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* ---- settings bodies ------------------------------------------------------------------------ */

/* Finds a setting by its dotted name in an object that may spell it flat ("a.b.c"), nested
 * ({"a":{"b":{"c":..}}}) or anything between, as Elasticsearch accepts. Returns 1 with the
 * value's span, 0 when absent. */
static int setting_get(const char *s, size_t n, const char *name, const char **v, size_t *vn)
{
    struct jcur c;
    jc_init(&c, s, n);
    jc_ws(&c);
    if (c.p >= c.end || *c.p != '{' || jc_obj_begin(&c) < 0) return 0;
    size_t nl = strlen(name);
    int first = 1;
    const char *k;
    size_t kn;
    int kesc;
    while (jc_obj_next(&c, &first, &k, &kn, &kesc) == 1) {
        const char *start = c.p;
        if (jc_value(&c) < 0) return 0;
        size_t sn = (size_t)(c.p - start);
        if (kn == nl && memcmp(k, name, kn) == 0) {
            *v = start;
            *vn = sn;
            return 1;
        }
        if (kn < nl && name[kn] == '.' && memcmp(k, name, kn) == 0 && *start == '{' &&
            setting_get(start, sn, name + kn + 1, v, vn))
            return 1;
    }
    return 0;
}

/* "true"/"false", as a JSON boolean or string; null counts as false (a reset). Returns 0/1, or
 * -1 for anything else. */
static int bool_value(const char *v, size_t vn)
{
    if ((vn == 4 && memcmp(v, "true", 4) == 0) || (vn == 6 && memcmp(v, "\"true\"", 6) == 0))
        return 1;
    if ((vn == 5 && memcmp(v, "false", 5) == 0) || (vn == 7 && memcmp(v, "\"false\"", 7) == 0) ||
        (vn == 4 && memcmp(v, "null", 4) == 0))
        return 0;
    return -1;
}

/* Reads a request body that must be one JSON object (or empty, when allowed). Returns 0, or -1
 * after writing the 400. */
static int body_object(const struct ereq *rq, int allow_empty, struct eresp *rs)
{
    if (rq->body_len == 0) {
        if (allow_empty) return 0;
        es_error(rs, 400, "parse_exception", "request body is required");
        return -1;
    }
    struct jerr je;
    if (json_validate(rq->body, rq->body_len, 0, &je) < 0) {
        char reason[300];
        snprintf(reason, sizeof reason, "[1:%zu] %s", je.off + 1, je.msg);
        es_error(rs, 400, "x_content_parse_exception", reason);
        return -1;
    }
    struct jcur c;
    jc_init(&c, rq->body, rq->body_len);
    jc_ws(&c);
    if (*c.p != '{') {
        es_error(rs, 400, "parse_exception", "request body must be a JSON object");
        return -1;
    }
    return 0;
}

/* Applies index.blocks.* from a settings object to ix (only the keys present). Returns 0, or -1
 * after writing the 400. */
static int apply_blocks(struct eindex *ix, const char *s, size_t n, struct eresp *rs)
{
    static const struct {
        const char *name;
        unsigned bit;
    } keys[] = {{"index.blocks.write", IXB_WRITE},
                {"index.blocks.read_only", IXB_READ_ONLY},
                {"index.blocks.read_only_allow_delete", IXB_READ_ONLY_ALLOW_DELETE}};
    unsigned set = ix->blocks;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v;
        size_t vn;
        if (!setting_get(s, n, keys[i].name, &v, &vn)) continue;
        int b = bool_value(v, vn);
        if (b < 0) {
            char reason[300];
            if (vn >= 2 && *v == '"') {
                v++;
                vn -= 2;
            }
            snprintf(reason, sizeof reason,
                     "Failed to parse value [%.*s] as only [true] or [false] are allowed.",
                     (int)(vn > 100 ? 100 : vn), v);
            es_error(rs, 400, "illegal_argument_exception", reason);
            return -1;
        }
        set = b ? set | keys[i].bit : set & ~keys[i].bit;
    }
    ix->blocks = set;
    return 0;
}

/* ---- PUT /{index} --------------------------------------------------------------------------- */

static void add_field(struct eindex *ix, const char *path, size_t pn, int type)
{
    struct efield *nf = realloc(ix->fields, (ix->n_fields + 1) * sizeof *nf);
    if (!nf) abort();
    ix->fields = nf;
    ix->fields[ix->n_fields].path = dupn(path, pn);
    ix->fields[ix->n_fields].type = type;
    ix->n_fields++;
}

/* Walks mappings.properties: object fields recurse with their dotted prefix; a field whose type
 * esemu checks is remembered, other types are accepted as they are. */
static int walk_properties(struct eindex *ix, const char *s, size_t n, struct ebuf *prefix,
                           struct eresp *rs)
{
    struct jcur c;
    jc_init(&c, s, n);
    jc_ws(&c);
    if (c.p >= c.end || *c.p != '{' || jc_obj_begin(&c) < 0) {
        es_error(rs, 400, "mapper_parsing_exception",
                 "Expected map for property [properties] on field [_doc]");
        return -1;
    }
    int first = 1;
    const char *k;
    size_t kn;
    int kesc;
    while (jc_obj_next(&c, &first, &k, &kn, &kesc) == 1) {
        const char *def = c.p;
        if (jc_value(&c) < 0) return -1;
        size_t dn = (size_t)(c.p - def);
        size_t keep = prefix->len;
        if (prefix->len) ebuf_addc(prefix, '.');
        ebuf_add(prefix, k, kn);
        const char *v;
        size_t vn;
        if (*def != '{') {
            char reason[400];
            snprintf(reason, sizeof reason, "Expected map for property [fields] on field [%.*s]",
                     (int)(prefix->len > 200 ? 200 : prefix->len), prefix->p);
            es_error(rs, 400, "mapper_parsing_exception", reason);
            return -1;
        }
        if (json_get(def, dn, "properties", &v, &vn) == 1) {
            if (walk_properties(ix, v, vn, prefix, rs) < 0) return -1;
        } else if (json_get(def, dn, "type", &v, &vn) == 1 && vn >= 2 && *v == '"') {
            for (int t = 0; t < FT_COUNT; t++)
                if (strlen(ftypes[t].name) == vn - 2 && memcmp(ftypes[t].name, v + 1, vn - 2) == 0)
                    add_field(ix, prefix->p, prefix->len, t);
        }
        prefix->len = keep;
    }
    return 0;
}

static void create_index(const struct ereq *rq, const char *name, size_t n, struct eresp *rs)
{
    char why[512];
    if (index_name_invalid(name, n, why, sizeof why)) {
        es_error(rs, 400, "invalid_index_name_exception", why);
        return;
    }
    struct eindex *ix = store_index(&g_emu.store, name, n, 0);
    if (ix || res_stream_backing(name, n)) {
        char reason[600];
        snprintf(reason, sizeof reason, "index [%.*s/%s] already exists", (int)n, name,
                 ix ? ix->uuid : "_na_");
        es_error(rs, 400, "resource_already_exists_exception", reason);
        return;
    }
    if (body_object(rq, 1, rs) < 0) return;
    struct eindex probe = {0}; /* filled first, so a refused body leaves no index behind */
    if (rq->body_len) {
        struct jcur c;
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
            size_t vn = (size_t)(c.p - v);
            int ok = 0;
            if (kn == 8 && memcmp(k, "mappings", 8) == 0) {
                const char *p;
                size_t pn;
                struct ebuf prefix = {0};
                ok = json_get(v, vn, "properties", &p, &pn) != 1 ||
                     walk_properties(&probe, p, pn, &prefix, rs) == 0;
                ebuf_free(&prefix);
                if (!ok) goto refused;
            } else if (kn == 8 && memcmp(k, "settings", 8) == 0) {
                if (*v == '{' && apply_blocks(&probe, v, vn, rs) < 0) goto refused;
                ok = 1;
            } else if (kn == 7 && memcmp(k, "aliases", 7) == 0) {
                ok = 1; /* accepted, not emulated */
            }
            if (!ok) {
                char reason[300];
                snprintf(reason, sizeof reason, "unknown key [%.*s] for create index",
                         (int)(kn > 200 ? 200 : kn), k);
                es_error(rs, 400, "parse_exception", reason);
                goto refused;
            }
        }
    }
    ix = store_index(&g_emu.store, name, n, 1);
    ix->fields = probe.fields;
    ix->n_fields = probe.n_fields;
    ix->blocks = probe.blocks;
    g_emu.stats.indices_created++;
    rs->status = 200;
    EBUF_LIT(&rs->body, "{\"acknowledged\":true,\"shards_acknowledged\":true,\"index\":");
    ebuf_json_str(&rs->body, name, n);
    ebuf_addc(&rs->body, '}');
    return;
refused:
    for (size_t i = 0; i < probe.n_fields; i++)
        free(probe.fields[i].path);
    free(probe.fields);
}

static void put_index_settings(const struct ereq *rq, const char *name, size_t n, struct eresp *rs)
{
    struct eindex *ix = store_index(&g_emu.store, name, n, 0);
    if (!ix) {
        char reason[300];
        snprintf(reason, sizeof reason, "no such index [%.*s]", (int)(n > 255 ? 255 : n), name);
        es_error(rs, 404, "index_not_found_exception", reason);
        return;
    }
    if (body_object(rq, 0, rs) < 0) return;
    const char *s = rq->body, *v;
    size_t sn = rq->body_len, vn;
    if (json_get(s, sn, "settings", &v, &vn) == 1 && *v == '{') {
        s = v;
        sn = vn;
    }
    if (apply_blocks(ix, s, sn, rs) < 0) return;
    rs->status = 200;
    EBUF_LIT(&rs->body, "{\"acknowledged\":true}");
}

/* ---- /_cluster/settings --------------------------------------------------------------------- */

static void settings_object(struct ebuf *b, int scope)
{
    if (!auto_create[scope]) {
        EBUF_LIT(b, "{}");
        return;
    }
    EBUF_LIT(b, "{\"action\":{\"auto_create_index\":");
    ebuf_json_str(b, auto_create[scope], strlen(auto_create[scope]));
    EBUF_LIT(b, "}}");
}

static void put_cluster_settings(const struct ereq *rq, struct eresp *rs)
{
    if (body_object(rq, 0, rs) < 0) return;
    static const char *const scope_name[2] = {"persistent", "transient"};
    char *next[2] = {auto_create[0], auto_create[1]};
    int touched[2] = {0, 0};
    for (int sc = 0; sc < 2; sc++) {
        const char *o, *v;
        size_t on, vn;
        if (json_get(rq->body, rq->body_len, scope_name[sc], &o, &on) != 1 || *o != '{') continue;
        if (!setting_get(o, on, "action.auto_create_index", &v, &vn)) continue;
        touched[sc] = 1;
        if (vn == 4 && memcmp(v, "null", 4) == 0) {
            next[sc] = NULL;
        } else if (bool_value(v, vn) >= 0) {
            next[sc] = dupn(bool_value(v, vn) ? "true" : "false", bool_value(v, vn) ? 4 : 5);
        } else if (*v == '"' && vn > 2) {
            struct ebuf txt = {0};
            json_unescape(v + 1, vn - 2, &txt);
            next[sc] = dupn(txt.p, txt.len);
            ebuf_free(&txt);
        } else {
            es_error(rs, 400, "illegal_argument_exception",
                     "illegal value for [action.auto_create_index]: expected true, false or a "
                     "comma-separated list of index patterns");
            for (int j = 0; j < sc; j++)
                if (touched[j] && next[j] != auto_create[j]) free(next[j]);
            return;
        }
    }
    struct ebuf *b = &rs->body;
    rs->status = 200;
    EBUF_LIT(b, "{\"acknowledged\":true");
    for (int sc = 0; sc < 2; sc++) {
        if (touched[sc] && next[sc] != auto_create[sc]) {
            free(auto_create[sc]);
            auto_create[sc] = next[sc];
        }
        ebuf_printf(b, ",\"%s\":", scope_name[sc]);
        if (touched[sc] && auto_create[sc])
            settings_object(b, sc);
        else
            EBUF_LIT(b, "{}");
    }
    ebuf_addc(b, '}');
}

int idx_route(const struct ereq *rq, const char *const *seg, const size_t *len, int ns,
              struct eresp *rs)
{
#define SEG(i, lit) (len[i] == sizeof(lit) - 1 && memcmp(seg[i], lit, len[i]) == 0)
    if (ns == 2 && SEG(0, "_cluster") && SEG(1, "settings")) {
        if (rq->method == M_GET) {
            rs->status = 200;
            EBUF_LIT(&rs->body, "{\"persistent\":");
            settings_object(&rs->body, 0);
            EBUF_LIT(&rs->body, ",\"transient\":");
            settings_object(&rs->body, 1);
            ebuf_addc(&rs->body, '}');
        } else if (rq->method == M_PUT) {
            put_cluster_settings(rq, rs);
        } else {
            wrong_method(rq, "GET, PUT", rs);
        }
        return 1;
    }
    if (ns == 1 && seg[0][0] != '_' && rq->method == M_PUT) {
        create_index(rq, seg[0], len[0], rs);
        return 1;
    }
    if (ns == 2 && seg[0][0] != '_' && SEG(1, "_settings")) {
        if (rq->method == M_PUT)
            put_index_settings(rq, seg[0], len[0], rs);
        else
            wrong_method(rq, "PUT", rs);
        return 1;
    }
#undef SEG
    return 0;
}

/* ---- bulk items ----------------------------------------------------------------------------- */

int idx_may_auto_create(const char *name, size_t n)
{
    const char *v = auto_create[1] ? auto_create[1] : auto_create[0];
    if (!v || strcmp(v, "true") == 0) return 1;
    if (strcmp(v, "false") == 0) return 0;
    /* patterns, the first that matches decides; none matching means no */
    for (const char *p = v; *p;) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        while (p < e && *p == ' ')
            p++;
        size_t pn = (size_t)(e - p);
        while (pn && p[pn - 1] == ' ')
            pn--;
        int neg = pn && *p == '-';
        if (pn && (*p == '-' || *p == '+')) {
            p++;
            pn--;
        }
        if (pn && glob_match(p, pn, name, n)) return !neg;
        p = comma ? comma + 1 : e;
    }
    return 0;
}

const char *idx_block(const struct eindex *ix, int is_delete, int *status, struct ebuf *reason)
{
    const char *what = NULL;
    if (ix->blocks & IXB_READ_ONLY) {
        *status = 403;
        what = "FORBIDDEN/5/index read-only (api)";
    } else if (ix->blocks & IXB_WRITE) {
        *status = 403;
        what = "FORBIDDEN/8/index write (api)";
    } else if ((ix->blocks & IXB_READ_ONLY_ALLOW_DELETE) && !is_delete) {
        *status = 429;
        what = "TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has "
               "read-only-allow-delete block";
    }
    if (!what) return NULL;
    ebuf_printf(reason, "index [%.*s] blocked by: [%s];", (int)ix->name_len, ix->name, what);
    g_emu.stats.block_item_errors++;
    return "cluster_block_exception";
}

/* Whether one scalar value fits the field type (with Elasticsearch's default coercion: numbers
 * in strings, fractions truncated into integer types, "" as null). */
static int value_fits(int type, const char *v, size_t vn)
{
    if (vn == 4 && memcmp(v, "null", 4) == 0) return 1;
    if (type == FT_BOOLEAN) return bool_value(v, vn) >= 0 || (vn == 2 && memcmp(v, "\"\"", 2) == 0);
    if (*v == '{' || *v == 't' || *v == 'f') return 0;
    char num[128];
    if (*v == '"') {
        struct ebuf txt = {0};
        json_unescape(v + 1, vn - 2, &txt);
        int empty = txt.len == 0, ok = txt.len > 0 && txt.len < sizeof num;
        if (ok) {
            memcpy(num, txt.p, txt.len);
            num[txt.len] = 0;
            /* Java's number parsing takes neither hex nor words such as "inf" */
            for (size_t i = 0; i < txt.len && ok; i++)
                ok = strchr("0123456789+-.eE", num[i]) != NULL;
        }
        ebuf_free(&txt);
        if (empty) return 1;
        if (!ok) return 0;
    } else {
        if (vn >= sizeof num) return 0;
        memcpy(num, v, vn);
        num[vn] = 0;
    }
    char *end;
    double d = strtod(num, &end);
    if (*end || end == num || !isfinite(d)) return 0;
    if (ftypes[type].lo == ftypes[type].hi) return 1;
    if (!strpbrk(num, ".eE")) {
        /* a whole number is compared exactly: doubles cannot tell 2^63 - 1 from 2^63 */
        errno = 0;
        if (type == FT_UNSIGNED_LONG) {
            if (num[0] == '-') return 0;
            (void)strtoull(num, NULL, 10);
            return !errno;
        }
        long long x = strtoll(num, NULL, 10);
        return !errno && (double)x >= ftypes[type].lo && (double)x <= ftypes[type].hi;
    }
    return d >= ftypes[type].lo && d <= ftypes[type].hi;
}

/* Finds the first value of a field (an array is checked element by element) that does not fit;
 * returns 1 with its span, 0 when all fit. */
static int misfit(int type, const char *v, size_t vn, const char **bad, size_t *badn)
{
    if (*v != '[') {
        *bad = v;
        *badn = vn;
        return !value_fits(type, v, vn);
    }
    struct jcur c;
    jc_init(&c, v + 1, vn - 1);
    for (;;) {
        jc_ws(&c);
        if (c.p >= c.end || *c.p == ']') return 0;
        const char *e = c.p;
        if (jc_value(&c) < 0) return 0;
        if (misfit(type, e, (size_t)(c.p - e), bad, badn)) return 1;
        jc_ws(&c);
        if (c.p < c.end && *c.p == ',') c.p++;
    }
}

const char *idx_check_source(const struct eindex *ix, const char *src, size_t n, const char *id,
                             size_t idl, struct ebuf *reason)
{
    for (size_t i = 0; i < ix->n_fields; i++) {
        const struct efield *f = &ix->fields[i];
        const char *fv, *v;
        size_t fvn, vn;
        if (json_get(src, n, f->path, &fv, &fvn) != 1 || !misfit(f->type, fv, fvn, &v, &vn))
            continue;
        size_t pre = vn >= 2 && *v == '"' ? vn - 2 : vn;
        const char *pv = vn >= 2 && *v == '"' ? v + 1 : v;
        ebuf_printf(reason,
                    "[1:%zu] failed to parse field [%s] of type [%s] in document with id '%.*s'. "
                    "Preview of field's value: '%.*s'",
                    (size_t)(v - src) + 1, f->path, ftypes[f->type].name,
                    (int)(idl > 512 ? 512 : idl), id, (int)(pre > 300 ? 300 : pre), pv);
        g_emu.stats.mapping_item_errors++;
        return "document_parsing_exception";
    }
    return NULL;
}

void idx_stats(struct ebuf *b)
{
    ebuf_printf(b,
                "\"indices_created\":%llu,\"mapping_item_errors\":%llu,\"block_item_errors\":%llu,"
                "\"auto_create_refusals\":%llu",
                (unsigned long long)g_emu.stats.indices_created,
                (unsigned long long)g_emu.stats.mapping_item_errors,
                (unsigned long long)g_emu.stats.block_item_errors,
                (unsigned long long)g_emu.stats.auto_create_refusals);
}

void idx_reset(void)
{
    for (int i = 0; i < 2; i++) {
        free(auto_create[i]);
        auto_create[i] = NULL;
    }
}
