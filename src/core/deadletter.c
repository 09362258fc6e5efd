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

/* The current file is opened for one sync and closed after it, so an idle store holds no file open
 * for writing (a read-only remount of its filesystem is then possible) and every sync starts
 * from a fresh look at the file. file_size is the durable length of the current file: whatever a
 * failed write left beyond it is cut away before the next write. After a failed fdatasync the file
 * is not trusted at all (the kernel may have dropped the dirty pages and cleared the error): its
 * unsynced tail is cut and the next sync starts a new file. */
struct sl_dlq {
    char *dir;
    char path[4096];  /* current file; "" before the first one */
    bool new_file;    /* the next sync starts a new file (rotation, or after an fsync failure) */
    char stale[4096]; /* a file left after a failed fdatasync whose unsynced tail is not cut yet */
    uint64_t stale_size;
    uint64_t max_size;
    uint64_t used; /* bytes in all files, durable or buffered */
    uint64_t lines;
    uint64_t pending_lines;
    int fd;
    uint64_t file_size;
    unsigned file_seq;
    char *buf;
    size_t len, cap;
    bool failing;        /* the last sync failed (for the "works again" line) */
    uint64_t scanned_ms; /* when used was last counted from the directory */
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
    char ts[32], path[sizeof q->path];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(path, sizeof path, "%s/dead-letter-%s-%d-%u.ndjson", q->dir, ts, (int)getpid(),
             q->file_seq);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    /* The directory entry must be durable too, or a crash could lose a file whose lines were
     * synced and whose records were committed: a failed directory sync is a failed write. */
    int dfd = open(q->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        int e = errno;
        if (dfd >= 0) close(dfd);
        close(fd);
        unlink(path); /* empty; the next attempt creates another */
        errno = e;
        return -1;
    }
    close(dfd);
    q->fd = fd;
    q->file_seq++;
    memcpy(q->path, path, sizeof path);
    q->file_size = 0;
    q->new_file = false;
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
    q->scanned_ms = sl_now_ms();
    q->fd = -1;
    if (!q->dir || open_file(q) != 0) {
        snprintf(err, errlen, "cannot open a dead-letter file in %s: %s", dir, strerror(errno));
        sl_dlq_close(q);
        return NULL;
    }
    close(q->fd);
    q->fd = -1;
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
    if (q->used + line > q->max_size && sl_now_ms() - q->scanned_ms >= 1000) {
        /* Full: files may have been replayed or removed since it was counted; look again, at
         * most once a second while it stays full. */
        q->scanned_ms = sl_now_ms();
        q->used = scan_dir_bytes(q->dir) + start;
    }
    if (q->used + line > q->max_size) {
        q->len = start;
        return -1;
    }
    q->used += line;
    q->pending_lines++;
    return 0;
}

/* Opens the current file for appending (or a new one), with nothing beyond file_size in it. */
static int open_for_sync(struct sl_dlq *q)
{
    if (q->new_file || q->file_size >= SL_DLQ_FILE_MAX || !q->path[0]) {
        if (open_file(q) != 0) {
            int e = errno;
            SL_ERROR("dead-letter", "open",
                     "cannot create a dead-letter file in %s, or sync the directory: %s (errno "
                     "%d); its lines stay buffered, unacknowledged, and inputs paused until it "
                     "works",
                     q->dir, strerror(e), e);
            return -1;
        }
        return 0;
    }
    q->fd = open(q->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    struct stat st;
    if (q->fd < 0 || fstat(q->fd, &st) != 0) {
        int e = errno;
        if (e == ENOENT) { /* removed by someone: start a new file rather than recreate it */
            q->new_file = true;
            return open_for_sync(q);
        }
        SL_ERROR("dead-letter", "open",
                 "cannot open dead-letter file %s: %s (errno %d); inputs paused until it works",
                 q->path, strerror(e), e);
        if (q->fd >= 0) close(q->fd);
        q->fd = -1;
        return -1;
    }
    if ((uint64_t)st.st_size > q->file_size) {
        /* the tail of a failed write that could not be cut at the time */
        if (ftruncate(q->fd, (off_t)q->file_size) != 0) {
            int e = errno;
            SL_ERROR("dead-letter", "truncate",
                     "cannot cut a partial line off %s at %llu bytes: %s (errno %d); inputs "
                     "paused until it works",
                     q->path, (unsigned long long)q->file_size, strerror(e), e);
            close(q->fd);
            q->fd = -1;
            return -1;
        }
    } else if ((uint64_t)st.st_size < q->file_size) {
        q->file_size = (uint64_t)st.st_size; /* truncated by someone; keep the lines whole */
    }
    return 0;
}

/* After a failed write or fdatasync: cut what this sync appended, close the file. */
static void abandon(struct sl_dlq *q, bool untrusted)
{
    bool cut = ftruncate(q->fd, (off_t)q->file_size) == 0;
    if (!cut) {
        int e = errno;
        SL_ERROR("dead-letter", "truncate",
                 "cannot cut a partial line off %s at %llu bytes yet: %s (errno %d); retried "
                 "before the next write",
                 q->path, (unsigned long long)q->file_size, strerror(e), e);
    }
    close(q->fd);
    q->fd = -1;
    if (untrusted) {
        q->new_file = true;
        if (!cut) { /* its lines are written again elsewhere: they must not stay here too */
            memcpy(q->stale, q->path, sizeof q->stale);
            q->stale_size = q->file_size;
        }
    }
}

/* Cuts the unsynced tail of a file abandoned after a failed fdatasync; until that works nothing
 * else is written, so no line can end up in the store twice. */
static int cut_stale(struct sl_dlq *q)
{
    if (!q->stale[0]) return 0;
    int fd = open(q->stale, O_WRONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        q->stale[0] = '\0';
        return 0;
    }
    if (fd < 0 || ftruncate(fd, (off_t)q->stale_size) != 0 || fdatasync(fd) != 0) {
        int e = errno;
        SL_ERROR("dead-letter", "truncate",
                 "cannot cut unsynced lines off %s at %llu bytes: %s (errno %d); inputs paused "
                 "until it works",
                 q->stale, (unsigned long long)q->stale_size, strerror(e), e);
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    q->stale[0] = '\0';
    return 0;
}

int sl_dlq_sync(struct sl_dlq *q)
{
    if (q->len == 0) return 0;
    if (cut_stale(q) != 0 || open_for_sync(q) != 0) {
        q->failing = true;
        return -1;
    }
    size_t off = 0;
    while (off < q->len) {
        ssize_t w = write(q->fd, q->buf + off, q->len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            SL_ERROR("dead-letter", "write",
                     "writing %zu bytes to %s failed: %s (errno %d); the lines stay buffered and "
                     "inputs paused until it works",
                     q->len, q->path, strerror(e), e);
            abandon(q, false);
            q->failing = true;
            return -1;
        }
        off += (size_t)w;
    }
    if (fdatasync(q->fd) != 0) {
        int e = errno;
        SL_ERROR("dead-letter", "fsync",
                 "fdatasync of %s failed: %s (errno %d); its unsynced lines are cut and written "
                 "again to a new file",
                 q->path, strerror(e), e);
        abandon(q, true);
        q->failing = true;
        return -1;
    }
    close(q->fd);
    q->fd = -1;
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
    if (q->failing) {
        q->failing = false;
        SL_INFO("dead-letter", "dead-letter store %s works again (%s)", q->dir, q->path);
    }
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

size_t sl_dlq_buffer_bytes(const struct sl_dlq *q)
{
    return q->cap;
}

size_t sl_dlq_unsynced_bytes(const struct sl_dlq *q)
{
    return q->len;
}
