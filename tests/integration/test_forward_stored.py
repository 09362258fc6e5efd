#!/usr/bin/python3
# ctest-labels: reliability
# ctest-skip-code: 77  # it cannot mount the tmpfs its disk-fault scenarios need (not root)
"""Forward input, ack: stored: acks mean "fsync'd under storage_path", replay after kill -9,
torn tails, and disk faults. Raw msgpack clients (python3-msgpack) -> sluice -> esemu.

 1. durability: esemu answers every _bulk with 503, so nothing can be delivered; 200
    PackedForward chunks of 500 events (100,000) are all acked anyway while esemu has 0 docs.
    kill -9 sluice, clear the fault, restart: every seq indexed exactly once (replayed events keep
    their ids), and the storage directory ends empty.
 2. torn tail and corruption: 30 chunks stored with esemu faulted, kill -9; the last record is cut
    mid-record and one byte in the middle of record 10 is flipped. Restart: the log names the
    truncation (file, offset, bytes) and the corrupt region (file, offset); every other chunk is
    indexed exactly once.
 3. disk full (needs `mount -t tmpfs`, i.e. root): storage_path on a 2 MiB tmpfs, esemu faulted:
    the client stops getting acks, sluice logs ENOSPC naming the path, metrics count the storage
    errors, RSS stays under memory_limit + 16 MiB; clear the fault: everything drains, the rest is
    stored and acked, every event indexed exactly once.
 4. read-only: the tmpfs is remounted read-only between two halves of a stream: no ack for the
    second half while it is read-only, EROFS logged; remount rw: acked and indexed exactly once.

If tmpfs cannot be mounted, 1 and 2 still run and the test exits 77 (ctest: skipped) naming why.

RELIABILITY_LONG=1 (make reliability RELIABILITY_LONG=1) repeats the faults on more data:
 1. durability: 5 rounds of 200 chunks x 500 events with esemu faulted throughout, each ended by
    kill -9; each restart replays what the earlier rounds stored (undeliverable) while the new
    chunks are acked. Then the fault is cleared: 500,000 events, each indexed exactly once.
 2. torn tail: as in the short setting.
 3. disk full: 8 fill -> ENOSPC -> fault cleared -> drain cycles of 150 chunks x 500 (600,000
    events) in one sluice run on the 2 MiB tmpfs, over one connection.
 4. read-only: a client sends a chunk of 500 events every 0.25 s the whole time; 10 times the tmpfs
    is remounted read-only (when the store is idle between two chunks), kept so for 3 s while the
    chunks keep coming, and remounted rw.
Each cycle checks what a client and an operator see: the acks withheld while the store cannot
write (no chunk sent after a read-only remount acked before the rw one), every acked chunk in the
store or indexed, the error logged again naming the path, the storage-error metric, the
recovery logged again, and every event sent so far indexed exactly once."""
import glob
import os
import re
import socket
import struct
import sys
import threading
import time
import urllib.request

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

LONG = os.environ.get("RELIABILITY_LONG") == "1"
T0 = 1614859200
SKIP_CODE = 77
MEM_LIMIT_MIB = 32
DUR_ROUNDS = 5 if LONG else 1  # durability: kill -9 rounds of 200 chunks x 500 events
FULL_CYCLES = 8 if LONG else 1  # disk full: fill -> ENOSPC -> drain cycles of 150 chunks x 500
RO_CYCLES = 10  # read-only, long setting: ro -> rw cycles while chunks keep coming


def event_time(sec, nsec=0):
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))


def chunk_frame(seqs, chunk_id, tag="app.stored"):
    entries = b"".join(msgpack.packb([event_time(T0 + s % 1000, s), {"seq": s, "msg": "m" * 40}])
                       for s in seqs)
    return msgpack.packb([tag, entries, {"size": len(seqs), "chunk": chunk_id}], use_bin_type=True)


def chunks(first_chunk, n_chunks, per_chunk):
    out = []
    for k in range(first_chunk, first_chunk + n_chunks):
        seqs = range(k * per_chunk, (k + 1) * per_chunk)
        cid = f"chunk-{k:06d}"
        out.append((cid, chunk_frame(seqs, cid)))
    return out


