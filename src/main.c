/* sluice: CLI and wiring. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "alloc.h"
#include "core/acktrack.h"
#include "core/config.h"
#include "core/dlfile.h"
#include "core/http.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/pipeline.h"
#include "core/status_page.h"
#include "inputs/forward.h"
#include "inputs/kafka.h"
#include "inputs/replay.h"
#include "outputs/elasticsearch.h"
#include "outputs/forward.h"
#include "plugins/registry.h"
#include "tools/deadletter_cli.h"
#include "tools/replay_kafka.h"

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
    const char *log_file;
    bool stop;
    int stop_signal;
    struct sl_http_server *http;
    struct sl_metrics *metrics;
    struct sl_timer health;
    uint64_t started_ms, health_progress_ms, health_done, stall_after_ms;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sluice -c FILE            run the pipeline described by FILE\n"
            "       sluice check -c FILE      validate FILE; errors as FILE:LINE: message\n"
            "       sluice dead-letter list DIR          summarise a dead-letter store\n"
            "       sluice dead-letter show DIR [--reason TEXT] [--limit N] [--full]\n"
            "       sluice dead-letter replay -c FILE [DIR]\n"
            "                                 send dead letters again through FILE's outputs\n"
            "                                 (DIR defaults to FILE's dead_letter.path); files\n"
            "                                 done are moved to DIR/replayed/\n"
            "       sluice dead-letter replay --to-kafka BROKERS TOPIC [--librdkafka k=v]... DIR\n"
            "                                 send the original payloads to a Kafka topic\n"
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
        if (si.ssi_signo == SIGHUP) {
            /* log rotation: the old file was renamed; continue in a new one at the path */
            if (sl_log_open(a->log_file) != 0)
                SL_ERROR("sluice", "log_reopen", "SIGHUP: cannot reopen %s: %s",
                         a->log_file ? a->log_file : "(stderr)", strerror(errno));
            else
                SL_INFO("sluice", "SIGHUP: log file reopened");
            continue;
        }
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

/* ---- status server: /metrics, /healthz, /status, / ---- */

static double m_in_flight(void *ctx)
{
    const struct sl_counters *c = ctx;
    return (double)(c->received - c->delivered - c->dead_lettered - c->dropped);
}

static double m_dead_letter_lines(void *ctx)
{
    return (double)sl_dlq_lines(((struct app *)ctx)->pipe.dlq);
}

struct part_fams {
    struct sl_metric_family *committed, *hwm, *lag, *paused, *held, *waiting, *waiting_on,
        *uncommitted;
};
static struct part_fams pf;
static struct sl_metric_family *cluster_fam;
static struct sl_metric_family *fwd_unhealthy_fam;

static void m_partition(const struct sl_kafka_partition_info *p, void *ctx)
{
    char part[16];
    snprintf(part, sizeof part, "%d", (int)p->partition);
    const char *v[] = {ctx, p->topic, part};
    *sl_metric_gauge(pf.committed, v) = p->committed;
    *sl_metric_gauge(pf.hwm, v) = p->high_watermark;
    *sl_metric_gauge(pf.lag, v) = p->lag;
    *sl_metric_gauge(pf.paused, v) = p->paused;
    *sl_metric_gauge(pf.held, v) = p->held;
    *sl_metric_gauge(pf.waiting, v) = (int64_t)(p->waiting_ms / 1000);
    *sl_metric_gauge(pf.uncommitted, v) = p->uncommitted;
    if (p->held) {
        char off[24];
        snprintf(off, sizeof off, "%lld", (long long)p->waiting_offset);
        const char *w[] = {ctx, p->topic, part, off,
                           p->waiting_why ? p->waiting_why : "no error reported yet"};
        *sl_metric_gauge(pf.waiting_on, w) = 1;
    }
}

/* Partitions come and go with rebalances: rebuilt from the inputs right before each render. */
static void refresh_partitions(struct app *a)
{
    sl_metric_family_clear(pf.committed);
    sl_metric_family_clear(pf.hwm);
    sl_metric_family_clear(pf.lag);
    sl_metric_family_clear(pf.paused);
    sl_metric_family_clear(pf.held);
    sl_metric_family_clear(pf.waiting);
    sl_metric_family_clear(pf.waiting_on);
    sl_metric_family_clear(pf.uncommitted);
    for (size_t i = 0; i < a->n_in; i++)
        if (a->in[i].ops == &sl_kafka_in_ops)
            sl_kafka_in_partitions(a->in[i].impl, m_partition,
                                   (void *)a->in[i].ops->name(a->in[i].impl));
}

/* Per output: counters read in place from the output's stats, retries by reason, and the request
 * latency histogram the output observes into. */
