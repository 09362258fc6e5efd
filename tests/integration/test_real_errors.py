#!/usr/bin/python3
# ctest-labels: real
"""Real OpenSearch errors through sluice: Kafka (a real broker) -> sluice -> OpenSearch (a real
node), one scenario per kind of refusal a user meets, each checked by what the user would see.

1. mapping conflict: an index maps `n` as long; some records carry a string there. Exactly those
   are dead-lettered, with status 400, mapper_parsing_exception and OpenSearch's reason; every
   other record is one document; the group's committed offsets reach the high watermarks.
2. 429s: a node with one write thread and a write queue of one, an index of 3 shards, sluice with
   8 requests in flight of small batches (item-level 429 rejected_execution_exception inside
   HTTP 200), and a small indexing_pressure.memory.limit (whole-request 429). OpenSearch's own
   counters and sluice's retry metrics show the 429s happened; nothing is lost, nothing
   dead-lettered, nothing twice.
3. 413s: a node with http.max_content_length below sluice's batch size: sluice splits (its
   split_413 retries), every record arrives once, and the one record larger than the limit is
   dead-lettered with status 413.
4. write block: index.blocks.write set mid-stream for 20 s. OpenSearch answers each item 403
   cluster_block_exception; sluice holds the records (retries, no dead letter, no commit past
   them) and delivers every one once the block is lifted.

Each scenario has its own topic, consumer group, index and sluice; the node settings of 2 and 3
are static, so those get their own node (started after the previous one is stopped).
REAL_ERRORS_SCALE=F multiplies the record counts."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import realservers as R  # noqa: E402

SCALE = float(os.environ.get("REAL_ERRORS_SCALE") or 1)
PARTS = 4


def n_of(n):
    return max(100, int(n * SCALE))


def record(seq, scenario, n=None, pad=0):
    n = seq if n is None else n
    return json.dumps({"seq": seq, "scenario": scenario, "n": n, "level": "info",
                       "time": "2026-12-07T10:00:%02d.%03dZ" % (seq % 60, seq % 1000),
                       "message": "order %d accepted%s" % (seq, " " + "x" * pad if pad else "")},
                      separators=(",", ":"))


def dl_seq(d):
    try:
        return json.loads(d["payload"]).get("seq")
    except (KeyError, TypeError, ValueError):
        return None


def account(ck, osn, index, kafka, topic, dls, label):
    """Every record of the topic's log is exactly one of: a document of `index` (under the id of
    its coordinates) or a dead-letter line; nothing is both, nothing twice, nothing missing.
    Returns a summary dict."""
    osn.refresh(index)
    docs = osn.scan(index, source=["seq", "kafka"])
    log = R.log_offsets(kafka, topic, PARTS)
    doc_coords, bad_ids = {}, []
    for d in docs:
        m = d["_source"].get("kafka") or {}
        c = (m.get("partition"), m.get("offset"))
        doc_coords[c] = doc_coords.get(c, 0) + 1
        if d["_id"] != f"{topic}-{c[0]}-{c[1]}":
            bad_ids.append(d["_id"])
    dl_coords = {}
    for d in dls:
        s = d.get("source") or {}
        c = (s.get("partition"), s.get("offset"))
        if s.get("topic") == topic:
            dl_coords[c] = dl_coords.get(c, 0) + 1
    twice = [c for c, k in doc_coords.items() if k > 1] + [c for c, k in dl_coords.items() if k > 1]
    both = set(doc_coords) & set(dl_coords)
    missing = log - set(doc_coords) - set(dl_coords)
    extra = (set(doc_coords) | set(dl_coords)) - log
    ck.check(not missing, f"{label}: every record of the log is a document or a dead letter",
             f"{len(missing)} missing, e.g. {sorted(missing)[:5]}")
    ck.check(not twice and not both, f"{label}: none twice, none both document and dead letter",
             f"twice {twice[:5]}, both {sorted(both)[:5]}")
    ck.check(not extra, f"{label}: nothing from outside the log", sorted(extra)[:5])
    ck.check(not bad_ids, f"{label}: every _id is <topic>-<partition>-<offset>", bad_ids[:5])
    seqs = [d["_source"].get("seq") for d in docs]
    return {"records": len(log), "docs": len(docs), "dead_lettered": len(dls),
            "missing": len(missing), "dupes": len(twice) + len(both), "doc_seqs": seqs}


def same_seqs(ck, got, want, what):
    """got (a list) holds each seq of want exactly once and nothing else; reports counts and
    examples, not the lists."""
    want = set(want)
    seen = {}
    for s in got:
        seen[s] = seen.get(s, 0) + 1
    missing = sorted(want - set(seen))
    extra = sorted(s for s in seen if s not in want)
    twice = sorted(s for s, k in seen.items() if k > 1)
    return ck.check(not missing and not extra and not twice, f"{what} ({len(got)} of {len(want)})",
                    f"missing {len(missing)} e.g. {missing[:5]}, unexpected {len(extra)} e.g. "
                    f"{extra[:5]}, twice {len(twice)} e.g. {twice[:5]}")


def retries(sl):
    return {lab.get("reason"): v for lab, v in sl.metrics("sluice_output_retries_total")}


def metric(sl, name):
    return sum(v for _, v in sl.metrics(name))


def finish_sluice(ck, sl, label):
    """SIGTERM, exit code, conservation; returns the input's final counters."""
    ck.eq(sl.terminate(), 0, f"{label}: sluice exit code after SIGTERM")
    return H.check_conservation(ck, sl.final_stats(), label=f"{label}: ")


