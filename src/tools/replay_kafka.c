/* `sluice dead-letter replay --to-kafka BROKERS TOPIC DIR [--librdkafka k=v ...]`: send the
 * original payloads of a dead-letter store to a Kafka topic (for example the topic they came from,
 * once a mapping was fixed, or a quarantine topic another team owns).
 *
 * A file is moved to DIR/replayed/ only after every record of it was acknowledged by the brokers
 * (acks=all, idempotent producer, delivery report checked per message). A failure leaves the file
 * in place; running the command again sends its records again (at least once). */
#include "tools/replay_kafka.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/dlfile.h"

struct dr_state {
    unsigned long long ok, failed;
    char first_error[256];
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct dr_state *s = opaque;
    if (m->err) {
        if (!s->failed)
            snprintf(s->first_error, sizeof s->first_error, "%s", rd_kafka_err2str(m->err));
        s->failed++;
    } else {
        s->ok++;
    }
}

int sl_replay_to_kafka(const char *brokers, const char *topic, const char *dir,
                       const char *const *props, int n_props, FILE *out, FILE *err)
{
    char errstr[512];
    struct dr_state st = {0};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *base[][2] = {{"bootstrap.servers", brokers},
                             {"acks", "all"},
                             {"enable.idempotence", "true"},
                             {"linger.ms", "5"}};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        if (rd_kafka_conf_set(conf, base[i][0], base[i][1], errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK) {
            fprintf(err, "sluice dead-letter replay: %s\n", errstr);
            rd_kafka_conf_destroy(conf);
            return 2;
        }
    for (int i = 0; i < n_props; i++) {
        char key[256];
        const char *eq = strchr(props[i], '=');
        if (!eq || (size_t)(eq - props[i]) >= sizeof key) {
            fprintf(err, "sluice dead-letter replay: --librdkafka expects key=value, got '%s'\n",
                    props[i]);
            rd_kafka_conf_destroy(conf);
            return 2;
        }
        memcpy(key, props[i], (size_t)(eq - props[i]));
        key[eq - props[i]] = 0;
        if (rd_kafka_conf_set(conf, key, eq + 1, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
            fprintf(err, "sluice dead-letter replay: %s\n", errstr);
            rd_kafka_conf_destroy(conf);
            return 2;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, &st);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(err, "sluice dead-letter replay: %s\n", errstr);
        return 1;
    }
    char **files;
    int nf = sl_dl_files(dir, &files);
    if (nf < 0) {
        fprintf(err, "sluice dead-letter replay: cannot read %s: %s\n", dir, strerror(errno));
        rd_kafka_destroy(rk);
        return 1;
    }
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/replayed", dir);
    if (mkdir(sub, 0700) != 0 && errno != EEXIST) {
        fprintf(err, "sluice dead-letter replay: cannot create %s: %s\n", sub, strerror(errno));
        sl_dl_files_free(files, nf);
        rd_kafka_destroy(rk);
        return 1;
    }
    int rc = 0;
    unsigned long long total = 0;
    char *line = NULL;
    size_t cap = 0;
    for (int i = 0; i < nf; i++) {
        FILE *fp = fopen(files[i], "r");
        if (!fp) {
            fprintf(err, "%s: %s\n", files[i], strerror(errno));
            rc = 1;
            continue;
        }
        unsigned long long sent = 0, bad = 0, before_ok = st.ok, before_failed = st.failed;
        ssize_t n;
        while ((n = sl_dl_getline(fp, &line, &cap)) >= 0) {
            if (n == 0) continue;
            struct sl_dl_line l;
            char why[200];
            if (sl_dl_parse_line(line, (size_t)n, &l, why, sizeof why) != 0) {
                fprintf(err, "%s: unreadable line: %s\n", files[i], why);
                bad++;
                continue;
            }
            for (;;) {
                rd_kafka_resp_err_t e = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(l.payload, l.payload_len),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
                if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                    rd_kafka_poll(rk, 100); /* bounded: wait for deliveries to make room */
                    continue;
                }
                if (e) {
                    fprintf(err, "%s: produce failed: %s\n", files[i], rd_kafka_err2str(e));
                    bad++;
                }
                break;
            }
            sent++;
            sl_dl_line_free(&l);
            rd_kafka_poll(rk, 0);
        }
        fclose(fp);
        /* every message of this file must be acknowledged before the file moves */
        while (rd_kafka_outq_len(rk) > 0)
            rd_kafka_flush(rk, 1000);
        unsigned long long ok = st.ok - before_ok, failed = st.failed - before_failed;
        total += ok;
        if (bad || failed || ok != sent) {
            fprintf(err,
                    "%s: %llu sent, %llu acknowledged, %llu failed (%s), %llu unreadable; "
                    "the file stays\n",
                    files[i], sent, ok, failed, failed ? st.first_error : "-", bad);
            rc = 1;
            continue;
        }
        const char *b = strrchr(files[i], '/');
        char dst[8192];
        if ((size_t)snprintf(dst, sizeof dst, "%s%s", sub, b ? b : "/x") >= sizeof dst) {
            fprintf(err, "%s: path too long\n", files[i]);
            rc = 1;
            continue;
        }
        if (rename(files[i], dst) != 0) {
            fprintf(err, "%s: cannot move to %s: %s\n", files[i], dst, strerror(errno));
            rc = 1;
            continue;
        }
        fprintf(out, "%s: %llu records sent to %s; moved to %s\n", files[i], ok, topic, dst);
    }
    free(line);
    sl_dl_files_free(files, nf);
    rd_kafka_destroy(rk);
    fprintf(out, "%llu records replayed to %s\n", total, topic);
    return rc;
}
