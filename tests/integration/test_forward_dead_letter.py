#!/usr/bin/python3
# ctest-labels: asan
"""Forward events that Elasticsearch rejects are dead-lettered with their own tag.

The Forward input's tag lives in the request frame (or a reused buffer when tag_prefix is set);
the output must keep its own copy for the dead-letter line written after the response. Three
requests with different long tags are sent while the emulator rejects every document (400); a
user must find each event in the dead-letter store with its exact prefixed tag, the error, and
its payload; the client still gets its acks (dead-lettered counts as finished). Runs under ASan
too, where a dangling tag pointer would be reported."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import msgpack  # noqa: E402
from test_forward_in import Conn, event_time  # noqa: E402


def main():
    ck = H.Checker("test_forward_dead_letter")
    H.require_binaries(H.SLUICE_BIN, H.ESEMU_BIN)
    try:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            es = procs.add(H.EsEmu(workdir=wd))
            es.faults(item_permanent_rate=1.0)
            cfg = H.config(
                H.service(wd, memory_limit="16MiB", http_listen="off"),
                [H.forward_input("f", tag_prefix="pre")],
                [H.es_output(es.url, match="**", index="fwd-dl", batch_max_bytes="256KiB",
                             batch_max_wait="50ms")])
            sl = procs.add(H.Sluice(cfg, wd))
            ck.check(sl.wait_log(r"listening on 127\.0\.0\.1:\d+", 15), "forward input listens")
            port = int(sl.lines(r"listening on 127\.0\.0\.1:")[0].rsplit(":", 1)[1].split()[0])
            tags = [f"app.{c * 40}.log" for c in "xyz"]
            c = Conn(port)
            t0 = int(time.time())
            for i, tag in enumerate(tags):
                c.send(msgpack.packb([tag, [[event_time(t0), {"n": i, "msg": "m" * 50}]],
                                      {"chunk": f"c{i}"}], use_bin_type=True))
            acks = [c.read_obj(20) for _ in tags]
            ck.eq(acks, [{"ack": f"c{i}"} for i in range(3)],
                  "acks arrive once the events are dead-lettered")
            dls = H.dead_letters(os.path.join(wd, "dead-letter"))
            got = sorted((d.get("tag"), json.loads(d["payload"])["n"], d.get("status"),
                          d.get("error_type")) for d in dls)
            want = sorted((f"pre.{t}", i, 400, "mapper_parsing_exception")
                          for i, t in enumerate(tags))
            ck.eq(got, want, "each event dead-lettered with its exact prefixed tag and the error")
            ck.eq(sl.terminate(30), 0, "exit code after SIGTERM (no sanitizer report)")
            H.check_conservation(ck, sl.final_stats(), input_name="f")
    except Exception as e:  # noqa: BLE001
        ck.crash(e)
    return ck.finish()


if __name__ == "__main__":
    sys.exit(main())
