#!/usr/bin/python3
"""Real servers for the real-server tests (test_real_*.py): an Apache Kafka broker (4.4, KRaft,
one node that is broker and controller) and an OpenSearch node (2.19), both from Maven Central.

tests/servers/fetch.sh resolves their jars into $SLUICE_BUILD/servers once (ctest runs it as the
fixture `servers.fetch`); this module starts them on loopback ports chosen free, in a work folder
of the test's, and stops, kills (-9) and restarts them on the same data.

  kafka = KafkaServer(workdir)          # formatted and started; kafka.bootstrap = "127.0.0.1:P"
  kafka.create_topic("logs", 8)
  produce(kafka.bootstrap, "logs", records, compression="zstd")
  kafka.kill9(); kafka.start()          # same ports, same log
  osn = OpenSearch(workdir)             # started, replicas 0, green; osn.url
  osn.req("GET", "/")

A missing Java, Maven or jar is a failure with a message saying what to install, never a skip.
The Kafka clients are Debian's python3-confluent-kafka (an independent client, librdkafka-based)
and kcat.
"""
import base64
import http.client
import json
import os
import re
import signal
import subprocess
import time
import uuid

from harness import BUILD, config_text, free_port, kill_group, log, merged

SERVERS = os.path.join(BUILD, "servers")
JAVA = os.environ.get("SLUICE_JAVA", "java")


class ServerMissing(RuntimeError):
    pass


def _jars(name):
    lib = os.path.join(SERVERS, name, "lib")
    if not os.path.isdir(lib) or not os.listdir(lib):
        raise ServerMissing(
            f"{name}'s jars are not in {lib}: run tests/servers/fetch.sh {SERVERS} (ctest runs "
            "it as servers.fetch; it needs openjdk-17-jdk-headless and maven from Debian)")
    return lib


