#!/usr/bin/python3
"""Forward in -> Elasticsearch emulator (count-only) throughput: a raw client sends pre-encoded
PackedForward requests of 1,000 events with a chunk each, keeping WINDOW requests un-acked per
connection, and checks every ack. Prints events/s (client view: first send to last ack) and
sluice's peak RSS.  Usage: SLUICE_BUILD=build bench/fwd_bench.py [events] [connections]"""
import os
import re
import socket
import struct
import sys
import threading
import time

import msgpack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness as H  # noqa: E402

TOTAL = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
CONNS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
BATCH = 1000
WINDOW = 16


def frames(conn, n_batches):
    rec = {"level": "info", "service": "checkout", "msg": "request served in 12 ms", "code": 200}
    out = []
    for b in range(n_batches):
        ents = b"".join(msgpack.packb([msgpack.ExtType(0, struct.pack(">II", 1700000000 + b, i)),
                                       dict(rec, seq=b * BATCH + i)]) for i in range(BATCH))
        chunk = f"bench-{conn}-{b}"
        out.append((msgpack.packb(["bench.app", ents, {"chunk": chunk, "size": BATCH}],
                                  use_bin_type=True), msgpack.packb({"ack": chunk})))
    return out


def client(port, fr, errors):
    s = socket.create_connection(("127.0.0.1", port))
    unp = msgpack.Unpacker(raw=False)
    sent = acked = 0
    while acked < len(fr):
        while sent < len(fr) and sent - acked < WINDOW:
            s.sendall(fr[sent][0])
            sent += 1
        data = s.recv(65536)
        if not data:
            errors.append("closed")
            return
        unp.feed(data)
        for o in unp:
            if msgpack.packb(o) != fr[acked][1]:
                errors.append(f"ack mismatch {o!r}")
            acked += 1
    s.close()


def main():
    with H.Procs() as procs:
        wd = procs.tmpdir()
        es = procs.add(H.EsEmu(workdir=wd, count_only=True))
        cfg = f"""service:
  memory_limit: 64MiB
  http_listen: 127.0.0.1:{H.free_port()}
  dead_letter: {{path: {wd}/dl}}
  stats_interval: 0
inputs:
  - type: forward
    name: f
    listen: 127.0.0.1:0
outputs:
  - type: elasticsearch
    hosts: [{es.url}]
    index: bench-${{tag}}
    batch_max_bytes: 2MiB
    batch_max_wait: 50ms
    concurrency: 4
"""
        sl = procs.add(H.Sluice(cfg, wd))
        sl.wait_log(r"listening on 127\.0\.0\.1:\d+", 10)
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", sl.text()).group(1))
        per = TOTAL // BATCH // CONNS
        fr = [frames(c, per) for c in range(CONNS)]
        errors = []
        t0 = time.monotonic()
        th = [threading.Thread(target=client, args=(port, fr[c], errors)) for c in range(CONNS)]
        for t in th:
            t.start()
        for t in th:
            t.join()
        dt = time.monotonic() - t0
        n = per * CONNS * BATCH
        docs = es.docs()
        sl.terminate(60)
        fs = sl.final_stats() or {}
        print(f"events={n} conns={CONNS} window={WINDOW} seconds={dt:.2f} "
              f"events_per_s={n / dt:,.0f} docs_in_emulator={docs} errors={errors[:3]} "
              f"peak_rss_kb={fs.get('peak_rss_kb')} sampled_hwm_kb={sl.rss.peak_hwm_kb} "
              f"budget_peak={fs.get('budget_peak')} conservation={fs.get('inputs')}")


if __name__ == "__main__":
    main()
