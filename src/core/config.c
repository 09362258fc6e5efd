/* Configuration loader.
 *
 * The YAML file is loaded with libyaml's document API, then walked against one table of known keys
 * per section (service_keys, dead_letter_keys, kafka_keys, forward_keys, es_keys, fwd_out_keys).
 * The tables are the single source of truth: they drive parsing, defaults (applied by feeding each
 * default string through the same setter a user value goes through, so a documented default can
 * never drift from the real one) and docs/configuration.md (scripts/gen-config-doc.c includes this
 * file and prints them).
 *
 * Every problem is reported, not just the first: the walk keeps going after an error and only the
 * final count decides the result. Messages are "FILE:LINE: message", one per line.
 *
 * Secrets: `${env:NAME}` and `${file:PATH}` inside any scalar value are expanded before validation.
 * Messages only ever quote the text as written in the file (the unexpanded form), or a fragment of
 * a value when that value contained no secret, so a secret never reaches a log. */
#include "core/config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "codec/json.h"
#include "codec/rxparse.h"
#include "codec/timefmt.h"
#include "core/edits.h"
#include "core/tagmatch.h"

#define MIB (1024ull * 1024ull)
/* A secret file larger than this is almost certainly the wrong file. */
#define SECRET_FILE_MAX (64 * 1024)
#define QUOTE_MAX 64
#define N_QBUF 4
/* keys in one section's table (the elasticsearch output has the most) */
#define SECTION_KEYS_MAX 64

struct loader;
struct key_def;

/* A scalar value on its way to a field. */
struct val {
    const char *s;   /* expanded */
    const char *raw; /* as written in the file; the only form messages may quote */
    bool secret;     /* s contains text from ${env:} or ${file:} */
    bool null;       /* YAML null: empty plain scalar, ~, null */
    int line;
};

enum vtype {
    VT_TYPE, /* the `type` discriminator, read before the table */
    VT_STRING,
    VT_SIZE,
    VT_DURATION,
    VT_UINT32,
    VT_INT,
    VT_BOOL,
    VT_ENUM,
    VT_LIST,    /* a list of strings, or one string */
    VT_KVMAP,   /* flat map of scalars */
    VT_SECTION, /* nested mapping with its own table */
    VT_CUSTOM,  /* scalar handled by .set */
};

struct section_def {
    const char *where; /* "in service" */
    const struct key_def *keys;
    size_t n_keys;
};

struct key_def {
    const char *name;
    enum vtype type;
    size_t off;           /* field inside the section's base struct */
    size_t count_off;     /* VT_LIST, VT_KVMAP: the size_t count */
    const char *def;      /* default, spelled as a user would; NULL = none */
    const char *doc_def;  /* shown in docs instead of def */
    const char *doc_type; /* shown in docs instead of the generic type name */
    const char *doc;
    const char *const *values; /* VT_ENUM, NULL-terminated, index = enum value */
    long long min, max;        /* VT_UINT32, VT_INT */
    uint64_t min_value;        /* VT_SIZE, VT_DURATION */
    const char *min_text;      /* min_value as written in messages */
    bool required;
    bool nullable; /* YAML null leaves the field NULL */
    bool split;    /* VT_LIST: split each entry on whitespace */
    int (*check)(struct loader *L, const struct key_def *k, const struct val *v);
    /* VT_KVMAP: checks each key (check then applies to each value) */
    int (*check_key)(struct loader *L, const struct key_def *k, const char *key, int line);
    int (*set)(struct loader *L, const struct key_def *k, void *base, const struct val *v);
    const struct section_def *section;
};

struct loader {
    const char *file;
    yaml_document_t *doc;
    char *errs;
    size_t errlen;
    size_t used;
    unsigned n_errors;
    /* Cross-key checks only run on sections that loaded cleanly: after an error a field may
     * still hold its default, and a complaint about that default would be noise. */
    bool service_clean;
    int storage_path_line; /* 0 while the default applies */
    int weights_line;      /* of the output being loaded; 0 when it has no weights */
    int output_weights_line[SL_CFG_MAX_OUTPUTS];
    bool output_clean[SL_CFG_MAX_OUTPUTS];
    bool input_clean[SL_CFG_MAX_INPUTS];
    char qbuf[N_QBUF][QUOTE_MAX + 8];
    unsigned qi;
};

/* ---- messages ----------------------------------------------------------------------------------
 */

static void err(struct loader *L, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err(struct loader *L, int line, const char *fmt, ...)
{
    L->n_errors++;
    if (!L->errs || L->errlen == 0 || L->used + 1 >= L->errlen) return;
    char *p = L->errs + L->used;
    size_t room = L->errlen - L->used;
    int n = snprintf(p, room, "%s:%d: ", L->file, line < 1 ? 1 : line);
    if (n >= 0 && (size_t)n < room) {
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(p + n, room - (size_t)n, fmt, ap);
        va_end(ap);
        if (m >= 0) n += m;
    }
    if (n < 0) return;
    if ((size_t)n + 1 < room) {
        p[n] = '\n';
        p[n + 1] = '\0';
        L->used += (size_t)n + 1;
    } else {
        L->used = L->errlen - 1; /* truncated: the buffer is full */
    }
}

/* Makes s safe to put inside a one-line message: bounded and without control characters. */
static const char *q(struct loader *L, const char *s)
{
    char *b = L->qbuf[L->qi++ % N_QBUF];
    size_t i = 0;
    for (; i < QUOTE_MAX && s[i]; i++)
        b[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (s[i])
        memcpy(b + i, "...", 4);
    else
        b[i] = '\0';
    return b;
}

static int node_line(const yaml_node_t *n)
{
    return (int)n->start_mark.line + 1;
}

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a scalar";
    }
}

/* ---- sizes and durations -----------------------------------------------------------------------
 */

/* Parses "digits[.digits]" and returns the rest. At most 9 fraction digits keep frac * unit exact.
 */
static const char *parse_decimal(const char *s, uint64_t *ip, uint64_t *frac, uint64_t *den)
{
    if (!isdigit((unsigned char)*s)) return NULL;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*s); s++) {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *s - '0', &v))
            return NULL;
    }
    *ip = v;
    *frac = 0;
    *den = 1;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s)) return NULL;
        for (int n = 0; isdigit((unsigned char)*s); s++, n++) {
            if (n == 9) return NULL;
            *frac = *frac * 10 + (uint64_t)(*s - '0');
            *den *= 10;
        }
    }
    return s;
}

/* ip.frac * unit, which must come out whole. */
static int scale(uint64_t ip, uint64_t frac, uint64_t den, uint64_t unit, uint64_t *out)
{
    uint64_t whole, part;
    if (__builtin_mul_overflow(ip, unit, &whole)) return -1;
    /* frac < 10^9 and unit <= 3.6e6, so this cannot overflow. */
    part = frac * unit;
    if (part % den != 0) return -1;
    if (__builtin_add_overflow(whole, part / den, out)) return -1;
    return 0;
}

int sl_parse_size(const char *s, uint64_t *bytes)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"kb", 1000},
        {"mb", 1000000},
        {"gb", 1000000000},
        {"kib", 1024},
        {"mib", 1024 * 1024},
        {"gib", 1024 * 1024 * 1024},
    };
    uint64_t ip, frac, den;
    if (!s) return -1;
    const char *p = parse_decimal(s, &ip, &frac, &den);
    if (!p) return -1;
    if (*p == ' ' && p[1] != '\0') p++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(p, units[i].name) == 0) return scale(ip, frac, den, units[i].mult, bytes);
    }
    return -1;
}

int sl_parse_duration_ms(const char *s, uint64_t *ms)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    uint64_t ip, frac, den;
    if (!s) return -1;
    const char *p = parse_decimal(s, &ip, &frac, &den);
    if (!p) return -1;
    if (*p == ' ' && p[1] != '\0') p++;
    /* Case-sensitive: "M" for minutes would be easy to misread as months or mega. */
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].name) == 0) return scale(ip, frac, den, units[i].mult, ms);
    }
    return -1;
}

/* ---- secrets -----------------------------------------------------------------------------------
 */