def _java_ok():
    try:
        subprocess.run([JAVA, "-version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise ServerMissing(f"java does not run ({e}): apt-get install openjdk-17-jdk-headless")


def _proc_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class _JavaServer:
    """A JVM in its own session whose output goes to a new log file per start."""
    name = "server"

    def __init__(self, workdir):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.proc = None
        self.starts = 0
        self.start_seconds = []
        self.peak_rss_kb = 0
        self._log = None
        self.log_path = None

    def _spawn(self, args, env=None):
        self.starts += 1
        self.log_path = os.path.join(self.workdir, f"{self.name}-{self.starts}.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     env=env, cwd=self.workdir)

    def text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self):
        if not self.alive():
            return 0
        kb = _proc_rss_kb(self.proc.pid)
        self.peak_rss_kb = max(self.peak_rss_kb, kb)
        return kb

    def _wait_ready(self, ready, timeout_s, t0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():
                secs = time.monotonic() - t0
                self.start_seconds.append(secs)
                log(f"{self.name}: ready in {secs:.1f}s (pid {self.proc.pid})")
                return
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) while starting:\n"
                                   + self.text()[-3000:])
            time.sleep(0.1)
        tail = self.text()[-3000:]
        self.kill9()
        raise RuntimeError(f"{self.name} not ready after {timeout_s}s:\n{tail}")

    def kill9(self):
        """SIGKILL, as a crash: nothing is flushed or closed."""
        if self.proc is None:
            return
        self.rss_kb()
        kill_group(self.proc, signal.SIGKILL)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()

    def stop(self, timeout_s=30):
        """SIGTERM (a clean shutdown), SIGKILL after timeout_s."""
        if self.proc is None:
            return
        self.rss_kb()
        if self.alive():
            kill_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                kill_group(self.proc, signal.SIGKILL)
                self.proc.wait(timeout=20)
        self._log.close()

    kill = stop  # for harness.Procs


# --------------------------------------------------------------------------------------------
# Apache Kafka


class KafkaServer(_JavaServer):
    """One KRaft node (broker + controller). Ports are chosen once and kept across restarts:
    the advertised listener is what clients reconnect to.

    scram, plain: {user: password} add a SASL_SSL listener on `secure_bootstrap` with pki's
    server certificate (harness.make_pki): SCRAM-SHA-512 for the scram users (written into the
    storage when it is formatted), PLAIN for the plain ones; `bootstrap` stays PLAINTEXT for the
    tests' own clients. dist: "kafka" (4.4) or "kafka39" (3.9)."""
    name = "kafka"

    def __init__(self, workdir, heap="512m", partitions=8, extra_props=None, start=True,
                 scram=None, plain=None, pki=None, dist="kafka"):
        super().__init__(workdir)
        _java_ok()
        self.dist = dist  # "kafka" (4.4) or "kafka39" (3.9), as tests/servers has them
        self.lib = _jars(dist)
        self.port = free_port()
        self.cport = free_port()
        while self.cport == self.port:
            self.cport = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.scram = scram or {}
        self.plain = plain or {}
        self.heap = heap
        self.props_path = os.path.join(workdir, "server.properties")
        self.data = os.path.join(workdir, "kafka-data")
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.cport}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.cport}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": self.data,
            "num.partitions": str(partitions),
            "auto.create.topics.enable": "false",
            # one node: every internal topic with one replica
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # a group forms as soon as its first member joins, not 3 s later
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "log.cleaner.enable": "false",
        }
        if self.scram or self.plain:
            self.sport = free_port()
            while self.sport in (self.port, self.cport):
                self.sport = free_port()
            self.secure_bootstrap = f"127.0.0.1:{self.sport}"
            # Kafka reads a PEM keystore as one file: the private key, then the certificate
            keystore = os.path.join(workdir, "kafka-keystore.pem")
            with open(keystore, "w") as f:
                for part in (pki["server_key"], pki["server"]):
                    f.write(open(part).read())
            props.update({
                "listeners": props["listeners"] + f",SASL_SSL://127.0.0.1:{self.sport}",
                "advertised.listeners": props["advertised.listeners"]
                + f",SASL_SSL://127.0.0.1:{self.sport}",
                "listener.security.protocol.map": props["listener.security.protocol.map"]
                + ",SASL_SSL:SASL_SSL",
                "sasl.enabled.mechanisms": ",".join(
                    (["SCRAM-SHA-512"] if self.scram else []) + (["PLAIN"] if self.plain else [])),
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                "listener.name.sasl_ssl.plain.sasl.jaas.config":
                    "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    + " ".join(f'user_{u}="{pw}"' for u, pw in self.plain.items()) + ";",
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": keystore,
            })
        props.update(extra_props or {})
        with open(self.props_path, "w") as f:
            for k, v in props.items():
                f.write(f"{k}={v}\n")
        # As Kafka's own Uuid.randomUuid: an id starting with "-" reads as an option to the
        # storage tool ("--cluster-id: expected one argument"), one format in 64.
        self.cluster_id = "-"
        while self.cluster_id.startswith("-"):
            self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        self._format()
        if start:
            self.start()

    def _cmd(self, main, *args):
        return [JAVA, f"-Xmx{self.heap}", f"-Xms{min(128, int(self.heap.rstrip('m')))}m",
                "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={os.path.join(SERVERS, self.dist, 'log4j2.properties')}",
                "-cp", os.path.join(self.lib, "*"), main, *args]

    def _format(self):
        """What kafka-storage.sh format does, with the SCRAM users."""
        users = []
        for user, password in self.scram.items():
            users += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
        r = subprocess.run(self._cmd("kafka.tools.StorageTool", "format", "-t", self.cluster_id,
                                     "-c", self.props_path, "--ignore-formatted", *users),
                           capture_output=True, text=True, cwd=self.workdir)
        if r.returncode != 0:
            raise RuntimeError(f"kafka storage format failed ({r.returncode}):\n{r.stdout[-2000:]}"
                               f"\n{r.stderr[-2000:]}")

    def start(self, timeout_s=90):
        """Starts (or restarts, on the same data and ports); returns once the broker logs that it
        started."""
        t0 = time.monotonic()
        self._spawn(self._cmd("kafka.Kafka", self.props_path))
        self._wait_ready(lambda: "Kafka Server started" in self.text(), timeout_s, t0)

    def admin(self):
        from confluent_kafka.admin import AdminClient
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def create_topic(self, topic, partitions=8, config=None, timeout_s=30):
        from confluent_kafka.admin import NewTopic
        admin = self.admin()  # the futures fail with _DESTROY once the client is collected
        fs = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1,
                      config=config or {})], request_timeout=timeout_s)
        fs[topic].result(timeout=timeout_s)
        # metadata reaches the broker's cache a moment after the controller answers
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            md = admin.list_topics(topic, timeout=10)
            t = md.topics.get(topic)
            if t and not t.error and len(t.partitions) == partitions and \
                    all(p.leader >= 0 for p in t.partitions.values()):
                return
            time.sleep(0.2)
        raise RuntimeError(f"topic {topic} has no leaders after {timeout_s}s")

    def _consumer(self, group):
        from confluent_kafka import Consumer
        return Consumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                         "enable.auto.commit": False})

    def watermarks(self, topic, partitions, timeout_s=30):
        """{partition: (low, high)} from the broker."""
        from confluent_kafka import TopicPartition
        c = self._consumer("sluice-test-watermarks")
        try:
            return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
                    for p in range(partitions)}
        finally:
            c.close()

    def committed(self, group, topic, partitions, timeout_s=30):
        """{partition: offset} the group committed (-1001 when none), from the group
        coordinator."""
        from confluent_kafka import KafkaException, TopicPartition
        deadline = time.monotonic() + timeout_s
        while True:
            c = self._consumer(group)
            try:
                tps = c.committed([TopicPartition(topic, p) for p in range(partitions)],
                                  timeout=timeout_s)
                return {tp.partition: tp.offset for tp in tps}
            except KafkaException as e:
                # NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS while a new group's
                # coordinator loads (or the broker restarts): ask again
                from confluent_kafka import KafkaError
                again = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                         KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError._TIMED_OUT,
                         KafkaError._TRANSPORT}
                if time.monotonic() > deadline or e.args[0].code() not in again:
                    raise
            finally:
                c.close()
            time.sleep(0.5)


