/* bench/ceiling: the throughput ceiling for sluice's Kafka input on this machine.
 *
 * A bare librdkafka high-level consumer (rd_kafka_consumer_poll, one message at a time, as sluice
 * polls on librdkafka 2.0.2) that only counts messages and their value bytes until it has
 * N, then prints one JSON line. Whatever sluice does per record (JSON scan, bulk encoding, HTTP)
 * comes on top of this, so sluice/ceiling is the share of the consumer's speed sluice keeps.
 *
 *   ceiling -b BROKERS -t TOPIC -g GROUP -n COUNT [-X key=value]... [-T timeout_s]
 *           [-p|-s EVERY:MS [-W 1]]
 *
 * -X passes librdkafka properties; without any the consumer runs with librdkafka's defaults apart
 * from the group settings every test here uses (range assignor, session.timeout.ms 6000,
 * heartbeat.interval.ms 500, auto.offset.reset earliest). bench/run.py runs it once with those
 * defaults and once with the prefetch settings sluice derives from its memory_limit.
 *
 * -p EVERY:MS imitates sluice's backpressure: after every EVERY messages it pauses the whole
 * assignment (rd_kafka_pause_partitions, which purges the prefetched messages), keeps polling for
 * MS milliseconds and resumes. It isolates what one pause/resume cycle costs in librdkafka itself.
 * -s EVERY:MS instead stops calling poll for MS milliseconds (no pause): the prefetch queue then
 * fills up to its thresholds and librdkafka stops fetching by itself, which is the alternative
 * form of backpressure to compare with.
 * -W 1 adds a wake-up after each resume (or sleep): rd_kafka_query_watermark_offsets on the first
 * assigned partition. In 2.0.2 neither a resume nor a drained queue wakes the broker thread,
 * which then sleeps up to 1 s before its next Fetch; the ListOffsets request it must send does.
 * (With several brokers one such query per partition leader would be needed.)
 *
 * Output (stdout): {"count":N,"bytes":B,"first_ns":T,"last_ns":T,"wall_s":S,"cpu_us":U,
 * "cpu_window_us":U,"hwm_kb":K,"minflt":F,"pauses":P,"timed_out":false}
 *   first_ns/last_ns  CLOCK_REALTIME when the first/last message was returned by poll
 *   wall_s            first to last message (CLOCK_MONOTONIC)
 *   cpu_us            user+system CPU of the whole process (all librdkafka threads) from start to
 *                     the last message: start-up and the group join are included, as they are
 *                     for sluice's number
 *   cpu_window_us     the same, counted from the first message only
 *   hwm_kb            peak RSS (VmHWM of /proc/self/status) at the last message, as bench/run.py
 *                     reads sluice's. Not ru_maxrss: Linux carries the parent's peak over fork and
 *                     exec into it, so a benchmark script holding its backlog in memory would be
 *                     this process's floor
 *   minflt            minor page faults (ru_minflt) from start to the last message */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long hwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb;
}

static uint64_t cpu_us(long *peak_kb, long *minflt)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    if (peak_kb) *peak_kb = hwm_kb();
    if (minflt) *minflt = ru.ru_minflt;
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static int set(rd_kafka_conf_t *conf, const char *key, const char *val)
{
    char err[512];
    if (rd_kafka_conf_set(conf, key, val, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "ceiling: %s=%s: %s\n", key, val, err);
        return -1;
    }
    return 0;
}

