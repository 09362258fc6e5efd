/* Configuration loader.
 *
 * The YAML file is loaded with libyaml's document API, then walked against one table of known keys
 * per section: service_keys and dead_letter_keys here, and each input's and output's table in its
 * plugin (src/plugins/<name>/config.c, found through the registry the caller passes; this file
 * names no plugin). The tables are the single source of truth: they drive parsing, defaults
 * (applied by feeding each default string through the same setter a user value goes through, so a
 * documented default can never drift from the real one) and docs/configuration.md
 * (scripts/gen-config-doc.c prints them).
 *
 * Every problem is reported, not just the first: the walk keeps going after an error and only the
 * final count decides the result. Messages are "FILE:LINE: message", one per line.
 *
 * Secrets: `${env:NAME}` and `${file:PATH}` inside any scalar value are expanded before validation.
 * Messages only ever quote the text as written in the file (the unexpanded form), or a fragment of
 * a value when that value contained no secret, so a secret never reaches a log. */
#include "core/config.h"
#include "core/config_schema.h"
#include "core/plugin.h"

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

struct sl_cfg_loader {
    const struct sl_registry *reg;
    const char *file;
    yaml_document_t *doc;
    char *errs;
    size_t errlen;
    size_t used;
    unsigned n_errors;
    /* Cross-key checks only run on sections that loaded cleanly: after an error a field may
     * still hold its default, and a complaint about that default would be noise. */
    bool service_clean;
    /* Where each key was written (sl_cfg_line), for rules across keys. */
    struct key_line {
        const void *base;
        const char *key;
        int line;
    } * lines;
    size_t n_lines, cap_lines;
    bool output_clean[SL_CFG_MAX_OUTPUTS];
    bool input_clean[SL_CFG_MAX_INPUTS];
    char qbuf[N_QBUF][QUOTE_MAX + 8];
    unsigned qi;
};

/* ---- messages ----------------------------------------------------------------------------------
 */

void sl_cfg_err(struct sl_cfg_loader *L, int line, const char *fmt, ...)
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
const char *sl_cfg_q(struct sl_cfg_loader *L, const char *s)
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

static int read_secret_file(struct sl_cfg_loader *L, int line, const char *path, char **out,
                            size_t *len)
{
    /* O_NONBLOCK so that a FIFO cannot hang the loader; only regular files are accepted anyway. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        sl_cfg_err(L, line, "cannot read secret file '%s': %s", sl_cfg_q(L, path), strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        sl_cfg_err(L, line, "secret file '%s' is not a regular file", sl_cfg_q(L, path));
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
        sl_cfg_err(L, line, "cannot read secret file '%s': %s", sl_cfg_q(L, path),
                   buf ? strerror(e) : "no memory");
        free(buf);
        return -1;
    }
    if (n > SECRET_FILE_MAX) {
        sl_cfg_err(L, line, "secret file '%s' is larger than %d bytes", sl_cfg_q(L, path),
                   SECRET_FILE_MAX);
        free(buf);
        return -1;
    }
    if (memchr(buf, '\0', n)) {
        sl_cfg_err(L, line, "secret file '%s' contains a NUL byte", sl_cfg_q(L, path));
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
static char *expand(struct sl_cfg_loader *L, const char *raw, int line, bool *secret)
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
            sl_cfg_err(L, line, "unterminated '%s' reference", env ? "${env:" : "${file:");
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
                sl_cfg_err(L, line, "invalid environment variable name '%s'", sl_cfg_q(L, name));
                ok = false;
            } else if (!v) {
                sl_cfg_err(L, line, "environment variable %s is not set", name);
                ok = false;
            } else {
                sb_add(&b, v, strlen(v));
            }
        } else if (*name == '\0') {
            sl_cfg_err(L, line, "empty path in '${file:}'");
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
        sl_cfg_err(L, line, "out of memory");
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

void sl_cfg_set_str(void *base, size_t off, char *s)
{
    char **f = SL_CFG_FIELD(base, off, char *);
    free(*f);
    *f = s;
}

int sl_cfg_set_copy(struct sl_cfg_loader *L, void *base, size_t off, const char *s, int line)
{
    char *c = strdup(s);
    if (!c) {
        sl_cfg_err(L, line, "out of memory");
        return -1;
    }
    sl_cfg_set_str(base, off, c);
    return 0;
}

static void clear_list(void *base, const struct sl_cfg_key *k)
{
    char **items = SL_CFG_FIELD(base, k->off, char *);
    size_t *n = SL_CFG_FIELD(base, k->count_off, size_t);
    for (size_t i = 0; i < *n; i++) {
        free(items[i]);
        items[i] = NULL;
    }
    *n = 0;
}

static void clear_kv(void *base, const struct sl_cfg_key *k)
{
    struct sl_kv *kv = SL_CFG_FIELD(base, k->off, struct sl_kv);
    size_t *n = SL_CFG_FIELD(base, k->count_off, size_t);
    for (size_t i = 0; i < *n; i++) {
        free(kv[i].key);
        free(kv[i].value);
        kv[i].key = kv[i].value = NULL;
    }
    *n = 0;
}

/* ---- validators --------------------------------------------------------------------------------
 */

int sl_cfg_check_not_empty(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                           const struct sl_cfg_val *v)
{
    if (*v->s) return 0;
    sl_cfg_err(L, v->line, "'%s' must not be empty", k->name);
    return -1;
}

int sl_cfg_check_name(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                      const struct sl_cfg_val *v)
{
    for (const char *p = v->s; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            sl_cfg_err(L, v->line, "'%s' must not contain spaces or control characters", k->name);
            return -1;
        }
    }
    return sl_cfg_check_not_empty(L, k, v);
}

