#include "core/deadletter.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codec/json.h"
#include "core/log.h"

/* One file is rotated when it passes this size, so replay and removal work on bounded pieces. */
#define SL_DLQ_FILE_MAX (64u << 20)
#define SL_DLQ_BUF_KEEP (1u << 20)

struct sl_dlq {
    char *dir;
    uint64_t max_size;
    uint64_t used; /* bytes in all files, durable or buffered */
    uint64_t lines;
    uint64_t pending_lines;
    int fd;
    uint64_t file_size;
    unsigned file_seq;
    char *buf;
    size_t len, cap;
};

static uint64_t scan_dir_bytes(const char *dir)
{
    uint64_t total = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 7 || strcmp(e->d_name + n - 7, ".ndjson") != 0) continue;
        char p[4096];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0) total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

static int open_file(struct sl_dlq *q)
{
    char ts[32], path[4096];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(path, sizeof path, "%s/dead-letter-%s-%d-%u.ndjson", q->dir, ts, (int)getpid(),
             q->file_seq++);
    q->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (q->fd < 0) return -1;
    q->file_size = 0;
    /* The directory entry must be durable too, or a crash could lose a synced file. */
    int dfd = open(q->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

struct sl_dlq *sl_dlq_open(const char *dir, uint64_t max_size, char *err, size_t errlen)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create dead-letter directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    struct sl_dlq *q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    q->dir = strdup(dir);
    q->max_size = max_size;
    q->used = scan_dir_bytes(dir);
    q->fd = -1;
    if (!q->dir || open_file(q) != 0) {
        snprintf(err, errlen, "cannot open a dead-letter file in %s: %s", dir, strerror(errno));
        sl_dlq_close(q);
        return NULL;
    }
    return q;
}

void sl_dlq_close(struct sl_dlq *q)
{
    if (!q) return;
    if (q->fd >= 0) close(q->fd);
    free(q->buf);
    free(q->dir);
    free(q);
}

static int reserve(struct sl_dlq *q, size_t more)
{
    if (q->len + more <= q->cap) return 0;
    size_t ncap = q->cap ? q->cap : 65536;
    while (ncap < q->len + more)
        ncap *= 2;
    char *nb = realloc(q->buf, ncap);
    if (!nb) return -1;
    q->buf = nb;
    q->cap = ncap;
    return 0;
}

static void put(struct sl_dlq *q, const char *s, size_t n)
{
    memcpy(q->buf + q->len, s, n);
    q->len += n;
}

static void put_str(struct sl_dlq *q, const char *key, const char *s, size_t n, bool escaped)
{
    put(q, ",\"", 2);
    put(q, key, strlen(key));
    put(q, "\":\"", 3);
    if (escaped)
        put(q, s, n);
    else
        q->len += sl_json_escape(s, n, q->buf + q->len);
    put(q, "\"", 1);
}

int sl_dlq_write(struct sl_dlq *q, const struct sl_dl_record *r)
{
    /* Worst case: every string escaped at 6 bytes per input byte, plus fixed keys. */
    size_t worst = 512 + 6 * (r->error_type_len + r->error_reason_len + r->index_len + r->tag_len +
                              r->topic_len + r->payload_len + strlen(r->reason) + strlen(r->input) +
                              (r->output ? strlen(r->output) : 0));
    if (reserve(q, worst) != 0) return -1;
    size_t start = q->len;
    char num[64], ts[32];
    sl_time_format_rfc3339(sl_wall_ns(), ts);
    put(q, "{\"time\":\"", 9);
    put(q, ts, strlen(ts));
    put(q, "\"", 1);
    put_str(q, "reason", r->reason, strlen(r->reason), false);
    int n = snprintf(num, sizeof num, ",\"status\":%d", r->status);
    put(q, num, (size_t)n);
    if (r->error_type) put_str(q, "error_type", r->error_type, r->error_type_len, r->error_escaped);
    if (r->error_reason)
        put_str(q, "error_reason", r->error_reason, r->error_reason_len, r->error_escaped);
    put_str(q, "input", r->input, strlen(r->input), false);
    if (r->output) put_str(q, "output", r->output, strlen(r->output), false);
    if (r->index) put_str(q, "index", r->index, r->index_len, false);
    put_str(q, "tag", r->tag, r->tag_len, false);
    if (r->topic) {
        put(q, ",\"source\":{\"topic\":\"", 20);
        q->len += sl_json_escape(r->topic, r->topic_len, q->buf + q->len);
        n = snprintf(num, sizeof num, "\",\"partition\":%d,\"offset\":%lld}", r->partition,
                     (long long)r->offset);
        put(q, num, (size_t)n);
    }
    n = snprintf(num, sizeof num, ",\"attempts\":%d", r->attempts);
    put(q, num, (size_t)n);
    sl_time_format_rfc3339(r->time_ns, ts);
    put_str(q, "event_time", ts, strlen(ts), true);
    put_str(q, "payload", r->payload, r->payload_len, false);
    put(q, "}\n", 2);
    size_t line = q->len - start;
    if (q->used + line > q->max_size) {
        q->len = start;
        return -1;
    }
    q->used += line;
    q->pending_lines++;
    return 0;
}

int sl_dlq_sync(struct sl_dlq *q)
{
    if (q->len == 0) return 0;
    if (q->file_size >= SL_DLQ_FILE_MAX) {
        close(q->fd);
        if (open_file(q) != 0) {
            SL_ERROR("dead-letter", "open", "cannot open a new file in %s: %s", q->dir,
                     strerror(errno));
            return -1;
        }
    }
    size_t off = 0;
    while (off < q->len) {
        ssize_t w = write(q->fd, q->buf + off, q->len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            SL_ERROR("dead-letter", "write", "writing to %s failed: %s", q->dir, strerror(errno));
            /* A partial line may be on disk; truncating it away keeps the file parseable. */
            if (off && ftruncate(q->fd, (off_t)q->file_size) != 0)
                SL_ERROR("dead-letter", "truncate", "cannot remove a partial line: %s",
                         strerror(errno));
            return -1;
        }
        off += (size_t)w;
    }
    if (fdatasync(q->fd) != 0) {
        SL_ERROR("dead-letter", "fsync", "fdatasync in %s failed: %s", q->dir, strerror(errno));
        return -1;
    }
    q->file_size += q->len;
    q->len = 0;
    if (q->cap > SL_DLQ_BUF_KEEP) {
        /* one huge record must not pin its escaped copy for the rest of the run */
        free(q->buf);
        q->buf = NULL;
        q->cap = 0;
    }
    q->lines += q->pending_lines;
    q->pending_lines = 0;
    return 0;
}

uint64_t sl_dlq_lines(const struct sl_dlq *q)
{
    return q->lines;
}

uint64_t sl_dlq_bytes(const struct sl_dlq *q)
{
    return q->used;
}

const char *sl_dlq_dir(const struct sl_dlq *q)
{
    return q->dir;
}
