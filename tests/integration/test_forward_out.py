#!/usr/bin/python3
"""Forward output end to end: mockkafka -> sluice (kafka in, forward out) -> fake Forward servers.

The fake servers are written here with python3-msgpack (independent of sluice's codec). They record
every frame (raw bytes, connection, decoded entries) and follow a plan per frame: ack, drop the ack
(the client must time out), answer a wrong ack, or close the connection after reading. One can be
made to refuse connections, one requires the shared-key handshake, one answers PONG with a wrong
digest.

One sluice, topics logs (4 partitions), hs and bad (1 each), three forward outputs:
  relay  kafka.logs -> servers [A, B], concurrency 2, ack_timeout 2s, batch_max_bytes 64KiB
  hs     kafka.hs   -> C (handshake with the right key)
  bad    kafka.bad  -> D (handshake, but D's PONG digest is wrong; later D is fixed)
Checks:
 1. A drops the 1st ack, answers the 2nd with a wrong chunk, closes after reading the 3rd: each
    of those chunks is resent later with the same chunk id and the same entry bytes; a connection
    never carries a second request while one is unacked.
 2. every logs record arrives with kafka_topic/kafka_partition/kafka_offset (partition = seq % 4,
    offsets unique and dense per partition) and its own fields; frames are PackedForward with bin
    entries, option size = entry count, a 24-char chunk, at most batch_max_bytes; no nil frame.
 3. while it runs, committed offsets (mockkafka `committed`) never pass what the servers acked.
 4. A refuses connections (listener closed, open connections dropped): the next records arrive at
    B (failover).
 5. hs records arrive at C after a verified handshake; D's wrong digest is rejected (no frame is
    ever sent to D, handshake retries counted); once D answers correctly, bad records arrive.
 6. /metrics-style stats: retries by reason in final stats log line; SIGTERM exit 0 and
    conservation."""
import gzip
import hashlib
import os
import socket
import sys
import threading
import time

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

GROUP = "fwd-out"
PARTS = 4
N1 = 3000
N2 = 1500
N_HS = 200
N_BAD = 200
KEY = "fwd-s3cret"
BATCH_MAX = 64 * 1024


class FakeForward:
    """A Forward server on 127.0.0.1:<port>. plan: list of actions for the next frames
    ("ack", "drop", "wrong", "close"); afterwards every frame is acked."""

    def __init__(self, name, shared_key=None, bad_digest=False, plan=()):
        self.name = name
        self.key = shared_key
        self.bad_digest = bad_digest
        self.plan = list(plan)
        self.lock = threading.Lock()
        self.frames = []  # dicts: conn, raw, obj, action, t
        self.acked = set()  # (topic, partition, offset) acked so far
        self.violations = []
        self.handshakes_ok = 0
        self.handshakes_bad = 0
        self.conns = []
        self.conn_n = 0
        self.halt = False
        self.lsock = None
        self.port = H.free_port()
        self.listen()

    def listen(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        self.lsock = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def refuse(self):
        """Close the listener and every open connection: new connects get ECONNREFUSED."""
        s, self.lsock = self.lsock, None
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self.conns = []

    def _accept(self, s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            with self.lock:
                self.conn_n += 1
                cid = self.conn_n
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c, cid), daemon=True).start()

    def _handshake(self, c, unp):
        nonce = os.urandom(16)
        c.sendall(msgpack.packb(["HELO", {"nonce": nonce, "auth": b"", "keepalive": True}]))
        ping = self._next(c, unp)
        if not (isinstance(ping, list) and len(ping) == 6 and ping[0] == "PING"):
            self.violations.append(f"{self.name}: bad PING {ping!r}")
            return False
        _, host, salt, digest, user, pw = ping
        salt_b = salt.encode() if isinstance(salt, str) else salt
        want = hashlib.sha512(salt_b + host.encode() + nonce + self.key.encode()).hexdigest()
        if digest != want:
            self.violations.append(f"{self.name}: PING digest mismatch")
            c.sendall(msgpack.packb(["PONG", False, "shared_key mismatch", "", ""]))
            return False
        key = (self.key + "-wrong") if self.bad_digest else self.key
        server_host = "fake-" + self.name
        pong_digest = hashlib.sha512(salt_b + server_host.encode() + nonce + key.encode()).hexdigest()
        c.sendall(msgpack.packb(["PONG", True, "", server_host, pong_digest]))
        with self.lock:
            if self.bad_digest:
                self.handshakes_bad += 1
            else:
                self.handshakes_ok += 1
        return True

    def _next(self, c, unp, raw_out=None):
        while True:
            try:
                obj = unp.unpack()
                return obj
            except msgpack.OutOfData:
                pass
            try:
                d = c.recv(1 << 20)
            except OSError:
                return "EOF"
            if not d:
                return "EOF"
            if raw_out is not None:
                raw_out.append(d)
            unp.feed(d)

    def _serve(self, c, cid):
        unp = msgpack.Unpacker(raw=False, max_buffer_size=64 << 20)
        try:
            if self.key and not self._handshake(c, unp):
                c.close()
                return
            pending_unacked = False
            while True:
                before = unp.tell()
                obj = self._next(c, unp)
                if obj == "EOF":
                    break
                size = unp.tell() - before
                if obj is None:
                    self.violations.append(f"{self.name}: nil frame on conn {cid}")
                    continue
                with self.lock:
                    action = self.plan.pop(0) if self.plan else "ack"
                    if pending_unacked:
                        self.violations.append(
                            f"{self.name}: conn {cid} got a request while one was unacked")
                    f = {"conn": cid, "obj": obj, "size": size, "action": action,
                         "t": time.monotonic()}
                    self.frames.append(f)
                if action == "close":
                    break
                if action == "drop":
                    pending_unacked = True
                    continue
                opt = obj[2] if len(obj) > 2 and isinstance(obj[2], dict) else {}
                chunk = opt.get("chunk")
                if action == "wrong":
                    c.sendall(msgpack.packb({"ack": "X" * 24}))
                    continue
                # Record what this ack covers BEFORE it leaves: sluice can only commit after it.
                with self.lock:
                    for rec in entries_of(obj):
                        r = rec[1]
                        if isinstance(r, dict) and "kafka_topic" in r:
                            self.acked.add((r["kafka_topic"], r["kafka_partition"],
                                            r["kafka_offset"]))
                c.sendall(msgpack.packb({"ack": chunk}))
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def snapshot(self):
        with self.lock:
            return list(self.frames), set(self.acked)


