#!/usr/bin/python3
# ctest-labels: reliability
"""Scale-out is Kafka's consumer group: three sluice processes share 12 partitions while 150,000
records stream in; one is killed with SIGKILL, a fourth joins later.
A user must see: every record indexed exactly once (documents == unique seqs == produced), the
group rebalanced (each survivor logged new assignments), committed offsets at the end equal the
high watermarks (nothing left behind, nothing skipped), and no loss inside the mock.

RELIABILITY_LONG=1 (make reliability RELIABILITY_LONG=1): 600,000 records at 8,000/s and 4
kill/join rounds, 120,000 records apart: each round SIGKILLs the second-oldest live member and a
new member joins, so the group always has three."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

LONG = os.environ.get("RELIABILITY_LONG") == "1"
N = 600_000 if LONG else 150_000
RATE = 8_000 if LONG else 15_000
ROUNDS = 4 if LONG else 1
STEP = 120_000  # records between the rounds (long setting)
GROUP = "scale"


def main():
    ck = H.Checker("test_scaleout")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=["logs:12"], workdir=wd))
            es = procs.add(H.EsEmu(workdir=wd))

            def start(i):
                d = os.path.join(wd, f"p{i}")
                cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=d,
                                      group=GROUP)
                return procs.add(H.Sluice(cfg, d))

            members = [start(i) for i in range(3)]
            mk.produce("logs", N, group=GROUP, rate=RATE)
            victims = []
            for r in range(ROUNDS):
                rn = f"round {r + 1}/{ROUNDS}: " if LONG else ""
                before, after = 30_000 + r * STEP, 70_000 + r * STEP
                ck.check(es.wait_docs(before, 60 if r == 0 else 120,
                                      label=f"3 members ({r + 1})") >= before,
                         rn + "three members make progress")
                alive = [m for m in members if m not in victims]
                victim = alive[1]
                vi = members.index(victim)
                H.kill_group(victim.proc)
                victim.proc.wait(10)
                victims.append(victim)
                H.log(f"killed member {vi} with SIGKILL")
                ck.check(es.wait_docs(after, 90, label=f"2 members ({r + 1})") >= after,
                         rn + "the two survivors take over")
                members.append(start(len(members)))
            got = es.wait_docs(N, 300 if LONG else 180, label="3 members again", stall_s=60)
            ck.check(got >= N, f"all {N} records arrived (got {got})")
            ck.check(mk.wait_produced(60) == N, "mockkafka produced everything")
            # With the group stable and everything delivered, the auto-commit (every second) must
            # bring every partition's committed offset to its high watermark: nothing delivered
            # is left uncommitted and nothing is committed past what was delivered.
            wm = mk.watermarks("logs")
            committed = {}
            for _ in range(40):
                committed = mk.committed(GROUP, "logs")
                if all(committed.get(p) == hi for p, (lo, hi) in wm.items()):
                    break
                H.time.sleep(0.5)
            ck.check(all(committed.get(p) == hi for p, (lo, hi) in wm.items()),
                     "steady group: committed offsets reach the high watermarks", (committed, wm))
            for i, m in enumerate(members):
                if m in victims:
                    continue
                ck.eq(m.terminate(60), 0, f"member {i} exit code after SIGTERM")
                # the first three members were assigned at the start and again after the first
                # kill; a member that joined later at least once
                want = 1 if i >= 3 else 2
                ck.check(len(m.lines(r"assigned \d+ partitions")) >= want,
                         f"member {i} saw {want} assignment(s)", m.log_tail(5))
            H.check_every_seq_once(ck, es.dump(), range(N))
            after = mk.committed(GROUP, "logs")
            ck.check(all(after.get(p, -1) <= hi for p, (lo, hi) in wm.items()),
                     "after shutdown no committed offset passes the high watermark", after)
            H.check_broker_dropped(ck, mk)
            H.log(f"RESULT scale-out: {N} records, {ROUNDS} kill/join round(s), "
                  f"{es.stats()['conflicts_409']} redeliveries answered 409")


if __name__ == "__main__":
    sys.exit(main())