class Client:
    """One connection: frames are sent from a thread (sendall may block on backpressure), acks
    are read by another and recorded with their arrival time."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(None)
        self.acks = {}
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.sender = None

    def _read(self):
        up = msgpack.Unpacker(raw=False)
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            up.feed(data)
            for obj in up:
                if isinstance(obj, dict) and "ack" in obj:
                    with self.lock:
                        self.acks[obj["ack"]] = time.monotonic()

    def send(self, frames):
        def run():
            try:
                for _, fr in frames:
                    self.sock.sendall(fr)
            except OSError:
                pass
        self.sender = threading.Thread(target=run, daemon=True)
        self.sender.start()

    def n_acks(self, ids=None):
        with self.lock:
            return len(self.acks) if ids is None else sum(1 for i in ids if i in self.acks)

    def wait_acks(self, ids, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.n_acks(ids) == len(ids):
                return True
            time.sleep(0.05)
        return self.n_acks(ids) == len(ids)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def config(es_url, wd, storage, http_port, max_size="1GiB"):
    return H.config(
        H.service(wd, memory_limit=f"{MEM_LIMIT_MIB}MiB", http_listen=f"127.0.0.1:{http_port}",
                  storage_path=storage, storage_max_size=max_size, shutdown_timeout="10s",
                  log_level="info", log_interval="1s", stats_interval="2s"),
        [H.forward_input("fs", ack="stored", max_frame_size="1MiB")],
        [H.es_output(es_url, match="**", index="fwd-stored", id="kafka", op="create",
                     batch_max_bytes="1MiB", batch_max_wait="100ms", retry_base="50ms",
                     retry_max="500ms")])


def port_of(sl):
    if not sl.wait_log(r"fs: listening on 127\.0\.0\.1:\d+", 15):
        raise RuntimeError("sluice did not start: " + sl.log_tail())
    m = re.search(r"fs: listening on 127\.0\.0\.1:(\d+)", sl.text())
    return int(m.group(1))


def segments(storage):
    return sorted(glob.glob(os.path.join(storage, "fs", "seg-*.fwd")))


def wait_empty(storage, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not segments(storage):
            return True
        time.sleep(0.1)
    return not segments(storage)


def metric(http_port, name):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    m = re.search(rf'^{name}{{input="fs"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else None


def records(path):
    """(offset, total length) of each record of a segment file."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off + 16 <= len(data) and data[off:off + 4] == b"SLF1":
        body = struct.unpack("<I", data[off + 4:off + 8])[0]
        out.append((off, 16 + body))
        off += 16 + body
    return out


def stored_chunks(storage):
    """The chunk ids of the complete records in the segment files (what the store holds)."""
    out = set()
    for path in segments(storage):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        off = 0
        while off + 16 <= len(data) and data[off:off + 4] == b"SLF1":
            body, id_len = struct.unpack("<IH", data[off + 4:off + 10])
            if off + 16 + body > len(data):
                break
            opt = msgpack.unpackb(data[off + 16 + id_len:off + 16 + body], raw=False)[2]
            out.add(opt.get("chunk"))
            off += 16 + body
    return out


def check_acked_stored(ck, cl, ids, storage, label):
    """Long setting: every chunk acked so far is in the store (esemu faulted: nothing deleted)."""
    with cl.lock:
        acked = {i for i in ids if i in cl.acks}
    stored = stored_chunks(storage)
    ck.check(acked <= stored, f"{label}: every acked chunk is in the store ({len(acked)} acked, "
             f"{len(stored & set(ids))} stored)", sorted(acked - stored)[:5])


def extra(es, wd):
    """409 redeliveries and dead letters, for the RESULT line."""
    dls = H.dead_letters(os.path.join(wd, "dead-letter"))
    return f"conflicts_409 {es.stats().get('conflicts_409')} dead_letters {len(dls)}"


def rss_check(ck, sl, label):
    peak = sl.rss.peak_hwm_kb / 1024
    ck.check(peak < MEM_LIMIT_MIB + 16,
             f"{label}: peak RSS {peak:.1f} MiB < memory_limit {MEM_LIMIT_MIB} MiB + 16 MiB")
    return peak


