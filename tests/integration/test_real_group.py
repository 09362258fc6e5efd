#!/usr/bin/python3
# ctest-labels: real
"""Scale-out on the real group coordinator: three sluice processes share one consumer group on a
real Kafka 4.4 broker (8 partitions) while a producer streams 240,000 records; one is killed with
SIGKILL, later a fourth joins.

A user must see the partitions spread over the members (each logs its assignment), the killed
member's partitions taken over after its session times out, the newcomer given some, and in the
end every record of the log exactly one document in OpenSearch, the group's offsets at the log's
end, nothing dead-lettered."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import realservers as R  # noqa: E402

N = int(os.environ.get("REAL_RECORDS") or 240_000)
RATE = 4_000
PARTS = 8
GROUP = "sluice-real-group"


def assigned(sl):
    """Partition counts of each assignment the process logged."""
    return [int(m) for m in re.findall(r"assigned (\d+) partitions", sl.text())]


def main():
    ck = H.Checker("test_real_group")
    H.require_binaries(H.SLUICE_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir("real-group-")
            kafka = procs.add(R.KafkaServer(os.path.join(wd, "kafka")))
            osn = procs.add(R.OpenSearch(os.path.join(wd, "opensearch")))
            kafka.create_topic("logs", PARTS)
            members = []
            for i in range(3):
                cfg = R.sluice_config(os.path.join(wd, f"m{i}"), kafka.bootstrap, osn.url,
                                      group=GROUP, memory_limit="24MiB")
                members.append(procs.add(H.Sluice(cfg, os.path.join(wd, f"m{i}"))))
            prod = R.Streamer(kafka.bootstrap, "logs", N, RATE, R.log_record).start()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and \
                    sorted(a[-1] if a else 0 for a in map(assigned, members)) != [2, 3, 3]:
                time.sleep(0.5)
            spread = [assigned(m)[-1] if assigned(m) else 0 for m in members]
            ck.eq(sorted(spread), [2, 3, 3], "three members share the 8 partitions")
            time.sleep(5)
            victim = members[1]
            victim.kill9()
            H.log(f"member 2 killed (held {spread[1]} partitions), producer at {prod.sent}")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and \
                    sum(assigned(m)[-1] for m in (members[0], members[2])) != PARTS:
                time.sleep(0.5)
            ck.eq(sum(assigned(m)[-1] for m in (members[0], members[2])), PARTS,
                  "the two survivors took over all partitions")
            time.sleep(5)
            cfg = R.sluice_config(os.path.join(wd, "m3"), kafka.bootstrap, osn.url, group=GROUP,
                                  memory_limit="24MiB")
            newcomer = procs.add(H.Sluice(cfg, os.path.join(wd, "m3")))
            ck.check(newcomer.wait_log(r"assigned [1-9]\d* partitions", 60),
                     "the new member got partitions", newcomer.log_tail())
            ck.check(prod.sent < N, f"the changes happened while records flowed ({prod.sent}/{N})")
            prod.join()
            rep = R.check_all_arrived(
                ck, kafka=kafka, osn=osn, group=GROUP, n=N,
                shippers=[(f"member {i + 1}: ", m, "k")
                          for i, m in ((0, members[0]), (2, members[2]), (3, newcomer))],
                dl_dirs=[os.path.join(wd, f"m{i}", "dead-letter") for i in range(4)])
            H.log(f"assignments {[assigned(m) for m in members + [newcomer]]}; "
                  f"{rep['docs']} documents")


if __name__ == "__main__":
    main()