static int read_secret_file(struct loader *L, int line, const char *path, char **out, size_t *len)
{
    /* O_NONBLOCK so that a FIFO cannot hang the loader; only regular files are accepted anyway. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        err(L, line, "cannot read secret file '%s': %s", q(L, path), strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        err(L, line, "secret file '%s' is not a regular file", q(L, path));
        close(fd);
        return -1;
    }
    char *buf = malloc(SECRET_FILE_MAX + 1);
    size_t n = 0;
    ssize_t r = 0;
    while (buf && n <= SECRET_FILE_MAX && (r = read(fd, buf + n, SECRET_FILE_MAX + 1 - n)) > 0)
        n += (size_t)r;
    int e = errno;
    close(fd);
    if (!buf || r < 0) {
        err(L, line, "cannot read secret file '%s': %s", q(L, path),
            buf ? strerror(e) : "no memory");
        free(buf);
        return -1;
    }
    if (n > SECRET_FILE_MAX) {
        err(L, line, "secret file '%s' is larger than %d bytes", q(L, path), SECRET_FILE_MAX);
        free(buf);
        return -1;
    }
    if (memchr(buf, '\0', n)) {
        err(L, line, "secret file '%s' contains a NUL byte", q(L, path));
        free(buf);
        return -1;
    }
    if (n > 0 && buf[n - 1] == '\n') n--;
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static bool valid_env_name(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
    for (size_t i = 1; i < n; i++) {
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return false;
    }
    return true;
}

/* Returns a malloc'd copy of raw with ${env:} and ${file:} expanded, or NULL after reporting. */
static char *expand(struct loader *L, const char *raw, int line, bool *secret)
{
    struct sbuf b = {0};
    const char *p = raw;
    bool ok = true;
    *secret = false;
    sb_add(&b, "", 0);
    while (*p) {
        bool env = strncmp(p, "${env:", 6) == 0;
        bool file = strncmp(p, "${file:", 7) == 0;
        if (!env && !file) {
            sb_add(&b, p, 1);
            p++;
            continue;
        }
        const char *arg = p + (env ? 6 : 7);
        const char *end = strchr(arg, '}');
        if (!end) {
            err(L, line, "unterminated '%s' reference", env ? "${env:" : "${file:");
            ok = false;
            break;
        }
        char *name = strndup(arg, (size_t)(end - arg));
        if (!name) {
            b.oom = true;
            break;
        }
        if (env) {
            const char *v = valid_env_name(name, strlen(name)) ? getenv(name) : NULL;
            if (!valid_env_name(name, strlen(name))) {
                err(L, line, "invalid environment variable name '%s'", q(L, name));
                ok = false;
            } else if (!v) {
                err(L, line, "environment variable %s is not set", name);
                ok = false;
            } else {
                sb_add(&b, v, strlen(v));
            }
        } else if (*name == '\0') {
            err(L, line, "empty path in '${file:}'");
            ok = false;
        } else {
            char *content;
            size_t n;
            if (read_secret_file(L, line, name, &content, &n) == 0) {
                sb_add(&b, content, n);
                free(content);
            } else {
                ok = false;
            }
        }
        free(name);
        *secret = true;
        p = end + 1;
    }
    if (b.oom) {
        err(L, line, "out of memory");
        ok = false;
    }
    if (!ok) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- field access ------------------------------------------------------------------------------
 */

#define FIELD(base, off, type) ((type *)((char *)(base) + (off)))

static void set_str(void *base, size_t off, char *s)
{
    char **f = FIELD(base, off, char *);
    free(*f);
    *f = s;
}

static void clear_list(void *base, const struct key_def *k)
{
    char **items = FIELD(base, k->off, char *);
    size_t *n = FIELD(base, k->count_off, size_t);
    for (size_t i = 0; i < *n; i++) {
        free(items[i]);
        items[i] = NULL;
    }
    *n = 0;
}

static void clear_kv(void *base, const struct key_def *k)
{
    struct sl_kv *kv = FIELD(base, k->off, struct sl_kv);
    size_t *n = FIELD(base, k->count_off, size_t);
    for (size_t i = 0; i < *n; i++) {
        free(kv[i].key);
        free(kv[i].value);
        kv[i].key = kv[i].value = NULL;
    }
    *n = 0;
}

/* ---- validators --------------------------------------------------------------------------------
 */

static int check_not_empty(struct loader *L, const struct key_def *k, const struct val *v)
{
    if (*v->s) return 0;
    err(L, v->line, "'%s' must not be empty", k->name);
    return -1;
}

/* One entry of a forward output's weights; remembers the line for the length check. */
static int check_weight(struct loader *L, const struct key_def *k, const struct val *v)
{
    char *end;
    errno = 0;
    long w = strtol(v->s, &end, 10);
    if (!L->weights_line) L->weights_line = v->line;
    if (*v->s && !*end && errno == 0 && w >= 0 && w <= 100) return 0;
    err(L, v->line, "'%s' entries must be integers from 0 to 100, got '%s'", k->name, q(L, v->raw));
    return -1;
}

/* Remembers where storage_path was set; cross_checks tests it when an input uses ack: stored. */
static int check_storage_path(struct loader *L, const struct key_def *k, const struct val *v)
{
    if (check_not_empty(L, k, v) != 0) return -1;
    L->storage_path_line = v->line;
    return 0;
}

static int check_name(struct loader *L, const struct key_def *k, const struct val *v)
{
    for (const char *p = v->s; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            err(L, v->line, "'%s' must not contain spaces or control characters", k->name);
            return -1;
        }
    }
    return check_not_empty(L, k, v);
}

static int check_url(struct loader *L, const struct key_def *k, const struct val *v)
{
    const char *host = NULL;
    if (strncmp(v->s, "http://", 7) == 0)
        host = v->s + 7;
    else if (strncmp(v->s, "https://", 8) == 0)
        host = v->s + 8;
    if (host && *host && *host != '/') return 0;
    err(L, v->line, "'%s' entry '%s' must be a URL starting with http:// or https://", k->name,
        q(L, v->secret ? v->raw : v->s));
    return -1;
}

static int valid_host_port(const char *s, long min_port);

/* A Forward server to connect to: host:port with a port 1..65535. */
static int check_server(struct loader *L, const struct key_def *k, const struct val *v)
{
    if (valid_host_port(v->s, 1) == 0) return 0;
    err(L, v->line, "'%s' entry '%s' must be host:port", k->name, q(L, v->secret ? v->raw : v->s));
    return -1;
}

static int check_pattern(struct loader *L, const struct key_def *k, const struct val *v)
{
    char msg[128];
    struct sl_tagpat *p = sl_tagpat_compile(v->s, msg, sizeof(msg));
    if (p) {
        sl_tagpat_free(p);
        return 0;
    }
    err(L, v->line, "invalid pattern '%s' in '%s': %s", q(L, v->secret ? v->raw : v->s), k->name,
        msg);
    return -1;
}

/* Checks ${...} placeholders (and, when strftime is set, % conversions) in a template. */
static int check_template(struct loader *L, const struct key_def *k, const struct val *v,
                          bool strftime, const char *valid)
{
    int bad = 0;
    for (const char *p = v->s; *p; p++) {
        if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p, '}');
            if (!end) {
                err(L, v->line, "unterminated '${' in '%s'", k->name);
                return -1;
            }
            size_t n = (size_t)(end - p - 2);
            const char *name = p + 2;
            /* `valid` lists the accepted placeholders as written in messages */
            char ph[40];
            bool ok = false;
            if (n + 3 < sizeof ph) {
                snprintf(ph, sizeof ph, "${%.*s}", (int)n, name);
                ok = strstr(valid, ph) != NULL;
            }
            if (n > 7 && strncmp(name, "record.", 7) == 0 && strstr(valid, "${record.")) {
                ok = true;
                /* The path is dotted field names; an empty one can never match a field. */
                for (const char *c = name + 6; c < end; c++) {
                    if (*c == '.' && (c + 1 == end || c[1] == '.')) ok = false;
                }
                if (!ok) {
                    err(L, v->line, "empty field name in a ${record.<path>} placeholder in '%s'",
                        k->name);
                    bad = -1;
                    p = end;
                    continue;
                }
            }
            if (!ok) {
                char frag[QUOTE_MAX];
                snprintf(frag, sizeof(frag), "%.*s", (int)(end - p + 1), p);
                err(L, v->line, "unknown placeholder '%s' in '%s' (valid: %s)",
                    v->secret ? "(secret)" : q(L, frag), k->name, valid);
                bad = -1;
            }
            p = end;
        } else if (strftime && p[0] == '%') {
            if (p[1] == '\0') {
                err(L, v->line, "'%%' at the end of '%s' (write %%%% for a literal %%)", k->name);
                return -1;
            }
            if (!strchr("YmdHMSjy%", p[1])) {
                char frag[3] = {'%', p[1], '\0'};
                err(L, v->line,
                    "unsupported time conversion '%s' in '%s' (valid: %%Y %%m %%d %%H %%M %%S %%j "
                    "%%y %%%%)",
                    v->secret ? "(secret)" : q(L, frag), k->name);
                bad = -1;
            }
            p++;
        } else if (strftime && (isupper((unsigned char)*p) || strchr(" \\/*?\"<>|,#", *p))) {
            /* Elasticsearch rejects these in index names; better now than on every bulk item. */
            char frag[2] = {*p, '\0'};
            err(L, v->line, "'%s' contains '%s', which Elasticsearch does not allow in index names",
                k->name, v->secret ? "(secret)" : q(L, frag));
            return -1;
        }
    }
    return bad;
}

static int check_tag_template(struct loader *L, const struct key_def *k, const struct val *v)
{
    if (check_not_empty(L, k, v) < 0) return -1;
    return check_template(L, k, v, false, "${topic}");
}

static int check_index_template(struct loader *L, const struct key_def *k, const struct val *v)
{
    if (check_not_empty(L, k, v) < 0) return -1;
    return check_template(L, k, v, true, "${topic}, ${tag}, ${record.<path>}");
}

static int check_dotted_path(const char *s)
{
    if (*s == '\0' || *s == '.') return -1;
    for (; *s; s++) {
        if (*s == '.' && (s[1] == '\0' || s[1] == '.')) return -1;
    }
    return 0;
}

/* Librdkafka properties that sluice owns: overriding them would break delivery guarantees or
 * fight a dedicated key. */
static const struct {
    const char *key;
    const char *why;
} reserved_rdkafka[] = {
    {"group.id", "use 'group_id'"},
    {"bootstrap.servers", "use 'brokers'"},
    {"metadata.broker.list", "use 'brokers'"},
    {"enable.auto.offset.store", "sluice stores offsets only after delivery"},
};

/* ---- custom setters ----------------------------------------------------------------------------
 */

static int set_id(struct loader *L, const struct key_def *k, void *base, const struct val *v)
{
    struct sl_es_output_cfg *es = &((struct sl_output_cfg *)base)->es;
    if (strcmp(v->s, "kafka") == 0 || strcmp(v->s, "none") == 0) {
        es->id = v->s[0] == 'k' ? SL_ID_KAFKA : SL_ID_NONE;
        set_str(es, offsetof(struct sl_es_output_cfg, id_field), NULL);
        return 0;
    }
    if (strncmp(v->s, "field:", 6) == 0) {
        if (check_dotted_path(v->s + 6) < 0) {
            err(L, v->line, "'%s: field:' needs a dotted field path, e.g. field:request.id",
                k->name);
            return -1;
        }
        char *path = strdup(v->s + 6);
        if (!path) {
            err(L, v->line, "out of memory");
            return -1;
        }
        es->id = SL_ID_FIELD;
        set_str(es, offsetof(struct sl_es_output_cfg, id_field), path);
        return 0;
    }
    if (strcmp(v->s, "forward") == 0) {
        err(L, v->line, "'%s: forward' is not supported by this build yet", k->name);
        return -1;
    }
    err(L, v->line, "invalid value '%s' for '%s' (valid: kafka, none, field:<path>)", q(L, v->raw),
        k->name);
    return -1;
}

/* min_port 0 lets a listener take any free port (tests); a port to connect to must be >= 1. */
static int valid_host_port(const char *s, long min_port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return -1;
    if (s[0] == '[') {
        if (colon[-1] != ']' || colon - s < 3) return -1;
    } else {
        for (const char *p = s; p < colon; p++) {
            if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_')) return -1;
        }
    }
    const char *port = colon + 1;
    size_t n = strlen(port);
    if (n == 0 || n > 5 || strspn(port, "0123456789") != n) return -1;
    long v = strtol(port, NULL, 10);
    return v >= min_port && v <= 65535 ? 0 : -1;
}

static int set_listen(struct loader *L, const struct key_def *k, void *base, const struct val *v)
{
    if (v->null || v->s[0] == '\0' || strcmp(v->s, "off") == 0) {
        set_str(base, k->off, NULL);
        return 0;
    }
    if (valid_host_port(v->s, 1) < 0) {
        err(L, v->line, "'%s' must be host:port or \"off\", got '%s'", k->name, q(L, v->raw));
        return -1;
    }
    char *s = strdup(v->s);
    if (!s) {
        err(L, v->line, "out of memory");
        return -1;
    }
    set_str(base, k->off, s);
    return 0;
}

/* A PEM file sluice reads at start-up (certificates, keys, CA bundles): checked now so a typo is
 * a FILE:LINE error instead of a failed start. The contents are checked when they are loaded. */