def scenario_durability(ck, P, es):
    wd = P.tmpdir("fst1-")
    storage = os.path.join(wd, "buffer")
    es.reset()
    es.faults(request_status=503)
    hp = H.free_port()
    cfg = config(es.url, wd, storage, hp)
    peaks, t_acks = [], []
    for rnd in range(DUR_ROUNDS):
        rn = f"durability {rnd + 1}/{DUR_ROUNDS}" if LONG else "durability"
        sl = P.add(H.Sluice(cfg, wd))
        cl = Client(port_of(sl))
        frames = chunks(200 * rnd, 200, 500)
        ids = [c for c, _ in frames]
        t0 = time.monotonic()
        cl.send(frames)
        acked = cl.wait_acks(ids, 40)
        t_ack = time.monotonic() - t0
        docs_at_ack = es.docs()
        ck.check(acked, f"{rn}: all 200 chunks acked while esemu answers 503 "
                        f"({cl.n_acks(ids)} acked in {t_ack:.1f}s)")
        ck.eq(docs_at_ack, 0, f"{rn}: esemu docs when the acks had arrived (acks before delivery)")
        ck.check(segments(storage), f"{rn}: segment files exist before the kill")
        if LONG:
            check_acked_stored(ck, cl, ids, storage, rn)
            if rnd:
                ck.check(sl.wait_log(r"replaying .*seg-", 1),
                         f"{rn}: the restart replays what the earlier rounds stored")
        sl.kill9()
        cl.close()
        peaks.append(sl.rss.peak_hwm_kb / 1024)
        t_acks.append(t_ack)
    n_segs = len(segments(storage))
    es.clear_faults()
    sl2 = P.add(H.Sluice(cfg, wd))
    port_of(sl2)
    total = 100000 * DUR_ROUNDS
    n = es.wait_docs(total, 45 * DUR_ROUNDS, label="durability replay", stall_s=15)
    ck.eq(n, total, "durability: docs after the restart")
    ck.check(sl2.wait_log(r"replaying .*seg-", 1), "durability: the log names the replayed segment")
    if LONG:
        ck.eq(len(sl2.lines(r"replaying .*seg-")), n_segs,
              "durability: replayed segments == segment files left by the kills")
    r = H.check_every_seq_once(ck, es.dump(), range(total), "durability")
    ck.check(wait_empty(storage, 10), "durability: storage directory empty at the end",
             segments(storage))
    ck.eq(sl2.terminate(), 0, "durability: exit code after SIGTERM")
    peak2 = sl2.rss.peak_hwm_kb / 1024
    peak1 = max(peaks)
    if LONG:
        ck.check(max(peak1, peak2) < MEM_LIMIT_MIB + 16, f"durability: peak RSS "
                 f"{max(peak1, peak2):.1f} MiB < memory_limit {MEM_LIMIT_MIB} MiB + 16 MiB")
    t_ack = max(t_acks)
    rounds = f" rounds {DUR_ROUNDS} segments {n_segs}" if LONG else ""
    H.log(f"RESULT durability: in {total} delivered {r['unique']} dupes {r['dupes']} missing "
          f"{r['missing']} peak RSS {peak1:.1f}/{peak2:.1f} MiB acks in {t_ack:.1f}s "
          f"{extra(es, wd)}{rounds}")


