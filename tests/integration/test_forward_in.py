#!/usr/bin/python3
# ctest-labels: reliability asan
"""Forward input, ack: delivered, end to end: Forward clients -> sluice -> esemu.

One sluice with two forward inputs on 127.0.0.1:<free port>: `f` (no key, max_frame_size 1MiB)
and `fk` (shared_key). Output: esemu, index fwd-${tag}-%Y.%m.%d, id kafka (= the event's
`<chunk>-<index>` source id for Forward events).
 1. python3-fluent-logger (Debian) sends N events with a fixed EventTime: all indexed once, in the
    index of that day, with their fields.
 2. a raw msgpack client in every carrier mode (Message, Forward, PackedForward bin and str,
    CompressedPackedForward with one and with two gzip members), each with a chunk: the ack is
    byte-exact and arrives only when the documents are in esemu; with an esemu stall of 3 s the
    ack waits for the stall.
 3. the same chunk resent after the ack: no new documents (same ids).
 4. garbage, a truncated request then close, the array bomb `dd 04 00 00 00`, an oversized
    request: each closes only its own connection (logged); a parallel good connection keeps
    getting acks; sluice stays up.
 5. handshake: wrong key -> PONG false "shared_key mismatch" and close; right key -> PONG true
    with a digest we verify, then events flow; UDP heartbeat answered with 0x00.
 6. SIGTERM: exit 0, conservation in final-stats for both inputs."""
import gzip
import hashlib
import os
import re
import socket
import struct
import sys
import time

import msgpack
from fluent import sender

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

N_LOGGER = 300
DAY_TS = 1614859200  # 2021-03-04T12:00:00Z
KEY = "s3cret-key"


def event_time(sec, nsec=0):
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))


def config(es_url, wd):
    return H.config(
        H.service(wd, shutdown_timeout="20s", log_level="info", stats_interval="2s"),
        [H.forward_input("f", max_frame_size="1MiB"),
         H.forward_input("fk", shared_key=KEY, self_hostname="sluice-test",
                         handshake_timeout="3s")],
        [H.es_output(es_url, match="**", index="fwd-${tag}-%Y.%m.%d", id="kafka", op="create",
                     batch_max_bytes="1MiB", batch_max_wait="100ms")])


def ports(sl):
    out = {}
    for ln in sl.lines(r"listening on 127\.0\.0\.1:\d+"):
        m = re.search(r"\b(fk?)\b.*listening on 127\.0\.0\.1:(\d+)", ln)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


class Conn(H.ForwardConn):
    def __init__(self, port, timeout=10):
        super().__init__(port=port, timeout=timeout)

    def read_raw(self, n, timeout):
        self.s.settimeout(timeout)
        buf = b""
        try:
            while len(buf) < n:
                d = self.s.recv(n - len(buf))
                if not d:
                    break
                buf += d
        except socket.timeout:
            pass
        return buf

    def wait_closed(self, timeout):
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
        except (socket.timeout, BlockingIOError):
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True

def entries(tag_seq, n, t0):
    return [[event_time(t0 + i, 123456789), {"seq": tag_seq + i, "msg": f"m{tag_seq + i}"}]
            for i in range(n)]