static int metrics_setup_outputs(struct app *a, struct sl_metrics *m, char *err, size_t errlen)
{
    struct sl_metric_family *req, *items, *bytes, *del, *dl, *idm, *rex, *retr, *lat;
    if (!(req = sl_metrics_counter(m, "sluice_output_requests_total",
                                   "Requests sent by an output (bulk requests, with retries).",
                                   "output", err, errlen)) ||
        !(items = sl_metrics_counter(m, "sluice_output_items_sent_total",
                                     "Records sent by an output, each attempt counted.", "output",
                                     err, errlen)) ||
        !(bytes = sl_metrics_counter(m, "sluice_output_sent_bytes_total",
                                     "Request body bytes sent (compressed when gzip is on).",
                                     "output", err, errlen)) ||
        !(del = sl_metrics_counter(m, "sluice_output_records_delivered_total",
                                   "Records an output delivered (2xx, or 409 on create).", "output",
                                   err, errlen)) ||
        !(dl = sl_metrics_counter(m, "sluice_output_records_dead_lettered_total",
                                  "Records an output gave up on permanently.", "output", err,
                                  errlen)) ||
        !(idm = sl_metrics_counter(m, "sluice_output_id_missing_total",
                                   "Records without a usable _id in the id field (dead-lettered "
                                   "or given their source's id, per id_missing).",
                                   "output", err, errlen)) ||
        !(rex = sl_metrics_counter(m, "sluice_output_retries_exhausted_total",
                                   "Items dead-lettered because the cluster still refused them "
                                   "item_retry_timeout after they were first sent.",
                                   "output", err, errlen)) ||
        !(retr = sl_metrics_counter(m, "sluice_output_retries_total",
                                    "Retries by reason: whole requests (transport, timeout, "
                                    "http_*), item subsets (item), 413 splits.",
                                    "output,reason", err, errlen)) ||
        !(lat = sl_metrics_histogram(m, "sluice_output_request_duration_seconds",
                                     "Time from sending a request to its complete answer.",
                                     "output", sl_metrics_latency_buckets,
                                     sl_metrics_n_latency_buckets, err, errlen)))
        return -1;
    for (size_t i = 0; i < a->pipe.n_outputs; i++) {
        struct sl_output *o = &a->pipe.outputs[i];
        struct sl_output_stats *st = o->ops->stats(o->impl);
        const char *v[] = {o->name};
        sl_metric_bind_u64(req, v, &st->requests);
        sl_metric_bind_u64(items, v, &st->items_sent);
        sl_metric_bind_u64(bytes, v, &st->bytes_sent);
        sl_metric_bind_u64(del, v, &st->delivered);
        sl_metric_bind_u64(dl, v, &st->dead_lettered);
        sl_metric_bind_u64(idm, v, &st->id_missing);
        sl_metric_bind_u64(rex, v, &st->retries_exhausted);
        for (size_t r = 0; r < st->n_reasons; r++) {
            const char *rv[] = {o->name, st->reason_names[r]};
            sl_metric_bind_u64(retr, rv, &st->retries[r]);
        }
        st->latency = sl_metric_histogram(lat, v);
    }
    struct sl_metric_family *fo;
    if (!(fwd_unhealthy_fam = sl_metrics_gauge(
              m, "sluice_forward_output_server_unhealthy",
              "1 while a Forward output leaves the server out after max_ack_timeouts ack "
              "timeouts in a row (for recover_wait).",
              "output,server", err, errlen)) ||
        !(fo = sl_metrics_counter(m, "sluice_forward_output_failovers_total",
                                  "Times a Forward output marked the server unhealthy (ack "
                                  "timeouts in a row) and sent its requests elsewhere.",
                                  "output,server", err, errlen)))
        return -1;
    for (size_t i = 0; i < a->pipe.n_outputs; i++) {
        struct sl_fwd_server_state st;
        for (size_t k = 0; sl_fwd_output_server(&a->pipe.outputs[i], k, &st); k++) {
            const char *v[] = {a->pipe.outputs[i].name, st.addr};
            sl_metric_bind_u64(fo, v, st.failovers);
            *sl_metric_gauge(fwd_unhealthy_fam, v) = st.unhealthy;
        }
    }
    cluster_fam = sl_metrics_gauge(m, "sluice_output_cluster_info",
                                   "1 for the distribution and version the output's cluster "
                                   "answered GET / with (unknown: the answer did not say).",
                                   "output,distribution,version", err, errlen);
    return cluster_fam ? 0 : -1;
}

/* Health changes with time (recover_wait), not with events: read before each render. */
static void refresh_fwd_servers(struct app *a)
{
    for (size_t i = 0; i < a->pipe.n_outputs; i++) {
        struct sl_fwd_server_state st;
        for (size_t k = 0; sl_fwd_output_server(&a->pipe.outputs[i], k, &st); k++) {
            const char *v[] = {a->pipe.outputs[i].name, st.addr};
            *sl_metric_gauge(fwd_unhealthy_fam, v) = st.unhealthy;
        }
    }
}

/* Known once the cluster answered, and may change after it was unreachable: rebuilt before each
 * render. */
static void refresh_clusters(struct app *a)
{
    sl_metric_family_clear(cluster_fam);
    for (size_t i = 0; i < a->pipe.n_outputs; i++) {
        const char *v[3] = {a->pipe.outputs[i].name};
        if (sl_es_output_cluster(&a->pipe.outputs[i], &v[1], &v[2]))
            *sl_metric_gauge(cluster_fam, v) = 1;
    }
}

/* Per-input extras read at scrape time: paused time and the losses-in-waiting each input type
 * counts (commit failures, stalled partitions, protocol errors). */
#define KAFKA_FN(field)                                                                            \
    static double m_kafka_##field(void *ctx)                                                       \
    {                                                                                              \
        struct sl_kafka_in_info i;                                                                 \
        sl_kafka_in_info(ctx, &i);                                                                 \
        return (double)i.field;                                                                    \
    }
#define FWD_FN(field)                                                                              \
    static double m_fwd_##field(void *ctx)                                                         \
    {                                                                                              \
        struct sl_fwd_in_info i;                                                                   \
        sl_fwd_in_info(ctx, &i);                                                                   \
        return (double)i.field;                                                                    \
    }
