/* Field edits on a JSON object without re-serialising it (pure: no I/O, no global state, no
 * allocation per record; the plan allocates once while it is built).
 *
 * A plan (struct sl_jedit) is compiled once from the configuration (remove_keys, rename_keys,
 * add_fields, include_tag_key) and then applied to each record: untouched members are copied byte
 * for byte, edited ones are dropped or written from the given values.
 *
 * Paths. A path is dotted: "a.b.c" is member "c" of the object "b" of the object "a". Segments are
 * non-empty, at most SL_JEDIT_MAX_SEG bytes of valid UTF-8, and a path has at most
 * SL_JEDIT_MAX_DEPTH segments. A segment cannot contain a dot, so a record key that contains a dot
 * ("a.b" as one key) cannot be named by any path. Keys are compared after JSON unescaping: the
 * record key "a\u0062" is the path segment "ab".
 *
 * Semantics, applied in this order:
 *  - remove: deletes every occurrence of the member, in every duplicate of its parent objects.
 *    Absent: no-op.
 *  - rename from -> to: takes the value of the first occurrence of from (document order), deletes
 *    from everywhere, and writes the value at to as a set does. Absent from: no-op (a member that
 *    already sits at to is left alone). If to cannot be written (see below), the whole rename is
 *    skipped, from stays, and the rename counts as skipped.
 *  - set path = value: replaces the first existing member at path in place (later duplicates are
 *    dropped), or appends the member at the end of its parent object, creating missing
 *    intermediate objects. The parents are the first occurrence of each intermediate key. If an
 *    intermediate exists but is not an object, the set is skipped and counted. A set whose slot
 *    has no value (slot >= n_vals or vals[slot].p == NULL) is a no-op, not counted.
 * The paths of one plan are distinct and none is a prefix of another (removing "a" and setting
 * "a.b" is refused at build time), so the edits touch disjoint parts of the record and their order
 * only matters for the rules above.
 *
 * Output. Valid JSON: the edits add no whitespace, and whitespace inside untouched members (if the
 * input had any) is kept; whitespace around the outer object is dropped. Members appended by the
 * plan come in the order the edits were added to the plan.
 *
 * Cost. A plan that only has top-level sets (add_fields, include_tag_key) is one pass over the
 * top-level members (nested values are skipped without being parsed, runs of untouched members
 * are copied with one memcpy) followed by the appends. Removes and sets below the top level
 * descend only into members named by the plan. A rename adds one lookup pass per rename.
 * No recursion on the input's nesting depth: only on the plan's (at most SL_JEDIT_MAX_DEPTH).
 *
 * Non-goals: validating the input (sl_json_scan_object does that once), array indexes in paths,
 * wildcards, deduplicating keys the plan does not name.
 */
#ifndef SL_JSON_EDIT_H
#define SL_JSON_EDIT_H

#include <stddef.h>

#define SL_JEDIT_MAX_DEPTH 16   /* segments in one path */
#define SL_JEDIT_MAX_SEG 255    /* bytes in one segment */
#define SL_JEDIT_MAX_NODES 255  /* distinct path prefixes in one plan */
#define SL_JEDIT_MAX_RENAMES 32 /* renames in one plan */

struct sl_jedit; /* a compiled plan; read-only while applied, so threads may share one */

/* A complete, valid JSON value text (a string value includes its quotes). */
struct sl_jval {
    const char *p;
    size_t n;
};

/* Returns an empty plan, or NULL if out of memory. Free it with sl_jedit_free. */
struct sl_jedit *sl_jedit_new(void);
void sl_jedit_free(struct sl_jedit *e);

/* Build steps. Each returns 0, or -1 with a reason in why (NUL-terminated, truncated to whylen)
 * and the plan unchanged: a malformed path (empty, empty segment, too deep, segment too long or
 * not UTF-8), a path given twice, a path inside another edit's path (remove "a" and set "a.b"), a
 * rename whose target is inside its source or the other way round, or a full plan. */
int sl_jedit_remove(struct sl_jedit *e, const char *path, char *why, size_t whylen);
int sl_jedit_rename(struct sl_jedit *e, const char *from, const char *to, char *why, size_t whylen);
/* The value comes per record: vals[slot] of sl_jedit_apply. */
int sl_jedit_set(struct sl_jedit *e, const char *path, unsigned slot, char *why, size_t whylen);

/* Writes the edited in[0..len) to out[0..cap). in must be one valid JSON object (as accepted by
 * sl_json_scan_object) and each vals[slot] a valid JSON value. Returns the output length, or 0 when
 * cap is too small: the caller grows its buffer to sl_jedit_bound() and calls again. A 0 with
 * cap >= sl_jedit_bound() means in was not a valid object. If skipped is not NULL, it receives
 * the number of sets and renames skipped because an intermediate on their path is not an object.
 */
size_t sl_jedit_apply(const struct sl_jedit *e, const char *in, size_t len,
                      const struct sl_jval *vals, size_t n_vals, char *out, size_t cap,
                      unsigned *skipped);

/* An upper bound of sl_jedit_apply's output length for this input length and these values. */
size_t sl_jedit_bound(const struct sl_jedit *e, size_t len, const struct sl_jval *vals,
                      size_t n_vals);

/* The scan of the edited record without scanning it again, when that is sure to give the same
 * result: out[0..n) (sl_jedit_apply's output for in[0..len)) must begin with the whole input
 * object except its closing brace, i.e. the plan only appended members (add_fields of keys the
 * record does not have, the usual case). Found values then sit at the same place in out, and a
 * path not found stays not found unless a top-level key the plan names could be its first
 * component. in_scan is sl_json_scan_object's result on in; out_scan may be the same object.
 * Returns 1 with out_scan filled, or 0 (out_scan untouched): scan out instead. */
struct sl_json_scan;
int sl_jedit_carry_scan(const struct sl_jedit *e, const char *in, size_t len, const char *out,
                        size_t n, const struct sl_json_scan *in_scan,
                        struct sl_json_scan *out_scan);

#endif
