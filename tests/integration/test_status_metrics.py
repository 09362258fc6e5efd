#!/usr/bin/python3
"""Status server under faults: what /metrics, /status and /healthz tell an
operator while sluice ships 40,000 records through a misbehaving Elasticsearch, and whether it is
the truth.

esemu injects 10% retryable item errors (429), 1% permanent item errors (400) and two connection
resets after a bulk request was stored. mockkafka streams the records while sluice consumes them
(`group=` throttling keeps each partition's backlog small), so the scrapes see a moving pipeline.

Every ~0.5 s the test scrapes /metrics (parsed with prometheus_client's parser, independent of
sluice's renderer), /status and /healthz, and checks at EVERY scrape:
  - received == delivered + dead_lettered + dropped + in_flight (summed over labels);
  - no counter sample (histogram buckets, _sum and _count included) ever decreases;
  - the latency histogram is well formed (cumulative buckets, +Inf == _count) and its _count lags
    sluice_output_requests_total by at most `concurrency` transfers (elasticsearch.c observes the
    latency in on_done for every completed transfer, failed ones included; requests is counted
    when a transfer starts);
  - budget used <= limit + one batch (the documented overshoot), and so is used + cached (idle
    pooled batches), limit constant;
  - the RSS gauge is within 20% of /proc/PID/status VmRSS read right after;
  - /status counters lie between the two /metrics scrapes around it; /healthz answers 200 "ok".
At the end (everything finished and committed): delivered == documents in esemu, dead-lettered ==
dead_letter_lines == lines in the dead-letter files == seqs missing from esemu (the same seqs),
retries item > 0 and transport >= the resets esemu injected, requests/items/bytes == what esemu
received, histogram _count == requests, per-partition gauges for all partitions with lag 0 and
committed == high watermark == mockkafka's, and /status agrees with /metrics exactly.

/healthz 503 is not exercised: the stall threshold is the constant stall_after_ms = 60000 in
src/main.c (no config key), too long for this test."""
import json
import os
import re
import sys
import threading
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # Debian python3-prometheus-client; scripts/install-deps.sh installs it
    text_string_to_metric_families = None

N = 40_000
PARTS = 8
TOPIC = "logs"
GROUP = "sluice-status-metrics"
CONCURRENCY = 4
MEMORY_LIMIT = 8 * H.MIB
BUDGET_LIMIT = MEMORY_LIMIT // 8 * 3  # src/main.c: sl_pipeline_init(..., limit / 8 * 3, ...)
BATCH_MAX = 1 * H.MIB
SCRAPE_EVERY = 0.5
FAULTS = {"item_retryable_rate": 0.1, "item_permanent_rate": 0.01, "reset_after_write_count": 2}

# name -> (type as prometheus_client reports it, label names); from src/main.c metrics_setup*.
PART_LABELS = ("input", "topic", "partition")
FAMILIES = {
    "sluice_records_received": ("counter", ("input",)),
    "sluice_records_delivered": ("counter", ("input",)),
    "sluice_records_dead_lettered": ("counter", ("input",)),
    "sluice_records_dropped": ("counter", ("input",)),
    "sluice_records_in_flight": ("gauge", ("input",)),
    "sluice_dead_letter_lines": ("counter", ()),
    "sluice_budget_used_bytes": ("gauge", ()),
    "sluice_budget_cached_bytes": ("gauge", ()),
    "sluice_budget_limit_bytes": ("gauge", ()),
    "sluice_process_resident_memory_bytes": ("gauge", ()),
    "sluice_kafka_partition_committed_offset": ("gauge", PART_LABELS),
    "sluice_kafka_partition_high_watermark": ("gauge", PART_LABELS),
    "sluice_kafka_partition_lag": ("gauge", PART_LABELS),
    "sluice_kafka_partition_paused": ("gauge", PART_LABELS),
    "sluice_kafka_partition_pauses": ("counter", ("input",)),
    "sluice_output_requests": ("counter", ("output",)),
    "sluice_output_items_sent": ("counter", ("output",)),
    "sluice_output_sent_bytes": ("counter", ("output",)),
    "sluice_output_records_delivered": ("counter", ("output",)),
    "sluice_output_records_dead_lettered": ("counter", ("output",)),
    "sluice_output_retries": ("counter", ("output", "reason")),
    "sluice_output_request_duration_seconds": ("histogram", ("output",)),
}

# /status keys documented at the top of src/core/http.h
STATUS_TOP = {"time_ms", "uptime_ms", "inputs", "outputs", "budget", "rss_bytes",
              "dead_letter_lines", "health"}
