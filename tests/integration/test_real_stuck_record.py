#!/usr/bin/python3
# ctest-labels: real
"""One record retried for ever holds up only its partition, within the memory bound.

1,500,000 records on one partition of a real Kafka broker; the emulator refuses about 1 item in
100,000 with 403 security_exception on every attempt (the same documents each time), which sluice
retries for ever (it never loses a record it might yet deliver). Records keep finishing behind
the first refused one, and the commit cannot pass it.

A user must see, at memory_limit 16MiB: the partition paused on its own once its offset tracker
reached its share of the budget, with /status and /metrics naming the record it waits on (the
group's committed offset) and why (HTTP 403 security_exception); sluice's peak RSS at most
memory_limit + 16 MiB; and, once the emulator accepts those documents again, the partition
resumed, every record delivered and the offsets committed to the log's end."""
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import realservers as R  # noqa: E402

N = int(os.environ.get("REAL_RECORDS") or 1_500_000)
GROUP = "sluice-stuck"
LIMIT_MIB = 16


def status(sl):
    cfg = json.load(open(sl.config_path))
    with urllib.request.urlopen(f"http://{cfg['service']['http_listen']}/status", timeout=5) as r:
        return json.loads(r.read())


def partition(sl):
    try:
        st = status(sl)
    except OSError:  # not listening yet
        return None
    for i in st["inputs"]:
        for p in i.get("partitions", []):
            return p
    return None


def main():
    ck = H.Checker("test_real_stuck_record")
    H.require_binaries(H.SLUICE_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir("real-stuck-")
            kafka = procs.add(R.KafkaServer(os.path.join(wd, "kafka")))
            kafka.create_topic("one", 1)
            t0 = time.monotonic()
            R.produce(kafka.bootstrap, "one", (R.log_record(i) for i in range(N)),
                      partitions=lambda i: 0, compression="lz4")
            H.log(f"produced {N} records in {time.monotonic() - t0:.1f}s")
            es = procs.add(H.EsEmu(workdir=wd))
            es.faults(item_permanent_rate=1e-5, item_permanent_status=403)
            cfg = R.sluice_config(wd, kafka.bootstrap, es.url, group=GROUP, topics=("one",),
                                  memory_limit=f"{LIMIT_MIB}MiB",
                                  out={"retry_max": "2s", "index": "stuck"})
            sl = procs.add(H.Sluice(cfg, wd))
            held = None
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and sl.alive():
                p = partition(sl)
                if p and p.get("held"):
                    held = p
                    break
                time.sleep(0.5)
            ck.check(held is not None, "/status: the partition is held", partition(sl))
            if held:
                w = held.get("waiting_on") or {}
                # the prefix before it is committed by the next auto-commit (every second)
                deadline = time.monotonic() + 15
                com = kafka.committed(GROUP, "one", 1)[0]
                while com != w.get("offset") and time.monotonic() < deadline:
                    time.sleep(0.5)
                    com = kafka.committed(GROUP, "one", 1)[0]
                ck.check(w.get("offset") is not None and w.get("offset") == com,
                         f"/status: it waits on offset {w.get('offset')}, where the commit "
                         f"stands ({com})")
                ck.check("403" in (w.get("why") or "") and "security_exception" in (w.get("why") or ""),
                         f"/status: the reason is the last retry's answer ({w.get('why')!r})")
                on = sl.metrics("sluice_kafka_partition_held_on")
                ck.check(len(on) == 1 and on[0][0].get("offset") == str(w.get("offset"))
                         and "security_exception" in on[0][0].get("reason", ""),
                         "/metrics: sluice_kafka_partition_held_on names the offset and reason", on)
                ck.eq(sum(v for _, v in sl.metrics("sluice_kafka_partition_held")), 1,
                      "/metrics: sluice_kafka_partition_held")
                ck.check(sl.lines(r"one \[0\] paused: waiting on offset \d+: HTTP 403"),
                         "the log says which record the partition waits on, and why")
                unc = sum(v for _, v in sl.metrics("sluice_kafka_partition_uncommitted_records"))
                ck.check(unc > 60000, f"/metrics: records a restart would read again ({unc:.0f})")
                time.sleep(5)  # held: memory must stay flat
            peak_held = sl.rss.peak_hwm_kb / 1024
            ck.check(peak_held <= LIMIT_MIB + 16,
                     f"peak RSS while held {peak_held:.1f} MiB <= memory_limit + 16 MiB")
            es.clear_faults()
            H.log("emulator accepts every document again")
            got = es.wait_docs(N, 300, label="stuck", stall_s=60)
            ck.eq(got, N, "every record delivered once the emulator accepts them")
            ok, com, highs = R.wait_committed(kafka, GROUP, "one", 1, timeout_s=60)
            ck.check(ok, "the committed offset reaches the log's end", f"{com} vs {highs}")
            ck.check(sl.lines(r"one \[0\] resumed"), "the log says the partition resumed")
            ck.eq(sum(v for _, v in sl.metrics("sluice_kafka_partition_held")), 0,
                  "/metrics: sluice_kafka_partition_held back to 0")
            ck.eq(sl.terminate(), 0, "exit code after SIGTERM")
            fs = H.check_conservation(ck, sl.final_stats())
            peak = sl.rss.peak_hwm_kb / 1024
            ck.check(peak <= LIMIT_MIB + 16, f"peak RSS {peak:.1f} MiB <= memory_limit + 16 MiB")
            H.log(f"result: {N} records, held at offset {held and held['waiting_on']['offset']}, "
                  f"peak RSS {peak_held:.1f} MiB held, {peak:.1f} MiB overall; final {fs}")


if __name__ == "__main__":
    main()