static int check_pem_file(struct loader *L, const struct key_def *k, const struct val *v)
{
    if (check_not_empty(L, k, v) != 0) return -1;
    struct stat st;
    int fd = open(v->s, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        err(L, v->line, "'%s': cannot read '%s': %s", k->name, q(L, v->secret ? v->raw : v->s),
            strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    char head[4096];
    ssize_t n = S_ISREG(st.st_mode) ? read(fd, head, sizeof head - 1) : -1;
    close(fd);
    if (n < 0 || !memmem(head, (size_t)n, "-----BEGIN ", 11)) {
        err(L, v->line, "'%s': '%s' is not a PEM file (no \"-----BEGIN \" line)", k->name,
            q(L, v->secret ? v->raw : v->s));
        return -1;
    }
    return 0;
}

/* Permission bits as octal text: "0660", "660", "0600". */
static int set_unix_mode(struct loader *L, const struct key_def *k, void *base, const struct val *v)
{
    char *end = NULL;
    unsigned long m = v->null || !*v->s ? 01000 : strtoul(v->s, &end, 8);
    if (m > 0777 || !end || *end) {
        err(L, v->line, "'%s' must be octal permission bits such as \"0660\", got '%s'", k->name,
            q(L, v->null ? "" : v->raw));
        return -1;
    }
    *(uint32_t *)((char *)base + k->off) = (uint32_t)m;
    return 0;
}

/* A user name in the forward input's users map. */
static int check_user_key(struct loader *L, const struct key_def *k, const char *key, int line)
{
    if (*key) return 0;
    err(L, line, "'%s' has an empty user name", k->name);
    return -1;
}

/* The forward input's listen address: required to be host:port; port 0 binds any free port. */
static int set_fwd_listen(struct loader *L, const struct key_def *k, void *base,
                          const struct val *v)
{
    if (!v->null && strcmp(v->s, "off") == 0) {
        set_str(base, k->off, NULL); /* only with unix_path (cross_checks) */
        return 0;
    }
    if (v->null || valid_host_port(v->s, 0) < 0) {
        err(L, v->line, "'%s' must be host:port (port 0..65535) or \"off\", got '%s'", k->name,
            q(L, v->null ? "" : v->raw));
        return -1;
    }
    char *s = strdup(v->s);
    if (!s) {
        err(L, v->line, "out of memory");
        return -1;
    }
    set_str(base, k->off, s);
    return 0;
}

static int set_fwd_ack(struct loader *L, const struct key_def *k, void *base, const struct val *v)
{
    struct sl_forward_input_cfg *fc = &((struct sl_input_cfg *)base)->forward;
    if (!v->null && strcmp(v->s, "delivered") == 0) {
        fc->ack = SL_FWD_ACK_DELIVERED;
        return 0;
    }
    if (!v->null && strcmp(v->s, "stored") == 0) {
        fc->ack = SL_FWD_ACK_STORED;
        return 0;
    }
    err(L, v->line, "invalid value '%s' for '%s' (valid: delivered, stored)",
        q(L, v->null ? "" : v->raw), k->name);
    return -1;
}

/* A field path as written in edits: dotted names, none empty. */
static int check_path_key(struct loader *L, const struct key_def *k, const char *key, int line)
{
    if (check_dotted_path(key) == 0) return 0;
    err(L, line, "'%s' key '%s' is not a field path (dotted names, none empty)", k->name,
        q(L, key));
    return -1;
}

static int check_path(struct loader *L, const struct key_def *k, const struct val *v)
{
    return check_path_key(L, k, v->s, v->line);
}

static int check_add_field(struct loader *L, const struct key_def *k, const struct val *v)
{
    return check_template(L, k, v, false, "${topic}, ${partition}, ${offset}, ${tag}");
}

static int check_type_name(struct loader *L, const struct key_def *k, const struct val *v)
{
    static const char *const names[] = {"int", "integer", "float", "bool", "boolean", "string"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(v->s, names[i]) == 0) return 0;
    }
    err(L, v->line, "invalid type '%s' in '%s' (valid: int, float, bool, string)", q(L, v->raw),
        k->name);
    return -1;
}

/* A top-level field name: where Elasticsearch and Kibana look for @timestamp. */
static int check_field_name(struct loader *L, const struct key_def *k, const struct val *v)
{
    if (*v->s && !strchr(v->s, '.')) return 0;
    err(L, v->line, "'%s' must be a top-level field name (no dots), got '%s'", k->name,
        q(L, v->raw));
    return -1;
}

/* time_format: strptime-style, or a Java SimpleDateFormat pattern (no '%'), as
 * kafka-fluentd-consumer's fluentd.record.time.pattern took it, converted here. */
static int set_time_format(struct loader *L, const struct key_def *k, void *base,
                           const struct val *v)
{
    char conv[256], why[160];
    const char *use = v->s;
    if (v->null) {
        set_str(base, k->off, NULL);
        return 0;
    }
    if (!strchr(v->s, '%')) {
        if (sl_time_fmt_from_java(v->s, conv, sizeof conv, why, sizeof why) != 0) {
            err(L, v->line, "'%s' (a SimpleDateFormat pattern, as it has no %%): %s", k->name, why);
            return -1;
        }
        use = conv;
    } else if (sl_time_fmt_valid(v->s, why, sizeof why) != 0) {
        err(L, v->line, "'%s': %s", k->name, why);
        return -1;
    }
    char *s = strdup(use);
    if (!s) {
        err(L, v->line, "out of memory");
        return -1;
    }
    set_str(base, k->off, s);
    return 0;
}

/* ---- key tables --------------------------------------------------------------------------------
 */

static const char *const unmatched_values[] = {"dead_letter", "drop", NULL};
static const char *const log_level_values[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_format_values[] = {"text", "json", NULL};
static const char *const format_values[] = {"json", "text", "regexp", NULL};
static const char *const on_parse_error_values[] = {"dead_letter", "as_text", NULL};
static const char *const op_values[] = {"create", "index", NULL};
static const char *const id_missing_values[] = {"dead_letter", "source", NULL};
static const char *const compression_values[] = {"none", "gzip", NULL};
static const char *const tls_version_values[] = {"1.2", "1.3", NULL};

#define SVC(f) offsetof(struct sl_service_cfg, f)
#define IN(f) offsetof(struct sl_input_cfg, f)
#define KAF(f) offsetof(struct sl_input_cfg, kafka.f)
#define FWD(f) offsetof(struct sl_input_cfg, forward.f)
#define OUT(f) offsetof(struct sl_output_cfg, f)
#define ES(f) offsetof(struct sl_output_cfg, es.f)
#define FO(f) offsetof(struct sl_output_cfg, fwd.f)

/* Field edits, the same keys on every input and output; BASE is IN or OUT. */
#define EDIT_KEYS(BASE)                                                                            \
    {.name = "remove_keys",                                                                        \
     .type = VT_LIST,                                                                              \
     .off = BASE(edits.remove_keys),                                                               \
     .count_off = BASE(edits.n_remove_keys),                                                       \
     .check = check_path,                                                                          \
     .doc_def = "[]",                                                                              \
     .doc = "Fields to delete (dotted paths for nested fields); applied first."},                  \
        {.name = "rename_keys",                                                                    \
         .type = VT_KVMAP,                                                                         \
         .off = BASE(edits.rename_keys),                                                           \
         .count_off = BASE(edits.n_rename_keys),                                                   \
         .check_key = check_path_key,                                                              \
         .check = check_path,                                                                      \
         .doc_def = "{}",                                                                          \
         .doc = "from: to field paths; the value moves (after remove_keys)."},                     \
        {.name = "add_fields",                                                                     \
         .type = VT_KVMAP,                                                                         \
         .off = BASE(edits.add_fields),                                                            \
         .count_off = BASE(edits.n_add_fields),                                                    \
         .check_key = check_path_key,                                                              \
         .check = check_add_field,                                                                 \
         .doc_def = "{}",                                                                          \
         .doc = "path: value, set on every record (replacing a field there); values are strings "  \
                "with ${topic} ${partition} ${offset} ${tag} ${env:NAME}; a value that is only "   \
                "${partition} or ${offset} is a number."},                                         \
        {.name = "include_tag_key",                                                                \
         .type = VT_BOOL,                                                                          \
         .off = BASE(edits.include_tag_key),                                                       \
         .def = "false",                                                                           \
         .doc = "Adds the record's tag under tag_key (as fluentd's include_tag_key)."},            \
    {                                                                                              \
        .name = "tag_key", .type = VT_STRING, .off = BASE(edits.tag_key), .def = "tag",            \
        .check = check_path, .doc = "Field path for include_tag_key."                              \
    }

static const struct key_def dead_letter_keys[] = {
    {.name = "path",
     .type = VT_STRING,
     .off = SVC(dead_letter_path),
     .def = "./dead-letter",
     .check = check_not_empty,
     .doc = "Directory of the dead-letter store (NDJSON files, one record per line)."},
    {.name = "max_size",
     .type = VT_SIZE,
     .off = SVC(dead_letter_max_size),
     .def = "1GiB",
     .doc = "Size cap of the store; when it is full, inputs pause instead of dropping."},
};

static const struct section_def dead_letter_section = {
    .where = "in service.dead_letter",
    .keys = dead_letter_keys,
    .n_keys = sizeof(dead_letter_keys) / sizeof(dead_letter_keys[0]),
};

static const struct key_def service_keys[] = {
    {.name = "memory_limit",
     .type = VT_SIZE,
     .off = SVC(memory_limit),
     .def = "64MiB",
     .min_value = 4 * MIB,
     .min_text = "4MiB",
     .doc = "Budget for all buffered event bytes (Kafka prefetch, batches, requests in flight)."},
    {.name = "http_listen",
     .type = VT_CUSTOM,
     .off = SVC(http_listen),
     .def = "127.0.0.1:2020",
     .doc_type = "host:port",
     .set = set_listen,
     .doc = "Status server: /metrics (Prometheus), /healthz, /status (JSON), / (live page). "
            "\"off\" or \"\" disables it."},
    {.name = "dead_letter",
     .type = VT_SECTION,
     .section = &dead_letter_section,
     .doc = "Dead-letter store: {path, max_size}."},
    {.name = "storage_path",
     .type = VT_STRING,
     .off = SVC(storage_path),
     .def = "./buffer",
     .check = check_storage_path,
     .doc = "Directory for forward inputs with ack: stored: each keeps its requests in "
            "<storage_path>/<input name>/seg-*.fwd until their events are finished."},
    {.name = "storage_max_size",
     .type = VT_SIZE,
     .off = SVC(storage_max_size),
     .def = "1GiB",
     .min_value = MIB,
     .min_text = "1MiB",
     .doc = "Size cap of each ack: stored input's store; when full, that input stops reading "
            "its connections (no ack) until delivered events free space."},
    {.name = "shutdown_timeout",
     .type = VT_DURATION,
     .off = SVC(shutdown_timeout_ms),
     .def = "30s",
     .doc = "How long SIGTERM waits for in-flight work before committing and exiting."},
    {.name = "unmatched",
     .type = VT_ENUM,
     .off = SVC(unmatched),
     .def = "dead_letter",
     .values = unmatched_values,
     .doc = "Fate of events whose tag matches no output (drop is still counted)."},
    {.name = "log_level",
     .type = VT_ENUM,
     .off = SVC(log_level),
     .def = "info",
     .values = log_level_values,
     .doc = "Least severe level that is logged."},
    {.name = "log_interval",
     .type = VT_DURATION,
     .off = SVC(log_interval_ms),
     .def = "10s",
     .doc = "Rate-limit window: one line per (component, error kind) per window."},
    {.name = "log_format",
     .type = VT_ENUM,
     .off = SVC(log_format),
     .def = "text",
     .values = log_format_values,
     .doc = "text: \"TIME LEVEL COMPONENT: message\"; json: one JSON object per line."},
    {.name = "log_file",
     .type = VT_STRING,
     .off = SVC(log_file),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(stderr)",
     .doc = "Append logs to this file instead of stderr; SIGHUP reopens it (log rotation)."},
    {.name = "stall_after",
     .type = VT_DURATION,
     .off = SVC(stall_after_ms),
     .def = "60s",
     .doc = "/healthz answers 503 when records are pending and none finished for this long."},
    {.name = "stats_interval",
     .type = VT_DURATION,
     .off = SVC(stats_interval_ms),
     .def = "10s",
     .doc = "Period of the stats log line; 0 turns it off."},
};

static const struct section_def service_section = {
    .where = "in service",
    .keys = service_keys,
    .n_keys = sizeof(service_keys) / sizeof(service_keys[0]),
};

static const struct key_def kafka_keys[] = {
    {.name = "type",
     .type = VT_TYPE,
     .required = true,
     .doc_type = "kafka",
     .doc = "Selects this input."},
    {.name = "name",
     .type = VT_STRING,
     .off = IN(name),
     .doc_def = "kafka.<index>",
     .check = check_name,
     .doc = "Name in metrics and logs; index is the position in inputs."},
    {.name = "brokers",
     .type = VT_STRING,
     .off = KAF(brokers),
     .required = true,
     .check = check_not_empty,
     .doc = "Bootstrap servers, host:port[,host:port...]."},
    {.name = "group_id",
     .type = VT_STRING,
     .off = KAF(group_id),
     .def = "sluice",
     .check = check_not_empty,
     .doc = "Consumer group; run more processes with it to scale out."},
    {.name = "topics",
     .type = VT_LIST,
     .off = KAF(topics),
     .count_off = KAF(n_topics),
     .required = true,
     .check = check_not_empty,
     .doc = "Topic names, or regexes when they start with ^ (a list or one string)."},
    {.name = "tag",
     .type = VT_STRING,
     .off = KAF(tag),
     .def = "kafka.${topic}",
     .check = check_tag_template,
     .doc = "Tag template for routing; ${topic} is the only placeholder."},
    {.name = "format",
     .type = VT_ENUM,
     .off = KAF(format),
     .def = "json",
     .values = format_values,
     .doc = "How message values are read: json objects, text lines (as {\"message\": line}) "
            "or regexp (named groups of pattern become fields)."},
    {.name = "pattern",
     .type = VT_STRING,
     .off = KAF(pattern),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(none)",
     .doc = "format regexp: PCRE2 pattern with named groups (?<name>...), matched on bytes; a "
            "line that does not match is a parse error (see on_parse_error)."},
    {.name = "types",
     .type = VT_KVMAP,
     .off = KAF(types),
     .count_off = KAF(n_types),
     .check = check_type_name,
     .doc_def = "{}",
     .doc = "format regexp: field: int|float|bool|string; text that does not convert becomes "
            "null and is counted."},
    {.name = "on_parse_error",
     .type = VT_ENUM,
     .off = KAF(on_parse_error),
     .def = "dead_letter",
     .values = on_parse_error_values,
     .doc = "What happens to a value that is not valid JSON (format json) or does not match "
            "pattern (format regexp): dead-lettered, or kept as {\"message\": text}."},
    {.name = "time_key",
     .type = VT_STRING,
     .off = KAF(time_key),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(Kafka timestamp)",
     .doc = "Record field holding the event time; unset = the Kafka message timestamp. A time "
            "that does not parse leaves the Kafka timestamp and is counted."},
    {.name = "time_format",
     .type = VT_CUSTOM,
     .doc_type = "string",
     .off = KAF(time_format),
     .nullable = true,
     .check = check_not_empty,
     .set = set_time_format,
     .doc_def = "(RFC 3339 or epoch)",
     .doc = "strptime-style format of time_key (%Y %m %d %H %M %S %b %z %N %L %s ...), or a Java "
            "SimpleDateFormat pattern (dd/MMM/yyyy:HH:mm:ss Z) when it has no %; unset = RFC "
            "3339, epoch seconds or milliseconds recognised."},
    {.name = "metadata_key",
     .type = VT_STRING,
     .off = KAF(metadata_key),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(off)",
     .doc = "Adds {topic, partition, offset, key} to each record under this field."},
    {.name = "librdkafka",
     .type = VT_KVMAP,
     .off = KAF(librdkafka),
     .count_off = KAF(n_librdkafka),
     .doc_def = "{}",
     .doc = "librdkafka properties passed through as strings (e.g. security.protocol)."},
    EDIT_KEYS(IN),
};

_Static_assert(sizeof(kafka_keys) / sizeof(kafka_keys[0]) <= SECTION_KEYS_MAX,
               "raise SECTION_KEYS_MAX");
static const struct section_def kafka_section = {
    .where = "in kafka input",
    .keys = kafka_keys,
    .n_keys = sizeof(kafka_keys) / sizeof(kafka_keys[0]),
};

static const struct key_def forward_keys[] = {
    {.name = "type",
     .type = VT_TYPE,
     .required = true,
     .doc_type = "forward",
     .doc = "Selects this input: Fluentd Forward protocol v1 server (TCP, plus UDP heartbeat)."},
    {.name = "name",
     .type = VT_STRING,
     .off = IN(name),
     .doc_def = "forward.<index>",
     .check = check_name,
     .doc = "Name in metrics and logs; index is the position in inputs."},
    {.name = "listen",
     .type = VT_CUSTOM,
     .off = FWD(listen),
     .def = "0.0.0.0:24224",
     .doc_type = "host:port",
     .set = set_fwd_listen,
     .doc = "TCP address to accept Forward connections on; UDP heartbeats are answered on the "
            "same port. Port 0 picks a free port (logged as \"listening on HOST:PORT\"). \"off\" "
            "(only with unix_path): no TCP listener."},
    {.name = "unix_path",
     .type = VT_STRING,
     .off = FWD(unix_path),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(none)",
     .doc = "Also accept Forward connections on this Unix stream socket (same protocol, acks, "
            "handshake and backpressure; no TLS). A stale socket file is replaced at start; the "
            "file is removed at exit."},
    {.name = "unix_mode",
     .type = VT_CUSTOM,
     .off = FWD(unix_mode),
     .def = "0660",
     .doc_type = "octal",
     .set = set_unix_mode,
     .doc = "Permission bits of the unix_path socket file."},
    {.name = "tls",
     .type = VT_BOOL,
     .off = FWD(tls),
     .def = "false",
     .doc = "The TCP listener speaks TLS (needs tls_cert_file and tls_key_file). A failed TLS "
            "handshake closes only that connection (logged with the OpenSSL reason, counted in "
            "sluice_forward_tls_handshake_failures_total)."},
    {.name = "tls_cert_file",
     .type = VT_STRING,
     .off = FWD(tls_cert_file),
     .nullable = true,
     .check = check_pem_file,
     .doc_def = "(none)",
     .doc = "PEM server certificate (chain) for tls."},
    {.name = "tls_key_file",
     .type = VT_STRING,
     .off = FWD(tls_key_file),
     .nullable = true,
     .check = check_pem_file,
     .doc_def = "(none)",
     .doc = "PEM private key of tls_cert_file; start-up fails if they do not match."},
    {.name = "tls_ca_file",
     .type = VT_STRING,
     .off = FWD(tls_ca_file),
     .nullable = true,
     .check = check_pem_file,
     .doc_def = "(none)",
     .doc = "PEM CAs that client certificates must chain to (with tls_verify_client)."},
    {.name = "tls_verify_client",
     .type = VT_BOOL,
     .off = FWD(tls_verify_client),
     .def = "false",
     .doc = "Mutual TLS: a client without a certificate signed by tls_ca_file is refused."},
    {.name = "tls_min_version",
     .type = VT_ENUM,
     .off = FWD(tls_min_version),
     .def = "1.2",
     .values = tls_version_values,
     .doc = "Oldest TLS version accepted."},
    {.name = "tag_prefix",
     .type = VT_STRING,
     .off = FWD(tag_prefix),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(none)",
     .doc = "Prepended as \"<prefix>.\" to every incoming tag before routing."},
    {.name = "ack",
     .type = VT_CUSTOM,
     .off = FWD(ack),
     .def = "delivered",
     .doc_type = "delivered|stored",
     .set = set_fwd_ack,
     .doc = "When a request's chunk is acknowledged: delivered = once every event of it and of "
            "the connection's earlier chunks is delivered or durably dead-lettered; stored = "
            "once the request is fsync'd under service.storage_path/<name>/ (replayed after a "
            "restart, deleted once its events are finished; see docs/guarantees.md)."},
    {.name = "shared_key",
     .type = VT_STRING,
     .off = FWD(shared_key),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(no handshake)",
     .doc = "Enables the HELO/PING/PONG handshake with this key; use ${env:NAME} or ${file:PATH}."},
    {.name = "users",
     .type = VT_KVMAP,
     .off = FWD(users),
     .count_off = FWD(n_users),
     .check_key = check_user_key,
     .doc_def = "{}",
     .doc = "User authentication in the handshake (needs shared_key): username: password; a "
            "PING whose user or password digest does not match gets PONG false "
            "\"username/password mismatch\" and is closed. Use ${env:NAME} or ${file:PATH}."},
    {.name = "self_hostname",
     .type = VT_STRING,
     .off = FWD(self_hostname),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(host name)",
     .doc = "Server host name sent in PONG (part of its digest)."},
    {.name = "handshake_timeout",
     .type = VT_DURATION,
     .off = FWD(handshake_timeout_ms),
     .def = "10s",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "A client that has not sent a valid PING this long after HELO is disconnected."},
    {.name = "max_frame_size",
     .type = VT_SIZE,
     .off = FWD(max_frame_size),
     .def = "6MiB",
     .min_value = 1024,
     .min_text = "1KiB",
     .doc = "Largest request, and largest decompressed gzip payload; a larger one is a protocol "
            "error that closes that connection without an ack. At most 3/8 of "
            "service.memory_limit (the pipeline's share, where a request is held whole)."},
    {.name = "max_connections",
     .type = VT_UINT32,
     .off = FWD(max_connections),
     .def = "1024",
     .min = 1,
     .max = 65536,
     .doc = "Open connections; further ones are accepted and closed at once (logged)."},
    {.name = "idle_timeout",
     .type = VT_DURATION,
     .off = FWD(idle_timeout_ms),
     .def = "300s",
     .doc = "A connection that sent nothing and awaits no ack this long is closed; 0 = never."},
    {.name = "id_from_kafka_fields",
     .type = VT_BOOL,
     .off = FWD(id_from_kafka_fields),
     .def = "false",
     .doc = "Take kafka_topic/kafka_partition/kafka_offset from each record as its Kafka "
            "coordinates (ids)."},
    EDIT_KEYS(IN),
};

_Static_assert(sizeof(forward_keys) / sizeof(forward_keys[0]) <= SECTION_KEYS_MAX,
               "raise SECTION_KEYS_MAX");
static const struct section_def forward_section = {
    .where = "in forward input",
    .keys = forward_keys,
    .n_keys = sizeof(forward_keys) / sizeof(forward_keys[0]),
};

static const struct key_def es_keys[] = {
    {.name = "type",
     .type = VT_TYPE,
     .required = true,
     .doc_type = "elasticsearch",
     .doc = "Selects this output."},
    {.name = "name",
     .type = VT_STRING,
     .off = OUT(name),
     .doc_def = "elasticsearch.<index>",
     .check = check_name,
     .doc = "Name in metrics and logs; index is the position in outputs."},
    {.name = "match",
     .type = VT_LIST,
     .off = OUT(match),
     .count_off = OUT(n_match),
     .def = "**",
     .split = true,
     .check = check_pattern,
     .doc = "fluentd tag patterns (*, **, {a,b}); space-separated string or a list."},
    {.name = "copy",
     .type = VT_BOOL,
     .off = OUT(copy),
     .def = "false",
     .doc = "Take a copy of every matching record and let routing go on to the later outputs "
            "(fluentd's copy); false: the first matching output takes the record."},
    {.name = "hosts",
     .type = VT_LIST,
     .off = ES(hosts),
     .count_off = ES(n_hosts),
     .def = "http://127.0.0.1:9200",
     .check = check_url,
     .doc = "Elasticsearch URLs, tried in order on failure (a list or one string)."},
    {.name = "index",
     .type = VT_STRING,
     .off = ES(index),
     .def = "logs-${topic}-%Y.%m.%d",
     .check = check_index_template,
     .doc = "Index template: ${topic}, ${tag}, ${record.<path>}, %Y %m %d %H %M %S %j %y %%."},
    {.name = "id",
     .type = VT_CUSTOM,
     .off = ES(id),
     .def = "kafka",
     .set = set_id,
     .doc_type = "kafka | none | field:<path>",
     .doc = "Document _id: from Kafka coordinates (idempotent), none, or a record field."},
    {.name = "id_missing",
     .type = VT_ENUM,
     .off = ES(id_missing),
     .def = "dead_letter",
     .values = id_missing_values,
     .doc = "With id field:<path>, a record whose field is absent, empty, not a string or "
            "number, or longer than 512 bytes (a cluster refuses the whole request for it): "
            "dead_letter it (reason \"no usable id\"), or take the id from its source (Kafka "
            "coordinates, or the Forward chunk and index), so a redelivery still finds the same "
            "document. Counted either way (sluice_output_id_missing_total)."},
    {.name = "op",
     .type = VT_ENUM,
     .off = ES(op),
     .def = "create",
     .values = op_values,
     .doc = "Bulk action; with create a 409 conflict counts as delivered."},
    {.name = "batch_max_bytes",
     .type = VT_SIZE,
     .off = ES(batch_max_bytes),
     .def = "5MiB",
     .min_value = 1024,
     .min_text = "1KiB",
     .doc = "Flush a bulk request at this body size."},
    {.name = "batch_max_wait",
     .type = VT_DURATION,
     .off = ES(batch_max_wait_ms),
     .def = "1s",
     .doc = "Longest a record waits in a batch. A batch goes earlier when it is full, or as soon "
            "as the inputs have read everything that is ready and fewer than concurrency "
            "requests are in flight or waiting to be retried: a quiet pipeline sends each record "
            "within about one round trip. While every slot is busy records accumulate, so there "
            "are at most concurrency requests per round trip of the cluster, however many "
            "records arrive."},
    {.name = "concurrency",
     .type = VT_UINT32,
     .off = ES(concurrency),
     .def = "4",
     .min = 1,
     .max = 64,
     .doc = "Bulk requests in flight."},
    {.name = "compression",
     .type = VT_ENUM,
     .off = ES(compression),
     .def = "none",
     .values = compression_values,
     .doc = "Request body compression."},
    {.name = "gzip_level",
     .type = VT_INT,
     .off = ES(gzip_level),
     .def = "1",
     .min = 1,
     .max = 9,
     .doc = "gzip level when compression is gzip."},
    {.name = "request_timeout",
     .type = VT_DURATION,
     .off = ES(request_timeout_ms),
     .def = "60s",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "Whole-request timeout; a timeout is retried."},
    {.name = "retry_base",
     .type = VT_DURATION,
     .off = ES(retry_base_ms),
     .def = "200ms",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "First retry backoff; doubles with jitter."},
    {.name = "retry_max",
     .type = VT_DURATION,
     .off = ES(retry_max_ms),
     .def = "30s",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "Backoff cap (at least retry_base)."},
    {.name = "item_retry_timeout",
     .type = VT_DURATION,
     .off = ES(item_retry_timeout_ms),
     .def = "0s",
     .doc = "0 (the default): an item the cluster refuses with 401, 403, 408, 429 or 5xx is "
            "retried until it succeeds, and its partition is held once records pile up behind "
            "it. Otherwise, an item still refused this long after the output took it is "
            "dead-lettered with reason \"retries exhausted\" and its last status and error. "
            "Whole requests that fail (connection, timeout, 429 or 5xx for the request) are "
            "retried for ever either way: the cluster did not judge the item."},
    {.name = "user",
     .type = VT_STRING,
     .off = ES(user),
     .nullable = true,
     .doc_def = "(none)",
     .doc = "Basic auth user; needs password."},
    {.name = "password",
     .type = VT_STRING,
     .off = ES(password),
     .nullable = true,
     .doc_def = "(none)",
     .doc = "Basic auth password; use ${env:NAME} or ${file:PATH}."},
    {.name = "api_key",
     .type = VT_STRING,
     .off = ES(api_key),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(none)",
     .doc = "Sent as \"Authorization: ApiKey <value>\"; excludes user/password."},
    {.name = "ca_file",
     .type = VT_STRING,
     .off = ES(ca_file),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(system CAs)",
     .doc = "PEM bundle to verify servers."},
    {.name = "tls_verify",
     .type = VT_BOOL,
     .off = ES(tls_verify),
     .def = "true",
     .doc = "Verify server certificates and host names."},
    {.name = "timestamp_key",
     .type = VT_STRING,
     .off = ES(timestamp_key),
     .def = "@timestamp",
     .nullable = true,
     .check = check_field_name,
     .doc = "The event time is added under this top-level field (RFC 3339 UTC, as precise as the "
            "time) unless the record has it already; null turns it off."},
    {.name = "pipeline",
     .type = VT_STRING,
     .off = ES(pipeline),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(none)",
     .doc = "Ingest pipeline for every document (the bulk request's pipeline parameter)."},
    {.name = "data_stream",
     .type = VT_STRING,
     .off = ES(data_stream),
     .nullable = true,
     .check = check_index_template,
     .doc_def = "(none)",
     .doc = "Write to this data stream instead of index (same placeholders); forces op create. "
            "It needs a matching index template with data_stream (see template_file)."},
    {.name = "template_name",
     .type = VT_STRING,
     .off = ES(template_name),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(none)",
     .doc = "Name of the composable index template installed from template_file at start-up "
            "and after a reconnect."},
    {.name = "template_file",
     .type = VT_STRING,
     .off = ES(template_file),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(none)",
     .doc = "JSON body of _index_template/<template_name>; read and checked at start-up."},
    {.name = "template_overwrite",
     .type = VT_BOOL,
     .off = ES(template_overwrite),
     .def = "false",
     .doc = "Replace an existing template of that name; false leaves one that exists alone."},
    {.name = "ilm_policy_name",
     .type = VT_STRING,
     .off = ES(ilm_policy_name),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(none)",
     .doc = "Name of the ILM policy installed from ilm_policy_file before the template. "
            "Elasticsearch only: OpenSearch has no _ilm API (its lifecycle is the ISM plugin), "
            "so against OpenSearch sluice stops at start with exit code 2."},
    {.name = "ilm_policy_file",
     .type = VT_STRING,
     .off = ES(ilm_policy_file),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(none)",
     .doc = "JSON body of _ilm/policy/<ilm_policy_name> ({\"policy\": {...}})."},
    {.name = "ilm_policy_overwrite",
     .type = VT_BOOL,
     .off = ES(ilm_policy_overwrite),
     .def = "false",
     .doc = "Replace an existing policy of that name; false leaves one that exists alone."},
    {.name = "setup_timeout",
     .type = VT_DURATION,
     .off = ES(setup_timeout_ms),
     .def = "60s",
     .doc = "Batches wait this long for the cluster's GET / (which distribution and version "
            "it is) and the policy, template and data stream to be in place; after it they are "
            "sent anyway and the setup keeps retrying (logged, counted)."},
    EDIT_KEYS(OUT),
};

_Static_assert(sizeof(es_keys) / sizeof(es_keys[0]) <= SECTION_KEYS_MAX, "raise SECTION_KEYS_MAX");
static const struct section_def es_section = {
    .where = "in elasticsearch output",
    .keys = es_keys,
    .n_keys = sizeof(es_keys) / sizeof(es_keys[0]),
};

static const struct key_def fwd_out_keys[] = {
    {.name = "type",
     .type = VT_TYPE,
     .required = true,
     .doc_type = "forward",
     .doc = "Selects this output: Fluentd Forward protocol client (PackedForward over TCP)."},
    {.name = "name",
     .type = VT_STRING,
     .off = OUT(name),
     .doc_def = "forward.<index>",
     .check = check_name,
     .doc = "Name in metrics and logs; index is the position in outputs."},
    {.name = "match",
     .type = VT_LIST,
     .off = OUT(match),
     .count_off = OUT(n_match),
     .def = "**",
     .split = true,
     .check = check_pattern,
     .doc = "fluentd tag patterns (*, **, {a,b}); space-separated string or a list."},
    {.name = "copy",
     .type = VT_BOOL,
     .off = OUT(copy),
     .def = "false",
     .doc = "Take a copy of every matching record and let routing go on to the later outputs "
            "(fluentd's copy); false: the first matching output takes the record."},
    {.name = "servers",
     .type = VT_LIST,
     .off = FO(servers),
     .count_off = FO(n_servers),
     .def = "127.0.0.1:24224",
     .check = check_server,
     .doc = "Forward servers as host:port; the next one is used when connecting or the "
            "handshake fails (a list or one string)."},
    {.name = "weights",
     .type = VT_LIST,
     .off = FO(weights),
     .count_off = FO(n_weights),
     .check = check_weight,
     .doc_def = "(failover in order)",
     .doc = "One integer 0..100 per server: batches go round-robin to the healthy servers in "
            "proportion to their weights (concurrency then counts per server); 0 marks a "
            "standby, used only while every weighted server is down. Unset: servers is a "
            "failover list."},
    {.name = "require_ack",
     .type = VT_BOOL,
     .off = FO(require_ack),
     .def = "true",
     .doc = "Send a chunk id and count a batch delivered only when the server acks it "
            "(at-least-once). false: delivered once written (at-most-once at the receiver)."},
    {.name = "ack_timeout",
     .type = VT_DURATION,
     .off = FO(ack_timeout_ms),
     .def = "30s",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "Time from starting to write a request to its ack; then the connection is dropped "
            "and the batch resent with the same chunk id."},
    {.name = "batch_max_bytes",
     .type = VT_SIZE,
     .off = FO(batch_max_bytes),
     .def = "4MiB",
     .min_value = 1024,
     .min_text = "1KiB",
     .doc = "Largest request before compression; at most 4MiB (Fluent Bit drops bigger ones)."},
    {.name = "batch_max_wait",
     .type = VT_DURATION,
     .off = FO(batch_max_wait_ms),
     .def = "1s",
     .doc = "Longest a record waits in a batch. A batch goes earlier when it is full, or as soon "
            "as the inputs have read everything that is ready and a connection is free (not "
            "carrying a request, not in backoff): a quiet pipeline sends each record within "
            "about one round trip. While every connection carries a request records accumulate, "
            "so there are at most concurrency requests per round trip to the server (its ack "
            "included), however many records arrive."},
    {.name = "concurrency",
     .type = VT_UINT32,
     .off = FO(concurrency),
     .def = "1",
     .min = 1,
     .max = 64,
     .doc = "Connections, each with at most one request awaiting its ack."},
    {.name = "compression",
     .type = VT_ENUM,
     .off = FO(compression),
     .def = "none",
     .values = compression_values,
     .doc = "gzip sends CompressedPackedForward (compressed: gzip)."},
    {.name = "gzip_level",
     .type = VT_INT,
     .off = FO(gzip_level),
     .def = "1",
     .min = 1,
     .max = 9,
     .doc = "gzip level when compression is gzip."},
    {.name = "shared_key",
     .type = VT_STRING,
     .off = FO(shared_key),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(no handshake)",
     .doc = "Answer the server's HELO with PING and verify its PONG digest; use ${env:NAME} or "
            "${file:PATH}."},
    {.name = "username",
     .type = VT_STRING,
     .off = FO(username),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(none)",
     .doc = "User for servers that ask for user authentication in HELO (with password)."},
    {.name = "password",
     .type = VT_STRING,
     .off = FO(password),
     .nullable = true,
     .doc_def = "(none)",
     .doc = "Password of username (sent only as a salted SHA-512 digest); use ${env:NAME} or "
            "${file:PATH}."},
    {.name = "tls",
     .type = VT_BOOL,
     .off = FO(tls),
     .def = "false",
     .doc = "Connect with TLS (SNI is the server's host name)."},
    {.name = "tls_ca_file",
     .type = VT_STRING,
     .off = FO(tls_ca_file),
     .nullable = true,
     .check = check_pem_file,
     .doc_def = "(system CAs)",
     .doc = "PEM CAs to verify servers with."},
    {.name = "tls_verify",
     .type = VT_BOOL,
     .off = FO(tls_verify),
     .def = "true",
     .doc = "Verify the server certificate and that it names the host (or IP) in servers."},
    {.name = "tls_cert_file",
     .type = VT_STRING,
     .off = FO(tls_cert_file),
     .nullable = true,
     .check = check_pem_file,
     .doc_def = "(none)",
     .doc = "PEM client certificate for mutual TLS (with tls_key_file)."},
    {.name = "tls_key_file",
     .type = VT_STRING,
     .off = FO(tls_key_file),
     .nullable = true,
     .check = check_pem_file,
     .doc_def = "(none)",
     .doc = "PEM private key of tls_cert_file."},
    {.name = "tls_min_version",
     .type = VT_ENUM,
     .off = FO(tls_min_version),
     .def = "1.2",
     .values = tls_version_values,
     .doc = "Oldest TLS version offered."},
    {.name = "self_hostname",
     .type = VT_STRING,
     .off = FO(self_hostname),
     .nullable = true,
     .check = check_not_empty,
     .doc_def = "(host name)",
     .doc = "Client host name sent in PING (part of its digest)."},
    {.name = "connect_timeout",
     .type = VT_DURATION,
     .off = FO(connect_timeout_ms),
     .def = "10s",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "Limit for the TCP connect plus the TLS and Forward handshakes."},
    {.name = "retry_base",
     .type = VT_DURATION,
     .off = FO(retry_base_ms),
     .def = "200ms",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "First retry backoff; doubles with jitter."},
    {.name = "retry_max",
     .type = VT_DURATION,
     .off = FO(retry_max_ms),
     .def = "30s",
     .min_value = 1,
     .min_text = "1ms",
     .doc = "Backoff cap (at least retry_base)."},
    {.name = "kafka_fields",
     .type = VT_BOOL,
     .off = FO(kafka_fields),
     .def = "true",
     .doc = "Add the Kafka topic, partition and offset of records from Kafka as top-level "
            "fields, so the far side can derive the same ids."},
    {.name = "kafka_topic_key",
     .type = VT_STRING,
     .off = FO(kafka_topic_key),
     .def = "kafka_topic",
     .check = check_not_empty,
     .doc = "Field name of the topic (a string)."},
    {.name = "kafka_partition_key",
     .type = VT_STRING,
     .off = FO(kafka_partition_key),
     .def = "kafka_partition",
     .check = check_not_empty,
     .doc = "Field name of the partition (an integer)."},
    {.name = "kafka_offset_key",
     .type = VT_STRING,
     .off = FO(kafka_offset_key),
     .def = "kafka_offset",
     .check = check_not_empty,
     .doc = "Field name of the offset (an integer)."},
    EDIT_KEYS(OUT),
};

_Static_assert(sizeof(fwd_out_keys) / sizeof(fwd_out_keys[0]) <= SECTION_KEYS_MAX,
               "raise SECTION_KEYS_MAX");
static const struct section_def fwd_out_section = {
    .where = "in forward output",
    .keys = fwd_out_keys,
    .n_keys = sizeof(fwd_out_keys) / sizeof(fwd_out_keys[0]),
};

static const char *const top_keys[] = {"service", "inputs", "outputs"};
static const char *const input_types[] = {"kafka", "forward"};
static const char *const output_types[] = {"elasticsearch", "forward"};
/* Types a later build adds (inputs and outputs share the list): "not supported by this build
 * yet" instead of "unknown". */
static const char *const future_types[] = {"file", "stdout"};

/* ---- generic setters ---------------------------------------------------------------------------
 */

static const char *type_noun(enum vtype t)
{
    switch (t) {
    case VT_SIZE:
        return "a size";
    case VT_DURATION:
        return "a duration";
    case VT_UINT32:
    case VT_INT:
        return "an integer";
    case VT_BOOL:
        return "a boolean";
    case VT_LIST:
        return "a string or a list of strings";
    case VT_KVMAP:
    case VT_SECTION:
        return "a mapping";
    default:
        return "a string";
    }
}

static int parse_bool(const char *s, bool *b)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *b = strcasecmp(s, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

static void list_values(const char *const *values, char *out, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; values[i] && used < n; i++)
        used += (size_t)snprintf(out + used, n - used, "%s%s", i ? ", " : "", values[i]);
}

static int add_list_item(struct loader *L, const struct key_def *k, void *base, const struct val *v)
{
    char **items = FIELD(base, k->off, char *);
    size_t *n = FIELD(base, k->count_off, size_t);
    const char *p = v->s;
    if (k->split && p[strspn(p, " \t\r\n")] == '\0') {
        err(L, v->line, "'%s' must not be empty", k->name);
        return -1;
    }
    do {
        size_t len = k->split ? strcspn(p, " \t\r\n") : strlen(p);
        if (k->split && len == 0 && *p) {
            p++;
            continue;
        }
        if (*n >= SL_CFG_MAX_LIST) {
            err(L, v->line, "too many entries in '%s' (max %d)", k->name, SL_CFG_MAX_LIST);
            return -1;
        }
        char *item = strndup(p, len);
        if (!item) {
            err(L, v->line, "out of memory");
            return -1;
        }
        struct val one = *v;
        one.s = item;
        if (k->check && k->check(L, k, &one) < 0) {
            free(item);
            return -1;
        }
        items[(*n)++] = item;
        p += len;
    } while (k->split && *p);
    return 0;
}

/* Applies one scalar to the field described by k. */
static int set_scalar(struct loader *L, const struct key_def *k, void *base, const struct val *v)
{
    uint64_t u;
    if (k->type == VT_CUSTOM) return k->set(L, k, base, v);
    if (v->null && k->nullable) {
        set_str(base, k->off, NULL);
        return 0;
    }
    if (v->null && k->type != VT_LIST) {
        err(L, v->line, "missing value for '%s'", k->name);
        return -1;
    }
    switch (k->type) {
    case VT_STRING: {
        if (k->check && k->check(L, k, v) < 0) return -1;
        char *s = strdup(v->s);
        if (!s) {
            err(L, v->line, "out of memory");
            return -1;
        }
        set_str(base, k->off, s);
        return 0;
    }
    case VT_SIZE:
        if (sl_parse_size(v->s, &u) < 0) {
            err(L, v->line,
                "invalid size '%s' for '%s' (e.g. 512KiB, 64MiB, 5MB, or a number of bytes)",
                q(L, v->raw), k->name);
            return -1;
        }
        if (u < k->min_value) {
            err(L, v->line, "'%s' must be at least %s, got '%s'", k->name, k->min_text,
                q(L, v->raw));
            return -1;
        }
        *FIELD(base, k->off, uint64_t) = u;
        return 0;
    case VT_DURATION:
        if (sl_parse_duration_ms(v->s, &u) < 0) {
            err(L, v->line,
                "invalid duration '%s' for '%s' (e.g. 500ms, 30s, 5m, 1h, or a number of seconds)",
                q(L, v->raw), k->name);
            return -1;
        }
        if (u < k->min_value) {
            err(L, v->line, "'%s' must be at least %s, got '%s'", k->name, k->min_text,
                q(L, v->raw));
            return -1;
        }
        *FIELD(base, k->off, uint64_t) = u;
        return 0;
    case VT_UINT32:
    case VT_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(v->s, &end, 10);
        if (end == v->s || *end || errno || isspace((unsigned char)v->s[0])) {
            err(L, v->line, "'%s' must be an integer, got '%s'", k->name, q(L, v->raw));
            return -1;
        }
        if (x < k->min || x > k->max) {
            err(L, v->line, "'%s' must be between %lld and %lld, got '%s'", k->name, k->min, k->max,
                q(L, v->raw));
            return -1;
        }
        if (k->type == VT_UINT32)
            *FIELD(base, k->off, uint32_t) = (uint32_t)x;
        else
            *FIELD(base, k->off, int) = (int)x;
        return 0;
    }
    case VT_BOOL: {
        bool b;
        if (parse_bool(v->s, &b) < 0) {
            err(L, v->line, "'%s' must be true or false (or yes/no, on/off), got '%s'", k->name,
                q(L, v->raw));
            return -1;
        }
        *FIELD(base, k->off, bool) = b;
        return 0;
    }
    case VT_ENUM:
        for (int i = 0; k->values[i]; i++) {
            if (strcmp(v->s, k->values[i]) == 0) {
                /* Enums here are int-sized: every enum in config.h has only small constants. */
                *FIELD(base, k->off, int) = i;
                return 0;
            }
        }
        char valid[128];
        list_values(k->values, valid, sizeof(valid));
        err(L, v->line, "invalid value '%s' for '%s' (valid: %s)", q(L, v->raw), k->name, valid);
        return -1;
    case VT_LIST:
        if (v->null) {
            err(L, v->line, "missing value for '%s'", k->name);
            return -1;
        }
        clear_list(base, k);
        return add_list_item(L, k, base, v);
    default:
        err(L, v->line, "'%s' must be %s, not a scalar", k->name, type_noun(k->type));
        return -1;
    }
}

/* ---- YAML walking ------------------------------------------------------------------------------
 */

static bool is_null_scalar(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* Reads a scalar node into v; on success the caller frees v->s (cast away const). */
static int read_scalar(struct loader *L, const yaml_node_t *n, struct val *v)
{
    const char *raw = (const char *)n->data.scalar.value;
    v->raw = raw;
    v->line = node_line(n);
    v->null = is_null_scalar(n);
    v->secret = false;
    if (strlen(raw) != n->data.scalar.length) {
        err(L, v->line, "value contains a NUL character");
        return -1;
    }
    v->s = expand(L, raw, v->line, &v->secret);
    return v->s ? 0 : -1;
}

static yaml_node_t *node(struct loader *L, int id)
{
    return yaml_document_get_node(L->doc, id);
}

static const char *key_text(struct loader *L, const yaml_node_pair_t *pair)
{
    yaml_node_t *k = node(L, pair->key);
    if (!k || k->type != YAML_SCALAR_NODE) return NULL;
    if (strlen((const char *)k->data.scalar.value) != k->data.scalar.length) return NULL;
    return (const char *)k->data.scalar.value;
}

/* Checks that every key is a string, reports duplicates. Returns false for pair i if it must be
 * skipped (bad key or a repeat of an earlier key). */
static bool pair_usable(struct loader *L, yaml_node_t *map, yaml_node_pair_t *pair)
{
    yaml_node_t *kn = node(L, pair->key);
    const char *key = key_text(L, pair);
    if (!key) {
        err(L, kn ? node_line(kn) : node_line(map), "mapping keys must be strings, not %s",
            kn && kn->type != YAML_SCALAR_NODE ? node_kind(kn) : "this");
        return false;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < pair; p++) {
        const char *other = key_text(L, p);
        if (other && strcmp(other, key) == 0) {
            err(L, node_line(kn), "duplicate key '%s' (first at line %d)", q(L, key),
                node_line(node(L, p->key)));
            return false;
        }
    }
    return true;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40) return 99;
    size_t row[41];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* "unknown key 'x' in service (did you mean 'y'?)", or the list of valid keys. */
static void unknown_key(struct loader *L, int line, const char *key, const char *where,
                        const char *const *names, size_t n_names)
{
    const char *best = NULL;
    size_t best_d = 3;
    char valid[512];
    size_t used = 0;
    valid[0] = '\0';
    for (size_t i = 0; i < n_names; i++) {
        size_t d = edit_distance(key, names[i]);
        if (d < best_d && d < strlen(names[i])) {
            best = names[i];
            best_d = d;
        }
        if (used < sizeof(valid))
            used += (size_t)snprintf(valid + used, sizeof(valid) - used, "%s%s", i ? ", " : "",
                                     names[i]);
    }
    if (best)
        err(L, line, "unknown key '%s' %s (did you mean '%s'?)", q(L, key), where, best);
    else
        err(L, line, "unknown key '%s' %s (valid: %s)", q(L, key), where, valid);
}

static void load_section(struct loader *L, const struct section_def *sd, void *base,
                         yaml_node_t *map);

static void load_kvmap(struct loader *L, const struct key_def *k, void *base, yaml_node_t *map)
{
    struct sl_kv *kv = FIELD(base, k->off, struct sl_kv);
    size_t *n = FIELD(base, k->count_off, size_t);
    clear_kv(base, k);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        if (!pair_usable(L, map, p)) continue;
        const char *key = key_text(L, p);
        yaml_node_t *vn = node(L, p->value);
        int line = node_line(node(L, p->key));
        bool reserved = false;
        for (size_t i = 0; i < sizeof(reserved_rdkafka) / sizeof(reserved_rdkafka[0]); i++) {
            if (strcmp(key, reserved_rdkafka[i].key) == 0) {
                err(L, line, "'%s.%s' is managed by sluice: %s", k->name, key,
                    reserved_rdkafka[i].why);
                reserved = true;
            }
        }
        if (reserved) continue;
        if (vn->type != YAML_SCALAR_NODE) {
            err(L, node_line(vn), "'%s.%s' must be a scalar, not %s", k->name, q(L, key),
                node_kind(vn));
            continue;
        }
        struct val v;
        if (read_scalar(L, vn, &v) < 0) continue;
        if (v.null) {
            err(L, v.line, "missing value for '%s.%s'", k->name, q(L, key));
            free((char *)v.s);
            continue;
        }
        if ((k->check_key && k->check_key(L, k, key, line) < 0) ||
            (k->check && k->check(L, k, &v) < 0)) {
            free((char *)v.s);
            continue;
        }
        if (*n >= SL_CFG_MAX_LIST) {
            err(L, line, "too many entries in '%s' (max %d)", k->name, SL_CFG_MAX_LIST);
            free((char *)v.s);
            return;
        }
        char *kc = strdup(key);
        if (!kc) {
            err(L, line, "out of memory");
            free((char *)v.s);
            return;
        }
        kv[*n].key = kc;
        kv[*n].value = (char *)v.s;
        (*n)++;
    }
}

/* Applies a YAML value node to key k. */
static void load_value(struct loader *L, const struct key_def *k, void *base, yaml_node_t *vn)
{
    if (k->type == VT_SECTION || k->type == VT_KVMAP) {
        if (is_null_scalar(vn))
            return; /* "dead_letter:" with nothing under it: keep the defaults */
        if (vn->type != YAML_MAPPING_NODE) {
            err(L, node_line(vn), "'%s' must be a mapping, not %s", k->name, node_kind(vn));
            return;
        }
        if (k->type == VT_SECTION)
            load_section(L, k->section, base, vn);
        else
            load_kvmap(L, k, base, vn);
        return;
    }
    if (vn->type == YAML_SEQUENCE_NODE && k->type == VT_LIST) {
        clear_list(base, k);
        if (vn->data.sequence.items.start == vn->data.sequence.items.top) {
            err(L, node_line(vn), "'%s' must not be an empty list", k->name);
            return;
        }
        for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top;
             it++) {
            yaml_node_t *in = node(L, *it);
            if (in->type != YAML_SCALAR_NODE) {
                err(L, node_line(in), "entries of '%s' must be strings, not %s", k->name,
                    node_kind(in));
                continue;
            }
            struct val v;
            if (read_scalar(L, in, &v) < 0) continue;
            int rc = add_list_item(L, k, base, &v);
            free((char *)v.s);
            if (rc < 0 && *FIELD(base, k->count_off, size_t) >= SL_CFG_MAX_LIST) return;
        }
        return;
    }
    if (vn->type != YAML_SCALAR_NODE) {
        err(L, node_line(vn), "'%s' must be %s, not %s", k->name, type_noun(k->type),
            node_kind(vn));
        return;
    }
    struct val v;
    if (read_scalar(L, vn, &v) < 0) return;
    set_scalar(L, k, base, &v);
    free((char *)v.s);
}