def produce(bootstrap, topic, records, compression="none", partitions=None, key=None,
            extra=None, timeout_s=120):
    """Produces `records` (bytes or str, in order) with python3-confluent-kafka, idempotent and
    acks=all. partitions: a function of the record's index giving its partition, or None for
    the client's partitioner. Returns {(partition, offset)} of every record delivered; raises
    when any failed."""
    from confluent_kafka import Producer
    conf = {"bootstrap.servers": bootstrap, "compression.type": compression,
            "enable.idempotence": True, "linger.ms": 20, "batch.num.messages": 2000,
            "queue.buffering.max.messages": 200000}
    conf.update(extra or {})
    p = Producer(conf)
    done = []
    errors = []

    def cb(err, msg):
        if err:
            errors.append(str(err))
        else:
            done.append((msg.partition(), msg.offset()))

    for i, rec in enumerate(records):
        kw = {"value": rec.encode() if isinstance(rec, str) else rec, "on_delivery": cb}
        if partitions is not None:
            kw["partition"] = partitions(i)
        if key is not None:
            kw["key"] = key(i)
        while True:
            try:
                p.produce(topic, **kw)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(timeout_s)
    if left or errors:
        raise RuntimeError(f"produce to {topic}: {left} undelivered, {len(errors)} failed "
                           f"({errors[:3]})")
    return done


def kcat_produce(bootstrap, topic, lines, compression="none", partition=None, timeout_s=120):
    """Produces newline-separated records with kcat (a second, independent client)."""
    args = ["kcat", "-b", bootstrap, "-t", topic, "-P", "-z", compression,
            "-X", "enable.idempotence=true"]
    if partition is not None:
        args += ["-p", str(partition)]
    data = "".join(ln + "\n" for ln in lines).encode()
    r = subprocess.run(args, input=data, capture_output=True, timeout=timeout_s)
    if r.returncode != 0:
        raise RuntimeError(f"kcat -P exited {r.returncode}: {r.stderr.decode()[-1000:]}")


# --------------------------------------------------------------------------------------------
# OpenSearch


