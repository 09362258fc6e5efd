#!/usr/bin/python3
"""Shared helpers for sluice's end-to-end tests (tests/integration/test_core_*.py, scripts/demo.py).

Everything runs on loopback with ephemeral ports. Every process is started in its own session
(process group) and registered with a Procs collector, so `with Procs() as procs:` kills whatever is
still running when a test ends, passes or raises.

Pieces:
  MockKafka   tests/mockkafka/mockkafka over its stdin/stdout line protocol (one reply per command).
  EsEmu       tests/esemu/esemu: data port (Elasticsearch API) + control port (/_emu/*).
  Sluice      the binary under test: writes its YAML config into a temp dir, captures stderr to a
              file, samples /proc/PID/status for peak RSS, stops it with SIGTERM and parses the
              `final-stats {...}` line.
  Checker     pass/fail counting; the last line a test prints is `N passed, N failed`.
Only the Python standard library is used.
"""
import glob
import http.client
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

# Defaults found from this file's place in the tree (tests/integration/): the source is two levels
# up and the build is its build/; ctest sets both explicitly.
SOURCE = os.environ.get("SLUICE_SOURCE") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("SLUICE_BUILD") or os.path.join(SOURCE, "build")
SLUICE_BIN = os.path.join(BUILD, "sluice")
MOCKKAFKA_BIN = os.path.join(BUILD, "tests", "mockkafka", "mockkafka")
ESEMU_BIN = os.path.join(BUILD, "tests", "esemu", "esemu")

MIB = 1024 * 1024

# The machine is shared with people who stop their own processes by name (pkill sluice, killall
# esemu...). Our processes run through symlinks with neutral names from a neutral directory, so
# neither their comm nor their command line contains "sluice", "esemu" or "mockkafka"; /proc/PID/exe
# still points at the binary under test. SLUICE_IT_DIRECT=1 runs the binaries by their real paths.
_ALIAS_DIR = None


def exe_alias(path, alias):
    global _ALIAS_DIR
    if os.environ.get("SLUICE_IT_DIRECT"):
        return path
    if _ALIAS_DIR is None:
        import atexit
        import shutil
        _ALIAS_DIR = tempfile.mkdtemp(prefix="it-bin-")
        atexit.register(shutil.rmtree, _ALIAS_DIR, True)
    link = os.path.join(_ALIAS_DIR, alias)
    if not os.path.lexists(link):
        os.symlink(os.path.abspath(path), link)
    return link


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# pass/fail accounting


class Checker:
    """check() records one assertion. finish() prints `N passed, N failed` and exits."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.t0 = time.monotonic()

    def check(self, cond, what, detail=None):
        if cond:
            self.passed += 1
            print(f"PASS {what}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {what}" + (f": {detail}" if detail is not None else ""), flush=True)
        return bool(cond)

    def eq(self, got, want, what):
        return self.check(got == want, f"{what} (got {got!r}, want {want!r})")

    def crash(self, exc):
        """A test body raised: count it as a failure, with the traceback."""
        import traceback
        traceback.print_exception(type(exc), exc, exc.__traceback__)
        self.failed += 1
        print(f"FAIL {self.name}: exception {exc!r}", flush=True)

    def finish(self):
        log(f"{self.name}: {time.monotonic() - self.t0:.1f}s")
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed or not self.passed else 0)

    # `with ck:` runs a test's body: an exception in it is a failure with its traceback, not an
    # abort that skips the verdict; at the end the verdict is printed and the process exits.
    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        if isinstance(exc, Exception):
            self.crash(exc)
        elif exc is not None:
            return False  # SystemExit, KeyboardInterrupt: let them through
        self.finish()


def require_binaries(*paths):
    missing = [p for p in paths if not os.access(p, os.X_OK)]
    if missing:
        print(f"FAIL missing binaries (build first): {' '.join(missing)}")
        print("0 passed, 1 failed")
        sys.exit(1)


# --------------------------------------------------------------------------------------------
# processes


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A loopback port that was free a moment ago (for 'start later on this port'), chosen below
    the kernel's ephemeral range. A port from that range can be taken by any outgoing connection
    on the machine before the process meant to listen on it binds it: under `ctest -j4` a sluice
    started that way failed with 'Address already in use' (test_seed_chain, test_kafka_stranded)."""
    hi = _ephemeral_low()
    lo = 10000 if hi > 11000 else 1024
    for _ in range(200):
        port = random.randrange(lo, hi)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError(f"no free loopback port in {lo}-{hi - 1}")