KAFKA_FN(paused_ms)
KAFKA_FN(commit_failures)
KAFKA_FN(stall_recoveries)
KAFKA_FN(rebalances)
KAFKA_FN(partition_pauses)
KAFKA_FN(client_errors)
KAFKA_FN(brokers_down)
KAFKA_FN(holds)
KAFKA_FN(no_timestamp)
FWD_FN(paused_ms)
FWD_FN(protocol_errors)
FWD_FN(connections)
FWD_FN(partial_closed)
FWD_FN(stalls)
FWD_FN(starved_waits)
FWD_FN(handshake_failures)
FWD_FN(tls_handshake_failures)
FWD_FN(storage_errors)
FWD_FN(storage_full)
FWD_FN(stored_bytes)
FWD_FN(storage_corrupt)

static double m_kafka_paused_s(void *ctx)
{
    return m_kafka_paused_ms(ctx) / 1000.0;
}

static double m_fwd_paused_s(void *ctx)
{
    return m_fwd_paused_ms(ctx) / 1000.0;
}

static double m_dead_letter_bytes(void *ctx)
{
    return (double)sl_dlq_bytes(((struct app *)ctx)->pipe.dlq);
}

static int metrics_setup_inputs(struct app *a, struct sl_metrics *m, char *err, size_t errlen)
{
    struct sl_metric_family *pe, *um, *ps, *cf, *sr, *rb, *pp, *kce, *kbd, *kho, *knt, *fpe, *fc,
        *fpc, *dlb, *te, *ye, *es, *fse, *fsf, *fsb, *fsc, *fhf, *fth, *fst, *fsw;
    if (!(pe = sl_metrics_counter(m, "sluice_records_parse_errors_total",
                                  "Records whose payload did not parse (dead-lettered or kept as "
                                  "text per on_parse_error).",
                                  "input", err, errlen)) ||
        !(te = sl_metrics_counter(m, "sluice_records_time_parse_errors_total",
                                  "Records whose time_key did not parse; they kept the source's "
                                  "time (the Kafka timestamp).",
                                  "input", err, errlen)) ||
        !(ye = sl_metrics_counter(m, "sluice_records_type_errors_total",
                                  "Typed fields (format regexp, types) whose text did not convert "
                                  "and became null.",
                                  "input", err, errlen)) ||
        !(es = sl_metrics_counter(m, "sluice_records_edit_skipped_total",
                                  "Field edits not applied because their path crossed a value "
                                  "that is not an object.",
                                  "input", err, errlen)) ||
        !(um = sl_metrics_counter(m, "sluice_records_unmatched_total",
                                  "Records whose tag matched no output (dead-lettered or dropped "
                                  "per service.unmatched).",
                                  "input", err, errlen)) ||
        !(ps = sl_metrics_counter(m, "sluice_input_paused_seconds_total",
                                  "Time the input spent paused for backpressure.", "input", err,
                                  errlen)) ||
        !(cf = sl_metrics_counter(m, "sluice_kafka_commit_failures_total",
                                  "Offset commits the group coordinator refused (retried by the "
                                  "next commit).",
                                  "input", err, errlen)) ||
        !(sr = sl_metrics_counter(m, "sluice_kafka_stalled_partition_recoveries_total",
                                  "Partitions that stopped fetching and were re-fetched.", "input",
                                  err, errlen)) ||
        !(rb = sl_metrics_counter(m, "sluice_kafka_rebalances_total",
                                  "Rebalance callbacks (assignments and revocations).", "input",
                                  err, errlen)) ||
        !(pp = sl_metrics_counter(m, "sluice_kafka_partition_pauses_total",
                                  "Backpressure that lasted 1 s and paused the partitions in the "
                                  "client, dropping its prefetched records (fetched again on "
                                  "resume).",
                                  "input", err, errlen)) ||
        !(kce = sl_metrics_counter(m, "sluice_kafka_client_errors_total",
                                   "Errors the Kafka client reported (broker connections, name "
                                   "resolution, authentication...), each logged; the client "
                                   "retries them itself.",
                                   "input", err, errlen)) ||
        !(kbd = sl_metrics_gauge(m, "sluice_kafka_brokers_down",
                                 "1 from the client's report that every broker is down until "
                                 "it reaches one again (a record, a confirmed commit or an "
                                 "answered probe).",
                                 "input", err, errlen)) ||
        !(kho = sl_metrics_counter(m, "sluice_kafka_partition_holds_total",
                                   "Partitions paused on their own because records kept "
                                   "finishing behind an unfinished one (each logged with the "
                                   "record's offset and the reason it waits).",
                                   "input", err, errlen)) ||
        !(knt = sl_metrics_counter(m, "sluice_kafka_records_without_timestamp_total",
                                   "Kafka records with no timestamp (message format v0), given "
                                   "the time they were read unless their time_key says "
                                   "otherwise.",
                                   "input", err, errlen)) ||
        !(fpe = sl_metrics_counter(m, "sluice_forward_protocol_errors_total",
                                   "Malformed Forward requests (their connection was closed, no "
                                   "ack).",
                                   "input", err, errlen)) ||
        !(fc = sl_metrics_gauge(m, "sluice_forward_connections", "Open Forward connections.",
                                "input", err, errlen)) ||
        !(fpc = sl_metrics_counter(m, "sluice_forward_partial_closed_total",
                                   "Connections closed without an ack because their "
                                   "unfinished request held budget while reading waited for it "
                                   "with nothing in flight.",
                                   "input", err, errlen)) ||
        !(fst = sl_metrics_counter(m, "sluice_forward_stalls_total",
                                   "Times reading waited (paused or for budget) with nothing in "
                                   "flight and no progress for 5 s (each logged with the budget "
                                   "state).",
                                   "input", err, errlen)) ||
        !(fsw = sl_metrics_counter(m, "sluice_forward_budget_waits_total",
                                   "Times a connection's read buffer had to grow and waited "
                                   "for the budget to have room.",
                                   "input", err, errlen)) ||
        !(fse = sl_metrics_counter(m, "sluice_forward_storage_errors_total",
                                   "ack: stored: failed writes or syncs of the request store "
                                   "(those requests were not acked; retried every second).",
                                   "input", err, errlen)) ||
        !(fsf = sl_metrics_counter(m, "sluice_forward_storage_full_total",
                                   "ack: stored: times the request store reached "
                                   "storage_max_size (connections not read until it had room).",
                                   "input", err, errlen)) ||
        !(fsb = sl_metrics_gauge(m, "sluice_forward_stored_bytes",
                                 "ack: stored: bytes in the request store (acked requests whose "
                                 "events are not all finished, plus unsynced appends).",
                                 "input", err, errlen)) ||
        !(fsc = sl_metrics_counter(m, "sluice_forward_storage_corrupt_total",
                                   "ack: stored: corrupt regions skipped while replaying the "
                                   "request store (logged with file and offset).",
                                   "input", err, errlen)) ||
        !(fhf = sl_metrics_counter(m, "sluice_forward_handshake_failures_total",
                                   "Forward handshakes refused (invalid PING, shared_key or "
                                   "username/password mismatch, no PING within "
                                   "handshake_timeout); each closed its connection.",
                                   "input", err, errlen)) ||
        !(fth = sl_metrics_counter(m, "sluice_forward_tls_handshake_failures_total",
                                   "TLS handshakes that failed or timed out on a Forward input "
                                   "(wrong protocol, certificate refused, ...); each closed its "
                                   "connection.",
                                   "input", err, errlen)) ||
        !(dlb = sl_metrics_gauge(m, "sluice_dead_letter_bytes",
                                 "Bytes in the dead-letter store (counted against max_size).", NULL,
                                 err, errlen)))
        return -1;
    sl_metric_bind_fn(dlb, NULL, m_dead_letter_bytes, a);
    for (size_t i = 0; i < a->n_in; i++) {
        struct sl_input *in = &a->in[i];
        const struct sl_counters *c = in->ops->counters(in->impl);
        const char *v[] = {in->ops->name(in->impl)};
        sl_metric_bind_u64(pe, v, &c->parse_errors);
        sl_metric_bind_u64(um, v, &c->unmatched);
        sl_metric_bind_u64(te, v, &c->time_errors);
        sl_metric_bind_u64(ye, v, &c->type_errors);
        sl_metric_bind_u64(es, v, &c->edit_skipped);
        if (in->ops == &sl_kafka_in_ops) {
            sl_metric_bind_fn(ps, v, m_kafka_paused_s, in->impl);
            sl_metric_bind_fn(cf, v, m_kafka_commit_failures, in->impl);
            sl_metric_bind_fn(sr, v, m_kafka_stall_recoveries, in->impl);
            sl_metric_bind_fn(rb, v, m_kafka_rebalances, in->impl);
            sl_metric_bind_fn(pp, v, m_kafka_partition_pauses, in->impl);
            sl_metric_bind_fn(kce, v, m_kafka_client_errors, in->impl);
            sl_metric_bind_fn(kbd, v, m_kafka_brokers_down, in->impl);
            sl_metric_bind_fn(kho, v, m_kafka_holds, in->impl);
            sl_metric_bind_fn(knt, v, m_kafka_no_timestamp, in->impl);
        } else if (in->ops == &sl_fwd_in_ops) {
            sl_metric_bind_fn(ps, v, m_fwd_paused_s, in->impl);
            sl_metric_bind_fn(fpe, v, m_fwd_protocol_errors, in->impl);
            sl_metric_bind_fn(fc, v, m_fwd_connections, in->impl);
            sl_metric_bind_fn(fpc, v, m_fwd_partial_closed, in->impl);
            sl_metric_bind_fn(fst, v, m_fwd_stalls, in->impl);
            sl_metric_bind_fn(fsw, v, m_fwd_starved_waits, in->impl);
            sl_metric_bind_fn(fse, v, m_fwd_storage_errors, in->impl);
            sl_metric_bind_fn(fsf, v, m_fwd_storage_full, in->impl);
            sl_metric_bind_fn(fsb, v, m_fwd_stored_bytes, in->impl);
            sl_metric_bind_fn(fsc, v, m_fwd_storage_corrupt, in->impl);
            sl_metric_bind_fn(fhf, v, m_fwd_handshake_failures, in->impl);
            sl_metric_bind_fn(fth, v, m_fwd_tls_handshake_failures, in->impl);
        }
    }
    return 0;
}

