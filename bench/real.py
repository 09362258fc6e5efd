#!/usr/bin/python3
"""`make bench`, second part: sluice on a real Kafka broker and into a real OpenSearch node.

  Apache Kafka 4.4 (KRaft, one node; tests/servers): topic `logs`, P partitions, N x ~250 B JSON
  produced uncompressed before anything reads (python3-confluent-kafka); topic `logs-zstd`, the
  same records produced with zstd
     |-> bench/ceiling   bare consumer that only counts, librdkafka defaults
     |-> bench/ceiling   the same with the prefetch settings sluice derives from memory_limit 32MiB
     |-> sluice          -> esemu --count-only     (default config, memory_limit 32MiB)
     |-> sluice          -> OpenSearch 2.19 node   (the same config; the real end-to-end rate)
     |-> the ceilings and sluice -> esemu again on `logs-zstd`

bench/run.py's machinery runs the runs (class Bench: interleaved rounds, medians, CPU from
/proc/PID/stat when the N-th record has arrived, the prefetch check, neutral process names), so
its columns mean the same here; what differs:
  - the backlog check reads the broker's watermarks: every low watermark 0 and the high ones
    adding up to N on each topic, before and after the runs, or no numbers are printed;
  - `Kafka CPU` is the broker's JVM (/proc/PID/stat over the run), where run.py has the mock;
  - sluice -> OpenSearch is done when sluice counts N records delivered (every bulk item
    answered; sluice_output_records_delivered_total on its /metrics, read every 0.25 s), and its
    events/s is N over the time from the first delivered record to the N-th. After sluice exits
    the index is refreshed and counted (it must hold exactly N documents) and deleted, so each
    run starts on an empty node. OpenSearch's and sluice's CPU over that same span, divided by
    its length, show which of the two is busy: `cores`.
  - each row's ratio divides by the default-settings ceiling on the same topic.
The servers' start-up time and RSS (sampled after every run) are printed with the tables.
"""
import argparse
import os
import re
import statistics
import sys
import time

import run as B  # bench/run.py

PARTS = 8
ALL = ["ceiling", "ceiling-32MiB", "sluice", "sluice-opensearch", "ceiling-zstd",
       "ceiling-32MiB-zstd", "sluice-zstd"]
VARIANTS = {
    # name: (memory_limit, extra output keys), as in run.py's SLUICE_VARIANTS
    "sluice": ("32MiB", {}),
    "sluice-opensearch": ("32MiB", {}),
    "sluice-zstd": ("32MiB", {}),
}
LABEL = {
    "ceiling": "ceiling: bare consumer, librdkafka defaults",
    "ceiling-32MiB": "ceiling: bare consumer, sluice's 32MiB prefetch",
    "sluice": "sluice -> esemu, memory_limit 32MiB",
    "sluice-opensearch": "sluice -> OpenSearch, memory_limit 32MiB",
    "ceiling-zstd": "zstd: ceiling, librdkafka defaults",
    "ceiling-32MiB-zstd": "zstd: ceiling, sluice's 32MiB prefetch",
    "sluice-zstd": "zstd: sluice -> esemu, memory_limit 32MiB",
}

LEVELS = ("DEBUG", "INFO", "INFO", "INFO", "INFO", "INFO", "WARN", "WARN", "ERROR")
SERVICES = ("checkout", "payments", "search-api", "auth", "cart", "inventory")
MESSAGES = (
    "GET /api/v1/cart/{a} 200 {b}ms",
    'POST /api/v1/checkout 201 {b}ms user_agent=\\"Mozilla/5.0 (X11; Linux x86_64)\\"',
    "user {a} logged in from 10.{c}.{d}.7",
    "payment declined for order {a}: insufficient funds (code={c})",
    "slow query took {b}ms: SELECT * FROM orders WHERE id = {a}",
    "Lieferung nach Z\u00fcrich best\u00e4tigt, Bestellung {a}",
    "upstream timeout calling inventory (attempt {d}/5)\\n\\tat shop.Client.call(Client.java:{b})",
    "GET /healthz 200 {d}ms",
)
WORDS = ("request", "session", "upstream", "latency", "region=eu-west-1", "cache", "tenant=acme",
         "shard", "retry", "queue", "span", "node", "payload", "route", "pool")


