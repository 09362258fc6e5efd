#!/usr/bin/python3
# ctest-labels: asan
"""A partition that is assigned, holds records and never fetches is found and restarted.

Seen in benchmarks and once in CI with librdkafka 2.0.2: one partition of many delivered nothing,
nothing was committed for it, and no error was logged anywhere; librdkafka #5591 reports the same
on later versions. The cause inside the client is not known, so the test makes the symptom on
purpose: SLUICE_FAULT_STRAND=logs:2 pauses partition 2 in the client on assignment without sluice
knowing (a test-only fault). The budget is large enough that sluice never pauses or resumes
anything itself, so only the stall watchdog can get the partition going.

A user must see: every record of every partition indexed exactly once, a `partition_stalled`
warning naming `logs [2]` and where it restarts (nothing committed, so at the log start), the
`sluice_kafka_stalled_partition_recoveries_total` counter at 1 or more, and no such warning for the
partitions of a topic that holds no record (an idle partition is not a stalled one). Restarted
with the group's offsets committed and new records produced, the stranded partition restarts at its
committed offset: every new record arrives and no old one is sent again (no 409 on create).
Before the watchdog covered partitions that never delivered, partition 2's records never arrived."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

N = 8_000
N2 = 4_000
STALL_S = 10  # src/inputs/kafka.c STALL_MS


def main():
    ck = H.Checker("test_kafka_stranded")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=["logs:4", "quiet:2"], workdir=wd))
            es = procs.add(H.EsEmu(workdir=wd))

            def config():  # a fresh status port each time (a port may be taken once freed)
                return H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd,
                                       group="stranded", topics=("logs", "quiet"),
                                       match="kafka.**", memory_limit="64MiB")
            cfg = config()
            env = dict(os.environ, SLUICE_FAULT_STRAND="logs:2")
            t0 = time.monotonic()
            sl = procs.add(H.Sluice(cfg, wd, env=env))
            ck.check(sl.wait_log(r"SLUICE_FAULT_STRAND: logs \[2\] paused", 30),
                     "the fault was applied to logs [2]", sl.log_tail())
            # Produced once the partition is stranded, so none of its records can be fetched
            # before the fault's pause holds (see the restart phase below).
            mk.produce("logs", N)
            ck.eq(mk.wait_produced(60), N, "backlog produced")
            wm = mk.watermarks("logs")
            ck.check(wm[2][1] > 0, f"partition 2 holds records ({wm[2][1]})", wm)
            others = N - wm[2][1]
            got = es.wait_docs(others, 30, label="other partitions")
            ck.check(got >= others, f"the other partitions' {others} records arrive", got)
            got = es.wait_docs(N, STALL_S + 30, label="stranded")
            took = time.monotonic() - t0
            ck.check(got >= N, f"all {N} records arrive, partition 2's too (got {got})",
                     sl.log_tail(8))
            warn = sl.lines(r"warn k: .*: no message for \d+ ms although the log reaches")
            ck.check(any("logs [2]" in w and "nothing is committed; the log starts at 0" in w
                         and "restarting its fetch at 0" in w for w in warn),
                     "a partition_stalled warning names logs [2] and where its fetch restarts",
                     warn[:3] or sl.log_tail(5))
            ck.check(not any("quiet [" in w for w in warn),
                     "no partition_stalled warning for the idle topic's partitions", warn[:3])
            rec = sum(v for _, v in sl.metrics("sluice_kafka_stalled_partition_recoveries_total"))
            ck.check(rec >= 1, f"sluice_kafka_stalled_partition_recoveries_total >= 1 (got {rec})")
            H.log(f"RESULT stranded: {got}/{N} docs in {took:.1f} s, warnings {len(warn)}, "
                  f"recoveries {rec}")
            pauses = sl.stat_values("pauses")  # periodic stats; the input pauses on SIGTERM
            ck.eq(sl.terminate(30), 0, "exit code after SIGTERM")
            fs = sl.final_stats()
            H.check_conservation(ck, fs)
            ck.check(bool(pauses) and not any(pauses),
                     "sluice itself never paused before shutdown (only the watchdog could help)",
                     pauses)
            H.check_every_seq_once(ck, es.dump(), range(N), "documents")
            committed = mk.committed("stranded", "logs")
            ck.eq(committed, {p: hi for p, (lo, hi) in wm.items()},
                  "every partition committed up to its high watermark")

            # Restarted with the group's offsets committed: the stranded partition must resume
            # at its committed offset, not at the log start (which would re-send its old records).
            # The new records are produced once the partition is stranded: produced before, they
            # could be fetched before the fault's pause took hold (seen once in a CI run under
            # ctest -j4: partition 2's records arrived at once and nothing was stranded); the
            # first phase above does the same.
            sl = procs.add(H.Sluice(config(), wd, env=env))
            ck.check(sl.wait_log(r"SLUICE_FAULT_STRAND: logs \[2\] paused", 30),
                     "restart: the fault was applied to logs [2]", sl.log_tail())
            mk.produce("logs", N2)
            ck.eq(mk.wait_produced(60), N + N2, "second backlog produced")
            wm2 = mk.watermarks("logs")
            got = es.wait_docs(N + N2, STALL_S + 40, label="restart")
            ck.check(got >= N + N2, f"after a restart all {N2} new records arrive (got {got - N})",
                     sl.log_tail(8))
            warn = sl.lines(r"warn k: .*: no message for \d+ ms although the log reaches")
            c2 = wm[2][1]
            ck.check(any("logs [2]" in w and f"the group's committed offset is {c2}" in w
                         and f"restarting its fetch at {c2}" in w for w in warn),
                     f"the warning names the committed offset {c2} as where the fetch restarts",
                     warn[:3] or sl.log_tail(5))
            ck.eq(sl.terminate(30), 0, "restart: exit code after SIGTERM")
            ck.eq(es.stats()["conflicts_409"], 0,
                  "no record was sent twice (it restarted at the committed offset)")
            H.check_every_seq_once(ck, es.dump(), range(N + N2), "documents after the restart")
            ck.eq(mk.committed("stranded", "logs"), {p: hi for p, (lo, hi) in wm2.items()},
                  "restart: every partition committed up to its high watermark")


if __name__ == "__main__":
    sys.exit(main())
