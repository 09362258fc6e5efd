/* Feeds arbitrary bytes to the config loader and checks its contract:
 *   - the result is 0 or -1;
 *   - on -1 there is at least one message and every line is "fuzz.yaml:<line>: <text>";
 *   - on 0 the struct is complete: at least one input and output, defaulted strings non-NULL,
 *     counts and numeric ranges as documented;
 *   - sl_config_free always leaves nothing behind (LeakSanitizer checks). */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "plugins/registry.h"

static char errs[1 << 20];

static void check_errors(void)
{
    const char *p = errs;
    if (*p == '\0') abort();
    while (*p) {
        const char *nl = strchr(p, '\n');
        /* The buffer is large enough that a valid run is never truncated mid-line. */
        if (!nl) abort();
        if (strncmp(p, "fuzz.yaml:", 10) != 0) abort();
        const char *d = p + 10;
        if (!isdigit((unsigned char)*d) || *d == '0') abort();
        while (isdigit((unsigned char)*d))
            d++;
        if (d[0] != ':' || d[1] != ' ' || d + 2 >= nl) abort();
        p = nl + 1;
    }
}

static void check_config(const struct sl_config *c)
{
    const struct sl_service_cfg *s = &c->service;
    if (!c->path || c->n_inputs < 1 || c->n_inputs > SL_CFG_MAX_INPUTS || c->n_outputs < 1 ||
        c->n_outputs > SL_CFG_MAX_OUTPUTS)
        abort();
    if (s->memory_limit < 4 * 1024 * 1024 || !s->dead_letter_path || !s->storage_path) abort();
    for (size_t i = 0; i < c->n_inputs; i++) {
        const struct sl_input_cfg *in = &c->inputs[i];
        const struct sl_kafka_input_cfg *k = &in->kafka;
        if (in->type != SL_INPUT_KAFKA || !in->name || !*in->name || in->line < 1) abort();
        if (!k->brokers || !k->group_id || !k->tag || k->n_topics < 1 ||
            k->n_topics > SL_CFG_MAX_LIST || k->n_librdkafka > SL_CFG_MAX_LIST)
            abort();
        for (size_t j = 0; j < k->n_topics; j++)
            if (!k->topics[j] || !*k->topics[j]) abort();
        for (size_t j = 0; j < k->n_librdkafka; j++)
            if (!k->librdkafka[j].key || !k->librdkafka[j].value) abort();
    }
    for (size_t i = 0; i < c->n_outputs; i++) {
        const struct sl_output_cfg *o = &c->outputs[i];
        const struct sl_es_output_cfg *es = &o->es;
        if (o->type != SL_OUTPUT_ELASTICSEARCH || !o->name || o->line < 1 || o->n_match < 1 ||
            o->n_match > SL_CFG_MAX_LIST)
            abort();
        for (size_t j = 0; j < o->n_match; j++)
            if (!o->match[j] || !*o->match[j]) abort();
        if (es->n_hosts < 1 || es->n_hosts > SL_CFG_MAX_LIST || !es->index) abort();
        for (size_t j = 0; j < es->n_hosts; j++)
            if (!es->hosts[j] || strncmp(es->hosts[j], "http", 4) != 0) abort();
        if (es->concurrency < 1 || es->concurrency > 64 || es->gzip_level < 1 ||
            es->gzip_level > 9 || es->retry_max_ms < es->retry_base_ms || es->retry_base_ms < 1)
            abort();
        if ((es->id == SL_ID_FIELD) != (es->id_field != NULL)) abort();
        if (!es->user != !es->password || es->batch_max_bytes > c->service.memory_limit) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_config cfg;
    int rc = sl_config_load_string(&sl_builtin_plugins, "fuzz.yaml", (const char *)data, size, &cfg, errs, sizeof(errs));
    if (rc == -1) {
        check_errors();
        /* Already freed; freeing again must be harmless. */
        sl_config_free(&cfg);
    } else if (rc == 0) {
        check_config(&cfg);
        sl_config_free(&cfg);
    } else {
        abort();
    }
    return 0;
}