class OpenSearch(_JavaServer):
    """One node, its HTTP on a port chosen once (kept across restarts). `settings` are node
    settings ({"thread_pool.write.size": 1, ...}); after the first start the cluster gets 0
    replicas, so every index is green."""
    name = "opensearch"

    def __init__(self, workdir, heap="512m", settings=None, start=True):
        super().__init__(workdir)
        _java_ok()
        self.lib = _jars("opensearch")
        self.classes = os.path.join(SERVERS, "opensearch", "classes")
        self.home = os.path.join(workdir, "os-home")
        self.port = free_port()
        self.tport = free_port()
        while self.tport == self.port:
            self.tport = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.heap = heap
        self.settings = dict(settings or {})
        if start:
            self.start()

    def start(self, timeout_s=120):
        t0 = time.monotonic()
        args = [JAVA, f"-Xms{self.heap}", f"-Xmx{self.heap}", "-XX:+UseG1GC",
                "-Djava.awt.headless=true", "-Dfile.encoding=UTF-8",
                "-Dio.netty.allocator.type=pooled", "-Dio.netty.noUnsafe=true",
                "-Dopensearch.networkaddress.cache.ttl=60",
                f"-Dlog4j2.configurationFile={os.path.join(SERVERS, 'opensearch', 'log4j2.properties')}",
                "-cp", f"{self.classes}:{os.path.join(self.lib, '*')}", "SluiceOpenSearch",
                self.home, f"http.port={self.port}", f"transport.port={self.tport}"]
        args += [f"{k}={v}" for k, v in self.settings.items()]
        self._spawn(args)
        self._wait_ready(lambda: "sluice-opensearch: started" in self.text(), timeout_s, t0)
        if self.starts == 1:
            self.ok("PUT", "/_cluster/settings",
                    {"persistent": {"cluster.default_number_of_replicas": 0}})
        self.wait_green()

    def wait_green(self, timeout_s=60):
        st, body = self.req("GET", f"/_cluster/health?wait_for_status=green&timeout={timeout_s}s",
                            timeout=timeout_s + 10)
        if st != 200 or body.get("status") != "green":
            raise RuntimeError(f"opensearch not green: {st} {body}")

    def req(self, method, path, body=None, timeout=60, ndjson=False):
        """(status, parsed JSON or raw bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {}
            data = None
            if body is not None:
                if isinstance(body, (bytes, str)):
                    data = body
                else:
                    data = json.dumps(body)
                headers["Content-Type"] = "application/x-ndjson" if ndjson else "application/json"
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            raw = r.read()
        finally:
            c.close()
        try:
            return r.status, json.loads(raw) if raw else {}
        except ValueError:
            return r.status, raw

    def ok(self, method, path, body=None, **kw):
        st, out = self.req(method, path, body, **kw)
        if st >= 300:
            raise RuntimeError(f"opensearch {method} {path} -> {st} {str(out)[:500]}")
        return out

    def refresh(self, index="_all"):
        self.ok("POST", f"/{index}/_refresh")

    def count(self, index):
        st, out = self.req("GET", f"/{index}/_count")
        if st == 404 or st == 503:  # no index yet, or its shard still starting
            return 0
        if st != 200:
            raise RuntimeError(f"count {index}: {st} {out}")
        return int(out["count"])

    def scan(self, index, source=True, page=10000):
        """Every document of `index` as {_id, _index, _source}, in pages (search_after on _doc
        order within a point in time... a plain scroll here, which every version has)."""
        st, out = self.req("POST", f"/{index}/_search?scroll=2m",
                           {"size": page, "sort": ["_doc"], "_source": source}, timeout=120)
        if st == 404:
            return []
        if st != 200:
            raise RuntimeError(f"scan {index}: {st} {str(out)[:500]}")
        docs = []
        sid = out.get("_scroll_id")
        while out["hits"]["hits"]:
            docs.extend(out["hits"]["hits"])
            st, out = self.req("POST", "/_search/scroll", {"scroll": "2m", "scroll_id": sid},
                               timeout=120)
            if st != 200:
                raise RuntimeError(f"scroll {index}: {st} {str(out)[:500]}")
            sid = out.get("_scroll_id", sid)
        self.req("DELETE", "/_search/scroll", {"scroll_id": sid})
        return docs

    def version(self):
        return self.ok("GET", "/")["version"]


def server_rss_report(*servers):
    for s in servers:
        s.rss_kb()
    return ", ".join(f"{s.name} start {'/'.join(f'{x:.1f}s' for x in s.start_seconds)} "
                     f"peak RSS {s.peak_rss_kb / 1024:.0f} MiB" for s in servers)


# --------------------------------------------------------------------------------------------
# what the tests check on the real servers


def log_offsets(kafka, topic, partitions):
    """{(partition, offset)} of every record in the topic's log (low to high watermark)."""
    out = set()
    for p, (lo, hi) in kafka.watermarks(topic, partitions).items():
        out.update((p, o) for o in range(lo, hi))
    return out


