/* Field edits on a JSON object; semantics in json_edit.h.
 *
 * Overview. The plan is a tree of path segments (node 0 is the record itself). A node is either an
 * edit (remove, rename source, set, rename target), which has no children, or an intermediate
 * object, which has at least one edit below it; build-time checks keep it that way, which is what
 * makes the edits disjoint.
 *
 * Applying walks the members of the record's object. Each member's key is compared with the
 * children of the current plan node; a member that matches none is part of a run of untouched
 * members, copied with one memcpy when the run ends. Its value is skipped by skip_value, which only
 * tracks strings and bracket depth (the input is already validated). A member matching an
 * intermediate node whose value is an object is edited by a recursive call: recursion follows the
 * plan, never the input, so its depth is at most SL_JEDIT_MAX_DEPTH.
 *
 * Each object is edited in one of two modes:
 *   first - the first occurrence of this object along the path: sets write here (in place, or
 *           appended at the end), missing intermediates are created here;
 *   dup   - a later duplicate of an intermediate key: only deletions apply (removes, rename
 *           sources, and later duplicates of set members).
 * A bitmap per call records which nodes were already handled in first mode.
 *
 * Renames are resolved before the pass: the value of each source (document order, through every
 * duplicate) and whether its target's intermediates are objects.
 */
#include "codec/json_edit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"

enum op { OP_NONE, OP_REMOVE, OP_RENAME_FROM, OP_SET, OP_RENAME_TO };

struct node {
    char *seg; /* unescaped segment, NUL-terminated */
    size_t seg_len;
    char *key; /* output form: "escaped": */
    size_t key_len;
    uint8_t parent, first_child, next_sibling, last_child; /* 0 = none (node 0 is the root) */
    uint8_t op;
    uint8_t depth;
    uint8_t plain; /* the segment is its own JSON escape: compare raw keys with it directly */
    unsigned arg;  /* slot of OP_SET, rename index of OP_RENAME_* */
};

struct rename {
    uint8_t from, to;
};

struct sl_jedit {
    struct node nodes[SL_JEDIT_MAX_NODES + 1];
    size_t n_nodes;
    struct rename renames[SL_JEDIT_MAX_RENAMES];
    size_t n_renames;
    size_t overhead; /* bytes the plan may add beyond the input and the values */
};

struct sl_jedit *sl_jedit_new(void)
{
    struct sl_jedit *e = calloc(1, sizeof(*e));
    if (e) e->n_nodes = 1;
    return e;
}

void sl_jedit_free(struct sl_jedit *e)
{
    if (!e) return;
    for (size_t k = 1; k < e->n_nodes; k++) {
        free(e->nodes[k].seg);
        free(e->nodes[k].key);
    }
    free(e);
}

/* ---- building ---- */

struct segs {
    const char *p[SL_JEDIT_MAX_DEPTH];
    size_t n[SL_JEDIT_MAX_DEPTH];
    size_t count;
};

static int reason(char *why, size_t whylen, const char *fmt, const char *a, const char *b)
{
    if (why && whylen) snprintf(why, whylen, fmt, a, b);
    return -1;
}

static int split_path(const char *path, struct segs *s, char *why, size_t whylen)
{
    if (!path || !*path) return reason(why, whylen, "empty path%s%s", "", "");
    s->count = 0;
    for (const char *p = path;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0) return reason(why, whylen, "path '%s' has an empty segment%s", path, "");
        if (n > SL_JEDIT_MAX_SEG)
            return reason(why, whylen, "segment longer than 255 bytes in path '%s'%s", path, "");
        if (s->count == SL_JEDIT_MAX_DEPTH)
            return reason(why, whylen, "path '%s' is deeper than 16 segments%s", path, "");
        s->p[s->count] = p;
        s->n[s->count] = n;
        s->count++;
        if (!dot) return 0;
        p = dot + 1;
    }
}

static size_t find_child(const struct sl_jedit *e, size_t parent, const char *seg, size_t n)
{
    for (size_t c = e->nodes[parent].first_child; c; c = e->nodes[c].next_sibling) {
        if (e->nodes[c].seg_len == n && memcmp(e->nodes[c].seg, seg, n) == 0) return c;
    }
    return 0;
}

