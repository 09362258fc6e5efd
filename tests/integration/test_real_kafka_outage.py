#!/usr/bin/python3
# ctest-labels: real
"""A Kafka broker crash, on the real servers: while a producer streams 200,000 records into 8
partitions and sluice consumes them into OpenSearch, the broker (the only node, controller too)
is killed with SIGKILL and restarted on the same log 10 s later.

A user must see the outage in sluice's log (librdkafka's transport errors, rate-limited) and in
its metrics (client errors counted, brokers reported down, and up again), then sluice catching
up by itself: every record of the log exactly one document, offsets committed to the log's end,
nothing dead-lettered, and the same sluice process throughout."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import realservers as R  # noqa: E402

N = int(os.environ.get("REAL_RECORDS") or 200_000)
RATE = 5_000
PARTS = 8
GROUP = "sluice-real-kafka-outage"
OUTAGE_S = 10


def metric(sl, name):
    return sum(v for _, v in sl.metrics(name))


def main():
    ck = H.Checker("test_real_kafka_outage")
    H.require_binaries(H.SLUICE_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir("real-kafka-outage-")
            kafka = procs.add(R.KafkaServer(os.path.join(wd, "kafka")))
            osn = procs.add(R.OpenSearch(os.path.join(wd, "opensearch")))
            kafka.create_topic("logs", PARTS)
            cfg = R.sluice_config(wd, kafka.bootstrap, osn.url, group=GROUP)
            sl = procs.add(H.Sluice(cfg, wd))
            ck.check(sl.wait_log(r"assigned \d+ partitions", 60), "sluice got partitions",
                     sl.log_tail())
            prod = R.Streamer(kafka.bootstrap, "logs", N, RATE, R.log_record).start()
            while prod.sent < N // 3:
                time.sleep(0.2)
            errors0 = metric(sl, "sluice_kafka_client_errors_total")
            before = osn.count("logs-logs")
            kafka.kill9()
            H.log(f"broker killed: producer at {prod.sent}, documents {before}")
            t0 = time.monotonic()
            down_seen = False
            while time.monotonic() - t0 < OUTAGE_S:
                if metric(sl, "sluice_kafka_brokers_down") >= 1:
                    down_seen = True
                time.sleep(0.5)
            ck.check(down_seen, "/metrics: sluice_kafka_brokers_down is 1 during the outage",
                     sl.metrics("sluice_kafka_brokers_down"))
            errors1 = metric(sl, "sluice_kafka_client_errors_total")
            ck.check(errors1 > errors0,
                     f"/metrics: client errors counted during the outage ({errors0} -> {errors1})")
            ck.check(sl.lines(r"k: .*(_TRANSPORT|_ALL_BROKERS_DOWN|brokers? .*down)"),
                     "sluice's log names the outage", sl.log_tail())
            kafka.start()
            H.log(f"broker restarted after {time.monotonic() - t0:.1f}s")
            prod.join()
            R.wait_count(osn, "logs-logs", N, timeout_s=300, stall_s=120)
            deadline = time.monotonic() + 30
            while metric(sl, "sluice_kafka_brokers_down") != 0 and time.monotonic() < deadline:
                time.sleep(0.5)
            ck.eq(metric(sl, "sluice_kafka_brokers_down"), 0,
                  "/metrics: sluice_kafka_brokers_down back to 0")
            ck.check(sl.alive(), "the same sluice process ran throughout", sl.log_tail())
            R.check_all_arrived(ck, kafka=kafka, osn=osn, group=GROUP, n=N,
                                shippers=[("", sl, "k")],
                                dl_dirs=[os.path.join(wd, "dead-letter")])
            for ln in sl.lines(r"_TRANSPORT|BROKERS_DOWN|brokers_down")[:4]:
                H.log(f"sluice: {ln[:200]}")


if __name__ == "__main__":
    main()
