/* Field edits, see edits.h. */
#include "core/edits.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"
#include "core/pipeline.h"

/* A buffer grown for a huge record is given back afterwards, so it does not keep the budget
 * full; ordinary records reuse it. */
#define KEEP_BYTES (1u << 20)

struct growbuf {
    char *p;
    size_t cap;
};

struct sl_edits {
    const struct sl_edit_cfg *cfg;
    struct sl_jedit *plan;
    struct sl_budget *budget;
    size_t n_vals;
    struct sl_jval *vals;
    size_t *val_off; /* offset of each value in vbuf (vbuf may move while rendering) */
    struct growbuf out, vbuf;
};

struct sl_jedit *sl_edits_plan(const struct sl_edit_cfg *cfg, bool *empty, char *why, size_t whylen)
{
    *empty =
        !cfg->n_remove_keys && !cfg->n_rename_keys && !cfg->n_add_fields && !cfg->include_tag_key;
    if (*empty) return NULL;
    struct sl_jedit *e = sl_jedit_new();
    if (!e) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < cfg->n_remove_keys; i++)
        rc = sl_jedit_remove(e, cfg->remove_keys[i], why, whylen);
    for (size_t i = 0; rc == 0 && i < cfg->n_rename_keys; i++)
        rc = sl_jedit_rename(e, cfg->rename_keys[i].key, cfg->rename_keys[i].value, why, whylen);
    for (size_t i = 0; rc == 0 && i < cfg->n_add_fields; i++)
        rc = sl_jedit_set(e, cfg->add_fields[i].key, (unsigned)i, why, whylen);
    if (rc == 0 && cfg->include_tag_key)
        rc = sl_jedit_set(e, cfg->tag_key, (unsigned)cfg->n_add_fields, why, whylen);
    if (rc != 0) {
        sl_jedit_free(e);
        return NULL;
    }
    return e;
}

