#!/usr/bin/python3
"""`make bench`: sluice against a bare librdkafka consumer on one pre-produced backlog.

  mockkafka (P partitions, N x ~250 B JSON, produced before anything reads)
     |-> bench/ceiling   bare high-level consumer that only counts (librdkafka defaults)
     |-> bench/ceiling   the same with the prefetch settings sluice derives from memory_limit 32MiB
     |-> sluice          -> esemu --count-only   (default config, memory_limit 32MiB)
     |-> sluice          the same with compression: gzip / id: none / memory_limit 128MiB
  bench/fwd_client    -> sluice (Forward input) -> esemu --count-only   (memory_limit 32MiB):
                         PackedForward requests of 1,000 records of ~--size B with a chunk id,
                         --fwd-conns connections, --fwd-window un-acked requests per connection

Every run reads the whole backlog from offset 0 with a new consumer group, so one mock cluster
serves them all. The mock keeps only ~5 MB per partition (librdkafka's mock cluster), so the backlog is
spread over enough partitions to stay far below that, and the script refuses to print numbers
unless every low watermark is 0 and the high watermarks add up to N.

Runs are interleaved (ceiling, ceiling-32, sluice..., then again) so a neighbour's load on this
shared machine spreads over all variants; each number is the median of --repeat runs.

What is measured, per run:
  events/s   ceiling: N / (last - first message returned by poll);
             sluice:  created / (esemu last_doc_ns - first_doc_ns), the emulator's clock
  MB/s       payload (record value) bytes of the backlog / the same interval
  CPU us/ev  user+system CPU of the consumer process, all threads, from its start until the N-th
             record (ceiling: getrusage at the N-th message; sluice: /proc/PID/stat when esemu
             holds N documents, before SIGTERM) / N. Includes start-up and the group join.
  peak RSS   VmHWM (ceiling: at the N-th message; sluice: max of samples and final-stats)
  page faults  minor page faults of the consumer process over the same span as its CPU
             (ceiling: ru_minflt; sluice: minflt in /proc/PID/stat); docs/performance.md,
             "Page faults" and "Block cache", says what they cost.
  threads    sluice only: the same CPU split into the main thread (the event loop: JSON
             checks, bulk bodies, HTTP) and librdkafka's threads (rdk:*), from
             /proc/PID/task/*/stat at the same moment
  ratio      events/s divided by the median events/s of the default-settings ceiling
Only the Python standard library is used; processes run under neutral names (harness.exe_alias).
bench/real.py runs the same machinery (Bench, the sinks, the tables) on a real Kafka broker and
into OpenSearch.
"""
import argparse
import json
import os
import platform
import re
import statistics
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")

SLUICE_VARIANTS = {
    # name: (memory_limit, extra output keys)
    "sluice": ("32MiB", {}),
    "sluice-gzip": ("32MiB", {"compression": "gzip"}),
    "sluice-id-none": ("32MiB", {"id": "none"}),
    "sluice-128MiB": ("128MiB", {}),
    # the pass-through with no record touched (sluice adds @timestamp by default), and
    # an add-only edit
    "sluice-no-timestamp": ("32MiB", {"timestamp_key": "null"}),
    "sluice-add-fields": ("32MiB", {"add_fields": '{env: prod, src: "${topic}/${partition}"}'}),
    # glibc's malloc told to keep fetch buffers and batch bodies in its heap (sluice leaves
    # settings made in GLIBC_TUNABLES alone): fewer page faults, more peak RSS
    "sluice-glibc-heap": ("32MiB", {}),
    # sluice's cache of freed big blocks turned off (src/bigalloc.c): glibc serves every size
    "sluice-no-block-cache": ("32MiB", {}),
    "sluice-gzip-no-block-cache": ("32MiB", {"compression": "gzip"}),
    # --baseline BUILD: the default config run by another build's sluice (before/after a change)
    "baseline": ("32MiB", {}),
}
# environment added to a variant's sluice process
VARIANT_ENV = {
    "sluice-glibc-heap": {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=33554432:"
                          "glibc.malloc.trim_threshold=33554432:glibc.malloc.arena_max=1"},
    "sluice-no-block-cache": {"SLUICE_BLOCK_CACHE": "0"},
    "sluice-gzip-no-block-cache": {"SLUICE_BLOCK_CACHE": "0"},
}
ALL = ["ceiling", "ceiling-32MiB", "sluice", "sluice-gzip", "sluice-id-none", "sluice-128MiB",
       "sluice-no-timestamp", "sluice-add-fields", "sluice-glibc-heap", "sluice-no-block-cache",
       "sluice-gzip-no-block-cache", "forward"]