def entries_of(obj):
    if not (isinstance(obj, list) and len(obj) >= 2 and isinstance(obj[1], (bytes, str))):
        return []
    data = obj[1] if isinstance(obj[1], bytes) else obj[1].encode("latin-1")
    if len(obj) > 2 and isinstance(obj[2], dict) and obj[2].get("compressed") == "gzip":
        data = gzip.decompress(data)
    u = msgpack.Unpacker(raw=False)
    u.feed(data)
    return list(u)


def config(wd, bootstrap, a, b, c, d):
    fast_retry = {"batch_max_wait": "200ms", "retry_base": "100ms", "retry_max": "500ms"}
    return H.config(
        H.service(wd, memory_limit="32MiB", shutdown_timeout="10s", log_level="info",
                  stats_interval="2s"),
        [H.kafka_input(bootstrap, GROUP, ["logs", "hs", "bad"], tag="kafka.${topic}")],
        [H.forward_output([a.port, b.port], name="relay", match="kafka.logs", ack_timeout="2s",
                          connect_timeout="2s", batch_max_bytes=BATCH_MAX,
                          batch_max_wait="200ms", concurrency=2, retry_base="100ms",
                          retry_max="1s"),
         H.forward_output([c.port], name="hs", match="kafka.hs", shared_key=KEY,
                          self_hostname="sluice-test", compression="gzip", **fast_retry),
         H.forward_output([d.port], name="bad", match="kafka.bad", shared_key=KEY,
                          connect_timeout="2s", **fast_retry)])


def records(servers, topic):
    """seq -> list of (record dict, server name, frame) for records of topic."""
    out = {}
    for s in servers:
        frames, _ = s.snapshot()
        for f in frames:
            if f["action"] not in ("ack",):
                continue
            for e in entries_of(f["obj"]):
                r = e[1]
                if isinstance(r, dict) and r.get("kafka_topic") == topic:
                    out.setdefault(r.get("seq"), []).append((r, s.name, f))
    return out


def wait_seqs(servers, topic, want, timeout):
    deadline = time.monotonic() + timeout
    got = {}
    while time.monotonic() < deadline:
        got = records(servers, topic)
        if want <= set(got):
            return got
        time.sleep(0.3)
    return got


