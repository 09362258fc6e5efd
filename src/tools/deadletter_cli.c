#include "tools/deadletter_cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/dlfile.h"

/* A small table of (key -> count) for the summary; a store holds few distinct reasons, indices
 * and sources, and a linear scan keeps this dependency-free. */
#define MAX_KEYS 256

struct tally {
    char *key[MAX_KEYS];
    unsigned long long n[MAX_KEYS];
    size_t used;
    unsigned long long other;
};

static void tally_add(struct tally *t, const char *key)
{
    for (size_t i = 0; i < t->used; i++)
        if (strcmp(t->key[i], key) == 0) {
            t->n[i]++;
            return;
        }
    if (t->used == MAX_KEYS || !(t->key[t->used] = strdup(key))) {
        t->other++;
        return;
    }
    t->n[t->used++] = 1;
}

static void tally_print(FILE *out, const char *title, struct tally *t)
{
    fprintf(out, "\n%s\n", title);
    /* largest first */
    for (size_t i = 0; i < t->used; i++)
        for (size_t j = i + 1; j < t->used; j++)
            if (t->n[j] > t->n[i]) {
                unsigned long long tn = t->n[i];
                char *tk = t->key[i];
                t->n[i] = t->n[j];
                t->key[i] = t->key[j];
                t->n[j] = tn;
                t->key[j] = tk;
            }
    for (size_t i = 0; i < t->used; i++)
        fprintf(out, "  %10llu  %s\n", t->n[i], t->key[i]);
    if (t->other) fprintf(out, "  %10llu  (other)\n", t->other);
    for (size_t i = 0; i < t->used; i++)
        free(t->key[i]);
}

struct filter {
    const char *reason;
    unsigned long long limit;
    int full;
};

static void show_one(FILE *out, const struct sl_dl_line *l, int full)
{
    fprintf(out, "- reason: %s", l->reason);
    if (l->status) fprintf(out, " (HTTP %d)", l->status);
    fputc('\n', out);
    if (l->error_type[0] || l->error_reason[0])
        fprintf(out, "  error: %s: %s\n", l->error_type, l->error_reason);
    if (l->topic[0])
        fprintf(out, "  source: %s %s [%d] offset %lld\n", l->input, l->topic, l->partition,
                (long long)l->offset);
    else
        fprintf(out, "  source: %s\n", l->input);
    fprintf(out, "  tag: %s", l->tag);
    if (l->index[0]) fprintf(out, "  index: %s", l->index);
    if (l->output[0]) fprintf(out, "  output: %s", l->output);
    fprintf(out, "  attempts: %d\n", l->attempts);
    size_t n = l->payload_len, max = full ? n : 300;
    fprintf(out, "  payload (%zu bytes): ", n);
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)l->payload[i];
        fputc(c < 0x20 || c == 0x7f ? '.' : c, out);
    }
    if (n > max) fputs("...", out);
    fputc('\n', out);
}

static int walk(const char *dir, int show, const struct filter *f, FILE *out, FILE *err)
{
    char **files;
    int nf = sl_dl_files(dir, &files);
    if (nf < 0) {
        fprintf(err, "sluice dead-letter: cannot read %s: %m\n", dir);
        return 1;
    }
    struct tally *by_reason = calloc(1, sizeof *by_reason);
    struct tally *by_index = calloc(1, sizeof *by_index);
    struct tally *by_source = calloc(1, sizeof *by_source);
    if (!by_reason || !by_index || !by_source) {
        free(by_reason);
        free(by_index);
        free(by_source);
        sl_dl_files_free(files, nf);
        return 1;
    }
    unsigned long long lines = 0, bad = 0, shown = 0, bytes = 0;
    char *buf = NULL;
    size_t cap = 0;
    for (int i = 0; i < nf; i++) {
        FILE *fp = fopen(files[i], "r");
        if (!fp) {
            fprintf(err, "sluice dead-letter: cannot open %s: %m\n", files[i]);
            continue;
        }
        struct stat st;
        if (fstat(fileno(fp), &st) == 0) bytes += (unsigned long long)st.st_size;
        ssize_t n;
        unsigned long long lineno = 0;
        while ((n = sl_dl_getline(fp, &buf, &cap)) >= 0) {
            lineno++;
            if (n == 0) continue;
            struct sl_dl_line l;
            char why[160];
            if (sl_dl_parse_line(buf, (size_t)n, &l, why, sizeof why) != 0) {
                bad++;
                fprintf(err, "%s:%llu: %s\n", files[i], lineno, why);
                continue;
            }
            lines++;
            if (show) {
                if ((!f->reason || strstr(l.reason, f->reason) ||
                     strstr(l.error_type, f->reason)) &&
                    (!f->limit || shown < f->limit)) {
                    show_one(out, &l, f->full);
                    shown++;
                }
            } else {
                char key[1024];
                if (l.status)
                    snprintf(key, sizeof key, "%s | %d %s", l.reason, l.status, l.error_type);
                else
                    snprintf(key, sizeof key, "%s | %s", l.reason, l.error_type);
                tally_add(by_reason, key);
                tally_add(by_index, l.index[0] ? l.index : "(no index)");
                if (l.topic[0])
                    snprintf(key, sizeof key, "%s %s", l.input, l.topic);
                else
                    snprintf(key, sizeof key, "%s", l.input);
                tally_add(by_source, key);
            }
            sl_dl_line_free(&l);
        }
        fclose(fp);
    }
    free(buf);
    if (!show) {
        fprintf(out, "%s: %llu records in %d files (%llu bytes)\n", dir, lines, nf, bytes);
        if (bad) fprintf(out, "%llu lines could not be read (listed on stderr)\n", bad);
        tally_print(out, "by reason | status error type:", by_reason);
        tally_print(out, "by index:", by_index);
        tally_print(out, "by source:", by_source);
    } else {
        fprintf(out, "%llu of %llu records shown\n", shown, lines);
    }
    free(by_reason);
    free(by_index);
    free(by_source);
    sl_dl_files_free(files, nf);
    return bad ? 1 : 0;
}

int sl_dead_letter_cli(int argc, char **argv, FILE *out, FILE *err)
{
    if (argc < 2 || (strcmp(argv[0], "list") != 0 && strcmp(argv[0], "show") != 0)) {
        fprintf(err, "usage: sluice dead-letter list DIR\n"
                     "       sluice dead-letter show DIR [--reason TEXT] [--limit N] [--full]\n"
                     "       sluice dead-letter replay -c FILE [DIR]\n");
        return 2;
    }
    int show = strcmp(argv[0], "show") == 0;
    struct filter f = {0};
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (show && strcmp(argv[i], "--reason") == 0 && i + 1 < argc) {
            f.reason = argv[++i];
        } else if (show && strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            f.limit = strtoull(argv[++i], NULL, 10);
        } else if (show && strcmp(argv[i], "--full") == 0) {
            f.full = 1;
        } else if (!dir && argv[i][0] != '-') {
            dir = argv[i];
        } else {
            fprintf(err, "sluice dead-letter %s: unexpected argument '%s'\n", argv[0], argv[i]);
            return 2;
        }
    }
    if (!dir) {
        fprintf(err, "sluice dead-letter %s: DIR is required\n", argv[0]);
        return 2;
    }
    return walk(dir, show, &f, out, err);
}