LABEL = {
    "ceiling": "ceiling: bare consumer, librdkafka defaults",
    "ceiling-32MiB": "ceiling: bare consumer, sluice's 32MiB prefetch",
    "sluice": "sluice -> esemu, memory_limit 32MiB",
    "sluice-gzip": "sluice -> esemu, 32MiB, compression gzip",
    "sluice-id-none": "sluice -> esemu, 32MiB, id none",
    "sluice-128MiB": "sluice -> esemu, memory_limit 128MiB",
    "sluice-no-timestamp": "sluice -> esemu, 32MiB, timestamp_key null (no byte added)",
    "sluice-add-fields": "sluice -> esemu, 32MiB, add_fields with 2 fields",
    "sluice-glibc-heap": "sluice -> esemu, 32MiB, GLIBC_TUNABLES heap reuse (not the default)",
    "sluice-no-block-cache": "sluice -> esemu, 32MiB, block cache off (not the default)",
    "sluice-gzip-no-block-cache": "sluice -> esemu, 32MiB, gzip, block cache off (not the default)",
    "forward": "Forward in -> esemu, 32MiB (fwd_client)",
    "baseline": "baseline build's sluice -> esemu, memory_limit 32MiB",
    "baseline-forward": "baseline build's sluice: Forward in -> esemu, 32MiB (fwd_client)",
}