def kill_group(proc, sig=signal.SIGKILL):
    """Signal a process's whole group (each helper is started with start_new_session)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        proc.send_signal(sig)


class Procs:
    """Context manager that kills every registered process group on exit."""

    def __init__(self):
        self.items = []
        self.tmpdirs = []

    def add(self, obj):
        self.items.append(obj)
        return obj

    def tmpdir(self, prefix="it-"):
        d = tempfile.mkdtemp(prefix=prefix)
        self.tmpdirs.append(d)
        return d

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for obj in reversed(self.items):
            try:
                obj.kill()
            except Exception as e:  # keep cleaning up
                print(f"cleanup: {e!r}")
        if not os.environ.get("SLUICE_KEEP_TMP"):
            import shutil
            for d in self.tmpdirs:
                shutil.rmtree(d, ignore_errors=True)
        return False


# --------------------------------------------------------------------------------------------
# mockkafka


class MockKafka:
    def __init__(self, topics=("logs:8",), brokers=1, workdir=None):
        self.workdir = workdir or tempfile.mkdtemp(prefix="mockkafka-")
        self.stderr_path = os.path.join(self.workdir, "mockkafka.log")
        args = [exe_alias(MOCKKAFKA_BIN, "it-kafka"), "--brokers", str(brokers)]
        for t in topics:
            args += ["--topic", t]
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, start_new_session=True)
        self.buf = b""
        first = self._line(20)
        if not first.startswith("bootstrap "):
            raise RuntimeError(f"mockkafka: unexpected first line {first!r}")
        self.bootstrap = first.split(" ", 1)[1].strip()

    def _line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("mockkafka did not answer in time")
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise EOFError("mockkafka closed stdout (exit %r)" % self.proc.poll())
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")

    def cmd(self, line, timeout=30):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        return self._line(timeout)

    def ok(self, line, timeout=30):
        r = self.cmd(line, timeout)
        if not r.startswith("ok"):
            raise RuntimeError(f"mockkafka {line[:80]!r} -> {r!r}")
        return r

    @staticmethod
    def _kv(reply):
        return dict(t.split("=", 1) for t in reply.split()[1:] if "=" in t)

    def produce(self, topic, count, **opts):
        extra = " ".join(f"{k}={v}" for k, v in opts.items() if v is not None)
        return self.ok(f"produce {topic} {count} {extra}".strip())

    def produce_raw(self, topic, partition, payload):
        """Produces one record with exactly these bytes; returns its offset."""
        import base64
        if isinstance(payload, str):
            payload = payload.encode()
        r = self.ok(f"produce-b64 {topic} {partition} {base64.b64encode(payload).decode()}")
        return int(self._kv(r)["offset"])

    def wait_produced(self, timeout_s=300):
        r = self.cmd(f"wait-produced {int(timeout_s * 1000)}", timeout=timeout_s + 30)
        if not r.startswith("ok"):
            raise RuntimeError(f"wait-produced -> {r!r}")
        return int(self._kv(r)["produced"])

    def status(self):
        return {k: int(v) for k, v in self._kv(self.ok("status")).items()}

    def watermarks(self, topic):
        """{partition: (low, high)}"""
        out = {}
        for k, v in self._kv(self.ok(f"watermarks {topic}")).items():
            lo, hi = v.split(":")
            out[int(k)] = (int(lo), int(hi))
        return out

    def committed(self, group, topic):
        """{partition: offset} (-1 or a negative logical offset when the group has none)"""
        return {int(k): int(v) for k, v in self._kv(self.ok(f"committed {group} {topic}")).items()}

    def stderr_text(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def kill(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=5)
            except Exception:
                pass
        kill_group(self.proc)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._err.close()


# --------------------------------------------------------------------------------------------
# esemu


class EsEmu:
    LINE = re.compile(r"listening on 127\.0\.0\.1:(\d+) control 127\.0\.0\.1:(\d+)")

    def __init__(self, port=0, count_only=False, workdir=None, extra=()):
        self.workdir = workdir or tempfile.mkdtemp(prefix="esemu-")
        self.log_path = os.path.join(self.workdir, "esemu.log")
        args = [exe_alias(ESEMU_BIN, "it-es"), "--listen", f"127.0.0.1:{port}"]
        if count_only:
            args.append("--count-only")
        args += list(extra)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 15
        m = None
        while time.monotonic() < deadline:
            with open(self.log_path, errors="replace") as f:
                m = self.LINE.search(f.read())
            if m or self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not m:
            kill_group(self.proc)
            raise RuntimeError(f"esemu did not start: {self.text()[-2000:]}")
        self.port, self.ctl_port = int(m.group(1)), int(m.group(2))
        self.url = f"http://127.0.0.1:{self.port}"

    def text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _req(self, method, path, body=None, port=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", port or self.ctl_port, timeout=timeout)
        try:
            data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
            headers = {"Content-Type": "application/json"} if data is not None else {}
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def ctl(self, method, path, body=None):
        st, data = self._req(method, path, body)
        if st != 200:
            raise RuntimeError(f"esemu {method} {path} -> {st} {data[:300]!r}")
        return json.loads(data) if data.strip().startswith(b"{") else data

    def faults(self, **kw):
        return self.ctl("POST", "/_emu/faults", kw)

    def clear_faults(self):
        return self.ctl("POST", "/_emu/faults", {})

    def stats(self):
        return self.ctl("GET", "/_emu/stats")

    def reset(self):
        return self.ctl("POST", "/_emu/reset")

    def down(self, ms):
        return self.ctl("POST", "/_emu/down", {"ms": ms})

    def docs(self):
        return int(self.stats()["docs"])

    def resources(self):
        """Stored resources: {"index_templates": {name: body}, "ilm_policies": {name: {version,
        policy}}, "data_streams": {name: {template, ilm_policy, backing_indices, docs}},
        "pipelines": {id: body}}."""
        return self.ctl("GET", "/_emu/resources")

    def dump(self):
        """Every stored document: list of dicts {_index, _id, _version, _source (parsed)}."""
        c = http.client.HTTPConnection("127.0.0.1", self.ctl_port, timeout=120)
        try:
            c.request("GET", "/_emu/dump")
            r = c.getresponse()
            if r.status != 200:
                raise RuntimeError(f"dump -> {r.status}")
            data = r.read()
        finally:
            c.close()
        out = []
        for line in data.split(b"\n"):
            if line.strip():
                out.append(json.loads(line))
        return out

    def wait_docs(self, n, timeout_s, every_s=5, label="esemu", stall_s=None):
        """Waits until esemu stores at least n docs; returns the last count. With stall_s, gives up
        early when the count has not moved for stall_s seconds."""
        deadline = time.monotonic() + timeout_s
        last_print = 0
        docs = -1
        moved = time.monotonic()
        while time.monotonic() < deadline:
            now_docs = self.docs()
            if now_docs != docs:
                moved = time.monotonic()
            docs = now_docs
            if docs >= n:
                return docs
            if stall_s and time.monotonic() - moved > stall_s:
                log(f"{label}: no progress for {stall_s}s at {docs}/{n} docs")
                return docs
            if time.monotonic() - last_print >= every_s:
                log(f"{label}: {docs}/{n} docs")
                last_print = time.monotonic()
            time.sleep(0.2)
        return docs

    def kill(self):
        kill_group(self.proc, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kill_group(self.proc)
            self.proc.wait(timeout=5)
        self._log.close()


# --------------------------------------------------------------------------------------------
# Forward protocol clients


class ForwardConn:
    """A raw Forward protocol connection (Debian's python3-msgpack): TCP to a port, or any
    connected socket (TLS, Unix). send() bytes; read_obj() the next msgpack object the server
    sends (an ack, HELO, PONG)."""

    def __init__(self, port=None, sock=None, timeout=10):
        import msgpack
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s = sock
        self.unp = msgpack.Unpacker(raw=False)

    def send(self, b):
        self.s.sendall(b)

    def read_obj(self, timeout):
        """The next msgpack object, or 'EOF' (closed or reset), 'TIMEOUT', or 'ERROR: <reason>'
        for any other socket or TLS error."""
        deadline = time.monotonic() + timeout
        while True:
            for o in self.unp:
                return o
            left = deadline - time.monotonic()
            if left <= 0:
                return "TIMEOUT"
            self.s.settimeout(left)
            try:
                data = self.s.recv(65536)
            except socket.timeout:
                return "TIMEOUT"
            except (ConnectionResetError, BrokenPipeError):
                return "EOF"
            except OSError as e:  # ssl.SSLError is one
                return f"ERROR: {e}"
            if not data:
                return "EOF"
            self.unp.feed(data)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


# --------------------------------------------------------------------------------------------
# TLS


def openssl(*args):
    """Runs the openssl CLI; raises when it fails."""
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(d):
    """CA, server cert (SAN IP:127.0.0.1, DNS:localhost), client cert, and an unrelated CA."""
    p = {}
    for ca in ("ca", "wrongca"):
        p[ca + "_key"], p[ca] = os.path.join(d, ca + ".key"), os.path.join(d, ca + ".crt")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                f"/CN=sluice test {ca}", "-keyout", p[ca + "_key"], "-out", p[ca])
    for who, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                "extendedKeyUsage=serverAuth\n"),
                     ("client", "extendedKeyUsage=clientAuth\n")):
        key, csr, crt, extf = (os.path.join(d, f"{who}.{x}") for x in ("key", "csr", "crt", "ext"))
        with open(extf, "w") as f:
            f.write(ext)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}", "-keyout", key,
                "-out", csr)
        openssl("x509", "-req", "-in", csr, "-CA", p["ca"], "-CAkey", p["ca_key"],
                "-CAcreateserial", "-days", "2", "-extfile", extf, "-out", crt)
        p[who + "_key"], p[who] = key, crt
    return p


# --------------------------------------------------------------------------------------------
# sluice


def config_text(cfg):
    """A configuration dict as the text sluice reads: JSON, which is YAML."""
    return json.dumps(cfg, indent=2) + "\n"


def merged(base, changes):
    """base with changes applied: a value replaces the key, None removes it (for nested keys,
    pass the nested dict whole)."""
    out = dict(base)
    for k, v in (changes or {}).items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def service(workdir, dead_letter="dead-letter", **keys):
    """The service section: its own status port (http_listen="off" for none) and a dead-letter
    folder in workdir, plus keys."""
    return merged({"memory_limit": "64MiB", "http_listen": f"127.0.0.1:{free_port()}",
                   "dead_letter": {"path": os.path.join(workdir, dead_letter)}}, keys)


def kafka_input(brokers, group, topics, name="k", **keys):
    """A Kafka input with the group timing every test against the mock cluster uses (its first
    join waits session.timeout.ms - 1000), records' `time` as their timestamp."""
    return merged({"type": "kafka", "name": name, "brokers": brokers, "group_id": group,
                   "topics": list(topics), "time_key": "time",
                   "librdkafka": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}},
                  keys)


