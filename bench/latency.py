#!/usr/bin/python3
"""`make bench`, third part: how long a record takes through sluice, at steady low and moderate
rates, with sluice's default settings.

  Kafka:   a producer (python3-confluent-kafka, linger.ms 0) writes R records/s for --seconds,
           each a ~250 B JSON object whose "sent_ns" is the producer's CLOCK_REALTIME when it
           handed the record to its client, to a new topic (4 partitions) of one Apache Kafka
           4.4 broker (--real-kafka) or of librdkafka's mock cluster (paths kafka-mock*)
           -> sluice (a new consumer group) -> esemu --count-only --latency-field sent_ns
  Forward: bench/fwd_client -r R -T sent_ns (one connection; every millisecond a PackedForward
           request of what fell due, each event stamped with the time it was due, acks requested
           and up to 4,096 unacknowledged) -> sluice's Forward input (ack: delivered) -> esemu
  sync:    bench/fwd_client -c 1 -k 1 -b 1000: a client that sends a chunk of 1,000 events and
           waits for its ack before the next (Fluency, Fluent Bit's Require_ack_response) ->
           sluice (ack: delivered) -> esemu; its acks per second are its events per second / 1,000

Latency is per document: esemu's receipt of the bulk request that stored it (processed after it
was read whole) minus its sent_ns; p50, p99 and max over every document of the run, from esemu's
histogram (within 1.6%). Each run first sends records until one reaches esemu (the consumer group
has joined, the connections are up), waits for all of them, and resets esemu's counters; then
the measured records. `bulk req/s` is esemu's bulk requests over the run's --seconds,
`docs/req` the records per request.

The Kafka path belongs on a real broker (--real-kafka, as `make bench` runs it): sluice's
settings unchanged, a broker that answers a Fetch as soon as it has a record. librdkafka's mock
cluster holds an empty Fetch for the consumer's whole fetch.wait.max.ms even when a record
arrives meanwhile (librdkafka 2.0.2, rdkafka_mock_handlers.c: "If there was no data, delay up to
MaxWait. This isn't strictly correct"), which adds up to sluice's 100 ms; the paths kafka-mock
(sluice given fetch.wait.max.ms --mock-fetch-wait-ms, 1) and kafka-mock-100 (sluice's own
setting) are there for machines without the broker's jars. With fetch.wait.max.ms 1 the mock did
not keep up with 1,000 records/s (latency grew through the run on the old and the new build
alike), so its rows above 100 records/s say nothing about sluice.

--baseline OTHER_BUILD runs every row with that build's sluice too, each pair back to back
(before, then after), so both see the same machine."""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

import run as B  # bench/run.py

RECORD_PAD = ("GET /api/v1/orders/4711 served in 12 ms by worker 3; upstream=inventory "
              "region=eu-west-1 tenant=acme cache=miss ") * 4


def record(seq, sent_ns, size):
    head = (f'{{"sent_ns":{sent_ns},"seq":{seq},"level":"INFO","service":"checkout",'
            f'"host":"web-17","message":"')
    room = max(8, size - len(head) - 2)
    return head + RECORD_PAD[:room] + '"}'


