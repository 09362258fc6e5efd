#!/usr/bin/python3
# ctest-labels: reliability asan
# ctest-timeout: 1200  # RELIABILITY_LONG=1: 13 scenarios of 100,000 records and a 60 s stall
"""Fault matrix: each Elasticsearch failure mode against a fresh esemu + sluice (+ fresh consumer
group and dead-letter dir) reading the same 20,000 records from one mockkafka (the
document-too-large case reads its own topic of 2,000 records plus one 100 KB record).

For every scenario a user must see: all records that Elasticsearch will eventually accept indexed
exactly once (no duplicates), the permanently rejected ones (item 400, a document too large for
http.max_content_length) in the dead-letter files with their status and error and exactly the seqs
missing from Elasticsearch, final-stats conservation, dead_letter_lines == lines in the dead-letter
files, and committed offsets == high watermarks after SIGTERM. esemu's own counters prove the fault
really fired; sluice's retries{reason} counters (/metrics) prove it took the intended path (split,
timeout, 5xx...).

RELIABILITY_LONG=1 (make reliability RELIABILITY_LONG=1): every scenario reads 100,000 records
instead of 20,000 (12,500 per partition, about 3.2 MB, under the mock's 5 MiB per partition), the
document-too-large case 10,000 plus the 100 KB record, each scenario may take 240 s instead of
90 s, and the stall lasts 60 s instead of 5 s."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

LONG = os.environ.get("RELIABILITY_LONG") == "1"
N = 100_000 if LONG else 20_000
PARTS = 8
TOPIC = "logs"
INDEX = "logs-logs-2026.11.27"  # index: logs-${topic}-%Y.%m.%d of `time` (2026-11-27 + seq ms)
SANITIZED = os.environ.get("SLUICE_SANITIZED") == "1"
MEMORY_LIMIT_MIB = 16
# document too large: its own topic, M normal records then one of BIG_BYTES, under an esemu whose
# http.max_content_length (MAX_CONTENT) fits any batch of normal records but not that one record.
BIG_TOPIC = "big"
M = 10_000 if LONG else 2_000
BIG_BYTES = 100_000
MAX_CONTENT = 64 * 1024
BIG_PARTITION = 3
PREINDEX_EVERY = 10  # item 409: every 10th record's id is indexed before sluice starts (2,000)
TIMEOUT_S, DELAY_MS = 2, 3000  # a response that never comes (in time)
STALL_MS = 60_000 if LONG else 5_000
BASE_WAIT_S = 240 if LONG else 90  # per scenario, plus its wait_s


def sc(name, faults=None, counters=None, **kw):
    """One scenario. faults: posted to esemu before sluice starts (None: esemu starts only after
    sluice, on a port that refused connections meanwhile). counters: {esemu counter: minimum}.
    Optional: topic; es_args (esemu command line); output (extra output config); setup(ctx) before
    sluice starts; during(ctx) once it runs; extra(ctx) more checks at the end; dead ("item400",
    "item400-resent", "too_large" or None: no dead letter); retries {reason: minimum} from sluice's
    /metrics; conflicts (exact esemu conflicts_409); rss (peak RSS <= memory_limit + 16 MiB);
    wait_s (added to the no-progress tolerance and the deadline)."""
    d = dict(name=name, faults=faults, counters=counters or {}, topic=TOPIC, es_args=(),
             output=None, setup=None, during=None, extra=None, dead=None, retries={},
             conflicts=None, rss=False, wait_s=0)
    bad = set(kw) - set(d)
    if bad:
        raise ValueError(f"scenario {name}: unknown keys {bad}")
    d.update(kw)
    return d


# ---------------------------------------------------------------- scenario steps

def doc_id(seq):
    return f"{TOPIC}-{seq % PARTS}-{seq // PARTS}"  # produce: partition seq % 8, in seq order


def preindex(ctx):
    """Indexes every PREINDEX_EVERY-th record's id (op create, the id sluice will use) with a
    marker source, over plain HTTP, before sluice starts."""
    seqs = list(range(0, N, PREINDEX_EVERY))
    body = "".join(json.dumps({"create": {"_index": INDEX, "_id": doc_id(s)}}) + "\n" +
                   json.dumps({"seq": s, "preindexed": True}) + "\n" for s in seqs)
    st, data = ctx.es._req("POST", "/_bulk", body.encode(), port=ctx.es.port)
    r = json.loads(data)
    ctx.ck.check(st == 200 and not r.get("errors") and len(r.get("items", [])) == len(seqs),
                 ctx.tag + f"pre-indexed {len(seqs)} ids (HTTP {st})", data[:300])
    ctx.ck.eq(ctx.es.docs(), len(seqs), ctx.tag + "esemu docs before sluice starts")
    ctx.preindexed = set(seqs)
    ctx.conflicts = len(seqs)


def check_preindexed(ctx):
    pre = [d for d in ctx.docs if (d.get("_source") or {}).get("preindexed")]
    ctx.ck.eq(sorted(H.seq_of(d) for d in pre), sorted(ctx.preindexed),
              ctx.tag + "the pre-indexed documents are still there, unchanged (create never "
              "overwrites)")
    ctx.ck.check(all(d.get("_version") == 1 for d in ctx.docs), ctx.tag + "every document at "
                 "_version 1")
    wrong = [(d.get("_id"), H.seq_of(d)) for d in ctx.docs if d.get("_id") != doc_id(H.seq_of(d))]
    ctx.ck.check(not wrong, ctx.tag + "every _id is topic-partition-offset of its seq (so the "
                 "409s hit exactly the pre-indexed records)", wrong[:5])


def clear_after_timeout(ctx):
    """delay_ms applies to every bulk answer until cleared: keep it until sluice has timed out a
    request, then clear it."""
    ok = wait_until(lambda: retries(ctx.sl).get("timeout", 0) >= 1, 30)
    ctx.ck.check(ok, ctx.tag + f"sluice timed out a bulk request (request_timeout {TIMEOUT_S}s, "
                 f"answers {DELAY_MS} ms late) within 30 s")
    ctx.es.clear_faults()


def check_too_large(ctx):
    dls = ctx.dls
    if not ctx.ck.eq(len(dls), 1, ctx.tag + "exactly one dead letter"):
        return
    d = dls[0]
    ctx.ck.eq(dl_seq(d), ctx.big_seq, ctx.tag + "the dead letter is the 100 KB record")
    ctx.ck.check(d.get("reason") == "document too large" and d.get("status") == 413 and
                 d.get("error_type") == "request_entity_too_large" and d.get("error_reason"),
                 ctx.tag + "dead letter: reason 'document too large', status 413, "
                 "request_entity_too_large, error_reason", {k: d.get(k) for k in
                                                           ("reason", "status", "error_type")})
    src = d.get("source") or {}
    ctx.ck.check(src.get("topic") == BIG_TOPIC and src.get("partition") == BIG_PARTITION and
                 src.get("offset") == ctx.big_offset, ctx.tag + "dead letter source coordinates "
                 f"{BIG_TOPIC}/{BIG_PARTITION}/{ctx.big_offset}", src)
    ctx.ck.check(len(d.get("payload") or "") >= BIG_BYTES, ctx.tag + "the whole payload is in the "
                 f"dead letter ({len(d.get('payload') or '')} bytes)")


def check_item400(ctx, exact):
    dls, stats = ctx.dls, ctx.stats
    lo, hi = N // 400, N // 50  # 50..400 of 20,000 (0.25%..2% around the 1% rate)
    ctx.ck.check(lo <= len(dls) <= hi, ctx.tag + f"about 1% dead-lettered ({len(dls)}, "
                 f"{lo}..{hi})")
    bad = [d for d in dls if d.get("status") != 400
           or d.get("error_type") != "mapper_parsing_exception"
           or d.get("reason") != "rejected by elasticsearch"
           or not (d.get("source") or {}).get("topic") == TOPIC
           or not d.get("error_reason")]
    ctx.ck.check(not bad, ctx.tag + "every dead letter: reason 'rejected by elasticsearch', status "
                 "400, mapper_parsing_exception, error_reason, source coordinates", bad[:2])
    # The source coordinates must point at the record itself: _id-style p/offset of its seq.
    ctx.ck.check(all((d["source"]["partition"] == dl_seq(d) % PARTS) for d in dls
                     if dl_seq(d) is not None), ctx.tag + "dead letter source.partition == seq % 8")
    if exact:
        ctx.ck.eq(int(stats.get("permanent_item_errors", 0)), len(dls),
                  ctx.tag + "esemu rejected each permanent record once (not retried)")
    else:  # a reset or truncated answer makes sluice resend the whole request, 400s included
        ctx.ck.check(int(stats.get("permanent_item_errors", 0)) >= len(dls),
                     ctx.tag + f"esemu permanent_item_errors {stats.get('permanent_item_errors')}"
                     f" >= dead letters {len(dls)}")


SCENARIOS = [
    sc("request-429x5", {"request_status": 429, "request_count": 5},
       {"injected_request_errors": 5}, retries={"http_429": 5}),
    sc("request-503x5", {"request_status": 503, "request_count": 5},
       {"injected_request_errors": 5}, retries={"http_5xx": 5}),
    sc("request-500x5", {"request_status": 500, "request_count": 5},
       {"injected_request_errors": 5}, retries={"http_5xx": 5}),
    sc("item-429-10pct", {"item_retryable_rate": 0.10, "item_retryable_status": 429},
       {"injected_item_errors": 1}, retries={"item": 1}),
    sc("item-400-1pct", {"item_permanent_rate": 0.01, "item_permanent_status": 400},
       {"permanent_item_errors": 1}, dead="item400"),
    sc("item-409-preindexed", {}, setup=preindex, extra=check_preindexed),
    sc("request-413x3", {"request_status": 413, "request_count": 3},
       {"injected_request_errors": 3}, retries={"split_413": 3}),
    sc("doc-too-large", {}, {"status_413": 1}, topic=BIG_TOPIC,
       es_args=("--max-content-length", str(MAX_CONTENT)), retries={"split_413": 1},
       dead="too_large"),
    # A reset on a reused keep-alive connection before any answer byte is resent by libcurl
    # itself (7.88 Curl_retry_request: "Connection died, retrying a fresh connect"); sluice
    # counts that resend too (CURLOPT_PREREQFUNCTION runs again), so every reset is a retry.
    sc("reset-after-write-x3", {"reset_after_write_count": 3}, {"resets_injected": 3},
       retries={"transport": 3}),
    # A reused keep-alive connection closed with FIN and no answer after the documents were
    # written (what a proxy's idle timeout does): libcurl resends such a request on a fresh
    # connection by itself; sluice counts each resend (CURLOPT_PREREQFUNCTION runs again).
    sc("close-after-write-x3", {"close_after_write_count": 3}, {"closes_injected": 3},
       retries={"transport": 3}),
    sc("truncated-response-x3", {"truncate_response_count": 3}, {"truncations_injected": 3},
       retries={"transport": 3}),
    sc("response-never-comes", {"delay_ms": DELAY_MS}, {"conflicts_409": 1},
       output={"request_timeout": f"{TIMEOUT_S}s"}, during=clear_after_timeout,
       retries={"timeout": 1}),
    sc(f"stall-{STALL_MS // 1000}s", {"stall_ms": STALL_MS}, {"stalls_injected": 1}, rss=True,
       wait_s=STALL_MS / 1000),
    # Everything at once. request_status holds one status at a time, so the 413s come from
    # http.max_content_length: full batches (up to 512 KiB at memory_limit 16MiB) are refused
    # and split, smaller ones pass.
    sc("mixed", {"item_retryable_rate": 0.05, "item_retryable_status": 429,
                 "item_permanent_rate": 0.01, "item_permanent_status": 400,
                 "request_status": 503, "request_count": 3,
                 "reset_after_write_count": 2, "truncate_response_count": 2},
       {"injected_request_errors": 3, "resets_injected": 2, "truncations_injected": 2,
        "status_413": 1, "injected_item_errors": 1, "permanent_item_errors": 1},
       es_args=("--max-content-length", str(256 * 1024)),
       retries={"http_5xx": 3, "split_413": 1, "item": 1, "transport": 2},
       dead="item400-resent"),
    # The output asks the cluster what it is (GET /) before its first batch: that request is
    # retried (counted as setup) while batches wait for it, at most setup_timeout.
    sc("es-down-at-startup", None, retries={"setup": 1}),
]


# ---------------------------------------------------------------- helpers

def dl_seq(rec):
    try:
        return json.loads(rec["payload"])["seq"]
    except (KeyError, ValueError, TypeError):
        return None


def wait_until(cond, timeout_s, every_s=0.1):
    deadline = H.time.monotonic() + timeout_s
    while H.time.monotonic() < deadline:
        if cond():
            return True
        H.time.sleep(every_s)
    return cond()


def retries(sl):
    """sluice_output_retries_total{output="es"} by reason, from sluice's /metrics ({} if down)."""
    return {lab["reason"]: int(v) for lab, v in sl.metrics("sluice_output_retries_total")
            if lab.get("output") == "es"}