def forward_input(name="f", listen="127.0.0.1:0", **keys):
    return merged({"type": "forward", "name": name, "listen": listen}, keys)


def es_output(url, name="es", **keys):
    """An Elasticsearch output to one URL or a list of them."""
    hosts = list(url) if isinstance(url, (list, tuple)) else [url]
    return merged({"type": "elasticsearch", "name": name, "hosts": hosts}, keys)


def forward_output(servers, name="fwd", **keys):
    """A Forward output to ports on 127.0.0.1 (or host:port strings)."""
    addrs = [s if isinstance(s, str) else f"127.0.0.1:{s}" for s in servers]
    return merged({"type": "forward", "name": name, "servers": addrs}, keys)


def config(service, inputs, outputs):
    return {"service": service, "inputs": list(inputs), "outputs": list(outputs)}


def sluice_config(*, brokers, es_url, workdir, group="sluice-test", topics=("logs",),
                  memory_limit="16MiB", unmatched="dead_letter", shutdown_timeout="30s",
                  match="kafka.**", fmt="json", on_parse_error="dead_letter",
                  batch_max_bytes="1MiB", batch_max_wait="200ms", concurrency=4,
                  compression="none", log_level="info", input_name="k", dl_max_size="1GiB",
                  output_extra=None, inp=None, service=None, librdkafka=None):
    """One Kafka input, one Elasticsearch output, as a dict (Sluice() takes it; config_text()
    writes it). es_url: a URL or a list of them. output_extra, inp, service: keys added to or
    replaced in the output, the input and the service section (None removes a key);
    librdkafka: properties added to the input's pass-through."""
    svc = {"memory_limit": memory_limit, "http_listen": f"127.0.0.1:{free_port()}",
           "dead_letter": {"path": f"{workdir}/dead-letter", "max_size": dl_max_size},
           "shutdown_timeout": shutdown_timeout, "unmatched": unmatched, "log_level": log_level}
    kafka = {"type": "kafka", "name": input_name, "brokers": brokers, "group_id": group,
             "topics": list(topics), "tag": "kafka.${topic}", "format": fmt,
             "on_parse_error": on_parse_error, "time_key": "time",
             "librdkafka": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500",
                            **(librdkafka or {})}}
    es = {"type": "elasticsearch", "name": "es", "match": match,
          "hosts": list(es_url) if isinstance(es_url, (list, tuple)) else [es_url],
          "index": "logs-${topic}-%Y.%m.%d", "id": "kafka", "op": "create",
          "batch_max_bytes": batch_max_bytes, "batch_max_wait": batch_max_wait,
          "concurrency": concurrency, "compression": compression}
    return {"service": merged(svc, service), "inputs": [merged(kafka, inp)],
            "outputs": [merged(es, output_extra)]}