static void load_section(struct loader *L, const struct section_def *sd, void *base,
                         yaml_node_t *map)
{
    const char *names[SECTION_KEYS_MAX];
    bool seen[SECTION_KEYS_MAX] = {false};
    assert(sd->n_keys <= SECTION_KEYS_MAX);
    for (size_t i = 0; i < sd->n_keys; i++)
        names[i] = sd->keys[i].name;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        if (!pair_usable(L, map, p)) continue;
        const char *key = key_text(L, p);
        size_t i = 0;
        while (i < sd->n_keys && strcmp(sd->keys[i].name, key) != 0)
            i++;
        if (i == sd->n_keys) {
            unknown_key(L, node_line(node(L, p->key)), key, sd->where, names, sd->n_keys);
            continue;
        }
        seen[i] = true;
        if (sd->keys[i].type != VT_TYPE) load_value(L, &sd->keys[i], base, node(L, p->value));
    }
    for (size_t i = 0; i < sd->n_keys; i++) {
        if (sd->keys[i].required && !seen[i])
            err(L, node_line(map), "missing required key '%s' %s", sd->keys[i].name, sd->where);
    }
}

/* Runs every default through set_scalar, exactly as if the user had written it. */
static void apply_defaults(struct loader *L, const struct section_def *sd, void *base)
{
    for (size_t i = 0; i < sd->n_keys; i++) {
        const struct key_def *k = &sd->keys[i];
        if (k->type == VT_SECTION) {
            apply_defaults(L, k->section, base);
        } else if (k->def) {
            struct val v = {.s = k->def, .raw = k->def, .line = 0};
            set_scalar(L, k, base, &v);
        }
    }
}

