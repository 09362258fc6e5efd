/* fluentd tag patterns.
 *
 * Semantics follow fluentd's glob-to-regex translation (lib/fluent/match.rb), which is what users'
 * existing <match> sections were written against:
 *   `*`      -> [^.]*            (so `a*` globs within a part, and `*` alone is one part)
 *   `**`     -> .*               (`a**` crosses dots, as in fluentd)
 *   `x.**`   -> x(?![^.]).*      (the dot before `**` is optional: `a.**` matches "a")
 *   `**.y`   -> (?:.*\.|^)y      (zero or more leading parts)
 *   `{p,q}`  -> (?:p|q), nested braces allowed
 *   `\c`     -> literal c
 * One deliberate difference: where fluentd emits `\A` for "zero leading parts", we accept any part
 * boundary (start of tag or right after a '.'). They differ only for `c.{**.b}`, which fluentd
 * cannot match against "c.b"; the documented meaning of `**` says it should.
 * Stricter than fluentd: empty parts ("a..b", ".a", "a."), empty alternatives, unbalanced braces
 * and ',' outside braces are errors, because they are almost always typos.
 *
 * Compiled form: one allocation holding a graph of ops linked by `next`. A sequence ends at
 * NONE; an ALT op points to a chain of ITEM ops, each heading one alternative. Matching is a
 * backtracking walk with continuations kept on the C stack, so it never allocates. */
#include "core/tagmatch.h"

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX
/* Bounds recursion both when compiling and when matching. */
#define MAX_PATTERN_LEN 1024
#define MAX_BRACE_DEPTH 16

enum op_kind {
    OP_LIT,      /* a = offset in lits, b = length */
    OP_DOT,      /* '.' */
    OP_STAR,     /* [^.]* */
    OP_ANY,      /* .* */
    OP_ANY_DOT,  /* (?:.*\.|at a part boundary) */
    OP_BOUNDARY, /* next char is '.' or end of tag */
    OP_ALT,      /* a = first ITEM */
    OP_ITEM,     /* a = head of this alternative, b = next ITEM */
};

struct op {
    uint32_t kind;
    uint32_t next;
    uint32_t a;
    uint32_t b;
};

struct sl_tagpat {
    uint32_t root; /* an OP_ALT over the space-separated patterns */
    uint32_t n_ops;
    struct op *ops;
    char *lits;
};

struct builder {
    struct sl_tagpat *p;
    const char *s;
    size_t pos;
    size_t len;
    size_t n_lits;
    size_t max_ops;
    char *err;
    size_t errlen;
};

