#!/usr/bin/python3
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

If tmpfs cannot be mounted, 1 and 2 still run and the test exits 77 (ctest: skipped) naming why."""
import glob
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

T0 = 1614859200
SKIP_CODE = 77
MEM_LIMIT_MIB = 32


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
    return f"""service:
  memory_limit: {MEM_LIMIT_MIB}MiB
  http_listen: 127.0.0.1:{http_port}
  dead_letter: {{path: {wd}/dead-letter}}
  storage_path: {storage}
  storage_max_size: {max_size}
  shutdown_timeout: 10s
  log_level: info
  log_interval: 1s
  stats_interval: 2s
inputs:
  - type: forward
    name: fs
    listen: 127.0.0.1:0
    ack: stored
    max_frame_size: 1MiB
outputs:
  - type: elasticsearch
    name: es
    match: "**"
    hosts: [{es_url}]
    index: fwd-stored
    id: kafka
    op: create
    batch_max_bytes: 1MiB
    batch_max_wait: 100ms
    retry_base: 50ms
    retry_max: 500ms
"""


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
    sl = P.add(H.Sluice(cfg, wd))
    cl = Client(port_of(sl))
    frames = chunks(0, 200, 500)
    ids = [c for c, _ in frames]
    t0 = time.monotonic()
    cl.send(frames)
    acked = cl.wait_acks(ids, 40)
    t_ack = time.monotonic() - t0
    docs_at_ack = es.docs()
    ck.check(acked, f"durability: all 200 chunks acked while esemu answers 503 "
                    f"({cl.n_acks(ids)} acked in {t_ack:.1f}s)")
    ck.eq(docs_at_ack, 0, "durability: esemu docs when the acks had arrived (acks before delivery)")
    ck.check(segments(storage), "durability: segment files exist before the kill")
    sl.kill9()
    cl.close()
    peak1 = sl.rss.peak_hwm_kb / 1024
    es.clear_faults()
    sl2 = P.add(H.Sluice(cfg, wd))
    port_of(sl2)
    n = es.wait_docs(100000, 45, label="durability replay", stall_s=15)
    ck.eq(n, 100000, "durability: docs after the restart")
    ck.check(sl2.wait_log(r"replaying .*seg-", 1), "durability: the log names the replayed segment")
    r = H.check_every_seq_once(ck, es.dump(), range(100000), "durability")
    ck.check(wait_empty(storage, 10), "durability: storage directory empty at the end",
             segments(storage))
    ck.eq(sl2.terminate(), 0, "durability: exit code after SIGTERM")
    peak2 = sl2.rss.peak_hwm_kb / 1024
    H.log(f"RESULT durability: in 100000 delivered {r['unique']} dupes {r['dupes']} missing "
          f"{r['missing']} peak RSS {peak1:.1f}/{peak2:.1f} MiB acks in {t_ack:.1f}s "
          f"{extra(es, wd)}")


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


def mount_tmpfs(path, size="2m"):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                       capture_output=True, text=True)
    return None if r.returncode == 0 else (r.stderr.strip() or f"exit {r.returncode}")


def umount(path):
    subprocess.run(["umount", "-l", path], capture_output=True)


def remount(path, mode, timeout_s=10):
    """mount -o remount,MODE; a read-only remount fails (busy) while a file is open for writing,
    so it is retried until sluice has closed its idle segment."""
    deadline = time.monotonic() + timeout_s
    err = ""
    while time.monotonic() < deadline:
        r = subprocess.run(["mount", "-o", f"remount,{mode}", path], capture_output=True,
                           text=True)
        if r.returncode == 0:
            return None
        err = r.stderr.strip()
        time.sleep(0.05)
    return err


def scenario_disk_full(ck, P, es, mnt):
    wd = P.tmpdir("fst3-")
    storage = os.path.join(mnt, "buffer")
    es.reset()
    es.faults(request_status=503)
    hp = H.free_port()
    sl = P.add(H.Sluice(config(es.url, wd, storage, hp), wd))
    cl = Client(port_of(sl))
    n_chunks, per = 150, 500
    frames = chunks(2000, n_chunks, per)
    ids = [c for c, _ in frames]
    cl.send(frames)
    ck.check(sl.wait_log(r"storage_error|No space left", 20), "disk full: a storage error logged")
    # the count of acks must stop moving below the total
    prev, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 2:
        now = cl.n_acks(ids)
        if now != prev:
            prev, stable_since = now, time.monotonic()
        time.sleep(0.1)
    acked_full = cl.n_acks(ids)
    ck.check(0 < acked_full < n_chunks,
             f"disk full: acks stop while the store is full ({acked_full} of {n_chunks})")
    lines = sl.lines(r"No space left on device")
    ck.check(lines and storage in lines[0],
             "disk full: ENOSPC logged naming the path", lines[:1])
    errs = metric(hp, "sluice_forward_storage_errors_total")
    ck.check(errs is not None and errs >= 1, f"disk full: sluice_forward_storage_errors_total "
                                             f"= {errs}")
    stored = metric(hp, "sluice_forward_stored_bytes")
    ck.check(stored is not None and stored > 0, f"disk full: sluice_forward_stored_bytes = {stored}")
    time.sleep(2)
    ck.eq(es.docs(), 0, "disk full: nothing delivered while esemu answers 503")
    es.clear_faults()
    ck.check(cl.wait_acks(ids, 40), f"disk full: all chunks acked after the fault is cleared "
                                    f"({cl.n_acks(ids)} of {n_chunks})")
    n = es.wait_docs(n_chunks * per, 30, label="disk full", stall_s=10)
    r = H.check_every_seq_once(ck, es.dump(), range(2000 * per, (2000 + n_chunks) * per),
                               "disk full")
    ck.check(wait_empty(storage, 10), "disk full: storage directory empty at the end",
             segments(storage))
    ck.check(sl.wait_log(r"works again", 1), "disk full: recovery logged")
    ck.eq(sl.terminate(), 0, "disk full: exit code after SIGTERM")
    peak = rss_check(ck, sl, "disk full")
    H.log(f"RESULT disk full: in {n_chunks * per} acked-before-clear {acked_full * per} delivered "
          f"{r['unique']} dupes {r['dupes']} missing {r['missing']} docs {n} errors {errs} "
          f"peak RSS {peak:.1f} MiB {extra(es, wd)}")


def scenario_read_only(ck, P, es, mnt):
    wd = P.tmpdir("fst4-")
    storage = os.path.join(mnt, "buffer-ro")
    es.reset()
    es.clear_faults()
    hp = H.free_port()
    sl = P.add(H.Sluice(config(es.url, wd, storage, hp), wd))
    cl = Client(port_of(sl))
    per = 500
    first = chunks(3000, 40, per)
    second = chunks(3040, 40, per)
    cl.send(first)
    ck.check(cl.wait_acks([c for c, _ in first], 20), "read-only: first half acked")
    es.wait_docs(40 * per, 20, label="read-only first half")
    ck.check(wait_empty(storage, 10), "read-only: idle store closed its segment")
    err = remount(mnt, "ro")
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
        err = remount(mnt, "rw")
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
            why = mount_tmpfs(mnt)
            if why:
                skip = f"cannot mount a tmpfs for the disk-fault scenarios: {why}"
            else:
                try:
                    scenario_disk_full(ck, P, es, mnt)
                finally:
                    umount(mnt)
                why = mount_tmpfs(mnt)
                if why:
                    skip = f"cannot mount a tmpfs for the read-only scenario: {why}"
                else:
                    try:
                        scenario_read_only(ck, P, es, mnt)
                    finally:
                        subprocess.run(["mount", "-o", "remount,rw", mnt], capture_output=True)
                        umount(mnt)
        except Exception as e:
            ck.crash(e)
    if skip and not ck.failed:
        print(f"SKIP {skip}", flush=True)
        print(f"{ck.passed} passed, 0 failed (disk-fault scenarios skipped)", flush=True)
        sys.exit(SKIP_CODE)
    ck.finish()


if __name__ == "__main__":
    main()
