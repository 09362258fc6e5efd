#!/usr/bin/python3
# ctest-labels: asan
"""SIGTERM while records can never finish: the process ends within shutdown_timeout (plus 2 s),
and commits nothing past a record that did not finish.

10,000 records (mock cluster, 4 partitions), shutdown_timeout 5s, SIGTERM 4 s after the
assignment, in three situations:
  - every item answered 503 on every attempt (retried for ever);
  - every bulk request stalled for a minute (requests in flight);
  - every item 503 and, before the SIGTERM, every broker down (the consumer's close cannot reach
    the group coordinator).
A user must see exit code 0, the shutdown_timeout warning naming the records left in flight,
and no committed offset (the records are redelivered after a restart)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import realservers as R  # noqa: E402  (its config builder; no real server is started here)

N = 10_000
TIMEOUT_S = 5
CASES = [
    ("items 503 for ever", {"item_retryable_rate": 1.0, "item_retryable_status": 503}, False),
    ("requests stalled", {"stall_ms": 60000}, False),
    ("items 503, brokers down", {"item_retryable_rate": 1.0, "item_retryable_status": 503}, True),
]


def main():
    ck = H.Checker("test_sigterm_stuck")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        for label, faults, brokers_down in CASES:
            with H.Procs() as procs:
                wd = procs.tmpdir()
                mk = procs.add(H.MockKafka(topics=["logs:4"], workdir=wd))
                mk.produce("logs", N)
                mk.wait_produced(60)
                es = procs.add(H.EsEmu(workdir=wd))
                es.faults(**faults)
                group = "st-" + label.split()[0]
                cfg = R.sluice_config(wd, mk.bootstrap, es.url, group=group, memory_limit="16MiB",
                                      inp={"metadata_key": None},
                                      service={"shutdown_timeout": f"{TIMEOUT_S}s"})
                sl = procs.add(H.Sluice(cfg, wd))
                ck.check(sl.wait_log(r"assigned \d+ partitions", 30), f"{label}: assigned")
                time.sleep(4)
                if brokers_down:
                    mk.ok("broker-down -1")
                    time.sleep(1)
                t0 = time.monotonic()
                rc = sl.terminate(TIMEOUT_S + 30)
                took = time.monotonic() - t0
                ck.eq(rc, 0, f"{label}: exit code")
                ck.check(took <= TIMEOUT_S + 2,
                         f"{label}: exited {took:.1f} s after SIGTERM (shutdown_timeout "
                         f"{TIMEOUT_S} s)")
                ck.check(sl.lines(r"shutdown_timeout reached with \d+ records in flight"),
                         f"{label}: the records left in flight are named", sl.log_tail())
                if brokers_down:
                    mk.ok("broker-up -1")
                com = mk.committed(group, "logs")
                ck.check(all(v < 0 for v in com.values()),
                         f"{label}: nothing committed past an unfinished record ({com})")
                ck.eq(es.docs(), 0, f"{label}: nothing was delivered")


if __name__ == "__main__":
    main()