def frames_for_modes(t0):
    """[(name, tag, frame bytes, chunk, n events, first seq)]"""
    out = []
    seq = 10_000
    # Message
    out.append(("message", "raw.message",
                msgpack.packb(["raw.message", event_time(t0, 5), {"seq": seq, "msg": "one"},
                               {"chunk": "chunk-message"}]), "chunk-message", 1, seq))
    seq += 100
    e = entries(seq, 5, t0)
    out.append(("forward", "raw.forward",
                msgpack.packb(["raw.forward", e, {"chunk": "chunk-forward", "size": 5}]),
                "chunk-forward", 5, seq))
    seq += 100
    e = entries(seq, 7, t0)
    packed = b"".join(msgpack.packb(x) for x in e)
    out.append(("packed-bin", "raw.packedbin",
                msgpack.packb(["raw.packedbin", packed, {"chunk": "chunk-packed-bin"}],
                              use_bin_type=True), "chunk-packed-bin", 7, seq))
    seq += 100
    e = entries(seq, 6, t0)
    packed = b"".join(msgpack.packb(x) for x in e)
    # fluentd's own framing: entries as str32 (0xdb), compressed: "text"
    hdr = b"\x93" + msgpack.packb("raw.packedstr") + b"\xdb" + struct.pack(">I", len(packed))
    out.append(("packed-str", "raw.packedstr",
                hdr + packed + msgpack.packb({"size": 6, "compressed": "text",
                                              "chunk": "p8n9gmxTQVC8/nh2wlKKeQ==\n"}),
                "p8n9gmxTQVC8/nh2wlKKeQ==\n", 6, seq))
    seq += 100
    e = entries(seq, 9, t0)
    packed = b"".join(msgpack.packb(x) for x in e)
    out.append(("gzip", "raw.gzip",
                msgpack.packb(["raw.gzip", gzip.compress(packed),
                               {"compressed": "gzip", "chunk": "chunk-gzip"}], use_bin_type=True),
                "chunk-gzip", 9, seq))
    seq += 100
    e = entries(seq, 8, t0)
    p1 = b"".join(msgpack.packb(x) for x in e[:3])
    p2 = b"".join(msgpack.packb(x) for x in e[3:])
    out.append(("gzip-2-members", "raw.gzip2",
                msgpack.packb(["raw.gzip2", gzip.compress(p1) + gzip.compress(p2),
                               {"compressed": "gzip", "chunk": "chunk-gzip2"}], use_bin_type=True),
                "chunk-gzip2", 8, seq))
    return out


def ack_bytes(chunk):
    return msgpack.packb({"ack": chunk})