def check_index_is_log(ck, osn, index, kafka, topic, partitions, seqs, meta="kafka", label="",
                       flat=False):
    """Every record of the topic's log is exactly one document of `index` and nothing else is:
    each document's _id is <topic>-<partition>-<offset> of the record it came from (read from
    the copy of the coordinates under `meta`, or with flat=True from the kafka_partition and
    kafka_offset fields a Forward hop carries), the documents' coordinates are exactly the
    log's, and each seq of `seqs` is in exactly one document. Returns the seq report."""
    from harness import seq_report
    osn.refresh(index)
    fields = ["kafka_partition", "kafka_offset"] if flat else [meta]
    docs = osn.scan(index, source=["seq"] + fields)
    rep = seq_report(docs, seqs)
    coords = {}
    bad_ids = []
    for d in docs:
        m = d["_source"] if flat else (d["_source"].get(meta) or {})
        c = (m.get("kafka_partition"), m.get("kafka_offset")) if flat else \
            (m.get("partition"), m.get("offset"))
        coords[c] = coords.get(c, 0) + 1
        if d["_id"] != f"{topic}-{c[0]}-{c[1]}":
            bad_ids.append((d["_id"], c))
    want = log_offsets(kafka, topic, partitions)
    missing = want - set(coords)
    extra = set(coords) - want
    twice = [c for c, n in coords.items() if n > 1]
    ck.eq(len(docs), len(want), f"{label}documents in OpenSearch == records in the Kafka log")
    ck.check(not missing, f"{label}every record of the log is a document",
             f"{len(missing)} missing, e.g. {sorted(missing)[:5]}")
    ck.check(not extra and not twice, f"{label}no document from outside the log, none twice",
             f"{len(extra)} extra e.g. {sorted(extra)[:5]}, {len(twice)} twice e.g. {twice[:5]}")
    ck.check(not bad_ids, f"{label}every _id is <topic>-<partition>-<offset> of its record",
             f"{len(bad_ids)} differ, e.g. {bad_ids[:5]}")
    ck.check(rep["missing"] == 0, f"{label}no seq missing", f"{rep['missing']} e.g. {rep['missing_ex']}")
    ck.check(rep["dupes"] == 0 and rep["no_seq"] == 0, f"{label}no seq twice",
             f"{rep['dupes']} e.g. {rep['dupes_ex']}, {rep['no_seq']} without seq")
    return rep


def wait_committed(kafka, group, topic, partitions, timeout_s):
    """Waits until the group's committed offsets equal the high watermarks; returns
    (ok, committed, highs)."""
    deadline = time.monotonic() + timeout_s
    while True:
        highs = {p: hi for p, (lo, hi) in kafka.watermarks(topic, partitions).items()}
        com = kafka.committed(group, topic, partitions)
        if com == highs or time.monotonic() > deadline:
            return com == highs, com, highs
        time.sleep(1)


def wait_count(osn, index, n, timeout_s, stall_s=None, label="opensearch"):
    """Waits until `index` holds at least n documents (refreshing); returns the last count."""
    deadline = time.monotonic() + timeout_s
    last, moved, printed = -1, time.monotonic(), 0
    while time.monotonic() < deadline:
        try:
            osn.refresh(index)
            cnt = osn.count(index)
        except (OSError, RuntimeError):
            cnt = last
        if cnt != last:
            moved = time.monotonic()
            last = cnt
        if cnt >= n:
            return cnt
        if stall_s and time.monotonic() - moved > stall_s:
            log(f"{label}: no progress for {stall_s}s at {cnt}/{n}")
            return cnt
        if time.monotonic() - printed > 10:
            log(f"{label}: {cnt}/{n} documents")
            printed = time.monotonic()
        time.sleep(0.5)
    return last


def sluice_config(workdir, brokers, es_url, group="sluice-real", topics=("logs",),
                  memory_limit="32MiB", inp=None, out=None, service=None, outputs=None):
    """A sluice configuration, built as a dict and returned as JSON text (JSON is YAML): one Kafka input, one
    Elasticsearch output; `inp`, `out` and `service` add or replace keys (None removes one),
    `outputs` replaces the output list."""
    cfg = {
        "service": {"memory_limit": memory_limit, "http_listen": f"127.0.0.1:{free_port()}",
                    "dead_letter": {"path": os.path.join(workdir, "dead-letter"),
                                    "max_size": "1GiB"},
                    "shutdown_timeout": "30s", "log_level": "info"},
        "inputs": [{"type": "kafka", "name": "k", "brokers": brokers, "group_id": group,
                    "topics": list(topics), "tag": "kafka.${topic}", "format": "json",
                    "metadata_key": "kafka",
                    "librdkafka": {"session.timeout.ms": "6000",
                                   "heartbeat.interval.ms": "500"}}],
        "outputs": [{"type": "elasticsearch", "name": "es", "match": "kafka.**",
                     "hosts": [es_url], "index": "logs-${topic}", "id": "kafka", "op": "create",
                     "batch_max_bytes": "1MiB", "batch_max_wait": "200ms", "concurrency": 4}],
    }
    if outputs is not None:
        cfg["outputs"] = outputs
    cfg["service"] = merged(cfg["service"], service)
    cfg["inputs"][0] = merged(cfg["inputs"][0], inp)
    cfg["outputs"][0] = merged(cfg["outputs"][0], out)
    return config_text(cfg)


