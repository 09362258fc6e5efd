/* The cluster's GET / answer: two fields found by the JSON scanner's path lookup, which also
 * validates the whole body, so a cut or malformed answer is never half-read. */
#include "codec/esinfo.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "codec/json.h"

/* Decodes a string token into out (NUL-terminated). -1 when it is not a string or too long. */
static int str_field(const char *tok, size_t len, char *out, size_t cap)
{
    ssize_t n = sl_json_unescape(tok, len, out, cap - 1);
    if (n < 0) return -1;
    out[n] = '\0';
    return 0;
}

/* The number at *s, at most 9 digits (no overflow); -1 when none. */
static int leading_number(const char **s)
{
    int v = 0, digits = 0;
    while (**s >= '0' && **s <= '9' && digits < 9) {
        v = v * 10 + (**s - '0');
        (*s)++;
        digits++;
    }
    return digits ? v : -1;
}

int sl_es_info_parse(const char *body, size_t len, struct sl_es_info *out, char *err, size_t errlen)
{
    struct sl_json_scan sc = {.paths = {"version.number", "version.distribution"}, .n_paths = 2};
    if (sl_json_scan_object(body, len, &sc) != 0) {
        snprintf(err, errlen, "not a JSON object (byte %zu: %s)", sc.err_offset, sc.err_msg);
        return -1;
    }
    struct sl_es_info info = {.dist = SL_ES_DIST_ELASTICSEARCH, .major = -1, .minor = -1};
    if (!sc.val[0]) {
        snprintf(err, errlen, "no version.number");
        return -1;
    }
    if (str_field(sc.val[0], sc.vlen[0], info.number, sizeof info.number) != 0) {
        snprintf(err, errlen, "version.number is not a string of at most %zu bytes",
                 sizeof info.number - 1);
        return -1;
    }
    if (sc.val[1] &&
        str_field(sc.val[1], sc.vlen[1], info.distribution, sizeof info.distribution) != 0) {
        snprintf(err, errlen, "version.distribution is not a string of at most %zu bytes",
                 sizeof info.distribution - 1);
        return -1;
    }
    if (!info.distribution[0] || strcasecmp(info.distribution, "elasticsearch") == 0)
        info.dist = SL_ES_DIST_ELASTICSEARCH;
    else if (strcasecmp(info.distribution, "opensearch") == 0)
        info.dist = SL_ES_DIST_OPENSEARCH;
    else
        info.dist = SL_ES_DIST_OTHER;
    const char *s = info.number;
    info.major = leading_number(&s);
    if (info.major >= 0 && *s == '.') {
        s++;
        info.minor = leading_number(&s);
    }
    *out = info;
    return 0;
}

const char *sl_es_info_product(const struct sl_es_info *info)
{
    switch (info->dist) {
    case SL_ES_DIST_ELASTICSEARCH:
        return "Elasticsearch";
    case SL_ES_DIST_OPENSEARCH:
        return "OpenSearch";
    case SL_ES_DIST_OTHER:
        break;
    }
    return info->distribution;
}