class OffsetWatch(threading.Thread):
    """Polls the group's committed offsets; each one must be covered by acks already sent."""

    def __init__(self, mk, mk_lock, servers):
        super().__init__(daemon=True)
        self.mk, self.mk_lock, self.servers = mk, mk_lock, servers
        self.samples = 0
        self.max_committed = {}
        self.violations = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            with self.mk_lock:
                try:
                    com = self.mk.committed(GROUP, "logs")
                except Exception as e:  # keep watching
                    self.violations.append(f"committed query failed: {e!r}")
                    com = {}
            acked = set()
            for s in self.servers:
                acked |= s.snapshot()[1]  # taken AFTER the committed query
            for p, off in com.items():
                if off <= 0:
                    continue
                self.max_committed[p] = max(self.max_committed.get(p, 0), off)
                missing = [o for o in range(off) if ("logs", p, o) not in acked]
                if missing:
                    self.violations.append(f"partition {p} committed {off} but offsets "
                                           f"{missing[:5]} (of {len(missing)}) not acked")
            self.samples += 1
            self.halt.wait(0.2)


def main():
    ck = H.Checker("test_forward_out")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=[f"logs:{PARTS}", "hs:1", "bad:1"], workdir=wd))
            mk_lock = threading.Lock()
            a = FakeForward("A", plan=["drop", "wrong", "close"])
            b = FakeForward("B")
            c = FakeForward("C", shared_key=KEY)
            d = FakeForward("D", shared_key=KEY, bad_digest=True)
            sl = procs.add(H.Sluice(config(wd, mk.bootstrap, a, b, c, d), wd))
            ck.check(sl.wait_log(r"assigned \d+ partitions", 30), "sluice got partitions",
                     sl.log_tail())
            watch = OffsetWatch(mk, mk_lock, [a, b])
            watch.start()
            with mk_lock:
                mk.produce("logs", N1)
                ck.eq(mk.wait_produced(60), N1, "produced logs phase 1")
            got = wait_seqs([a, b], "logs", set(range(N1)), 60)
            ck.check(set(range(N1)) <= set(got), f"phase 1: all {N1} logs records acked",
                     f"missing {len(set(range(N1)) - set(got))}\n{sl.log_tail()}")

            # 1. the failed requests were resent with the same chunk and the same bytes
            frames_a, _ = a.snapshot()
            failed = [f for f in frames_a if f["action"] != "ack"]
            ck.eq([f["action"] for f in failed], ["drop", "wrong", "close"],
                  "A applied drop, wrong, close")
            for f in failed:
                chunk = f["obj"][2].get("chunk")
                resends = [g for g in frames_a if g is not f and g["t"] > f["t"]
                           and g["obj"][2].get("chunk") == chunk]
                ok = [g for g in resends if g["obj"][1] == f["obj"][1]]
                ck.check(ok and ok[0]["conn"] != f["conn"],
                         f"'{f['action']}' chunk {chunk} resent with the same chunk and bytes "
                         f"on a new connection ({len(ok)} resend(s))",
                         [(g["conn"], g["action"]) for g in resends])
            ck.check(not a.violations, "A: no request sent while one was unacked, no nil",
                     a.violations)

            # 2. records and frames
            bad_coords = []
            dup_coords = {}
            for seq, lst in got.items():
                if seq is None or not 0 <= seq < N1:
                    continue
                r = lst[0][0]
                if r.get("kafka_partition") != seq % PARTS or not isinstance(
                        r.get("kafka_offset"), int) or r.get("level") is None:
                    bad_coords.append((seq, r.get("kafka_partition"), r.get("kafka_offset")))
                dup_coords.setdefault((r["kafka_partition"], r["kafka_offset"]), set()).add(seq)
            ck.check(not bad_coords, "every record carries kafka_topic/partition/offset and its "
                     "fields", bad_coords[:5])
            ck.check(all(len(v) == 1 for v in dup_coords.values()),
                     "one seq per (partition, offset)")
            dense = all(sorted(o for (p2, o) in dup_coords if p2 == p) ==
                        list(range(len([1 for (p2, _) in dup_coords if p2 == p])))
                        for p in range(PARTS))
            ck.check(dense, "offsets are dense from 0 per partition")
            all_frames = a.snapshot()[0] + b.snapshot()[0]
            shape_bad = []
            for f in all_frames:
                o = f["obj"]
                ents = entries_of(o)
                if not (isinstance(o, list) and len(o) == 3 and isinstance(o[0], str)
                        and isinstance(o[1], bytes) and isinstance(o[2], dict)
                        and o[2].get("size") == len(ents) and isinstance(o[2].get("chunk"), str)
                        and len(o[2]["chunk"]) == 24 and f["size"] <= BATCH_MAX
                        and all(isinstance(e, list) and len(e) == 2
                                and isinstance(e[0], msgpack.ExtType) and e[0].code == 0
                                for e in ents)):
                    shape_bad.append((f["size"], o[:1], o[2] if len(o) > 2 else None))
            ck.check(all_frames and not shape_bad,
                     f"{len(all_frames)} frames: PackedForward bin, EventTime entries, size = "
                     f"entries, 24-char chunk, <= {BATCH_MAX} bytes", shape_bad[:3])
            H.log(f"frames: {len(all_frames)}, largest {max(f['size'] for f in all_frames)} B")
            ck.check(len(all_frames) >= 10 and max(f["size"] for f in all_frames) > BATCH_MAX // 2,
                     "batches fill up towards batch_max_bytes")

            # 4. failover: A refuses; the next records go to B
            a.refuse()
            n_b_before = len(b.snapshot()[0])
            with mk_lock:
                mk.produce("logs", N2)
                ck.eq(mk.wait_produced(60), N1 + N2, "produced logs phase 2")
            want2 = set(range(N1 + N2, N1 + N2))  # seqs continue after the hs/bad ones below
            # hs and bad are produced after; logs phase 2 seqs are N1..N1+N2-1
            want2 = set(range(N1, N1 + N2))
            got2 = wait_seqs([a, b], "logs", want2, 60)
            ck.check(want2 <= set(got2), f"failover: all {N2} phase-2 records acked",
                     f"missing {len(want2 - set(got2))}\n{sl.log_tail()}")
            on_b = sum(1 for s in want2 if any(x[1] == "B" for x in got2.get(s, [])))
            ck.check(on_b == N2 and len(b.snapshot()[0]) > n_b_before,
                     f"failover: phase-2 records arrived at B ({on_b}/{N2})")

            # 5. handshake: C (good) and D (wrong PONG digest)
            with mk_lock:
                mk.produce("hs", N_HS)
                mk.wait_produced(60)
                mk.produce("bad", N_BAD)
                mk.wait_produced(60)
            hs_want = set(range(N1 + N2, N1 + N2 + N_HS))
            bad_want = set(range(N1 + N2 + N_HS, N1 + N2 + N_HS + N_BAD))
            got_hs = wait_seqs([c], "hs", hs_want, 30)
            hs_frames = c.snapshot()[0]
            ck.check(hs_frames and all(f["obj"][2].get("compressed") == "gzip"
                                       and isinstance(f["obj"][1], bytes) for f in hs_frames),
                     f"hs: {len(hs_frames)} CompressedPackedForward frames (bin, compressed gzip)")
            ck.check(hs_want <= set(got_hs) and c.handshakes_ok >= 1,
                     f"hs: {N_HS} records after a verified handshake "
                     f"({len(got_hs)} seqs, {c.handshakes_ok} handshakes)", sl.log_tail())
            ck.check(not c.violations, "C saw a valid PING", c.violations)
            time.sleep(3)
            ck.check(d.handshakes_bad >= 2 and not d.snapshot()[0],
                     f"D's wrong PONG digest is rejected: {d.handshakes_bad} handshakes, "
                     f"{len(d.snapshot()[0])} frames sent to D")
            ck.check(sl.lines(r"bad.*handshake refused"), "sluice logged the refused handshake",
                     sl.log_tail())
            d.bad_digest = False
            got_bad = wait_seqs([d], "bad", bad_want, 30)
            ck.check(bad_want <= set(got_bad), f"bad: {N_BAD} records once D's digest is right",
                     sl.log_tail())

            # 3. offsets
            time.sleep(2)
            watch.halt.set()
            watch.join(5)
            ck.check(watch.samples > 20 and not watch.violations,
                     f"committed offsets never passed the acks ({watch.samples} samples, max "
                     f"committed {watch.max_committed})", watch.violations[:5])
            ck.check(sum(watch.max_committed.values()) == N1 + N2,
                     f"committed offsets reached the end ({sum(watch.max_committed.values())})")

            rc = sl.terminate(30)
            ck.eq(rc, 0, "sluice exit code after SIGTERM")
            fs = sl.final_stats()
            H.check_conservation(ck, fs)
            retr = {}
            for ln in sl.lines(r"relay.*retries\{"):
                retr = dict(kv.split("=") for kv in ln.split("retries{")[1].rstrip("}").split(","))
            H.log(f"relay retries: {retr}")
            ck.check(int(retr.get("timeout", 0)) >= 1 and int(retr.get("mismatch", 0)) >= 1
                     and int(retr.get("eof", 0)) >= 1 and int(retr.get("connect", 0)) >= 1,
                     "retries counted by reason (timeout, mismatch, eof, connect)", retr)
            bad_retr = {}
            for ln in sl.lines(r" bad.*retries\{"):
                bad_retr = dict(kv.split("=")
                                for kv in ln.split("retries{")[1].rstrip("}").split(","))
            ck.check(int(bad_retr.get("handshake", 0)) >= 2, "bad: handshake retries counted",
                     bad_retr)


if __name__ == "__main__":
    main()
