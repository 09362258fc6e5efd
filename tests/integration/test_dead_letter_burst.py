#!/usr/bin/python3
"""A topic of binary records (anything not JSON: Avro, protobuf...) keeps the memory bound.

Every record fails to parse and is dead-lettered with its payload. A byte below 0x20 becomes six
bytes in the escaped line (\\u0001), so a burst of such records writes lines many times their
size; the Kafka input takes up to 4,096 records per burst before it syncs the store. Two runs,
each of 16,000-byte records of 0x01 produced by python3-confluent-kafka into the mock cluster
(200 per partition, so the mock keeps them all):
  - 4,000 records, memory_limit 16MiB;
  - 6,000 records, memory_limit 64MiB.
A user must find every record in the dead-letter store (its payload intact, reason "invalid
JSON"), the group's offsets at the end of every partition, and sluice's peak RSS at most
memory_limit + 16 MiB."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

SIZE = 16_000
PER_PART = 200  # 3.2 MB per partition: the mock keeps at most 5 MiB of each
RUNS = [(4_000, 16), (6_000, 64)][:int(os.environ.get("DLB_RUNS", "2"))]  # (records, memory_limit MiB)


def produce(bootstrap, topic, n, parts):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    payload = b"\x01" * SIZE
    errors = []
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=payload, partition=i % parts,
                          on_delivery=lambda err, m: err and errors.append(str(err)))
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(60)
    if left or errors:
        raise RuntimeError(f"produce: {left} undelivered, errors {errors[:3]}")


def run(ck, n, limit_mib):
    label = f"{n} records at {limit_mib}MiB: "
    with H.Procs() as procs:
        wd = procs.tmpdir()
        topic = f"bin{limit_mib}"
        parts = -(-n // PER_PART)
        mk = procs.add(H.MockKafka(topics=[f"{topic}:{parts}"], workdir=wd))
        produce(mk.bootstrap, topic, n, parts)
        wm = mk.watermarks(topic)
        ck.check(all(lo == 0 for lo, _ in wm.values()) and sum(h for _, h in wm.values()) == n,
                 f"{label}the mock holds every record", wm)
        es = procs.add(H.EsEmu(workdir=wd))
        group = f"dlb{limit_mib}"
        cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd, group=group,
                              topics=(topic,), memory_limit=f"{limit_mib}MiB")
        sl = procs.add(H.Sluice(cfg, wd))
        dl_dir = os.path.join(wd, "dead-letter")
        deadline, last, moved = time.monotonic() + 240, -1, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - moved < 60:
            done = sum(max(v, 0) for v in mk.committed(group, topic).values())
            if done >= n:
                break
            if done != last:
                last, moved = done, time.monotonic()
            time.sleep(0.5)
        ck.eq(sum(max(v, 0) for v in mk.committed(group, topic).values()), n,
              f"{label}offsets committed to the end of every partition")
        ck.eq(sl.terminate(), 0, f"{label}exit code after SIGTERM")
        fs = H.check_conservation(ck, sl.final_stats(), label=label)
        if fs:
            ck.eq(fs["dead_lettered"], n, f"{label}every record dead-lettered")
        dls = H.dead_letters(dl_dir)
        ck.eq(len(dls), n, f"{label}lines in the dead-letter store")
        whole = sum(1 for d in dls if d.get("payload") == "\x01" * SIZE
                    and d.get("reason") == "invalid JSON")
        ck.eq(whole, n, f"{label}lines with reason 'invalid JSON' and the whole payload")
        peak = max(sl.rss.peak_hwm_kb, (sl.final_stats() or {}).get("peak_rss_kb", 0)) / 1024
        ck.check(peak <= limit_mib + 16,
                 f"{label}peak RSS {peak:.1f} MiB <= memory_limit + 16 MiB")
        H.log(f"{label}peak RSS {peak:.1f} MiB, budget_peak "
              f"{(sl.final_stats() or {}).get('budget_peak')} of "
              f"{(sl.final_stats() or {}).get('budget_limit')}")


def main():
    ck = H.Checker("test_dead_letter_burst")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        for n, limit in RUNS:
            run(ck, n, limit)


if __name__ == "__main__":
    main()
