/* The Forward input's request store (ack: stored). See fwdstore.h for the format. */
#include "inputs/fwdstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "core/log.h"

static const uint8_t MAGIC[4] = {'S', 'L', 'F', '1'};

/* Segments are sealed once past this size, so a finished one can be deleted while writing goes
 * on in the next. A quarter of the store at most, so a small store still rotates. */
#define SEG_MAX (16u << 20)
#define SEG_MIN (256u << 10)
#define RBUF_INIT (256u << 10)

/* ---------------------------------------------------------------- record framing */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t rec_crc(const uint8_t *hdr, const uint8_t *body, size_t body_len)
{
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, hdr + 4, 8);
    /* crc32 takes a uInt length: feed large bodies in pieces */
    while (body_len > 0) {
        uInt n = body_len > (1u << 30) ? (1u << 30) : (uInt)body_len;
        c = crc32(c, body, n);
        body += n;
        body_len -= n;
    }
    return (uint32_t)c;
}

void sl_fwdrec_header(uint8_t hdr[SL_FWDREC_HDR], const void *id, size_t id_len, const void *frame,
                      size_t frame_len)
{
    memcpy(hdr, MAGIC, 4);
    put32(hdr + 4, (uint32_t)(id_len + frame_len));
    hdr[8] = (uint8_t)id_len;
    hdr[9] = (uint8_t)(id_len >> 8);
    hdr[10] = hdr[11] = 0;
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, hdr + 4, 8);
    if (id_len) c = crc32(c, id, (uInt)id_len);
    const uint8_t *f = frame;
    while (frame_len > 0) {
        uInt n = frame_len > (1u << 30) ? (1u << 30) : (uInt)frame_len;
        c = crc32(c, f, n);
        f += n;
        frame_len -= n;
    }
    put32(hdr + 12, (uint32_t)c);
}

enum sl_fwdrec_status sl_fwdrec_parse(const uint8_t *buf, size_t len, size_t max_body,
                                      struct sl_fwdrec *r, size_t *need)
{
    size_t m = len < 4 ? len : 4;
    if (memcmp(buf, MAGIC, m) != 0) return SL_FWDREC_BAD;
    if (len < SL_FWDREC_HDR) {
        *need = SL_FWDREC_HDR;
        return SL_FWDREC_MORE;
    }
    uint32_t body = get32(buf + 4);
    size_t id_len = (size_t)buf[8] | (size_t)buf[9] << 8;
    if (buf[10] || buf[11] || id_len > SL_FWDREC_ID_MAX || id_len > body || body > max_body)
        return SL_FWDREC_BAD;
    size_t total = SL_FWDREC_HDR + (size_t)body;
    if (len < total) {
        *need = total;
        return SL_FWDREC_MORE;
    }
    if (rec_crc(buf, buf + SL_FWDREC_HDR, body) != get32(buf + 12)) return SL_FWDREC_BAD;
    r->id = buf + SL_FWDREC_HDR;
    r->id_len = id_len;
    r->frame = buf + SL_FWDREC_HDR + id_len;
    r->frame_len = body - id_len;
    r->total = total;
    return SL_FWDREC_OK;
}

size_t sl_fwdrec_resync(const uint8_t *buf, size_t len, size_t max_body)
{
    for (size_t p = 1; p < len; p++) {
        if (buf[p] != MAGIC[0]) continue;
        struct sl_fwdrec r;
        size_t need;
        if (sl_fwdrec_parse(buf + p, len - p, max_body, &r, &need) != SL_FWDREC_BAD) return p;
    }
    return len;
}

/* ---------------------------------------------------------------- the store */

struct seg {
    struct seg *next;
    uint64_t seq;
    uint64_t size;   /* bytes written, synced or not */
    uint64_t synced; /* durable bytes; the feeder reads up to here */
    int64_t end;     /* running event index after its last event; valid once fed */
    bool fed;        /* the feeder has passed it */
    bool sealed;     /* no more appends */
    bool old;        /* left by an earlier run */
};