/* Checks that path can become a new edit: no edit on a prefix of it, no node at it. Stores in
 * *missing how many nodes adding it creates. */
static int check_path(const struct sl_jedit *e, const char *path, const struct segs *s,
                      size_t *missing, char *why, size_t whylen)
{
    size_t at = 0;
    for (size_t k = 0; k < s->count; k++) {
        size_t c = find_child(e, at, s->p[k], s->n[k]);
        if (!c) {
            *missing = s->count - k;
            return 0;
        }
        if (e->nodes[c].op != OP_NONE && k + 1 < s->count) {
            if (why && whylen)
                snprintf(why, whylen, "path '%s' is inside another edit's path '%.*s'", path,
                         (int)(s->p[k] + s->n[k] - path), path);
            return -1;
        }
        at = c;
    }
    if (e->nodes[at].op != OP_NONE)
        return reason(why, whylen, "path '%s' is edited twice%s", path, "");
    return reason(why, whylen, "another edit's path is inside path '%s'%s", path, "");
}

/* Escaped output key "seg": for a segment; -1 if seg is not valid UTF-8 (escaping would change
 * it, so no record key could ever equal it). */
static int make_key(struct node *nd)
{
    size_t cap = 6 * nd->seg_len + 3;
    nd->key = malloc(cap);
    char *dec = malloc(nd->seg_len + 1);
    if (!nd->key || !dec) {
        free(dec);
        return -1;
    }
    nd->key[0] = '"';
    size_t n = sl_json_escape(nd->seg, nd->seg_len, nd->key + 1);
    nd->key[n + 1] = '"';
    ssize_t dn = sl_json_unescape(nd->key, n + 2, dec, nd->seg_len + 1);
    int same = dn == (ssize_t)nd->seg_len && memcmp(dec, nd->seg, nd->seg_len) == 0;
    free(dec);
    nd->key[n + 2] = ':';
    nd->key_len = n + 3;
    nd->plain = n == nd->seg_len;
    return same ? 0 : -1;
}

/* Removes the nodes from index keep on. Each is the last child of its parent, since a node is
 * always appended after the siblings that existed before it. */
static void truncate_nodes(struct sl_jedit *e, size_t keep)
{
    while (e->n_nodes > keep) {
        size_t c = --e->n_nodes;
        struct node *nd = &e->nodes[c];
        struct node *p = &e->nodes[nd->parent];
        if (p->first_child == c) {
            p->first_child = p->last_child = 0;
        } else {
            size_t q = p->first_child;
            while (e->nodes[q].next_sibling != c)
                q = e->nodes[q].next_sibling;
            e->nodes[q].next_sibling = 0;
            p->last_child = (uint8_t)q;
        }
        e->overhead -= nd->key_len + 3;
        free(nd->seg);
        free(nd->key);
        memset(nd, 0, sizeof(*nd));
    }
}

/* Adds the nodes of a checked path; returns the leaf, or 0 (plan unchanged) on failure. */
static size_t insert_path(struct sl_jedit *e, const struct segs *s, int op, unsigned arg, char *why,
                          size_t whylen)
{
    size_t at = 0, first_new = e->n_nodes;
    for (size_t k = 0; k < s->count; k++) {
        size_t c = find_child(e, at, s->p[k], s->n[k]);
        if (!c) {
            c = e->n_nodes;
            struct node *nd = &e->nodes[c];
            memset(nd, 0, sizeof(*nd));
            nd->seg = strndup(s->p[k], s->n[k]);
            nd->seg_len = s->n[k];
            if (!nd->seg || make_key(nd) < 0) {
                if (nd->seg)
                    reason(why, whylen, "path segment '%s' is not valid UTF-8%s", nd->seg, "");
                else
                    reason(why, whylen, "out of memory%s%s", "", "");
                free(nd->seg);
                free(nd->key);
                memset(nd, 0, sizeof(*nd));
                truncate_nodes(e, first_new);
                return 0;
            }
            e->n_nodes++;
            nd->parent = (uint8_t)at;
            nd->depth = (uint8_t)(k + 1);
            struct node *p = &e->nodes[at];
            if (p->last_child)
                e->nodes[p->last_child].next_sibling = (uint8_t)c;
            else
                p->first_child = (uint8_t)c;
            p->last_child = (uint8_t)c;
            /* key, braces and a comma, whether set in place, appended or created */
            e->overhead += nd->key_len + 3;
        }
        at = c;
    }
    e->nodes[at].op = (uint8_t)op;
    e->nodes[at].arg = arg;
    return at;
}

