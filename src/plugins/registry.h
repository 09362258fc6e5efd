/* The plugins this build has, in the order the docs list them. */
#ifndef SL_PLUGINS_REGISTRY_H
#define SL_PLUGINS_REGISTRY_H

#include "core/plugin.h"

extern const struct sl_registry sl_builtin_plugins;

#endif
