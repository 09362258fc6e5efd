#!/usr/bin/python3
# ctest-labels: reliability
# ctest-timeout: 2400  # RELIABILITY_LONG=1 runs 50 crash cycles
"""At-least-once across crashes: 300,000 records; sluice is killed with SIGKILL at 5 random moments
(1-4 s after each start) and restarted with the same group, then left to finish (with
RELIABILITY_LONG=1: 1,000,000 records and 50 kills).

A user must see every seq in Elasticsearch, and no seq twice (the Kafka-derived _id plus op create
turn redeliveries into 409 conflicts, which esemu counts; we expect some and report them).
Set SLUICE_SEED to replay a run's kill schedule."""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

# RELIABILITY_LONG=1 (make reliability RELIABILITY_LONG=1): 50 kills on 1,000,000 records; the
# producer is throttled on the group's commits, so the mock never drops unconsumed data.
LONG = os.environ.get("RELIABILITY_LONG") == "1"
N = 1_000_000 if LONG else 300_000
PARTS = 16 if LONG else 8
KILLS = 50 if LONG else 5
RATE = 2_000 if LONG else 6_000  # so the kills keep landing while records flow
GROUP = "sluice-kill9"


def main():
    ck = H.Checker("test_core_kill9")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    seed = int(os.environ.get("SLUICE_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    H.log(f"kill schedule seed {seed} (SLUICE_SEED={seed} replays it)")
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=[f"logs:{PARTS}"], workdir=wd))
            es = procs.add(H.EsEmu(workdir=wd))
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd, group=GROUP)
            # paced so that all five kills land while records flow (sluice alone drains 300k in ~2 s)
            mk.produce("logs", N, group=GROUP, rate=RATE)
            kills = []
            for k in range(KILLS):
                sl = procs.add(H.Sluice(cfg, wd))
                # Kill while it is really working: after it has been assigned partitions.
                ck.check(sl.wait_log(r"assigned \d+ partitions", 30),
                         f"run {k + 1}: sluice got partitions", sl.log_tail())
                delay = rng.uniform(1.0, 4.0)
                H.time.sleep(delay)
                before = es.docs()
                alive = sl.alive()
                ck.check(alive, f"run {k + 1}: sluice still running before SIGKILL",
                         f"exit code {sl.proc.poll()}"
                         + ("; its log shows a SIGTERM this test did not send (another process "
                            "signalled it)" if sl.foreign_signal() else "") + "\n" + sl.log_tail())
                sl.kill9()
                kills.append((round(delay, 2), before))
                H.log(f"kill {k + 1}/{KILLS}: {delay:.2f}s after assignment, esemu docs {before}")
            sl = procs.add(H.Sluice(cfg, wd))
            # a SIGTERM before sluice has even started would kill any process: wait until it
            # holds partitions, as an operator's stop would find it
            ck.check(sl.wait_log(r"assigned \d+ partitions", 60), "final run: sluice got partitions")
            got = es.wait_docs(N, timeout_s=600 if LONG else 200, label="kill9 final run",
                               stall_s=40)
            ck.check(got >= N, f"esemu reached {N} docs after {KILLS} SIGKILLs (got {got})",
                     sl.log_tail())
            ck.check(mk.wait_produced(60) == N, "mockkafka produced everything")
            rc = sl.terminate(60)
            ck.eq(rc, 0, "final sluice exit code after SIGTERM")
            fs = sl.final_stats()
            H.check_conservation(ck, fs, label="final run: ")
            H.check_broker_dropped(ck, mk)
            stats = es.stats()
            docs = es.dump()
            r = H.check_every_seq_once(ck, docs, range(N), f"after kill -9 x{KILLS}")
            ck.check(r["unique"] == r["docs"] == N,
                     f"unique seq count == doc count == {N} ({r['unique']}, {r['docs']})")
            c409 = int(stats.get("conflicts_409", 0))
            # Not a hard requirement (a kill can land right after a commit), but with 5 kills in
            # the middle of a 300k run some redelivery is the normal case.
            H.log(f"RESULT kill9: kills at (s after assign, docs) {kills}; conflicts_409 {c409} "
                  f"(redelivered and absorbed by create); created {stats.get('created')}; "
                  f"bulk_requests {stats.get('bulk_requests')}")
            ck.check(c409 > 0, f"redelivery observed and absorbed: esemu conflicts_409 = {c409}")
            ck.eq(int(stats.get("created", -1)), N, "esemu created (one create per seq)")


if __name__ == "__main__":
    main()
