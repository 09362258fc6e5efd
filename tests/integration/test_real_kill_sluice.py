#!/usr/bin/python3
# ctest-labels: real
"""At-least-once across crashes of sluice, on the real servers: a producer streams 240,000
records (4,000/s) into 8 partitions of a real Kafka broker while sluice, consuming into a real OpenSearch
node, is killed with SIGKILL 5 times (2-5 s after each start) and restarted with the same group.

A user must find every record of the log as exactly one document (no seq missing, none twice),
the group's offsets committed to the log's end, and nothing dead-lettered. Redelivered records
land on their own ids (op create answers 409, counted as delivered). SLUICE_SEED replays a
run's kill schedule."""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import realservers as R  # noqa: E402

N = int(os.environ.get("REAL_RECORDS") or 240_000)
RATE = 4_000  # the stream lasts ~60 s; a kill cycle takes ~9 s (the group waits out the
# killed member's session), so every kill lands while records flow
PARTS = 8
KILLS = 5
GROUP = "sluice-real-kill"


def main():
    ck = H.Checker("test_real_kill_sluice")
    H.require_binaries(H.SLUICE_BIN)
    seed = int(os.environ.get("SLUICE_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    H.log(f"kill schedule seed {seed} (SLUICE_SEED={seed} replays it)")
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir("real-kill-")
            kafka = procs.add(R.KafkaServer(os.path.join(wd, "kafka")))
            osn = procs.add(R.OpenSearch(os.path.join(wd, "opensearch")))
            kafka.create_topic("logs", PARTS)
            cfg = R.sluice_config(wd, kafka.bootstrap, osn.url, group=GROUP)
            prod = R.Streamer(kafka.bootstrap, "logs", N, RATE, R.log_record).start()
            for k in range(KILLS):
                sl = procs.add(H.Sluice(cfg, wd))
                ck.check(sl.wait_log(r"assigned \d+ partitions", 60),
                         f"run {k + 1}: sluice got partitions", sl.log_tail())
                delay = rng.uniform(2.0, 5.0)
                time.sleep(delay)
                ck.check(sl.alive(), f"run {k + 1}: sluice still running before SIGKILL",
                         sl.log_tail())
                sl.kill9()
                H.log(f"kill {k + 1}/{KILLS}: {delay:.1f}s after assignment, producer at "
                      f"{prod.sent}, documents {osn.count('logs-logs')}")
            ck.check(prod.sent < N, f"the kills landed while the producer ran ({prod.sent}/{N})")
            sl = procs.add(H.Sluice(cfg, wd))
            prod.join()
            R.check_all_arrived(ck, kafka=kafka, osn=osn, group=GROUP, n=N, stall_s=90,
                                shippers=[("last run: ", sl, "k")],
                                dl_dirs=[os.path.join(wd, "dead-letter")])


if __name__ == "__main__":
    main()