static int add_edit(struct sl_jedit *e, const char *path, int op, unsigned arg, char *why,
                    size_t whylen)
{
    struct segs s;
    size_t missing = 0;
    if (split_path(path, &s, why, whylen) < 0) return -1;
    if (check_path(e, path, &s, &missing, why, whylen) < 0) return -1;
    if (e->n_nodes + missing > SL_JEDIT_MAX_NODES + 1)
        return reason(why, whylen, "too many paths in one edit plan (at '%s')%s", path, "");
    return insert_path(e, &s, op, arg, why, whylen) ? 0 : -1;
}

int sl_jedit_remove(struct sl_jedit *e, const char *path, char *why, size_t whylen)
{
    return add_edit(e, path, OP_REMOVE, 0, why, whylen);
}

int sl_jedit_set(struct sl_jedit *e, const char *path, unsigned slot, char *why, size_t whylen)
{
    return add_edit(e, path, OP_SET, slot, why, whylen);
}

/* 1 if path a is b or a dotted prefix of b */
static int path_within(const char *a, const char *b)
{
    size_t n = strlen(a);
    return strncmp(a, b, n) == 0 && (b[n] == '\0' || b[n] == '.');
}

int sl_jedit_rename(struct sl_jedit *e, const char *from, const char *to, char *why, size_t whylen)
{
    struct segs sf, st;
    size_t mf = 0, mt = 0;
    if (split_path(from, &sf, why, whylen) < 0 || split_path(to, &st, why, whylen) < 0) return -1;
    if (strcmp(from, to) == 0) return reason(why, whylen, "rename of '%s' to itself%s", from, "");
    if (path_within(from, to))
        return reason(why, whylen, "rename target '%s' is inside its source '%s'", to, from);
    if (path_within(to, from))
        return reason(why, whylen, "rename source '%s' is inside its target '%s'", from, to);
    if (e->n_renames == SL_JEDIT_MAX_RENAMES)
        return reason(why, whylen, "too many renames in one edit plan (at '%s')%s", from, "");
    if (check_path(e, from, &sf, &mf, why, whylen) < 0 ||
        check_path(e, to, &st, &mt, why, whylen) < 0)
        return -1;
    /* from and to may share missing prefix nodes; counting them twice only errs on the safe side */
    if (e->n_nodes + mf + mt > SL_JEDIT_MAX_NODES + 1)
        return reason(why, whylen, "too many paths in one edit plan (at '%s')%s", from, "");
    unsigned r = (unsigned)e->n_renames;
    size_t snapshot = e->n_nodes;
    size_t nf = insert_path(e, &sf, OP_RENAME_FROM, r, why, whylen);
    if (!nf) return -1;
    size_t nt = insert_path(e, &st, OP_RENAME_TO, r, why, whylen);
    if (!nt) {
        truncate_nodes(e, snapshot); /* the source's leaf is new, so this drops it too */
        return -1;
    }
    e->renames[r].from = (uint8_t)nf;
    e->renames[r].to = (uint8_t)nt;
    e->n_renames++;
    return 0;
}

size_t sl_jedit_bound(const struct sl_jedit *e, size_t len, const struct sl_jval *vals,
                      size_t n_vals)
{
    /* Untouched bytes plus moved rename values never exceed len: sources are deleted. */
    size_t b = len + 2 + e->overhead;
    for (size_t k = 1; k < e->n_nodes; k++) {
        const struct node *nd = &e->nodes[k];
        if (nd->op == OP_SET && nd->arg < n_vals && vals[nd->arg].p) b += vals[nd->arg].n;
    }
    return b;
}

/* ---- skipping (the input is valid, so only strings and brackets matter) ---- */

