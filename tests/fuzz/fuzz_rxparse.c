/* libFuzzer target for src/codec/rxparse.c (format: regexp: Kafka payloads matched by a pattern).
 * Properties, beyond "no crash" (ASan bounds every access: the output buffer is allocated with
 * exactly the size sl_rxparse_match asked for):
 *  1. match either refuses the line (-1) or asks for at least "{}";
 *  2. write stays within that size and produces one valid JSON object without raw newlines, so
 *     it can be an NDJSON line of a bulk body as is;
 *  3. a typed field is never a string: the object scans with each typed group's value being a
 *     number, true, false or null.
 * The first byte picks the pattern; the rest is the line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"
#include "codec/rxparse.h"
#include "fuzz_check.h"

/* fluentd's apache2 and syslog patterns, and one with every type */
static const char apache[] =
    "^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] \"(?<method>\\S+)(?: "
    "+(?<path>[^ ]*) +\\S*)?\" (?<code>[^ ]*) (?<size>[^ ]*)(?: \"(?<referer>[^\\\"]*)\" "
    "\"(?<agent>[^\\\"]*)\")?$";
static const char syslog_rx[] =
    "^(?<time>\\w{3} +\\d+ [\\d:]+) (?<host>\\S+) (?<ident>[\\w/.-]*)(?:\\[(?<pid>\\d+)\\])?: "
    "(?<message>.*)$";
static const char *const patterns[] = {apache, syslog_rx,
                                       "(?<a>\\d*)(?<b>[.\\d]*)(?<c>\\w*)(?<d>.*)"};
static struct sl_rxparse *rx[3];

static void init(void)
{
    static const struct sl_kv t0[] = {{"code", "int"}, {"size", "int"}};
    static const struct sl_kv t1[] = {{"pid", "int"}};
    static const struct sl_kv t2[] = {{"a", "int"}, {"b", "float"}, {"c", "bool"}};
    const struct sl_kv *types[] = {t0, t1, t2};
    const size_t n_types[] = {2, 1, 3};
    char why[256];
    for (size_t i = 0; i < 3; i++) {
        rx[i] = sl_rxparse_new(patterns[i], types[i], n_types[i], why, sizeof why);
        CHECK(rx[i] != NULL);
    }
}

static void check_typed(const char *out, size_t n, const char *name)
{
    struct sl_json_scan s;
    memset(&s, 0, sizeof s);
    s.paths[0] = name;
    s.n_paths = 1;
    CHECK(sl_json_scan_object(out, n, &s) == 0);
    if (s.val[0]) CHECK(s.val[0][0] != '"');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!rx[0]) init();
    if (size < 1) return 0;
    size_t which = data[0] % 3;
    const char *line = (const char *)data + 1;
    size_t len = size - 1;
    ssize_t need = sl_rxparse_match(rx[which], line, len);
    if (need < 0) return 0;
    CHECK(need >= 2);
    char *out = malloc((size_t)need);
    CHECK(out != NULL);
    unsigned terr = 0;
    size_t n = sl_rxparse_write(rx[which], out, &terr);
    CHECK(n <= (size_t)need);
    struct sl_json_scan s;
    memset(&s, 0, sizeof s);
    CHECK(sl_json_scan_object(out, n, &s) == 0);
    CHECK(!s.has_raw_newline);
    static const char *const typed[3][3] = {
        {"code", "size", NULL}, {"pid", NULL, NULL}, {"a", "b", "c"}};
    for (size_t i = 0; i < 3 && typed[which][i]; i++)
        check_typed(out, n, typed[which][i]);
    free(out);
    return 0;
}