def wait_settled(ck, kafka, group, topic, label, timeout_s=90):
    ok, com, highs = R.wait_committed(kafka, group, topic, PARTS, timeout_s=timeout_s)
    ck.check(ok, f"{label}: the group's committed offsets reach the high watermarks",
             f"committed {com}, high {highs}")


def start_sluice(procs, wd, kafka, osn, name, out=None, service=None, memory_limit="32MiB"):
    swd = os.path.join(wd, name)
    os.makedirs(swd, exist_ok=True)
    o = {"index": f"errs-{name}", "retry_base": "50ms", "retry_max": "1s"}
    o.update(out or {})
    cfg = R.sluice_config(swd, kafka.bootstrap, osn.url, group=f"errs-{name}", topics=(name,),
                          memory_limit=memory_limit, out=o, service=service)
    return procs.add(H.Sluice(cfg, swd)), os.path.join(swd, "dead-letter")


# ------------------------------------------------------------------------------------ scenarios


def scenario_mapping(ck, procs, wd, kafka, osn, results):
    """A long field receives strings in 1 record of 500."""
    name = "mapping"
    n = n_of(20000)
    bad = {s for s in range(n) if s % 500 == 137}
    osn.ok("PUT", f"/errs-{name}", {"mappings": {"properties": {"n": {"type": "long"}}}})
    kafka.create_topic(name, PARTS)
    R.produce(kafka.bootstrap, name,
              [record(s, name, n=f"bad-{s}" if s in bad else None) for s in range(n)],
              partitions=lambda i: i % PARTS)
    sl, dl_dir = start_sluice(procs, wd, kafka, osn, name)
    R.wait_count(osn, f"errs-{name}", n - len(bad), timeout_s=120, stall_s=60, label=name)
    wait_settled(ck, kafka, f"errs-{name}", name, name)
    fs = finish_sluice(ck, sl, name)
    dls = H.dead_letters(dl_dir)
    acc = account(ck, osn, f"errs-{name}", kafka, name, dls, name)
    same_seqs(ck, [dl_seq(d) for d in dls], bad,
              f"{name}: the dead-lettered records are exactly those with a string in n")
    same_seqs(ck, acc["doc_seqs"], set(range(n)) - bad,
              f"{name}: every other record is one document")
    wrong = [d for d in dls
             if d.get("status") != 400 or d.get("error_type") != "mapper_parsing_exception"
             or f"failed to parse field [n] of type [long]" not in (d.get("error_reason") or "")
             or f"'bad-{dl_seq(d)}'" not in (d.get("error_reason") or "")]
    ck.check(dls and not wrong,
             f"{name}: each dead letter has status 400, mapper_parsing_exception and OpenSearch's "
             "reason naming the field and the value",
             wrong[:2])
    if dls:
        H.log(f"{name}: dead letter e.g. status {dls[0].get('status')} {dls[0].get('error_type')}: "
              f"{dls[0].get('error_reason')}")
    if fs:
        ck.eq((fs["delivered"], fs["dead_lettered"]), (n - len(bad), len(bad)),
              f"{name}: sluice counted delivered and dead-lettered")
    results[name] = acc


