/* sluice: CLI and wiring. */
#include <curl/curl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/pipeline.h"
#include "inputs/kafka.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif

struct app {
    struct sl_config cfg;
    struct sl_loop *loop;
    struct sl_pipeline pipe;
    struct sl_input in[SL_CFG_MAX_INPUTS];
    size_t n_in;
    struct sl_io sig_io;
    int sigfd;
    struct sl_timer stats;
    bool stop;
    int stop_signal;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: sluice -c FILE            run the pipeline described by FILE\n"
               "       sluice check -c FILE      validate FILE; errors as FILE:LINE: message\n"
               "       sluice --version | --help\n"
               "\n"
               "Moves log records from Kafka to Elasticsearch in bounded memory, at least once.\n"
               "Signals: SIGTERM/SIGINT drain in-flight records, commit offsets and exit 0.\n"
               "Configuration keys: docs/configuration.md; example: examples/sluice.yaml.\n");
}

static void sig_cb(struct sl_io *io, uint32_t events)
{
    (void)events;
    struct app *a = io->arg;
    struct signalfd_siginfo si;
    while (read(a->sigfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            if (!a->stop) SL_INFO("sluice", "signal %d: draining", (int)si.ssi_signo);
            a->stop = true;
            a->stop_signal = (int)si.ssi_signo;
        }
    }
}

static void log_stats(struct app *a)
{
    for (size_t i = 0; i < a->n_in; i++)
        a->in[i].ops->log_stats(a->in[i].impl);
    for (size_t i = 0; i < a->pipe.n_outputs; i++)
        a->pipe.outputs[i].ops->log_stats(a->pipe.outputs[i].impl);
}

static void stats_cb(struct sl_timer *t)
{
    struct app *a = t->arg;
    log_stats(a);
    sl_timer_start(a->loop, t, a->cfg.service.stats_interval_ms);
}

static uint64_t in_flight(struct app *a)
{
    uint64_t n = 0;
    for (size_t i = 0; i < a->n_in; i++) {
        const struct sl_counters *c = a->in[i].ops->counters(a->in[i].impl);
        n += c->received - c->delivered - c->dead_lettered - c->dropped;
    }
    return n;
}

static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb;
}

/* One JSON line with the conservation counters, for operators and tests. */
static void print_final(struct app *a)
{
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof buf, "{\"inputs\":{");
    for (size_t i = 0; i < a->n_in; i++) {
        const struct sl_counters *c = a->in[i].ops->counters(a->in[i].impl);
        n += (size_t)snprintf(
            buf + n, sizeof buf - n,
            "%s\"%s\":{\"received\":%llu,\"delivered\":%llu,\"dead_lettered\":%llu,"
            "\"dropped\":%llu,\"in_flight\":%llu,\"parse_errors\":%llu,\"unmatched\":%llu}",
            i ? "," : "", a->in[i].ops->name(a->in[i].impl), (unsigned long long)c->received,
            (unsigned long long)c->delivered, (unsigned long long)c->dead_lettered,
            (unsigned long long)c->dropped,
            (unsigned long long)(c->received - c->delivered - c->dead_lettered - c->dropped),
            (unsigned long long)c->parse_errors, (unsigned long long)c->unmatched);
    }
    snprintf(buf + n, sizeof buf - n,
             "},\"dead_letter_lines\":%llu,\"budget_peak\":%llu,\"budget_limit\":%llu,"
             "\"peak_rss_kb\":%ld}",
             (unsigned long long)sl_dlq_lines(a->pipe.dlq), (unsigned long long)a->pipe.budget.peak,
             (unsigned long long)a->pipe.budget.limit, peak_rss_kb());
    SL_INFO("sluice", "final-stats %s", buf);
}