struct sl_fwdstore {
    char *dir;
    char *name; /* log component */
    uint64_t max_size, max_body, seg_max;
    struct sl_budget *budget;
    struct seg *head, *tail, *active;
    int wfd;
    uint64_t next_seq, used, nsegs;
    /* feeder */
    struct seg *rseg;
    int rfd;
    uint8_t *buf;
    size_t cap, len, pos;
    uint64_t boff; /* file offset of buf[0] */
    uint64_t corrupt, torn;
    char errpath[4200];
};

static void seg_path(const struct sl_fwdstore *s, uint64_t seq, char *out, size_t n)
{
    snprintf(out, n, "%s/seg-%016" PRIx64 ".fwd", s->dir, seq);
}

static void insert_sorted(struct sl_fwdstore *s, struct seg *g)
{
    struct seg **pp = &s->head;
    while (*pp && (*pp)->seq < g->seq)
        pp = &(*pp)->next;
    g->next = *pp;
    *pp = g;
    if (!g->next) s->tail = g;
    s->nsegs++;
}

static int mkdir_one(const char *p, char *err, size_t errlen)
{
    if (mkdir(p, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create storage directory %s: %s", p, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "storage path %s is not a directory", p);
        return -1;
    }
    return 0;
}

struct sl_fwdstore *sl_fwdstore_open(const char *root, const char *name, uint64_t max_size,
                                     uint64_t max_body, struct sl_budget *budget, char *err,
                                     size_t errlen)
{
    if (mkdir_one(root, err, errlen) != 0) return NULL;
    struct sl_fwdstore *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->wfd = s->rfd = -1;
    s->max_size = max_size;
    s->max_body = max_body;
    s->seg_max = max_size / 4 < SEG_MAX ? max_size / 4 : SEG_MAX;
    if (s->seg_max < SEG_MIN) s->seg_max = SEG_MIN;
    s->budget = budget;
    size_t dl = strlen(root) + strlen(name) + 2;
    s->dir = malloc(dl);
    s->name = strdup(name);
    if (!s->dir || !s->name) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    snprintf(s->dir, dl, "%s/%s", root, name);
    if (mkdir_one(s->dir, err, errlen) != 0) goto fail;
    DIR *d = opendir(s->dir);
    if (!d) {
        snprintf(err, errlen, "cannot read storage directory %s: %s", s->dir, strerror(errno));
        goto fail;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strlen(n) != 24 || strncmp(n, "seg-", 4) != 0 || strcmp(n + 20, ".fwd") != 0) continue;
        uint64_t seq = 0;
        bool ok = true;
        for (int i = 4; i < 20; i++) {
            char ch = n[i];
            int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
            if (v < 0) ok = false;
            seq = seq << 4 | (uint64_t)(v < 0 ? 0 : v);
        }
        if (!ok) continue;
        char p[4200];
        struct stat st;
        seg_path(s, seq, p, sizeof p);
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        struct seg *g = calloc(1, sizeof *g);
        if (!g) {
            closedir(d);
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        g->seq = seq;
        g->size = g->synced = (uint64_t)st.st_size;
        g->sealed = g->old = true;
        insert_sorted(s, g);
        s->used += g->size;
        if (seq >= s->next_seq) s->next_seq = seq + 1;
    }
    closedir(d);
    if (s->nsegs)
        SL_INFO(s->name, "%llu stored segments (%llu bytes) in %s to replay",
                (unsigned long long)s->nsegs, (unsigned long long)s->used, s->dir);
    return s;
fail:
    sl_fwdstore_close(s);
    return NULL;
}

static void set_buf(struct sl_fwdstore *s, size_t cap)
{
    if (cap == s->cap) return;
    uint8_t *n = cap ? realloc(s->buf, cap) : (free(s->buf), NULL);
    if (cap && !n) abort();
    if (cap > s->cap)
        sl_budget_charge(s->budget, cap - s->cap);
    else
        sl_budget_release(s->budget, s->cap - cap);
    s->buf = n;
    s->cap = cap;
}

void sl_fwdstore_close(struct sl_fwdstore *s)
{
    if (!s) return;
    if (s->wfd >= 0) close(s->wfd);
    if (s->rfd >= 0) close(s->rfd);
    set_buf(s, 0);
    while (s->head) {
        struct seg *g = s->head;
        s->head = g->next;
        free(g);
    }
    free(s->dir);
    free(s->name);
    free(s);
}

const char *sl_fwdstore_dir(const struct sl_fwdstore *s)
{
    return s->dir;
}

const char *sl_fwdstore_errpath(const struct sl_fwdstore *s)
{
    return s->errpath;
}

bool sl_fwdstore_dirty(const struct sl_fwdstore *s)
{
    return s->active && s->active->size > s->active->synced;
}

static void sync_dir(const struct sl_fwdstore *s)
{
    int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

static int open_active(struct sl_fwdstore *s)
{
    uint64_t seq = s->next_seq;
    seg_path(s, seq, s->errpath, sizeof s->errpath);
    int fd = open(s->errpath, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    struct seg *g = calloc(1, sizeof *g);
    if (!g) abort();
    s->next_seq++;
    g->seq = seq;
    insert_sorted(s, g);
    s->active = g;
    s->wfd = fd;
    /* The directory entry must be durable too, or a crash could lose a synced segment. */
    int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        int e = errno;
        if (dfd >= 0) close(dfd);
        snprintf(s->errpath, sizeof s->errpath, "%s", s->dir);
        errno = e;
        return -1;
    }
    close(dfd);
    return 0;
}

int sl_fwdstore_append(struct sl_fwdstore *s, const void *id, size_t id_len, const void *frame,
                       size_t frame_len)
{
    uint64_t total = SL_FWDREC_HDR + id_len + frame_len;
    if (s->used + total > s->max_size) return SL_FWDSTORE_FULL;
    if (!s->active && open_active(s) != 0) return -1;
    uint8_t hdr[SL_FWDREC_HDR];
    sl_fwdrec_header(hdr, id, id_len, frame, frame_len);
    struct iovec iov[3] = {{hdr, sizeof hdr}, {(void *)id, id_len}, {(void *)frame, frame_len}};
    int i = 0;
    while (i < 3) {
        if (iov[i].iov_len == 0) {
            i++;
            continue;
        }
        ssize_t w = writev(s->wfd, iov + i, 3 - i);
        if (w < 0) {
            if (errno == EINTR) continue;
            seg_path(s, s->active->seq, s->errpath, sizeof s->errpath);
            return -1;
        }
        size_t left = (size_t)w;
        while (i < 3 && left >= iov[i].iov_len) {
            left -= iov[i].iov_len;
            iov[i].iov_len = 0;
            i++;
        }
        if (i < 3) {
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + left;
            iov[i].iov_len -= left;
        }
    }
    s->active->size += total;
    s->used += total;
    return 0;
}

int sl_fwdstore_sync(struct sl_fwdstore *s)
{
    struct seg *g = s->active;
    if (!g || g->size == g->synced) return 0;
    if (fdatasync(s->wfd) != 0) {
        seg_path(s, g->seq, s->errpath, sizeof s->errpath);
        return -1;
    }
    g->synced = g->size;
    if (g->size >= s->seg_max) {
        close(s->wfd);
        s->wfd = -1;
        g->sealed = true;
        s->active = NULL;
    }
    return 0;
}

void sl_fwdstore_rollback(struct sl_fwdstore *s)
{
    struct seg *g = s->active;
    if (!g) return;
    /* Best effort: the feeder reads only up to `synced` anyway, and a replay after a crash
     * skips a torn tail. */
    if (g->size > g->synced && ftruncate(s->wfd, (off_t)g->synced) != 0)
        SL_WARN(s->name, "storage_truncate", "cannot truncate %s/seg-%016" PRIx64 ".fwd: %s",
                s->dir, g->seq, strerror(errno));
    close(s->wfd);
    s->wfd = -1;
    s->used -= g->size - g->synced;
    g->size = g->synced;
    g->sealed = true;
    s->active = NULL;
}

/* ---------------------------------------------------------------- the feeder */

static void reader_reset(struct sl_fwdstore *s)
{
    if (s->rfd >= 0) close(s->rfd);
    s->rfd = -1;
    s->rseg = NULL;
    s->len = s->pos = 0;
    s->boff = 0;
    if (s->cap > RBUF_INIT) set_buf(s, RBUF_INIT);
}

/* Reads more of the segment so that at least `need` bytes from pos are buffered (or all there
 * is). Returns 0, or -1 on a read error. */
static int refill(struct sl_fwdstore *s, size_t need)
{
    if (s->pos) {
        memmove(s->buf, s->buf + s->pos, s->len - s->pos);
        s->len -= s->pos;
        s->boff += s->pos;
        s->pos = 0;
    }
    size_t want = need > RBUF_INIT ? need : RBUF_INIT;
    if (want > s->cap) set_buf(s, want);
    uint64_t limit = s->rseg->synced;
    while (s->len < s->cap && s->boff + s->len < limit) {
        uint64_t left = limit - (s->boff + s->len);
        size_t n = s->cap - s->len;
        if (n > left) n = (size_t)left;
        ssize_t r = pread(s->rfd, s->buf + s->len, n, (off_t)(s->boff + s->len));
        if (r < 0) {
            if (errno == EINTR) continue;
            SL_ERROR(s->name, "storage_read", "reading %s/seg-%016" PRIx64 ".fwd: %s", s->dir,
                     s->rseg->seq, strerror(errno));
            return -1;
        }
        if (r == 0) {
            /* shorter than we thought (changed behind our back): what is there is all */
            s->rseg->synced = s->rseg->size = s->boff + s->len;
            break;
        }
        s->len += (size_t)r;
        if (s->len - s->pos >= need) break;
    }
    return 0;
}

static void finish_seg(struct sl_fwdstore *s, int64_t next_index)
{
    s->rseg->fed = true;
    s->rseg->end = next_index;
    reader_reset(s);
}

static void truncate_tail(struct sl_fwdstore *s, uint64_t at)
{
    struct seg *g = s->rseg;
    char p[4200];
    seg_path(s, g->seq, p, sizeof p);
    uint64_t cut = g->synced - at;
    s->torn += cut;
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)at) != 0 || fdatasync(fd) != 0)
        SL_WARN(s->name, "storage_truncate", "%s: cannot truncate the torn tail: %s", p,
                strerror(errno));
    if (fd >= 0) close(fd);
    SL_WARN(s->name, "storage_torn_tail",
            "%s: torn tail at offset %llu: truncated %llu bytes (a record cut short by a crash "
            "before its sync; it was never acknowledged)",
            p, (unsigned long long)at, (unsigned long long)cut);
    s->used -= g->size - at;
    g->size = g->synced = at;
}