def scenario_429(ck, procs, wd, kafka, osn, results):
    name = "rejections"
    n = n_of(30000)
    osn.ok("PUT", f"/errs-{name}", {"settings": {"number_of_shards": 3}})
    kafka.create_topic(name, PARTS)
    R.produce(kafka.bootstrap, name, [record(s, name) for s in range(n)],
              partitions=lambda i: i % PARTS)
    before = node_rejections(osn)
    sl, dl_dir = start_sluice(procs, wd, kafka, osn, name,
                              out={"concurrency": 8, "batch_max_bytes": "24KiB",
                                   "batch_max_wait": "50ms"})
    R.wait_count(osn, f"errs-{name}", n, timeout_s=150, stall_s=60, label=name)
    wait_settled(ck, kafka, f"errs-{name}", name, name)
    rt = retries(sl)
    sent = metric(sl, "sluice_output_items_sent_total")
    after = node_rejections(osn)
    fs = finish_sluice(ck, sl, name)
    item_429 = len(sl.lines(r"items failed transiently \(first status 429\)"))
    whole_429 = len(sl.lines(r"answered HTTP 429"))
    write_rej = after["write"] - before["write"]
    press_rej = after["pressure"] - before["pressure"]
    H.log(f"{name}: OpenSearch write-pool rejections {write_rej}, indexing-pressure rejections "
          f"{press_rej}; sluice retries {rt}, items sent {sent:.0f} for {n} records, log lines: "
          f"item 429 {item_429}, whole 429 {whole_429}")
    ck.check(write_rej > 0, f"{name}: OpenSearch rejected writes in its write pool ({write_rej})")
    ck.check(rt.get("item", 0) > 0 and item_429 > 0,
             f"{name}: sluice resent items refused with 429 inside HTTP 200 "
             f"(retries item={rt.get('item')}, {item_429} log lines)")
    ck.check(press_rej > 0 and rt.get("http_429", 0) > 0,
             f"{name}: whole requests refused with 429 by indexing pressure were resent "
             f"(node rejections {press_rej}, retries http_429={rt.get('http_429')})")
    ck.check(sent > n,
             f"{name}: items sent ({sent:.0f}) > records ({n}): rejected items were resent")
    dls = H.dead_letters(dl_dir)
    ck.eq(len(dls), 0, f"{name}: nothing dead-lettered")
    if fs:
        ck.eq((fs["delivered"], fs["dead_lettered"]), (n, 0),
              f"{name}: sluice counted every record delivered")
    rep = R.check_index_is_log(ck, osn, f"errs-{name}", kafka, name, PARTS, range(n),
                               label=f"{name}: ")
    results[name] = {"records": n, "docs": rep["docs"], "dead_lettered": len(dls),
                     "missing": rep["missing"], "dupes": rep["dupes"],
                     "write_rejections": write_rej, "pressure_rejections": press_rej,
                     "retries": rt}


def node_rejections(osn):
    st = osn.ok("GET", "/_nodes/stats/thread_pool,indexing_pressure")
    node = next(iter(st["nodes"].values()))
    write = node["thread_pool"]["write"]["rejected"]
    mem = node.get("indexing_pressure", {}).get("memory", {}).get("total", {})
    return {"write": write, "pressure": mem.get("coordinating_rejections", 0)
            + mem.get("primary_rejections", 0)}


