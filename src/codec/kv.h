/* A key and its value, both owned strings: the shape of every map in the configuration
 * (add_fields, types, headers). Here so that codecs taking such maps need nothing else of ours. */
#ifndef SL_KV_H
#define SL_KV_H

struct sl_kv {
    char *key;
    char *value;
};

#endif
