#!/usr/bin/python3
# ctest-labels: reliability
"""10 MB Kafka records: Kafka -> sluice -> esemu with memory_limit 32MiB and the
Elasticsearch output's batch_max_bytes 1MiB.

librdkafka 2.0.2's mock cluster keeps at most 5 MiB of message sets per partition, but it evicts
only older sets when a new one is appended (src/rdkafka_mock.c, rd_kafka_mock_msgset_new: `while
(mpart->cnt > 1 && (cnt > max_cnt || size > max_size))` destroy the first set, then insert the
new one). So a 10 MB record survives as long as it is the newest set of its partition: each big
record gets a partition of its own (topic big:2) and nothing is produced after it there. The
guard (low watermark 0, broker_dropped 0) proves the mock kept it.

A user must see: the valid 10 MB record dead-lettered with reason "record too large" (it cannot
fit a bulk request) and its whole payload in the line; the invalid 10 MB record (cut mid-string)
dead-lettered as "invalid JSON" with the byte offset; the 2,000 normal records indexed once; the
committed offsets reaching the end of every partition; peak RSS under memory_limit + 16 MiB;
conservation at exit."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

GOOD = 2_000
BIG = 10 * 1000 * 1000
MEM_LIMIT_MIB = 32


def main():
    ck = H.Checker("test_kafka_big")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=["logs:4", "big:2"], workdir=wd))
            es = procs.add(H.EsEmu(workdir=wd))
            mk.produce("logs", GOOD // 2)
            mk.wait_produced(60)
            valid = json.dumps({"seq": 50_000_000, "pad": "x" * BIG}).encode()
            invalid = b'{"seq": 50000001, "pad": "' + b"y" * BIG  # cut mid-string
            t = time.monotonic()
            mk.produce_raw("big", 0, valid)
            mk.produce_raw("big", 1, invalid)
            H.log(f"produced 2 x 10 MB in {time.monotonic() - t:.2f} s")
            mk.produce("logs", GOOD // 2)
            mk.wait_produced(60)
            wm = H.check_low_watermarks(ck, mk, "big")
            ck.eq(wm, {0: (0, 1), 1: (0, 1)}, "the mock holds both 10 MB records")
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd, group="kb",
                                  topics=("logs", "big"), memory_limit=f"{MEM_LIMIT_MIB}MiB",
                                  batch_max_bytes="1MiB")
            sl = procs.add(H.Sluice(cfg, wd))
            got = es.wait_docs(GOOD, 60, label="kafka big", stall_s=30)
            ck.eq(got, GOOD, "normal records indexed")
            dl_dir = os.path.join(wd, "dead-letter")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(H.dead_letters(dl_dir)) < 2:
                time.sleep(0.3)
            dls = H.dead_letters(dl_dir)
            ck.eq(len(dls), 2, "both 10 MB records dead-lettered, once")
            by_part = {(d.get("source") or {}).get("partition"): d for d in dls}
            v, iv = by_part.get(0, {}), by_part.get(1, {})
            ck.eq(v.get("reason"), "record too large", "valid 10 MB record: reason")
            ck.check(v.get("payload", "").encode() == valid,
                     "valid 10 MB record: the whole payload is in the line")
            ck.eq(iv.get("reason"), "invalid JSON", "invalid 10 MB record: reason")
            ck.check("at byte" in (iv.get("error_reason") or ""),
                     "invalid 10 MB record: the error names the byte offset", iv.get("error_reason"))
            ck.check(len(iv.get("payload", "")) == len(invalid),
                     "invalid 10 MB record: the whole payload is in the line")
            H.check_every_seq_once(ck, es.dump(), range(GOOD), "normal records")
            deadline = time.monotonic() + 20
            ends = {t: {p: hi for p, (lo, hi) in mk.watermarks(t).items()} for t in ("logs", "big")}
            com = {}
            while time.monotonic() < deadline:
                com = {t: mk.committed("kb", t) for t in ends}
                if com == ends:
                    break
                time.sleep(0.3)
            ck.eq(com, ends, "committed offsets reach the end of every partition")
            ck.eq(sl.terminate(30), 0, "exit code after SIGTERM")
            peak = sl.rss.peak_hwm_kb / 1024
            if os.environ.get("SLUICE_SANITIZED") == "1":
                H.log(f"NOTE peak RSS {peak:.1f} MiB not checked: sanitizer build")
            else:
                ck.check(peak < MEM_LIMIT_MIB + 16,
                         f"peak RSS {peak:.1f} MiB < {MEM_LIMIT_MIB} + 16 MiB")
            i = H.check_conservation(ck, sl.final_stats())
            H.check_broker_dropped(ck, mk)
            H.log(f"RESULT kafka big: in {GOOD + 2} delivered {got} dead-lettered {len(dls)} "
                  f"received {i and i['received']} peak RSS {peak:.1f} MiB vs {MEM_LIMIT_MIB} "
                  f"MiB (+16)")


if __name__ == "__main__":
    sys.exit(main())
