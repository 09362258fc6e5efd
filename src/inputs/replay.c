/* Replay input.
 *
 * Each dead-letter file has its own conservation counters (sl_ack updates them), so a file is
 * moved to DIR/replayed/ exactly when it was read to its end and every record read from it has
 * finished: delivered, or dead-lettered again (into the store's new file) with the new error.
 * A crash in between leaves the file where it was; replaying it again is harmless because
 * Kafka-sourced records keep their coordinates, so their Elasticsearch ids are the same as the
 * first time.
 *
 * Records are read only while the pipeline has room (the same backpressure rule as Kafka). */
#include "inputs/replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/dlfile.h"

#define TICK_MS 10
#define BURST 1024

struct rfile {
    char *path;
    struct sl_counters ctr;
    unsigned long long bad;
    bool eof, done;
};

/* Interned strings: events keep tag and topic pointers while in flight. */
struct intern {
    char **v;
    size_t n;
};

struct sl_replay_in {
    struct sl_pipeline *p;
    char *dir;
    struct rfile *files;
    int n_files, cur;
    FILE *fp;
    char *line;
    size_t line_cap;
    struct sl_timer tick;
    struct sl_counters sum;
    struct intern strs;
    bool stopping;
    unsigned long long bad, moved;
};

static const char *intern(struct intern *t, const char *s)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i], s) == 0) return t->v[i];
    char **nv = realloc(t->v, (t->n + 1) * sizeof *nv);
    if (!nv) abort();
    t->v = nv;
    if (!(t->v[t->n] = strdup(s))) abort();
    return t->v[t->n++];
}

static uint64_t finished(const struct sl_counters *c)
{
    return c->delivered + c->dead_lettered + c->dropped;
}

static void move_if_done(struct sl_replay_in *r, struct rfile *f)
{
    if (f->done || !f->eof || finished(&f->ctr) != f->ctr.received) return;
    f->done = true;
    if (f->bad) {
        SL_WARN("replay", "bad_lines", "%s: %llu lines could not be read; the file stays", f->path,
                f->bad);
        return;
    }
    char dst[4096];
    const char *base = strrchr(f->path, '/');
    snprintf(dst, sizeof dst, "%s/replayed%s", r->dir, base ? base : "/x");
    if (rename(f->path, dst) != 0) {
        SL_ERROR("replay", "rename", "cannot move %s to %s: %s", f->path, dst, strerror(errno));
        return;
    }
    r->moved++;
    SL_INFO("replay",
            "%s: %llu records replayed (%llu delivered, %llu dead-lettered again); "
            "moved to %s",
            f->path, (unsigned long long)f->ctr.received, (unsigned long long)f->ctr.delivered,
            (unsigned long long)f->ctr.dead_lettered, dst);
}

static void replay_line(struct sl_replay_in *r, struct rfile *f, const char *line, size_t len)
{
    struct sl_dl_line l;
    char why[200];
    if (sl_dl_parse_line(line, len, &l, why, sizeof why) != 0) {
        f->bad++;
        r->bad++;
        SL_WARN("replay", "bad_line", "%s: unreadable line (%s)", f->path, why);
        return;
    }
    f->ctr.received++;
    struct sl_event ev = {
        .input = "replay",
        .tag = intern(&r->strs, l.tag),
        .tag_len = strlen(l.tag),
        .topic = l.topic[0] ? intern(&r->strs, l.topic) : NULL,
        .topic_len = strlen(l.topic),
        .partition = l.partition,
        .offset = l.offset,
        .time_ns = l.event_time_ns,
        .payload = l.payload,
        .payload_len = l.payload_len,
        .ack = {.trk = NULL, .seq = 0, .ctr = &f->ctr},
    };
    struct sl_route route;
    sl_pipeline_route(r->p, ev.tag, ev.tag_len, &route);
    /* The payload must be one JSON object line for the bulk body; records dead-lettered for
     * being invalid JSON are sent again as they are and fail again, with the same reason. */
    struct sl_json_scan scan = {0};
    for (size_t i = 0; i < r->p->n_paths; i++)
        scan.paths[i] = r->p->paths[i];
    scan.n_paths = r->p->n_paths;
    if (route.n == 0) {
        f->ctr.unmatched++;
        static const char m[] = "no output's match pattern matches this tag (replay)";
        sl_pipeline_dead_letter(r->p, &ev, "unmatched tag", 0, "unmatched_tag", 13, m, sizeof m - 1,
                                false, NULL, NULL, 0, l.attempts);
    } else if (sl_json_scan_object(ev.payload, ev.payload_len, &scan) != 0 ||
               scan.has_raw_newline) {
        f->ctr.parse_errors++;
        char m[200];
        int ml = snprintf(m, sizeof m, "%s at byte %zu",
                          scan.err_msg ? scan.err_msg : "raw newline", scan.err_offset);
        sl_pipeline_dead_letter(r->p, &ev, "invalid JSON", 0, "json_parse_error", 16, m, (size_t)ml,
                                false, NULL, NULL, 0, l.attempts);
    } else {
        ev.scan = &scan;
        sl_pipeline_submit(r->p, &route, &ev);
    }
    sl_dl_line_free(&l);
}

