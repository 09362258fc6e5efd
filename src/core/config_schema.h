/* The configuration's schema, for the loader (core/config.c) and for each plugin's key table and
 * checks: a section is a table of keys, each naming its field by offset, its type, default,
 * bounds, documentation and checks. docs/configuration.md and the man pages are generated from
 * the same tables (scripts/gen-config-doc.c). */
#ifndef SL_CONFIG_SCHEMA_H
#define SL_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sl_cfg_loader;
struct sl_cfg_key;

/* A scalar value on its way to a field. */
struct sl_cfg_val {
    const char *s;   /* expanded */
    const char *raw; /* as written in the file; the only form messages may quote */
    bool secret;     /* s contains text from ${env:} or ${file:} */
    bool null;       /* YAML null: empty plain scalar, ~, null */
    int line;
};

enum sl_cfg_vtype {
    SL_VT_TYPE, /* the `type` discriminator, read before the table */
    SL_VT_STRING,
    SL_VT_SIZE,
    SL_VT_DURATION,
    SL_VT_UINT32,
    SL_VT_INT,
    SL_VT_BOOL,
    SL_VT_ENUM,
    SL_VT_LIST,    /* a list of strings, or one string */
    SL_VT_KVMAP,   /* flat map of scalars */
    SL_VT_SECTION, /* nested mapping with its own table */
    SL_VT_CUSTOM,  /* scalar handled by .set */
};

struct sl_cfg_section {
    const char *where; /* "in service" */
    const struct sl_cfg_key *keys;
    size_t n_keys;
};

struct sl_cfg_key {
    const char *name;
    enum sl_cfg_vtype type;
    size_t off;           /* field inside the section's base struct */
    size_t count_off;     /* SL_VT_LIST, SL_VT_KVMAP: the size_t count */
    const char *def;      /* default, spelled as a user would; NULL = none */
    const char *doc_def;  /* shown in docs instead of def */
    const char *doc_type; /* shown in docs instead of the generic type name */
    const char *doc;
    const char *const *values; /* SL_VT_ENUM, NULL-terminated, index = enum value */
    long long min, max;        /* SL_VT_UINT32, SL_VT_INT */
    uint64_t min_value;        /* SL_VT_SIZE, SL_VT_DURATION */
    const char *min_text;      /* min_value as written in messages */
    bool required;
    bool nullable; /* YAML null leaves the field NULL */
    bool split;    /* SL_VT_LIST: split each entry on whitespace */
    bool owns_str; /* SL_VT_CUSTOM: .set stores a string it allocated at .off (freed with it) */
    int (*check)(struct sl_cfg_loader *L, const struct sl_cfg_key *k, const struct sl_cfg_val *v);
    /* SL_VT_KVMAP: checks each key (check then applies to each value) */
    int (*check_key)(struct sl_cfg_loader *L, const struct sl_cfg_key *k, const char *key,
                     int line);
    int (*set)(struct sl_cfg_loader *L, const struct sl_cfg_key *k, void *base,
               const struct sl_cfg_val *v);
    const struct sl_cfg_section *section;
};

/* Keys in one section's table at most (the elasticsearch output has the most). */
#define SL_CFG_SECTION_KEYS_MAX 64
#define SL_CFG_MIB (1024ull * 1024ull)

#define SL_CFG_FIELD(base, off, type) ((type *)((char *)(base) + (off)))

/* Routing, the same keys on every output; BASE(f) is the offset of field f of struct
 * sl_output_cfg. */
#define SL_CFG_ROUTE_KEYS(BASE)                                                                    \
    {.name = "match",                                                                              \
     .type = SL_VT_LIST,                                                                           \
     .off = BASE(match),                                                                           \
     .count_off = BASE(n_match),                                                                   \
     .def = "**",                                                                                  \
     .split = true,                                                                                \
     .check = sl_cfg_check_pattern,                                                                \
     .doc = "fluentd tag patterns (*, **, {a,b}); space-separated string or a list."},             \
    {                                                                                              \
        .name = "copy", .type = SL_VT_BOOL, .off = BASE(copy), .def = "false",                     \
        .doc = "Take a copy of every matching record and let routing go on to the later outputs "  \
               "(fluentd's copy); false: the first matching output takes the record."              \
    }

/* Field edits, the same keys on every input and output; BASE(f) is the offset of field f of
 * struct sl_input_cfg or sl_output_cfg. */