/* A bad record at boff + pos of a sealed segment: skip to the next valid record, or truncate the
 * tail when none follows. Returns 0 (position moved), -1 (read error). */
static int skip_bad(struct sl_fwdstore *s)
{
    struct seg *g = s->rseg;
    uint64_t bad_at = s->boff + s->pos;
    for (;;) {
        size_t p = sl_fwdrec_resync(s->buf + s->pos, s->len - s->pos, s->max_body);
        if (p < s->len - s->pos) {
            s->pos += p;
            struct sl_fwdrec r;
            size_t need = 0;
            enum sl_fwdrec_status st =
                sl_fwdrec_parse(s->buf + s->pos, s->len - s->pos, s->max_body, &r, &need);
            if (st == SL_FWDREC_MORE && s->boff + s->pos + need <= g->synced) {
                if (refill(s, need) != 0) return -1;
                st = sl_fwdrec_parse(s->buf + s->pos, s->len - s->pos, s->max_body, &r, &need);
            }
            if (st == SL_FWDREC_OK) {
                char path[4200];
                seg_path(s, g->seq, path, sizeof path);
                s->corrupt++;
                SL_ERROR(s->name, "storage_corrupt",
                         "%s: corrupt data at offset %llu: %llu bytes skipped up to the next "
                         "valid record (the requests in them are lost)",
                         path, (unsigned long long)bad_at,
                         (unsigned long long)(s->boff + s->pos - bad_at));
                return 0;
            }
            /* not a record after all: go on scanning past this candidate */
            continue;
        }
        s->pos = s->len;
        if (s->boff + s->len >= g->synced) {
            truncate_tail(s, bad_at);
            s->boff = bad_at; /* = the new end: the segment is finished */
            s->len = s->pos = 0;
            return 0;
        }
        if (refill(s, SL_FWDREC_HDR) != 0) return -1;
    }
}

