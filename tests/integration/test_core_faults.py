#!/usr/bin/python3
"""Fault matrix: each Elasticsearch failure mode against a fresh esemu + sluice (+ fresh consumer
group and dead-letter dir) reading the same 20,000 records from one mockkafka.

For every scenario a user must see: all records that Elasticsearch will eventually accept indexed
exactly once (no duplicates), the permanently rejected ones (item 400) in the dead-letter files with
status 400 / mapper_parsing_exception and exactly the seqs missing from Elasticsearch, final-stats
conservation, and dead_letter_lines == lines in the dead-letter files. esemu's own counters prove
the fault really fired."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

N = 20_000
PARTS = 8
TOPIC = "logs"

# name, faults posted before sluice starts, esemu counter that must show the fault fired, min value
SCENARIOS = [
    ("request-429x5", {"request_status": 429, "request_count": 5}, "injected_request_errors", 5),
    ("request-503x5", {"request_status": 503, "request_count": 5}, "injected_request_errors", 5),
    ("item-429-10pct", {"item_retryable_rate": 0.10, "item_retryable_status": 429},
     "injected_item_errors", 1),
    ("item-400-1pct", {"item_permanent_rate": 0.01, "item_permanent_status": 400},
     "permanent_item_errors", 1),
    ("reset-after-write-x3", {"reset_after_write_count": 3}, "resets_injected", 3),
    ("truncated-response-x3", {"truncate_response_count": 3}, "truncations_injected", 3),
    ("es-down-at-startup", None, None, 0),
]


def dl_seq(rec):
    try:
        return json.loads(rec["payload"])["seq"]
    except (KeyError, ValueError, TypeError):
        return None


def run(ck, procs, mk, name, faults, counter, min_count):
    H.log(f"--- scenario {name}")
    tag = f"[{name}] "
    wd = procs.tmpdir(prefix=f"it-faults-{name}-")
    group = f"sluice-faults-{name}"
    late = faults is None
    if late:
        port = H.free_port()
        es_url = f"http://127.0.0.1:{port}"
    else:
        es = procs.add(H.EsEmu(workdir=wd))
        es.faults(**faults)
        es_url = es.url
    cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es_url, workdir=wd, group=group)
    sl = procs.add(H.Sluice(cfg, wd))
    if late:
        ck.check(sl.wait_log(r"assigned \d+ partitions", 30), tag + "sluice got partitions")
        H.time.sleep(5)
        ck.check(sl.alive(), tag + "sluice keeps running while Elasticsearch is down",
                 sl.log_tail())
        es = procs.add(H.EsEmu(port=port, workdir=wd))
    dl_dir = os.path.join(wd, "dead-letter")
    deadline = H.time.monotonic() + 90
    last, moved = -1, H.time.monotonic()
    while H.time.monotonic() < deadline:
        total = es.docs() + len(H.dead_letters(dl_dir))
        if total >= N:
            break
        if total != last:
            last, moved = total, H.time.monotonic()
        elif H.time.monotonic() - moved > 40:
            break
        H.time.sleep(0.25)
    H.time.sleep(0.5)  # a few more ms for commits / a straggling duplicate to show up
    rc = sl.terminate(60)
    ck.eq(rc, 0, tag + "exit code after SIGTERM")
    fs = sl.final_stats()
    inp = H.check_conservation(ck, fs, label=tag)
    dls = H.dead_letters(dl_dir)
    stats = es.stats()
    docs = es.dump()
    r = H.seq_report(docs, range(N))
    dl_seqs = [dl_seq(d) for d in dls]
    missing = set(range(N)) - set(r["seen"])

    ck.check(r["dupes"] == 0 and r["docs"] == r["unique"],
             tag + f"no duplicate documents ({r['docs']} docs, {r['unique']} unique seqs)",
             r["dupes_ex"])
    ck.check(r["unexpected"] == 0 and r["no_seq"] == 0, tag + "no foreign documents")
    ck.check(set(dl_seqs) == missing and len(dl_seqs) == len(missing),
             tag + f"dead-lettered seqs == seqs missing from Elasticsearch "
             f"({len(dl_seqs)} dead letters, {len(missing)} missing)",
             f"missing not dead-lettered: {sorted(missing - set(dl_seqs))[:10]}; dead-lettered "
             f"but indexed: {sorted(set(dl_seqs) - missing)[:10]}")
    ck.eq(r["docs"] + len(dls), N, tag + "indexed + dead-lettered == produced")
    if fs:
        ck.eq(fs.get("dead_letter_lines"), len(dls), tag + "final-stats dead_letter_lines == "
              "dead-letter file lines")
    if inp:
        ck.eq(inp["received"], N, tag + "final-stats received")
        ck.eq(inp["dead_lettered"], len(dls), tag + "final-stats dead_lettered")
        ck.eq(inp["delivered"], r["docs"], tag + "final-stats delivered == documents")
    if counter:
        ck.check(int(stats.get(counter, 0)) >= min_count,
                 tag + f"esemu {counter} = {stats.get(counter)} (fault fired, >= {min_count})")
    if name == "item-400-1pct":
        ck.check(50 <= len(dls) <= 400, tag + f"about 1% dead-lettered ({len(dls)})")
        bad = [d for d in dls if d.get("status") != 400
               or d.get("error_type") != "mapper_parsing_exception"
               or d.get("reason") != "rejected by elasticsearch"
               or not (d.get("source") or {}).get("topic") == TOPIC
               or not d.get("error_reason")]
        ck.check(not bad, tag + "every dead letter: reason 'rejected by elasticsearch', status 400, "
                 "mapper_parsing_exception, error_reason, source coordinates", bad[:2])
        # The source coordinates must point at the record itself: _id-style p/offset of its seq.
        ck.check(all((d["source"]["partition"] == dl_seq(d) % PARTS) for d in dls if dl_seq(d)
                     is not None), tag + "dead letter source.partition == seq % 8")
        ck.eq(int(stats.get("permanent_item_errors", 0)), len(dls),
              tag + "esemu rejected each permanent record once (not retried)")
    else:
        ck.eq(len(dls), 0, tag + "no dead letters")
    rate = H.events_per_second(stats, r["docs"])
    H.log(f"RESULT {name}: docs {r['docs']}, dead letters {len(dls)}, conflicts_409 "
          f"{stats.get('conflicts_409')}, bulk_requests {stats.get('bulk_requests')}, "
          f"{counter}={stats.get(counter) if counter else '-'}, {rate:,.0f} events/s, "
          f"peak RSS {sl.rss.peak_hwm_kb} kB, shutdown {sl.stop_seconds:.2f}s")
    sl.kill()
    es.kill()


def main():
    ck = H.Checker("test_core_faults")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    only = os.environ.get("SLUICE_FAULTS_ONLY")
    try:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=[f"{TOPIC}:{PARTS}"], workdir=wd))
            mk.produce(TOPIC, N)
            ck.eq(mk.wait_produced(60), N, "records produced")
            H.check_low_watermarks(ck, mk, TOPIC)
            for name, faults, counter, min_count in SCENARIOS:
                if only and name not in only.split(","):
                    continue
                try:
                    run(ck, procs, mk, name, faults, counter, min_count)
                except Exception as e:
                    ck.crash(e)
            H.check_broker_dropped(ck, mk)
    except Exception as e:
        ck.crash(e)
    ck.finish()


if __name__ == "__main__":
    main()