static int metrics_setup(struct app *a, char *err, size_t errlen)
{
    struct sl_metrics *m = a->metrics = sl_metrics_new(0);
    if (!m) return -1;
    struct sl_metric_family *recv = sl_metrics_counter(
        m, "sluice_records_received_total", "Records read from the input.", "input", err, errlen);
    struct sl_metric_family *del = sl_metrics_counter(
        m, "sluice_records_delivered_total", "Records the output confirmed.", "input", err, errlen);
    struct sl_metric_family *dl =
        sl_metrics_counter(m, "sluice_records_dead_lettered_total",
                           "Records written to the dead-letter store.", "input", err, errlen);
    struct sl_metric_family *drop = sl_metrics_counter(m, "sluice_records_dropped_total",
                                                       "Records dropped on purpose (counted, e.g. "
                                                       "unmatched: drop).",
                                                       "input", err, errlen);
    struct sl_metric_family *infl =
        sl_metrics_gauge(m, "sluice_records_in_flight", "Records received and not yet finished.",
                         "input", err, errlen);
    if (!recv || !del || !dl || !drop || !infl) return -1;
    for (size_t i = 0; i < a->n_in; i++) {
        const struct sl_counters *c = a->in[i].ops->counters(a->in[i].impl);
        const char *v[] = {a->in[i].ops->name(a->in[i].impl)};
        sl_metric_bind_u64(recv, v, &c->received);
        sl_metric_bind_u64(del, v, &c->delivered);
        sl_metric_bind_u64(dl, v, &c->dead_lettered);
        sl_metric_bind_u64(drop, v, &c->dropped);
        sl_metric_bind_fn(infl, v, m_in_flight, (void *)c);
    }
    struct sl_metric_family *f;
    if (!(f = sl_metrics_counter(m, "sluice_dead_letter_lines_total",
                                 "Lines written to the dead-letter store.", NULL, err, errlen)))
        return -1;
    sl_metric_bind_fn(f, NULL, m_dead_letter_lines, a);
    if (!(f = sl_metrics_gauge(m, "sluice_budget_used_bytes", "Pipeline memory budget in use.",
                               NULL, err, errlen)))
        return -1;
    sl_metric_bind_u64(f, NULL, &a->pipe.budget.used);
    if (!(f = sl_metrics_gauge(m, "sluice_budget_cached_bytes",
                               "Idle output buffers kept for reuse, within the budget's limit but "
                               "given back before inputs would wait for them.",
                               NULL, err, errlen)))
        return -1;
    sl_metric_bind_u64(f, NULL, &a->pipe.budget.cached);
    if (!(f = sl_metrics_gauge(m, "sluice_budget_limit_bytes", "Pipeline memory budget.", NULL, err,
                               errlen)))
        return -1;
    sl_metric_bind_u64(f, NULL, &a->pipe.budget.limit);
    if (!(f = sl_metrics_gauge(m, "sluice_process_resident_memory_bytes",
                               "Resident set size of the process.", NULL, err, errlen)))
        return -1;
    sl_metric_bind_fn(f, NULL, sl_metrics_proc_rss_bytes, NULL);
    pf.committed = sl_metrics_gauge(m, "sluice_kafka_partition_committed_offset",
                                    "Offset committed to the group coordinator (-1: none yet).",
                                    "input,topic,partition", err, errlen);
    pf.hwm = sl_metrics_gauge(m, "sluice_kafka_partition_high_watermark",
                              "High watermark from the last fetch (-1: unknown).",
                              "input,topic,partition", err, errlen);
    pf.lag = sl_metrics_gauge(m, "sluice_kafka_partition_lag",
                              "High watermark minus committed offset (-1: unknown).",
                              "input,topic,partition", err, errlen);
    pf.paused = sl_metrics_gauge(m, "sluice_kafka_partition_paused",
                                 "1 while the partition is paused for backpressure.",
                                 "input,topic,partition", err, errlen);
    pf.held = sl_metrics_gauge(m, "sluice_kafka_partition_held",
                               "1 while the partition is paused on its own: records kept "
                               "finishing behind an unfinished one until its offset tracker "
                               "reached its share of the budget.",
                               "input,topic,partition", err, errlen);
    pf.waiting = sl_metrics_gauge(m, "sluice_kafka_partition_waiting_seconds",
                                  "How long the oldest unfinished record, which the commit "
                                  "waits on, has been the oldest (0: none).",
                                  "input,topic,partition", err, errlen);
    pf.waiting_on = sl_metrics_gauge(m, "sluice_kafka_partition_held_on",
                                     "1 per held partition, naming the record it waits on and "
                                     "why (the output's last retry).",
                                     "input,topic,partition,offset,reason", err, errlen);
    pf.uncommitted = sl_metrics_gauge(m, "sluice_kafka_partition_uncommitted_records",
                                      "Records consumed past the committed offset: a restart "
                                      "reads them again.",
                                      "input,topic,partition", err, errlen);
    if (!pf.committed || !pf.hwm || !pf.lag || !pf.paused || !pf.held || !pf.waiting ||
        !pf.waiting_on || !pf.uncommitted)
        return -1;
    if (metrics_setup_inputs(a, m, err, errlen) != 0) return -1;
    return metrics_setup_outputs(a, m, err, errlen);
}

