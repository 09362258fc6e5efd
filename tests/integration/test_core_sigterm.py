#!/usr/bin/python3
# ctest-labels: asan
"""SIGTERM with bulk requests in flight (esemu answers every request 500 ms late).

A user must see: exit 0 within shutdown_timeout, final-stats in_flight 0 and conservation, and the
committed offsets equal to the delivered prefix: per partition, the offsets in Elasticsearch are
exactly 0..committed-1 (nothing delivered above the commit, nothing missing below it). A restart
with the same group then receives exactly the records not delivered before (its received ==
produced - first run's delivered) and esemu never sees a second create of a document
(conflicts_409 == 0)."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

N = 60_000
PARTS = 8
GROUP = "sluice-sigterm"
SHUTDOWN_TIMEOUT_S = 10


def offsets_by_partition(docs):
    rx = re.compile(r"^logs-(\d+)-(\d+)$")
    out = {}
    for d in docs:
        m = rx.match(d["_id"])
        if m:
            out.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    return out


def main():
    ck = H.Checker("test_core_sigterm")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=[f"logs:{PARTS}"], workdir=wd))
            es = procs.add(H.EsEmu(workdir=wd))
            mk.produce("logs", N)
            ck.eq(mk.wait_produced(60), N, "records produced")
            H.check_low_watermarks(ck, mk, "logs")
            es.faults(delay_ms=500)
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd, group=GROUP,
                                  shutdown_timeout=f"{SHUTDOWN_TIMEOUT_S}s")
            sl = procs.add(H.Sluice(cfg, wd))
            # SIGTERM once the first responses came back, while more requests are in flight.
            first = es.wait_docs(1, 40, label="sigterm", stall_s=35)
            H.time.sleep(0.3)
            before = es.docs()
            st = es.stats()
            rc = sl.terminate(SHUTDOWN_TIMEOUT_S + 20)
            H.log(f"SIGTERM at {before} docs (bulk_requests so far {st.get('bulk_requests')}); "
                  f"exit {rc} after {sl.stop_seconds:.2f}s")
            ck.check(0 < first and before < N, f"SIGTERM landed mid-run ({before} of {N} docs)")
            ck.eq(rc, 0, "exit code after SIGTERM")
            ck.check(sl.stop_seconds is not None and sl.stop_seconds <= SHUTDOWN_TIMEOUT_S + 2,
                     f"exited within shutdown_timeout {SHUTDOWN_TIMEOUT_S}s "
                     f"(took {sl.stop_seconds:.2f}s)")
            fs1 = sl.final_stats()
            i1 = H.check_conservation(ck, fs1, label="run 1: ")
            after = es.docs()
            ck.check(after > before, f"records in flight at SIGTERM were delivered during the "
                     f"drain ({before} -> {after} docs)")
            com = mk.committed(GROUP, "logs")
            offs = offsets_by_partition(es.dump())
            bad = {p: (c, len(offs.get(p, ())), max(offs.get(p, {-1})))
                   for p, c in com.items()
                   if offs.get(p, set()) != set(range(max(c, 0)))}
            ck.check(not bad, "per partition, documents in Elasticsearch == offsets 0..committed-1 "
                     "(committed == delivered prefix)",
                     f"partition: (committed, docs, max offset) {bad}")
            if i1:
                ck.eq(sum(max(c, 0) for c in com.values()), i1["delivered"],
                      "sum of committed offsets == run 1 delivered")
                ck.eq(after, i1["delivered"], "documents == run 1 delivered")

            es.clear_faults()
            sl2 = procs.add(H.Sluice(cfg, wd))
            got = es.wait_docs(N, 60, label="restart", stall_s=30)
            ck.check(got >= N, f"restart with the same group completes ({got}/{N})",
                     sl2.log_tail())
            ck.eq(sl2.terminate(60), 0, "run 2 exit code after SIGTERM")
            fs2 = sl2.final_stats()
            i2 = H.check_conservation(ck, fs2, label="run 2: ")
            if i1 and i2:
                ck.eq(i2["received"], N - i1["delivered"], "run 2 received == produced - run 1 "
                      "delivered (nothing delivered is consumed again)")
            st = es.stats()
            ck.eq(int(st.get("conflicts_409", -1)), 0, "esemu conflicts_409 (no redelivery)")
            H.check_every_seq_once(ck, es.dump(), range(N), "after SIGTERM + restart")
            wm = mk.watermarks("logs")
            com = mk.committed(GROUP, "logs")
            ck.check(all(com.get(p) == hi for p, (lo, hi) in wm.items()),
                     "committed == high watermarks after run 2", f"{com} vs {wm}")
            H.check_broker_dropped(ck, mk)
            H.log(f"RESULT sigterm: stop took {sl.stop_seconds:.2f}s, docs at SIGTERM {before}, "
                  f"after drain {after}, run1 delivered {(i1 or {}).get('delivered')}, run2 "
                  f"received {(i2 or {}).get('received')}")


if __name__ == "__main__":
    main()
