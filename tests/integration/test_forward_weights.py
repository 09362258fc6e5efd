#!/usr/bin/python3
"""Forward output weights: mockkafka -> sluice -> servers [A, B, S] with weights [60, 40, 0]
(S a standby), using the fake Forward servers of test_forward_out.py (python3-msgpack).

 1. 40,000 records in small batches (64KiB, the smallest effective size): A and B share the requests about 60:40, S gets none.
 2. A refuses connections: the next records all go to B (failover kept); S still gets none.
 3. B refuses too: the standby S takes everything.
 4. A is back: it gets requests again (probed and marked up).
Every record arrives (nothing lost); conservation after SIGTERM."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from test_forward_out import FakeForward, entries_of, wait_seqs  # noqa: E402

TOPIC = "w"
N1, N2, N3, N4 = 40_000, 3_000, 2_000, 3_000


def config(wd, bootstrap, servers):
    return H.config(
        H.service(wd, memory_limit="32MiB", shutdown_timeout="10s", stats_interval="1s"),
        [H.kafka_input(bootstrap, "fwd-weights", [TOPIC])],
        [H.forward_output([s.port for s in servers], name="wrr", weights=[60, 40, 0],
                          ack_timeout="5s", connect_timeout="2s", batch_max_bytes="64KiB",
                          batch_max_wait="50ms", retry_base="100ms", retry_max="1s")])


def frames_by(s, seqs):
    """Acked frames of server s carrying any seq of seqs."""
    n = 0
    for f in s.snapshot()[0]:
        if f["action"] == "ack" and any(isinstance(e[1], dict) and e[1].get("seq") in seqs
                                        for e in entries_of(f["obj"])):
            n += 1
    return n


def main():
    ck = H.Checker("test_forward_weights")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=[f"{TOPIC}:4"], workdir=wd))
            a, b, s = FakeForward("A"), FakeForward("B"), FakeForward("S")
            servers = [a, b, s]
            sl = procs.add(H.Sluice(config(wd, mk.bootstrap, servers), wd))
            ck.check(sl.wait_log(r"assigned \d+ partitions", 30), "sluice got partitions",
                     sl.log_tail())

            # 1. the split
            mk.produce(TOPIC, N1)
            want1 = set(range(N1))
            got = wait_seqs(servers, TOPIC, want1, 90)
            ck.check(want1 <= set(got), f"phase 1: all {N1} records arrived ({len(got)})",
                     sl.log_tail())
            fa, fb, fs_ = frames_by(a, want1), frames_by(b, want1), frames_by(s, want1)
            share = fa / max(1, fa + fb)
            H.log(f"RESULT weights 60/40/0: requests A={fa} B={fb} S={fs_} (A share {share:.3f})")
            ck.check(fa + fb >= 100, f"enough requests to judge the split ({fa + fb})")
            ck.check(0.5 <= share <= 0.7, f"A got about 60% of the requests ({share:.3f})")
            ck.eq(fs_, 0, "the standby got no request while A and B were up")

            # 2. A down: B takes everything
            a.refuse()
            want2 = set(range(N1, N1 + N2))
            mk.produce(TOPIC, N2)
            got = wait_seqs(servers, TOPIC, want2, 60)
            ck.check(want2 <= set(got), f"phase 2 (A down): all {N2} records arrived",
                     sl.log_tail())
            on = {k: sum(1 for q in want2 if any(x[1] == k for x in got.get(q, [])))
                  for k in "ABS"}
            H.log(f"phase 2 records by server: {on}")
            ck.check(on["B"] == N2 and on["S"] == 0,
                     f"phase 2: every record at B, none at the standby ({on})")

            # 3. B down too: the standby
            b.refuse()
            want3 = set(range(N1 + N2, N1 + N2 + N3))
            mk.produce(TOPIC, N3)
            got = wait_seqs(servers, TOPIC, want3, 60)
            ck.check(want3 <= set(got), f"phase 3 (A and B down): all {N3} records arrived",
                     sl.log_tail())
            on = {k: sum(1 for q in want3 if any(x[1] == k for x in got.get(q, [])))
                  for k in "ABS"}
            ck.check(on["S"] == N3, f"phase 3: every record at the standby ({on})")

            # 4. A back: probed, marked up, used again (and the standby no longer)
            a.listen()
            time.sleep(3)  # more than retry_max: a probe has connected
            want4 = set(range(N1 + N2 + N3, N1 + N2 + N3 + N4))
            mk.produce(TOPIC, N4)
            got = wait_seqs(servers, TOPIC, want4, 60)
            ck.check(want4 <= set(got), f"phase 4 (A back): all {N4} records arrived")
            on = {k: sum(1 for q in want4 if any(x[1] == k for x in got.get(q, [])))
                  for k in "ABS"}
            ck.check(on["A"] == N4, f"phase 4: A is used again, the standby not ({on})")

            ck.eq(mk.wait_produced(30), N1 + N2 + N3 + N4, "produced")
            rc = sl.terminate(30)
            ck.eq(rc, 0, "exit code after SIGTERM")
            fs = sl.final_stats()
            inp = H.check_conservation(ck, fs)
            if inp:
                ck.eq(inp["delivered"], N1 + N2 + N3 + N4, "every record delivered")
            ck.check(all(not x.violations for x in servers), "no protocol violations",
                     [x.violations[:2] for x in servers])
            ck.check(sl.lines(r"requests per server \(weights\)"),
                     "per-server request counts in the stats log")


if __name__ == "__main__":
    main()
