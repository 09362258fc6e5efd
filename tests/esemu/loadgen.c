/* esemu-loadgen: measures esemu's bulk throughput.
 *
 * Each thread builds one bulk body of about --body-bytes, then POSTs it over a keep-alive
 * connection for --seconds, rewriting a fixed-width request number inside every _id so each request
 * creates new documents instead of hitting the 409 path. With --pid it also reads the emulator's
 * CPU time from /proc, so the result can be stated as items per CPU-second of the emulator (the
 * "one core" figure), independent of how much CPU the generator itself took. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct opts {
    int port;
    int threads;
    double seconds;
    size_t body_bytes;
    size_t doc_bytes;
    const char *filter_path;
    const char *action;
    int pid;
};

struct worker {
    const struct opts *o;
    int id;
    pthread_t th;
    unsigned long long requests, items, errors, bad_status;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long cpu_ticks(int pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    long utime = 0, stime = 0;
    /* Fields after the command name: state is field 3, utime 14, stime 15. */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) != 2)
        return -1;
    return utime + stime;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads one response; returns its status or -1. Checks the body's "errors" flag. */
static int read_response(int fd, char **buf, size_t *cap, int *errors)
{
    size_t len = 0, hdr = 0, clen = 0;
    for (;;) {
        if (len == *cap) {
            *cap *= 2;
            *buf = realloc(*buf, *cap);
        }
        ssize_t r = recv(fd, *buf + len, *cap - len, 0);
        if (r <= 0) return -1;
        len += (size_t)r;
        if (!hdr) {
            char *e = memmem(*buf, len, "\r\n\r\n", 4);
            if (!e) continue;
            hdr = (size_t)(e + 4 - *buf);
            char *cl = memmem(*buf, hdr, "Content-Length: ", 16);
            if (!cl) return -1;
            clen = strtoul(cl + 16, NULL, 10);
            if (hdr + clen > *cap) {
                *cap = hdr + clen;
                *buf = realloc(*buf, *cap);
            }
        }
        if (len >= hdr + clen) break;
    }
    *errors = memmem(*buf + hdr, clen < 64 ? clen : 64, "\"errors\":true", 13) != NULL;
    return atoi(*buf + 9);
}

static void *run(void *arg)
{
    struct worker *w = arg;
    const struct opts *o = w->o;
    /* Build the body: every document carries a 10-digit request-number field in its _id. */
    size_t cap = o->body_bytes + 65536, len = 0, n_items = 0;
    char *body = malloc(cap);
    size_t *id_off = malloc(sizeof(size_t) * (o->body_bytes / 64 + 16));
    char filler[4096];
    memset(filler, 'x', sizeof filler);
    while (len + 1024 < o->body_bytes) {
        len += (size_t)sprintf(body + len, "{\"%s\":{\"_index\":\"bench\",\"_id\":\"p%d-t%02d-",
                               o->action, (int)getpid(), w->id);
        id_off[n_items] = len;
        len += (size_t)sprintf(body + len, "0000000000-%08zu\"}}\n", n_items);
        int head = sprintf(body + len,
                           "{\"@timestamp\":\"2024-05-01T12:00:00.000Z\",\"level\":\"INFO\","
                           "\"host\":\"web-%02zu\",\"n\":%zu,\"message\":\"",
                           n_items % 50, n_items);
        len += (size_t)head;
        size_t pad = o->doc_bytes > (size_t)head + 3 ? o->doc_bytes - (size_t)head - 3 : 1;
        memcpy(body + len, filler, pad);
        len += pad;
        len += (size_t)sprintf(body + len, "\"}\n");
        n_items++;
    }
    char hdr[512];
    int hn =
        snprintf(hdr, sizeof hdr,
                 "POST /_bulk%s%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                 "application/x-ndjson\r\nContent-Length: %zu\r\n\r\n",
                 o->filter_path ? "?filter_path=" : "", o->filter_path ? o->filter_path : "", len);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    size_t rcap = 1 << 20;
    char *resp = malloc(rcap);
    double end = now_s() + o->seconds;
    unsigned long long reqno = 0;
    while (now_s() < end) {
        char num[11];
        snprintf(num, sizeof num, "%010llu", reqno++);
        for (size_t i = 0; i < n_items; i++)
            memcpy(body + id_off[i], num, 10);
        if (send_all(fd, hdr, (size_t)hn) < 0 || send_all(fd, body, len) < 0) {
            perror("send");
            exit(1);
        }
        int errors = 0;
        int st = read_response(fd, &resp, &rcap, &errors);
        if (st < 0) {
            fprintf(stderr, "connection lost\n");
            exit(1);
        }
        w->requests++;
        w->items += n_items;
        w->errors += (unsigned long long)errors;
        w->bad_status += st != 200;
    }
    close(fd);
    free(resp);
    free(body);
    free(id_off);
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = {
        .threads = 1, .seconds = 5, .body_bytes = 5u << 20, .doc_bytes = 250, .action = "create"};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            o.port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            o.threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            o.seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--body-bytes"))
            o.body_bytes = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--doc-bytes"))
            o.doc_bytes = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--filter-path"))
            o.filter_path = argv[i + 1];
        else if (!strcmp(argv[i], "--action"))
            o.action = argv[i + 1];
        else if (!strcmp(argv[i], "--pid"))
            o.pid = atoi(argv[i + 1]);
    }
    if (!o.port || o.threads < 1 || o.threads > 64) {
        fprintf(stderr,
                "usage: esemu-loadgen --port P [--threads N] [--seconds S] "
                "[--body-bytes B] [--doc-bytes D] [--filter-path F] [--action create|index] "
                "[--pid ESEMU_PID]\n");
        return 2;
    }
    struct worker *ws = calloc((size_t)o.threads, sizeof *ws);
    long t0 = o.pid ? cpu_ticks(o.pid) : -1;
    double s0 = now_s();
    for (int i = 0; i < o.threads; i++) {
        ws[i].o = &o;
        ws[i].id = i;
        pthread_create(&ws[i].th, NULL, run, &ws[i]);
    }
    unsigned long long req = 0, items = 0, errs = 0, bad = 0;
    for (int i = 0; i < o.threads; i++) {
        pthread_join(ws[i].th, NULL);
        req += ws[i].requests;
        items += ws[i].items;
        errs += ws[i].errors;
        bad += ws[i].bad_status;
    }
    double el = now_s() - s0;
    printf(
        "requests %llu items %llu elapsed %.2fs wall_items_per_s %.0f responses_with_errors %llu "
        "non_200 %llu",
        req, items, el, (double)items / el, errs, bad);
    if (o.pid) {
        long t1 = cpu_ticks(o.pid);
        double cpu = (double)(t1 - t0) / (double)sysconf(_SC_CLK_TCK);
        printf(" esemu_cpu_s %.2f items_per_esemu_cpu_s %.0f", cpu,
               cpu > 0 ? (double)items / cpu : 0.0);
    }
    printf("\n");
    free(ws);
    return errs || bad ? 1 : 0;
}