/* ---- top level ---------------------------------------------------------------------------------
 */

struct component {
    const char *kind; /* "input" */
    const char *const *types;
    size_t n_types;
    const struct section_def *section;
};

static int default_name(struct loader *L, char **field, const char *type, size_t index, int line)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s.%zu", type, index);
    *field = strdup(buf);
    if (*field) return 0;
    err(L, line, "out of memory");
    return -1;
}

/* Finds the item's `type`. Returns the index in c->types, or -1 after reporting. */
static int component_type(struct loader *L, const struct component *c, yaml_node_t *item)
{
    yaml_node_t *tn = NULL;
    for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top;
         p++) {
        const char *key = key_text(L, p);
        if (key && strcmp(key, "type") == 0) {
            tn = node(L, p->value);
            break;
        }
    }
    if (!tn) {
        err(L, node_line(item), "missing required key 'type' in %s", c->kind);
        return -1;
    }
    if (tn->type != YAML_SCALAR_NODE) {
        err(L, node_line(tn), "'type' must be a string, not %s", node_kind(tn));
        return -1;
    }
    struct val v;
    if (read_scalar(L, tn, &v) < 0) return -1;
    int found = -1;
    for (size_t i = 0; i < c->n_types; i++) {
        if (strcmp(v.s, c->types[i]) == 0) found = (int)i;
    }
    if (found < 0) {
        bool future = false;
        for (size_t i = 0; i < sizeof(future_types) / sizeof(future_types[0]); i++)
            future = future || strcmp(v.s, future_types[i]) == 0;
        char valid[128];
        size_t used = 0;
        valid[0] = '\0';
        for (size_t i = 0; i < c->n_types; i++)
            used += (size_t)snprintf(valid + used, sizeof(valid) - used, "%s%s", i ? ", " : "",
                                     c->types[i]);
        if (future)
            err(L, v.line, "%s type '%s' is not supported by this build yet", c->kind, v.s);
        else
            err(L, v.line, "unknown %s type '%s' (valid: %s)", c->kind, q(L, v.raw), valid);
    }
    free((char *)v.s);
    return found;
}

