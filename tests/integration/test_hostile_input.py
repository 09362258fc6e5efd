#!/usr/bin/python3
# ctest-labels: reliability asan
"""Bad input gets a clear error and nothing else is lost (invariant 4), on the Kafka side.

Between good records, Kafka carries: JSON nested 100,000 levels deep, invalid UTF-8 inside a
string, NUL bytes, a record that is a JSON array, trailing data, a 200 KB key name, a 3 MB record
(larger than a bulk request may be at memory_limit 16MiB), a pretty-printed multi-line object and
a record with every escape. A user must see: every bad record in the dead-letter store with a
reason that names the problem (and the byte offset for parse errors), every good record indexed
once, sluice alive and within memory_limit + 16 MiB, conservation at exit."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

GOOD = 2_000


def cases():
    deep = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    return [
        ("deep", deep, "invalid JSON", "nesting too deep"),
        ("utf8", b'{"msg":"caf\xc3 bad \xff\xfe"}', "invalid JSON", "UTF-8"),
        ("nul", b'{"msg":"a\x00b"}', "invalid JSON", None),
        ("array", b'[1,2,3]', "invalid JSON", "not a JSON object"),
        ("trailing", b'{"a":1} {"b":2}', "invalid JSON", "trailing"),
        ("huge", json.dumps({"pad": "x" * (3 << 20)}).encode(), "record too large", None),
    ]


def fine():
    bigkey = json.dumps({"k" * 200_000: 1, "seq": 10_000_000}).encode()  # fits one request
    pretty = b'{\n  "seq": 10000001,\n  "msg": "multi\\nline"\n}\n'
    escapes = json.dumps({"seq": 10_000_002, "s": "\u0000\u001f\"\\/\b\f\n\r\t\u2028 \U0001f600"}
                         ).encode()
    return [bigkey, pretty, escapes]


def main():
    ck = H.Checker("test_hostile_input")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=["logs:4", "big:1"], workdir=wd))
            es = procs.add(H.EsEmu(workdir=wd))
            mk.produce("logs", GOOD // 2)
            mk.wait_produced(60)
            bad = cases()
            for i, (_, payload, _, _) in enumerate(bad):
                topic = "big" if len(payload) > (1 << 20) else "logs"
                mk.produce_raw(topic, 0 if topic == "big" else i % 4, payload)
            for i, payload in enumerate(fine()):
                mk.produce_raw("logs", i % 4, payload)
            mk.produce("logs", GOOD // 2)
            mk.wait_produced(60)
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd, group="hi",
                                  topics=("logs", "big"), memory_limit="16MiB",
                                  batch_max_bytes="1MiB",
                                  librdkafka={"fetch.message.max.bytes": "8000000"})
            sl = procs.add(H.Sluice(cfg, wd))
            want_docs = GOOD + len(fine())
            got = es.wait_docs(want_docs, 90, label="hostile", stall_s=40)
            ck.check(got >= want_docs, f"good records indexed ({got}/{want_docs})", sl.log_tail())
            dl_dir = os.path.join(wd, "dead-letter")
            deadline = H.time.monotonic() + 30
            while H.time.monotonic() < deadline and len(H.dead_letters(dl_dir)) < len(bad):
                H.time.sleep(0.3)
            ck.check(sl.alive(), "sluice is still running")
            dls = H.dead_letters(dl_dir)
            ck.eq(len(dls), len(bad), "every bad record dead-lettered, once")
            for name, payload, reason, detail in bad:
                match = [d for d in dls if d.get("reason") == reason and
                         d.get("payload", "").encode("utf-8", "replace")[:20]
                         == payload.decode("utf-8", "replace").encode("utf-8")[:20]]
                ok = bool(match)
                if ok and detail:
                    ok = detail.lower() in (match[0].get("error_reason") or "").lower()
                if ok and reason == "invalid JSON":
                    ok = "at byte" in match[0].get("error_reason", "")
                ck.check(ok, f"{name}: dead-lettered as '{reason}'"
                         + (f" mentioning '{detail}'" if detail else ""),
                         [(d.get("reason"), d.get("error_reason")) for d in dls])
            docs = es.dump()
            seqs = sorted(d["_source"].get("seq") for d in docs if isinstance(d["_source"], dict))
            ck.check(all(s in seqs for s in (10_000_000, 10_000_001, 10_000_002)),
                     "the 200 KB key, the pretty-printed object and the escapes were delivered")
            pretty = [d for d in docs if d["_source"].get("seq") == 10_000_001]
            ck.check(pretty and pretty[0]["_source"]["msg"] == "multi\nline",
                     "the multi-line object arrived as one document with its content")
            ck.eq(sl.terminate(30), 0, "exit code after SIGTERM")
            peak = sl.rss.peak_hwm_kb
            if os.environ.get("SLUICE_SANITIZED") == "1":
                # ASan's shadow memory and quarantine are not sluice's memory
                H.log(f"NOTE peak RSS {peak / 1024:.1f} MiB not checked: sanitizer build")
            else:
                ck.check(peak < (16 + 16) * 1024, f"peak RSS {peak / 1024:.1f} MiB < 16 + 16 MiB")
            H.check_conservation(ck, sl.final_stats())
            H.check_broker_dropped(ck, mk)


if __name__ == "__main__":
    sys.exit(main())
