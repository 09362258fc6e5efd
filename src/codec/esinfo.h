/* The answer to GET / of a cluster that speaks the Elasticsearch API (pure: no I/O, no
 * allocation): which distribution and version it is.
 *
 * Elasticsearch has no version.distribution; OpenSearch has "opensearch" (also when it is told to
 * report an Elasticsearch-compatible version.number). Other forks may name themselves there. */
#ifndef SL_ESINFO_H
#define SL_ESINFO_H

#include <stddef.h>

enum sl_es_dist { SL_ES_DIST_ELASTICSEARCH, SL_ES_DIST_OPENSEARCH, SL_ES_DIST_OTHER };

struct sl_es_info {
    enum sl_es_dist dist;
    char distribution[32]; /* version.distribution as sent (decoded), "" when absent */
    char number[32];       /* version.number, e.g. "2.19.6" */
    int major, minor;      /* leading numbers of number; -1 when it does not start with one */
};

/* Parses body[0..len): one JSON object with a string version.number. Returns 0, or -1 with a
 * reason in err (not a JSON object, no version.number, a value that is not a string or is longer
 * than the fields above). out is filled only on success. */
int sl_es_info_parse(const char *body, size_t len, struct sl_es_info *out, char *err,
                     size_t errlen);

/* The distribution's name for people: "Elasticsearch", "OpenSearch", or version.distribution as
 * sent. Valid as long as info. */
const char *sl_es_info_product(const struct sl_es_info *info);

#endif