def main():
    ck = H.Checker("test_forward_in")
    H.require_binaries(H.SLUICE_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            es = procs.add(H.EsEmu(workdir=wd))
            sl = procs.add(H.Sluice(config(es.url, wd), wd))
            ck.check(sl.wait_log(r"fk.*listening on 127\.0\.0\.1:\d+", 10)
                     and sl.wait_log(r"\bf\b.*listening on", 1), "both inputs log their port",
                     sl.log_tail())
            pt = ports(sl)
            ck.check("f" in pt and "fk" in pt, f"ports parsed {pt}")
            port, kport = pt.get("f"), pt.get("fk")
            expected_docs = 0

            # ---- 1. fluent-logger (Debian's python3-fluent-logger), Message mode, no chunk
            fl = sender.FluentSender("app", host="127.0.0.1", port=port,
                                     nanosecond_precision=True)
            for i in range(N_LOGGER):
                ok = fl.emit_with_time("t1", sender.EventTime(DAY_TS + 0.25),
                                       {"seq": i, "who": "fluent-logger", "n": i * 2})
                if not ok:
                    break
            ck.check(fl.last_error is None, f"fluent-logger sent {N_LOGGER} events",
                     fl.last_error)
            fl.close()
            expected_docs += N_LOGGER
            got = es.wait_docs(expected_docs, 30, label="logger")
            ck.eq(got, expected_docs, "fluent-logger events indexed")
            docs = [d for d in es.dump() if d["_index"].startswith("fwd-app.t1")]
            ck.check(all(d["_index"] == "fwd-app.t1-2021.03.04" for d in docs),
                     "index from tag and the client's EventTime (fwd-app.t1-2021.03.04)",
                     {d["_index"] for d in docs})
            seqs = sorted(d["_source"]["seq"] for d in docs)
            ck.check(seqs == list(range(N_LOGGER)), "every fluent-logger seq exactly once")
            ck.check(all(d["_source"]["n"] == 2 * d["_source"]["seq"]
                         and d["_source"]["who"] == "fluent-logger" for d in docs),
                     "record fields passed through")

            # ---- 2. every carrier mode, ack after the documents are in esemu
            t0 = 1700000000
            good = Conn(port)  # stays open through test 4
            for name, tag, frame, chunk, n, first in frames_for_modes(t0):
                good.send(frame)
                a = good.read_obj(20)
                docs_at_ack = es.docs()
                expected_docs += n
                ck.check(a == {"ack": chunk}, f"{name}: ack {a!r}")
                ck.check(docs_at_ack >= expected_docs,
                         f"{name}: {n} documents in esemu when the ack arrived "
                         f"({docs_at_ack}/{expected_docs})")
            # byte-exact: read one more ack raw
            frame = msgpack.packb(["raw.exact", [[event_time(t0), {"seq": 1}]],
                                   {"chunk": "AAECAwQFBgcICQoLDA0ODw=="}])
            good.send(frame)
            want = ack_bytes("AAECAwQFBgcICQoLDA0ODw==")
            raw = good.read_raw(len(want), 20)
            ck.eq(raw, want, "ack bytes are exactly {\"ack\": <chunk>}")
            expected_docs += 1
            dump = es.dump()
            by_tag = {}
            for d in dump:
                by_tag.setdefault(d["_index"], []).append(d)
            for name, tag, frame, chunk, n, first in frames_for_modes(t0):
                ds = by_tag.get(f"fwd-{tag}-2023.11.14", [])
                ids = sorted(d["_id"] for d in ds)
                want_ids = sorted(f"{chunk}-{i}" for i in range(n))
                ck.check(ids == want_ids, f"{name}: ids are <chunk>-<index>", (ids[:3], want_ids[:3]))
                ck.check(sorted(d["_source"]["seq"] for d in ds) == list(range(first, first + n)),
                         f"{name}: every seq once")
            # stall: the ack waits for Elasticsearch
            es.faults(stall_ms=3000)
            t_send = time.monotonic()
            good.send(msgpack.packb(["raw.stall", [[event_time(t0), {"seq": 1}],
                                                   [event_time(t0), {"seq": 2}]],
                                     {"chunk": "chunk-stall"}]))
            a = good.read_obj(30)
            waited = time.monotonic() - t_send
            docs_at_ack = es.docs()
            expected_docs += 2
            ck.check(a == {"ack": "chunk-stall"}, f"stall: ack {a!r}")
            ck.check(waited >= 2.5, f"stall: the ack waited for the 3 s stall ({waited:.2f} s)")
            ck.check(docs_at_ack >= expected_docs, f"stall: documents in esemu at ack time "
                     f"({docs_at_ack}/{expected_docs})")
            es.clear_faults()

            # ---- 3. resend after a "lost" ack: same ids, no duplicates
            dup = msgpack.packb(["raw.dup", entries(50_000, 20, t0), {"chunk": "chunk-dup"}])
            c1 = Conn(port)
            c1.send(dup)
            a1 = c1.read_obj(20)
            c1.close()  # pretend the ack was lost: the client resends on a new connection
            expected_docs += 20
            c2 = Conn(port)
            c2.send(dup)
            a2 = c2.read_obj(20)
            c2.close()
            ck.check(a1 == a2 == {"ack": "chunk-dup"}, f"resend: both acked ({a1!r}, {a2!r})")
            time.sleep(0.5)
            ck.eq(es.docs(), expected_docs, "resend: no duplicate documents")

            # ---- 4. broken requests close only their connection
            big = msgpack.packb(["raw.big", b"\x00" * (2 * 1024 * 1024), {"chunk": "big"}],
                                use_bin_type=True)
            cases = [("garbage", b"\xc1\xc1\xc1garbage", False),
                     ("truncated then close", dup[: len(dup) // 2], True),
                     ("array bomb dd 04 00 00 00", b"\xdd\x04\x00\x00\x00", False),
                     ("oversized request (2 MiB > max_frame_size 1 MiB)", big, False),
                     ("not an array", msgpack.packb({"a": 1}), False),
                     ("bad option", msgpack.packb(["t", [], "x"]), False)]
            perr0 = len(sl.lines(r"protocol_error|closing this connection"))
            for i, (what, data, we_close) in enumerate(cases):
                b = Conn(port)
                try:
                    b.send(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if we_close:
                    b.s.shutdown(socket.SHUT_WR)
                closed = b.wait_closed(10)
                b.close()
                ck.check(closed, f"{what}: sluice closed that connection")
                good.send(msgpack.packb(["raw.good", [[event_time(t0), {"seq": 70_000 + i}]],
                                        {"chunk": f"good-{i}"}]))
                a = good.read_obj(20)
                expected_docs += 1
                ck.check(a == {"ack": f"good-{i}"}, f"{what}: the parallel connection still "
                         f"gets its ack ({a!r})")
            time.sleep(0.3)
            # The log is rate-limited per (input, error kind): the first line names the peer and
            # the reason; the counter has every one.
            logged = sl.lines(r"\bf: 127\.0\.0\.1:\d+: .*closing this connection")
            ck.check(logged, "protocol errors are logged with the peer address", sl.log_tail(15))
            ck.check(sl.alive(), "sluice still running")

            # ---- 5. handshake on input fk
            h = Conn(kport)
            helo = h.read_obj(5)
            ok = isinstance(helo, list) and helo[0] == "HELO"
            ck.check(ok, f"HELO on connect ({str(helo)[:80]})")
            if ok:
                nonce = helo[1]["nonce"]
                nonce = nonce if isinstance(nonce, bytes) else nonce.encode()
                salt = b"0123456789abcdef"
                bad = hashlib.sha512(salt + b"client" + nonce + b"wrong").hexdigest()
                h.send(msgpack.packb(["PING", "client", salt, bad, "", ""], use_bin_type=True))
                pong = h.read_obj(5)
                ck.check(isinstance(pong, list) and pong[:3] == ["PONG", False,
                                                                 "shared_key mismatch"],
                         f"wrong key: PONG false shared_key mismatch ({pong!r})")
                ck.check(h.wait_closed(5), "wrong key: connection closed after the PONG")
            h.close()
            h = Conn(kport)
            helo = h.read_obj(5)
            nonce = helo[1]["nonce"] if isinstance(helo, list) else b""
            nonce = nonce if isinstance(nonce, bytes) else nonce.encode()
            salt = os.urandom(16)
            dg = hashlib.sha512(salt + b"client" + nonce + KEY.encode()).hexdigest()
            h.send(msgpack.packb(["PING", "client", salt, dg, "", ""], use_bin_type=True))
            pong = h.read_obj(5)
            want_dg = hashlib.sha512(salt + b"sluice-test" + nonce + KEY.encode()).hexdigest()
            ck.check(isinstance(pong, list) and pong[1] is True and pong[3] == "sluice-test"
                     and pong[4] == want_dg, f"right key: PONG true with the server digest "
                     f"({str(pong)[:60]})")
            h.send(msgpack.packb(["sec.ok", entries(80_000, 4, t0), {"chunk": "chunk-sec"}]))
            a = h.read_obj(20)
            expected_docs += 4
            ck.check(a == {"ack": "chunk-sec"}, f"right key: events flow and are acked ({a!r})")
            h.close()
            # no PING at all: closed after handshake_timeout (3 s)
            h = Conn(kport)
            h.read_obj(5)
            t1 = time.monotonic()
            closed = h.wait_closed(8)
            ck.check(closed and time.monotonic() - t1 >= 2.5,
                     f"silent client closed after handshake_timeout "
                     f"({time.monotonic() - t1:.1f} s)")
            h.close()
            # UDP heartbeat
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.settimeout(5)
            u.sendto(b"\x00", ("127.0.0.1", port))
            try:
                reply = u.recv(16)
            except socket.timeout:
                reply = None
            u.close()
            ck.eq(reply, b"\x00", "UDP heartbeat answered")

            good.close()
            ck.eq(es.wait_docs(expected_docs, 20), expected_docs, "all documents indexed")
            # ---- 6. SIGTERM
            ck.eq(sl.terminate(60), 0, "exit code after SIGTERM")
            fs = sl.final_stats()
            fi = H.check_conservation(ck, fs, input_name="f", label="f: ")
            ki = H.check_conservation(ck, fs, input_name="fk", label="fk: ")
            if fi and ki:
                ck.eq(fi["delivered"] + ki["delivered"], expected_docs + 20,
                      "delivered = documents + the 20 resent duplicates (overwritten by id)")
                ck.eq(fi["dead_lettered"] + ki["dead_lettered"], 0, "nothing dead-lettered")
            pe = [int(x) for x in re.findall(r" f: received=.*? protocol_errors=(\d+)", sl.text())]
            ck.check(pe and pe[-1] == len(cases), f"stats: protocol_errors counts each broken "
                     f"request ({pe[-1:]} == {len(cases)})")
            if fs:
                H.log(f"peak RSS {fs.get('peak_rss_kb')} kB, budget peak {fs.get('budget_peak')}")


if __name__ == "__main__":
    main()