def scenario_413(ck, procs, wd, kafka, osn, limit, results):
    name = "toolarge"
    n = n_of(20000)
    big_seq = n // 2
    kafka.create_topic(name, PARTS)
    # the big record is bigger than the limit on its own: a request holding only it is refused
    recs = [record(s, name, pad=limit + 50_000 if s == big_seq else 0) for s in range(n)]
    R.produce(kafka.bootstrap, name, recs, partitions=lambda i: i % PARTS)
    sl, dl_dir = start_sluice(procs, wd, kafka, osn, name, memory_limit="64MiB",
                              out={"batch_max_bytes": "1MiB", "batch_max_wait": "500ms"})
    R.wait_count(osn, f"errs-{name}", n - 1, timeout_s=120, stall_s=60, label=name)
    wait_settled(ck, kafka, f"errs-{name}", name, name)
    rt = retries(sl)
    fs = finish_sluice(ck, sl, name)
    H.log(f"{name}: sluice retries {rt}")
    ck.check(rt.get("split_413", 0) > 0,
             f"{name}: requests refused with 413 were split (split_413={rt.get('split_413')})")
    dls = H.dead_letters(dl_dir)
    acc = account(ck, osn, f"errs-{name}", kafka, name, dls, name)
    ck.eq([dl_seq(d) for d in dls], [big_seq],
          f"{name}: the one record larger than http.max_content_length is dead-lettered")
    d = dls[0] if len(dls) == 1 else {}
    H.log(f"{name}: its dead letter: reason {d.get('reason')!r}, status {d.get('status')}, "
          f"{d.get('error_type')}: {d.get('error_reason')}")
    ck.check(d.get("status") == 413 and d.get("reason") and d.get("error_type"),
             f"{name}: its dead letter has status 413, a reason and an error type",
             {k: d.get(k) for k in ("reason", "status", "error_type")})
    same_seqs(ck, acc["doc_seqs"], set(range(n)) - {big_seq},
              f"{name}: every other record is one document")
    if fs:
        ck.eq((fs["delivered"], fs["dead_lettered"]), (n - 1, 1),
              f"{name}: sluice counted delivered and dead-lettered")
    acc["retries"] = rt
    results[name] = acc