struct sl_edits *sl_edits_new(const struct sl_edit_cfg *cfg, struct sl_budget *budget, char *err,
                              size_t errlen)
{
    bool empty;
    char why[256];
    struct sl_jedit *plan = sl_edits_plan(cfg, &empty, why, sizeof why);
    if (empty) return NULL;
    if (!plan) {
        snprintf(err, errlen, "field edits: %s", why);
        return NULL;
    }
    struct sl_edits *e = calloc(1, sizeof *e);
    size_t n = cfg->n_add_fields + 1;
    if (e) {
        e->vals = calloc(n, sizeof *e->vals);
        e->val_off = calloc(n, sizeof *e->val_off);
    }
    if (!e || !e->vals || !e->val_off) {
        if (e) {
            free(e->vals);
            free(e->val_off);
        }
        free(e);
        sl_jedit_free(plan);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->cfg = cfg;
    e->plan = plan;
    e->budget = budget;
    e->n_vals = n;
    return e;
}

static void buf_drop(struct sl_edits *e, struct growbuf *b)
{
    sl_budget_release(e->budget, b->cap);
    free(b->p);
    b->p = NULL;
    b->cap = 0;
}

void sl_edits_free(struct sl_edits *e)
{
    if (!e) return;
    buf_drop(e, &e->out);
    buf_drop(e, &e->vbuf);
    free(e->vals);
    free(e->val_off);
    sl_jedit_free(e->plan);
    free(e);
}

static char *buf_room(struct sl_edits *e, struct growbuf *b, size_t need)
{
    if (need > b->cap) {
        size_t ncap = need < 4096 ? 4096 : need;
        char *n = realloc(b->p, ncap);
        if (!n) abort(); /* as everywhere else on the record path: losing it is not an option */
        sl_budget_charge(e->budget, ncap - b->cap);
        b->p = n;
        b->cap = ncap;
    }
    return b->p;
}

/* Appends the value of template t for ev to vbuf at *len: a JSON string, or a bare number when
 * the template is exactly ${partition} or ${offset} (null where the source has none). */
static void render(struct sl_edits *e, const char *t, const struct sl_event *ev, size_t *len)
{
    char num[24];
    bool kafka = ev->topic != NULL;
    if (strcmp(t, "${partition}") == 0 || strcmp(t, "${offset}") == 0) {
        int n = !kafka        ? snprintf(num, sizeof num, "null")
                : t[2] == 'p' ? snprintf(num, sizeof num, "%" PRId32, ev->partition)
                              : snprintf(num, sizeof num, "%" PRId64, ev->offset);
        memcpy(buf_room(e, &e->vbuf, *len + (size_t)n) + *len, num, (size_t)n);
        *len += (size_t)n;
        return;
    }
    /* worst case: every byte escaped to 6, each placeholder the longest it can be, quotes */
    size_t need = 2 + 6 * strlen(t);
    for (const char *s = strstr(t, "${"); s; s = strstr(s + 2, "${"))
        need += 6 * (ev->topic_len + ev->tag_len) + 24;
    char *o = buf_room(e, &e->vbuf, *len + need) + *len;
    size_t w = 0;
    o[w++] = '"';
    for (const char *s = t; *s;) {
        const char *ph = strstr(s, "${");
        size_t lit = ph ? (size_t)(ph - s) : strlen(s);
        w += sl_json_escape(s, lit, o + w);
        if (!ph) break;
        const char *end = strchr(ph, '}');
        size_t nl = (size_t)(end - ph - 2);
        const char *name = ph + 2;
        if (nl == 5 && strncmp(name, "topic", 5) == 0) {
            if (kafka) w += sl_json_escape(ev->topic, ev->topic_len, o + w);
        } else if (nl == 3 && strncmp(name, "tag", 3) == 0) {
            w += sl_json_escape(ev->tag, ev->tag_len, o + w);
        } else if (nl == 9 && strncmp(name, "partition", 9) == 0) {
            if (kafka) w += (size_t)sprintf(o + w, "%" PRId32, ev->partition);
        } else if (nl == 6 && strncmp(name, "offset", 6) == 0) {
            if (kafka) w += (size_t)sprintf(o + w, "%" PRId64, ev->offset);
        }
        s = end + 1;
    }
    o[w++] = '"';
    *len += w;
}

/* Whether s is a scan of the record for exactly the pipeline's paths. */
static bool carries(const struct sl_pipeline *p, const struct sl_json_scan *s)
{
    if (!s || s->n_paths != p->n_paths) return false;
    for (size_t i = 0; i < p->n_paths; i++)
        if (s->paths[i] != p->paths[i]) return false;
    return true;
}

void sl_edits_apply(struct sl_edits *e, const struct sl_pipeline *p, struct sl_event *ev,
                    struct sl_json_scan *scan)
{
    const struct sl_edit_cfg *cfg = e->cfg;
    size_t vlen = 0;
    for (size_t i = 0; i < cfg->n_add_fields; i++) {
        e->val_off[i] = vlen;
        render(e, cfg->add_fields[i].value, ev, &vlen);
    }
    if (cfg->include_tag_key) {
        size_t i = cfg->n_add_fields;
        e->val_off[i] = vlen;
        char *o = buf_room(e, &e->vbuf, vlen + 2 + 6 * ev->tag_len) + vlen;
        size_t w = 0;
        o[w++] = '"';
        w += sl_json_escape(ev->tag, ev->tag_len, o + w);
        o[w++] = '"';
        vlen += w;
    }
    size_t nv = cfg->n_add_fields + (cfg->include_tag_key ? 1 : 0);
    for (size_t i = 0; i < nv; i++) {
        size_t end = i + 1 < nv ? e->val_off[i + 1] : vlen;
        e->vals[i].p = e->vbuf.p + e->val_off[i];
        e->vals[i].n = end - e->val_off[i];
    }
    size_t bound = sl_jedit_bound(e->plan, ev->payload_len, e->vals, nv);
    char *out = buf_room(e, &e->out, bound);
    unsigned skipped = 0;
    size_t n =
        sl_jedit_apply(e->plan, ev->payload, ev->payload_len, e->vals, nv, out, bound, &skipped);
    /* 0 only for an input that is not one JSON object; inputs hand over validated objects */
    if (n == 0) abort();
    ev->ack.ctr->edit_skipped += skipped;
    /* The input's scan carries over when the edit only appended members (add_fields of new
     * keys): the record is not scanned a second time. */
    if (!carries(p, ev->scan) ||
        !sl_jedit_carry_scan(e->plan, ev->payload, ev->payload_len, out, n, ev->scan, scan)) {
        memset(scan, 0, sizeof *scan);
        for (size_t i = 0; i < p->n_paths; i++)
            scan->paths[i] = p->paths[i];
        scan->n_paths = p->n_paths;
        if (sl_json_scan_object(out, n, scan) != 0) abort();
    }
    ev->payload = out;
    ev->payload_len = n;
    ev->scan = scan;
    if (e->vbuf.cap > KEEP_BYTES) buf_drop(e, &e->vbuf);
}

void sl_edits_done(struct sl_edits *e)
{
    if (e && e->out.cap > KEEP_BYTES) buf_drop(e, &e->out);
}
