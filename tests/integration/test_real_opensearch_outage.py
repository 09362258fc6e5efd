#!/usr/bin/python3
# ctest-labels: real
"""An OpenSearch crash, on the real servers: while a producer streams 200,000 records into a
real Kafka broker and sluice indexes them, the OpenSearch node is killed with SIGKILL and
restarted on the same data path 10 s later.

A user must see sluice retry through the outage (connection errors counted as retries, the
partitions' lag growing, nothing dead-lettered) and catch up by itself: every record of the log
exactly one document once the node is back (the writes it acknowledged before the crash
survive in its translog; the ones it did not are resent under the same ids), offsets committed
to the log's end, and the same sluice process throughout."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import realservers as R  # noqa: E402

N = int(os.environ.get("REAL_RECORDS") or 200_000)
RATE = 5_000
PARTS = 8
GROUP = "sluice-real-os-outage"
OUTAGE_S = 10


def metric(sl, name, **labels):
    return sum(v for lb, v in sl.metrics(name) if all(lb.get(k) == x for k, x in labels.items()))


def main():
    ck = H.Checker("test_real_opensearch_outage")
    H.require_binaries(H.SLUICE_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir("real-os-outage-")
            kafka = procs.add(R.KafkaServer(os.path.join(wd, "kafka")))
            osn = procs.add(R.OpenSearch(os.path.join(wd, "opensearch")))
            kafka.create_topic("logs", PARTS)
            cfg = R.sluice_config(wd, kafka.bootstrap, osn.url, group=GROUP)
            sl = procs.add(H.Sluice(cfg, wd))
            ck.check(sl.wait_log(r"assigned \d+ partitions", 60), "sluice got partitions",
                     sl.log_tail())
            prod = R.Streamer(kafka.bootstrap, "logs", N, RATE, R.log_record).start()
            while osn.count("logs-logs") < N // 4:
                time.sleep(0.2)
            retries0 = metric(sl, "sluice_output_retries_total")
            osn.kill9()
            H.log(f"OpenSearch killed: producer at {prod.sent}")
            time.sleep(OUTAGE_S)
            retries1 = metric(sl, "sluice_output_retries_total")
            lag = metric(sl, "sluice_kafka_partition_lag")
            ck.check(retries1 > retries0,
                     f"/metrics: retries counted during the outage ({retries0} -> {retries1})",
                     sl.metrics("sluice_output_retries_total"))
            ck.check(lag > 0, f"/metrics: the partitions' lag shows records waiting ({lag:.0f})")
            ck.check(sl.lines(r"es: .*(retry|retrying|Couldn't connect|connect)"),
                     "sluice's log names the failed requests", sl.log_tail())
            osn.start()
            H.log("OpenSearch restarted")
            prod.join()
            R.wait_count(osn, "logs-logs", N, timeout_s=300, stall_s=120)
            ck.check(sl.alive(), "the same sluice process ran throughout", sl.log_tail())
            R.check_all_arrived(ck, kafka=kafka, osn=osn, group=GROUP, n=N,
                                shippers=[("", sl, "k")],
                                dl_dirs=[os.path.join(wd, "dead-letter")])


if __name__ == "__main__":
    main()