/* Flags (bit 7 of each byte) the bytes of w that are '"' or '\\'. A sub-test can only misfire in
 * bytes above a true hit (borrows run upwards), so the lowest flag is exact. */
static inline uint64_t quote_or_backslash(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL;
    uint64_t q = w ^ (ones * '"');
    uint64_t b = w ^ (ones * '\\');
    q = (q - ones) & ~q;
    b = (b - ones) & ~b;
    return (q | b) & 0x8080808080808080ULL;
}

/* Index just past the string starting at in[i] == '"', or 0 if it does not end. Sets *esc if the
 * string has an escape. Plain runs are skipped eight bytes at a time. */
static size_t skip_string(const char *in, size_t len, size_t i, int *esc)
{
    size_t j = i + 1;
    for (;;) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (j + 8 <= len) {
            uint64_t w;
            memcpy(&w, in + j, 8);
            uint64_t m = quote_or_backslash(w);
            if (m) {
                j += (size_t)__builtin_ctzll(m) / 8;
                break;
            }
            j += 8;
        }
#endif
        if (j >= len) return 0;
        if (in[j] == '"') return j + 1;
        if (in[j] == '\\') {
            *esc = 1;
            j += 2; /* the escaped byte; \uXXXX's hex digits are plain */
        } else {
            j++;
        }
    }
}

/* Index just past the value starting at in[i], or 0 if the input ends first. Iterative. */
static size_t skip_value(const char *in, size_t len, size_t i)
{
    if (i >= len) return 0;
    char c = in[i];
    int esc;
    if (c == '"') return skip_string(in, len, i, &esc);
    if (c == '{' || c == '[') {
        size_t depth = 0;
        for (size_t j = i; j < len;) {
            c = in[j];
            if (c == '"') {
                int esc;
                j = skip_string(in, len, j, &esc);
                if (!j) return 0;
                continue;
            }
            if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0) return j + 1;
            }
            j++;
        }
        return 0;
    }
    size_t j = i;
    while (j < len && in[j] != ',' && in[j] != '}' && in[j] != ']' && in[j] != ' ' &&
           in[j] != '\t' && in[j] != '\n' && in[j] != '\r')
        j++;
    return j > i ? j : 0;
}

static size_t skip_ws(const char *in, size_t len, size_t i)
{
    while (i < len && (in[i] == ' ' || in[i] == '\t' || in[i] == '\n' || in[i] == '\r'))
        i++;
    return i;
}

struct member {
    size_t ks, ke; /* key token, quotes included */
    size_t vs, ve; /* value */
    int esc;       /* the key has an escape */
};

/* Reads the next member of the object whose '{' was before *i. Returns 1 with *m and *i past the
 * value, 0 at the end with *i past the '}', -1 on malformed input. */
static int next_member(const char *in, size_t len, size_t *i, struct member *m)
{
    size_t j = skip_ws(in, len, *i);
    if (j < len && in[j] == ',') j = skip_ws(in, len, j + 1);
    if (j >= len) return -1;
    if (in[j] == '}') {
        *i = j + 1;
        return 0;
    }
    if (in[j] != '"') return -1;
    m->ks = j;
    m->esc = 0;
    m->ke = skip_string(in, len, j, &m->esc);
    if (!m->ke) return -1;
    j = skip_ws(in, len, m->ke);
    if (j >= len || in[j] != ':') return -1;
    m->vs = skip_ws(in, len, j + 1);
    m->ve = skip_value(in, len, m->vs);
    if (!m->ve) return -1;
    *i = m->ve;
    return 1;
}

/* ---- applying ---- */

enum { REN_ABSENT, REN_ACTIVE, REN_SKIPPED };

struct ctx {
    const struct sl_jedit *e;
    const char *in;
    size_t len;
    const struct sl_jval *vals;
    size_t n_vals;
    struct sl_jval rv[SL_JEDIT_MAX_RENAMES];
    uint8_t ren[SL_JEDIT_MAX_RENAMES];
    uint64_t done[(SL_JEDIT_MAX_NODES + 64) / 64];
    char *out;
    size_t cap, n;
    int overflow;
    unsigned skipped;
};

