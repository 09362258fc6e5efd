"""Forward clients that behave like fluentd's out_forward with require_ack_response: each
connection sends its chunks (PackedForward, bin entries, a `chunk` option), waits for their acks,
and when an ack does not come within ack_timeout (or the connection breaks) it reconnects and
resends every chunk not acked yet, with the same chunk id. Used by the Forward budget tests.

Events are {"seq": N, "msg": <padding>} with one EventTime; a chunk holds a range of seqs, so
the emulator's documents can be checked for every seq exactly once (the Forward input derives
each document id from the chunk id and the event's index, so a resent chunk overwrites)."""
import re
import select
import socket
import struct
import threading
import time

import msgpack

import harness as H

T0 = 1614859200


def event_time(sec, nsec=0):
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))


def packed_frame(tag, cid, seqs, pad):
    et = event_time(T0)
    entries = b"".join(msgpack.packb([et, {"seq": s, "msg": pad}]) for s in seqs)
    return msgpack.packb([tag, entries, {"chunk": cid, "size": len(seqs)}], use_bin_type=True)


class Chunk:
    def __init__(self, cid, seqs):
        self.cid = cid
        self.seqs = seqs
        self.acks = 0
        self.sends = 0


class Client(threading.Thread):
    """One logical fluentd-like sender. chunks: [Chunk]. pipeline: send every un-acked chunk
    and then wait (else one at a time). tail_delay: hold each frame's last 100 bytes back this
    many seconds. Records per chunk how many acks and sends it took."""

    def __init__(self, port, tag, chunks, pad, *, pipeline=True, tail_delay=0.0,
                 ack_timeout=30.0, deadline=None):
        super().__init__(daemon=True)
        self.port = port
        self.tag = tag
        self.chunks = chunks
        self.pad = pad
        self.pipeline = pipeline
        self.tail_delay = tail_delay
        self.ack_timeout = ack_timeout
        self.deadline = deadline
        self.connections = 0
        self.resends = 0
        self.errors = []
        self.stop = threading.Event()

    def frame(self, ch):
        return packed_frame(self.tag, ch.cid, ch.seqs, self.pad)

    def _send_all(self, s, batch, broken):
        try:
            for ch in batch:
                f = self.frame(ch)
                ch.sends += 1
                if self.tail_delay:
                    s.sendall(f[:-100])
                    if self.stop.wait(self.tail_delay):
                        return
                    s.sendall(f[-100:])
                else:
                    s.sendall(f)
        except OSError:
            broken.set()

    def _round(self, todo):
        """One connection: send todo (all, or the first when not pipelining), read acks until
        they are all in or ack_timeout passes without one. Returns the chunks acked."""
        batch = todo if self.pipeline else todo[:1]
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        except OSError as e:
            self.errors.append(f"connect: {e!r}")
            time.sleep(0.5)
            return []
        self.connections += 1
        # Before the sender starts: it blocks while sluice does not read, which is no error (with
        # the connect timeout still set, a send that waited 10 s broke the round).
        s.settimeout(None)
        broken = threading.Event()
        sender = threading.Thread(target=self._send_all, args=(s, batch, broken), daemon=True)
        sender.start()
        unp = msgpack.Unpacker(raw=False)
        want = {ch.cid: ch for ch in batch}
        done = []
        last = time.monotonic()
        while want and not self.stop.is_set():
            if time.monotonic() - last > self.ack_timeout or broken.is_set():
                break
            if not select.select([s], [], [], 0.2)[0]:
                continue
            try:
                data = s.recv(65536)
            except OSError:
                break
            if not data:
                break
            unp.feed(data)
            for o in unp:
                cid = o.get("ack") if isinstance(o, dict) else None
                ch = want.pop(cid, None)
                if ch is None:
                    self.errors.append(f"unexpected answer {o!r}")
                    continue
                ch.acks += 1
                done.append(ch)
                last = time.monotonic()
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
        sender.join(timeout=5)
        return done

    def run(self):
        todo = list(self.chunks)
        while todo and not self.stop.is_set():
            if self.deadline and time.monotonic() > self.deadline:
                break
            if any(ch.sends for ch in todo):
                self.resends += 1
            acked = self._round(todo)
            todo = [ch for ch in todo if ch not in acked]