def record(seq, size):
    """One JSON log line of exactly `size` bytes (when the unpadded line is shorter), like the
    mock's backlog in run.py: seq, time, level, service, host, trace id and a message, some
    with escapes or non-ASCII UTF-8, padded with words."""
    h = (seq * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 29
    ms = seq % 1000
    s = seq // 1000
    msg = MESSAGES[h % len(MESSAGES)].format(a=h % 10000, b=(h >> 14) % 900 + 3,
                                             c=(h >> 24) % 250, d=(h >> 32) % 5 + 1)
    head = ('{"seq":%d,"time":"2026-12-07T10:%02d:%02d.%03dZ","level":"%s","service":"%s",'
            '"host":"web-%02d","trace_id":"%016x","message":"%s'
            % (seq, s // 60 % 60, s % 60, ms, LEVELS[(h >> 8) % len(LEVELS)],
               SERVICES[(h >> 12) % len(SERVICES)], (h >> 20) % 12 + 1, h, msg)).encode()
    want = size - 2  # the closing "}
    if len(head) + 6 < want:
        words = [head, b" ctx:"]
        n = len(head) + 5
        w = h
        while n < want:
            w = (w * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
            word = WORDS[(w >> 33) % len(WORDS)].encode()
            words.append(b" " + word)
            n += 1 + len(word)
        head = b"".join(words)[:want].rstrip(b" ")
        head += b"." * (want - len(head))
    return head + b'"}'


class OpenSearchSink:
    """sluice's Elasticsearch output into the real OpenSearch node (see the module's comment)."""
    label = "OpenSearch"
    poll_s = 0.25
    INDICES = "logs-*"  # sluice's default index, logs-${topic}-%Y.%m.%d

    def __init__(self, osn, n):
        self.osn, self.n = osn, n
        self.url, self.pid = osn.url, osn.proc.pid

    def drop_indices(self):
        st, out = self.osn.req("GET", f"/_cat/indices/{self.INDICES}?format=json&h=index")
        for idx in out if st == 200 and isinstance(out, list) else []:
            self.osn.ok("DELETE", f"/{idx['index']}")

    def begin(self, variant):
        self.drop_indices()  # any a failed run left behind
        self.first = self.last = None
        self.metrics = {}

    def count(self, sl):
        now = time.monotonic()
        got = int(sum(v for _, v in sl.metrics("sluice_output_records_delivered_total")))
        if got and self.first is None:
            self.first = (now, B.cpu_ticks(self.pid), B.cpu_ticks(sl.pid))
        if got >= self.n and self.last is None:
            self.last = (time.monotonic(), B.cpu_ticks(self.pid), B.cpu_ticks(sl.pid))
            for key in ("sluice_output_requests_total", "sluice_output_sent_bytes_total",
                        "sluice_output_retries_total"):
                self.metrics[key] = int(sum(v for _, v in sl.metrics(key)))
        return got

    def end(self, sl, n):
        bad = []
        self.osn.refresh(self.INDICES)
        docs = self.osn.count(self.INDICES)
        if docs != n:
            bad.append(f"OpenSearch holds {docs} documents, not {n}")
        self.drop_indices()
        if self.last is None:
            return 0.0, bad, {}
        wall = self.last[0] - self.first[0]
        m = self.metrics
        return wall, bad, {
            "docs": docs, "retries": m["sluice_output_retries_total"],
            "bulk_requests": m["sluice_output_requests_total"],
            "wire_mb": m["sluice_output_sent_bytes_total"] / 1e6,
            "os_cores": (self.last[1] - self.first[1]) / B.TICK / wall,
            "sluice_cores": (self.last[2] - self.first[2]) / B.TICK / wall}


class RealBench(B.Bench):
    broker_label = "Kafka"
    sink_column = "esemu / OpenSearch"
    variants = VARIANTS
    variant_env = {}
    labels = LABEL

    def setup(self, selected):
        H, R, a = self.H, self.R, self.args
        self.es = self.procs.add(H.EsEmu(count_only=True, workdir=self.wd))
        self.esemu = B.EsemuSink(self.es)
        self.kafka = self.procs.add(R.KafkaServer(os.path.join(self.wd, "kafka"),
                                                  heap=a.kafka_heap))
        self.osn = None
        if "sluice-opensearch" in selected:
            self.osn = self.procs.add(R.OpenSearch(os.path.join(self.wd, "opensearch"),
                                                   heap=a.opensearch_heap))
            self.os_sink = OpenSearchSink(self.osn, self.n)
        self.rss_after_start = {s.name: s.rss_kb() for s in self.servers()}
        self.topics = ["logs"] + (["logs-zstd"] if any(v.endswith("-zstd") for v in selected)
                                  else [])
        t0 = time.monotonic()
        records = [record(i, a.size) for i in range(self.n)]
        print(f"backlog: {self.n:,} records of ~{a.size} B generated in "
              f"{time.monotonic() - t0:.1f} s", flush=True)
        for topic in self.topics:
            codec = "zstd" if topic.endswith("-zstd") else "none"
            self.kafka.create_topic(topic, a.partitions)
            t0 = time.monotonic()
            R.produce(self.kafka.bootstrap, topic, records, compression=codec,
                      partitions=lambda i: i % a.partitions, timeout_s=600)
            print(f"backlog: produced {self.n:,} records to {topic} ({codec}) on {a.partitions} "
                  f"partitions in {time.monotonic() - t0:.1f} s", flush=True)
        return self.verify_backlog("before the runs")

    def servers(self):
        return [s for s in (self.kafka, self.osn) if s is not None]

    def verify_backlog(self, when):
        ok = True
        for topic in self.topics:
            wm = self.kafka.watermarks(topic, self.args.partitions)
            low = {p: lo for p, (lo, hi) in wm.items() if lo != 0}
            total = sum(hi for lo, hi in wm.values())
            print(f"backlog check {when}: {topic}: {len(wm)} partitions, low watermarks all 0: "
                  f"{not low}, high watermarks sum {total:,} (want {self.n:,}), max per "
                  f"partition {max(h for _, h in wm.values()):,}", flush=True)
            if low or total != self.n:
                ok = False
                self.problems.append(f"backlog incomplete {when}: {topic} low={low} sum={total}")
        return ok

    def bootstrap(self):
        return self.kafka.bootstrap

    def broker_pid(self):
        return self.kafka.proc.pid

    def topic_of(self, variant):
        return "logs-zstd" if variant.endswith("-zstd") else "logs"

    def ceiling_of(self, variant):
        return "ceiling-zstd" if variant.endswith("-zstd") else "ceiling"

    def sink_of(self, variant):
        return self.os_sink if variant == "sluice-opensearch" else self.esemu

    def run(self, variant):
        r = super().run(variant)
        for s in self.servers():
            s.rss_kb()  # keeps each server's peak
        return r

    def run_extra(self, r):
        extra = super().run_extra(r)
        if "os_cores" in r:
            extra += (f", while indexing: OpenSearch {r['os_cores']:.2f} cores, sluice "
                      f"{r['sluice_cores']:.2f}; retries {r['retries']}, documents "
                      f"{r['docs']:,}")
        return extra

    def more(self):
        """The servers, and sluice -> OpenSearch: which side was busy."""
        print()
        kafka_ver = "?"
        for f in os.listdir(os.path.join(self.R.SERVERS, "kafka", "lib")):
            m = re.fullmatch(r"kafka-server-(\d[\w.]*)\.jar", f)
            kafka_ver = m.group(1) if m else kafka_ver
        names = {"kafka": f"Kafka {kafka_ver} (KRaft, one node, heap {self.args.kafka_heap})"}
        if self.osn:
            names["opensearch"] = (f"OpenSearch {self.os_version} (one node, heap "
                                   f"{self.args.opensearch_heap})")
        for s in self.servers():
            print(f"{names[s.name]}: started in {s.start_seconds[0]:.1f} s, RSS "
                  f"{self.rss_after_start[s.name] / 1024:.0f} MiB after start, peak "
                  f"{s.peak_rss_kb / 1024:.0f} MiB (sampled after each run)")
        runs = self.runs.get("sluice-opensearch", [])
        if runs:
            osc, slc = B.med(runs, "os_cores"), B.med(runs, "sluice_cores")
            print(f"sluice -> OpenSearch, medians while indexing: OpenSearch's JVM "
                  f"{osc:.2f} cores, sluice {slc:.2f} cores (of {os.cpu_count()}); retries "
                  f"{statistics.median(r['retries'] for r in runs):.0f}, documents counted in "
                  f"the index {min(r['docs'] for r in runs):,}-{max(r['docs'] for r in runs):,}")
            if osc > 3 * slc:
                print(f"  OpenSearch is the bottleneck: it used {osc / slc:.0f} times sluice's "
                      "CPU for the same records; sluice's CPU per event is its own cost and "
                      "stays comparable with the other rows")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    B.common_args(ap, timeout=600)
    ap.add_argument("--partitions", type=int, default=PARTS)
    ap.add_argument("--variants", default=",".join(ALL), help="comma list of: " + ",".join(ALL))
    ap.add_argument("--kafka-heap", default="512m")
    ap.add_argument("--opensearch-heap", default="512m")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    args.baseline = None
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in ALL:
            ap.error(f"unknown variant {v}")

    H = B.import_harness(args.build)
    import realservers as R
    need = [H.ESEMU_BIN, os.path.join(args.build, "bench", "ceiling"), H.SLUICE_BIN]
    if not B.binaries_present(need):
        return 1

    load0 = B.header()
    with H.Procs() as procs:
        b = RealBench(args, H, procs)
        b.R = R
        try:
            ready = b.setup(variants)
        except R.ServerMissing as e:
            print(f"bench: {e}")
            return 1
        if b.osn:
            b.os_version = b.osn.version()["number"]
        if not ready:
            print("REFUSING to measure: the broker does not hold the whole backlog")
            print("\n".join(b.problems))
            return 1
        return B.measure(b, variants, load0,
                         f"real Kafka broker: {args.records:,} records x ~{args.size} B JSON, "
                         f"{args.partitions} partitions",
                         "Kafka's, esemu's and OpenSearch's CPU from their /proc/PID/stat over "
                         "the run", more=b.more,
                         json_extra=lambda: {
                             "partitions": args.partitions, "real": True,
                             "server_start_s": {s.name: s.start_seconds for s in b.servers()},
                             "server_peak_rss_kb": {s.name: s.peak_rss_kb for s in b.servers()}})


if __name__ == "__main__":
    sys.exit(main())
