#!/usr/bin/python3
"""Kafka-side faults through the mock cluster (3 brokers), while 60,000 records stream in:
OffsetCommit refused (REBALANCE_IN_PROGRESS) five times, Fetch answered NOT_LEADER five times,
every broker down for 5 s (longer than the group session, so the member is evicted and
rejoins), a partition leader change and a group coordinator move.
A user must see: every record indexed exactly once, conservation at exit, nothing lost inside the
mock; redeliveries (records consumed again after the eviction) are 409s, never duplicates."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

N = 60_000


def main():
    ck = H.Checker("test_kafka_faults")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    try:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=["logs:8"], workdir=wd, brokers=3))
            es = procs.add(H.EsEmu(workdir=wd))
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd, group="kf")
            sl = procs.add(H.Sluice(cfg, wd))
            mk.produce("logs", N, group="kf", rate=10000)
            ck.check(es.wait_docs(5000, 30, label="before faults") >= 5000,
                     "records flow before the faults")
            mk.ok("push-errors OffsetCommit 5 REBALANCE_IN_PROGRESS")
            mk.ok("push-errors Fetch 5 NOT_LEADER_FOR_PARTITION")
            H.time.sleep(2)
            mk.ok("broker-down -1")
            H.time.sleep(5)
            mk.ok("broker-up -1")
            mk.ok("leader logs 0 2")
            mk.ok("coordinator kf 3")
            got = es.wait_docs(N, 120, label="after faults", stall_s=40)
            ck.check(got >= N, f"all {N} records arrived after the faults (got {got})",
                     sl.log_tail())
            ck.eq(sl.terminate(30), 0, "exit code after SIGTERM")
            ck.check(len(sl.lines(r"brokers are down")) > 0, "the outage was logged")
            H.check_conservation(ck, sl.final_stats())
            H.check_every_seq_once(ck, es.dump(), range(N))
            H.check_broker_dropped(ck, mk)
            H.log(f"RESULT kafka faults: {es.stats()['conflicts_409']} redeliveries answered 409, "
                  f"{len(sl.lines('revok'))} revocations")
    except Exception as e:  # noqa: BLE001
        ck.crash(e)
    return ck.finish()


if __name__ == "__main__":
    sys.exit(main())
