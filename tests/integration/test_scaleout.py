#!/usr/bin/python3
"""Scale-out is Kafka's consumer group: three sluice processes share 12 partitions while 150,000
records stream in; one is killed with SIGKILL, a fourth joins later.
A user must see: every record indexed exactly once (documents == unique seqs == produced), the
group rebalanced (each survivor logged new assignments), committed offsets at the end equal the
high watermarks (nothing left behind, nothing skipped), and no loss inside the mock."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

N = 150_000
GROUP = "scale"


def main():
    ck = H.Checker("test_scaleout")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    try:
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
            mk.produce("logs", N, group=GROUP, rate=15000)
            ck.check(es.wait_docs(30_000, 60, label="3 members") >= 30_000,
                     "three members make progress")
            victim = members[1]
            H.kill_group(victim.proc)
            victim.proc.wait(10)
            H.log("killed member 1 with SIGKILL")
            ck.check(es.wait_docs(70_000, 90, label="2 members") >= 70_000,
                     "the two survivors take over")
            members.append(start(3))
            got = es.wait_docs(N, 180, label="3 members again", stall_s=60)
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
                if m is victim:
                    continue
                ck.eq(m.terminate(60), 0, f"member {i} exit code after SIGTERM")
                want = 1 if i == 3 else 2
                ck.check(len(m.lines(r"assigned \d+ partitions")) >= want,
                         f"member {i} saw {want} assignment(s)", m.log_tail(5))
            H.check_every_seq_once(ck, es.dump(), range(N))
            after = mk.committed(GROUP, "logs")
            ck.check(all(after.get(p, -1) <= hi for p, (lo, hi) in wm.items()),
                     "after shutdown no committed offset passes the high watermark", after)
            H.check_broker_dropped(ck, mk)
            H.log(f"RESULT scale-out: {es.stats()['conflicts_409']} redeliveries answered 409")
    except Exception as e:  # noqa: BLE001
        ck.crash(e)
    return ck.finish()


if __name__ == "__main__":
    sys.exit(main())