static void put(struct ctx *c, const char *p, size_t n)
{
    if (n > c->cap - c->n) {
        c->overflow = 1;
        return;
    }
    memcpy(c->out + c->n, p, n);
    c->n += n;
}

static void put_ch(struct ctx *c, char ch)
{
    put(c, &ch, 1);
}

static int is_done(const struct ctx *c, size_t k)
{
    return (int)(c->done[k / 64] >> (k % 64) & 1);
}

static void mark_done(struct ctx *c, size_t k)
{
    c->done[k / 64] |= 1ULL << (k % 64);
}

/* The child of node `at` whose segment equals the key token in[ks..ke), or 0. */
static size_t match_key(const struct ctx *c, size_t at, const struct member *m)
{
    size_t ks = m->ks, ke = m->ke;
    const char *key = c->in + ks + 1;
    size_t klen = ke - ks - 2;
    const struct node *nodes = c->e->nodes;
    /* A raw key without escapes is its decoded form. One with escapes contains a '\\', which a
     * plain segment does not, so the raw compare cannot match it wrongly. */
    for (size_t k = nodes[at].first_child; k; k = nodes[k].next_sibling) {
        if (nodes[k].seg_len == klen && nodes[k].plain && memcmp(nodes[k].seg, key, klen) == 0)
            return k;
    }
    /* A key with escapes is compared in its decoded form (one longer than any segment cannot
     * match). */
    if (!m->esc) return 0;
    char dec[SL_JEDIT_MAX_SEG];
    ssize_t dn = sl_json_unescape(c->in + ks, ke - ks, dec, sizeof(dec));
    if (dn < 0) return 0;
    for (size_t k = nodes[at].first_child; k; k = nodes[k].next_sibling) {
        if (nodes[k].seg_len == (size_t)dn && memcmp(nodes[k].seg, dec, (size_t)dn) == 0) return k;
    }
    return 0;
}

/* The value a target node writes, or NULL if it has none for this record. */
static const struct sl_jval *target_value(const struct ctx *c, const struct node *nd)
{
    if (nd->op == OP_SET)
        return nd->arg < c->n_vals && c->vals[nd->arg].p ? &c->vals[nd->arg] : NULL;
    if (nd->op == OP_RENAME_TO) return c->ren[nd->arg] == REN_ACTIVE ? &c->rv[nd->arg] : NULL;
    return NULL;
}

/* Targets below node k (k included) that have a value for this record. Recursion over the plan. */
static unsigned count_targets(const struct ctx *c, size_t k)
{
    const struct node *nd = &c->e->nodes[k];
    if (nd->op != OP_NONE) return target_value(c, nd) != NULL;
    unsigned n = 0;
    for (size_t ch = nd->first_child; ch; ch = c->e->nodes[ch].next_sibling)
        n += count_targets(c, ch);
    return n;
}

/* Writes the object of intermediate node k from the plan alone (it is missing in the record);
 * every node written is marked done, so later duplicates in the record are treated as such. */
static void create_object(struct ctx *c, size_t k)
{
    int comma = 0;
    mark_done(c, k);
    put_ch(c, '{');
    for (size_t ch = c->e->nodes[k].first_child; ch; ch = c->e->nodes[ch].next_sibling) {
        const struct node *nd = &c->e->nodes[ch];
        const struct sl_jval *v = target_value(c, nd);
        if (!v && (nd->op != OP_NONE || !count_targets(c, ch))) continue;
        if (comma) put_ch(c, ',');
        comma = 1;
        put(c, nd->key, nd->key_len);
        if (v) {
            mark_done(c, ch);
            put(c, v->p, v->n);
        } else {
            create_object(c, ch);
        }
    }
    put_ch(c, '}');
}

struct run {
    size_t s, e;
    int open;
    int comma; /* a member was already written in this object */
};

static void flush(struct ctx *c, struct run *r)
{
    if (!r->open) return;
    if (r->comma) put_ch(c, ',');
    put(c, c->in + r->s, r->e - r->s);
    r->comma = 1;
    r->open = 0;
}

/* Starts an edited member: ends the pending run and writes the separating comma. */
static void begin_member(struct ctx *c, struct run *r)
{
    flush(c, r);
    if (r->comma) put_ch(c, ',');
    r->comma = 1;
}