def scenario_write_block(ck, procs, wd, kafka, osn, results, hold_s=20):
    name = "blocked"
    n = n_of(20000)
    half = n // 2
    osn.ok("PUT", f"/errs-{name}", {})
    kafka.create_topic(name, PARTS)
    R.produce(kafka.bootstrap, name, [record(s, name) for s in range(half)],
              partitions=lambda i: i % PARTS)
    sl, dl_dir = start_sluice(procs, wd, kafka, osn, name)
    got = R.wait_count(osn, f"errs-{name}", half, timeout_s=120, stall_s=60, label=name)
    ck.eq(got, half, f"{name}: first half indexed before the block")
    wait_settled(ck, kafka, f"errs-{name}", name, name)
    osn.ok("PUT", f"/errs-{name}/_settings", {"index.blocks.write": True})
    # what OpenSearch answers a write to the blocked index, and how sluice takes it
    st, probe = osn.req("POST", "/_bulk", '{"create":{"_index":"errs-%s","_id":"probe"}}\n{}\n'
                        % name, ndjson=True)
    item = (probe.get("items") or [{}])[0].get("create", {}) if isinstance(probe, dict) else {}
    H.log(f"{name}: a write to the blocked index: HTTP {st}, item {item.get('status')} "
          f"{(item.get('error') or {}).get('type')}: {(item.get('error') or {}).get('reason')}")
    ck.check(st == 200 and item.get("status") == 403
             and (item.get("error") or {}).get("type") == "cluster_block_exception",
             f"{name}: OpenSearch refuses each item with 403 cluster_block_exception", probe)
    t_block = time.monotonic()
    R.produce(kafka.bootstrap, name, [record(s, name) for s in range(half, n)],
              partitions=lambda i: i % PARTS)
    held = sl.wait_log(r"items failed transiently \(first status 403\)", timeout_s=hold_s)
    ck.check(held, f"{name}: sluice retries the refused items (log: first status 403)")
    time.sleep(max(0, hold_s - (time.monotonic() - t_block)))
    osn.refresh(f"errs-{name}")
    during_docs = osn.count(f"errs-{name}")
    during_dl = len(H.dead_letters(dl_dir))
    com = kafka.committed(f"errs-{name}", name, PARTS)
    highs = {p: hi for p, (lo, hi) in kafka.watermarks(name, PARTS).items()}
    ck.eq(during_docs, half, f"{name}: nothing indexed while the block held ({hold_s}s)")
    ck.eq(during_dl, 0, f"{name}: nothing dead-lettered while the block held")
    ck.check(sum(com.values()) <= half,
             f"{name}: no offset committed past the held records ({sum(com.values())} committed, "
             f"{sum(highs.values())} in the log)")
    ck.check(sl.alive(), f"{name}: sluice still running after {hold_s}s of 403s")
    rt_during = retries(sl)
    osn.ok("PUT", f"/errs-{name}/_settings", {"index.blocks.write": None})
    t_lift = time.monotonic()
    got = R.wait_count(osn, f"errs-{name}", n, timeout_s=120, stall_s=60, label=name)
    H.log(f"{name}: all {got} documents {time.monotonic() - t_lift:.1f}s after the block was "
          f"lifted; retries during the block {rt_during}")
    wait_settled(ck, kafka, f"errs-{name}", name, name)
    fs = finish_sluice(ck, sl, name)
    dls = H.dead_letters(dl_dir)
    ck.eq(len(dls), 0, f"{name}: nothing dead-lettered")
    ck.check(rt_during.get("item", 0) > 0, f"{name}: item retries counted during the block "
             f"({rt_during.get('item')})")
    if fs:
        ck.eq((fs["delivered"], fs["dead_lettered"]), (n, 0),
              f"{name}: sluice counted every record delivered")
    rep = R.check_index_is_log(ck, osn, f"errs-{name}", kafka, name, PARTS, range(n),
                               label=f"{name}: ")
    results[name] = {"records": n, "docs": rep["docs"], "dead_lettered": len(dls),
                     "missing": rep["missing"], "dupes": rep["dupes"], "retries": rt_during}


def main():
    ck = H.Checker("test_real_errors")
    H.require_binaries(H.SLUICE_BIN)
    results = {}
    servers = []
    try:
        with H.Procs() as procs:
            wd = procs.tmpdir("real-errors-")
            kafka = procs.add(R.KafkaServer(os.path.join(wd, "kafka")))
            servers.append(kafka)

            osn = procs.add(R.OpenSearch(os.path.join(wd, "os-plain")))
            servers.append(osn)
            scenario_mapping(ck, procs, wd, kafka, osn, results)
            scenario_write_block(ck, procs, wd, kafka, osn, results)
            osn.rss_kb()
            osn.stop()

            # one write thread, a queue of one: shard requests beyond two are refused (item
            # 429); indexing pressure refuses whole requests when about 4 are in flight
            osn = procs.add(R.OpenSearch(os.path.join(wd, "os-429"), settings={
                "thread_pool.write.size": 1, "thread_pool.write.queue_size": 1,
                "indexing_pressure.memory.limit": "160kb"}))
            servers.append(osn)
            scenario_429(ck, procs, wd, kafka, osn, results)
            osn.rss_kb()
            osn.stop()

            limit = 200 * 1024
            osn = procs.add(R.OpenSearch(os.path.join(wd, "os-413"),
                                         settings={"http.max_content_length": "200kb"}))
            servers.append(osn)
            scenario_413(ck, procs, wd, kafka, osn, limit, results)
            osn.rss_kb()
            osn.stop()
            kafka.rss_kb()
    except Exception as e:
        ck.crash(e)
    for name, r in results.items():
        H.log(f"result {name}: records {r['records']}, documents {r['docs']}, dead-lettered "
              f"{r['dead_lettered']}, missing {r['missing']}, duplicates {r['dupes']}")
    if servers:
        H.log("servers: " + R.server_rss_report(*servers))
    ck.finish()


if __name__ == "__main__":
    main()
