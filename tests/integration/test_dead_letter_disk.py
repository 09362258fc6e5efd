#!/usr/bin/python3
# ctest-labels: reliability
# ctest-skip-code: 77  # it cannot mount the tmpfs its disk-fault scenarios need (not root)
"""Disk faults under the dead-letter store: Kafka -> sluice -> esemu, with esemu
rejecting a fixed 30% of the documents (item 400, the same documents on every redelivery), so those
records must be dead-lettered, and service.dead_letter.path on a small tmpfs.

 1. disk full: a filler file leaves 1 MiB free on a 4 MiB tmpfs, records are produced at
    4,000/s. The store takes what fits, then hits ENOSPC: sluice
    logs it naming the file and errno, the input pauses, and no committed Kafka offset passes a
    record that is neither indexed nor in the store (checked per partition against the esemu ids
    and the store's source offsets). RSS stays under memory_limit + 16 MiB. The filler is deleted:
    everything flows, every record ends indexed or dead-lettered exactly once, the committed
    offsets reach the end, every line of the store parses (no torn line), conservation holds.
 2. read-only: a second tmpfs is remounted read-only while records flow (produced at 3,000/s);
    EROFS logged naming the path, the same checks while it is read-only; remounted rw, the same
    checks at the end.

RELIABILITY_LONG=1 (make reliability RELIABILITY_LONG=1): 8 partitions and each scenario repeated
8 times in one sluice run on a 48 MiB tmpfs: 8 fill -> ENOSPC -> filler deleted -> drain cycles of
10,000 records (80,000), each with a new filler leaving 1 MiB free beside what the store already
holds, and 8 ro -> rw cycles of 12,000 records (96,000), each remounted read-only mid-stream. Every
cycle checks what the short run checks (the error logged again, naming the file and errno, commits
stopped and durable while the fault lasts, the recovery logged again) and, once drained, that every
record so far is indexed or dead-lettered exactly once; the mock must not drop a record.

Needs `mount -t tmpfs` (root); when it cannot mount, the test exits 77 (ctest: skipped)."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

LONG = os.environ.get("RELIABILITY_LONG") == "1"
SKIP_CODE = 77
MEM_LIMIT_MIB = 16
PARTS = 8 if LONG else 4
CYCLES = 8 if LONG else 1  # fault cycles per scenario, in one sluice run
FULL_MNT, RO_MNT = ("48m", "48m") if LONG else ("4m", "8m")
RATE = 0.3  # share of documents esemu rejects with a permanent item 400


def store_lines(dl_dir):
    """Parsed lines of the store; unparsable (torn) lines as {'_bad': ...}."""
    return H.dead_letters(dl_dir)


def fates(es, dl_dir, topic):
    """{(partition, offset): [fate, ...]} from the esemu ids and the store's source offsets, plus
    the seqs on each side."""
    out, idx_seqs, dl_seqs, bad = {}, [], [], 0
    for d in es.dump():
        t, p, o = d["_id"].rsplit("-", 2)
        if t == topic:
            out.setdefault((int(p), int(o)), []).append("es")
            idx_seqs.append(H.seq_of(d))
    for d in store_lines(dl_dir):
        if "_bad" in d:
            bad += 1
            continue
        s = d.get("source") or {}
        out.setdefault((s["partition"], s["offset"]), []).append("dl")
        dl_seqs.append(json.loads(d["payload"])["seq"])
    return out, idx_seqs, dl_seqs, bad


def check_commits_durable(ck, mk, es, dl_dir, group, topic, label):
    """Every offset below a committed one is indexed or has its line in the store."""
    com = mk.committed(group, topic)
    f, _, _, _ = fates(es, dl_dir, topic)
    bad = [(p, o) for p, c in com.items() for o in range(max(c, 0)) if (p, o) not in f]
    ck.check(not bad, f"{label}: no committed offset passes a record that is neither indexed nor "
             f"in the store (committed {com})", bad[:10])
    return com


def wait_stable(fn, stable_s=2.0, timeout_s=20):
    prev, since, deadline = None, time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = fn()
        if now != prev:
            prev, since = now, time.monotonic()
        elif time.monotonic() - since >= stable_s:
            break
        time.sleep(0.2)
    return prev


def wait_all_done(mk, es, dl_dir, group, topic, n, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        wm = mk.watermarks(topic)
        com = mk.committed(group, topic)
        if (es.docs() + len(store_lines(dl_dir)) >= n
                and all(com.get(p) == hi for p, (lo, hi) in wm.items())):
            return True
        time.sleep(0.3)
    return False


def fate_checks(ck, mk, es, dl_dir, group, topic, n, label):
    """Once drained: every one of the n records produced so far is indexed or dead-lettered
    exactly once, the store has no torn line, the committed offsets reach the end."""
    f, idx, dls, bad = fates(es, dl_dir, topic)
    ck.eq(bad, 0, f"{label}: every line of the store parses (no torn line)")
    dup_coords = [k for k, v in f.items() if len(v) > 1]
    ck.check(not dup_coords, f"{label}: no record both indexed and dead-lettered, or twice",
             dup_coords[:10])
    seqs = idx + dls
    missing = set(range(n)) - set(seqs)
    dupes = len(seqs) - len(set(seqs))
    ck.check(not missing, f"{label}: every record indexed or dead-lettered ({len(idx)} + "
             f"{len(dls)} of {n})", sorted(missing)[:10])
    ck.eq(dupes, 0, f"{label}: duplicates")
    ck.check(dls and all(d.get("reason") == "rejected by elasticsearch" and d.get("status") == 400
                         for d in store_lines(dl_dir)),
             f"{label}: dead-letter lines carry the item 400")
    wm = mk.watermarks(topic)
    com = mk.committed(group, topic)
    ck.check(all(com.get(p) == hi for p, (lo, hi) in wm.items()),
             f"{label}: committed offsets reach the end", (com, wm))
    return len(idx), len(dls), len(missing), dupes


def final_checks(ck, sl, mk, es, dl_dir, group, topic, n, label):
    idx, dls, missing, dupes = fate_checks(ck, mk, es, dl_dir, group, topic, n, label)
    ck.eq(sl.terminate(30), 0, f"{label}: exit code after SIGTERM")
    i = H.check_conservation(ck, sl.final_stats(), label=f"{label}: ")
    if i:
        ck.eq((i["received"], i["delivered"], i["dead_lettered"], i["dropped"]),
              (n, idx, dls, 0), f"{label}: final-stats received/delivered/"
              f"dead_lettered/dropped")
    peak = sl.rss.peak_hwm_kb / 1024
    if os.environ.get("SLUICE_SANITIZED") == "1":
        H.log(f"NOTE peak RSS {peak:.1f} MiB not checked: sanitizer build")
    else:
        ck.check(peak < MEM_LIMIT_MIB + 16, f"{label}: peak RSS {peak:.1f} MiB < "
                 f"{MEM_LIMIT_MIB} + 16 MiB")
    return idx, dls, missing, dupes, peak


def after_fault(ck, sl, mk, es, dl_dir, group, total, cn, cleared, again0, last):
    """Once the fault is cleared: everything so far indexed or dead-lettered and committed, the
    recovery logged, and the fates checked (the final checks after the last cycle). Returns
    (delivered, dead-lettered, missing, duplicates, peak RSS MiB)."""
    mk.wait_produced(60)
    ck.check(wait_all_done(mk, es, dl_dir, group, "logs", total, 40),
             f"{cn}: after {cleared} everything is indexed or dead-lettered and committed",
             sl.log_tail(5))
    ck.check(sl.wait_lines(r"works again", again0 + 1, 5), f"{cn}: recovery logged")
    if last:
        return final_checks(ck, sl, mk, es, dl_dir, group, "logs", total, cn)
    idx, dls, missing, dupes = fate_checks(ck, mk, es, dl_dir, group, "logs", total, cn)
    return idx, dls, missing, dupes, sl.rss.peak_hwm_kb / 1024


def start(procs, mk, es, wd, dl_dir, group):
    cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd, group=group,
                          topics=("logs",), match="kafka.logs", shutdown_timeout="5s",
                          memory_limit=f"{MEM_LIMIT_MIB}MiB",
                          service={"dead_letter": {"path": dl_dir, "max_size": "1GiB"}})
    return procs.add(H.Sluice(cfg, wd))


def cycle_name(what, c):
    return f"{what} {c + 1}/{CYCLES}" if LONG else what


def scenario_full(ck, procs, es, mnt):
    n, group = 10_000, "dlfull"  # records per cycle
    wd = procs.tmpdir("dld1-")
    mk = procs.add(H.MockKafka(topics=[f"logs:{PARTS}"], workdir=wd))
    dl_dir = os.path.join(mnt, "dl")
    sl = None
    t0 = time.monotonic()
    for cyc in range(CYCLES):
        cn = cycle_name("full", cyc)
        total = n * (cyc + 1)
        filler = os.path.join(mnt, "filler")
        st = os.statvfs(mnt)
        free = st.f_bavail * st.f_frsize
        with open(filler, "wb") as f:
            f.write(b"\0" * (free - 1024 * 1024))
        if sl is None:
            es.reset()
            es.faults(item_permanent_rate=RATE)
            sl = start(procs, mk, es, wd, dl_dir, group)
        err0 = len(sl.lines(r"No space left on device"))
        again0 = len(sl.lines(r"works again"))
        held0 = len(store_lines(dl_dir))
        mk.produce("logs", n, rate=4000)  # the store fills line by line, not in one sync
        ck.check(sl.wait_lines(r"No space left on device", err0 + 1, 40), f"{cn}: ENOSPC logged",
                 sl.log_tail(5))
        lines = sl.lines(r"No space left on device")[err0:]
        ck.check(lines and mnt in lines[0] and "errno 28" in lines[0],
                 f"{cn}: the error names the file and errno", lines[:1])
        com = wait_stable(lambda: mk.committed(group, "logs"))
        time.sleep(1)
        held = len(store_lines(dl_dir))
        docs_full = es.docs()
        wm = mk.watermarks("logs")
        ck.check(sum(max(c, 0) for c in com.values()) < sum(hi for lo, hi in wm.values()),
                 f"{cn}: commits stopped before the end ({com} vs {wm})")
        check_commits_durable(ck, mk, es, dl_dir, group, "logs", cn)
        ck.check(sl.alive(), f"{cn}: sluice keeps running")
        time.sleep(3)
        n_err = len(sl.lines(r"No space left on device")) - err0
        ck.check(n_err <= 3, f"{cn}: the error is rate-limited ({n_err} lines in ~6 s)")
        ck.eq(mk.committed(group, "logs"), com, f"{cn}: committed offsets do not move while full")
        ck.check(held0 < held, f"{cn}: the store took what fitted ({held - held0} lines)")
        os.unlink(filler)
        idx, dls, missing, dupes, peak = after_fault(ck, sl, mk, es, dl_dir, group, total, cn,
                                                     "freeing space", again0, cyc + 1 == CYCLES)
        H.log(f"RESULT disk {cn}: in {total} delivered {idx} dead-lettered {dls} missing "
              f"{missing} dupes {dupes} (while full: {held} lines in the store, {docs_full} docs, "
              f"committed {sum(max(c, 0) for c in com.values())}) errors logged {n_err} peak RSS "
              f"{peak:.1f} MiB vs {MEM_LIMIT_MIB} MiB (+16)")
    if LONG:
        H.check_broker_dropped(ck, mk, "full: ")
        H.log(f"RESULT disk full, {CYCLES} cycles: {time.monotonic() - t0:.0f} s, ENOSPC lines "
              f"{len(sl.lines(r'No space left on device'))}, recoveries logged "
              f"{len(sl.lines(r'works again'))}")
    mk.kill()


def scenario_read_only(ck, procs, es, mnt):
    n, group = 12_000, "dlro"  # records per cycle
    wd = procs.tmpdir("dld2-")
    mk = procs.add(H.MockKafka(topics=[f"logs:{PARTS}"], workdir=wd))
    dl_dir = os.path.join(mnt, "dl")
    es.reset()
    es.faults(item_permanent_rate=RATE)
    sl = start(procs, mk, es, wd, dl_dir, group)
    t0 = time.monotonic()
    for cyc in range(CYCLES):
        cn = cycle_name("read-only", cyc)
        total = n * (cyc + 1)
        err0 = len(sl.lines(r"Read-only file system"))
        again0 = len(sl.lines(r"works again"))
        lines0 = len(store_lines(dl_dir))
        mk.produce("logs", n, rate=3000)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(store_lines(dl_dir)) < lines0 + 100:
            time.sleep(0.1)
        err, tries = H.remount(mnt, "ro")
        if not ck.check(err is None, f"{cn}: remounted read-only mid-stream ({tries} tries)",
                        err):
            return
        try:
            ro_at = len(store_lines(dl_dir))
            ck.check(sl.wait_lines(r"Read-only file system", err0 + 1, 15),
                     f"{cn}: EROFS logged", sl.log_tail(5))
            lines = sl.lines(r"Read-only file system")[err0:]
            ck.check(lines and mnt in lines[0] and "errno 30" in lines[0],
                     f"{cn}: the error names the path and errno", lines[:1])
            com = wait_stable(lambda: mk.committed(group, "logs"))
            wm = mk.watermarks("logs")
            ck.check(sum(max(c, 0) for c in com.values()) < sum(hi for lo, hi in wm.values()),
                     f"{cn}: commits stopped before the end ({com} vs {wm})")
            check_commits_durable(ck, mk, es, dl_dir, group, "logs", cn)
            ck.check(sl.alive(), f"{cn}: sluice keeps running")
        finally:
            err, _ = H.remount(mnt, "rw")
        ck.check(err is None, f"{cn}: remounted rw", err)
        idx, dls, missing, dupes, peak = after_fault(ck, sl, mk, es, dl_dir, group, total, cn,
                                                     "rw", again0, cyc + 1 == CYCLES)
        H.log(f"RESULT {cn}: in {total} delivered {idx} dead-lettered {dls} missing {missing} "
              f"dupes {dupes} (store had {ro_at} lines at the remount; committed while ro "
              f"{sum(max(c, 0) for c in com.values())}) peak RSS {peak:.1f} MiB vs {MEM_LIMIT_MIB} "
              f"MiB (+16)")
    if LONG:
        H.check_broker_dropped(ck, mk, "read-only: ")
        H.log(f"RESULT read-only, {CYCLES} cycles: {time.monotonic() - t0:.0f} s, EROFS lines "
              f"{len(sl.lines(r'Read-only file system'))}, recoveries logged "
              f"{len(sl.lines(r'works again'))}")
    mk.kill()


def main():
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    ck = H.Checker("test_dead_letter_disk")
    skip = None
    with H.Procs() as procs:
        try:
            es = procs.add(H.EsEmu(workdir=procs.tmpdir("dld-es-")))
            mnt = procs.tmpdir("dld-mnt-")
            why = H.mount_tmpfs(mnt, FULL_MNT)
            if why:
                skip = f"cannot mount a tmpfs: {why}"
            else:
                try:
                    scenario_full(ck, procs, es, mnt)
                finally:
                    H.umount(mnt)
                why = H.mount_tmpfs(mnt, RO_MNT)
                if why:
                    skip = f"cannot mount a tmpfs for the read-only scenario: {why}"
                else:
                    try:
                        scenario_read_only(ck, procs, es, mnt)
                    finally:
                        H.umount(mnt)
        except Exception as e:  # noqa: BLE001
            ck.crash(e)
    if skip and not ck.failed:
        print(f"SKIP {skip}", flush=True)
        print(f"{ck.passed} passed, 0 failed (skipped)", flush=True)
        sys.exit(SKIP_CODE)
    ck.finish()


if __name__ == "__main__":
    main()