#define SL_CFG_EDIT_KEYS(BASE)                                                                     \
    {.name = "remove_keys",                                                                        \
     .type = SL_VT_LIST,                                                                           \
     .off = BASE(edits.remove_keys),                                                               \
     .count_off = BASE(edits.n_remove_keys),                                                       \
     .check = sl_cfg_check_path,                                                                   \
     .doc_def = "[]",                                                                              \
     .doc = "Fields to delete (dotted paths for nested fields); applied first."},                  \
        {.name = "rename_keys",                                                                    \
         .type = SL_VT_KVMAP,                                                                      \
         .off = BASE(edits.rename_keys),                                                           \
         .count_off = BASE(edits.n_rename_keys),                                                   \
         .check_key = sl_cfg_check_path_key,                                                       \
         .check = sl_cfg_check_path,                                                               \
         .doc_def = "{}",                                                                          \
         .doc = "from: to field paths; the value moves (after remove_keys)."},                     \
        {.name = "add_fields",                                                                     \
         .type = SL_VT_KVMAP,                                                                      \
         .off = BASE(edits.add_fields),                                                            \
         .count_off = BASE(edits.n_add_fields),                                                    \
         .check_key = sl_cfg_check_path_key,                                                       \
         .check = sl_cfg_check_add_field,                                                          \
         .doc_def = "{}",                                                                          \
         .doc = "path: value, set on every record (replacing a field there); values are strings "  \
                "with ${topic} ${partition} ${offset} ${tag} ${env:NAME}; a value that is only "   \
                "${partition} or ${offset} is a number."},                                         \
        {.name = "include_tag_key",                                                                \
         .type = SL_VT_BOOL,                                                                       \
         .off = BASE(edits.include_tag_key),                                                       \
         .def = "false",                                                                           \
         .doc = "Adds the record's tag under tag_key (as fluentd's include_tag_key)."},            \
    {                                                                                              \
        .name = "tag_key", .type = SL_VT_STRING, .off = BASE(edits.tag_key), .def = "tag",         \
        .check = sl_cfg_check_path, .doc = "Field path for include_tag_key."                       \
    }

/* Reports an error at `line` of the file being loaded (FILE:LINE: message). */
void sl_cfg_err(struct sl_cfg_loader *L, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* s made safe to quote in a one-line message (bounded, no control characters); valid until a
 * few more calls. Quote v->raw, never an expanded secret. */
const char *sl_cfg_q(struct sl_cfg_loader *L, const char *s);
/* The line where `key` of the section at base was written; 0 when it was not (a default). */
int sl_cfg_line(const struct sl_cfg_loader *L, const void *base, const char *key);
/* Whether the service section loaded without an error (rules that read it wait for that). */
bool sl_cfg_service_clean(const struct sl_cfg_loader *L);

/* Replaces the string at base+off (freeing the old one). */
void sl_cfg_set_str(void *base, size_t off, char *s);
/* Stores a copy of s at base+off; -1 after reporting when memory runs out. */
int sl_cfg_set_copy(struct sl_cfg_loader *L, void *base, size_t off, const char *s, int line);
/* host:port (or [v6]:port) with a port from min_port to 65535: 0, else -1. */
int sl_cfg_valid_host_port(const char *s, long min_port);
/* A dotted field path, no part empty: 0, else -1. */
int sl_cfg_check_dotted_path(const char *s);

/* Checks for key tables (.check, .check_key): 0, or -1 after reporting. */
int sl_cfg_check_not_empty(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                           const struct sl_cfg_val *v);
/* A component name: no spaces or control characters. */
int sl_cfg_check_name(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                      const struct sl_cfg_val *v);
/* A tag pattern (match). */
int sl_cfg_check_pattern(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                         const struct sl_cfg_val *v);
/* A readable PEM file. */
int sl_cfg_check_pem_file(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                          const struct sl_cfg_val *v);
/* ${...} placeholders among those listed in `valid` (as written in messages) and, with
 * strftime, % conversions and characters index names allow. */
int sl_cfg_check_template(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                          const struct sl_cfg_val *v, bool strftime, const char *valid);
/* Field paths of the edits. */
int sl_cfg_check_path(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                      const struct sl_cfg_val *v);
int sl_cfg_check_path_key(struct sl_cfg_loader *L, const struct sl_cfg_key *k, const char *key,
                          int line);
int sl_cfg_check_add_field(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                           const struct sl_cfg_val *v);

/* The service section (and its dead_letter part): the keys that are not a plugin's. */
extern const struct sl_cfg_section sl_cfg_service_section, sl_cfg_dead_letter_section;

/* Values shared by several plugins' enum keys (NULL-terminated, index = enum value). */
extern const char *const sl_cfg_compression_values[];
extern const char *const sl_cfg_tls_version_values[];

#endif