static int run(const char *path)
{
    static struct app a;
    char err[8192];
    if (sl_config_load(path, &a.cfg, err, sizeof err) != 0) {
        fputs(err, stderr);
        return 2;
    }
    sl_log_init(a.cfg.service.log_level, a.cfg.service.log_interval_ms);
    /* Batch bodies are hundreds of KiB. With glibc's dynamic mmap threshold, the first free of
     * one raises the threshold and later bodies come from the heap, where freed space is kept
     * rather than returned: RSS then creeps above what the budget accounts for. A fixed
     * threshold keeps big buffers in their own mappings, given back on free; two arenas stop
     * librdkafka's threads from each growing a heap of their own. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_ARENA_MAX, 2);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        SL_ERROR("sluice", NULL, "curl_global_init failed");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    a.loop = sl_loop_new();
    if (!a.loop) return 1;
    /* The budget is split: a quarter for librdkafka's prefetch (per input), 3/8 for the
     * pipeline's batches; the rest covers librdkafka's per-message overhead (not in its byte
     * counters), fetch buffers and allocator slack. Measured with a 30 s Elasticsearch stall
     * and a 95 MiB backlog at memory_limit 16MiB: peak RSS 26.6-27.0 MiB with 3/8, 27.6-32.3
     * MiB with 1/2. */
    uint64_t limit = a.cfg.service.memory_limit;
    uint64_t prefetch = limit / 4 / (a.cfg.n_inputs ? a.cfg.n_inputs : 1);
    if (sl_pipeline_init(&a.pipe, a.loop, &a.cfg, limit / 8 * 3, err, sizeof err) != 0) {
        SL_ERROR("sluice", NULL, "%s", err);
        return 1;
    }
    for (size_t i = 0; i < a.cfg.n_inputs; i++) {
        const struct sl_input_cfg *ic = &a.cfg.inputs[i];
        struct sl_input *in = &a.in[a.n_in];
        switch (ic->type) {
        case SL_INPUT_KAFKA:
            in->ops = &sl_kafka_in_ops;
            in->impl = sl_kafka_in_new(&a.pipe, ic, prefetch, err, sizeof err);
            break;
        }
        if (!in->impl) {
            SL_ERROR("sluice", NULL, "%s", err);
            return 1;
        }
        a.n_in++;
    }
    if (a.cfg.service.http_listen)
        SL_WARN("sluice", NULL,
                "service.http_listen (%s): the status server is not part of "
                "this build yet; metrics are logged every stats_interval instead",
                a.cfg.service.http_listen);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    a.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    a.sig_io = (struct sl_io){.fd = a.sigfd, .cb = sig_cb, .arg = &a};
    sl_loop_io_set(a.loop, &a.sig_io, EPOLLIN);
    a.stats.cb = stats_cb;
    a.stats.arg = &a;
    if (a.cfg.service.stats_interval_ms)
        sl_timer_start(a.loop, &a.stats, a.cfg.service.stats_interval_ms);
    SL_INFO("sluice",
            "sluice %s started: memory_limit=%llu pipeline budget=%llu prefetch=%llu "
            "dead-letter=%s",
            SLUICE_VERSION, (unsigned long long)limit, (unsigned long long)a.pipe.budget.limit,
            (unsigned long long)prefetch, a.cfg.service.dead_letter_path);

    while (!a.stop)
        sl_loop_run_once(a.loop, 1000);

    /* Drain: stop taking records, send what is batched, wait for what is in flight. */
    uint64_t deadline = sl_now_ms() + a.cfg.service.shutdown_timeout_ms;
    for (size_t i = 0; i < a.n_in; i++)
        a.in[i].ops->stop(a.in[i].impl);
    for (size_t i = 0; i < a.pipe.n_outputs; i++)
        a.pipe.outputs[i].ops->flush(a.pipe.outputs[i].impl);
    while (in_flight(&a) > 0 && sl_now_ms() < deadline) {
        sl_pipeline_dl_commit(&a.pipe);
        sl_loop_run_once(a.loop, 50);
    }
    uint64_t left = in_flight(&a);
    if (left)
        SL_WARN("sluice", NULL,
                "shutdown_timeout reached with %llu records in flight; their "
                "offsets are not committed, so they are redelivered after a restart",
                (unsigned long long)left);
    log_stats(&a);
    print_final(&a);
    for (size_t i = 0; i < a.n_in; i++)
        a.in[i].ops->close(a.in[i].impl);
    sl_timer_stop(a.loop, &a.stats);
    sl_pipeline_fini(&a.pipe);
    sl_loop_io_set(a.loop, &a.sig_io, 0);
    close(a.sigfd);
    sl_loop_free(a.loop);
    sl_config_free(&a.cfg);
    curl_global_cleanup();
    SL_INFO("sluice", "stopped");
    return 0;
}

static int check(const char *path)
{
    struct sl_config cfg;
    char err[16384];
    if (sl_config_load(path, &cfg, err, sizeof err) != 0) {
        fputs(err, stderr);
        return 2;
    }
    printf("%s: OK (%zu inputs, %zu outputs)\n", path, cfg.n_inputs, cfg.n_outputs);
    sl_config_free(&cfg);
    return 0;
}

int main(int argc, char **argv)
{
    bool do_check = false;
    if (argc > 1 && strcmp(argv[1], "check") == 0) {
        do_check = true;
        argv++;
        argc--;
    }
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'V':
            printf("sluice %s\n", SLUICE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return 2;
    }
    return do_check ? check(path) : run(path);
}