int sl_fwdstore_next(struct sl_fwdstore *s, int64_t next_index, struct sl_fwdrec *r)
{
    for (;;) {
        if (!s->rseg) {
            struct seg *g = s->head;
            while (g && g->fed)
                g = g->next;
            if (!g) return 0;
            char p[4200];
            seg_path(s, g->seq, p, sizeof p);
            s->rfd = open(p, O_RDONLY | O_CLOEXEC);
            if (s->rfd < 0) {
                SL_ERROR(s->name, "storage_read", "cannot open %s: %s", p, strerror(errno));
                return -1;
            }
            s->rseg = g;
            s->boff = 0;
            s->len = s->pos = 0;
            if (g->old)
                SL_INFO(s->name, "replaying %s (%llu bytes)", p, (unsigned long long)g->size);
        }
        struct seg *g = s->rseg;
        size_t need = SL_FWDREC_HDR;
        enum sl_fwdrec_status st = SL_FWDREC_MORE;
        if (s->pos < s->len)
            st = sl_fwdrec_parse(s->buf + s->pos, s->len - s->pos, s->max_body, r, &need);
        if (st == SL_FWDREC_OK) {
            s->pos += r->total;
            return 1;
        }
        uint64_t at = s->boff + s->pos;
        if (st == SL_FWDREC_MORE) {
            if (s->boff + s->len < g->synced) {
                if (refill(s, need) != 0) return -1;
                continue;
            }
            if (at == g->synced) {
                if (!g->sealed) return 0; /* the active segment: wait for more */
                finish_seg(s, next_index);
                continue;
            }
            if (!g->sealed) return 0; /* cannot happen: syncs end on record boundaries */
            /* a record cut short at the end of a sealed segment: skip_bad truncates it */
        }
        if (skip_bad(s) != 0) return -1;
    }
}

