#!/usr/bin/python3
"""`sluice dead-letter replay --to-kafka`: dead letters go back to Kafka, unchanged.

Run 1 dead-letters every record of a topic no output matches (with one payload that is not JSON
and has a NUL byte and invalid UTF-8). Then the store is replayed to a quarantine topic. A user
must find, with an independent consumer (python3-confluent-kafka), exactly the original payloads
byte for byte, once each; the replayed file moved to replayed/; replaying again sends nothing."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from confluent_kafka import Consumer  # noqa: E402

N = 300
ODD = b'{"broken": \x00 \xff\xfe not json'


def main():
    ck = H.Checker("test_dead_letter_to_kafka")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            dl_dir = os.path.join(wd, "dead-letter")
            mk = procs.add(H.MockKafka(topics=["other:2", "quarantine:1"], workdir=wd))
            mk.produce("other", N)
            mk.wait_produced(60)
            mk.produce_raw("other", 0, ODD)
            es = procs.add(H.EsEmu(workdir=wd))
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd, group="dk",
                                  topics=("other",), match="kafka.logs")
            sl = procs.add(H.Sluice(cfg, wd))
            deadline = H.time.monotonic() + 60
            while H.time.monotonic() < deadline and len(H.dead_letters(dl_dir)) < N + 1:
                H.time.sleep(0.3)
            ck.eq(sl.terminate(30), 0, "run 1: exit code")
            dls = H.dead_letters(dl_dir)
            ck.eq(len(dls), N + 1, "run 1: every record dead-lettered")
            want = sorted(d["payload"].encode("utf-8", "surrogatepass") for d in dls)

            r = subprocess.run([H.SLUICE_BIN, "dead-letter", "replay", "--to-kafka",
                                mk.bootstrap, "quarantine", dl_dir], capture_output=True,
                               text=True, timeout=120)
            ck.eq(r.returncode, 0, "replay: exit code", )
            ck.check(f"{N + 1} records replayed to quarantine" in r.stdout, "replay: summary",
                     r.stdout + r.stderr)
            ck.check(not [f for f in os.listdir(dl_dir) if f.endswith(".ndjson")]
                     and os.listdir(os.path.join(dl_dir, "replayed")),
                     "replay: the file moved to replayed/")

            c = Consumer({"bootstrap.servers": mk.bootstrap, "group.id": "check",
                          "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
            c.subscribe(["quarantine"])
            got = []
            deadline = H.time.monotonic() + 40
            while H.time.monotonic() < deadline and len(got) < N + 1:
                m = c.poll(0.5)
                if m is not None and not m.error():
                    got.append(m.value())
            c.close()
            ck.eq(len(got), N + 1, "the quarantine topic holds every record once")
            ck.check(sorted(got) == want, "payloads equal the dead-lettered ones")
            # the invalid record: its payload was stored with U+FFFD for invalid bytes (the
            # dead-letter store is UTF-8 JSON); its NUL byte and text survive
            odd = [g for g in got if g.startswith(b'{"broken": \x00')]
            ck.eq(len(odd), 1, "the non-JSON payload with a NUL byte came back")

            r = subprocess.run([H.SLUICE_BIN, "dead-letter", "replay", "--to-kafka",
                                mk.bootstrap, "quarantine", dl_dir], capture_output=True,
                               text=True, timeout=60)
            ck.check(r.returncode == 0 and "0 records replayed" in r.stdout,
                     "a second replay sends nothing", r.stdout)


if __name__ == "__main__":
    sys.exit(main())