static void metrics_handler(const struct sl_http_request *req, struct sl_http_response *resp,
                            void *ctx)
{
    struct app *a = ctx;
    refresh_partitions(a);
    refresh_clusters(a);
    refresh_fwd_servers(a);
    sl_http_metrics_handler(req, resp, a->metrics);
}

/* Progress = records finished. Sampled every second; unhealthy when work is pending and nothing
 * finished for stall_after. */
static void health_cb(struct sl_timer *t)
{
    struct app *a = t->arg;
    uint64_t done = 0;
    for (size_t i = 0; i < a->n_in; i++) {
        const struct sl_counters *c = a->in[i].ops->counters(a->in[i].impl);
        done += c->delivered + c->dead_lettered + c->dropped;
    }
    if (done != a->health_done || in_flight(a) == 0) a->health_progress_ms = sl_now_ms();
    a->health_done = done;
    sl_timer_start(a->loop, t, 1000);
}

static const char *health_reason(struct app *a, char *buf, size_t len)
{
    uint64_t idle = sl_now_ms() - a->health_progress_ms;
    if (in_flight(a) == 0 || idle < a->stall_after_ms) return NULL;
    snprintf(buf, len, "no record finished for %llu s while %llu are in flight",
             (unsigned long long)(idle / 1000), (unsigned long long)in_flight(a));
    return buf;
}

