#!/usr/bin/python3
# ctest-labels: reliability
"""Kafka-side faults through the mock cluster (3 brokers), while 60,000 records stream in:
OffsetCommit refused (REBALANCE_IN_PROGRESS) five times, Fetch answered NOT_LEADER five times,
every broker down for 5 s (longer than the group session, so the member is evicted and
rejoins), a partition leader change and a group coordinator move.
A user must see: every record indexed exactly once, conservation at exit, nothing lost inside the
mock; redeliveries (records consumed again after the eviction) are 409s, never duplicates.

RELIABILITY_LONG=1 (make reliability RELIABILITY_LONG=1): 300,000 records at 5,000/s on 32
partitions and the whole fault sequence repeated 4 times, 60,000 records apart, moving the leader
of another partition and the coordinator to another broker each round. The long producer is not
throttled on the group's commits (mockkafka `group=`): with the throttle, the mock stopped producing
after the second round (probably a stale snapshot in its monitor after the coordinator moved to
broker 1; not traced); 32 partitions keep 300,000 records at about 2.4 MB each, under the
mock's 5 MiB per partition. The mock's job producer is not idempotent: a produce retried across
`broker-down -1` can append a record twice (seen: 8, 2 and 1 seqs; the 2 at two consecutive
offsets of one partition, the high watermarks summing to N + 2). So both settings check that
every Kafka record (sum of the high watermarks) is indexed exactly once, under its own
`<topic>-<partition>-<offset>` id, and that a seq is twice only as often as the log holds an
extra record (the short setting also met it: 8 seqs in one clean-clone run of stop 11)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

LONG = os.environ.get("RELIABILITY_LONG") == "1"
N = 300_000 if LONG else 60_000
RATE = 5_000 if LONG else 10_000
ROUNDS = 4 if LONG else 1
PARTS = 32 if LONG else 8
# esemu docs before round r's faults
START = [5_000 + r * 60_000 for r in range(ROUNDS)]


def main():
    ck = H.Checker("test_kafka_faults")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=[f"logs:{PARTS}"], workdir=wd, brokers=3))
            es = procs.add(H.EsEmu(workdir=wd))
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd, group="kf")
            sl = procs.add(H.Sluice(cfg, wd))
            if LONG:
                mk.produce("logs", N, rate=RATE)
            else:
                mk.produce("logs", N, group="kf", rate=RATE)
            for r in range(ROUNDS):
                rn = f"round {r + 1}/{ROUNDS}: " if LONG else ""
                ck.check(es.wait_docs(START[r], 30 if r == 0 else 120,
                                      label=f"before faults {r + 1}") >= START[r],
                         rn + "records flow before the faults")
                mk.ok("push-errors OffsetCommit 5 REBALANCE_IN_PROGRESS")
                mk.ok("push-errors Fetch 5 NOT_LEADER_FOR_PARTITION")
                H.time.sleep(2)
                mk.ok("broker-down -1")
                H.time.sleep(5)
                mk.ok("broker-up -1")
                mk.ok(f"leader logs {r % 8} {(r + 1) % 3 + 1}")
                mk.ok(f"coordinator kf {(r + 2) % 3 + 1}")
                if LONG:
                    H.log(f"fault round {r + 1}/{ROUNDS} done, esemu docs {es.docs()}")
            got = es.wait_docs(N, 300 if LONG else 120, label="after faults", stall_s=40)
            ck.check(got >= N, f"all {N} records arrived after the faults (got {got})",
                     sl.log_tail())
            ck.eq(sl.terminate(30), 0, "exit code after SIGTERM")
            ck.check(len(sl.lines(r"brokers are down")) > 0, "the outage was logged")
            H.check_conservation(ck, sl.final_stats())
            docs = es.dump()
            r = H.seq_report(docs, range(N))
            in_log = sum(hi for lo, hi in mk.watermarks("logs").values())
            ck.check(r["missing"] == 0, "documents: no seq missing",
                     f"{r['missing']} missing, e.g. {r['missing_ex']}")
            ck.check(r["unexpected"] == 0 and r["no_seq"] == 0,
                     "documents: no unexpected seq, none without seq")
            ck.eq(r["docs"], in_log, "documents == records in the Kafka log (sum of the "
                  "high watermarks): each Kafka record indexed exactly once")
            ck.eq(len({d.get("_id") for d in docs}), r["docs"], "documents have distinct _ids")
            ck.eq(r["docs"] - r["unique"], in_log - N, "seqs indexed twice == records the "
                  "mock's producer appended twice")
            H.log(f"Kafka log {in_log} records for {N} seqs; seqs twice {r['dupes_ex']}")
            H.check_broker_dropped(ck, mk)
            H.log(f"RESULT kafka faults: {N} records, {ROUNDS} fault round(s), "
                  f"{es.stats()['conflicts_409']} redeliveries answered 409, "
                  f"{len(sl.lines('revok'))} revocations")


if __name__ == "__main__":
    sys.exit(main())