/* Any request the fetching broker thread has to send wakes it from its IO wait. */
static void wake_fetcher(rd_kafka_t *rk)
{
    rd_kafka_topic_partition_list_t *asg = NULL;
    if (rd_kafka_assignment(rk, &asg) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
    if (asg->cnt > 0) {
        int64_t lo, hi;
        rd_kafka_query_watermark_offsets(rk, asg->elems[0].topic, asg->elems[0].partition, &lo, &hi,
                                         1000);
    }
    rd_kafka_topic_partition_list_destroy(asg);
}

static void usage(void)
{
    fputs("usage: ceiling -b BROKERS -t TOPIC -g GROUP -n COUNT [-X key=value]... [-T timeout_s]"
          " [-p EVERY:MS]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *topic = NULL, *group = NULL;
    long long want = 0;
    double timeout_s = 300;
    long long pause_every = 0;
    long pause_ms = 0;
    bool sleep_mode = false, wake = false;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The group settings every test against the mock uses (librdkafka's mock cluster: the first
     * join waits 3 s, a new member session.timeout.ms - 1000). */
    if (set(conf, "partition.assignment.strategy", "range") ||
        set(conf, "session.timeout.ms", "6000") || set(conf, "heartbeat.interval.ms", "500") ||
        set(conf, "auto.offset.reset", "earliest") || set(conf, "enable.partition.eof", "false"))
        return 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "-b")) {
            brokers = v;
        } else if (!strcmp(a, "-t")) {
            topic = v;
        } else if (!strcmp(a, "-g")) {
            group = v;
        } else if (!strcmp(a, "-n")) {
            want = atoll(v);
        } else if (!strcmp(a, "-p") || !strcmp(a, "-s")) {
            sleep_mode = a[1] == 's';
            if (sscanf(v, "%lld:%ld", &pause_every, &pause_ms) != 2 || pause_every <= 0 ||
                pause_ms < 0)
                usage();
        } else if (!strcmp(a, "-W")) {
            wake = atoi(v) != 0;
        } else if (!strcmp(a, "-T")) {
            timeout_s = atof(v);
        } else if (!strcmp(a, "-X")) {
            char kv[1024];
            snprintf(kv, sizeof kv, "%s", v);
            char *eq = strchr(kv, '=');
            if (!eq) usage();
            *eq = '\0';
            if (set(conf, kv, eq + 1)) return 2;
        } else {
            usage();
        }
    }
    if (!brokers || !topic || !group || want <= 0) usage();
    if (set(conf, "bootstrap.servers", brokers) || set(conf, "group.id", group)) return 2;

    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "ceiling: rd_kafka_new: %s\n", err);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        fprintf(stderr, "ceiling: subscribe: %s\n", rd_kafka_err2str(e));
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    long long count = 0, bytes = 0, errors = 0, pauses = 0;
    uint64_t first_rt = 0, last_rt = 0, first_mono = 0, last_mono = 0, cpu_first = 0, cpu_last = 0;
    long peak_kb = 0, minflt = 0;
    uint64_t deadline = clock_ns(CLOCK_MONOTONIC) + (uint64_t)(timeout_s * 1e9);
    bool timed_out = false;
    while (count < want && !stop) {
        /* 100 ms like sluice's tick; returns at once while messages are queued. */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            if (clock_ns(CLOCK_MONOTONIC) > deadline) {
                timed_out = true;
                break;
            }
            continue;
        }
        if (m->err) {
            if (errors++ < 10)
                fprintf(stderr, "ceiling: consumer error: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        if (count == 0) {
            first_rt = clock_ns(CLOCK_REALTIME);
            first_mono = clock_ns(CLOCK_MONOTONIC);
            cpu_first = cpu_us(NULL, NULL);
        }
        count++;
        bytes += (long long)m->len;
        rd_kafka_message_destroy(m);
        if (sleep_mode && pause_every && count % pause_every == 0 && count < want) {
            struct timespec ts = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            pauses++;
            if (wake) wake_fetcher(rk);
        } else if (pause_every && count % pause_every == 0 && count < want) {
            rd_kafka_topic_partition_list_t *asg = NULL;
            if (rd_kafka_assignment(rk, &asg) == RD_KAFKA_RESP_ERR_NO_ERROR) {
                rd_kafka_pause_partitions(rk, asg);
                pauses++;
                /* Polling goes on while paused, as in sluice (group membership). */
                uint64_t until = clock_ns(CLOCK_MONOTONIC) + (uint64_t)pause_ms * 1000000u;
                while (clock_ns(CLOCK_MONOTONIC) < until && count < want) {
                    rd_kafka_message_t *x = rd_kafka_consumer_poll(rk, 10);
                    if (x) {
                        /* A message returned while paused is still counted. */
                        if (!x->err) {
                            count++;
                            bytes += (long long)x->len;
                        }
                        rd_kafka_message_destroy(x);
                    }
                }
                rd_kafka_resume_partitions(rk, asg);
                rd_kafka_topic_partition_list_destroy(asg);
                if (wake) wake_fetcher(rk);
            }
        }
        if (count == want) {
            last_rt = clock_ns(CLOCK_REALTIME);
            last_mono = clock_ns(CLOCK_MONOTONIC);
            cpu_last = cpu_us(&peak_kb, &minflt);
        }
    }
    if (!last_mono) { /* timed out, stopped, or the N-th message came while paused */
        last_rt = clock_ns(CLOCK_REALTIME);
        last_mono = clock_ns(CLOCK_MONOTONIC);
        cpu_last = cpu_us(&peak_kb, &minflt);
    }
    printf("{\"count\":%lld,\"bytes\":%lld,\"first_ns\":%" PRIu64 ",\"last_ns\":%" PRIu64
           ",\"wall_s\":%.6f,\"cpu_us\":%" PRIu64 ",\"cpu_window_us\":%" PRIu64
           ",\"hwm_kb\":%ld,\"minflt\":%ld,\"errors\":%lld,\"pauses\":%lld,\"timed_out\":%s}\n",
           count, bytes, first_rt, last_rt,
           first_mono ? (double)(last_mono - first_mono) / 1e9 : 0.0, cpu_last,
           cpu_last - cpu_first, peak_kb, minflt, errors, pauses, timed_out ? "true" : "false");
    fflush(stdout);
    /* Leave the group cleanly so the mock does not keep a dead member around between runs. */
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return count == want ? 0 : 1;
}
