#!/usr/bin/python3
# ctest-labels: reliability
"""A full dead-letter store pauses inputs; it never drops (nothing silent).

dead_letter.max_size is tiny (8 KiB) and every record of a topic has no output, so the store fills
after a few dozen lines. A user must see: a loud error naming the store and its cap, the input
paused (records neither dead-lettered nor committed beyond what the store took), sluice still
alive; after a restart with a larger max_size, every remaining record is dead-lettered and the
committed offsets reach the end: nothing was lost while the store was full."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

N = 2_000


def main():
    ck = H.Checker("test_dead_letter_full")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            dl_dir = os.path.join(wd, "dead-letter")
            mk = procs.add(H.MockKafka(topics=["other:2"], workdir=wd))
            mk.produce("other", N)
            mk.wait_produced(60)
            es = procs.add(H.EsEmu(workdir=wd))
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd, group="full",
                                  topics=("other",), match="kafka.logs", dl_max_size="8KiB",
                                  shutdown_timeout="3s")
            sl = procs.add(H.Sluice(cfg, wd))
            ck.check(sl.wait_log(r"dead-letter store .* refused a record", 40),
                     "a loud error when the store is full", sl.log_tail(5))
            H.time.sleep(3)
            first = len(H.dead_letters(dl_dir))
            H.time.sleep(2)
            ck.check(0 < first < N and len(H.dead_letters(dl_dir)) == first,
                     f"the store holds what fits ({first} lines) and takes no more")
            paused = [v for _, v in sl.metrics("sluice_input_paused_seconds_total")]
            ck.check(paused and paused[0] > 1.0, f"the input paused (paused seconds {paused})")
            ck.check(sl.alive(), "sluice keeps running")
            committed = sum(v for v in mk.committed("full", "other").values() if v > 0)
            ck.check(committed <= first, f"committed offsets ({committed}) do not pass what the "
                     f"store took ({first})")
            ck.eq(sl.terminate(30), 0, "exit 0 after SIGTERM (pending records stay uncommitted)")
            fs = sl.final_stats() or {}
            k = (fs.get("inputs") or {}).get("k", {})
            ck.check(k.get("in_flight", 0) > 0 and k.get("dropped") == 0,
                     "records were held in flight, none dropped", k)

            cfg2 = H.merged(cfg, {"service": H.merged(cfg["service"], {
                "dead_letter": {"path": f"{wd}/dead-letter", "max_size": "1GiB"}})})
            sl2 = procs.add(H.Sluice(cfg2, os.path.join(wd, "run2")))
            deadline = H.time.monotonic() + 60
            while H.time.monotonic() < deadline and len(H.dead_letters(dl_dir)) < N:
                H.time.sleep(0.3)
            ck.eq(sl2.terminate(30), 0, "run 2: exit code")
            dls = H.dead_letters(dl_dir)
            seqs = {int(__import__("json").loads(d["payload"])["seq"]) for d in dls}
            ck.eq(seqs, set(range(N)), "every record is in the store after the restart")
            wm = mk.watermarks("other")
            com = mk.committed("full", "other")
            ck.check(all(com.get(p) == hi for p, (lo, hi) in wm.items()),
                     "committed offsets reach the end", (com, wm))


if __name__ == "__main__":
    sys.exit(main())