static void tick_cb(struct sl_timer *t)
{
    struct sl_replay_in *r = t->arg;
    int n = 0;
    while (!r->stopping && r->cur < r->n_files && n < BURST && !sl_pipeline_backpressure(r->p)) {
        struct rfile *f = &r->files[r->cur];
        if (!r->fp && !(r->fp = fopen(f->path, "r"))) {
            SL_ERROR("replay", "open", "cannot open %s: %s", f->path, strerror(errno));
            f->eof = true;
            f->bad++;
            r->cur++;
            continue;
        }
        ssize_t len = sl_dl_getline(r->fp, &r->line, &r->line_cap);
        if (len < 0) {
            fclose(r->fp);
            r->fp = NULL;
            f->eof = true;
            r->cur++;
            continue;
        }
        if (len > 0) replay_line(r, f, r->line, (size_t)len);
        n++;
    }
    sl_pipeline_dl_commit(r->p);
    for (int i = 0; i < r->n_files; i++)
        move_if_done(r, &r->files[i]);
    sl_timer_start(r->p->loop, t, n == BURST ? 0 : TICK_MS);
}

struct sl_replay_in *sl_replay_in_new(struct sl_pipeline *p, const char *dir, char **files,
                                      int n_files, char *err, size_t errlen)
{
    struct sl_replay_in *r = calloc(1, sizeof *r);
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/replayed", dir);
    if (!r || (mkdir(sub, 0700) != 0 && errno != EEXIST)) {
        snprintf(err, errlen, "cannot create %s: %s", sub, strerror(errno));
        free(r);
        sl_dl_files_free(files, n_files);
        return NULL;
    }
    r->p = p;
    r->dir = strdup(dir);
    r->files = calloc((size_t)(n_files ? n_files : 1), sizeof *r->files);
    if (!r->dir || !r->files) abort();
    for (int i = 0; i < n_files; i++)
        r->files[i].path = files[i];
    free(files);
    r->n_files = n_files;
    r->tick.cb = tick_cb;
    r->tick.arg = r;
    sl_timer_start(p->loop, &r->tick, 0);
    SL_INFO("replay", "replaying %d dead-letter files from %s", n_files, dir);
    return r;
}

bool sl_replay_in_done(const struct sl_replay_in *r)
{
    for (int i = 0; i < r->n_files; i++)
        if (!r->files[i].done) return false;
    return true;
}

unsigned long long sl_replay_in_bad_lines(const struct sl_replay_in *r)
{
    return r->bad;
}

static const char *ops_name(const void *impl)
{
    (void)impl;
    return "replay";
}

static const struct sl_counters *ops_counters(const void *impl)
{
    struct sl_replay_in *r = (struct sl_replay_in *)impl;
    memset(&r->sum, 0, sizeof r->sum);
    for (int i = 0; i < r->n_files; i++) {
        const struct sl_counters *c = &r->files[i].ctr;
        r->sum.received += c->received;
        r->sum.delivered += c->delivered;
        r->sum.dead_lettered += c->dead_lettered;
        r->sum.dropped += c->dropped;
        r->sum.parse_errors += c->parse_errors;
        r->sum.unmatched += c->unmatched;
    }
    return &r->sum;
}

static void ops_stop(void *impl)
{
    ((struct sl_replay_in *)impl)->stopping = true;
}

static void ops_close(void *impl)
{
    struct sl_replay_in *r = impl;
    sl_timer_stop(r->p->loop, &r->tick);
    if (r->fp) fclose(r->fp);
    for (int i = 0; i < r->n_files; i++)
        free(r->files[i].path);
    for (size_t i = 0; i < r->strs.n; i++)
        free(r->strs.v[i]);
    free(r->strs.v);
    free(r->files);
    free(r->line);
    free(r->dir);
    free(r);
}

static void ops_log_stats(void *impl)
{
    struct sl_replay_in *r = impl;
    const struct sl_counters *c = ops_counters(r);
    SL_INFO("replay",
            "files=%d moved=%llu received=%llu delivered=%llu dead_lettered_again=%llu "
            "bad_lines=%llu",
            r->n_files, r->moved, (unsigned long long)c->received, (unsigned long long)c->delivered,
            (unsigned long long)c->dead_lettered, r->bad);
}

const struct sl_input_ops sl_replay_in_ops = {
    .name = ops_name,
    .counters = ops_counters,
    .stop = ops_stop,
    .close = ops_close,
    .log_stats = ops_log_stats,
};