int sl_cfg_check_pattern(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                         const struct sl_cfg_val *v)
{
    char msg[128];
    struct sl_tagpat *p = sl_tagpat_compile(v->s, msg, sizeof(msg));
    if (p) {
        sl_tagpat_free(p);
        return 0;
    }
    sl_cfg_err(L, v->line, "invalid pattern '%s' in '%s': %s",
               sl_cfg_q(L, v->secret ? v->raw : v->s), k->name, msg);
    return -1;
}

/* Checks ${...} placeholders (and, when strftime is set, % conversions) in a template. */
int sl_cfg_check_template(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                          const struct sl_cfg_val *v, bool strftime, const char *valid)
{
    int bad = 0;
    for (const char *p = v->s; *p; p++) {
        if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p, '}');
            if (!end) {
                sl_cfg_err(L, v->line, "unterminated '${' in '%s'", k->name);
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
                    sl_cfg_err(L, v->line,
                               "empty field name in a ${record.<path>} placeholder in '%s'",
                               k->name);
                    bad = -1;
                    p = end;
                    continue;
                }
            }
            if (!ok) {
                char frag[QUOTE_MAX];
                snprintf(frag, sizeof(frag), "%.*s", (int)(end - p + 1), p);
                sl_cfg_err(L, v->line, "unknown placeholder '%s' in '%s' (valid: %s)",
                           v->secret ? "(secret)" : sl_cfg_q(L, frag), k->name, valid);
                bad = -1;
            }
            p = end;
        } else if (strftime && p[0] == '%') {
            if (p[1] == '\0') {
                sl_cfg_err(L, v->line, "'%%' at the end of '%s' (write %%%% for a literal %%)",
                           k->name);
                return -1;
            }
            if (!strchr("YmdHMSjy%", p[1])) {
                char frag[3] = {'%', p[1], '\0'};
                sl_cfg_err(
                    L, v->line,
                    "unsupported time conversion '%s' in '%s' (valid: %%Y %%m %%d %%H %%M %%S %%j "
                    "%%y %%%%)",
                    v->secret ? "(secret)" : sl_cfg_q(L, frag), k->name);
                bad = -1;
            }
            p++;
        } else if (strftime && (isupper((unsigned char)*p) || strchr(" \\/*?\"<>|,#", *p))) {
            /* Elasticsearch rejects these in index names; better now than on every bulk item. */
            char frag[2] = {*p, '\0'};
            sl_cfg_err(L, v->line,
                       "'%s' contains '%s', which Elasticsearch does not allow in index names",
                       k->name, v->secret ? "(secret)" : sl_cfg_q(L, frag));
            return -1;
        }
    }
    return bad;
}

int sl_cfg_check_dotted_path(const char *s)
{
    if (*s == '\0' || *s == '.') return -1;
    for (; *s; s++) {
        if (*s == '.' && (s[1] == '\0' || s[1] == '.')) return -1;
    }
    return 0;
}

/* ---- custom setters ----------------------------------------------------------------------------
 */

/* min_port 0 lets a listener take any free port (tests); a port to connect to must be >= 1. */
int sl_cfg_valid_host_port(const char *s, long min_port)
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

static int set_listen(struct sl_cfg_loader *L, const struct sl_cfg_key *k, void *base,
                      const struct sl_cfg_val *v)
{
    if (v->null || v->s[0] == '\0' || strcmp(v->s, "off") == 0) {
        sl_cfg_set_str(base, k->off, NULL);
        return 0;
    }
    if (sl_cfg_valid_host_port(v->s, 1) < 0) {
        sl_cfg_err(L, v->line, "'%s' must be host:port or \"off\", got '%s'", k->name,
                   sl_cfg_q(L, v->raw));
        return -1;
    }
    return sl_cfg_set_copy(L, base, k->off, v->s, v->line);
}

/* A PEM file sluice reads at start-up (certificates, keys, CA bundles): checked now so a typo is
 * a FILE:LINE error instead of a failed start. The contents are checked when they are loaded. */