def status_port(cfg):
    """The status server's port of a configuration dict."""
    return int(cfg["service"]["http_listen"].rsplit(":", 1)[1])


def proc_status(pid):
    """{'VmHWM': kB, 'VmRSS': kB} from /proc/PID/status, or {} when gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


class RssSampler(threading.Thread):
    """Samples VmHWM/VmRSS every `interval` s; peak_hwm_kb survives the process's exit."""

    def __init__(self, pid, interval=0.1):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_hwm_kb = 0
        self.peak_rss_kb = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            st = proc_status(self.pid)
            if not st:
                break
            self.samples += 1
            self.peak_hwm_kb = max(self.peak_hwm_kb, st.get("VmHWM", 0))
            self.peak_rss_kb = max(self.peak_rss_kb, st.get("VmRSS", 0))
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(timeout=2)


class Sluice:
    _n = 0

    def __init__(self, config, workdir, env=None, wrapper=(), binary=None):
        """config: a dict (sluice_config(), config_text()) or the text itself. binary: another
        sluice executable (a baseline build in benchmarks)."""
        text = config_text(config) if isinstance(config, dict) else config
        if "http_listen" not in text:
            # The default (127.0.0.1:2020) is one port for every sluice on the machine: tests
            # run in parallel (and a sluice the user runs) failed to start on it.
            raise ValueError("a test's sluice needs its own status port: set service.http_listen "
                             "(127.0.0.1:<free_port()>)")
        Sluice._n += 1
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.config_path = os.path.join(workdir, f"shipper-{Sluice._n}.yaml")
        self.stderr_path = os.path.join(workdir, f"shipper-{Sluice._n}.log")
        with open(self.config_path, "w") as f:
            f.write(text)
        self._err = open(self.stderr_path, "wb")
        exe = exe_alias(binary, "it-shipper-b") if binary else exe_alias(SLUICE_BIN, "it-shipper")
        self.proc = subprocess.Popen([*wrapper, exe, "-c",
                                      self.config_path],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._err, stderr=self._err,
                                     start_new_session=True, env=env)
        self.pid = self.proc.pid
        self.rss = RssSampler(self.pid)
        self.rss.start()
        self.exit_code = None
        self.stop_seconds = None
        self.sent_term = False

    def alive(self):
        return self.proc.poll() is None

    def text(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def lines(self, pattern):
        rx = re.compile(pattern)
        return [ln for ln in self.text().splitlines() if rx.search(ln)]

    def wait_log(self, pattern, timeout_s):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if rx.search(self.text()):
                return True
            if not self.alive():
                return bool(rx.search(self.text()))
            time.sleep(0.1)
        return False

    def wait_lines(self, pattern, count, timeout_s):
        """Waits until the log has at least count lines matching pattern (e.g. the count before a
        fault cycle + 1: a new line in this cycle)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.lines(pattern)) >= count:
                return True
            if not self.alive():
                break
            time.sleep(0.1)
        return len(self.lines(pattern)) >= count

    def terminate(self, timeout_s=60):
        """SIGTERM, wait up to timeout_s; returns the exit code (None: had to SIGKILL)."""
        t0 = time.monotonic()
        if self.alive():
            self.sent_term = True
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stacks(f"did not exit {timeout_s}s after SIGTERM")
            kill_group(self.proc)
            self.proc.wait(timeout=10)
            self.exit_code = None
        self.stop_seconds = time.monotonic() - t0
        self.rss.stop()
        self._err.flush()
        return self.exit_code

    def foreign_signal(self):
        """Log lines showing a SIGTERM/SIGINT that this harness did not send (someone else on the
        machine signalled our process); empty when none."""
        if self.sent_term:
            return []
        return self.lines(r"signal (15|2): draining")

    def stacks(self, why):
        """Evidence for a hang: every thread's backtrace (gdb, if installed) into the log dir."""
        path = self.stderr_path.replace(".log", ".stacks")
        if not self.alive() or not os.access("/usr/bin/gdb", os.X_OK):
            return None
        try:
            out = subprocess.run(["/usr/bin/gdb", "-p", str(self.pid), "-batch", "-nx",
                                  "-ex", "thread apply all bt 25"], capture_output=True,
                                 timeout=60).stdout.decode(errors="replace")
        except Exception as e:
            out = f"gdb failed: {e!r}"
        with open(path, "w") as f:
            f.write(out)
        frames = [ln for ln in out.splitlines() if ln.startswith(("Thread ", "#"))]
        log(f"sluice pid {self.pid} {why}; stacks in {path}; main thread:")
        main = []
        for ln in out.splitlines():
            if ln.startswith("Thread ") and main:
                break
            if ln.startswith("Thread 1 ") or main:
                main.append(ln)
        print("\n".join((main or frames)[:20]), flush=True)
        return path

    def kill9(self):
        kill_group(self.proc, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.rss.stop()
        self.exit_code = self.proc.returncode

    def kill(self):
        if self.alive():
            self.kill9()
        self.rss.stop()
        try:
            self._err.close()
        except Exception:
            pass

    def final_stats(self):
        """The parsed JSON of the last `final-stats ` line, or None."""
        found = None
        for ln in self.text().splitlines():
            i = ln.find("final-stats ")
            if i >= 0:
                try:
                    found = json.loads(ln[i + len("final-stats "):])
                except ValueError:
                    found = {"_unparsable": ln}
        return found

    def stat_values(self, key):
        """All values of `key=N` in the periodic stats lines, in order."""
        return [int(m.group(1)) for m in re.finditer(rf"\b{re.escape(key)}=(\d+)", self.text())]

    def log_tail(self, n=30):
        return "\n".join(self.text().splitlines()[-n:])

    def metrics(self, name, timeout=5):
        """[(labels dict, value)] of the samples called `name` on this sluice's /metrics (its
        port from the config); [] when the server does not answer."""
        m = re.search(r'http_listen"?: *"?127\.0\.0\.1:(\d+)', open(self.config_path).read())
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{m.group(1)}/metrics",
                                        timeout=timeout) as r:
                text = r.read().decode()
        except OSError:
            return []
        out = []
        for ln in text.splitlines():
            if not (ln.startswith(name + "{") or ln.startswith(name + " ")):
                continue
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', ln.rsplit(" ", 1)[0]))
            out.append((labels, float(ln.rsplit(" ", 1)[1])))
        return out


# --------------------------------------------------------------------------------------------
# assertions over the results


# ---- tmpfs for disk-fault tests (mount needs root; callers skip when it fails)

def mount_tmpfs(path, size):
    """Mounts a tmpfs of `size` at path; returns None, or why it could not."""
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                       capture_output=True, text=True)
    return None if r.returncode == 0 else (r.stderr.strip() or f"exit {r.returncode}")


