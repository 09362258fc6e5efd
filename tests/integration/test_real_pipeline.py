#!/usr/bin/python3
# ctest-labels: real
"""Kafka -> sluice -> OpenSearch on the real servers: 1,000,000 records on 8 partitions, produced
by two independent clients with every codec librdkafka has (none and snappy by kcat; gzip, lz4 and
zstd by python3-confluent-kafka).

A user must find every record of the Kafka log as exactly one document in OpenSearch, under the
id made of its coordinates, and the group's committed offsets at the log's end (read from the
real broker's group coordinator), with nothing dead-lettered and sluice's peak RSS under
memory_limit + 16 MiB. REAL_RECORDS=N changes the count."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import realservers as R  # noqa: E402

N = int(os.environ.get("REAL_RECORDS") or 1_000_000)
PARTS = 8
GROUP = "sluice-real-pipeline"
CODECS = [("none", "kcat"), ("gzip", "python"), ("snappy", "kcat"), ("lz4", "python"),
          ("zstd", "python")]
MEMORY_LIMIT_MIB = 32


def record(seq, codec):
    return ('{"seq":%d,"codec":"%s","time":"2026-12-07T10:00:%02d.%03dZ","level":"info",'
            '"service":"checkout","message":"order %d accepted for customer %d"}'
            % (seq, codec, seq % 60, seq % 1000, seq, seq * 7 % 100003))


def main():
    ck = H.Checker("test_real_pipeline")
    H.require_binaries(H.SLUICE_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir("real-pipeline-")
            kafka = procs.add(R.KafkaServer(os.path.join(wd, "kafka")))
            osn = procs.add(R.OpenSearch(os.path.join(wd, "opensearch")))
            ver = osn.version()
            H.log(f"OpenSearch {ver['number']} ({ver['distribution']}), Kafka 4.4 at {kafka.bootstrap}")
            kafka.create_topic("logs", PARTS)

            per = N // len(CODECS)
            t0 = time.monotonic()
            seq = 0
            for codec, client in CODECS:
                n = per if codec != CODECS[-1][0] else N - seq
                recs = [record(s, codec) for s in range(seq, seq + n)]
                if client == "kcat":
                    # one kcat per partition, so both clients spread records over all 8
                    for p in range(PARTS):
                        R.kcat_produce(kafka.bootstrap, "logs", recs[p::PARTS], compression=codec,
                                       partition=p)
                else:
                    R.produce(kafka.bootstrap, "logs", recs, compression=codec,
                              partitions=lambda i: i % PARTS)
                seq += n
                H.log(f"produced {n} records with {codec} ({client})")
            H.log(f"produced {N} records in {time.monotonic() - t0:.1f}s")
            log_n = len(R.log_offsets(kafka, "logs", PARTS))
            ck.eq(log_n, N, "records in the Kafka log (independent producers, idempotent)")

            cfg = R.sluice_config(wd, kafka.bootstrap, osn.url, group=GROUP,
                                  memory_limit=f"{MEMORY_LIMIT_MIB}MiB")
            sl = procs.add(H.Sluice(cfg, wd))
            t1 = time.monotonic()
            got = R.wait_count(osn, "logs-logs", N, timeout_s=900, stall_s=120)
            secs = time.monotonic() - t1
            ck.eq(got, N, "documents in OpenSearch")
            H.log(f"{got} documents in {secs:.1f}s ({got / secs:.0f}/s end to end)")
            ok, com, highs = R.wait_committed(kafka, GROUP, "logs", PARTS, timeout_s=60)
            ck.check(ok, "the group's committed offsets equal the high watermarks (real broker)",
                     f"committed {com}, high {highs}")
            ck.eq(sl.terminate(), 0, "sluice exit code after SIGTERM")
            fs = H.check_conservation(ck, sl.final_stats())
            if fs:
                ck.eq(fs["delivered"], N, "sluice counted every record delivered")
                ck.eq(fs["dead_lettered"], 0, "nothing dead-lettered")
            ck.eq(len(H.dead_letters(os.path.join(wd, "dead-letter"))), 0,
                  "dead-letter store is empty")
            rep = R.check_index_is_log(ck, osn, "logs-logs", kafka, "logs", PARTS, range(N))
            codecs = {}
            for d in osn.scan("logs-logs", source=["codec"], page=10000):
                c = d["_source"].get("codec")
                codecs[c] = codecs.get(c, 0) + 1
            ck.check(all(codecs.get(c, 0) >= per for c, _ in CODECS),
                     f"records of every codec arrived ({codecs})")
            peak = sl.rss.peak_hwm_kb / 1024
            ck.check(peak <= MEMORY_LIMIT_MIB + 16,
                     f"sluice peak RSS {peak:.1f} MiB <= memory_limit + 16 MiB")
            kafka.rss_kb()
            osn.rss_kb()
            H.log(f"result: records {N}, documents {rep['docs']}, dead-lettered 0, missing "
                  f"{rep['missing']}, duplicates {rep['dupes']}; {R.server_rss_report(kafka, osn)}")


if __name__ == "__main__":
    main()
