#include "plugins/registry.h"

extern const struct sl_plugin sl_plugin_in_kafka, sl_plugin_in_forward, sl_plugin_out_elasticsearch,
    sl_plugin_out_forward;

static const struct sl_plugin *const plugins[] = {
    &sl_plugin_in_kafka,
    &sl_plugin_in_forward,
    &sl_plugin_out_elasticsearch,
    &sl_plugin_out_forward,
};

const struct sl_registry sl_builtin_plugins = {plugins, sizeof plugins / sizeof plugins[0]};