STATUS_INPUT = {"name", "received", "delivered", "dead_lettered", "dropped", "in_flight", "paused",
                "paused_ms", "partitions"}
STATUS_PART = {"topic", "partition", "committed", "high_watermark", "lag", "paused"}
STATUS_OUTPUT = {"name", "requests", "retries", "bytes_sent", "delivered", "dead_lettered",
                 "in_flight"}


def http_get(port, path, timeout=5):
    """(status, body text); (None, error text) when the request itself failed."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except Exception as e:  # connection refused, timeout...
        return None, repr(e)


class Scrape:
    """One parsed /metrics answer: samples[(sample name, frozenset(labels))] = value."""

    def __init__(self, text):
        self.text = text
        self.types = {}
        self.labels = {}
        self.samples = {}
        for fam in text_string_to_metric_families(text):
            self.types[fam.name] = fam.type
            for s in fam.samples:
                self.labels.setdefault(fam.name, set()).add(
                    tuple(sorted(k for k in s.labels if k != "le")))
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def series(self, name):
        """[(labels dict, value)] of one sample name."""
        return [(dict(k[1]), v) for k, v in self.samples.items() if k[0] == name]

    def sum(self, name, **match):
        return sum(v for lab, v in self.series(name)
                   if all(lab.get(k) == w for k, w in match.items()))

    def one(self, name, **match):
        vals = [v for lab, v in self.series(name) if all(lab.get(k) == w for k, w in match.items())]
        return vals[0] if len(vals) == 1 else None

    def partitions(self, name):
        return {int(lab["partition"]): v for lab, v in self.series(name)
                if lab.get("topic") == TOPIC}


class Scraper(threading.Thread):
    """Scrapes /metrics, /status, /metrics again, /healthz every SCRAPE_EVERY s and checks the
    per-scrape invariants; violations are collected (first few kept as evidence)."""

    def __init__(self, port, pid):
        super().__init__(daemon=True)
        self.port, self.pid = port, pid
        self.halt = threading.Event()
        self.n = 0
        self.prev = None
        self.errors = {}  # invariant -> [count, first examples]
        self.first_status = None
        self.health = []  # (status code, body)
        self.max_budget = 0
        self.max_inflight = 0
        self.max_hist_lag = 0
        self.max_rss_diff = 0.0
        self.saw_inflight = False

    def bad(self, what, example):
        e = self.errors.setdefault(what, [0, []])
        e[0] += 1
        if len(e[1]) < 3:
            e[1].append(example)

    def scrape(self):
        st, text = http_get(self.port, "/metrics")
        if st != 200:
            self.bad("GET /metrics answers 200", (st, text[:200]))
            return None
        try:
            return Scrape(text)
        except Exception as e:
            self.bad("every scrape parses", repr(e))
            return None

    def one_round(self):
        m1 = self.scrape()
        vmrss_kb = H.proc_status(self.pid).get("VmRSS")
        st, body = http_get(self.port, "/status")
        status = None
        if st != 200:
            self.bad("GET /status answers 200", (st, body[:200]))
        else:
            try:
                status = json.loads(body)
                if self.first_status is None:
                    self.first_status = status
            except ValueError as e:
                self.bad("/status is JSON", (repr(e), body[:200]))
        m2 = self.scrape()
        self.health.append(http_get(self.port, "/healthz"))
        for m in (m1, m2):
            if m is not None:
                self.check_scrape(m)
        if m1 and vmrss_kb:
            rss = m1.one("sluice_process_resident_memory_bytes")
            diff = abs(rss - vmrss_kb * 1024) / (vmrss_kb * 1024) if rss is not None else 1
            self.max_rss_diff = max(self.max_rss_diff, diff)
            if diff > 0.2:
                self.bad("RSS gauge within 20% of VmRSS", (rss, vmrss_kb * 1024))
        if m1 and m2 and status:
            self.check_status_between(m1, status, m2)

    def check_scrape(self, m):
        self.n += 1
        recv = m.sum("sluice_records_received_total")
        done = (m.sum("sluice_records_delivered_total")
                + m.sum("sluice_records_dead_lettered_total")
                + m.sum("sluice_records_dropped_total"))
        infl = m.sum("sluice_records_in_flight")
        if infl > 0:
            self.saw_inflight = True
        self.max_inflight = max(self.max_inflight, infl)
        if recv != done + infl:
            self.bad("received == delivered + dead_lettered + dropped + in_flight",
                     (recv, done, infl))
        # counters (and histogram parts) never decrease between consecutive scrapes
        if self.prev is not None:
            for key, v in m.samples.items():
                name = key[0]
                if not (name.endswith(("_total", "_bucket", "_count", "_sum"))):
                    continue
                old = self.prev.samples.get(key)
                if old is None:
                    self.bad("no counter series disappears or appears late", key)
                elif v < old:
                    self.bad("counters never decrease", (name, dict(key[1]), old, v))
        self.prev = m
        # histogram: cumulative buckets, +Inf == count, count <= requests <= count + concurrency
        h = "sluice_output_request_duration_seconds"
        buckets = sorted(((float(lab["le"]), v) for lab, v in m.series(h + "_bucket")),
                         key=lambda t: t[0])
        counts = [v for _, v in buckets]
        cnt = m.one(h + "_count", output="es")
        if not buckets or counts != sorted(counts) or buckets[-1][0] != float("inf") \
                or buckets[-1][1] != cnt:
            self.bad("histogram buckets cumulative and +Inf == _count", (buckets, cnt))
        req = m.one("sluice_output_requests_total", output="es")
        if req is None or cnt is None or not 0 <= req - cnt <= CONCURRENCY:
            self.bad(f"0 <= requests - histogram _count <= concurrency {CONCURRENCY}", (req, cnt))
        else:
            self.max_hist_lag = max(self.max_hist_lag, req - cnt)
        used = m.one("sluice_budget_used_bytes")
        cached = m.one("sluice_budget_cached_bytes")
        limit = m.one("sluice_budget_limit_bytes")
        self.max_budget = max(self.max_budget, used or 0)
        if limit != BUDGET_LIMIT or used is None or used > limit + BATCH_MAX:
            self.bad("budget used <= limit + one batch", (used, limit))
        # idle pooled batches count against the limit too (they are freed before it is passed)
        if cached is None or used + cached > limit + BATCH_MAX:
            self.bad("budget used + cached <= limit + one batch", (used, cached, limit))

    def check_status_between(self, m1, s, m2):
        ins, outs = s.get("inputs") or [{}], s.get("outputs") or [{}]
        pairs = [
            ("sluice_records_received_total", ins[0].get("received")),
            ("sluice_records_delivered_total", ins[0].get("delivered")),
            ("sluice_records_dead_lettered_total", ins[0].get("dead_lettered")),
            ("sluice_dead_letter_lines_total", s.get("dead_letter_lines")),
            ("sluice_output_requests_total", outs[0].get("requests")),
            ("sluice_output_sent_bytes_total", outs[0].get("bytes_sent")),
            ("sluice_output_records_delivered_total", outs[0].get("delivered")),
        ]
        for name, sv in pairs:
            a, b = m1.sum(name), m2.sum(name)
            if sv is None or not a <= sv <= b:
                self.bad("/status counters between the /metrics scrapes before and after it",
                         (name, a, sv, b))
        r = ins[0].get("received", 0) - ins[0].get("delivered", 0) - \
            ins[0].get("dead_lettered", 0) - ins[0].get("dropped", 0)
        if r != ins[0].get("in_flight"):
            self.bad("/status received == delivered + dead_lettered + dropped + in_flight",
                     ins[0])

    def run(self):
        while not self.halt.is_set():
            try:
                self.one_round()
            except Exception as e:
                self.bad("no scrape round raised", repr(e))
            self.halt.wait(SCRAPE_EVERY)

    def stop(self):
        self.halt.set()
        self.join(timeout=30)


def dl_seq(rec):
    try:
        return json.loads(rec["payload"])["seq"]
    except (KeyError, ValueError, TypeError):
        return None


def main():
    ck = H.Checker("test_status_metrics")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    if text_string_to_metric_families is None:
        ck.check(False, "prometheus_client importable (apt-get install python3-prometheus-client)")
        ck.finish()
    with ck:
        with H.Procs() as procs:
            run(ck, procs)


def run(ck, procs):
    wd = procs.tmpdir(prefix="it-status-metrics-")
    mk = procs.add(H.MockKafka(topics=[f"{TOPIC}:{PARTS}"], workdir=wd))
    es = procs.add(H.EsEmu(workdir=wd))
    es.faults(**FAULTS)
    cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd, group=GROUP,
                          memory_limit="8MiB", batch_max_bytes="1MiB", concurrency=CONCURRENCY)
    port = H.status_port(cfg)
    sl = procs.add(H.Sluice(cfg, wd))
    ck.check(sl.wait_log(r"status server on", 15), "log says the status server started",
             sl.log_tail())
    # Stream: each partition's uncommitted backlog stays under ~256 KiB (~1000 records), so the
    # producer follows the consumer's commits and the run lasts several seconds.
    mk.produce(TOPIC, N, group=GROUP, max_lag_bytes=256 * 1024)
    scr = Scraper(port, sl.pid)
    scr.start()

    dl_dir = os.path.join(wd, "dead-letter")
    deadline = H.time.monotonic() + 150
    last, moved, m = None, H.time.monotonic(), None
    while H.time.monotonic() < deadline:
        st, text = http_get(port, "/metrics")
        m = Scrape(text) if st == 200 else None
        if m is not None:
            cur = (m.sum("sluice_records_received_total"), m.sum("sluice_records_in_flight"),
                   m.sum("sluice_kafka_partition_lag"))
            if cur[0] >= N and cur[1] == 0 and cur[2] == 0 and \
                    len(m.series("sluice_kafka_partition_lag")) == PARTS:
                break
            if cur != last:
                last, moved = cur, H.time.monotonic()
            elif H.time.monotonic() - moved > 40:
                H.log(f"no progress for 40 s: received, in flight, lag = {cur}")
                break
        H.time.sleep(0.5)
    H.time.sleep(1.2)  # one more scrape round at rest
    scr.stop()
    H.log(f"scrapes: {scr.n}, max in flight {scr.max_inflight:.0f}, max budget used "
          f"{scr.max_budget:.0f} of {BUDGET_LIMIT}, max requests - hist count "
          f"{scr.max_hist_lag:.0f}, max RSS gauge deviation {100 * scr.max_rss_diff:.1f}%")

    # ---- every scrape
    ck.check(scr.n >= 20, f"scraped /metrics many times during the run ({scr.n} scrapes)")
    ck.check(scr.saw_inflight, "some scrape saw records in flight (the pipeline was moving)")
    invariants = [
        "GET /metrics answers 200", "every scrape parses",
        "received == delivered + dead_lettered + dropped + in_flight",
        "counters never decrease", "no counter series disappears or appears late",
        "histogram buckets cumulative and +Inf == _count",
        f"0 <= requests - histogram _count <= concurrency {CONCURRENCY}",
        "budget used <= limit + one batch", "budget used + cached <= limit + one batch",
        "RSS gauge within 20% of VmRSS",
        "GET /status answers 200", "/status is JSON",
        "/status counters between the /metrics scrapes before and after it",
        "/status received == delivered + dead_lettered + dropped + in_flight",
        "no scrape round raised",
    ]
    for what in invariants:
        n, ex = scr.errors.get(what, [0, []])
        ck.check(n == 0, f"at every scrape: {what}", f"{n} violations, e.g. {ex}")
    for what in set(scr.errors) - set(invariants):
        ck.check(False, what, scr.errors[what])
    bad_health = [h for h in scr.health if h != (200, "ok\n")]
    ck.check(scr.health and not bad_health,
             f"/healthz answered 200 'ok' at all {len(scr.health)} polls of the healthy run",
             bad_health[:3])

    # ---- the final scrape, at rest
    if not ck.check(m is not None, "final /metrics scrape"):
        return
    ck.check(set(FAMILIES) <= set(m.types), "every metric family of main.c is exported",
             sorted(set(FAMILIES) - set(m.types)))
    wrong = {n: (m.types.get(n), sorted(m.labels.get(n, ()))) for n, (t, labels) in FAMILIES.items()
             if m.types.get(n) != t or m.labels.get(n) != {tuple(sorted(labels))}}
    ck.check(not wrong, "every family has the type and label names main.c declares", wrong)

    recv = m.sum("sluice_records_received_total")
    delivered = m.sum("sluice_records_delivered_total")
    dead = m.sum("sluice_records_dead_lettered_total")
    dl_lines = m.one("sluice_dead_letter_lines_total")
    ck.eq(recv, N, "sluice_records_received_total at the end")
    ck.eq(m.sum("sluice_records_in_flight"), 0, "sluice_records_in_flight at the end")
    ck.eq(m.sum("sluice_records_dropped_total"), 0, "sluice_records_dropped_total")

    stats = es.stats()
    docs = es.dump()
    dls = H.dead_letters(dl_dir)
    r = H.seq_report(docs, range(N))
    missing = set(range(N)) - set(r["seen"])
    dl_seqs = [dl_seq(d) for d in dls]
    ck.eq(delivered, stats["docs"], "sluice_records_delivered_total == documents in esemu")
    ck.check(r["dupes"] == 0 and r["docs"] == r["unique"] and r["unexpected"] == 0,
             f"esemu holds distinct produced seqs only ({r['docs']} docs)", r["dupes_ex"])
    ck.check(dead > 0, f"the 1% permanent fault dead-lettered records ({dead:.0f})")
    ck.eq(dl_lines, dead, "sluice_dead_letter_lines_total == sluice_records_dead_lettered_total")
    ck.eq(len(dls), dead, "dead-letter file lines == sluice_records_dead_lettered_total")
    ck.check(set(dl_seqs) == missing and len(dl_seqs) == len(missing),
             f"dead-lettered seqs == seqs missing from esemu ({len(dl_seqs)} dead letters, "
             f"{len(missing)} missing)",
             f"missing, not dead-lettered: {sorted(missing - set(dl_seqs))[:10]}; dead-lettered "
             f"but indexed: {sorted(set(dl_seqs) - missing)[:10]}")
    not400 = [d for d in dls if d.get("status") != 400
              or d.get("error_type") != "mapper_parsing_exception"]
    ck.check(not not400, "every dead letter is esemu's permanent 400 mapper_parsing_exception",
             not400[:2])
    # esemu counts a permanent rejection per attempt; a reset-after-write batch is sent twice
    ck.check(int(stats["permanent_item_errors"]) >= dead,
             f"esemu permanent_item_errors {stats['permanent_item_errors']} >= dead-lettered "
             f"{dead:.0f}")

    retr = {lab["reason"]: v for lab, v in m.series("sluice_output_retries_total")}
    ck.check(retr.get("item", 0) > 0, f"retries{{reason=item}} > 0 ({retr.get('item')}; esemu "
             f"injected_item_errors {stats['injected_item_errors']})")
    ck.check(retr.get("item", 0) <= int(stats["injected_item_errors"]),
             "item retries (batches) <= items esemu failed transiently")
    ck.eq(int(stats["resets_injected"]), 2, "esemu resets_injected")
    ck.check(retr.get("transport", 0) >= int(stats["resets_injected"]),
             f"retries{{reason=transport}} {retr.get('transport')} >= resets injected "
             f"{stats['resets_injected']}")

    req = m.one("sluice_output_requests_total", output="es")
    hcount = m.one("sluice_output_request_duration_seconds_count", output="es")
    hsum = m.one("sluice_output_request_duration_seconds_sum", output="es")
    ck.eq(hcount, req, "latency histogram _count == sluice_output_requests_total at rest "
          "(observed in on_done for every completed transfer, failed ones too)")
    ck.check(hsum is not None and 0 < hsum < 60 * req,
             f"latency histogram _sum plausible ({hsum} s over {req} requests)")
    ck.eq(req, int(stats["bulk_requests"]), "sluice_output_requests_total == esemu bulk_requests")
    ck.eq(m.one("sluice_output_items_sent_total", output="es"), int(stats["bulk_items"]),
          "sluice_output_items_sent_total == esemu bulk_items")
    ck.eq(m.one("sluice_output_sent_bytes_total", output="es"), int(stats["bulk_body_bytes"]),
          "sluice_output_sent_bytes_total == esemu bulk_body_bytes (no compression)")
    ck.eq(m.one("sluice_output_records_delivered_total", output="es"), delivered,
          "output delivered == input delivered (one output)")
    ck.eq(m.one("sluice_output_records_dead_lettered_total", output="es"), dead,
          "output dead-lettered == input dead-lettered (one output)")

    lag = m.partitions("sluice_kafka_partition_lag")
    com = m.partitions("sluice_kafka_partition_committed_offset")
    hwm = m.partitions("sluice_kafka_partition_high_watermark")
    paused = m.partitions("sluice_kafka_partition_paused")
    ck.check(set(lag) == set(com) == set(hwm) == set(paused) == set(range(PARTS)),
             f"per-partition gauges for all {PARTS} partitions",
             (sorted(lag), sorted(com), sorted(hwm), sorted(paused)))
    ck.check(all(v == 0 for v in lag.values()), "every partition's lag is 0 at the end", lag)
    ck.check(com == hwm, "committed == high watermark for every partition", (com, hwm))
    wm = {p: hi for p, (lo, hi) in mk.watermarks(TOPIC).items()}
    ck.check(hwm == wm, "high watermark gauges == mockkafka's high watermarks", (hwm, wm))
    ck.check(com == mk.committed(GROUP, TOPIC), "committed gauges == the group's commits in "
             "mockkafka", (com, mk.committed(GROUP, TOPIC)))
    ck.check(all(v == 0 for v in paused.values()), "no partition paused at rest", paused)

    # ---- /status at rest: shape and exact agreement with /metrics
    s0 = scr.first_status or {}
    in0 = (s0.get("inputs") or [{}])[0]
    out0 = (s0.get("outputs") or [{}])[0]
    ck.check(STATUS_TOP <= set(s0), "/status has the documented top-level keys",
             sorted(STATUS_TOP - set(s0)))
    ck.check(STATUS_INPUT <= set(in0), "/status inputs[] have the documented keys",
             sorted(STATUS_INPUT - set(in0)))
    ck.check(STATUS_OUTPUT <= set(out0), "/status outputs[] have the documented keys "
             "(src/core/http.h)", f"missing {sorted(STATUS_OUTPUT - set(out0))}; "
             f"has {sorted(out0)}")
    st, body = http_get(port, "/status")
    s = json.loads(body) if st == 200 else {}
    m = Scrape(http_get(port, "/metrics")[1])
    ins, outs = s.get("inputs") or [{}], s.get("outputs") or [{}]
    parts = ins[0].get("partitions") or []
    ck.check(parts and all(STATUS_PART <= set(p) for p in parts),
             "/status partitions have the documented keys", parts[:1])
    ck.check(set(s.get("budget") or {}) >= {"used", "limit"} and
             set(s.get("health") or {}) >= {"ok", "reason"}, "/status budget and health keys",
             (s.get("budget"), s.get("health")))
    agree = {
        "received": (ins[0].get("received"), m.sum("sluice_records_received_total")),
        "delivered": (ins[0].get("delivered"), m.sum("sluice_records_delivered_total")),
        "dead_lettered": (ins[0].get("dead_lettered"), m.sum("sluice_records_dead_lettered_total")),
        "dropped": (ins[0].get("dropped"), m.sum("sluice_records_dropped_total")),
        "in_flight": (ins[0].get("in_flight"), m.sum("sluice_records_in_flight")),
        "dead_letter_lines": (s.get("dead_letter_lines"), m.one("sluice_dead_letter_lines_total")),
        "out.requests": (outs[0].get("requests"), m.one("sluice_output_requests_total")),
        "out.bytes_sent": (outs[0].get("bytes_sent"), m.one("sluice_output_sent_bytes_total")),
        "out.delivered": (outs[0].get("delivered"),
                          m.one("sluice_output_records_delivered_total")),
        "out.dead_lettered": (outs[0].get("dead_lettered"),
                              m.one("sluice_output_records_dead_lettered_total")),
        "out.retries": (outs[0].get("retries"), {k: int(v) for k, v in retr.items()}),
        "budget.limit": ((s.get("budget") or {}).get("limit"), m.one("sluice_budget_limit_bytes")),
        "partitions.lag": ({p["partition"]: p["lag"] for p in parts}, lag),
        "partitions.committed": ({p["partition"]: p["committed"] for p in parts}, com),
        "partitions.high_watermark": ({p["partition"]: p["high_watermark"] for p in parts}, hwm),
    }
    off = {k: v for k, v in agree.items() if v[0] != v[1]}
    ck.check(not off, "/status at rest == /metrics for every shared counter", off)
    ck.check((s.get("health") or {}).get("ok") is True, "/status health ok at rest",
             s.get("health"))
    ck.eq(http_get(port, "/healthz"), (200, "ok\n"), "/healthz at rest")

    rc = sl.terminate(60)
    ck.eq(rc, 0, "exit code after SIGTERM")
    fs = sl.final_stats()
    i = H.check_conservation(ck, fs)
    if i:
        ck.eq((i["delivered"], i["dead_lettered"]), (delivered, dead),
              "final-stats (delivered, dead_lettered) == the last scrape")
    H.check_broker_dropped(ck, mk)
    H.log(f"RESULT: {N} records, {delivered:.0f} delivered, {dead:.0f} dead-lettered, {req:.0f} "
          f"requests, retries {retr}, {scr.n} scrapes, esemu {stats['resets_injected']} resets / "
          f"{stats['injected_item_errors']} retryable / {stats['permanent_item_errors']} "
          f"permanent item errors")


if __name__ == "__main__":
    main()
