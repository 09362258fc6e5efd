/* Elasticsearch Bulk API codec.
 *
 * The response parser walks the few levels whose shape it knows (top object -> "items" array ->
 * item object -> action object -> "error" object) with straight-line code, and hands every other
 * value to the iterative skipper in json.c. So the parse is one pass, bounded in stack whatever the
 * input, and validates the whole body: a body cut anywhere fails, it never yields a partial list.
 */
#include "codec/bulk.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "codec/json.h"
#include "codec/json_internal.h"

size_t sl_bulk_action_head(char *out, size_t cap, enum sl_bulk_op op, const char *index,
                           size_t index_len)
{
    const char *head =
        op == SL_BULK_CREATE ? "{\"create\":{\"_index\":\"" : "{\"index\":{\"_index\":\"";
    size_t hl = strlen(head);
    /* Measured only when the worst case (6 bytes a byte, \u00XX) might not fit. */
    if (hl + 6 * index_len + 1 > cap && hl + sl__json_escaped_len(index, index_len) + 1 > cap)
        return 0;
    memcpy(out, head, hl);
    size_t o = hl + sl_json_escape(index, index_len, out + hl);
    out[o++] = '"';
    return o;
}

size_t sl_bulk_action_tail(char *out, size_t cap, size_t head_len, const char *id, size_t id_len)
{
    size_t o = head_len;
    if (id) {
        if (o + 8 + 6 * id_len + 4 > cap && o + 8 + sl__json_escaped_len(id, id_len) + 4 > cap)
            return 0;
        memcpy(out + o, ",\"_id\":\"", 8);
        o += 8;
        o += sl_json_escape(id, id_len, out + o);
        out[o++] = '"';
    }
    if (o + 3 > cap) return 0;
    memcpy(out + o, "}}\n", 3);
    return o + 3;
}

size_t sl_bulk_action(char *out, size_t cap, enum sl_bulk_op op, const char *index,
                      size_t index_len, const char *id, size_t id_len)
{
    size_t h = sl_bulk_action_head(out, cap, op, index, index_len);
    return h ? sl_bulk_action_tail(out, cap, h, id, id_len) : 0;
}

/* ---- a tiny cursor over the body ---- */

struct cur {
    const char *b;
    size_t len;
    size_t i;
    struct sl__json_err e;
    char *err;
    size_t errlen;
};

static int syntax_error(struct cur *c)
{
    if (c->err && c->errlen)
        snprintf(c->err, c->errlen, "%s at byte %zu of %zu", c->e.msg, c->e.off, c->len);
    return -1;
}

static int expect(struct cur *c, char ch, const char *msg)
{
    c->i = sl__json_skip_ws(c->b, c->len, c->i);
    if (c->i >= c->len || c->b[c->i] != ch) {
        c->e.off = c->i;
        c->e.msg = c->i >= c->len ? "unexpected end of input" : msg;
        return syntax_error(c);
    }
    c->i++;
    return 0;
}

/* After a member or element: 1 if another follows (',' consumed), 0 at the closer (consumed). */
static int next_or_close(struct cur *c, char closer, const char *msg)
{
    c->i = sl__json_skip_ws(c->b, c->len, c->i);
    if (c->i < c->len && c->b[c->i] == ',') {
        c->i++;
        return 1;
    }
    if (expect(c, closer, msg) < 0) return -1;
    return 0;
}

/* Opens a container: 1 if it has members, 0 if empty (closer consumed). */
static int open_container(struct cur *c, char opener, char closer, const char *msg)
{
    if (expect(c, opener, msg) < 0) return -1;
    c->i = sl__json_skip_ws(c->b, c->len, c->i);
    if (c->i < c->len && c->b[c->i] == closer) {
        c->i++;
        return 0;
    }
    return 1;
}

/* Reads a key and the ':' after it; key and klen give the raw bytes between the quotes. */
static int read_key(struct cur *c, const char **key, size_t *klen)
{
    size_t end;
    c->i = sl__json_skip_ws(c->b, c->len, c->i);
    if (c->i >= c->len || c->b[c->i] != '"') {
        c->e.off = c->i;
        c->e.msg = c->i >= c->len ? "unexpected end of input" : "expected string key";
        return syntax_error(c);
    }
    if (sl__json_string_end(c->b, c->len, c->i, &end, &c->e) < 0) return syntax_error(c);
    *key = c->b + c->i + 1;
    *klen = end - c->i - 2;
    c->i = end;
    if (expect(c, ':', "expected ':'") < 0) return -1;
    c->i = sl__json_skip_ws(c->b, c->len, c->i);
    return 0;
}

