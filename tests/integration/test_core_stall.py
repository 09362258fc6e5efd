#!/usr/bin/python3
# ctest-labels: reliability
"""Bounded memory under a stalled Elasticsearch.

A ~100 MB backlog (400,000 x 250 B records on 32 partitions, ~3.1 MB each, so the mock keeps all of
it) sits in Kafka while esemu stalls every request for 30 s. sluice runs with memory_limit 16MiB.
A user must see: peak RSS (VmHWM, sampled) below memory_limit + OVERHEAD_MIB, the input paused
(stats `pauses=N`, N > 0) and, because the stall outlasts a second, its partitions paused in the
client (`partition_pauses` at least 1) while the short backpressure of the catch-up after the stall
only held the client's queue (fewer partition pauses than pauses: a partition pause drops the
prefetched records, which are fetched again), sluice staying in its group (no `revoked` line
before shutdown, one assignment), and after the stall every seq exactly once."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

OVERHEAD_MIB = 16          # fixed overhead on top of memory_limit (the lead's stated figure)
MEMORY_LIMIT_MIB = 16
N = 400_000
SIZE = 250
PARTS = 32
STALL_MS = 30_000
GROUP = "sluice-stall"


def main():
    ck = H.Checker("test_core_stall")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=[f"logs:{PARTS}"], workdir=wd))
            es = procs.add(H.EsEmu(workdir=wd))
            # group= only as a safety net: 4.5 MB of lag per partition is above what we produce.
            mk.produce("logs", N, size=SIZE, group=GROUP, max_lag_bytes=4_500_000)
            ck.eq(mk.wait_produced(120), N, "backlog produced")
            wm = H.check_low_watermarks(ck, mk, "logs")
            ck.eq(sum(hi for lo, hi in wm.values()), N, "backlog in Kafka (sum of high watermarks)")
            H.log(f"backlog: {N} x {SIZE} B = {N * SIZE / H.MIB:.0f} MiB on {PARTS} partitions")

            es.faults(stall_ms=STALL_MS)
            t_stall = H.time.monotonic()
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd, group=GROUP,
                                  memory_limit=f"{MEMORY_LIMIT_MIB}MiB")
            sl = procs.add(H.Sluice(cfg, wd))
            ck.check(sl.wait_log(r"assigned \d+ partitions", 30), "sluice got its partitions",
                     sl.log_tail())
            # During the stall: nothing may be indexed yet, and sluice must be alive.
            while H.time.monotonic() - t_stall < STALL_MS / 1000 - 2:
                H.time.sleep(1)
            docs_in_stall = es.docs()
            hwm_in_stall = sl.rss.peak_hwm_kb
            ck.check(sl.alive(), "sluice alive at the end of the stall", sl.log_tail())
            ck.eq(docs_in_stall, 0, "no document indexed while esemu stalls")
            during = sl.lines(r" k: received=")
            H.log(f"during the stall: VmHWM {hwm_in_stall} kB; stats: {during[-1] if during else None}")

            got = es.wait_docs(N, timeout_s=150, label="stall: after", stall_s=40)
            ck.check(got >= N, f"after the stall all {N} docs arrive (got {got})", sl.log_tail())
            rc = sl.terminate(60)
            ck.eq(rc, 0, "sluice exit code after SIGTERM")
            fs = sl.final_stats()
            i = H.check_conservation(ck, fs)
            if i:
                ck.eq(i["received"], N, "final-stats received")
            H.check_broker_dropped(ck, mk)

            limit_kb = (MEMORY_LIMIT_MIB + OVERHEAD_MIB) * 1024
            peak = max(sl.rss.peak_hwm_kb, (fs or {}).get("peak_rss_kb", 0))
            ck.check(peak < limit_kb,
                     f"peak RSS {peak} kB ({peak / 1024:.1f} MiB) < memory_limit {MEMORY_LIMIT_MIB} "
                     f"MiB + overhead {OVERHEAD_MIB} MiB", f"sampled VmHWM {sl.rss.peak_hwm_kb} kB, "
                     f"VmRSS max {sl.rss.peak_rss_kb} kB ({sl.rss.samples} samples)")

            pauses = sl.stat_values("pauses")
            ck.check(pauses and max(pauses) > 0, f"stats lines show paused partitions "
                     f"(pauses= values {pauses})")
            ppauses = sl.stat_values("partition_pauses")
            ck.check(ppauses and max(ppauses) >= 1,
                     f"the 30 s stall paused the partitions in the client (partition_pauses= "
                     f"values {ppauses})")
            ck.check(ppauses and pauses and max(ppauses) < max(pauses),
                     f"short backpressure held the queue instead of pausing the partitions "
                     f"(partition_pauses {max(ppauses or [0])} < pauses {max(pauses or [0])})")
            text = sl.text().splitlines()
            stop_at = next((n for n, ln in enumerate(text) if "signal 15" in ln), len(text))
            revoked = [ln for ln in text[:stop_at] if "revoked" in ln]
            assigned = [ln for ln in text[:stop_at] if "assigned" in ln]
            ck.check(not revoked, "no partition revoked while running (stayed in the group)",
                     revoked[:3])
            ck.eq(len(assigned), 1, "exactly one assignment (no rebalance during the stall)")

            docs = es.dump()
            H.check_every_seq_once(ck, docs, range(N), "after the stall")
            st = es.stats()
            H.log(f"RESULT stall: peak RSS {peak / 1024:.1f} MiB (VmHWM; limit {MEMORY_LIMIT_MIB} "
                  f"+ {OVERHEAD_MIB} MiB), VmRSS max {sl.rss.peak_rss_kb / 1024:.1f} MiB, budget_peak "
                  f"{(fs or {}).get('budget_peak')} / {(fs or {}).get('budget_limit')}, pauses "
                  f"{max(pauses) if pauses else None} (partition pauses "
                  f"{max(ppauses) if ppauses else None}), conflicts_409 {st.get('conflicts_409')}, "
                  f"{H.events_per_second(st, N):,.0f} events/s after the stall")


if __name__ == "__main__":
    main()