def make_clients(port, n_conns, chunks_per_conn, events_per_chunk, pad, prefix, **kw):
    clients = []
    seq = 0
    for i in range(n_conns):
        chunks = []
        for j in range(chunks_per_conn):
            chunks.append(Chunk(f"{prefix}-{i}-{j}", range(seq, seq + events_per_chunk)))
            seq += events_per_chunk
        clients.append(Client(port, f"{prefix}.c{i}", chunks, pad, **kw))
    return clients, seq


def run_clients(clients, timeout_s, progress=None):
    """Starts the clients and waits until all finish or timeout_s passes; returns seconds."""
    t = time.monotonic()
    for c in clients:
        c.deadline = t + timeout_s
        c.start()
    last = 0
    for c in clients:
        while c.is_alive() and time.monotonic() - t < timeout_s + 5:
            c.join(timeout=1)
            if progress and time.monotonic() - last >= 5:
                progress()
                last = time.monotonic()
    for c in clients:
        c.stop.set()
    for c in clients:
        c.join(timeout=10)
    return time.monotonic() - t


def chunk_report(clients):
    chunks = [ch for c in clients for ch in c.chunks]
    return {"chunks": len(chunks),
            "acked": sum(1 for ch in chunks if ch.acks == 1),
            "acked_twice": sum(1 for ch in chunks if ch.acks > 1),
            "unacked": sum(1 for ch in chunks if ch.acks == 0),
            "sends": sum(ch.sends for ch in chunks),
            "resends": sum(c.resends for c in clients),
            "connections": sum(c.connections for c in clients),
            "errors": [e for c in clients for e in c.errors][:5]}


SEQ_RX = re.compile(rb'"seq":(\d+)')


def seq_counts(es):
    """{seq: documents} over the emulator's whole dump, read as a stream (the documents can
    take hundreds of MiB: only the seq of each line is kept)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", es.ctl_port, timeout=300)
    counts = {}
    try:
        c.request("GET", "/_emu/dump")
        r = c.getresponse()
        if r.status != 200:
            raise RuntimeError(f"dump -> {r.status}")
        rest = b""
        while True:
            data = r.read(1 << 20)
            if not data:
                break
            lines = (rest + data).split(b"\n")
            rest = lines.pop()
            for ln in lines:
                m = SEQ_RX.search(ln)
                k = int(m.group(1)) if m else -1
                counts[k] = counts.get(k, 0) + 1
        if rest.strip():
            m = SEQ_RX.search(rest)
            k = int(m.group(1)) if m else -1
            counts[k] = counts.get(k, 0) + 1
    finally:
        c.close()
    return counts


def check_each_once(ck, es, n, what):
    counts = seq_counts(es)
    missing = sum(1 for s in range(n) if s not in counts)
    dup = sum(1 for s, k in counts.items() if k > 1)
    extra = sum(1 for s in counts if not 0 <= s < n)
    ck.check(missing == 0 and dup == 0 and extra == 0,
             f"{what}: the emulator holds each of the {n} events exactly once",
             f"missing {missing}, duplicated {dup}, unexpected {extra}")
    return missing, dup


def metric(sl, name, default=None):
    v = sl.metrics(name)
    return v[0][1] if v else default


def log_state(sl, label):
    H.log(f"{label}: budget {metric(sl, 'sluice_budget_used_bytes')} "
          f"in_flight {metric(sl, 'sluice_records_in_flight')} "
          f"delivered {metric(sl, 'sluice_records_delivered_total')} "
          f"paused_s {metric(sl, 'sluice_input_paused_seconds_total')} "
          f"rss {H.proc_status(sl.pid).get('VmRSS', 0) / 1024:.1f} MiB")