static int delete_seg(struct sl_fwdstore *s, struct seg *g)
{
    char p[4200];
    seg_path(s, g->seq, p, sizeof p);
    if (unlink(p) != 0 && errno != ENOENT) {
        SL_WARN(s->name, "storage_unlink", "cannot delete finished segment %s: %s (retrying)", p,
                strerror(errno));
        return -1;
    }
    struct seg **pp = &s->head;
    while (*pp != g)
        pp = &(*pp)->next;
    *pp = g->next;
    if (s->tail == g) {
        s->tail = s->head;
        while (s->tail && s->tail->next)
            s->tail = s->tail->next;
    }
    s->used -= g->size;
    s->nsegs--;
    free(g);
    return 0;
}

uint64_t sl_fwdstore_gc(struct sl_fwdstore *s, int64_t done_next, int64_t next_index)
{
    uint64_t freed = 0;
    while (s->head) {
        struct seg *g = s->head;
        uint64_t sz = g->size;
        if (g->fed && g->end <= done_next) {
            if (delete_seg(s, g) != 0) break;
        } else if (g == s->active && s->rseg == g && s->boff + s->pos == g->synced &&
                   g->size == g->synced && done_next >= next_index) {
            /* idle: everything written is fed and finished; start afresh on the next append */
            close(s->wfd);
            s->wfd = -1;
            s->active = NULL;
            reader_reset(s);
            if (delete_seg(s, g) != 0) {
                g->sealed = true;
                g->fed = true;
                g->end = next_index;
                break;
            }
        } else {
            break;
        }
        freed += sz;
    }
    if (freed && !s->head) sync_dir(s);
    return freed;
}

void sl_fwdstore_stats(const struct sl_fwdstore *s, struct sl_fwdstore_stats *out)
{
    uint64_t left = 0;
    for (const struct seg *g = s->head; g; g = g->next)
        if (g->old && !g->fed) left++;
    *out = (struct sl_fwdstore_stats){
        .used = s->used,
        .segments = s->nsegs,
        .corrupt = s->corrupt,
        .torn_bytes = s->torn,
        .replay_left = left,
    };
}
