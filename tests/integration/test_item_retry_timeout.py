#!/usr/bin/python3
"""item_retry_timeout: an opt-in end to retrying an item for ever.

20,000 records (mock cluster, 4 partitions); the emulator refuses about 1 in 500 documents with
403 security_exception on every attempt (the same documents each time). With
item_retry_timeout: 3s they are dead-lettered with reason "retries exhausted", their last status
and error, after several attempts, and counted; every other record is delivered, and the offsets
reach the end of every partition. Without the key (the default) they are still being retried 8 s
in: nothing is dead-lettered and the commit stays behind them."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import realservers as R  # noqa: E402  (its config builder; no real server is started here)

N = 20_000


def run(ck, timeout):
    label = f"item_retry_timeout {timeout or 'unset'}"
    with H.Procs() as procs:
        wd = procs.tmpdir()
        mk = procs.add(H.MockKafka(topics=["logs:4"], workdir=wd))
        mk.produce("logs", N)
        mk.wait_produced(60)
        es = procs.add(H.EsEmu(workdir=wd, extra=("--seed", "7")))
        es.faults(item_permanent_rate=0.002, item_permanent_status=403)
        out = {"retry_base": "100ms", "retry_max": "500ms"}
        if timeout:
            out["item_retry_timeout"] = timeout
        group = "irt" if timeout else "irt-unset"
        cfg = R.sluice_config(wd, mk.bootstrap, es.url, group=group, memory_limit="16MiB",
                              inp={"metadata_key": None}, out=out)
        sl = procs.add(H.Sluice(cfg, wd))
        dl_dir = os.path.join(wd, "dead-letter")
        t0 = time.monotonic()
        deadline = t0 + (60 if timeout else 8)
        while time.monotonic() < deadline:
            if sum(max(v, 0) for v in mk.committed(group, "logs").values()) >= N:
                break
            time.sleep(0.3)
        com = sum(max(v, 0) for v in mk.committed(group, "logs").values())
        dls = H.dead_letters(dl_dir)
        refused = int(es.stats().get("permanent_item_errors", 0))
        if timeout:
            ck.eq(com, N, f"{label}: offsets committed to the end")
            ck.check(len(dls) > 0 and all(d.get("reason") == "retries exhausted" and
                                          d.get("status") == 403 and
                                          d.get("error_type") == "security_exception"
                                          for d in dls),
                     f"{label}: {len(dls)} dead letters, each 'retries exhausted' with the last "
                     "status and error", dls[:2])
            ck.check(all(d.get("attempts", 0) >= 2 for d in dls),
                     f"{label}: each was tried more than once", [d.get("attempts") for d in dls[:5]])
            ck.eq(es.docs() + len(dls), N, f"{label}: documents + dead letters = records")
            ex = sum(v for _, v in sl.metrics("sluice_output_retries_exhausted_total"))
            ck.eq(ex, len(dls), f"{label}: sluice_output_retries_exhausted_total")
            ck.check(refused > len(dls), f"{label}: the emulator refused them on several "
                     f"attempts ({refused} refusals)")
            ck.eq(sl.terminate(), 0, f"{label}: exit code")
            H.check_conservation(ck, sl.final_stats(), label=f"{label}: ")
        else:
            ck.eq(len(dls), 0, f"{label}: 8 s in, nothing dead-lettered: still retrying")
            ck.check(com < N, f"{label}: the commit stays behind the refused records ({com}/{N})")
            ck.check(es.docs() < N and es.docs() > N * 0.9,
                     f"{label}: the other records delivered ({es.docs()})")
            sl.terminate()


def main():
    ck = H.Checker("test_item_retry_timeout")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        run(ck, "3s")
        run(ck, None)


if __name__ == "__main__":
    main()