def umount(path):
    subprocess.run(["mount", "-o", "remount,rw", path], capture_output=True)
    subprocess.run(["umount", "-l", path], capture_output=True)


def remount(path, mode, timeout_s=10, every_s=0.02):
    """mount -o remount,MODE. A read-only remount fails (busy) while a file on it is open for
    writing; sluice's stores keep files open only while they write, so this retries until it
    falls between two writes. Returns (None or the last error, tries)."""
    deadline = time.monotonic() + timeout_s
    err, tries = "", 0
    while time.monotonic() < deadline:
        tries += 1
        r = subprocess.run(["mount", "-o", f"remount,{mode}", path], capture_output=True,
                           text=True)
        if r.returncode == 0:
            return None, tries
        err = r.stderr.strip()
        time.sleep(every_s)
    return err, tries


def dead_letters(dl_dir):
    """All dead-letter records (parsed) from dl_dir/**.ndjson; bad lines as {'_bad': text}."""
    out = []
    for path in sorted(glob.glob(os.path.join(dl_dir, "**", "*.ndjson"), recursive=True)):
        with open(path, "rb") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({"_bad": line[:200]})
    return out


def seq_of(doc):
    src = doc.get("_source")
    if isinstance(src, dict):
        return src.get("seq")
    return None


def seq_report(docs, expected):
    """Compares the seqs in docs with the set `expected` (a range or set).
    Returns dict(docs, unique, missing, dupes, unexpected, no_seq) with counts and examples."""
    seen = {}
    no_seq = 0
    for d in docs:
        s = seq_of(d)
        if s is None:
            no_seq += 1
            continue
        seen[s] = seen.get(s, 0) + 1
    exp = expected if isinstance(expected, (set, frozenset)) else set(expected)
    missing = [s for s in exp if s not in seen]
    dupes = [s for s, n in seen.items() if n > 1]
    unexpected = [s for s in seen if s not in exp]
    return {"docs": len(docs), "unique": len(seen), "missing": len(missing),
            "missing_ex": sorted(missing)[:10], "dupes": len(dupes), "dupes_ex": sorted(dupes)[:10],
            "unexpected": len(unexpected), "unexpected_ex": sorted(unexpected)[:10],
            "no_seq": no_seq, "seen": seen}