static int fail(struct builder *b, const char *fmt, ...)
{
    if (b->err && b->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->err, b->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static uint32_t emit(struct builder *b, enum op_kind kind, uint32_t a, uint32_t bb)
{
    assert(b->p->n_ops < b->max_ops);
    uint32_t i = b->p->n_ops++;
    b->p->ops[i] = (struct op){.kind = kind, .next = NONE, .a = a, .b = bb};
    return i;
}

struct seq {
    uint32_t head;
    uint32_t tail;
};

static void append(struct builder *b, struct seq *q, uint32_t op)
{
    if (q->head == NONE)
        q->head = op;
    else
        b->p->ops[q->tail].next = op;
    q->tail = op;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool ends_seq(const struct builder *b, int depth)
{
    if (b->pos >= b->len) return true;
    char c = b->s[b->pos];
    if (is_space(c)) return true;
    return depth > 0 && (c == ',' || c == '}');
}

static void add_literal(struct builder *b, struct seq *q, char c)
{
    struct op *last = q->tail == NONE ? NULL : &b->p->ops[q->tail];
    /* Literals are copied in order, so a run of literal chars extends the previous op. */
    if (last && last->kind == OP_LIT && last->a + last->b == b->n_lits) {
        last->b++;
    } else {
        append(b, q, emit(b, OP_LIT, (uint32_t)b->n_lits, 1));
    }
    b->p->lits[b->n_lits++] = c;
}

static int parse_alt(struct builder *b, int depth, uint32_t *alt);

/* Parses one sequence up to a terminator (end, whitespace, and ',' or '}' inside braces). */
static int parse_seq(struct builder *b, int depth, uint32_t *head)
{
    struct seq q = {NONE, NONE};
    bool dot_pending = false;
    /* True where a '.' would make an empty part: at the start, and right after "**.". */
    bool part_start = true;
    size_t start = b->pos;

    while (!ends_seq(b, depth)) {
        const char *c = b->s + b->pos;
        if (c[0] == '*' && b->pos + 1 < b->len && c[1] == '*') {
            if (dot_pending) append(b, &q, emit(b, OP_BOUNDARY, 0, 0));
            dot_pending = false;
            b->pos += 2;
            if (b->pos < b->len && b->s[b->pos] == '.') {
                b->pos++;
                append(b, &q, emit(b, OP_ANY_DOT, 0, 0));
                part_start = true;
                if (ends_seq(b, depth))
                    return fail(b, "empty part after '**.' at offset %zu", b->pos);
            } else {
                append(b, &q, emit(b, OP_ANY, 0, 0));
                part_start = false;
            }
            continue;
        }
        if (c[0] == '.') {
            if (part_start || dot_pending) return fail(b, "empty part at offset %zu", b->pos);
            dot_pending = true;
            b->pos++;
            continue;
        }
        if (dot_pending) {
            append(b, &q, emit(b, OP_DOT, 0, 0));
            dot_pending = false;
        }
        part_start = false;
        if (c[0] == '\\') {
            if (b->pos + 1 >= b->len) return fail(b, "trailing '\\' at offset %zu", b->pos);
            add_literal(b, &q, c[1]);
            b->pos += 2;
        } else if (c[0] == '*') {
            append(b, &q, emit(b, OP_STAR, 0, 0));
            b->pos++;
        } else if (c[0] == '{') {
            if (depth + 1 > MAX_BRACE_DEPTH)
                return fail(b, "braces nested deeper than %d", MAX_BRACE_DEPTH);
            uint32_t alt = NONE;
            if (parse_alt(b, depth + 1, &alt) < 0) return -1;
            append(b, &q, alt);
        } else if (c[0] == '}') {
            return fail(b, "unbalanced '}' at offset %zu", b->pos);
        } else if (c[0] == ',') {
            return fail(b, "',' outside braces at offset %zu (separate patterns with spaces)",
                        b->pos);
        } else {
            add_literal(b, &q, c[0]);
            b->pos++;
        }
    }
    if (dot_pending) return fail(b, "empty part at offset %zu", b->pos);
    if (b->pos == start)
        return fail(b, depth ? "empty alternative at offset %zu" : "empty pattern", b->pos);
    *head = q.head;
    return 0;
}

/* At '{': parses alternatives up to the matching '}'. */
static int parse_alt(struct builder *b, int depth, uint32_t *alt)
{
    size_t open = b->pos++;
    uint32_t op = emit(b, OP_ALT, NONE, 0);
    uint32_t last_item = NONE;
    for (;;) {
        uint32_t head = NONE;
        if (parse_seq(b, depth, &head) < 0) return -1;
        uint32_t item = emit(b, OP_ITEM, head, NONE);
        if (last_item == NONE)
            b->p->ops[op].a = item;
        else
            b->p->ops[last_item].b = item;
        last_item = item;
        if (b->pos >= b->len || is_space(b->s[b->pos]))
            return fail(b, "unbalanced '{' at offset %zu", open);
        if (b->s[b->pos++] == '}') break;
    }
    *alt = op;
    return 0;
}

struct sl_tagpat *sl_tagpat_compile(const char *pattern, char *err, size_t errlen)
{
    struct builder b = {
        .s = pattern, .len = pattern ? strlen(pattern) : 0, .err = err, .errlen = errlen};
    if (err && errlen) err[0] = '\0';
    if (b.len > MAX_PATTERN_LEN) {
        fail(&b, "pattern longer than %d bytes", MAX_PATTERN_LEN);
        return NULL;
    }
    /* Each input byte yields at most two ops (a '{' gives ALT + ITEM, a ',' one ITEM), plus one
     * ALT and one ITEM per top-level pattern; 2 * len + 2 covers every case. */
    size_t max_ops = 2 * b.len + 2;
    struct sl_tagpat *p = malloc(sizeof(*p) + max_ops * sizeof(struct op) + b.len + 1);
    if (!p) {
        fail(&b, "out of memory");
        return NULL;
    }
    p->ops = (struct op *)(p + 1);
    p->lits = (char *)(p->ops + max_ops);
    p->n_ops = 0;
    b.p = p;
    b.max_ops = max_ops;

    p->root = emit(&b, OP_ALT, NONE, 0);
    uint32_t last_item = NONE;
    for (;;) {
        while (b.pos < b.len && is_space(b.s[b.pos]))
            b.pos++;
        if (b.pos >= b.len) break;
        uint32_t head = NONE;
        if (parse_seq(&b, 0, &head) < 0) {
            free(p);
            return NULL;
        }
        uint32_t item = emit(&b, OP_ITEM, head, NONE);
        if (last_item == NONE)
            p->ops[p->root].a = item;
        else
            p->ops[last_item].b = item;
        last_item = item;
    }
    if (last_item == NONE) {
        fail(&b, "empty pattern");
        free(p);
        return NULL;
    }
    return p;
}

void sl_tagpat_free(struct sl_tagpat *p)
{
    free(p);
}

/* Where to continue when a sequence ends: the op after an ALT, in an enclosing sequence. */
struct cont {
    uint32_t op;
    const struct cont *up;
};

struct mctx {
    const struct sl_tagpat *p;
    const char *t;
    size_t len;
};

static bool match_at(const struct mctx *m, uint32_t i, size_t pos, const struct cont *k);

static bool match_at(const struct mctx *m, uint32_t i, size_t pos, const struct cont *k)
{
    while (i == NONE) {
        if (!k) return pos == m->len;
        i = k->op;
        k = k->up;
    }
    const struct op *o = &m->p->ops[i];
    switch ((enum op_kind)o->kind) {
    case OP_LIT:
        if (m->len - pos < o->b || memcmp(m->t + pos, m->p->lits + o->a, o->b) != 0) return false;
        return match_at(m, o->next, pos + o->b, k);
    case OP_DOT:
        if (pos >= m->len || m->t[pos] != '.') return false;
        return match_at(m, o->next, pos + 1, k);
    case OP_BOUNDARY:
        if (pos < m->len && m->t[pos] != '.') return false;
        return match_at(m, o->next, pos, k);
    case OP_STAR:
        for (size_t j = pos;; j++) {
            if (match_at(m, o->next, j, k)) return true;
            if (j >= m->len || m->t[j] == '.') return false;
        }
    case OP_ANY:
        for (size_t j = pos; j <= m->len; j++) {
            if (match_at(m, o->next, j, k)) return true;
        }
        return false;
    case OP_ANY_DOT:
        if ((pos == 0 || m->t[pos - 1] == '.') && match_at(m, o->next, pos, k)) return true;
        for (size_t j = pos; j < m->len; j++) {
            if (m->t[j] == '.' && match_at(m, o->next, j + 1, k)) return true;
        }
        return false;
    case OP_ALT: {
        struct cont c = {.op = o->next, .up = k};
        for (uint32_t it = o->a; it != NONE; it = m->p->ops[it].b) {
            if (match_at(m, m->p->ops[it].a, pos, &c)) return true;
        }
        return false;
    }
    case OP_ITEM:
        break;
    }
    return false;
}

bool sl_tagpat_match(const struct sl_tagpat *p, const char *tag, size_t tag_len)
{
    struct mctx m = {.p = p, .t = tag, .len = tag_len};
    return match_at(&m, p->root, 0, NULL);
}
