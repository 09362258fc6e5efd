#!/usr/bin/python3
# ctest-labels: reliability
"""Forward input under a full budget held only by unfinished requests.

memory_limit 4MiB (a 1.5 MiB pipeline budget), max_frame_size 1MiB. Four clients each send the
first 900 KiB of a 1 MiB PackedForward request and then go quiet: their read buffers fill the
budget, the input stops reading, and nothing is in flight whose completion could free memory.
A user must see: sluice breaks that deadlock by closing the connections that hold the most,
without an ack (logged, counted as partial_closed), and a well-behaved client that sends a
small request afterwards gets its ack and its documents indexed; no stalled client got an ack."""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import msgpack  # noqa: E402
from test_forward_in import Conn, event_time  # noqa: E402


def config(es_url, wd):
    return H.config(
        H.service(wd, memory_limit="4MiB", http_listen="off", shutdown_timeout="10s",
                  stats_interval="1s"),
        [H.forward_input("f", max_frame_size="1MiB")],
        [H.es_output(es_url, match="**", index="partial-%Y.%m.%d", batch_max_bytes="256KiB",
                     batch_max_wait="100ms")])


def main():
    ck = H.Checker("test_forward_partial")
    H.require_binaries(H.SLUICE_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            es = procs.add(H.EsEmu(workdir=wd))
            sl = procs.add(H.Sluice(config(es.url, wd), wd))
            ck.check(sl.wait_log(r"listening on 127\.0\.0\.1:\d+", 15), "forward input listens")
            port = int(sl.lines(r"listening on 127\.0\.0\.1:")[0].rsplit(":", 1)[1].split()[0])
            t0 = int(time.time())
            entries = b"".join(msgpack.packb([event_time(t0), {"seq": i, "pad": "x" * 1000}])
                               for i in range(1000))
            big = msgpack.packb(["stalled", entries, {"chunk": "stalled"}], use_bin_type=True)
            stalled = []
            for _ in range(4):
                c = Conn(port)
                c.send(big[:900 * 1024])
                stalled.append(c)
                time.sleep(0.2)
            ck.check(sl.wait_log(r"partial_deadlock|unfinished request holds", 15),
                     "sluice closed a connection holding an unfinished request", sl.log_tail(8))
            good = Conn(port)
            frame = msgpack.packb(["good", [[event_time(t0), {"seq": 1}], [event_time(t0),
                                                                            {"seq": 2}]],
                                   {"chunk": "good-chunk"}], use_bin_type=True)
            good.send(frame)
            reply = good.read_obj(20)
            ck.eq(reply, {"ack": "good-chunk"}, "the well-behaved client gets its ack")
            ck.eq(es.wait_docs(2, 10, label="partial"), 2, "its two documents are indexed")
            acks = [c.read_obj(0.5) for c in stalled]
            ck.check(all(a in ("EOF", "TIMEOUT") for a in acks),
                     "no stalled client received an ack", acks)
            ck.check(max(sl.stat_values("partial_closed") or [0]) >= 1,
                     "partial_closed is counted in the stats line")
            ck.eq(sl.terminate(30), 0, "exit code after SIGTERM")
            H.check_conservation(ck, sl.final_stats(), input_name="f")


if __name__ == "__main__":
    sys.exit(main())