def scenario_torn(ck, P, es):
    wd = P.tmpdir("fst2-")
    storage = os.path.join(wd, "buffer")
    es.reset()
    es.faults(request_status=503)
    hp = H.free_port()
    cfg = config(es.url, wd, storage, hp)
    sl = P.add(H.Sluice(cfg, wd))
    cl = Client(port_of(sl))
    per = 100
    frames = chunks(1000, 30, per)
    ids = [c for c, _ in frames]
    cl.send(frames)
    ck.check(cl.wait_acks(ids, 20), "torn: 30 chunks acked")
    sl.kill9()
    cl.close()
    segs = segments(storage)
    ck.eq(len(segs), 1, "torn: one segment")
    recs = records(segs[-1])
    ck.eq(len(recs), 30, "torn: 30 records in it")
    last_off, last_len = recs[-1]
    with open(segs[-1], "r+b") as f:
        f.truncate(last_off + last_len // 2)
        mid_off, mid_len = recs[10]
        f.seek(mid_off + mid_len // 2)
        b = f.read(1)
        f.seek(mid_off + mid_len // 2)
        f.write(bytes([b[0] ^ 0xFF]))
    cut = last_len // 2
    es.clear_faults()
    sl2 = P.add(H.Sluice(cfg, wd))
    port_of(sl2)
    expect = set()
    for k in range(1000, 1030):
        if k not in (1010, 1029):
            expect.update(range(k * per, (k + 1) * per))
    n = es.wait_docs(len(expect), 30, label="torn replay", stall_s=10)
    time.sleep(1)
    name = os.path.basename(segs[-1])
    ck.check(sl2.wait_log(rf"{name}: torn tail at offset {last_off}: truncated {cut} bytes", 5),
             f"torn: log names the truncation ({name}, offset {last_off}, {cut} bytes)",
             sl2.lines("torn|corrupt"))
    ck.check(sl2.wait_log(rf"{name}: corrupt data at offset {mid_off}: {mid_len} bytes skipped", 5),
             f"torn: log names the corrupt record ({name}, offset {mid_off})",
             sl2.lines("torn|corrupt"))
    ck.eq(len(sl2.lines(r"torn tail")), 1, "torn: one truncation logged")
    ck.eq(len(sl2.lines(r"corrupt data")), 1, "torn: one corrupt region logged")
    r = H.check_every_seq_once(ck, es.dump(), expect, "torn")
    ck.check(wait_empty(storage, 10), "torn: storage directory empty at the end", segments(storage))
    ck.check((metric(hp, "sluice_forward_storage_corrupt_total") or 0) >= 1,
             "torn: sluice_forward_storage_corrupt_total >= 1")
    ck.eq(sl2.terminate(), 0, "torn: exit code after SIGTERM")
    H.log(f"RESULT torn: in {30 * per} (2 chunks damaged) delivered {r['unique']} "
          f"dupes {r['dupes']} missing {r['missing']} docs {n} "
          f"peak RSS {sl2.rss.peak_hwm_kb / 1024:.1f} MiB {extra(es, wd)}")


def scenario_disk_full(ck, P, es, mnt):
    wd = P.tmpdir("fst3-")
    storage = os.path.join(mnt, "buffer")
    es.reset()
    es.faults(request_status=503)
    hp = H.free_port()
    sl = P.add(H.Sluice(config(es.url, wd, storage, hp), wd))
    cl = Client(port_of(sl))
    n_chunks, per = 150, 500
    acked_total = 0
    t_start = time.monotonic()
    for cyc in range(FULL_CYCLES):
        cn = f"disk full {cyc + 1}/{FULL_CYCLES}" if LONG else "disk full"
        first = 2000 + cyc * n_chunks
        if cyc:
            es.faults(request_status=503)
            cl.sender.join(timeout=5)
        err0 = len(sl.lines(r"storage_error|No space left"))
        enospc0 = len(sl.lines(r"No space left on device"))
        again0 = len(sl.lines(r"works again"))
        errs0 = (metric(hp, "sluice_forward_storage_errors_total") or 0) if cyc else 0
        docs0 = es.docs()
        frames = chunks(first, n_chunks, per)
        ids = [c for c, _ in frames]
        cl.send(frames)
        ck.check(sl.wait_lines(r"storage_error|No space left", err0 + 1, 20),
                 f"{cn}: a storage error logged")
        # the count of acks must stop moving below the total
        prev, stable_since = -1, time.monotonic()
        while time.monotonic() - stable_since < 2:
            now = cl.n_acks(ids)
            if now != prev:
                prev, stable_since = now, time.monotonic()
            time.sleep(0.1)
        acked_full = cl.n_acks(ids)
        acked_total += acked_full
        ck.check(0 < acked_full < n_chunks,
                 f"{cn}: acks stop while the store is full ({acked_full} of {n_chunks})")
        lines = sl.lines(r"No space left on device")[enospc0:]
        ck.check(lines and storage in lines[0],
                 f"{cn}: ENOSPC logged naming the path", lines[:1])
        errs = metric(hp, "sluice_forward_storage_errors_total")
        ck.check(errs is not None and errs >= errs0 + 1, f"{cn}: "
                 f"sluice_forward_storage_errors_total = {errs}")
        stored = metric(hp, "sluice_forward_stored_bytes")
        ck.check(stored is not None and stored > 0, f"{cn}: sluice_forward_stored_bytes = {stored}")
        if LONG:
            check_acked_stored(ck, cl, ids, storage, cn)
        time.sleep(2)
        ck.eq(es.docs(), docs0, f"{cn}: nothing delivered while esemu answers 503")
        es.clear_faults()
        ck.check(cl.wait_acks(ids, 40), f"{cn}: all chunks acked after the fault is cleared "
                                        f"({cl.n_acks(ids)} of {n_chunks})")
        n = es.wait_docs(docs0 + n_chunks * per, 30, label=cn, stall_s=10)
        r = H.check_every_seq_once(ck, es.dump(), range(2000 * per, (first + n_chunks) * per),
                                   cn)
        ck.check(wait_empty(storage, 10), f"{cn}: storage directory empty at the end",
                 segments(storage))
        ck.check(sl.wait_lines(r"works again", again0 + 1, 1), f"{cn}: recovery logged")
        if LONG:
            H.log(f"RESULT {cn}: in {n_chunks * per} acked-before-clear {acked_full * per} "
                  f"delivered so far {r['unique']} dupes {r['dupes']} missing {r['missing']} "
                  f"docs {n} errors {errs} ENOSPC lines {len(lines)} peak RSS "
                  f"{sl.rss.peak_hwm_kb / 1024:.1f} MiB")
    ck.eq(sl.terminate(), 0, "disk full: exit code after SIGTERM")
    peak = rss_check(ck, sl, "disk full")
    cycles = f" cycles {FULL_CYCLES} in {time.monotonic() - t_start:.0f}s" if LONG else ""
    H.log(f"RESULT disk full: in {FULL_CYCLES * n_chunks * per} acked-before-clear "
          f"{acked_total * per} delivered {r['unique']} dupes {r['dupes']} missing {r['missing']} "
          f"docs {n} errors {errs} peak RSS {peak:.1f} MiB {extra(es, wd)}{cycles}")


def start_read_only(P, es, mnt):
    """A fresh esemu state and a sluice storing under mnt/buffer-ro, with a client connected."""
    wd = P.tmpdir("fst4-")
    storage = os.path.join(mnt, "buffer-ro")
    es.reset()
    es.clear_faults()
    hp = H.free_port()
    sl = P.add(H.Sluice(config(es.url, wd, storage, hp), wd))
    return wd, storage, hp, sl, Client(port_of(sl))


def scenario_read_only(ck, P, es, mnt):
    wd, storage, hp, sl, cl = start_read_only(P, es, mnt)
    per = 500
    first = chunks(3000, 40, per)
    second = chunks(3040, 40, per)
    cl.send(first)
    ck.check(cl.wait_acks([c for c, _ in first], 20), "read-only: first half acked")
    es.wait_docs(40 * per, 20, label="read-only first half")
    ck.check(wait_empty(storage, 10), "read-only: idle store closed its segment")
    err, _ = H.remount(mnt, "ro", every_s=0.05)
    if not ck.check(err is None, "read-only: remounted read-only", err):
        return
    try:
        cl.sender.join(timeout=5)
        cl.send(second)
        time.sleep(3)
        ids2 = [c for c, _ in second]
        ck.eq(cl.n_acks(ids2), 0, "read-only: no ack while the store is read-only")
        lines = sl.lines(r"Read-only file system")
        ck.check(lines and storage in lines[0], "read-only: EROFS logged naming the path",
                 lines[:1])
    finally:
        err, _ = H.remount(mnt, "rw", every_s=0.05)
    ck.check(err is None, "read-only: remounted rw", err)
    ck.check(cl.wait_acks(ids2, 20), f"read-only: second half acked after rw "
                                     f"({cl.n_acks(ids2)} of 40)")
    n = es.wait_docs(80 * per, 20, label="read-only", stall_s=10)
    r = H.check_every_seq_once(ck, es.dump(), range(3000 * per, 3080 * per), "read-only")
    ck.check(wait_empty(storage, 10), "read-only: storage directory empty at the end")
    ck.eq(sl.terminate(), 0, "read-only: exit code after SIGTERM")
    peak = rss_check(ck, sl, "read-only")
    H.log(f"RESULT read-only: in {80 * per} delivered {r['unique']} dupes {r['dupes']} missing "
          f"{r['missing']} docs {n} peak RSS {peak:.1f} MiB {extra(es, wd)}")


class PacedSender(threading.Thread):
    """Long read-only setting: sends a chunk of `per` events every `interval` s on one
    connection, from chunk `first` on, until stop(); records when each chunk was handed to the
    socket (sendall blocks while sluice does not read)."""

    def __init__(self, cl, first, per, interval):
        super().__init__(daemon=True)
        self.cl, self.first, self.per, self.interval = cl, first, per, interval
        self.sent = []  # (chunk id, monotonic time sendall started)
        self.lock = threading.Lock()
        self._halt = threading.Event()

    def run(self):
        k = self.first
        while not self._halt.is_set():
            (cid, fr), = chunks(k, 1, self.per)
            with self.lock:
                self.sent.append((cid, time.monotonic()))
            try:
                self.cl.sock.sendall(fr)
            except OSError:
                return
            k += 1
            self._halt.wait(self.interval)

    def snapshot(self):
        with self.lock:
            return list(self.sent)

    def stop(self):
        self._halt.set()
        self.join(timeout=30)


def chunk_seqs(cid, per):
    k = int(cid.split("-")[1])
    return range(k * per, (k + 1) * per)


def scenario_read_only_long(ck, P, es, mnt):
    wd, storage, hp, sl, cl = start_read_only(P, es, mnt)
    per, first = 500, 3000
    snd = PacedSender(cl, first, per, 0.25)
    snd.start()
    t_start = time.monotonic()
    ro_total_s, sent_ro_total = 0.0, 0
    try:
        for cyc in range(RO_CYCLES):
            cn = f"read-only {cyc + 1}/{RO_CYCLES}"
            time.sleep(2)  # chunks flow, acked and indexed
            erofs0 = len(sl.lines(r"Read-only file system"))
            again0 = len(sl.lines(r"works again"))
            errs0 = metric(hp, "sluice_forward_storage_errors_total") or 0
            t_try = time.monotonic()
            err, _ = H.remount(mnt, "ro", 60, every_s=0.05)
            t_ro = time.monotonic()
            if not ck.check(err is None, f"{cn}: remounted read-only between two chunks "
                            f"({t_ro - t_try:.1f}s of tries)", err):
                return
            try:
                # what was acked before the remount is in the store or indexed
                with cl.lock:
                    acked_ro = set(cl.acks)
                stored = stored_chunks(storage)
                seqs = {H.seq_of(d) for d in es.dump()}
                lost = [c for c in acked_ro - stored
                        if not all(s in seqs for s in chunk_seqs(c, per))]
                ck.check(not lost, f"{cn}: every chunk acked before the remount is stored or "
                         f"indexed ({len(acked_ro)} acked)", lost[:5])
                ck.check(sl.wait_lines(r"Read-only file system", erofs0 + 1, 15),
                         f"{cn}: EROFS logged", sl.log_tail(5))
                time.sleep(3)
                lines = sl.lines(r"Read-only file system")[erofs0:]
                ck.check(lines and storage in lines[0], f"{cn}: EROFS logged naming the path",
                         lines[:1])
                errs = metric(hp, "sluice_forward_storage_errors_total")
                ck.check(errs is not None and errs > errs0,
                         f"{cn}: sluice_forward_storage_errors_total {errs0} -> {errs}")
            finally:
                err, _ = H.remount(mnt, "rw", every_s=0.05)
                t_rw = time.monotonic()
            ck.check(err is None, f"{cn}: remounted rw", err)
            sent = snd.snapshot()
            sent_ro = [c for c, t in sent if t_ro < t < t_rw]
            with cl.lock:
                acks = dict(cl.acks)
            early = [c for c in sent_ro if c in acks and acks[c] < t_rw]
            ck.check(sent_ro, f"{cn}: chunks kept coming while read-only ({len(sent_ro)})")
            ck.check(not early, f"{cn}: no chunk sent after the remount acked before rw", early[:5])
            during = [c for c, t in acks.items() if t_ro + 0.5 < t < t_rw]
            ck.eq(len(during), 0, f"{cn}: acks received while read-only (from 0.5 s after the "
                  f"remount)")
            ids = [c for c, _ in sent]
            ck.check(cl.wait_acks(ids, 20), f"{cn}: every chunk sent so far acked after rw "
                     f"({cl.n_acks(ids)} of {len(ids)})")
            ck.check(sl.wait_lines(r"works again", again0 + 1, 5), f"{cn}: recovery logged")
            # the chunks sent up to the rw remount are all indexed once; newer ones may be too
            deadline = time.monotonic() + 30
            while True:
                docs = es.dump()
                n_sent = len(snd.snapshot())  # after the dump: covers every chunk in it
                r = H.seq_report(docs, range(first * per, (first + n_sent) * per))
                missing = sum(1 for c in ids for s in chunk_seqs(c, per) if s not in r["seen"])
                if missing == 0 or time.monotonic() > deadline:
                    break
                time.sleep(1)
            n = r["docs"]
            ck.check(missing == 0 and r["dupes"] == 0 and r["unexpected"] == 0 and
                     r["no_seq"] == 0, f"{cn}: events of the {len(ids)} chunks sent up to rw "
                     f"indexed (missing {missing}), {n} docs: dupes {r['dupes']}, unexpected "
                     f"{r['unexpected']}")
            ro_total_s += t_rw - t_ro
            sent_ro_total += len(sent_ro)
            H.log(f"RESULT {cn}: sent {len(ids) * per} (during ro {len(sent_ro) * per}) docs {n} "
                  f"unique {r['unique']} missing {missing} dupes {r['dupes']} ro for "
                  f"{t_rw - t_ro:.1f}s (tries {t_ro - t_try:.1f}s) errors {errs} peak RSS "
                  f"{sl.rss.peak_hwm_kb / 1024:.1f} MiB")
    finally:
        snd.stop()
    ids = [c for c, _ in snd.snapshot()]
    ck.check(cl.wait_acks(ids, 20), f"read-only: all {len(ids)} chunks acked "
             f"({cl.n_acks(ids)})")
    n = es.wait_docs(len(ids) * per, 30, label="read-only", stall_s=10)
    expect = set()
    for c in ids:
        expect.update(chunk_seqs(c, per))
    r = H.check_every_seq_once(ck, es.dump(), expect, "read-only")
    ck.check(wait_empty(storage, 10), "read-only: storage directory empty at the end")
    ck.eq(sl.terminate(), 0, "read-only: exit code after SIGTERM")
    peak = rss_check(ck, sl, "read-only")
    H.log(f"RESULT read-only: in {len(ids) * per} ({sent_ro_total * per} sent while read-only) "
          f"delivered {r['unique']} dupes {r['dupes']} missing {r['missing']} docs {n} cycles "
          f"{RO_CYCLES} read-only {ro_total_s:.0f}s of {time.monotonic() - t_start:.0f}s "
          f"peak RSS {peak:.1f} MiB {extra(es, wd)}")


def main():
    H.require_binaries(H.SLUICE_BIN, H.ESEMU_BIN)
    ck = H.Checker("forward_stored")
    skip = None
    with H.Procs() as P:
        try:
            es = P.add(H.EsEmu(workdir=P.tmpdir("fst-es-")))
            scenario_durability(ck, P, es)
            scenario_torn(ck, P, es)
            mnt = P.tmpdir("fst-mnt-")
            why = H.mount_tmpfs(mnt, "2m")
            if why:
                skip = f"cannot mount a tmpfs for the disk-fault scenarios: {why}"
            else:
                try:
                    scenario_disk_full(ck, P, es, mnt)
                finally:
                    H.umount(mnt)
                why = H.mount_tmpfs(mnt, "2m")
                if why:
                    skip = f"cannot mount a tmpfs for the read-only scenario: {why}"
                else:
                    try:
                        if LONG:
                            scenario_read_only_long(ck, P, es, mnt)
                        else:
                            scenario_read_only(ck, P, es, mnt)
                    finally:
                        H.umount(mnt)
        except Exception as e:
            ck.crash(e)
    if skip and not ck.failed:
        print(f"SKIP {skip}", flush=True)
        print(f"{ck.passed} passed, 0 failed (disk-fault scenarios skipped)", flush=True)
        sys.exit(SKIP_CODE)
    ck.finish()


if __name__ == "__main__":
    main()