static void healthz_handler(const struct sl_http_request *req, struct sl_http_response *resp,
                            void *ctx)
{
    (void)req;
    char why[160];
    const char *r = health_reason(ctx, why, sizeof why);
    resp->status = r ? 503 : 200;
    sl_buf_printf(&resp->body, "%s\n", r ? r : "ok");
}

struct status_ctx {
    struct sl_buf *b;
    bool first;
};

static void status_partition(const struct sl_kafka_partition_info *p, void *ctx)
{
    struct status_ctx *s = ctx;
    sl_buf_puts(s->b, s->first ? "{\"topic\":" : ",{\"topic\":");
    s->first = false;
    sl_buf_json_str(s->b, p->topic, strlen(p->topic));
    sl_buf_printf(s->b,
                  ",\"partition\":%d,\"committed\":%lld,\"high_watermark\":%lld,\"lag\":%lld,"
                  "\"paused\":%s,\"held\":%s,\"uncommitted\":%lld",
                  (int)p->partition, (long long)p->committed, (long long)p->high_watermark,
                  (long long)p->lag, p->paused ? "true" : "false", p->held ? "true" : "false",
                  (long long)p->uncommitted);
    if (p->waiting_offset >= 0) {
        sl_buf_printf(s->b, ",\"waiting_on\":{\"offset\":%lld,\"for_ms\":%llu,\"why\":",
                      (long long)p->waiting_offset, (unsigned long long)p->waiting_ms);
        if (p->waiting_why)
            sl_buf_json_str(s->b, p->waiting_why, strlen(p->waiting_why));
        else
            sl_buf_puts(s->b, "null");
        sl_buf_puts(s->b, "}");
    }
    sl_buf_puts(s->b, "}");
}

/* The shape documented in core/http.h. */
static void status_handler(const struct sl_http_request *req, struct sl_http_response *resp,
                           void *ctx)
{
    (void)req;
    struct app *a = ctx;
    struct sl_buf *b = &resp->body;
    resp->content_type = "application/json";
    sl_buf_printf(b, "{\"time_ms\":%lld,\"uptime_ms\":%llu,\"inputs\":[",
                  (long long)(sl_wall_ns() / 1000000),
                  (unsigned long long)(sl_now_ms() - a->started_ms));
    for (size_t i = 0; i < a->n_in; i++) {
        const struct sl_counters *c = a->in[i].ops->counters(a->in[i].impl);
        const char *name = a->in[i].ops->name(a->in[i].impl);
        sl_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
        sl_buf_json_str(b, name, strlen(name));
        sl_buf_printf(
            b,
            ",\"received\":%llu,\"delivered\":%llu,\"dead_lettered\":%llu,"
            "\"dropped\":%llu,\"in_flight\":%llu",
            (unsigned long long)c->received, (unsigned long long)c->delivered,
            (unsigned long long)c->dead_lettered, (unsigned long long)c->dropped,
            (unsigned long long)(c->received - c->delivered - c->dead_lettered - c->dropped));
        if (a->in[i].ops == &sl_kafka_in_ops) {
            struct sl_kafka_in_info info;
            sl_kafka_in_info(a->in[i].impl, &info);
            sl_buf_printf(b, ",\"paused\":%s,\"paused_ms\":%llu,\"partitions\":[",
                          info.paused ? "true" : "false", (unsigned long long)info.paused_ms);
            struct status_ctx s = {b, true};
            sl_kafka_in_partitions(a->in[i].impl, status_partition, &s);
            sl_buf_puts(b, "]");
        }
        sl_buf_puts(b, "}");
    }
    sl_buf_puts(b, "],\"outputs\":[");
    for (size_t i = 0; i < a->pipe.n_outputs; i++) {
        struct sl_output *o = &a->pipe.outputs[i];
        const struct sl_output_stats *st = o->ops->stats(o->impl);
        sl_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
        sl_buf_json_str(b, o->name, strlen(o->name));
        sl_buf_printf(b,
                      ",\"requests\":%llu,\"bytes_sent\":%llu,\"delivered\":%llu,"
                      "\"dead_lettered\":%llu,\"in_flight\":%llu,\"retries\":{",
                      (unsigned long long)st->requests, (unsigned long long)st->bytes_sent,
                      (unsigned long long)st->delivered, (unsigned long long)st->dead_lettered,
                      (unsigned long long)o->ops->pending(o->impl));
        for (size_t r = 0; r < st->n_reasons; r++) {
            sl_buf_puts(b, r ? "," : "");
            sl_buf_json_str(b, st->reason_names[r], strlen(st->reason_names[r]));
            sl_buf_printf(b, ":%llu", (unsigned long long)st->retries[r]);
        }
        const char *dist, *ver;
        if (sl_es_output_cluster(o, &dist, &ver)) {
            sl_buf_puts(b, "},\"cluster\":{\"distribution\":");
            sl_buf_json_str(b, dist, strlen(dist));
            sl_buf_puts(b, ",\"version\":");
            sl_buf_json_str(b, ver, strlen(ver));
        }
        sl_buf_puts(b, "}}");
    }
    char why[160];
    const char *r = health_reason(a, why, sizeof why);
    sl_buf_printf(b,
                  "],\"budget\":{\"used\":%llu,\"limit\":%llu},"
                  "\"rss_bytes\":%.0f,\"dead_letter_lines\":%llu,\"health\":{\"ok\":%s,"
                  "\"reason\":",
                  (unsigned long long)a->pipe.budget.used, (unsigned long long)a->pipe.budget.limit,
                  sl_metrics_proc_rss_bytes(NULL), (unsigned long long)sl_dlq_lines(a->pipe.dlq),
                  r ? "false" : "true");
    sl_buf_json_str(b, r ? r : "", r ? strlen(r) : 0);
    sl_buf_puts(b, "}}");
}