/* Edits the object at in[i] == '{' against plan node `at`; stores the index past it in *end.
 * Recursion happens only for members matching an intermediate node: depth <= plan depth. */
static int edit_object(struct ctx *c, size_t at, size_t i, int first, size_t *end)
{
    const struct node *nodes = c->e->nodes;
    struct run r = {0, 0, 0, 0};
    struct member m;
    int rc;

    put_ch(c, '{');
    i++;
    while ((rc = next_member(c->in, c->len, &i, &m)) == 1) {
        size_t k = match_key(c, at, &m);
        const struct node *nd = &nodes[k];
        int keep = 0;
        if (!k) {
            keep = 1;
        } else if (nd->op == OP_REMOVE) {
            keep = 0;
        } else if (nd->op == OP_RENAME_FROM) {
            keep = c->ren[nd->arg] == REN_SKIPPED;
        } else if (nd->op == OP_SET || nd->op == OP_RENAME_TO) {
            const struct sl_jval *v = target_value(c, nd);
            if (v && first && !is_done(c, k)) {
                mark_done(c, k);
                begin_member(c, &r);
                put(c, nd->key, nd->key_len);
                put(c, v->p, v->n);
            } else {
                /* duplicates of a written member go; one under a blocked path stays */
                keep = !v || !is_done(c, k);
            }
        } else if (c->in[m.vs] == '{') {
            int sub_first = first && !is_done(c, k);
            if (sub_first) mark_done(c, k);
            begin_member(c, &r);
            put(c, c->in + m.ks, m.vs - m.ks); /* the key as written */
            size_t sub_end;
            if (edit_object(c, k, m.vs, sub_first, &sub_end) < 0) return -1;
        } else {
            /* An intermediate that is not an object: what would be written below it is skipped. */
            keep = 1;
            if (first && !is_done(c, k)) {
                mark_done(c, k);
                c->skipped += count_targets(c, k);
            }
        }
        if (keep) {
            if (!r.open) {
                r.open = 1;
                r.s = m.ks;
            }
            r.e = m.ve;
        } else {
            flush(c, &r);
        }
    }
    if (rc < 0) return -1;
    flush(c, &r);

    if (first) {
        for (size_t k = nodes[at].first_child; k; k = nodes[k].next_sibling) {
            if (is_done(c, k)) continue;
            const struct node *nd = &nodes[k];
            const struct sl_jval *v = target_value(c, nd);
            if (v) {
                mark_done(c, k);
                begin_member(c, &r);
                put(c, nd->key, nd->key_len);
                put(c, v->p, v->n);
            } else if (nd->op == OP_NONE && count_targets(c, k)) {
                begin_member(c, &r);
                put(c, nd->key, nd->key_len);
                create_object(c, k);
            }
        }
    }
    put_ch(c, '}');
    *end = i;
    return 0;
}

/* The node chain root..k (exclusive of the root) into chain[]; returns its length. */
static size_t chain_of(const struct sl_jedit *e, size_t k, size_t chain[SL_JEDIT_MAX_DEPTH])
{
    size_t d = e->nodes[k].depth;
    for (size_t at = k, j = d; j > 0; at = e->nodes[at].parent)
        chain[--j] = at;
    return d;
}

/* First occurrence (document order, through every duplicate parent) of the path chain[kk..d) in
 * the object at in[i] == '{'. Recursion over the path, at most SL_JEDIT_MAX_DEPTH deep. */
static int lookup(const struct ctx *c, size_t i, const size_t *chain, size_t kk, size_t d,
                  struct sl_jval *v)
{
    struct member m;
    size_t at = kk ? chain[kk - 1] : 0;
    i++;
    while (next_member(c->in, c->len, &i, &m) == 1) {
        if (match_key(c, at, &m) != chain[kk]) continue;
        if (kk + 1 == d) {
            v->p = c->in + m.vs;
            v->n = m.ve - m.vs;
            return 1;
        }
        if (c->in[m.vs] == '{' && lookup(c, m.vs, chain, kk + 1, d, v)) return 1;
    }
    return 0;
}