/* What differs between the inputs list and the outputs list. */
_Static_assert(sizeof(enum sl_input_type) == sizeof(int) &&
                   sizeof(enum sl_output_type) == sizeof(int),
               "load_list stores the type enums as int");
struct component_list {
    struct component c;
    const struct section_def *const *sections; /* by type index */
    const int *type_values;                    /* enum sl_input_type / sl_output_type */
    size_t max;
    size_t item_size;
    size_t type_off, name_off, line_off; /* fields of struct sl_input_cfg / sl_output_cfg */
};

/* Loads each mapping of list into items[*n...]; clean[i] says whether item i loaded without an
 * error, weights_line[i] (outputs only) where its `weights` key was. */
static void load_list(struct loader *L, const struct component_list *cl, void *items, size_t *n,
                      bool *clean, int *weights_line, yaml_node_t *list)
{
    size_t index = 0;
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++, index++) {
        yaml_node_t *item = node(L, *it);
        if (item->type != YAML_MAPPING_NODE) {
            err(L, node_line(item), "each %s must be a mapping, not %s", cl->c.kind,
                node_kind(item));
            continue;
        }
        if (*n >= cl->max) {
            err(L, node_line(item), "too many %ss (max %zu)", cl->c.kind, cl->max);
            return;
        }
        int t = component_type(L, &cl->c, item);
        if (t < 0) continue;
        char *base = (char *)items + (*n)++ * cl->item_size;
        *(int *)(base + cl->type_off) = cl->type_values[t];
        int line = node_line(item);
        *(int *)(base + cl->line_off) = line;
        unsigned before = L->n_errors;
        apply_defaults(L, cl->sections[t], base);
        default_name(L, (char **)(base + cl->name_off), cl->c.types[t], index, line);
        L->weights_line = 0;
        load_section(L, cl->sections[t], base, item);
        if (weights_line) weights_line[*n - 1] = L->weights_line;
        clean[*n - 1] = L->n_errors == before;
    }
}