class Ctx:
    pass


# ---------------------------------------------------------------- one scenario

def run(ck, procs, mk, s, expected, big):
    name = s["name"]
    H.log(f"--- scenario {name}")
    ctx = Ctx()
    ctx.ck, ctx.tag, ctx.conflicts = ck, f"[{name}] ", s["conflicts"]
    ctx.big_seq, ctx.big_offset = big
    tag = ctx.tag
    topic = s["topic"]
    want = len(expected)
    wd = procs.tmpdir(prefix=f"it-faults-{name}-")
    group = f"sluice-faults-{name}"
    late = s["faults"] is None
    if late:
        port = H.free_port()
        es_url = f"http://127.0.0.1:{port}"
    else:
        ctx.es = es = procs.add(H.EsEmu(workdir=wd, extra=s["es_args"]))
        if s["setup"]:
            s["setup"](ctx)
        if s["faults"]:
            es.faults(**s["faults"])
        es_url = es.url
    cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es_url, workdir=wd, group=group,
                          topics=(topic,), memory_limit=f"{MEMORY_LIMIT_MIB}MiB",
                          output_extra=s["output"])
    ctx.sl = sl = procs.add(H.Sluice(cfg, wd))
    if late:
        ck.check(sl.wait_log(r"assigned \d+ partitions", 30), tag + "sluice got partitions")
        H.time.sleep(5)
        ck.check(sl.alive(), tag + "sluice keeps running while Elasticsearch is down",
                 sl.log_tail())
        ctx.es = es = procs.add(H.EsEmu(port=port, workdir=wd, extra=s["es_args"]))
    if s["during"]:
        s["during"](ctx)
    dl_dir = os.path.join(wd, "dead-letter")
    deadline = H.time.monotonic() + BASE_WAIT_S + s["wait_s"]
    last, moved = -1, H.time.monotonic()
    while H.time.monotonic() < deadline:
        total = es.docs() + len(H.dead_letters(dl_dir))
        if total >= want:
            break
        if total != last:
            last, moved = total, H.time.monotonic()
        elif H.time.monotonic() - moved > 40 + s["wait_s"]:
            break
        H.time.sleep(0.25)
    H.time.sleep(0.5)  # a few more ms for commits / a straggling duplicate to show up
    rt = retries(sl)
    rc = sl.terminate(60)
    ck.eq(rc, 0, tag + "exit code after SIGTERM")
    fs = sl.final_stats()
    inp = H.check_conservation(ck, fs, label=tag)
    ctx.dls = dls = H.dead_letters(dl_dir)
    ctx.stats = stats = es.stats()
    ctx.docs = docs = es.dump()
    r = H.seq_report(docs, expected)
    dl_seqs = [dl_seq(d) for d in dls]
    missing = set(expected) - set(r["seen"])

    ck.check(r["dupes"] == 0 and r["docs"] == r["unique"],
             tag + f"no duplicate documents ({r['docs']} docs, {r['unique']} unique seqs)",
             r["dupes_ex"])
    ck.check(r["unexpected"] == 0 and r["no_seq"] == 0, tag + "no foreign documents")
    ck.check(set(dl_seqs) == missing and len(dl_seqs) == len(missing),
             tag + f"dead-lettered seqs == seqs missing from Elasticsearch "
             f"({len(dl_seqs)} dead letters, {len(missing)} missing)",
             f"missing not dead-lettered: {sorted(missing - set(dl_seqs))[:10]}; dead-lettered "
             f"but indexed: {sorted(set(dl_seqs) - missing)[:10]}")
    ck.eq(r["docs"] + len(dls), want, tag + "indexed + dead-lettered == produced")
    if fs:
        ck.eq(fs.get("dead_letter_lines"), len(dls), tag + "final-stats dead_letter_lines == "
              "dead-letter file lines")
    if inp:
        ck.eq(inp["received"], want, tag + "final-stats received")
        ck.eq(inp["dead_lettered"], len(dls), tag + "final-stats dead_lettered")
        ck.eq(inp["delivered"], r["docs"], tag + "final-stats delivered == documents")
    wm = mk.watermarks(topic)
    com = mk.committed(group, topic)
    ck.check(all(com.get(p) == hi for p, (lo, hi) in wm.items()),
             tag + "committed offsets == high watermarks", f"committed {com} watermarks {wm}")
    for counter, min_count in s["counters"].items():
        ck.check(int(stats.get(counter, 0)) >= min_count,
                 tag + f"esemu {counter} = {stats.get(counter)} (fault fired, >= {min_count})")
    for reason, min_count in s["retries"].items():
        ck.check(rt.get(reason, 0) >= min_count, tag + f"sluice retries{{reason=\"{reason}\"}} = "
                 f"{rt.get(reason)} (>= {min_count})", rt)
    if ctx.conflicts is not None:
        ck.eq(int(stats.get("conflicts_409", -1)), ctx.conflicts,
              tag + "esemu conflicts_409 (each counted as delivered)")
    if s["dead"] == "item400":
        check_item400(ctx, exact=True)
    elif s["dead"] == "item400-resent":
        check_item400(ctx, exact=False)
    elif s["dead"] == "too_large":
        check_too_large(ctx)
    else:
        ck.eq(len(dls), 0, tag + "no dead letters")
    if s["rss"] and not SANITIZED:  # ASan's shadow memory makes RSS meaningless
        bound = (MEMORY_LIMIT_MIB + 16) * 1024
        ck.check(0 < sl.rss.peak_hwm_kb <= bound, tag + f"peak RSS {sl.rss.peak_hwm_kb} kB <= "
                 f"memory_limit + 16 MiB ({bound} kB)")
    if s["extra"]:
        s["extra"](ctx)
    rate = H.events_per_second(stats, r["docs"])
    fired = ", ".join(f"{c}={stats.get(c)}" for c in s["counters"]) or "-"
    H.log(f"RESULT {name}: docs {r['docs']}, dead letters {len(dls)}, conflicts_409 "
          f"{stats.get('conflicts_409')}, bulk_requests {stats.get('bulk_requests')}, "
          f"max_body_bytes {stats.get('max_body_bytes')}, {fired}, sluice retries "
          f"{ {k: v for k, v in rt.items() if v} }, {rate:,.0f} events/s, "
          f"peak RSS {sl.rss.peak_hwm_kb} kB, shutdown {sl.stop_seconds:.2f}s")
    sl.kill()
    es.kill()


