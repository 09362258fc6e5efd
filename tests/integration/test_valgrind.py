#!/usr/bin/python3
# ctest-labels: reliability
"""One short end-to-end run of sluice under valgrind memcheck: 3,000 records with 5%
item 429 and 1% item 400 faults and an unmatched topic, then SIGTERM. A user must see: every record
delivered or dead-lettered, exit 0, and valgrind reporting no memory errors and no definitely lost
bytes at exit."""
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

N = 3_000


def main():
    ck = H.Checker("test_valgrind")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    if not shutil.which("valgrind"):
        print("SKIP valgrind is not installed")
        print("0 passed, 0 failed")
        return 0
    if os.environ.get("SLUICE_SANITIZED") == "1":
        print("SKIP sanitizer build: valgrind and ASan do not mix")
        print("0 passed, 0 failed")
        return 0
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            vlog = os.path.join(wd, "valgrind.log")
            mk = procs.add(H.MockKafka(topics=["logs:2", "other:1"], workdir=wd))
            mk.produce("logs", N)
            mk.wait_produced(60)
            mk.produce("other", 100)
            mk.wait_produced(60)
            es = procs.add(H.EsEmu(workdir=wd))
            es.faults(item_retryable_rate=0.05, item_permanent_rate=0.01)
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd, group="vg",
                                  topics=("logs", "other"), match="kafka.logs",
                                  shutdown_timeout="20s")
            sl = procs.add(H.Sluice(cfg, wd, wrapper=(
                "valgrind", "--tool=memcheck", "--leak-check=full",
                "--errors-for-leak-kinds=definite", "--error-exitcode=99",
                f"--log-file={vlog}")))
            deadline = H.time.monotonic() + 180
            dl_dir = os.path.join(wd, "dead-letter")
            while H.time.monotonic() < deadline:
                if es.docs() + len(H.dead_letters(dl_dir)) >= N + 100:
                    break
                H.time.sleep(1)
            ck.check(es.docs() + len(H.dead_letters(dl_dir)) == N + 100,
                     "every record delivered or dead-lettered", sl.log_tail())
            rc = sl.terminate(120)
            with open(vlog) as f:
                report = f.read()
            summary = re.findall(r"ERROR SUMMARY: (\d+) errors", report)
            lost = re.findall(r"definitely lost: ([\d,]+) bytes", report)
            ck.eq(rc, 0, "exit code 0 (valgrind's error exit code is 99)")
            ck.check(summary and summary[-1] == "0", f"valgrind: no errors ({summary})",
                     report[-3000:])
            ck.check(not lost or lost[-1] == "0", f"valgrind: nothing definitely lost ({lost})",
                     report[-3000:])
            H.check_conservation(ck, sl.final_stats())


if __name__ == "__main__":
    sys.exit(main())