static const struct sl_http_static status_page = {"text/html; charset=utf-8", sl_status_page_html,
                                                  SL_STATUS_PAGE_LEN};

static int http_start(struct app *a, char *err, size_t errlen)
{
    if (metrics_setup(a, err, errlen) < 0) return -1;
    a->http = sl_http_new(a->loop, NULL);
    if (!a->http) return -1;
    if (sl_http_listen(a->http, a->cfg.service.http_listen, err, errlen) < 0) return -1;
    sl_http_route(a->http, "/metrics", metrics_handler, a);
    sl_http_route(a->http, "/healthz", healthz_handler, a);
    sl_http_route(a->http, "/status", status_handler, a);
    sl_http_route(a->http, "/", sl_http_static_handler, (void *)&status_page);
    a->health_progress_ms = a->started_ms = sl_now_ms();
    a->health = (struct sl_timer){.cb = health_cb, .arg = a};
    sl_timer_start(a->loop, &a->health, 1000);
    SL_INFO("sluice", "status server on %s (port %u)", a->cfg.service.http_listen,
            sl_http_port(a->http));
    return 0;
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

/* replay_dir: NULL for a normal run; else the configured inputs are replaced by the replay of
 * that dead-letter directory, and the run ends when it is done. */
static int run(const char *path, const char *replay_dir)
{
    static struct app a;
    char err[8192];
    /* Blocked before any thread exists (librdkafka's, the fetcher wake-up thread) so every
     * thread inherits the mask: otherwise SIGTERM could land on a thread that does not block
     * it and kill the process instead of draining it. The loop reads them from a signalfd. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (sl_config_load(&sl_builtin_plugins, path, &a.cfg, err, sizeof err) != 0) {
        fputs(err, stderr);
        return 2;
    }
    sl_log_init(a.cfg.service.log_level, a.cfg.service.log_interval_ms);
    sl_log_set_format(a.cfg.service.log_format);
    if (sl_log_open(a.cfg.service.log_file) != 0) {
        fprintf(stderr, "sluice: cannot open log_file %s: %s\n", a.cfg.service.log_file,
                strerror(errno));
        return 1;
    }
    a.log_file = a.cfg.service.log_file;
    /* Before any thread exists (librdkafka's, curl's): the allocator policy (alloc.c). */
    uint64_t limit = a.cfg.service.memory_limit;
    struct sl_alloc_info alloc;
    if (sl_alloc_setup(limit, &alloc, err, sizeof err) != 0) {
        SL_ERROR("sluice", NULL, "%s", err);
        return 2;
    }
    if (alloc.tunables)
        SL_INFO("sluice", "GLIBC_TUNABLES=%s: its malloc settings are used as given",
                alloc.tunables);
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
    uint64_t prefetch = limit / 4 / (a.cfg.n_inputs ? a.cfg.n_inputs : 1);
    char **replay_files = NULL;
    int n_replay = 0;
    if (replay_dir && !replay_dir[0]) replay_dir = a.cfg.service.dead_letter_path;
    if (replay_dir && (n_replay = sl_dl_files(replay_dir, &replay_files)) < 0) {
        SL_ERROR("sluice", NULL, "cannot read dead-letter directory %s: %s", replay_dir,
                 strerror(errno));
        return 1;
    }
    if (sl_pipeline_init(&a.pipe, a.loop, &a.cfg, SL_PIPELINE_SHARE(limit), err, sizeof err) != 0) {
        SL_ERROR("sluice", NULL, "%s", err);
        return 1;
    }
    struct sl_replay_in *replay = NULL;
    if (replay_dir) {
        replay = sl_replay_in_new(&a.pipe, replay_dir, replay_files, n_replay, err, sizeof err);
        if (!replay) {
            SL_ERROR("sluice", NULL, "%s", err);
            return 1;
        }
        a.in[a.n_in++] = (struct sl_input){.ops = &sl_replay_in_ops, .impl = replay};
    }
    for (size_t i = 0; i < a.cfg.n_inputs && !replay_dir; i++) {
        const struct sl_input_cfg *ic = &a.cfg.inputs[i];
        struct sl_input *in = &a.in[a.n_in];
        in->ops = ic->plugin->in_ops;
        in->impl = ic->plugin->create_input(&a.pipe, ic, prefetch, err, sizeof err);
        if (!in->impl) {
            SL_ERROR("sluice", NULL, "%s", err);
            return 1;
        }
        a.n_in++;
    }
    a.stall_after_ms = a.cfg.service.stall_after_ms;
    if (a.cfg.service.http_listen && http_start(&a, err, sizeof err) < 0) {
        SL_ERROR("sluice", NULL, "service.http_listen: %s", err);
        return 1;
    }
    a.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    a.sig_io = (struct sl_io){.fd = a.sigfd, .cb = sig_cb, .arg = &a};
    sl_loop_io_set(a.loop, &a.sig_io, EPOLLIN);
    a.stats.cb = stats_cb;
    a.stats.arg = &a;
    if (a.cfg.service.stats_interval_ms)
        sl_timer_start(a.loop, &a.stats, a.cfg.service.stats_interval_ms);
    SL_INFO("sluice",
            "sluice %s started: memory_limit=%llu pipeline budget=%llu prefetch=%llu "
            "block_cache=%llu chunk_handoff=%s dead-letter=%s",
            SLUICE_VERSION, (unsigned long long)limit, (unsigned long long)a.pipe.budget.limit,
            (unsigned long long)prefetch, (unsigned long long)alloc.block_cache,
            alloc.chunk_handoff ? "on" : "off", a.cfg.service.dead_letter_path);

    /* pipe.fatal: an output found that its cluster cannot serve the configuration (logged
     * there). That is a configuration error, and what the output holds can never be sent, so the
     * drain does not wait for it: uncommitted records are redelivered after a restart. */
    while (!a.stop && !a.pipe.fatal && !(replay && sl_replay_in_done(replay)))
        sl_loop_run_once(a.loop, replay ? 50 : 1000);
    int rc = replay && (!sl_replay_in_done(replay) || sl_replay_in_bad_lines(replay)) ? 1 : 0;
    if (a.pipe.fatal) rc = 2;

    /* Drain: stop taking records, send what is batched, wait for what is in flight. */
    uint64_t deadline = sl_now_ms() + (a.pipe.fatal ? 0 : a.cfg.service.shutdown_timeout_ms);
    for (size_t i = 0; i < a.n_in; i++)
        a.in[i].ops->stop(a.in[i].impl);
    for (size_t i = 0; i < a.pipe.n_outputs; i++)
        a.pipe.outputs[i].ops->flush(a.pipe.outputs[i].impl);
    while (in_flight(&a) > 0 && sl_now_ms() < deadline) {
        sl_pipeline_dl_commit(&a.pipe);
        sl_loop_run_once(a.loop, 50);
    }
    uint64_t left = in_flight(&a);
    if (left && !a.pipe.fatal)
        SL_WARN("sluice", NULL,
                "shutdown_timeout reached with %llu records in flight; their "
                "offsets are not committed, so they are redelivered after a restart",
                (unsigned long long)left);
    log_stats(&a);
    print_final(&a);
    for (size_t i = 0; i < a.n_in; i++)
        a.in[i].ops->close(a.in[i].impl);
    sl_timer_stop(a.loop, &a.stats);
    sl_timer_stop(a.loop, &a.health);
    sl_http_free(a.http);
    sl_metrics_free(a.metrics);
    sl_pipeline_fini(&a.pipe);
    sl_acktrack_free_all(); /* trackers of records that never finished */
    sl_loop_io_set(a.loop, &a.sig_io, 0);
    close(a.sigfd);
    sl_loop_free(a.loop);
    sl_config_free(&a.cfg);
    curl_global_cleanup();
    SL_INFO("sluice", "stopped");
    return rc;
}

static int check(const char *path)
{
    struct sl_config cfg;
    char err[16384];
    if (sl_config_load(&sl_builtin_plugins, path, &cfg, err, sizeof err) != 0) {
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
    const char *replay_dir = NULL;
    if (argc > 2 && strcmp(argv[1], "dead-letter") == 0 && strcmp(argv[2], "replay") != 0)
        return sl_dead_letter_cli(argc - 2, argv + 2, stdout, stderr);
    if (argc > 3 && strcmp(argv[1], "dead-letter") == 0 && strcmp(argv[3], "--to-kafka") == 0) {
        /* dead-letter replay --to-kafka BROKERS TOPIC [--librdkafka k=v]... DIR */
        const char *props[64];
        int np = 0;
        if (argc < 7) {
            usage(stderr);
            return 2;
        }
        for (int i = 6; i < argc - 1; i++) {
            if (strcmp(argv[i], "--librdkafka") != 0 || i + 1 >= argc - 1 || np == 64) {
                usage(stderr);
                return 2;
            }
            props[np++] = argv[++i];
        }
        return sl_replay_to_kafka(argv[4], argv[5], argv[argc - 1], props, np, stdout, stderr);
    }
    if (argc > 2 && strcmp(argv[1], "dead-letter") == 0) {
        /* dead-letter replay -c FILE [DIR] */
        argv += 2;
        argc -= 2;
        replay_dir = "";
    } else if (argc > 1 && strcmp(argv[1], "check") == 0) {
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
    if (replay_dir && path && optind == argc - 1) replay_dir = argv[optind++];
    if (!path || optind != argc) {
        usage(stderr);
        return 2;
    }
    return do_check ? check(path) : run(path, replay_dir);
}