def main():
    ck = H.Checker("test_core_faults")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    only = os.environ.get("SLUICE_FAULTS_ONLY")
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=[f"{TOPIC}:{PARTS}", f"{BIG_TOPIC}:{PARTS}"],
                                       workdir=wd))
            # seq is global in the mock: one job after the other keeps each topic's seqs a range
            mk.produce(TOPIC, N)
            ck.eq(mk.wait_produced(60), N, "records produced")
            mk.produce(BIG_TOPIC, M)
            ck.eq(mk.wait_produced(60), N + M, f"records produced (+{M} to {BIG_TOPIC})")
            big_seq = N + M
            big = json.dumps({"seq": big_seq, "time": "2026-11-27T00:00:00Z", "level": "INFO",
                              "message": "x" * BIG_BYTES})
            big_offset = mk.produce_raw(BIG_TOPIC, BIG_PARTITION, big)
            H.check_low_watermarks(ck, mk, TOPIC)
            H.check_low_watermarks(ck, mk, BIG_TOPIC)
            expected = {TOPIC: range(N), BIG_TOPIC: range(N, N + M + 1)}
            for s in SCENARIOS:
                if only and s["name"] not in only.split(","):
                    continue
                try:
                    run(ck, procs, mk, s, expected[s["topic"]], (big_seq, big_offset))
                except Exception as e:
                    ck.crash(e)
            H.check_broker_dropped(ck, mk)


if __name__ == "__main__":
    main()