class Streamer:
    """Produces records 0..n-1 (record(seq) gives each) at about `rate` per second in a thread,
    with python3-confluent-kafka, idempotent and acks=all, so a broker outage delays records but
    neither loses nor duplicates them (message.timeout.ms 10 minutes). start(), then join()
    raises if any record failed."""

    def __init__(self, bootstrap, topic, n, rate, record, partitions=8, compression="lz4"):
        import threading
        self.bootstrap, self.topic, self.n, self.rate = bootstrap, topic, n, rate
        self.record, self.partitions, self.compression = record, partitions, compression
        self.sent = 0
        self.delivered = 0
        self.errors = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": self.bootstrap, "compression.type": self.compression,
                      "enable.idempotence": True, "linger.ms": 10,
                      "message.timeout.ms": 600000, "queue.buffering.max.messages": 1000000})

        def cb(err, msg):
            if err:
                self.errors.append(str(err))
            else:
                self.delivered += 1

        t0 = time.monotonic()
        try:
            for i in range(self.n):
                ahead = i / self.rate - (time.monotonic() - t0)
                if ahead > 0.005:
                    time.sleep(ahead)
                while True:
                    try:
                        p.produce(self.topic, value=self.record(i).encode(),
                                  partition=i % self.partitions, on_delivery=cb)
                        break
                    except BufferError:
                        p.poll(0.05)
                self.sent = i + 1
                p.poll(0)
            left = p.flush(600)
            if left:
                self.errors.append(f"{left} records still undelivered after 600s")
        except Exception as e:  # reported by join()
            self.errors.append(repr(e))

    def join(self, timeout_s=900):
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise RuntimeError(f"producer still running after {timeout_s}s ({self.sent} sent)")
        if self.errors or self.delivered != self.n:
            raise RuntimeError(f"producer: {self.delivered}/{self.n} delivered, errors "
                               f"{self.errors[:3]}")


def log_record(seq):
    """A JSON log line with its seq (checked in OpenSearch) and a time sluice reads."""
    return ('{"seq":%d,"time":"2026-12-07T10:%02d:%02d.%03dZ","level":"%s","service":"checkout",'
            '"message":"order %d accepted for customer %d"}'
            % (seq, seq // 60000 % 60, seq // 1000 % 60, seq % 1000,
               ("info", "warn", "error")[seq % 3], seq, seq * 7 % 100003))


def check_all_arrived(ck, *, kafka, osn, group, n, shippers, dl_dirs, index="logs-logs",
                      topic="logs", partitions=8, stall_s=120, flat=False):
    """How every crash and outage test ends: n documents in the index, the group's committed
    offsets at the high watermarks, each shipper [(label, Sluice, input name)] exiting 0 on
    SIGTERM with conservation, nothing in the dead-letter folders, and the index exactly the log
    (check_index_is_log). Logs one `result:` line; returns the seq report."""
    import harness as H
    got = wait_count(osn, index, n, timeout_s=300, stall_s=stall_s)
    ck.eq(got, n, f"documents in {index}")
    ok, com, highs = wait_committed(kafka, group, topic, partitions, timeout_s=60)
    ck.check(ok, "the group's committed offsets equal the high watermarks",
             f"committed {com}, high {highs}")
    for label, sl, input_name in shippers:
        ck.eq(sl.terminate(60), 0, f"{label}exit code after SIGTERM")
        H.check_conservation(ck, sl.final_stats(), input_name=input_name, label=label)
    dl = sum(len(H.dead_letters(d)) for d in dl_dirs)
    ck.eq(dl, 0, "nothing dead-lettered")
    rep = check_index_is_log(ck, osn, index, kafka, topic, partitions, range(n), flat=flat)
    log(f"result: records {n}, documents {rep['docs']}, dead-lettered {dl}, missing "
        f"{rep['missing']}, duplicates {rep['dupes']}; {server_rss_report(kafka, osn)}")
    return rep