static void load_inputs(struct loader *L, struct sl_config *cfg, yaml_node_t *list)
{
    static const struct section_def *const sections[] = {&kafka_section, &forward_section};
    static const int types[] = {SL_INPUT_KAFKA, SL_INPUT_FORWARD};
    static const struct component_list cl = {
        .c = {"input", input_types, 2, NULL},
        .sections = sections,
        .type_values = types,
        .max = SL_CFG_MAX_INPUTS,
        .item_size = sizeof(struct sl_input_cfg),
        .type_off = offsetof(struct sl_input_cfg, type),
        .name_off = offsetof(struct sl_input_cfg, name),
        .line_off = offsetof(struct sl_input_cfg, line),
    };
    load_list(L, &cl, cfg->inputs, &cfg->n_inputs, L->input_clean, NULL, list);
}

static void load_outputs(struct loader *L, struct sl_config *cfg, yaml_node_t *list)
{
    static const struct section_def *const sections[] = {&es_section, &fwd_out_section};
    static const int types[] = {SL_OUTPUT_ELASTICSEARCH, SL_OUTPUT_FORWARD};
    static const struct component_list cl = {
        .c = {"output", output_types, 2, NULL},
        .sections = sections,
        .type_values = types,
        .max = SL_CFG_MAX_OUTPUTS,
        .item_size = sizeof(struct sl_output_cfg),
        .type_off = offsetof(struct sl_output_cfg, type),
        .name_off = offsetof(struct sl_output_cfg, name),
        .line_off = offsetof(struct sl_output_cfg, line),
    };
    load_list(L, &cl, cfg->outputs, &cfg->n_outputs, L->output_clean, L->output_weights_line, list);
}

/* format regexp and its companions. */
static void check_kafka_parsing(struct loader *L, const struct sl_input_cfg *in)
{
    const struct sl_kafka_input_cfg *kc = &in->kafka;
    if (kc->format == SL_FORMAT_REGEXP) {
        char why[256];
        struct sl_rxparse *r = NULL;
        if (!kc->pattern)
            err(L, in->line, "'format: regexp' needs a 'pattern'");
        else if (!(r = sl_rxparse_new(kc->pattern, kc->types, kc->n_types, why, sizeof why)))
            err(L, in->line, "'pattern': %s", why);
        sl_rxparse_free(r);
    } else {
        if (kc->pattern) err(L, in->line, "'pattern' is only used with 'format: regexp'");
        if (kc->n_types) err(L, in->line, "'types' is only used with 'format: regexp'");
    }
    if (kc->time_format && !kc->time_key)
        err(L, in->line, "'time_format' needs a 'time_key' to read the time from");
}

/* A JSON body sluice will send at start-up: better refused now than by Elasticsearch later. */
static void check_json_file(struct loader *L, int line, const char *key, const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        err(L, line, "'%s': cannot open '%s': %s", key, q(L, path), strerror(errno));
        if (fd >= 0) close(fd);
        return;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > 1024 * 1024) {
        err(L, line, "'%s': '%s' is not a regular file of at most 1MiB", key, q(L, path));
        close(fd);
        return;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    ssize_t n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    struct sl_json_scan scan = {0};
    if (n != st.st_size)
        err(L, line, "'%s': cannot read '%s'", key, q(L, path));
    else if (sl_json_scan_object(buf, (size_t)n, &scan) != 0)
        err(L, line, "'%s': '%s' is not a JSON object: %s at byte %zu", key, q(L, path),
            scan.err_msg, scan.err_offset);
    free(buf);
}

static void check_es_resources(struct loader *L, const struct sl_output_cfg *o)
{
    const struct sl_es_output_cfg *es = &o->es;
    if (!es->template_name != !es->template_file)
        err(L, o->line, "'template_name' and 'template_file' must be set together");
    else if (es->template_file)
        check_json_file(L, o->line, "template_file", es->template_file);
    if (!es->ilm_policy_name != !es->ilm_policy_file)
        err(L, o->line, "'ilm_policy_name' and 'ilm_policy_file' must be set together");
    else if (es->ilm_policy_file)
        check_json_file(L, o->line, "ilm_policy_file", es->ilm_policy_file);
    if (es->data_stream && es->op == SL_ES_OP_INDEX)
        err(L, o->line, "a data stream takes only 'op: create' (Elasticsearch refuses index)");
}

/* Edits that cannot go together (removing "a" and setting "a.b", a path twice). */
static void check_edits(struct loader *L, const struct sl_edit_cfg *ec, int line)
{
    bool empty;
    char why[256];
    struct sl_jedit *plan = sl_edits_plan(ec, &empty, why, sizeof why);
    if (!plan && !empty) err(L, line, "field edits: %s", why);
    sl_jedit_free(plan);
}

/* The forward input's listeners, TLS files and users. */
static void check_fwd_in_transport(struct loader *L, const struct sl_input_cfg *in)
{
    const struct sl_forward_input_cfg *fc = &in->forward;
    if (!fc->listen && !fc->unix_path)
        err(L, in->line, "'listen: off' needs 'unix_path' (the input would accept nothing)");
    if (fc->tls && (!fc->tls_cert_file || !fc->tls_key_file))
        err(L, in->line, "'tls: true' needs 'tls_cert_file' and 'tls_key_file'");
    if (fc->tls && !fc->listen)
        err(L, in->line, "'tls: true' needs a TCP listener ('listen'); unix_path is never TLS");
    if (!fc->tls &&
        (fc->tls_cert_file || fc->tls_key_file || fc->tls_ca_file || fc->tls_verify_client))
        err(L, in->line, "tls_* keys are set but 'tls' is false");
    if (fc->tls_verify_client && !fc->tls_ca_file)
        err(L, in->line, "'tls_verify_client: true' needs 'tls_ca_file'");
    if (fc->n_users && !fc->shared_key)
        err(L, in->line,
            "'users' needs 'shared_key' (user authentication is part of the handshake)");
}

