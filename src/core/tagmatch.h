/* fluentd tag patterns (pure). A pattern is one or more space-separated alternatives; each is
 * dot-separated parts where `*` matches exactly one part, `**` matches zero or more parts, and
 * `{a,b,c}` matches any of the comma-separated sub-patterns (which may contain * and **).
 * `a.**` matches "a" and "a.b.c". Matching is case-sensitive, as in fluentd. */
#ifndef SL_TAGMATCH_H
#define SL_TAGMATCH_H

#include <stdbool.h>
#include <stddef.h>

struct sl_tagpat;

/* Compiles pattern. Returns NULL with a message in err on a syntax error (empty pattern,
 * unbalanced braces, empty part). */
struct sl_tagpat *sl_tagpat_compile(const char *pattern, char *err, size_t errlen);
bool sl_tagpat_match(const struct sl_tagpat *p, const char *tag, size_t tag_len);
void sl_tagpat_free(struct sl_tagpat *p);

#endif