/* Any value at the cursor; start and vlen delimit its token. */
static int read_value(struct cur *c, const char **start, size_t *vlen)
{
    size_t end;
    c->i = sl__json_skip_ws(c->b, c->len, c->i);
    if (sl__json_value_end(c->b, c->len, c->i, &end, &c->e) < 0) return syntax_error(c);
    if (start) *start = c->b + c->i;
    if (vlen) *vlen = end - c->i;
    c->i = end;
    return 0;
}

static int key_is(const char *key, size_t klen, const char *lit)
{
    return strlen(lit) == klen && memcmp(key, lit, klen) == 0;
}

__attribute__((format(printf, 2, 3))) static int fmt_error(struct cur *c, const char *fmt, ...)
{
    if (c->err && c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A status token: a plain 3-digit integer in 100..599, else -1. */
static int status_value(const char *tok, size_t n)
{
    if (n != 3) return -1;
    int v = 0;
    for (size_t k = 0; k < 3; k++) {
        if (tok[k] < '0' || tok[k] > '9') return -1;
        v = v * 10 + (tok[k] - '0');
    }
    return v >= 100 && v <= 599 ? v : -1;
}

/* "error": an ErrorCause object (type/reason taken, the rest skipped), or a bare string. */
static int parse_error_value(struct cur *c, struct sl_bulk_item *it)
{
    const char *v;
    size_t vlen;
    c->i = sl__json_skip_ws(c->b, c->len, c->i);
    if (c->i < c->len && c->b[c->i] != '{') {
        if (read_value(c, &v, &vlen) < 0) return -1;
        if (v[0] == '"') {
            it->reason = v + 1;
            it->reason_len = vlen - 2;
        }
        return 0;
    }
    int more = open_container(c, '{', '}', "expected '{'");
    while (more > 0) {
        const char *key;
        size_t klen;
        if (read_key(c, &key, &klen) < 0 || read_value(c, &v, &vlen) < 0) return -1;
        /* First occurrence wins, like the scanner. Non-string values are ignored. */
        if (v[0] == '"' && key_is(key, klen, "type") && !it->type) {
            it->type = v + 1;
            it->type_len = vlen - 2;
        } else if (v[0] == '"' && key_is(key, klen, "reason") && !it->reason) {
            it->reason = v + 1;
            it->reason_len = vlen - 2;
        }
        more = next_or_close(c, '}', "expected ',' or '}'");
    }
    return more;
}

/* The action object of one item: {"_index":..,"status":N,"error":{..},..}. */
static int parse_result(struct cur *c, struct sl_bulk_item *it, size_t idx)
{
    int more = open_container(c, '{', '}', "expected '{' (item action object)");
    while (more > 0) {
        const char *key, *v;
        size_t klen, vlen;
        if (read_key(c, &key, &klen) < 0) return -1;
        if (key_is(key, klen, "status")) {
            size_t at = c->i;
            if (read_value(c, &v, &vlen) < 0) return -1;
            it->status = status_value(v, vlen);
            if (it->status < 0)
                return fmt_error(c, "item %zu has an invalid status at byte %zu", idx, at);
        } else if (key_is(key, klen, "error")) {
            if (parse_error_value(c, it) < 0) return -1;
        } else if (read_value(c, NULL, NULL) < 0) {
            return -1;
        }
        more = next_or_close(c, '}', "expected ',' or '}'");
    }
    return more;
}

/* One element of "items": {"<op>":{..}}. The action name is not checked: index, create, update
 * and delete results all have the same shape. */
static int parse_item(struct cur *c, struct sl_bulk_item *it, size_t idx)
{
    const char *key;
    size_t klen;
    it->status = 0;
    it->type = it->reason = NULL;
    it->type_len = it->reason_len = 0;
    size_t at = sl__json_skip_ws(c->b, c->len, c->i);
    int more = open_container(c, '{', '}', "expected '{' (item)");
    if (more < 0) return -1;
    if (more == 0) return fmt_error(c, "item %zu is empty (byte %zu)", idx, at);
    if (read_key(c, &key, &klen) < 0 || parse_result(c, it, idx) < 0) return -1;
    more = next_or_close(c, '}', "expected ',' or '}'");
    if (more < 0) return -1;
    if (more > 0) return fmt_error(c, "item %zu has more than one action (byte %zu)", idx, at);
    if (it->status == 0) return fmt_error(c, "item %zu has no status (byte %zu)", idx, at);
    return 0;
}

int sl_bulk_parse_response(const char *body, size_t len, struct sl_bulk_item *items,
                           size_t n_expected, char *err, size_t errlen)
{
    struct cur c = {.b = body, .len = len, .i = 0, .err = err, .errlen = errlen};
    size_t n = 0;
    int seen_items = 0;
    if (err && errlen) err[0] = '\0';

    int more = open_container(&c, '{', '}', "not a JSON object");
    while (more > 0) {
        const char *key;
        size_t klen;
        if (read_key(&c, &key, &klen) < 0) return -1;
        if (!key_is(key, klen, "items")) {
            if (read_value(&c, NULL, NULL) < 0) return -1;
        } else {
            if (seen_items) return fmt_error(&c, "duplicate \"items\" key at byte %zu", c.i);
            seen_items = 1;
            int el = open_container(&c, '[', ']', "\"items\" is not an array");
            while (el > 0) {
                /* Keep validating past n_expected so the message can give the real count. */
                struct sl_bulk_item spare;
                if (parse_item(&c, n < n_expected ? &items[n] : &spare, n) < 0) return -1;
                n++;
                el = next_or_close(&c, ']', "expected ',' or ']'");
            }
            if (el < 0) return -1;
        }
        more = next_or_close(&c, '}', "expected ',' or '}'");
    }
    if (more < 0) return -1;
    c.i = sl__json_skip_ws(body, len, c.i);
    if (c.i != len) {
        c.e.off = c.i;
        c.e.msg = "trailing data";
        return syntax_error(&c);
    }
    if (!seen_items) return fmt_error(&c, "response has no \"items\" (%zu bytes)", len);
    if (n != n_expected)
        return fmt_error(&c, "expected %zu items, response has %zu", n_expected, n);
    return 0;
}

int sl_bulk_parse_error(const char *body, size_t len, struct sl_bulk_item *out)
{
    struct cur c = {.b = body, .len = len, .i = 0, .err = NULL, .errlen = 0};
    struct sl_bulk_item it = {0, NULL, 0, NULL, 0};
    int seen_error = 0;

    int more = open_container(&c, '{', '}', "not a JSON object");
    while (more > 0) {
        const char *key, *v;
        size_t klen, vlen;
        if (read_key(&c, &key, &klen) < 0) return -1;
        if (key_is(key, klen, "error") && !seen_error) {
            seen_error = 1;
            if (parse_error_value(&c, &it) < 0) return -1;
        } else if (key_is(key, klen, "status")) {
            if (read_value(&c, &v, &vlen) < 0) return -1;
            int st = status_value(v, vlen);
            if (st > 0) it.status = st;
        } else if (read_value(&c, NULL, NULL) < 0) {
            return -1;
        }
        more = next_or_close(&c, '}', "expected ',' or '}'");
    }
    if (more < 0 || sl__json_skip_ws(body, len, c.i) != len) return -1;
    if (!seen_error || (!it.type && !it.reason)) return -1;
    *out = it;
    return 0;
}

enum sl_bulk_class sl_bulk_classify_item(int status, enum sl_bulk_op op)
{
    if (status >= 200 && status <= 299) return SL_BULK_DELIVERED;
    if (status == 409)
        /* With create and a deterministic _id the document is already there; with index the
         * conflict comes from explicit versioning and is real. */
        return op == SL_BULK_CREATE ? SL_BULK_DELIVERED : SL_BULK_DEAD_LETTER;
    if (status == 401 || status == 403 || status == 408 || status == 429) return SL_BULK_RETRY;
    if (status >= 400 && status <= 499) return SL_BULK_DEAD_LETTER;
    /* 5xx, and anything unexpected (0, 1xx, 3xx): retrying is the choice that cannot lose data. */
    return SL_BULK_RETRY;
}