int sl_cfg_check_pem_file(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                          const struct sl_cfg_val *v)
{
    if (sl_cfg_check_not_empty(L, k, v) != 0) return -1;
    struct stat st;
    int fd = open(v->s, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        sl_cfg_err(L, v->line, "'%s': cannot read '%s': %s", k->name,
                   sl_cfg_q(L, v->secret ? v->raw : v->s), strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    char head[4096];
    ssize_t n = S_ISREG(st.st_mode) ? read(fd, head, sizeof head - 1) : -1;
    close(fd);
    if (n < 0 || !memmem(head, (size_t)n, "-----BEGIN ", 11)) {
        sl_cfg_err(L, v->line, "'%s': '%s' is not a PEM file (no \"-----BEGIN \" line)", k->name,
                   sl_cfg_q(L, v->secret ? v->raw : v->s));
        return -1;
    }
    return 0;
}

/* A field path as written in edits: dotted names, none empty. */
int sl_cfg_check_path_key(struct sl_cfg_loader *L, const struct sl_cfg_key *k, const char *key,
                          int line)
{
    if (sl_cfg_check_dotted_path(key) == 0) return 0;
    sl_cfg_err(L, line, "'%s' key '%s' is not a field path (dotted names, none empty)", k->name,
               sl_cfg_q(L, key));
    return -1;
}

int sl_cfg_check_path(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                      const struct sl_cfg_val *v)
{
    return sl_cfg_check_path_key(L, k, v->s, v->line);
}

int sl_cfg_check_add_field(struct sl_cfg_loader *L, const struct sl_cfg_key *k,
                           const struct sl_cfg_val *v)
{
    return sl_cfg_check_template(L, k, v, false, "${topic}, ${partition}, ${offset}, ${tag}");
}

/* ---- key tables --------------------------------------------------------------------------------
 */

static const char *const unmatched_values[] = {"dead_letter", "drop", NULL};
static const char *const log_level_values[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_format_values[] = {"text", "json", NULL};
const char *const sl_cfg_compression_values[] = {"none", "gzip", NULL};
const char *const sl_cfg_tls_version_values[] = {"1.2", "1.3", NULL};

#define SVC(f) offsetof(struct sl_service_cfg, f)

static const struct sl_cfg_key dead_letter_keys[] = {
    {.name = "path",
     .type = SL_VT_STRING,
     .off = SVC(dead_letter_path),
     .def = "./dead-letter",
     .check = sl_cfg_check_not_empty,
     .doc = "Directory of the dead-letter store (NDJSON files, one record per line)."},
    {.name = "max_size",
     .type = SL_VT_SIZE,
     .off = SVC(dead_letter_max_size),
     .def = "1GiB",
     .doc = "Size cap of the store; when it is full, inputs pause instead of dropping."},
};

const struct sl_cfg_section sl_cfg_dead_letter_section = {
    .where = "in service.dead_letter",
    .keys = dead_letter_keys,
    .n_keys = sizeof(dead_letter_keys) / sizeof(dead_letter_keys[0]),
};

static const struct sl_cfg_key service_keys[] = {
    {.name = "memory_limit",
     .type = SL_VT_SIZE,
     .off = SVC(memory_limit),
     .def = "64MiB",
     .min_value = 4 * MIB,
     .min_text = "4MiB",
     .doc = "Budget for all buffered event bytes (Kafka prefetch, batches, requests in flight)."},
    {.name = "http_listen",
     .type = SL_VT_CUSTOM,
     .off = SVC(http_listen),
     .def = "127.0.0.1:2020",
     .doc_type = "host:port",
     .owns_str = true,
     .set = set_listen,
     .doc = "Status server: /metrics (Prometheus), /healthz, /status (JSON), / (live page). "
            "\"off\" or \"\" disables it."},
    {.name = "dead_letter",
     .type = SL_VT_SECTION,
     .section = &sl_cfg_dead_letter_section,
     .doc = "Dead-letter store: {path, max_size}."},
    {.name = "storage_path",
     .type = SL_VT_STRING,
     .off = SVC(storage_path),
     .def = "./buffer",
     .check = sl_cfg_check_not_empty,
     .doc = "Directory for forward inputs with ack: stored: each keeps its requests in "
            "<storage_path>/<input name>/seg-*.fwd until their events are finished."},
    {.name = "storage_max_size",
     .type = SL_VT_SIZE,
     .off = SVC(storage_max_size),
     .def = "1GiB",
     .min_value = MIB,
     .min_text = "1MiB",
     .doc = "Size cap of each ack: stored input's store; when full, that input stops reading "
            "its connections (no ack) until delivered events free space."},
    {.name = "shutdown_timeout",
     .type = SL_VT_DURATION,
     .off = SVC(shutdown_timeout_ms),
     .def = "30s",
     .doc = "How long SIGTERM waits for in-flight work before committing and exiting."},
    {.name = "unmatched",
     .type = SL_VT_ENUM,
     .off = SVC(unmatched),
     .def = "dead_letter",
     .values = unmatched_values,
     .doc = "Fate of events whose tag matches no output (drop is still counted)."},
    {.name = "log_level",
     .type = SL_VT_ENUM,
     .off = SVC(log_level),
     .def = "info",
     .values = log_level_values,
     .doc = "Least severe level that is logged."},
    {.name = "log_interval",
     .type = SL_VT_DURATION,
     .off = SVC(log_interval_ms),
     .def = "10s",
     .doc = "Rate-limit window: one line per (component, error kind) per window."},
    {.name = "log_format",
     .type = SL_VT_ENUM,
     .off = SVC(log_format),
     .def = "text",
     .values = log_format_values,
     .doc = "text: \"TIME LEVEL COMPONENT: message\"; json: one JSON object per line."},
    {.name = "log_file",
     .type = SL_VT_STRING,
     .off = SVC(log_file),
     .nullable = true,
     .check = sl_cfg_check_not_empty,
     .doc_def = "(stderr)",
     .doc = "Append logs to this file instead of stderr; SIGHUP reopens it (log rotation)."},
    {.name = "stall_after",
     .type = SL_VT_DURATION,
     .off = SVC(stall_after_ms),
     .def = "60s",
     .doc = "/healthz answers 503 when records are pending and none finished for this long."},
    {.name = "stats_interval",
     .type = SL_VT_DURATION,
     .off = SVC(stats_interval_ms),
     .def = "10s",
     .doc = "Period of the stats log line; 0 turns it off."},
};

const struct sl_cfg_section sl_cfg_service_section = {
    .where = "in service",
    .keys = service_keys,
    .n_keys = sizeof(service_keys) / sizeof(service_keys[0]),
};

static const char *const top_keys[] = {"service", "inputs", "outputs"};
/* Types a later build adds (inputs and outputs share the list): "not supported by this build
 * yet" instead of "unknown". */
static const char *const future_types[] = {"file", "stdout"};

/* ---- generic setters ---------------------------------------------------------------------------
 */

static const char *type_noun(enum sl_cfg_vtype t)
{
    switch (t) {
    case SL_VT_SIZE:
        return "a size";
    case SL_VT_DURATION:
        return "a duration";
    case SL_VT_UINT32:
    case SL_VT_INT:
        return "an integer";
    case SL_VT_BOOL:
        return "a boolean";
    case SL_VT_LIST:
        return "a string or a list of strings";
    case SL_VT_KVMAP:
    case SL_VT_SECTION:
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

static int add_list_item(struct sl_cfg_loader *L, const struct sl_cfg_key *k, void *base,
                         const struct sl_cfg_val *v)
{
    char **items = SL_CFG_FIELD(base, k->off, char *);
    size_t *n = SL_CFG_FIELD(base, k->count_off, size_t);
    const char *p = v->s;
    if (k->split && p[strspn(p, " \t\r\n")] == '\0') {
        sl_cfg_err(L, v->line, "'%s' must not be empty", k->name);
        return -1;
    }
    do {
        size_t len = k->split ? strcspn(p, " \t\r\n") : strlen(p);
        if (k->split && len == 0 && *p) {
            p++;
            continue;
        }
        if (*n >= SL_CFG_MAX_LIST) {
            sl_cfg_err(L, v->line, "too many entries in '%s' (max %d)", k->name, SL_CFG_MAX_LIST);
            return -1;
        }
        char *item = strndup(p, len);
        if (!item) {
            sl_cfg_err(L, v->line, "out of memory");
            return -1;
        }
        struct sl_cfg_val one = *v;
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
static int set_scalar(struct sl_cfg_loader *L, const struct sl_cfg_key *k, void *base,
                      const struct sl_cfg_val *v)
{
    uint64_t u;
    if (k->type == SL_VT_CUSTOM) return k->set(L, k, base, v);
    if (v->null && k->nullable) {
        sl_cfg_set_str(base, k->off, NULL);
        return 0;
    }
    if (v->null && k->type != SL_VT_LIST) {
        sl_cfg_err(L, v->line, "missing value for '%s'", k->name);
        return -1;
    }
    switch (k->type) {
    case SL_VT_STRING: {
        if (k->check && k->check(L, k, v) < 0) return -1;
        return sl_cfg_set_copy(L, base, k->off, v->s, v->line);
    }
    case SL_VT_SIZE:
        if (sl_parse_size(v->s, &u) < 0) {
            sl_cfg_err(L, v->line,
                       "invalid size '%s' for '%s' (e.g. 512KiB, 64MiB, 5MB, or a number of bytes)",
                       sl_cfg_q(L, v->raw), k->name);
            return -1;
        }
        if (u < k->min_value) {
            sl_cfg_err(L, v->line, "'%s' must be at least %s, got '%s'", k->name, k->min_text,
                       sl_cfg_q(L, v->raw));
            return -1;
        }
        *SL_CFG_FIELD(base, k->off, uint64_t) = u;
        return 0;
    case SL_VT_DURATION:
        if (sl_parse_duration_ms(v->s, &u) < 0) {
            sl_cfg_err(
                L, v->line,
                "invalid duration '%s' for '%s' (e.g. 500ms, 30s, 5m, 1h, or a number of seconds)",
                sl_cfg_q(L, v->raw), k->name);
            return -1;
        }
        if (u < k->min_value) {
            sl_cfg_err(L, v->line, "'%s' must be at least %s, got '%s'", k->name, k->min_text,
                       sl_cfg_q(L, v->raw));
            return -1;
        }
        *SL_CFG_FIELD(base, k->off, uint64_t) = u;
        return 0;
    case SL_VT_UINT32:
    case SL_VT_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(v->s, &end, 10);
        if (end == v->s || *end || errno || isspace((unsigned char)v->s[0])) {
            sl_cfg_err(L, v->line, "'%s' must be an integer, got '%s'", k->name,
                       sl_cfg_q(L, v->raw));
            return -1;
        }
        if (x < k->min || x > k->max) {
            sl_cfg_err(L, v->line, "'%s' must be between %lld and %lld, got '%s'", k->name, k->min,
                       k->max, sl_cfg_q(L, v->raw));
            return -1;
        }
        if (k->type == SL_VT_UINT32)
            *SL_CFG_FIELD(base, k->off, uint32_t) = (uint32_t)x;
        else
            *SL_CFG_FIELD(base, k->off, int) = (int)x;
        return 0;
    }
    case SL_VT_BOOL: {
        bool b;
        if (parse_bool(v->s, &b) < 0) {
            sl_cfg_err(L, v->line, "'%s' must be true or false (or yes/no, on/off), got '%s'",
                       k->name, sl_cfg_q(L, v->raw));
            return -1;
        }
        *SL_CFG_FIELD(base, k->off, bool) = b;
        return 0;
    }
    case SL_VT_ENUM:
        for (int i = 0; k->values[i]; i++) {
            if (strcmp(v->s, k->values[i]) == 0) {
                /* Enums here are int-sized: every enum in config.h has only small constants. */
                *SL_CFG_FIELD(base, k->off, int) = i;
                return 0;
            }
        }
        char valid[128];
        list_values(k->values, valid, sizeof(valid));
        sl_cfg_err(L, v->line, "invalid value '%s' for '%s' (valid: %s)", sl_cfg_q(L, v->raw),
                   k->name, valid);
        return -1;
    case SL_VT_LIST:
        if (v->null) {
            sl_cfg_err(L, v->line, "missing value for '%s'", k->name);
            return -1;
        }
        clear_list(base, k);
        return add_list_item(L, k, base, v);
    default:
        sl_cfg_err(L, v->line, "'%s' must be %s, not a scalar", k->name, type_noun(k->type));
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
static int read_scalar(struct sl_cfg_loader *L, const yaml_node_t *n, struct sl_cfg_val *v)
{
    const char *raw = (const char *)n->data.scalar.value;
    v->raw = raw;
    v->line = node_line(n);
    v->null = is_null_scalar(n);
    v->secret = false;
    if (strlen(raw) != n->data.scalar.length) {
        sl_cfg_err(L, v->line, "value contains a NUL character");
        return -1;
    }
    v->s = expand(L, raw, v->line, &v->secret);
    return v->s ? 0 : -1;
}

static yaml_node_t *node(struct sl_cfg_loader *L, int id)
{
    return yaml_document_get_node(L->doc, id);
}

static const char *key_text(struct sl_cfg_loader *L, const yaml_node_pair_t *pair)
{
    yaml_node_t *k = node(L, pair->key);
    if (!k || k->type != YAML_SCALAR_NODE) return NULL;
    if (strlen((const char *)k->data.scalar.value) != k->data.scalar.length) return NULL;
    return (const char *)k->data.scalar.value;
}

/* Checks that every key is a string, reports duplicates. Returns false for pair i if it must be
 * skipped (bad key or a repeat of an earlier key). */
static bool pair_usable(struct sl_cfg_loader *L, yaml_node_t *map, yaml_node_pair_t *pair)
{
    yaml_node_t *kn = node(L, pair->key);
    const char *key = key_text(L, pair);
    if (!key) {
        sl_cfg_err(L, kn ? node_line(kn) : node_line(map), "mapping keys must be strings, not %s",
                   kn && kn->type != YAML_SCALAR_NODE ? node_kind(kn) : "this");
        return false;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < pair; p++) {
        const char *other = key_text(L, p);
        if (other && strcmp(other, key) == 0) {
            sl_cfg_err(L, node_line(kn), "duplicate key '%s' (first at line %d)", sl_cfg_q(L, key),
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
static void unknown_key(struct sl_cfg_loader *L, int line, const char *key, const char *where,
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
        sl_cfg_err(L, line, "unknown key '%s' %s (did you mean '%s'?)", sl_cfg_q(L, key), where,
                   best);
    else
        sl_cfg_err(L, line, "unknown key '%s' %s (valid: %s)", sl_cfg_q(L, key), where, valid);
}

static void load_section(struct sl_cfg_loader *L, const struct sl_cfg_section *sd, void *base,
                         yaml_node_t *map);

static void note_line(struct sl_cfg_loader *L, const void *base, const char *key, int line)
{
    if (L->n_lines == L->cap_lines) {
        size_t cap = L->cap_lines ? L->cap_lines * 2 : 256;
        struct key_line *n = realloc(L->lines, cap * sizeof *n);
        if (!n) return; /* a rule's message then names the item's line instead */
        L->lines = n;
        L->cap_lines = cap;
    }
    L->lines[L->n_lines++] = (struct key_line){base, key, line};
}

int sl_cfg_line(const struct sl_cfg_loader *L, const void *base, const char *key)
{
    for (size_t i = L->n_lines; i-- > 0;)
        if (L->lines[i].base == base && strcmp(L->lines[i].key, key) == 0) return L->lines[i].line;
    return 0;
}

bool sl_cfg_service_clean(const struct sl_cfg_loader *L)
{
    return L->service_clean;
}

static void load_kvmap(struct sl_cfg_loader *L, const struct sl_cfg_key *k, void *base,
                       yaml_node_t *map)
{
    struct sl_kv *kv = SL_CFG_FIELD(base, k->off, struct sl_kv);
    size_t *n = SL_CFG_FIELD(base, k->count_off, size_t);
    clear_kv(base, k);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        if (!pair_usable(L, map, p)) continue;
        const char *key = key_text(L, p);
        yaml_node_t *vn = node(L, p->value);
        int line = node_line(node(L, p->key));
        if (vn->type != YAML_SCALAR_NODE) {
            sl_cfg_err(L, node_line(vn), "'%s.%s' must be a scalar, not %s", k->name,
                       sl_cfg_q(L, key), node_kind(vn));
            continue;
        }
        struct sl_cfg_val v;
        if (read_scalar(L, vn, &v) < 0) continue;
        if (v.null) {
            sl_cfg_err(L, v.line, "missing value for '%s.%s'", k->name, sl_cfg_q(L, key));
            free((char *)v.s);
            continue;
        }
        if ((k->check_key && k->check_key(L, k, key, line) < 0) ||
            (k->check && k->check(L, k, &v) < 0)) {
            free((char *)v.s);
            continue;
        }
        if (*n >= SL_CFG_MAX_LIST) {
            sl_cfg_err(L, line, "too many entries in '%s' (max %d)", k->name, SL_CFG_MAX_LIST);
            free((char *)v.s);
            return;
        }
        char *kc = strdup(key);
        if (!kc) {
            sl_cfg_err(L, line, "out of memory");
            free((char *)v.s);
            return;
        }
        kv[*n].key = kc;
        kv[*n].value = (char *)v.s;
        (*n)++;
    }
}

/* Applies a YAML value node to key k. */
static void load_value(struct sl_cfg_loader *L, const struct sl_cfg_key *k, void *base,
                       yaml_node_t *vn)
{
    if (k->type == SL_VT_SECTION || k->type == SL_VT_KVMAP) {
        if (is_null_scalar(vn))
            return; /* "dead_letter:" with nothing under it: keep the defaults */
        if (vn->type != YAML_MAPPING_NODE) {
            sl_cfg_err(L, node_line(vn), "'%s' must be a mapping, not %s", k->name, node_kind(vn));
            return;
        }
        if (k->type == SL_VT_SECTION)
            load_section(L, k->section, base, vn);
        else
            load_kvmap(L, k, base, vn);
        return;
    }
    if (vn->type == YAML_SEQUENCE_NODE && k->type == SL_VT_LIST) {
        clear_list(base, k);
        if (vn->data.sequence.items.start == vn->data.sequence.items.top) {
            sl_cfg_err(L, node_line(vn), "'%s' must not be an empty list", k->name);
            return;
        }
        for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top;
             it++) {
            yaml_node_t *in = node(L, *it);
            if (in->type != YAML_SCALAR_NODE) {
                sl_cfg_err(L, node_line(in), "entries of '%s' must be strings, not %s", k->name,
                           node_kind(in));
                continue;
            }
            struct sl_cfg_val v;
            if (read_scalar(L, in, &v) < 0) continue;
            int rc = add_list_item(L, k, base, &v);
            free((char *)v.s);
            if (rc < 0 && *SL_CFG_FIELD(base, k->count_off, size_t) >= SL_CFG_MAX_LIST) return;
        }
        return;
    }
    if (vn->type != YAML_SCALAR_NODE) {
        sl_cfg_err(L, node_line(vn), "'%s' must be %s, not %s", k->name, type_noun(k->type),
                   node_kind(vn));
        return;
    }
    struct sl_cfg_val v;
    if (read_scalar(L, vn, &v) < 0) return;
    set_scalar(L, k, base, &v);
    free((char *)v.s);
}

static void load_section(struct sl_cfg_loader *L, const struct sl_cfg_section *sd, void *base,
                         yaml_node_t *map)
{
    const char *names[SL_CFG_SECTION_KEYS_MAX];
    bool seen[SL_CFG_SECTION_KEYS_MAX] = {false};
    assert(sd->n_keys <= SL_CFG_SECTION_KEYS_MAX);
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
        note_line(L, base, sd->keys[i].name, node_line(node(L, p->key)));
        if (sd->keys[i].type != SL_VT_TYPE) load_value(L, &sd->keys[i], base, node(L, p->value));
    }
    for (size_t i = 0; i < sd->n_keys; i++) {
        if (sd->keys[i].required && !seen[i])
            sl_cfg_err(L, node_line(map), "missing required key '%s' %s", sd->keys[i].name,
                       sd->where);
    }
}

/* Runs every default through set_scalar, exactly as if the user had written it. */
static void apply_defaults(struct sl_cfg_loader *L, const struct sl_cfg_section *sd, void *base)
{
    for (size_t i = 0; i < sd->n_keys; i++) {
        const struct sl_cfg_key *k = &sd->keys[i];
        if (k->type == SL_VT_SECTION) {
            apply_defaults(L, k->section, base);
        } else if (k->def) {
            struct sl_cfg_val v = {.s = k->def, .raw = k->def, .line = 0};
            set_scalar(L, k, base, &v);
        }
    }
}

/* ---- top level ---------------------------------------------------------------------------------
 */

static int default_name(struct sl_cfg_loader *L, char **field, const char *type, size_t index,
                        int line)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s.%zu", type, index);
    *field = strdup(buf);
    if (*field) return 0;
    sl_cfg_err(L, line, "out of memory");
    return -1;
}

static const char *kind_noun(enum sl_plugin_kind kind)
{
    return kind == SL_PLUGIN_INPUT ? "input" : "output";
}

/* Finds the item's `type` among the registry's plugins of `kind`. Returns it, or NULL after
 * reporting. */
static const struct sl_plugin *component_type(struct sl_cfg_loader *L, enum sl_plugin_kind kind,
                                              yaml_node_t *item)
{
    const char *noun = kind_noun(kind);
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
        sl_cfg_err(L, node_line(item), "missing required key 'type' in %s", noun);
        return NULL;
    }
    if (tn->type != YAML_SCALAR_NODE) {
        sl_cfg_err(L, node_line(tn), "'type' must be a string, not %s", node_kind(tn));
        return NULL;
    }
    struct sl_cfg_val v;
    if (read_scalar(L, tn, &v) < 0) return NULL;
    const struct sl_plugin *found = NULL;
    char valid[256];
    size_t used = 0;
    valid[0] = '\0';
    for (size_t i = 0; i < L->reg->n; i++) {
        const struct sl_plugin *pl = L->reg->plugins[i];
        if (pl->kind != kind) continue;
        if (strcmp(v.s, pl->type) == 0) found = pl;
        if (used < sizeof valid)
            used += (size_t)snprintf(valid + used, sizeof(valid) - used, "%s%s", used ? ", " : "",
                                     pl->type);
    }
    if (!found) {
        bool future = false;
        for (size_t i = 0; i < sizeof(future_types) / sizeof(future_types[0]); i++)
            future = future || strcmp(v.s, future_types[i]) == 0;
        if (future)
            sl_cfg_err(L, v.line, "%s type '%s' is not supported by this build yet", noun, v.s);
        else
            sl_cfg_err(L, v.line, "unknown %s type '%s' (valid: %s)", noun, sl_cfg_q(L, v.raw),
                       valid);
    }
    free((char *)v.s);
    return found;
}

/* What differs between the inputs list and the outputs list. */
_Static_assert(sizeof(enum sl_input_type) == sizeof(int) &&
                   sizeof(enum sl_output_type) == sizeof(int),
               "load_list stores the type enums as int");
struct component_list {
    enum sl_plugin_kind kind;
    size_t max;
    size_t item_size;
    /* fields of struct sl_input_cfg / sl_output_cfg */
    size_t type_off, plugin_off, name_off, line_off;
};

/* Loads each mapping of list into items[*n...]; clean[i] says whether item i loaded without an
 * error. */
static void load_list(struct sl_cfg_loader *L, const struct component_list *cl, void *items,
                      size_t *n, bool *clean, yaml_node_t *list)
{
    const char *noun = kind_noun(cl->kind);
    size_t index = 0;
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++, index++) {
        yaml_node_t *item = node(L, *it);
        if (item->type != YAML_MAPPING_NODE) {
            sl_cfg_err(L, node_line(item), "each %s must be a mapping, not %s", noun,
                       node_kind(item));
            continue;
        }
        if (*n >= cl->max) {
            sl_cfg_err(L, node_line(item), "too many %ss (max %zu)", noun, cl->max);
            return;
        }
        const struct sl_plugin *pl = component_type(L, cl->kind, item);
        if (!pl) continue;
        char *base = (char *)items + (*n)++ * cl->item_size;
        *(int *)(base + cl->type_off) = pl->type_id;
        *(const struct sl_plugin **)(base + cl->plugin_off) = pl;
        int line = node_line(item);
        *(int *)(base + cl->line_off) = line;
        unsigned before = L->n_errors;
        apply_defaults(L, pl->section, base);
        default_name(L, (char **)(base + cl->name_off), pl->type, index, line);
        load_section(L, pl->section, base, item);
        clean[*n - 1] = L->n_errors == before;
    }
}

static void load_inputs(struct sl_cfg_loader *L, struct sl_config *cfg, yaml_node_t *list)
{
    static const struct component_list cl = {
        .kind = SL_PLUGIN_INPUT,
        .max = SL_CFG_MAX_INPUTS,
        .item_size = sizeof(struct sl_input_cfg),
        .type_off = offsetof(struct sl_input_cfg, type),
        .plugin_off = offsetof(struct sl_input_cfg, plugin),
        .name_off = offsetof(struct sl_input_cfg, name),
        .line_off = offsetof(struct sl_input_cfg, line),
    };
    load_list(L, &cl, cfg->inputs, &cfg->n_inputs, L->input_clean, list);
}

static void load_outputs(struct sl_cfg_loader *L, struct sl_config *cfg, yaml_node_t *list)
{
    static const struct component_list cl = {
        .kind = SL_PLUGIN_OUTPUT,
        .max = SL_CFG_MAX_OUTPUTS,
        .item_size = sizeof(struct sl_output_cfg),
        .type_off = offsetof(struct sl_output_cfg, type),
        .plugin_off = offsetof(struct sl_output_cfg, plugin),
        .name_off = offsetof(struct sl_output_cfg, name),
        .line_off = offsetof(struct sl_output_cfg, line),
    };
    load_list(L, &cl, cfg->outputs, &cfg->n_outputs, L->output_clean, list);
}

/* Edits that cannot go together (removing "a" and setting "a.b", a path twice). */
static void check_edits(struct sl_cfg_loader *L, const struct sl_edit_cfg *ec, int line)
{
    bool empty;
    char why[256];
    struct sl_jedit *plan = sl_edits_plan(ec, &empty, why, sizeof why);
    if (!plan && !empty) sl_cfg_err(L, line, "field edits: %s", why);
    sl_jedit_free(plan);
}

/* Rules that span keys, checked once everything is loaded: the edits every item has, then each
 * plugin's own rules, on the items that loaded cleanly. */
static void cross_checks(struct sl_cfg_loader *L, struct sl_config *cfg)
{
    for (size_t i = 0; i < cfg->n_inputs; i++) {
        struct sl_input_cfg *in = &cfg->inputs[i];
        if (!L->input_clean[i]) continue;
        check_edits(L, &in->edits, in->line);
        if (in->plugin->check) in->plugin->check(L, cfg, in);
    }
    for (size_t i = 0; i < cfg->n_outputs; i++) {
        struct sl_output_cfg *o = &cfg->outputs[i];
        if (!L->output_clean[i]) continue;
        check_edits(L, &o->edits, o->line);
        if (o->plugin->check) o->plugin->check(L, cfg, o);
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
                sl_cfg_err(L, la, "duplicate name '%s' (also used at line %d)", sl_cfg_q(L, a), lb);
                break;
            }
        }
    }
}

static void load_root(struct sl_cfg_loader *L, struct sl_config *cfg, yaml_node_t *root)
{
    yaml_node_t *inputs = NULL, *outputs = NULL;
    if (root->type != YAML_MAPPING_NODE) {
        sl_cfg_err(L, node_line(root),
                   "the top level must be a mapping with 'inputs' and 'outputs', not %s",
                   node_kind(root));
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
                sl_cfg_err(L, node_line(vn), "'service' must be a mapping, not %s", node_kind(vn));
            else
                load_section(L, &sl_cfg_service_section, &cfg->service, vn);
            L->service_clean = L->n_errors == before;
        } else if (strcmp(key, "inputs") == 0 || strcmp(key, "outputs") == 0) {
            bool in = key[0] == 'i';
            if (vn->type != YAML_SEQUENCE_NODE) {
                sl_cfg_err(L, node_line(vn), "'%s' must be a list, not %s", key, node_kind(vn));
            } else if (vn->data.sequence.items.start == vn->data.sequence.items.top) {
                sl_cfg_err(L, node_line(vn), "'%s' is empty: at least one %s is required", key,
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
        sl_cfg_err(L, node_line(root),
                   "missing required key 'inputs' (at least one input is required)");
    if (!outputs)
        sl_cfg_err(L, node_line(root),
                   "missing required key 'outputs' (at least one output is required)");
    cross_checks(L, cfg);
}

static int syntax_error(struct sl_cfg_loader *L, yaml_parser_t *parser, const char *yaml,
                        size_t len)
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
        sl_cfg_err(L, line, "YAML syntax error: %s %s", problem, parser->context);
    else
        sl_cfg_err(L, line, "YAML syntax error: %s", problem);
    return -1;
}

static void service_defaults(struct sl_cfg_loader *L, struct sl_config *cfg)
{
    apply_defaults(L, &sl_cfg_service_section, &cfg->service);
}

int sl_config_load_string(const struct sl_registry *reg, const char *name, const char *yaml,
                          size_t len, struct sl_config *cfg, char *errs, size_t errlen)
{
    struct sl_cfg_loader L = {.reg = reg,
                              .file = name ? name : "<config>",
                              .errs = errs,
                              .errlen = errlen,
                              .service_clean = true};
    yaml_parser_t parser;
    yaml_document_t doc;

    memset(cfg, 0, sizeof(*cfg));
    if (errs && errlen) errs[0] = '\0';
    cfg->path = strdup(L.file);
    if (!cfg->path) {
        sl_cfg_err(&L, 1, "out of memory");
        return -1;
    }
    service_defaults(&L, cfg);

    if (!yaml_parser_initialize(&parser)) {
        sl_cfg_err(&L, 1, "out of memory");
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
        sl_cfg_err(&L, 1, "the configuration is empty: 'inputs' and 'outputs' are required");
    } else {
        load_root(&L, cfg, root);
        /* A second document would be silently ignored otherwise. */
        yaml_document_t next;
        if (!yaml_parser_load(&parser, &next)) {
            syntax_error(&L, &parser, yaml, len);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&next);
            if (r2) sl_cfg_err(&L, node_line(r2), "only one YAML document is allowed");
            yaml_document_delete(&next);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(L.lines);
    if (L.n_errors) {
        sl_config_free(cfg);
        return -1;
    }
    return 0;
}

int sl_config_load(const struct sl_registry *reg, const char *path, struct sl_config *cfg,
                   char *errs, size_t errlen)
{
    struct sl_cfg_loader L = {.reg = reg, .file = path, .errs = errs, .errlen = errlen};
    memset(cfg, 0, sizeof(*cfg));
    if (errs && errlen) errs[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) {
        sl_cfg_err(&L, 1, "cannot open: %s", strerror(errno));
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
        sl_cfg_err(&L, 1, "cannot read: %s", rerr ? "read error" : "out of memory");
        free(b.p);
        return -1;
    }
    int rc = sl_config_load_string(reg, path, b.p ? b.p : "", b.len, cfg, errs, errlen);
    free(b.p);
    return rc;
}

static void free_section(const struct sl_cfg_section *sd, void *base)
{
    for (size_t i = 0; i < sd->n_keys; i++) {
        const struct sl_cfg_key *k = &sd->keys[i];
        switch (k->type) {
        case SL_VT_STRING:
            sl_cfg_set_str(base, k->off, NULL);
            break;
        case SL_VT_CUSTOM:
            if (k->owns_str) sl_cfg_set_str(base, k->off, NULL);
            break;
        case SL_VT_LIST:
            clear_list(base, k);
            break;
        case SL_VT_KVMAP:
            clear_kv(base, k);
            break;
        case SL_VT_SECTION:
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
    free_section(&sl_cfg_service_section, &cfg->service);
    for (size_t i = 0; i < cfg->n_inputs; i++)
        free_section(cfg->inputs[i].plugin->section, &cfg->inputs[i]);
    for (size_t i = 0; i < cfg->n_outputs; i++)
        free_section(cfg->outputs[i].plugin->section, &cfg->outputs[i]);
    memset(cfg, 0, sizeof(*cfg));
}