class Latency:
    def __init__(self, args, H, procs):
        self.args, self.H, self.procs = args, H, procs
        self.wd = procs.tmpdir(prefix="latency-")
        self.fwd_client = os.path.join(args.build, "bench", "fwd_client")
        self.results = []  # dicts: path, rate, build, ...
        self.problems = []
        self.seq = 0
        self.es = procs.add(H.EsEmu(count_only=True, workdir=self.wd,
                                    extra=["--latency-field", "sent_ns"]))
        self.mk = None
        self.kafka = None

    def binary(self, build):
        return None if build == "after" else os.path.join(self.args.baseline, "sluice")

    def stats(self):
        return self.es.stats()

    def wait_created(self, n, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            st = self.stats()
            if int(st["created"]) >= n:
                return st
            time.sleep(0.05)
        return None

    def start_sluice(self, build, cfg):
        sl = self.procs.add(self.H.Sluice(cfg, self.wd, binary=self.binary(build)))
        return sl

    def service(self):
        self.seq += 1
        return (f"service:\n  http_listen: 127.0.0.1:{self.H.free_port()}\n"
                f"  dead_letter: {{path: {self.wd}/dead-letter-{self.seq}}}\n")

    def give_up(self, sl, problem):
        """A run that cannot be measured: the problem is reported with the table, sluice is
        killed, and the row gets no numbers."""
        self.problems.append(problem)
        sl.kill()
        return None

    def finish(self, sl, res, label):
        rc = sl.terminate(60)
        if rc != 0:
            self.problems.append(f"{label}: sluice exit code {rc}\n{sl.log_tail(10)}")
            return None
        return res

    def summary(self, st, n, seconds):
        docs = int(st["latency_docs"])
        if docs != n or int(st["latency_missing"]):
            return None, f"esemu counted latency of {docs} of {n} documents " \
                         f"({st['latency_missing']} without a stamp)"
        reqs = int(st["bulk_requests"])
        return {"docs": docs, "p50_ms": float(st["latency_p50_ms"]),
                "p99_ms": float(st["latency_p99_ms"]), "max_ms": float(st["latency_max_ms"]),
                "mean_ms": float(st["latency_mean_ms"]), "bulk_requests": reqs,
                "req_per_s": reqs / seconds, "docs_per_req": docs / reqs if reqs else 0}, None

    # ------------------------------------------------------------------ Kafka

    def new_topic(self, broker):
        self.seq += 1
        topic = f"lat{self.seq}"
        if broker == "real":
            self.kafka.create_topic(topic, partitions=4)
        else:
            self.mk.ok(f"topic {topic}:4")
        return topic

    def run_kafka(self, build, broker, rate, fetch_wait_ms=None):
        bootstrap = self.kafka.bootstrap if broker == "real" else self.mk.bootstrap
        topic = self.new_topic(broker)
        rdk = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}
        if fetch_wait_ms is not None:
            rdk["fetch.wait.max.ms"] = str(fetch_wait_ms)
        rdk_s = ", ".join(f'{k}: "{v}"' for k, v in rdk.items())
        # everything else is sluice's default (the session settings only because the mock
        # delays a new member's join by session.timeout.ms - 1000)
        cfg = self.service() + f"""inputs:
  - type: kafka
    brokers: {bootstrap}
    group_id: latency-{topic}
    topics: [{topic}]
    librdkafka: {{{rdk_s}}}
outputs:
  - type: elasticsearch
    hosts: [{self.es.url}]
"""
        from confluent_kafka import Producer
        prod = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0,
                         "queue.buffering.max.messages": 1000000})
        self.es.reset()
        sl = self.start_sluice(build, cfg)
        label = f"kafka-{broker} {rate}/s {build}"
        # warm-up: until the group has joined and a record went through
        warm = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sl.alive():
            prod.produce(topic, record(-1, time.time_ns(), self.args.size).encode(),
                         partition=warm % 4)
            prod.poll(0)
            warm += 1
            if int(self.stats()["created"]) > 0:
                break
            time.sleep(0.1)
        prod.flush(30)
        if not self.wait_created(warm, 30):
            return self.give_up(sl, f"{label}: the warm-up records did not arrive\n{sl.log_tail(10)}")
        time.sleep(0.5)
        self.es.reset()
        n = int(rate * self.args.seconds)
        t0 = time.monotonic()
        for i in range(n):
            ahead = i / rate - (time.monotonic() - t0)
            if ahead > 0.001:
                time.sleep(ahead)
            while True:
                try:
                    prod.produce(topic, record(i, time.time_ns(), self.args.size).encode(),
                                 partition=i % 4)
                    break
                except BufferError:
                    prod.poll(0.01)
            prod.poll(0)
        left = prod.flush(60)
        st = self.wait_created(n, 60)
        if left or st is None:
            return self.give_up(sl, f"{label}: {left} undelivered by the producer, esemu has "
                                    f"{self.stats()['created']} of {n}\n{sl.log_tail(10)}")
        res, bad = self.summary(st, n, self.args.seconds)
        if bad:
            return self.give_up(sl, f"{label}: {bad}")
        return self.finish(sl, res, label)

    # ------------------------------------------------------------------ Forward

    def start_forward(self, build):
        cfg = self.service() + f"""inputs:
  - type: forward
    name: f
    listen: 127.0.0.1:0
outputs:
  - type: elasticsearch
    hosts: [{self.es.url}]
    index: latency-${{tag}}
"""
        self.es.reset()
        sl = self.start_sluice(build, cfg)
        if not sl.wait_log(r"listening on 127\.0\.0\.1:\d+", 15):
            self.problems.append(f"forward {build}: sluice did not listen\n{sl.log_tail(10)}")
            sl.kill()
            return None, None
        port = re.search(r"listening on 127\.0\.0\.1:(\d+)", sl.text()).group(1)
        return sl, port

    def client(self, port, *args, timeout_s):
        cmd = [self.H.exe_alias(self.fwd_client, "bench-fwd-client"), "-p", port,
               "-s", str(self.args.size), "-T", "sent_ns", *map(str, args)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None, "fwd_client timed out"
        try:
            out = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            out = None
        if p.returncode != 0 or not out or out.get("errors"):
            return None, f"fwd_client exit {p.returncode}: {p.stderr[-300:]}"
        return out, None

    def run_forward(self, build, rate):
        label = f"forward {rate}/s {build}"
        sl, port = self.start_forward(build)
        if not sl:
            return None
        _, bad = self.client(port, "-n", 10, "-r", 100, "-c", 1, "-k", 16, timeout_s=60)
        if bad or not self.wait_created(10, 30):
            return self.give_up(sl, f"{label}: warm-up: {bad}\n{sl.log_tail(10)}")
        time.sleep(0.5)
        self.es.reset()
        n = int(rate * self.args.seconds)
        out, bad = self.client(port, "-n", n, "-r", rate, "-c", 1, "-k", 4096, "-b", 1000,
                               timeout_s=self.args.seconds + 120)
        st = self.wait_created(n, 30) if not bad else None
        if bad or st is None:
            return self.give_up(sl, f"{label}: {bad or 'esemu has %s of %d' % (self.stats()['created'], n)}"
                                    f"\n{sl.log_tail(10)}")
        res, bad = self.summary(st, n, self.args.seconds)
        if bad:
            return self.give_up(sl, f"{label}: {bad}")
        res.update({"ack_p50_ms": out["ack_ms"]["p50"], "ack_p99_ms": out["ack_ms"]["p99"]})
        return self.finish(sl, res, label)

    def run_sync(self, build):
        """One connection, one chunk of 1,000 events at a time: the client's rate is one chunk
        per ack."""
        label = f"sync {build}"
        sl, port = self.start_forward(build)
        if not sl:
            return None
        warm, bad = self.client(port, "-n", 2000, "-c", 1, "-k", 1, "-b", 1000, timeout_s=60)
        if bad:
            return self.give_up(sl, f"{label}: warm-up: {bad}\n{sl.log_tail(10)}")
        self.es.reset()
        # about --seconds of chunks at the rate this build showed in the warm-up (2 chunks), at
        # least 10 and at most --sync-events / 1,000
        chunks = max(10, min(self.args.sync_events // 1000,
                             int(warm["events_per_s"] / 1000 * self.args.seconds)))
        n = chunks * 1000
        out, bad = self.client(port, "-n", n, "-c", 1, "-k", 1, "-b", 1000,
                               timeout_s=max(120, chunks * 3))
        st = self.wait_created(n, 30) if not bad else None
        if bad or st is None:
            return self.give_up(sl, f"{label}: {bad or 'esemu has %s of %d' % (self.stats()['created'], n)}"
                                    f"\n{sl.log_tail(10)}")
        res, bad = self.summary(st, n, out["seconds"])
        if bad:
            return self.give_up(sl, f"{label}: {bad}")
        res.update({"client_eps": out["events_per_s"], "acks_per_s": out["events_per_s"] / 1000,
                    "ack_p50_ms": out["ack_ms"]["p50"], "ack_p99_ms": out["ack_ms"]["p99"],
                    "ack_max_ms": out["ack_ms"]["max"], "chunks": chunks})
        return self.finish(sl, res, label)

    # ------------------------------------------------------------------ rows

    def rows(self):
        """(path label, rate or None, function(build) -> result)"""
        a = self.args
        out = []
        for path in a.paths:
            for rate in a.rates:
                if path == "kafka-mock":
                    out.append(("Kafka (mock) -> esemu", rate,
                                lambda b, r=rate: self.run_kafka(b, "mock", r,
                                                                 a.mock_fetch_wait_ms)))
                elif path == "kafka-mock-100":
                    out.append(("Kafka (mock, fetch wait 100 ms) -> esemu", rate,
                                lambda b, r=rate: self.run_kafka(b, "mock", r)))
                elif path == "kafka-real":
                    out.append(("Kafka (4.4 broker) -> esemu", rate,
                                lambda b, r=rate: self.run_kafka(b, "real", r)))
                elif path == "forward":
                    out.append(("Forward -> esemu", rate,
                                lambda b, r=rate: self.run_forward(b, r)))
            if path == "sync":
                out.append(("sync Forward client, 1,000-event chunks", None, self.run_sync))
        return out

    def measure(self):
        builds = ["before", "after"] if self.args.baseline else ["after"]
        for label, rate, fn in self.rows():
            for build in builds:
                r = fn(build)
                path = "sync" if rate is None else label
                if r is None:
                    print(f"  {label:<42} {rate or '':>6} {build:<6} FAILED: "
                          f"{self.problems[-1].splitlines()[0]}", flush=True)
                    continue
                r.update({"path": path, "label": label, "rate": rate, "build": build,
                          "load": B.loadavg()})
                self.results.append(r)
                extra = (f"  acks/s {r['acks_per_s']:,.1f} (ack p50 {r['ack_p50_ms']:.1f} ms, "
                         f"p99 {r['ack_p99_ms']:.1f} ms)" if rate is None else "")
                print(f"  {label:<42} {rate or '':>6} {build:<6} p50 {r['p50_ms']:8.1f} ms  "
                      f"p99 {r['p99_ms']:8.1f} ms  max {r['max_ms']:8.1f} ms  "
                      f"{r['req_per_s']:7.1f} bulk req/s  {r['docs_per_req']:7.1f} docs/req"
                      f"{extra}  (load {r['load']})", flush=True)

    def tables(self):
        rows = [("path", "events/s", "build", "p50 ms", "p99 ms", "max ms", "bulk req/s",
                 "docs/req")]
        for r in self.results:
            if r["rate"] is None:
                continue
            rows.append((r["label"], f"{r['rate']:,}", r["build"], f"{r['p50_ms']:.1f}",
                         f"{r['p99_ms']:.1f}", f"{r['max_ms']:.1f}", f"{r['req_per_s']:.1f}",
                         f"{r['docs_per_req']:.1f}"))
        if len(rows) > 1:
            print(B.render(rows))
        sync = [r for r in self.results if r["rate"] is None]
        if sync:
            rows = [("synchronous Forward client, 1,000-event chunks, ack: delivered", "build",
                     "chunks", "events/s", "acks/s", "ack p50 ms", "ack p99 ms", "ack max ms")]
            for r in sync:
                rows.append(("fwd_client -c 1 -k 1 -b 1000", r["build"], str(r["chunks"]),
                             f"{r['client_eps']:,.0f}", f"{r['acks_per_s']:,.1f}",
                             f"{r['ack_p50_ms']:.1f}", f"{r['ack_p99_ms']:.1f}",
                             f"{r['ack_max_ms']:.1f}"))
            print()
            print(B.render(rows))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(B.SOURCE, "build"), help="cmake build directory")
    ap.add_argument("--baseline", help="another build directory: every row also runs its sluice "
                    "(before), back to back with this build's (after)")
    ap.add_argument("--rates", default="100,1000,10000",
                    help="comma list of records per second")
    ap.add_argument("--seconds", type=int, default=10, help="length of each measured run")
    ap.add_argument("--size", type=int, default=250, help="record size in bytes")
    ap.add_argument("--paths", default="forward,sync",
                    help="comma list of: kafka-mock, kafka-mock-100, kafka-real, forward, sync")
    ap.add_argument("--real-kafka", action="store_true",
                    help="add the path kafka-real: a Kafka 4.4 broker from the build tree's "
                         "servers/ (tests/servers/fetch.sh)")
    ap.add_argument("--mock-fetch-wait-ms", type=int, default=1,
                    help="fetch.wait.max.ms for sluice on the mock cluster (see above)")
    ap.add_argument("--sync-events", type=int, default=2000000,
                    help="most events of the synchronous client's run")
    ap.add_argument("--json", help="also write every run's numbers to this file")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    args.rates = [int(r) for r in args.rates.split(",") if r]
    args.paths = [p for p in args.paths.split(",") if p]
    if args.real_kafka and "kafka-real" not in args.paths:
        args.paths.insert(0, "kafka-real")
    for p in args.paths:
        if p not in ("kafka-mock", "kafka-mock-100", "kafka-real", "forward", "sync"):
            ap.error(f"unknown path {p}")
    H = B.import_harness(args.build)
    need = [H.ESEMU_BIN, H.SLUICE_BIN, os.path.join(args.build, "bench", "fwd_client")]
    if any(p.startswith("kafka-mock") for p in args.paths):
        need.append(H.MOCKKAFKA_BIN)
    if args.baseline:
        args.baseline = os.path.abspath(args.baseline)
        need.append(os.path.join(args.baseline, "sluice"))
    if not B.binaries_present(need):
        return 1
    load0 = B.header()
    with H.Procs() as procs:
        lat = Latency(args, H, procs)
        if any(p.startswith("kafka-mock") for p in args.paths):
            lat.mk = procs.add(H.MockKafka(topics=["warm:1"], workdir=lat.wd))
        if "kafka-real" in args.paths:
            sys.path.insert(0, os.path.join(B.SOURCE, "tests", "integration"))
            import realservers
            t0 = time.monotonic()
            lat.kafka = procs.add(realservers.KafkaServer(procs.tmpdir(prefix="kafka-")))
            print(f"Kafka 4.4 broker started in {time.monotonic() - t0:.1f} s", flush=True)
        lat.measure()
        load1 = B.loadavg()
        print()
        print(f"{args.seconds} s per run at each rate, ~{args.size} B records, one run per row "
              f"and build; latency from the producer's stamp to esemu's receipt, over every "
              f"document; load average before {load0}, after {load1}")
        lat.tables()
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"machine": B.machine(), "load_before": load0, "load_after": load1,
                           "results": lat.results, "problems": lat.problems}, f, indent=1)
        if lat.problems:
            print("\nPROBLEMS (these runs are not in the table):")
            print("\n".join(lat.problems))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