def sluice_prefetch(memory_limit_bytes):
    """The librdkafka settings sluice derives from memory_limit with one Kafka input
    (src/main.c: prefetch = limit / 4; src/inputs/kafka.c: sl_kafka_in_new). run_sluice checks
    them against the `prefetch:` line sluice logs, so a change there is noticed."""
    prefetch = memory_limit_bytes // 4
    queue = max(prefetch // 4, 1048576)
    fetch = max(prefetch // 32, 65536)
    return {
        "fetch.max.bytes": fetch,
        "message.max.bytes": fetch,
        "queued.max.messages.kbytes": queue // 1024,
        "queued.min.messages": queue // 128,
        "max.partition.fetch.bytes": fetch // 4,
        "fetch.wait.max.ms": 100,
    }


def parse_size(s):
    m = re.fullmatch(r"(\d+)(KiB|MiB|GiB)?", s)
    mult = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, None: 1}[m.group(2)]
    return int(m.group(1)) * mult


def proc_stat(pid):
    """(utime+stime of the whole process, all threads, in clock ticks; minor page faults), or
    (None, None) when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12]), int(fields[7])
    except (OSError, IndexError, ValueError):
        return None, None


def thread_cpu(pid):
    """{thread name: utime+stime in clock ticks}, names shared by several threads summed
    (librdkafka's rdk:broker<N> become rdk:broker); the main thread is "main"."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tids:
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
            name = "main" if t == str(pid) else re.sub(r"\d+$", "", head.split("(", 1)[1])
            fields = rest.split()
            out[name] = out.get(name, 0) + int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return out


def cpu_ticks(pid):
    return proc_stat(pid)[0]


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    try:
        rdk = subprocess.run(["pkg-config", "--modversion", "rdkafka"], capture_output=True,
                             text=True).stdout.strip()
    except OSError:
        rdk = "?"
    return (f"{os.cpu_count()} CPUs ({model}), {mem_kb / 1024 / 1024:.1f} GiB RAM, "
            f"Linux {platform.release()}, librdkafka {rdk or '?'}")


class EsemuSink:
    """Where sluice's Elasticsearch output sends: tests/esemu --count-only. Done when it holds N
    documents; events/s on the emulator's clock (first to last document)."""
    label = "esemu"
    poll_s = 0.05

    def __init__(self, es):
        self.es = es
        self.url, self.pid = es.url, es.proc.pid

    def begin(self, variant):
        """Before sluice starts."""
        self.es.reset()

    def count(self, sl):
        st = self.es.stats()
        return int(st["created"]) + int(st["conflicts_409"])

    def end(self, sl, n):
        """After sluice exited: (seconds from the first to the last document, [problems],
        {more result keys})."""
        st = self.es.stats()
        bad = []
        if int(st["created"]) != n:
            bad.append(f"created {st['created']} (409 conflicts {st['conflicts_409']})")
        wall = (int(st["last_doc_ns"]) - int(st["first_doc_ns"])) / 1e9
        return wall, bad, {"bulk_requests": int(st["bulk_requests"]),
                           "wire_mb": int(st["bulk_body_bytes"]) / 1e6}


class Bench:
    broker_label = "mock"  # the Kafka side in per-run lines and the counters' table
    sink_column = "esemu"  # and where sluice sends
    variants = SLUICE_VARIANTS
    variant_env = VARIANT_ENV
    labels = LABEL

    def __init__(self, args, H, procs):
        self.args, self.H, self.procs = args, H, procs
        self.n = args.records
        self.wd = procs.tmpdir(prefix="bench-")
        self.ceiling_bin = os.path.join(args.build, "bench", "ceiling")
        self.fwd_client_bin = os.path.join(args.build, "bench", "fwd_client")
        self.payload_bytes = None
        self.runs = {}  # variant -> [result dicts]
        self.problems = []
        self.seq = 0

    def setup(self, kafka=True):
        H, a = self.H, self.args
        self.es = self.procs.add(H.EsEmu(count_only=True, workdir=self.wd))
        self.esemu = EsemuSink(self.es)
        if not kafka:  # only the Forward row: no backlog needed
            return True
        self.mk = self.procs.add(H.MockKafka(topics=[f"logs:{a.partitions}"], workdir=self.wd))
        t0 = time.monotonic()
        self.mk.produce("logs", self.n, size=a.size)
        produced = self.mk.wait_produced(600)
        print(f"backlog: produced {produced:,} records of ~{a.size} B on {a.partitions} partitions "
              f"in {time.monotonic() - t0:.1f} s", flush=True)
        return self.verify_backlog("before the runs")

    def verify_backlog(self, when):
        wm = self.mk.watermarks("logs")
        low = {p: lo for p, (lo, hi) in wm.items() if lo != 0}
        total = sum(hi for lo, hi in wm.values())
        st = self.mk.status()
        ok = not low and total == self.n and st.get("broker_dropped") == 0
        print(f"backlog check {when}: {len(wm)} partitions, low watermarks all 0: {not low}, "
              f"high watermarks sum {total:,} (want {self.n:,}), broker_dropped "
              f"{st.get('broker_dropped')}, max per partition {max(h for _, h in wm.values()):,}",
              flush=True)
        if not ok:
            self.problems.append(f"backlog incomplete {when}: low={dict(list(low.items())[:5])} "
                                 f"sum={total} broker_dropped={st.get('broker_dropped')}")
        return ok

    def topic_of(self, variant):
        return "logs"

    def ceiling_of(self, variant):
        """The default-settings ceiling a row's ratio divides by: the one on the same backlog."""
        return "ceiling"

    def sink_of(self, variant):
        return self.esemu

    def bootstrap(self):
        return self.mk.bootstrap

    def broker_pid(self):
        return self.mk.proc.pid

    def group(self, variant):
        self.seq += 1
        return f"bench-{variant}-{os.getpid()}-{self.seq}"

    def run_ceiling(self, variant):
        args = [self.H.exe_alias(self.ceiling_bin, "bench-consumer"), "-b", self.bootstrap(),
                "-t", self.topic_of(variant), "-g", self.group(variant), "-n", str(self.n), "-T",
                str(self.args.timeout)]
        if variant.startswith("ceiling-32MiB"):
            for k, v in sluice_prefetch(32 << 20).items():
                args += ["-X", f"{k}={v}"]
        mk0 = cpu_ticks(self.broker_pid())
        p = subprocess.run(args, capture_output=True, text=True, timeout=self.args.timeout + 60)
        mk1 = cpu_ticks(self.broker_pid())
        try:
            r = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.problems.append(f"{variant}: no result (exit {p.returncode}) {p.stderr[-300:]}")
            return None
        if r["count"] != self.n or p.returncode != 0:
            self.problems.append(f"{variant}: consumed {r['count']} of {self.n}")
            return None
        if self.payload_bytes is None:
            self.payload_bytes = r["bytes"]
        elif self.payload_bytes != r["bytes"]:
            self.problems.append(f"{variant}: payload bytes {r['bytes']} != {self.payload_bytes}")
        wall = r["wall_s"]
        return {"eps": self.n / wall, "wall_s": wall, "cpu_s": r["cpu_us"] / 1e6,
                "cpu_window_s": r["cpu_window_us"] / 1e6, "rss_kb": r["hwm_kb"],
                "minflt": r["minflt"], "broker_cpu_s": (mk1 - mk0) / TICK}

    def sluice_config(self, variant, group, sink):
        mem, extra = self.variants[variant]
        out = "".join(f"    {k}: {v}\n" for k, v in extra.items())
        rdk = "".join(f', {k}: "{v}"' for k, v in self.args.librdkafka)
        # Everything else is sluice's default; session/heartbeat only because the mock cluster
        # delays a new member's join by session.timeout.ms - 1000.
        return f"""service:
  memory_limit: {mem}
  http_listen: 127.0.0.1:{self.H.free_port()}
  dead_letter: {{path: {self.wd}/dead-letter-{group}}}
inputs:
  - type: kafka
    brokers: {self.bootstrap()}
    group_id: {group}
    topics: [{self.topic_of(variant)}]
    librdkafka: {{session.timeout.ms: "6000", heartbeat.interval.ms: "500"{rdk}}}
outputs:
  - type: elasticsearch
    hosts: [{sink.url}]
{out}"""

    def run_sluice(self, variant):
        H = self.H
        sink = self.sink_of(variant)
        sink.begin(variant)
        group = self.group(variant)
        mk0, es0 = cpu_ticks(self.broker_pid()), cpu_ticks(sink.pid)
        binary = os.path.join(self.args.baseline, "sluice") if variant == "baseline" else None
        env = {**os.environ, **self.variant_env[variant]} if variant in self.variant_env else None
        sl = self.procs.add(H.Sluice(self.sluice_config(variant, group, sink), self.wd,
                                     env=env, binary=binary))
        prof = self.perf_start(variant, sl.pid)
        deadline = time.monotonic() + self.args.timeout
        cpu = minflt = None
        threads = {}
        hwm = 0
        while time.monotonic() < deadline and sl.alive():
            if sink.count(sl) >= self.n:
                cpu, minflt = proc_stat(sl.pid)
                threads = thread_cpu(sl.pid)
                hwm = H.proc_status(sl.pid).get("VmHWM", 0)
                break
            time.sleep(sink.poll_s)
        mk1, es1 = cpu_ticks(self.broker_pid()), cpu_ticks(sink.pid)
        self.perf_stop(prof)
        rc = sl.terminate(120)
        wall, bad, sink_res = sink.end(sl, self.n)
        fs = sl.final_stats() or {}
        inp = next(iter((fs.get("inputs") or {}).values()), {})
        pauses = sl.stat_values("pauses")
        paused_ms = sl.stat_values("paused_ms")
        pre = sl.lines(r"prefetch: ")
        want = sluice_prefetch(parse_size(self.variants[variant][0]))
        if pre:
            got = {k: int(v) for k, v in re.findall(r"([a-z.]+)=(\d+)", pre[0].split("prefetch:")[1])}
            for k, v in got.items():
                if want.get(k) != v:
                    self.problems.append(f"{variant}: sluice logs {k}={v}, bench/run.py assumes "
                                         f"{want.get(k)} (update sluice_prefetch)")
        if cpu is None:
            bad.insert(0, f"{sink.label} did not get {self.n} records before the timeout")
        if rc != 0:
            bad.append(f"exit code {rc}")
        if inp.get("dead_lettered") or inp.get("dropped"):
            bad.append(f"dead_lettered {inp.get('dead_lettered')} dropped {inp.get('dropped')}")
        if bad:
            self.problems.append(f"{variant}: " + "; ".join(bad) + f"\n{sl.log_tail(10)}")
            return None
        main = threads.get("main", 0)
        rdk = sum(v for k, v in threads.items() if k.startswith("rdk:"))
        return {"eps": self.n / wall, "wall_s": wall, "cpu_s": cpu / TICK, "minflt": minflt,
                "main_cpu_s": main / TICK, "rdk_cpu_s": rdk / TICK,
                "rss_kb": max(hwm, sl.rss.peak_hwm_kb, int(fs.get("peak_rss_kb") or 0)),
                "broker_cpu_s": (mk1 - mk0) / TICK, "sink_cpu_s": (es1 - es0) / TICK,
                "pauses": pauses[-1] if pauses else None,
                "paused_ms": paused_ms[-1] if paused_ms else None, **sink_res}

    def perf_start(self, variant, pid):
        """--perf DIR: `perf record -g` on sluice for the run (its CPU figures then include
        perf's overhead: use them for the profile, not for the table)."""
        if not self.args.perf:
            return None
        os.makedirs(self.args.perf, exist_ok=True)
        self.perf_seq = getattr(self, "perf_seq", 0) + 1
        out = os.path.join(self.args.perf, f"{variant}-{self.perf_seq}.data")
        ev = ["-F", "1999"] if self.args.perf_event == "cycles" else ["-e", self.args.perf_event]
        p = subprocess.Popen(["perf", "record", *ev, "-g", "-o", out, "-p", str(pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # attached before the data flows (sluice still waits for its group)
        return p

    def perf_stop(self, p):
        if p is None:
            return
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()

    def run_forward(self, binary=None):
        """fwd_client -> sluice's Forward input -> esemu. Same measures as run_sluice: events/s
        from esemu's first to last document, sluice's CPU until esemu holds N, peak RSS."""
        H = self.H
        self.es.reset()
        cfg = f"""service:
  memory_limit: 32MiB
  http_listen: 127.0.0.1:{H.free_port()}
  dead_letter: {{path: {self.wd}/dead-letter-forward}}
inputs:
  - type: forward
    name: f
    listen: 127.0.0.1:0
outputs:
  - type: elasticsearch
    hosts: [{self.es.url}]
    index: bench-${{tag}}
    batch_max_wait: {self.args.fwd_batch_wait}
"""
        es0 = cpu_ticks(self.es.proc.pid)
        sl = self.procs.add(H.Sluice(cfg, self.wd, binary=binary))
        if not sl.wait_log(r"listening on 127\.0\.0\.1:\d+", 15):
            self.problems.append(f"forward: sluice did not listen\n{sl.log_tail(10)}")
            sl.kill()
            return None
        port = re.search(r"listening on 127\.0\.0\.1:(\d+)", sl.text()).group(1)
        client = [H.exe_alias(self.fwd_client_bin, "bench-fwd-client"), "-p", port,
                  "-n", str(self.n), "-c", str(self.args.fwd_conns), "-k",
                  str(self.args.fwd_window), "-b", "1000", "-s", str(self.args.size)]
        cpu0 = cpu_ticks(sl.pid)
        prof = self.perf_start("forward", sl.pid)
        p = subprocess.Popen(client, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + self.args.timeout
        cpu, minflt, hwm = None, None, 0
        while time.monotonic() < deadline and sl.alive():
            st = self.es.stats()
            if int(st["created"]) + int(st["conflicts_409"]) >= self.n:
                cpu, minflt = proc_stat(sl.pid)
                hwm = H.proc_status(sl.pid).get("VmHWM", 0)
                break
            time.sleep(0.05)
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        es1 = cpu_ticks(self.es.proc.pid)
        self.perf_stop(prof)
        rc = sl.terminate(120)
        st = self.es.stats()
        fs = sl.final_stats() or {}
        inp = (fs.get("inputs") or {}).get("f", {})
        try:
            cl = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            cl = {}
        bad = []
        if cpu is None:
            bad.append(f"esemu has {st['created']} of {self.n} documents after the timeout")
        if int(st["created"]) != self.n:
            bad.append(f"created {st['created']} (409 conflicts {st['conflicts_409']})")
        if p.returncode != 0 or cl.get("errors"):
            bad.append(f"fwd_client exit {p.returncode}: {err[-300:]}")
        if rc != 0:
            bad.append(f"exit code {rc}")
        if inp.get("dead_lettered") or inp.get("dropped"):
            bad.append(f"dead_lettered {inp.get('dead_lettered')} dropped {inp.get('dropped')}")
        if bad:
            self.problems.append("forward: " + "; ".join(bad) + f"\n{sl.log_tail(10)}")
            return None
        a, b = int(st["first_doc_ns"]), int(st["last_doc_ns"])
        wall = (b - a) / 1e9
        return {"eps": self.n / wall, "wall_s": wall, "cpu_s": cpu / TICK,
                "cpu_run_s": (cpu - cpu0) / TICK, "minflt": minflt,
                "rss_kb": max(hwm, sl.rss.peak_hwm_kb, int(fs.get("peak_rss_kb") or 0)),
                "sink_cpu_s": (es1 - es0) / TICK,
                "bulk_requests": int(st["bulk_requests"]),
                "wire_mb": int(st["bulk_body_bytes"]) / 1e6,
                "client_eps": cl.get("events_per_s"),
                "ack_p50_ms": (cl.get("ack_ms") or {}).get("p50"),
                "ack_p99_ms": (cl.get("ack_ms") or {}).get("p99")}

    def run(self, variant):
        if variant.startswith("ceiling"):
            r = self.run_ceiling(variant)
        elif variant == "forward":
            r = self.run_forward()
        elif variant == "baseline-forward":
            r = self.run_forward(os.path.join(self.args.baseline, "sluice"))
        else:
            r = self.run_sluice(variant)
        if r:
            self.runs.setdefault(variant, []).append(r)
            mock = f"{r['broker_cpu_s']:.2f} s" if "broker_cpu_s" in r else "-"
            print(f"  {variant:<18} {r['eps']:>10,.0f} events/s  CPU {r['cpu_s']:.2f} s  "
                  f"faults {r['minflt'] or 0:,}  peak RSS {r['rss_kb'] / 1024:.1f} MiB  "
                  f"{self.broker_label} CPU {mock}{self.run_extra(r)}  (load {loadavg()})",
                  flush=True)
        else:
            print(f"  {variant:<18} FAILED: {self.problems[-1]}", flush=True)
        return r

    def run_extra(self, r):
        """The end of a run's line: what only some variants measure."""
        if "client_eps" in r:
            return (f", client {r['client_eps']:,.0f} events/s, ack p50 {r['ack_p50_ms']} ms "
                    f"p99 {r['ack_p99_ms']} ms")
        if "pauses" in r:
            return (f", pauses {r['pauses']} ({r['paused_ms']} ms), threads: main "
                    f"{r['main_cpu_s']:.2f} s, librdkafka {r['rdk_cpu_s']:.2f} s")
        return ""


def med(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def table(b, variants):
    rows = [("run", "events/s", "MB/s", "CPU us/event", "peak RSS MiB", "sluice/ceiling", "n")]
    for v in variants:
        runs = b.runs.get(v, [])
        if not runs:
            rows.append((b.labels[v], "no valid run", "", "", "", "", "0"))
            continue
        ceil = med(b.runs.get(b.ceiling_of(v), []), "eps")
        eps = med(runs, "eps")
        lo, hi = min(r["eps"] for r in runs), max(r["eps"] for r in runs)
        mbs = med([{"x": b.payload_bytes / r["wall_s"] / 1e6} for r in runs], "x") \
            if b.payload_bytes and not v.endswith("forward") else None
        ratio = f"{eps / ceil:.2f}" if ceil else "?"
        if v.endswith("forward"):
            ratio = "-"  # another input: not comparable with the Kafka consumer
        rows.append((b.labels[v], f"{eps:,.0f} ({lo / 1000:,.0f}k-{hi / 1000:,.0f}k)",
                     f"{mbs:.1f}" if mbs else "?", f"{med(runs, 'cpu_s') * 1e6 / b.n:.2f}",
                     f"{med(runs, 'rss_kb') / 1024:.1f}", ratio, str(len(runs))))
    return rows


def details(b, variants):
    rows = [("run", "consumer CPU s", "main thread s", "librdkafka threads s", "page faults",
             f"{b.broker_label} CPU s", f"{b.sink_column} CPU s", "bulk requests",
             "records per request", "bulk MB on wire", "pauses", "paused ms")]
    for v in variants:
        runs = b.runs.get(v, [])
        if not runs:
            continue

        def f(key, fmt):
            x = med(runs, key)
            return "" if x is None else format(x, fmt)
        rows.append((v, f("cpu_s", ".2f"), f("main_cpu_s", ".2f"), f("rdk_cpu_s", ".2f"),
                     f("minflt", ",.0f"), f("broker_cpu_s", ".2f"),
                     f("sink_cpu_s", ".2f"),
                     f("bulk_requests", ".0f"),
                     "" if med(runs, "bulk_requests") is None
                     else f"{b.n / med(runs, 'bulk_requests'):,.0f}",
                     f("wire_mb", ".1f"), f("pauses", ".0f"),
                     f("paused_ms", ".0f")))
    for v in ("forward", "baseline-forward"):
        runs = b.runs.get(v, [])
        if runs:
            rows.append((f"{v}: fwd_client events/s (first send to last ack), ack latency "
                         "p50 / p99 ms", f"{med(runs, 'client_eps'):,.0f}",
                         f"{med(runs, 'ack_p50_ms'):.1f} / {med(runs, 'ack_p99_ms'):.1f}", "", "",
                         "", "", "", "", "", "", ""))
    return rows


def render(rows):
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(rows[0])) + " |",
           "|" + "|".join("-" * (x + 2) for x in w) + "|"]
    for r in rows[1:]:
        out.append("| " + " | ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i])
                                     for i, c in enumerate(r)) + " |")
    return "\n".join(out)


def common_args(ap, timeout=300):
    """The options bench/run.py and bench/real.py share."""
    ap.add_argument("--build", default=os.path.join(SOURCE, "build"), help="cmake build directory")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=250, help="record size in bytes")
    ap.add_argument("--repeat", type=int, default=3, help="runs per variant; the median is shown")
    ap.add_argument("--timeout", type=float, default=timeout, help="seconds per run")
    ap.add_argument("--json", help="also write every run's numbers to this file")
    ap.add_argument("--perf", metavar="DIR", help="record a perf profile of each sluice run into "
                    "DIR/<variant>-<n>.data (`perf report -i ...`); figures then include perf's "
                    "overhead")
    ap.add_argument("--perf-event", default="cycles", metavar="EVENT",
                    help="with --perf: the event to sample, e.g. page-faults (default: cycles at "
                    "1999 Hz)")
    ap.add_argument("--librdkafka", action="append", default=[], metavar="KEY=VALUE",
                    type=lambda s: tuple(s.split("=", 1)),
                    help="extra librdkafka property for the sluice runs (experiments; the "
                         "prefetch check then compares against what sluice logs)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap)
    ap.add_argument("--partitions", type=int, default=96,
                    help="enough that each stays far below the mock's ~5 MB retention")
    ap.add_argument("--variants", default=",".join(ALL), help="comma list of: " + ",".join(ALL))
    ap.add_argument("--baseline", help="another build directory: adds the variant 'baseline', the "
                    "default config run by that build's sluice, interleaved with the others "
                    "(and 'baseline-forward' when 'forward' runs)")
    ap.add_argument("--fwd-conns", type=int, default=4, help="forward: client connections")
    ap.add_argument("--fwd-batch-wait", default="50ms",
                    help="forward: the output's batch_max_wait (a client waiting for acks sends "
                         "nothing more, so a partly filled batch waits this long)")
    ap.add_argument("--fwd-window", type=int, default=8,
                    help="forward: un-acked requests per connection")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in ALL and not (v.startswith("baseline") and args.baseline):
            ap.error(f"unknown variant {v}")
    if args.baseline:
        args.baseline = os.path.abspath(args.baseline)
        if "baseline" not in variants:
            variants.append("baseline")
        if "forward" in variants and "baseline-forward" not in variants:
            variants.append("baseline-forward")

    H = import_harness(args.build)
    need = [H.MOCKKAFKA_BIN, H.ESEMU_BIN]
    if any(v.startswith("ceiling") for v in variants):
        need.append(os.path.join(args.build, "bench", "ceiling"))
    if any(v.startswith("sluice") or v == "forward" for v in variants):
        need.append(H.SLUICE_BIN)
    if "forward" in variants:
        need.append(os.path.join(args.build, "bench", "fwd_client"))
    if not binaries_present(need):
        return 1

    load0 = header()
    with H.Procs() as procs:
        b = Bench(args, H, procs)
        kafka = any(not v.endswith("forward") for v in variants)
        if not b.setup(kafka):
            print("REFUSING to measure: the mock cluster does not hold the whole backlog")
            print("\n".join(b.problems))
            return 1
        return measure(b, variants, load0,
                       f"{args.records:,} records x ~{args.size} B JSON, {args.partitions} "
                       "partitions",
                       "mock and esemu CPU from their /proc/PID/stat over the run",
                       verify=kafka, json_extra={"partitions": args.partitions})


def import_harness(build):
    """tests/integration/harness.py, set to run the binaries of `build` (it reads SLUICE_BUILD
    when imported)."""
    os.environ["SLUICE_BUILD"] = build
    os.environ.setdefault("SLUICE_SOURCE", SOURCE)
    sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
    import harness
    return harness


def binaries_present(paths):
    missing = [p for p in paths if not os.access(p, os.X_OK)]
    if missing:
        print(f"bench: missing binaries (build first): {' '.join(missing)}")
    return not missing


def header():
    """Prints the machine, the command and the load average before; returns the load."""
    print(f"machine: {machine()}")
    print(f"command: {' '.join([sys.executable] + sys.argv)}")
    load0 = loadavg()
    print(f"load average before: {load0}", flush=True)
    return load0


def measure(b, variants, load0, backlog, counters_note, verify=True, more=None,
            json_extra=None):
    """The rounds (every variant once per round, so a neighbour's load spreads over all of
    them), the backlog check after them, the tables of medians and --json. `more()` prints what
    else the caller measured; `json_extra` (a dict, or a function giving one once the runs are
    done) adds to --json. Returns the exit code: 1 when any run failed or the backlog was not
    whole."""
    args = b.args
    for rep in range(args.repeat):
        print(f"round {rep + 1}/{args.repeat}", flush=True)
        for v in variants:
            b.run(v)
    ok = b.verify_backlog("after the runs") if verify else True
    load1 = loadavg()
    print()
    print(f"{backlog}, payload {b.payload_bytes or 0:,} B; median of {args.repeat} "
          f"(range in parentheses); load average before {load0}, after {load1}")
    print(render(table(b, variants)))
    print()
    print(f"medians of the other counters (CPU seconds for the whole run; {counters_note}):")
    print(render(details(b, variants)))
    if more:
        more()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "load_before": load0, "load_after": load1,
                       "records": args.records, "payload_bytes": b.payload_bytes,
                       "runs": b.runs, "problems": b.problems,
                       **((json_extra() if callable(json_extra) else json_extra) or {})}, f,
                      indent=1)
    if b.problems or not ok:
        print("\nPROBLEMS (these runs are not in the table):")
        print("\n".join(b.problems))
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