/* Rules that span keys, checked once everything is loaded. */
static void cross_checks(struct loader *L, struct sl_config *cfg)
{
    bool storage_checked = false;
    for (size_t i = 0; i < cfg->n_inputs; i++) {
        const struct sl_input_cfg *in = &cfg->inputs[i];
        if (in->type == SL_INPUT_KAFKA && L->input_clean[i]) check_kafka_parsing(L, in);
        if (L->input_clean[i]) check_edits(L, &in->edits, in->line);
        if (in->type == SL_INPUT_FORWARD && in->forward.ack == SL_FWD_ACK_STORED &&
            L->input_clean[i] && L->service_clean) {
            const struct sl_service_cfg *svc = &cfg->service;
            /* Cheap checks only; what can change (permissions, space) is a runtime error. */
            struct stat st;
            if (!storage_checked && svc->storage_path && stat(svc->storage_path, &st) == 0 &&
                !S_ISDIR(st.st_mode))
                err(L, L->storage_path_line ? L->storage_path_line : in->line,
                    "'storage_path' %s exists and is not a directory (needed by 'ack: stored')",
                    q(L, svc->storage_path));
            storage_checked = true;
            if (in->forward.max_frame_size > svc->storage_max_size)
                err(L, in->line,
                    "'max_frame_size' (%llu) is larger than service.storage_max_size (%llu): "
                    "such a request could never be stored",
                    (unsigned long long)in->forward.max_frame_size,
                    (unsigned long long)svc->storage_max_size);
        }
        if (in->type == SL_INPUT_FORWARD && L->input_clean[i]) check_fwd_in_transport(L, in);
        /* A frame is held whole (and its gzip payload inflated whole) in the pipeline's share
         * of the budget before any of it can go on: a larger one could never be taken in, and
         * its client would resend it forever. */
        if (in->type == SL_INPUT_FORWARD && L->input_clean[i] && L->service_clean &&
            in->forward.max_frame_size > SL_PIPELINE_SHARE(cfg->service.memory_limit))
            err(L, in->line,
                "'max_frame_size' (%llu) is larger than the pipeline's share of "
                "service.memory_limit (3/8 of %llu = %llu): such a request could never be taken "
                "in; lower max_frame_size or raise memory_limit to at least %llu",
                (unsigned long long)in->forward.max_frame_size,
                (unsigned long long)cfg->service.memory_limit,
                (unsigned long long)SL_PIPELINE_SHARE(cfg->service.memory_limit),
                (unsigned long long)((in->forward.max_frame_size * 8 + 2) / 3));
    }
    for (size_t i = 0; i < cfg->n_outputs; i++) {
        struct sl_output_cfg *o = &cfg->outputs[i];
        struct sl_es_output_cfg *es = &o->es;
        if (!L->output_clean[i]) continue;
        check_edits(L, &o->edits, o->line);
        if (o->type == SL_OUTPUT_FORWARD) {
            const struct sl_fwd_output_cfg *fo = &o->fwd;
            /* Fluent Bit's in_forward closes the connection on a request above its 6,144,000
             * byte buffer (PROTOCOLS.md 1.8), which would turn into an endless resend loop.
             * (4MiB is also the smallest memory_limit, so a batch always fits the budget.) */
            if (fo->batch_max_bytes > 4 * MIB)
                err(L, o->line, "'batch_max_bytes' (%llu) is larger than 4MiB",
                    (unsigned long long)fo->batch_max_bytes);
            if (fo->retry_max_ms < fo->retry_base_ms)
                err(L, o->line, "'retry_max' (%llums) is less than 'retry_base' (%llums)",
                    (unsigned long long)fo->retry_max_ms, (unsigned long long)fo->retry_base_ms);
            if (!fo->username != !fo->password)
                err(L, o->line, "'username' and 'password' must be set together");
            else if (fo->username && !fo->shared_key)
                err(L, o->line,
                    "'username' needs 'shared_key' (user authentication is part of "
                    "the handshake)");
            if (!fo->tls_cert_file != !fo->tls_key_file)
                err(L, o->line, "'tls_cert_file' and 'tls_key_file' must be set together");
            if (!fo->tls && (fo->tls_ca_file || fo->tls_cert_file || fo->tls_key_file))
                err(L, o->line, "tls_* files are set but 'tls' is false");
            if (fo->n_weights && fo->n_weights != fo->n_servers)
                err(L, L->output_weights_line[i] ? L->output_weights_line[i] : o->line,
                    "'weights' has %zu entries but 'servers' has %zu (one weight per server)",
                    fo->n_weights, fo->n_servers);
            for (size_t w = 0; w < fo->n_weights; w++)
                o->fwd.weight[w] = (uint32_t)strtoul(fo->weights[w], NULL, 10);
            continue;
        }
        if (!es->user != !es->password)
            err(L, o->line, "'user' and 'password' must be set together");
        if (es->api_key && es->user)
            err(L, o->line, "'api_key' and 'user'/'password' cannot both be set");
        if (es->retry_max_ms < es->retry_base_ms)
            err(L, o->line, "'retry_max' (%llums) is less than 'retry_base' (%llums)",
                (unsigned long long)es->retry_max_ms, (unsigned long long)es->retry_base_ms);
        check_es_resources(L, o);
        if (L->service_clean && es->batch_max_bytes > cfg->service.memory_limit)
            err(L, o->line, "'batch_max_bytes' (%llu) is larger than service.memory_limit (%llu)",
                (unsigned long long)es->batch_max_bytes,
                (unsigned long long)cfg->service.memory_limit);
    }
    /* Names label metrics and logs, so two components must not share one. */
    size_t n = cfg->n_inputs + cfg->n_outputs;
    for (size_t i = 0; i < n; i++) {
        const char *a =
            i < cfg->n_inputs ? cfg->inputs[i].name : cfg->outputs[i - cfg->n_inputs].name;
        for (size_t j = 0; j < i; j++) {
            const char *b =
                j < cfg->n_inputs ? cfg->inputs[j].name : cfg->outputs[j - cfg->n_inputs].name;
            if (a && b && strcmp(a, b) == 0) {
                int la =
                    i < cfg->n_inputs ? cfg->inputs[i].line : cfg->outputs[i - cfg->n_inputs].line;
                int lb =
                    j < cfg->n_inputs ? cfg->inputs[j].line : cfg->outputs[j - cfg->n_inputs].line;
                err(L, la, "duplicate name '%s' (also used at line %d)", q(L, a), lb);
                break;
            }
        }
    }
}

static void load_root(struct loader *L, struct sl_config *cfg, yaml_node_t *root)
{
    yaml_node_t *inputs = NULL, *outputs = NULL;
    if (root->type != YAML_MAPPING_NODE) {
        err(L, node_line(root),
            "the top level must be a mapping with 'inputs' and 'outputs', not %s", node_kind(root));
        return;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        if (!pair_usable(L, root, p)) continue;
        const char *key = key_text(L, p);
        yaml_node_t *vn = node(L, p->value);
        if (strcmp(key, "service") == 0) {
            if (is_null_scalar(vn)) continue;
            unsigned before = L->n_errors;
            if (vn->type != YAML_MAPPING_NODE)
                err(L, node_line(vn), "'service' must be a mapping, not %s", node_kind(vn));
            else
                load_section(L, &service_section, &cfg->service, vn);
            L->service_clean = L->n_errors == before;
        } else if (strcmp(key, "inputs") == 0 || strcmp(key, "outputs") == 0) {
            bool in = key[0] == 'i';
            if (vn->type != YAML_SEQUENCE_NODE) {
                err(L, node_line(vn), "'%s' must be a list, not %s", key, node_kind(vn));
            } else if (vn->data.sequence.items.start == vn->data.sequence.items.top) {
                err(L, node_line(vn), "'%s' is empty: at least one %s is required", key,
                    in ? "input" : "output");
            }
            if (in)
                inputs = vn;
            else
                outputs = vn;
        } else {
            unknown_key(L, node_line(node(L, p->key)), key, "at top level", top_keys, 3);
        }
    }
    /* Inputs and outputs after service, so that messages come in file order within each. */
    if (inputs && inputs->type == YAML_SEQUENCE_NODE) load_inputs(L, cfg, inputs);
    if (outputs && outputs->type == YAML_SEQUENCE_NODE) load_outputs(L, cfg, outputs);
    if (!inputs)
        err(L, node_line(root), "missing required key 'inputs' (at least one input is required)");
    if (!outputs)
        err(L, node_line(root), "missing required key 'outputs' (at least one output is required)");
    cross_checks(L, cfg);
}

static int syntax_error(struct loader *L, yaml_parser_t *parser, const char *yaml, size_t len)
{
    int line = (int)parser->problem_mark.line + 1;
    if (parser->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark. */
        line = 1;
        for (size_t i = 0; i < parser->problem_offset && i < len; i++)
            line += yaml[i] == '\n';
    }
    const char *problem = parser->problem ? parser->problem : "cannot parse";
    if (parser->context)
        err(L, line, "YAML syntax error: %s %s", problem, parser->context);
    else
        err(L, line, "YAML syntax error: %s", problem);
    return -1;
}

static void service_defaults(struct loader *L, struct sl_config *cfg)
{
    apply_defaults(L, &service_section, &cfg->service);
}

int sl_config_load_string(const char *name, const char *yaml, size_t len, struct sl_config *cfg,
                          char *errs, size_t errlen)
{
    struct loader L = {
        .file = name ? name : "<config>", .errs = errs, .errlen = errlen, .service_clean = true};
    yaml_parser_t parser;
    yaml_document_t doc;

    memset(cfg, 0, sizeof(*cfg));
    if (errs && errlen) errs[0] = '\0';
    cfg->path = strdup(L.file);
    if (!cfg->path) {
        err(&L, 1, "out of memory");
        return -1;
    }
    service_defaults(&L, cfg);

    if (!yaml_parser_initialize(&parser)) {
        err(&L, 1, "out of memory");
        sl_config_free(cfg);
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        syntax_error(&L, &parser, yaml, len);
        yaml_parser_delete(&parser);
        sl_config_free(cfg);
        return -1;
    }
    L.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        err(&L, 1, "the configuration is empty: 'inputs' and 'outputs' are required");
    } else {
        load_root(&L, cfg, root);
        /* A second document would be silently ignored otherwise. */
        yaml_document_t next;
        if (!yaml_parser_load(&parser, &next)) {
            syntax_error(&L, &parser, yaml, len);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&next);
            if (r2) err(&L, node_line(r2), "only one YAML document is allowed");
            yaml_document_delete(&next);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (L.n_errors) {
        sl_config_free(cfg);
        return -1;
    }
    return 0;
}

int sl_config_load(const char *path, struct sl_config *cfg, char *errs, size_t errlen)
{
    struct loader L = {.file = path, .errs = errs, .errlen = errlen};
    memset(cfg, 0, sizeof(*cfg));
    if (errs && errlen) errs[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) {
        err(&L, 1, "cannot open: %s", strerror(errno));
        return -1;
    }
    struct sbuf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        sb_add(&b, chunk, n);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || b.oom) {
        err(&L, 1, "cannot read: %s", rerr ? "read error" : "out of memory");
        free(b.p);
        return -1;
    }
    int rc = sl_config_load_string(path, b.p ? b.p : "", b.len, cfg, errs, errlen);
    free(b.p);
    return rc;
}

static void free_section(const struct section_def *sd, void *base)
{
    for (size_t i = 0; i < sd->n_keys; i++) {
        const struct key_def *k = &sd->keys[i];
        switch (k->type) {
        case VT_STRING:
            set_str(base, k->off, NULL);
            break;
        case VT_CUSTOM:
            if (k->set == set_listen || k->set == set_fwd_listen || k->set == set_time_format)
                set_str(base, k->off, NULL);
            else if (k->set == set_id)
                set_str(base, offsetof(struct sl_output_cfg, es.id_field), NULL);
            break;
        case VT_LIST:
            clear_list(base, k);
            break;
        case VT_KVMAP:
            clear_kv(base, k);
            break;
        case VT_SECTION:
            free_section(k->section, base);
            break;
        default:
            break;
        }
    }
}

void sl_config_free(struct sl_config *cfg)
{
    if (!cfg) return;
    free(cfg->path);
    free_section(&service_section, &cfg->service);
    for (size_t i = 0; i < cfg->n_inputs; i++)
        free_section(cfg->inputs[i].type == SL_INPUT_FORWARD ? &forward_section : &kafka_section,
                     &cfg->inputs[i]);
    for (size_t i = 0; i < cfg->n_outputs; i++)
        free_section(cfg->outputs[i].type == SL_OUTPUT_FORWARD ? &fwd_out_section : &es_section,
                     &cfg->outputs[i]);
    memset(cfg, 0, sizeof(*cfg));
}