/* 1 if the first occurrence of an intermediate on the path to node k is not an object. */
static int target_blocked(const struct ctx *c, size_t i, size_t k)
{
    size_t chain[SL_JEDIT_MAX_DEPTH];
    size_t d = chain_of(c->e, k, chain);
    for (size_t kk = 0; kk + 1 < d; kk++) {
        struct member m;
        size_t at = kk ? chain[kk - 1] : 0;
        int rc;
        i++;
        while ((rc = next_member(c->in, c->len, &i, &m)) == 1) {
            if (match_key(c, at, &m) == chain[kk]) break;
        }
        if (rc != 1) return 0; /* missing: it will be created */
        if (c->in[m.vs] != '{') return 1;
        i = m.vs;
    }
    return 0;
}

size_t sl_jedit_apply(const struct sl_jedit *e, const char *in, size_t len,
                      const struct sl_jval *vals, size_t n_vals, char *out, size_t cap,
                      unsigned *skipped)
{
    struct ctx c;
    c.e = e;
    c.in = in;
    c.len = len;
    c.vals = vals;
    c.n_vals = n_vals;
    c.out = out;
    c.cap = cap;
    c.n = 0;
    c.overflow = 0;
    c.skipped = 0;
    memset(c.done, 0, sizeof(c.done));
    if (skipped) *skipped = 0;

    size_t i = skip_ws(in, len, 0), end;
    if (i >= len || in[i] != '{') return 0;
    for (size_t r = 0; r < e->n_renames; r++) {
        size_t chain[SL_JEDIT_MAX_DEPTH];
        size_t d = chain_of(e, e->renames[r].from, chain);
        c.ren[r] = REN_ABSENT;
        if (!lookup(&c, i, chain, 0, d, &c.rv[r])) continue;
        if (target_blocked(&c, i, e->renames[r].to)) {
            c.ren[r] = REN_SKIPPED;
            c.skipped++;
        } else {
            c.ren[r] = REN_ACTIVE;
        }
    }
    if (edit_object(&c, 0, i, 1, &end) < 0 || c.overflow) return 0;
    if (skipped) *skipped = c.skipped;
    return c.n;
}

/* ---- carrying a scan over ---- */

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Whether a member the plan may append (a top-level node: set, rename target, or the parent of a
 * nested one) could be where path's value is found. */
static int may_append(const struct sl_jedit *e, const char *path)
{
    const char *dot = strchr(path, '.');
    size_t cl = dot ? (size_t)(dot - path) : strlen(path);
    for (size_t k = 1; k < e->n_nodes; k++) {
        const struct node *nd = &e->nodes[k];
        if (nd->parent != 0) continue;
        /* the scanner compares raw (escaped) keys: only a plain segment compares as itself */
        if (!nd->plain || (nd->seg_len == cl && memcmp(nd->seg, path, cl) == 0)) return 1;
    }
    return 0;
}

int sl_jedit_carry_scan(const struct sl_jedit *e, const char *in, size_t len, const char *out,
                        size_t n, const struct sl_json_scan *in_scan, struct sl_json_scan *out_scan)
{
    size_t lead = 0, end = len;
    while (lead < len && is_ws(in[lead]))
        lead++;
    while (end > lead && is_ws(in[end - 1]))
        end--;
    if (end - lead < 2 || in[lead] != '{' || in[end - 1] != '}') return 0;
    size_t body = end - 1 - lead; /* the object without its closing brace */
    if (n <= body || memcmp(out, in + lead, body) != 0) return 0;
    struct sl_json_scan s = *in_scan;
    for (size_t k = 0; k < s.n_paths && k < SL_JSON_MAX_PATHS; k++) {
        if (!s.paths[k]) continue;
        if (s.val[k])
            s.val[k] = out + (s.val[k] - (in + lead));
        else if (may_append(e, s.paths[k]))
            return 0;
    }
    /* In valid JSON a raw CR or LF can only sit between tokens; the input's flag may also have
     * counted whitespace around the object, which the edit dropped. */
    s.has_raw_newline = memchr(out, '\n', n) || memchr(out, '\r', n);
    *out_scan = s;
    return 1;
}