def check_every_seq_once(ck, docs, expected, what="documents"):
    r = seq_report(docs, expected)
    n = len(expected)
    ck.check(r["missing"] == 0, f"{what}: no seq missing",
             f"{r['missing']} missing, e.g. {r['missing_ex']}")
    ck.check(r["dupes"] == 0 and r["no_seq"] == 0 and r["docs"] == r["unique"],
             f"{what}: no seq twice (docs {r['docs']} == unique {r['unique']})",
             f"{r['dupes']} seqs duplicated e.g. {r['dupes_ex']}, {r['no_seq']} docs without seq")
    ck.check(r["unexpected"] == 0, f"{what}: no unexpected seq",
             f"{r['unexpected']} e.g. {r['unexpected_ex']}")
    ck.check(r["docs"] == n, f"{what}: exactly {n} documents (got {r['docs']})")
    return r


def check_conservation(ck, fs, input_name="k", label=""):
    """received = delivered + dead_lettered + dropped and in_flight == 0 in final-stats."""
    if not ck.check(fs is not None and "inputs" in fs, f"{label}final-stats line present and parsed",
                    fs):
        return None
    i = fs["inputs"].get(input_name)
    if not ck.check(i is not None, f"{label}final-stats has input {input_name}", fs):
        return None
    ck.check(i["received"] == i["delivered"] + i["dead_lettered"] + i["dropped"],
             f"{label}conservation: received {i['received']} == delivered {i['delivered']} + "
             f"dead_lettered {i['dead_lettered']} + dropped {i['dropped']}")
    ck.eq(i["in_flight"], 0, f"{label}final-stats in_flight")
    return i


def check_broker_dropped(ck, mk, label=""):
    st = mk.status()
    ck.eq(st.get("broker_dropped"), 0, f"{label}mockkafka broker_dropped (loss inside the mock)")
    return st


def check_low_watermarks(ck, mk, topic):
    wm = mk.watermarks(topic)
    lows = {p: lo for p, (lo, hi) in wm.items() if lo != 0}
    ck.check(not lows, f"mock kept all of {topic} (every low watermark is 0)", lows)
    return wm


def events_per_second(stats, n_docs):
    a, b = int(stats.get("first_doc_ns") or 0), int(stats.get("last_doc_ns") or 0)
    if b <= a:
        return float("nan")
    return n_docs / ((b - a) / 1e9)


def rand_sleep(lo, hi, rng=random):
    time.sleep(rng.uniform(lo, hi))
