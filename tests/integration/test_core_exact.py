#!/usr/bin/python3
"""Exactly once in effect, end to end: 200,000 records on 8 partitions -> sluice -> esemu.

Checks what a user would see in Elasticsearch: every seq 0..199999 exactly once, ids
`logs-<partition>-<offset>` that match Kafka's coordinates, the index date taken from the record's
own `time` (in UTC, not the wall clock: two extra records carry 2024 timestamps, one with a +02:00
offset), then SIGTERM -> exit 0, conservation in final-stats, and committed offsets == high
watermarks. Prints events/s (esemu first..last doc) and sluice's peak RSS."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

N = 200_000
PARTS = 8
GROUP = "sluice-exact"
# Records whose event date differs from today's: index must follow the record time, in UTC.
EXTRA = [
    (0, 10_000_000, "2024-02-29T23:59:59.999Z", "logs-logs-2024.02.29"),
    (1, 10_000_001, "2024-03-01T00:30:00+02:00", "logs-logs-2024.02.29"),
]


def main():
    ck = H.Checker("test_core_exact")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=[f"logs:{PARTS}"], workdir=wd))
            es = procs.add(H.EsEmu(workdir=wd))
            extra_off = {}
            for p, seq, ts, _ in EXTRA:
                payload = f'{{"seq":{seq},"time":"{ts}","level":"INFO","message":"leap day"}}'
                extra_off[seq] = (p, mk.produce_raw("logs", p, payload))
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd, group=GROUP)
            sl = procs.add(H.Sluice(cfg, wd))
            mk.produce("logs", N, group=GROUP)
            total = N + len(EXTRA)
            got = es.wait_docs(total, timeout_s=150, label="exact", stall_s=30)
            ck.check(got >= total, f"esemu reached {total} docs within 150 s (got {got})",
                     sl.log_tail())
            mk.wait_produced(60)
            # Let commits catch up (commit timer), then stop.
            H.time.sleep(1.5)
            rc = sl.terminate(60)
            ck.eq(rc, 0, "sluice exit code after SIGTERM")
            fs = sl.final_stats()
            i = H.check_conservation(ck, fs)
            if i:
                ck.eq(i["received"], total, "final-stats received")
                ck.eq(i["delivered"], total, "final-stats delivered")
                ck.eq(i["dead_lettered"] + i["dropped"], 0, "final-stats dead_lettered + dropped")
            H.check_broker_dropped(ck, mk)

            wm = mk.watermarks("logs")
            com = mk.committed(GROUP, "logs")
            ck.check(all(com.get(p) == hi for p, (lo, hi) in wm.items()),
                     "committed offsets == high watermarks", f"committed {com} watermarks {wm}")

            stats = es.stats()
            docs = es.dump()
            main_docs = [d for d in docs if H.seq_of(d) is not None and H.seq_of(d) < N]
            H.check_every_seq_once(ck, main_docs, range(N), "produced records")
            ck.eq(len(docs), total, "total documents in esemu")

            # ids and index names
            rx = re.compile(r"^logs-(\d+)-(\d+)$")
            bad_id, bad_part, bad_index = [], [], []
            per_part = {}
            for d in main_docs:
                m = rx.match(d["_id"])
                seq = H.seq_of(d)
                if not m:
                    bad_id.append(d["_id"])
                    continue
                p, off = int(m.group(1)), int(m.group(2))
                if p != seq % PARTS:
                    bad_part.append((d["_id"], seq))
                per_part.setdefault(p, []).append((off, seq))
                t = d["_source"]["time"]
                want = f"logs-logs-{t[0:4]}.{t[5:7]}.{t[8:10]}"
                if d["_index"] != want:
                    bad_index.append((d["_index"], want))
            ck.check(not bad_id, "every _id is logs-<partition>-<offset>", bad_id[:5])
            ck.check(not bad_part, "partition in _id == seq % 8 (the producer's partitioner)",
                     bad_part[:5])
            ck.check(not bad_index, "index date == record time date (logs-logs-%Y.%m.%d)",
                     bad_index[:5])
            # Offsets per partition: exactly the Kafka log (0..hi-1 minus the extra records),
            # and in the producer's order.
            order_ok, range_ok = True, True
            for p, lst in per_part.items():
                lst.sort()
                offs = {o for o, _ in lst} | {o for s, (pp, o) in extra_off.items() if pp == p}
                if offs != set(range(wm[p][1])):
                    range_ok = False
                if any(a[1] >= b[1] for a, b in zip(lst, lst[1:])):
                    order_ok = False
            ck.check(range_ok, "per partition, _id offsets cover exactly 0..high-1")
            ck.check(order_ok, "per partition, offset order == seq order")
            for p, seq, ts, want in EXTRA:
                d = [x for x in docs if H.seq_of(x) == seq]
                exp_id = f"logs-{extra_off[seq][0]}-{extra_off[seq][1]}"
                ck.check(len(d) == 1 and d[0]["_index"] == want and d[0]["_id"] == exp_id,
                         f"record time {ts} -> index {want}, id {exp_id}",
                         [(x["_index"], x["_id"]) for x in d])

            ck.eq(int(stats.get("conflicts_409", -1)), 0, "esemu conflicts_409 (no redelivery)")
            rate = H.events_per_second(stats, total)
            peak = max(sl.rss.peak_hwm_kb, (fs or {}).get("peak_rss_kb", 0))
            H.log(f"RESULT exact: {total} docs, {rate:,.0f} events/s (esemu first..last doc), "
                  f"sluice peak RSS {peak / 1024:.1f} MiB (VmHWM sampled {sl.rss.peak_hwm_kb} kB, "
                  f"final-stats {(fs or {}).get('peak_rss_kb')} kB), budget_peak "
                  f"{(fs or {}).get('budget_peak')} / {(fs or {}).get('budget_limit')}, "
                  f"bulk_requests {stats.get('bulk_requests')}, shutdown {sl.stop_seconds:.2f}s")
            ck.check(rate == rate and rate > 0, f"throughput measured: {rate:,.0f} events/s")


if __name__ == "__main__":
    main()
