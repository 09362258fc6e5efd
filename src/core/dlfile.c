#include "core/dlfile.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "codec/json.h"

enum {
    P_REASON,
    P_STATUS,
    P_ETYPE,
    P_EREASON,
    P_INPUT,
    P_OUTPUT,
    P_INDEX,
    P_TAG,
    P_TOPIC,
    P_PARTITION,
    P_OFFSET,
    P_ATTEMPTS,
    P_EVTIME,
    P_PAYLOAD,
    P_COUNT
};

static const char *const paths[P_COUNT] = {
    "reason",        "status",   "error_type", "error_reason", "input",
    "output",        "index",    "tag",        "source.topic", "source.partition",
    "source.offset", "attempts", "event_time", "payload",
};

static void str_field(const char *tok, size_t len, char *out, size_t cap)
{
    out[0] = 0;
    if (!tok) return;
    ssize_t n = sl_json_unescape(tok, len, out, cap - 1);
    if (n < 0) {
        /* longer than the field: keep what fits, marked */
        n = 0;
        snprintf(out, cap, "(too long)");
        return;
    }
    out[n] = 0;
}

static int64_t num_field(const char *tok, size_t len, int64_t dflt)
{
    if (!tok || len == 0 || len > 20) return dflt;
    char tmp[24];
    memcpy(tmp, tok, len);
    tmp[len] = 0;
    char *end;
    long long v = strtoll(tmp, &end, 10);
    return *end ? dflt : (int64_t)v;
}

int sl_dl_parse_line(const char *line, size_t len, struct sl_dl_line *out, char *err, size_t errlen)
{
    /* The scanner looks up at most SL_JSON_MAX_PATHS paths per pass. */
    const char *val[P_COUNT] = {0};
    size_t vlen[P_COUNT] = {0};
    for (size_t base = 0; base < P_COUNT; base += SL_JSON_MAX_PATHS) {
        struct sl_json_scan s = {0};
        for (size_t i = 0; i < SL_JSON_MAX_PATHS && base + i < P_COUNT; i++) {
            s.paths[i] = paths[base + i];
            s.n_paths = i + 1;
        }
        if (sl_json_scan_object(line, len, &s) != 0) {
            snprintf(err, errlen, "not a JSON object: %s at byte %zu", s.err_msg, s.err_offset);
            return -1;
        }
        for (size_t i = 0; i < s.n_paths; i++) {
            val[base + i] = s.val[i];
            vlen[base + i] = s.vlen[i];
        }
    }
    if (!val[P_REASON] || !val[P_PAYLOAD]) {
        snprintf(err, errlen, "not a dead-letter record (no reason or payload)");
        return -1;
    }
    memset(out, 0, sizeof *out);
    str_field(val[P_REASON], vlen[P_REASON], out->reason, sizeof out->reason);
    str_field(val[P_ETYPE], vlen[P_ETYPE], out->error_type, sizeof out->error_type);
    str_field(val[P_EREASON], vlen[P_EREASON], out->error_reason, sizeof out->error_reason);
    str_field(val[P_INPUT], vlen[P_INPUT], out->input, sizeof out->input);
    str_field(val[P_OUTPUT], vlen[P_OUTPUT], out->output, sizeof out->output);
    str_field(val[P_INDEX], vlen[P_INDEX], out->index, sizeof out->index);
    str_field(val[P_TAG], vlen[P_TAG], out->tag, sizeof out->tag);
    str_field(val[P_TOPIC], vlen[P_TOPIC], out->topic, sizeof out->topic);
    out->status = (int)num_field(val[P_STATUS], vlen[P_STATUS], 0);
    out->partition = (int32_t)num_field(val[P_PARTITION], vlen[P_PARTITION], -1);
    out->offset = num_field(val[P_OFFSET], vlen[P_OFFSET], -1);
    out->attempts = (int)num_field(val[P_ATTEMPTS], vlen[P_ATTEMPTS], 0);
    out->event_time_ns = 0;
    if (val[P_EVTIME]) sl_json_parse_time(val[P_EVTIME], vlen[P_EVTIME], &out->event_time_ns);
    out->payload = malloc(vlen[P_PAYLOAD] + 1);
    if (!out->payload) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ssize_t n = sl_json_unescape(val[P_PAYLOAD], vlen[P_PAYLOAD], out->payload, vlen[P_PAYLOAD]);
    if (n < 0) {
        free(out->payload);
        out->payload = NULL;
        snprintf(err, errlen, "payload is not a JSON string");
        return -1;
    }
    out->payload_len = (size_t)n;
    return 0;
}

void sl_dl_line_free(struct sl_dl_line *l)
{
    free(l->payload);
    l->payload = NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int sl_dl_files(const char *dir, char ***paths_out)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **v = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 7 || strcmp(e->d_name + l - 7, ".ndjson") != 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) break;
            v = nv;
        }
        size_t pl = strlen(dir) + l + 2;
        v[n] = malloc(pl);
        if (!v[n]) break;
        snprintf(v[n], pl, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n) qsort(v, (size_t)n, sizeof *v, cmp_str);
    *paths_out = v;
    return n;
}

void sl_dl_files_free(char **paths_v, int n)
{
    for (int i = 0; i < n; i++)
        free(paths_v[i]);
    free(paths_v);
}

ssize_t sl_dl_getline(FILE *f, char **buf, size_t *cap)
{
    ssize_t n = getline(buf, cap, f);
    if (n < 0) return -1;
    while (n && ((*buf)[n - 1] == '\n' || (*buf)[n - 1] == '\r'))
        n--;
    (*buf)[n] = 0;
    return n;
}
