/* A plugin is one input or output type, described by what the engine needs to know of it: its
 * kind, its type name, its configuration keys and the rules across them. The list of plugins
 * (the registry) lives beside them (plugins/registry.c); main hands it to the configuration
 * loader, and `sluice check`, docs/configuration.md and the man pages are made from it, so
 * none of them names a plugin. */
#ifndef SL_PLUGIN_H
#define SL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

struct sl_cfg_loader;
struct sl_cfg_section;
struct sl_config;
struct sl_input_cfg;
struct sl_input_ops;
struct sl_output_cfg;
struct sl_pipeline;

enum sl_plugin_kind { SL_PLUGIN_INPUT, SL_PLUGIN_OUTPUT };

struct sl_plugin {
    enum sl_plugin_kind kind;
    const char *type; /* as written after `type:` */
    /* The value of struct sl_input_cfg/sl_output_cfg's `type` for it (enum sl_input_type or
     * sl_output_type), by which the parts not yet reached by the registry still choose. */
    int type_id;
    const char *title;                    /* "Kafka input": headings in the docs */
    const struct sl_cfg_section *section; /* its keys, on struct sl_input_cfg/sl_output_cfg */
    const char *doc_notes;                /* Markdown after its key table, or NULL */
    /* Rules across keys, on an item that loaded without an error (a struct sl_input_cfg or
     * sl_output_cfg of this type); reports with sl_cfg_err. Optional. */
    void (*check)(struct sl_cfg_loader *L, const struct sl_config *cfg, void *item);

    /* Inputs: creates one on the pipeline's loop; prefetch is its share of the budget for data
     * its client library holds ahead. Returns its state for in_ops, or NULL with err. */
    void *(*create_input)(struct sl_pipeline *p, const struct sl_input_cfg *cfg, uint64_t prefetch,
                          char *err, size_t errlen);
    const struct sl_input_ops *in_ops;
    /* Outputs: creates one and adds it to the pipeline's outputs. Returns 0, or -1 with err. */
    int (*create_output)(struct sl_pipeline *p, const struct sl_output_cfg *cfg, char *err,
                         size_t errlen);
};

struct sl_registry {
    const struct sl_plugin *const *plugins;
    size_t n;
};

#endif
