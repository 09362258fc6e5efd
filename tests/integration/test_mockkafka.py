#!/usr/bin/python3
"""Integration test for tests/mockkafka: drives the helper over its stdin protocol and checks it
with independent clients (python3-confluent-kafka and kcat) over real Kafka wire protocol."""
import base64
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

BUILD = os.environ.get("SLUICE_BUILD") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build")
MOCKKAFKA = os.path.join(BUILD, "tests", "mockkafka", "mockkafka")
TIME_BASE_MS = 1795737600000  # 2026-11-27T00:00:00Z

results = {"passed": 0, "failed": 0}


def check(cond, what):
    if cond:
        results["passed"] += 1
        print(f"PASS {what}")
    else:
        results["failed"] += 1
        print(f"FAIL {what}")
    return cond


class Mock:
    def __init__(self, *args):
        self.stderr = tempfile.NamedTemporaryFile(prefix="mockkafka-", suffix=".log", delete=False)
        self.tmpdir = tempfile.mkdtemp(prefix="mockkafka-")
        self.bsfile = os.path.join(self.tmpdir, "bootstrap")
        self.proc = subprocess.Popen(
            [MOCKKAFKA, *args, "--bootstrap-file", self.bsfile],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.buf = b""
        first = self._line(10)
        if not first.startswith("bootstrap "):
            raise RuntimeError(f"unexpected first line {first!r}")
        self.bootstrap = first.split(" ", 1)[1]

    def _line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("mockkafka did not answer")
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise EOFError("mockkafka closed stdout")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def cmd(self, line, timeout=30):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        return self._line(timeout)

    def kv(self, line, timeout=30):
        """Send a command expected to succeed; return its key=value fields."""
        r = self.cmd(line, timeout)
        if not r.startswith("ok"):
            raise RuntimeError(f"{line!r} -> {r!r}")
        return dict(tok.split("=", 1) for tok in r.split()[1:])

    def stderr_text(self):
        with open(self.stderr.name, errors="replace") as f:
            return f.read()

    def close(self):
        if self.proc.poll() not in (None, 0):  # show why it died (sanitizer reports land here)
            print(self.stderr_text()[-4000:])
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.unlink(self.stderr.name)
        if os.path.exists(self.bsfile):
            os.unlink(self.bsfile)
        os.rmdir(self.tmpdir)


def consumer(bootstrap, group, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "range",
        "enable.auto.commit": False,
    }
    conf.update(extra)
    return Consumer(conf)


def consume_n(c, n, deadline_s, every=None):
    """Consume until n messages arrived or the deadline passed; `every` runs after each batch."""
    out = []
    deadline = time.monotonic() + deadline_s
    while len(out) < n and time.monotonic() < deadline:
        for m in c.consume(num_messages=5000, timeout=0.5):
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(m.error())
                continue
            out.append(m)
        if every:
            every(out)
    return out


def parse_pairs(reply_fields):
    return {int(k): v for k, v in reply_fields.items()}


def check_records(msgs, n, parts, what):
    seqs = []
    bad_json = bad_part = bad_key = bad_ts = 0
    sizes = []
    last_seq = {}
    out_of_order = 0
    for m in msgs:
        v = m.value()
        sizes.append(len(v))
        try:
            rec = json.loads(v.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            bad_json += 1
            continue
        s = rec["seq"]
        seqs.append(s)
        bad_part += m.partition() != s % parts
        bad_key += m.key() != str(s).encode()
        ts_type, ts = m.timestamp()
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((TIME_BASE_MS + s) // 1000))
        bad_ts += ts != TIME_BASE_MS + s or rec["time"] != f"{t}.{(TIME_BASE_MS + s) % 1000:03d}Z"
        out_of_order += last_seq.get(m.partition(), -1) > s
        last_seq[m.partition()] = s
    check(bad_json == 0, f"{what}: every record is UTF-8 JSON ({bad_json} bad)")
    check(sorted(seqs) == list(range(n)), f"{what}: seq 0..{n - 1} each exactly once "
          f"(got {len(seqs)}, {len(set(seqs))} distinct)")
    check(bad_part == 0, f"{what}: partition == seq % {parts} ({bad_part} wrong)")
    check(bad_key == 0, f"{what}: key is the decimal seq ({bad_key} wrong)")
    check(bad_ts == 0, f"{what}: time field and Kafka timestamp == base + seq ms ({bad_ts} wrong)")
    check(out_of_order == 0, f"{what}: seq increases with offset inside each partition")
    if sizes:
        mean = sum(sizes) / len(sizes)
        check(240 <= min(sizes) and max(sizes) <= 320 and abs(mean - 250) < 5,
              f"{what}: sizes about 250 B (min {min(sizes)} max {max(sizes)} mean {mean:.1f})")
    levels = {json.loads(m.value())["level"] for m in msgs[:2000]}
    services = {json.loads(m.value())["service"] for m in msgs[:2000]}
    check(len(levels) >= 3 and len(services) >= 5,
          f"{what}: varied content (levels {sorted(levels)}, {len(services)} services)")


def test_basic(mk):
    # 1. produce 20,000 records and read them back with an independent client
    t0 = time.monotonic()
    check(mk.cmd("produce logs 20000") == "ok", "produce replies ok at once")
    st = mk.kv("status", timeout=2)
    check(time.monotonic() - t0 < 1.0, "status answers while a job runs")
    w = mk.kv("wait-produced 20000")
    check(w.get("produced") == "20000", f"wait-produced produced=20000 ({w})")
    st = mk.kv("status")
    check(st["delivered"] == "20000" and st["failed"] == "0" and st["jobs_running"] == "0"
          and st["broker_dropped"] == "0", f"status after job: {st}")
    with open(mk.bsfile) as f:
        check(f.read().strip() == mk.bootstrap, "--bootstrap-file holds the bootstrap list")

    c = consumer(mk.bootstrap, "t1")
    assigned = []
    c.subscribe(["logs"], on_assign=lambda cons, parts: assigned.append(len(parts)))
    msgs = consume_n(c, 20000, 20)
    check(len(msgs) == 20000, f"consumer in group t1 got 20000 records ({len(msgs)})")
    check_records(msgs, 20000, 4, "basic")

    # 2. commit from the consumer; the mock must report the same offsets and watermarks
    c.commit(asynchronous=False)
    theirs = {tp.partition: tp.offset for tp in
              c.committed([TopicPartition("logs", p) for p in range(4)], timeout=10)}
    ours = {p: int(v) for p, v in parse_pairs(mk.kv("committed t1 logs")).items()}
    check(ours == theirs == {p: 5000 for p in range(4)},
          f"committed t1 logs matches consumer ({ours} vs {theirs})")
    check(mk.kv("committed nobody logs") == {str(p): "-1" for p in range(4)},
          "committed of an unknown group is -1")
    wm = parse_pairs(mk.kv("watermarks logs"))
    theirs_wm = {p: "%d:%d" % c.get_watermark_offsets(TopicPartition("logs", p), timeout=10)
                 for p in range(4)}
    check(wm == theirs_wm == {p: "0:5000" for p in range(4)}, f"watermarks match ({wm})")

    # push-errors: the next OffsetCommit fails with the injected error, the one after succeeds
    # Explicit offsets: a plain commit() of unchanged positions sends no request (_NO_OFFSET).
    offs = [TopicPartition("logs", p, 5000) for p in range(4)]
    check(mk.cmd("push-errors OffsetCommit 1 REBALANCE_IN_PROGRESS") == "ok", "push-errors ok")
    try:
        c.commit(offsets=offs, asynchronous=False)
        got = None
    except KafkaException as e:
        got = e.args[0].code()
    check(got == KafkaError.REBALANCE_IN_PROGRESS, f"injected OffsetCommit error seen ({got})")
    try:
        c.commit(offsets=offs, asynchronous=False)
        ok = True
    except KafkaException as e:
        ok = e
    check(ok is True, f"commit after the injected error succeeds ({ok})")
    check(mk.cmd("push-errors Fetch 1 NO_SUCH_ERROR").startswith("err"), "unknown error name")
    check(mk.cmd("push-errors 1 2 _TRANSPORT 6") == "ok", "numeric ApiKey and error code")
    check(mk.cmd("leader logs 0 2") == "ok" and mk.cmd("coordinator t9 3") == "ok"
          and mk.cmd("rtt 1 0") == "ok", "leader/coordinator/rtt ok")
    check(mk.cmd("produce nosuchtopic 5").startswith("err"), "produce to unknown topic fails")
    check(len(assigned) == 1, f"group t1 assigned once, no rebalance ({assigned})")
    c.close()


def test_binary(mk):
    # 4. produce-b64 is byte-exact for NUL bytes, invalid UTF-8, and a multi-MB payload
    payloads = [b"\x00\x01{\"not json\xff\xfe\x00" + bytes(range(256)),
                os.urandom(3 * 1024 * 1024)]
    offsets = []
    for i, p in enumerate(payloads):
        key = base64.b64encode(b"k\x00" + bytes([i])).decode()
        r = mk.cmd(f"produce-b64 bin 0 {base64.b64encode(p).decode()} key={key}")
        check(r.startswith("ok offset="), f"produce-b64 #{i} ({len(p)} B): {r[:40]}")
        offsets.append(int(r.split("=")[1]) if r.startswith("ok offset=") else -1)
    check(offsets == [0, 1], f"offsets are 0 and 1 ({offsets})")
    check(mk.cmd("produce-b64 bin 0 !!!notbase64").startswith("err"), "bad base64 rejected")
    c = consumer(mk.bootstrap, "bin-reader")
    c.assign([TopicPartition("bin", 0, 0)])
    msgs = consume_n(c, 2, 15)
    check([m.value() for m in msgs] == payloads, "binary payloads consumed byte-exact")
    check([m.key() for m in msgs] == [b"k\x00\x00", b"k\x00\x01"], "binary keys byte-exact")
    c.close()


def test_broker_down(mk):
    # 5. broker-down -1 makes clients see all brokers down; broker-up -1 recovers
    errors, reports = [], []
    p = Producer({"bootstrap.servers": mk.bootstrap, "message.timeout.ms": 20000,
                  "error_cb": lambda e: errors.append(e.code())})
    p.produce("bin", b"before", partition=0, on_delivery=lambda e, m: reports.append(e))
    p.flush(10)
    check(reports == [None], "producer delivers before broker-down")
    check(mk.cmd("broker-down -1") == "ok", "broker-down -1")
    p.produce("bin", b"during", partition=0, on_delivery=lambda e, m: reports.append(e))
    deadline = time.monotonic() + 8
    while KafkaError._ALL_BROKERS_DOWN not in errors and time.monotonic() < deadline:
        p.poll(0.2)
    check(KafkaError._ALL_BROKERS_DOWN in errors, "producer sees all brokers down")
    check(len(reports) == 1, "message is not delivered while brokers are down")
    check(mk.cmd("broker-up -1") == "ok", "broker-up -1")
    p.flush(15)
    check(reports == [None, None], f"message delivered after broker-up ({reports})")


def test_kcat(mk):
    # 6. kcat reads from it
    r = subprocess.run(["kcat", "-b", mk.bootstrap, "-C", "-t", "logs", "-c", "10", "-e"],
                       capture_output=True, timeout=30)
    lines = r.stdout.decode("utf-8", "replace").splitlines()
    ok = r.returncode == 0 and len(lines) == 10
    try:
        ok = ok and all(isinstance(json.loads(ln)["seq"], int) for ln in lines)
    except ValueError:
        ok = False
    check(ok, f"kcat -C read 10 JSON records (rc={r.returncode}, {len(lines)} lines)")


def test_loss_guard(mk):
    # Without group=, an oversized backlog must be *reported* as a broker drop, not hidden.
    mk.kv("produce small 30000")
    mk.kv("wait-produced 20000")
    time.sleep(0.3)
    lo = int(mk.kv("watermarks small")["0"].split(":")[0])
    st = mk.kv("status")
    check(lo > 0, f"30000 x 250 B on one partition exceeds mock retention (low watermark {lo})")
    check(int(st["broker_dropped"]) == lo, f"broker_dropped == low watermark ({st}, lo={lo})")
    check("BROKER DROPPED" in mk.stderr_text(), "broker drop is announced on stderr")


def test_throttle():
    # 3. group= throttle keeps the uncommitted backlog under max_lag_bytes per partition
    mk = Mock("--topic", "logs:4")
    try:
        total = 200000
        check(mk.cmd(f"produce logs {total} group=t2 max_lag_bytes=1048576") == "ok",
              "throttled produce accepted")
        time.sleep(2)
        p1 = int(mk.kv("status")["produced"])
        p2 = -1
        deadline = time.monotonic() + 8  # a loaded machine may still be ramping up at 2 s
        while p2 != p1 and time.monotonic() < deadline:
            time.sleep(0.5)
            p1, p2 = int(mk.kv("status")["produced"]), p1
        limit = 4 * 1048576 // 250
        check(limit * 0.9 < p1 <= limit and p2 == p1,
              f"without a consumer the job stalls at about {limit} (produced {p1}, then {p2})")
        check(mk.cmd("wait-produced 200").startswith("err timeout"), "wait-produced times out")

        c = consumer(mk.bootstrap, "t2")
        assigned = []
        c.subscribe(["logs"], on_assign=lambda cons, parts: assigned.append(len(parts)))
        state = {"since": 0}

        def commit(out):
            if len(out) - state["since"] >= 4000:
                c.commit(asynchronous=False)
                state["since"] = len(out)

        t0 = time.monotonic()
        msgs = consume_n(c, total, 60, every=commit)
        try:
            c.commit(asynchronous=False)
        except KafkaException as e:  # the periodic commit may already have covered the tail
            if e.args[0].code() != KafkaError._NO_OFFSET:
                raise
        dt = time.monotonic() - t0
        w = mk.kv("wait-produced 20000")
        st = mk.kv("status")
        check(len(msgs) == total and w["produced"] == str(total),
              f"consumer in t2 unblocks the job ({len(msgs)} consumed in {dt:.1f}s)")
        seqs = sorted(json.loads(m.value())["seq"] for m in msgs)
        check(seqs == list(range(total)), "every seq arrived exactly once under throttle")
        check(st["broker_dropped"] == "0", f"broker_dropped=0 ({st})")
        lows = [int(v.split(":")[0]) for v in mk.kv("watermarks logs").values()]
        check(all(lo > 0 for lo in lows),
              f"retention did drop consumed data (lows {lows}), so the throttle mattered")
        check(assigned == [4], f"committed-offset polling caused no rebalance ({assigned})")
        c.close()
        mk.proc.send_signal(signal.SIGTERM)
        check(mk.proc.wait(10) == 0, "SIGTERM exits 0")
    finally:
        mk.close()


def main():
    if not os.access(MOCKKAFKA, os.X_OK):
        print(f"FAIL mockkafka binary not found at {MOCKKAFKA}")
        print("0 passed, 1 failed")
        return 1
    mk = Mock("--brokers", "3", "--topic", "logs:4", "--topic", "bin:1", "--topic", "small:1")
    try:
        for t in (test_basic, test_binary, test_broker_down, test_kcat, test_loss_guard):
            try:
                t(mk)
            except Exception as e:  # report and keep going so one failure shows the rest
                check(False, f"{t.__name__} raised {type(e).__name__}: {e}")
        mk.proc.stdin.close()
        check(mk.proc.wait(15) == 0, "EOF on stdin exits 0")
    finally:
        mk.close()
    try:
        test_throttle()
    except Exception as e:
        check(False, f"test_throttle raised {type(e).__name__}: {e}")
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
