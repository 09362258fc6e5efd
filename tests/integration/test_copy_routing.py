#!/usr/bin/python3
"""copy: true routing: Kafka -> sluice -> two Elasticsearch outputs (two esemu instances), the first
with copy: true, both matching every tag.

1. Faults on the second output only (1% permanent item 400s) and its esemu stalled for a while: the
   first esemu gets every record once; the second every record once except the rejected ones,
   which are dead-lettered naming that output (and only those); the input counts each record once
   (delivered + dead_lettered == received); the committed offsets stay below the high watermark
   while the second output is stalled although the first has everything, and reach it after.
2. kill -9 twice mid-stream, then a restart: both esemus end with every record exactly once
   (deterministic Kafka ids + op create turn redeliveries into 409s)."""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

N = 20_000
PARTS = 4
N_KILL = 120_000
RATE_KILL = 20_000


def config(mk, es_a, es_b, wd, group, topic, memory_limit="32MiB"):
    batches = {"index": "logs-${topic}", "batch_max_bytes": "1MiB", "batch_max_wait": "200ms"}
    return H.config(H.service(wd, memory_limit=memory_limit, shutdown_timeout="30s"),
                    [H.kafka_input(mk.bootstrap, group, [topic])],
                    [H.es_output(es_a.url, name="es_a", match="kafka.**", copy=True, **batches),
                     H.es_output(es_b.url, name="es_b", match="kafka.**", **batches)])


def dl_seq(rec):
    try:
        return json.loads(rec["payload"])["seq"]
    except (KeyError, ValueError, TypeError):
        return None


def committed_total(mk, group, topic):
    return sum(max(v, 0) for v in mk.committed(group, topic).values())


def high_total(mk, topic):
    return sum(hi for _, hi in mk.watermarks(topic).values())


def scenario_faults(ck, procs, mk):
    topic, group = "copy", "sluice-copy"
    wd = procs.tmpdir(prefix="it-copy-")
    es_a = procs.add(H.EsEmu(workdir=wd))
    es_b = procs.add(H.EsEmu(workdir=procs.tmpdir(prefix="it-copy-b-")))
    # the stall holds every es_b request of the first 15 s; the budget (128MiB) holds all N
    # records twice, so es_a can finish meanwhile
    es_b.faults(item_permanent_rate=0.01, item_permanent_status=400, stall_ms=15000)
    mk.produce(topic, N)
    ck.eq(mk.wait_produced(60), N, "records produced")
    sl = procs.add(H.Sluice(config(mk, es_a, es_b, wd, group, topic, "128MiB"), wd))
    got_a = es_a.wait_docs(N, 60, label="es_a")
    ck.eq(got_a, N, "es_a (copy: true) has every record while es_b is stalled")
    H.time.sleep(2.5)  # more than the 1 s auto-commit interval
    c_stalled, high = committed_total(mk, group, topic), high_total(mk, topic)
    ck.check(es_b.docs() == 0 and c_stalled == 0 < high,
             f"nothing committed ({c_stalled}, high watermark {high}) while es_b has not "
             f"finished a single record although es_a has all", es_b.stats())
    # es_b: everything but the permanent rejections, then the commit reaches the watermark
    dl_dir = os.path.join(wd, "dead-letter")
    deadline = H.time.monotonic() + 90
    while H.time.monotonic() < deadline:
        if es_b.docs() + len(H.dead_letters(dl_dir)) >= N:
            break
        H.time.sleep(0.25)
    deadline = H.time.monotonic() + 30
    c = 0
    while H.time.monotonic() < deadline:
        c = committed_total(mk, group, topic)
        if c >= high:
            break
        H.time.sleep(0.25)
    ck.eq(c, high, "committed offsets reach the high watermark once both outputs finished")
    rc = sl.terminate(60)
    ck.eq(rc, 0, "exit code after SIGTERM")
    fs = sl.final_stats()
    inp = H.check_conservation(ck, fs)
    dls = H.dead_letters(dl_dir)
    st_b = es_b.stats()
    ra = H.check_every_seq_once(ck, es_a.dump(), range(N), "es_a")
    docs_b = es_b.dump()
    rb = H.seq_report(docs_b, range(N))
    dl_seqs = [dl_seq(d) for d in dls]
    missing_b = set(range(N)) - set(rb["seen"])
    n_perm = int(st_b.get("permanent_item_errors", 0))
    ck.check(50 <= n_perm <= 400, f"es_b rejected about 1% permanently ({n_perm})")
    ck.check(rb["dupes"] == 0 and rb["docs"] == rb["unique"] and rb["unexpected"] == 0,
             f"es_b: no duplicates ({rb['docs']} docs, {rb['unique']} unique)")
    ck.check(set(dl_seqs) == missing_b and len(dl_seqs) == len(missing_b) == n_perm,
             f"dead-lettered seqs == seqs missing from es_b ({len(dl_seqs)} dead letters, "
             f"{len(missing_b)} missing, {n_perm} rejected)")
    ck.check(dls and all(d.get("output") == "es_b" and d.get("status") == 400 for d in dls),
             "every dead letter names output es_b with status 400",
             [d for d in dls if d.get("output") != "es_b"][:2])
    ck.eq(ra["docs"], N, "es_a: the other copy of each rejected record was delivered")
    if inp:
        ck.eq(inp["received"], N, "final-stats received (each record counted once)")
        ck.eq(inp["dead_lettered"], len(dls), "final-stats dead_lettered == dead letters")
        ck.eq(inp["delivered"], N - len(dls), "final-stats delivered == records delivered by both")
    H.log(f"RESULT copy faults: es_a docs {ra['docs']}, es_b docs {rb['docs']}, dead letters "
          f"{len(dls)}, committed while stalled {c_stalled}/{high}")
    sl.kill()
    es_a.kill()
    es_b.kill()


def scenario_kill9(ck, procs, mk):
    topic, group = "copykill", "sluice-copy-kill"
    rng = random.Random(int(os.environ.get("SLUICE_SEED") or random.randrange(1 << 30)))
    wd = procs.tmpdir(prefix="it-copy-kill-")
    es_a = procs.add(H.EsEmu(workdir=wd))
    es_b = procs.add(H.EsEmu(workdir=procs.tmpdir(prefix="it-copy-kill-b-")))
    cfg = config(mk, es_a, es_b, wd, group, topic)
    # mockkafka numbers seqs across topics: this topic's are N .. N + N_KILL - 1
    mk.produce(topic, N_KILL, group=group, rate=RATE_KILL)
    for k in range(2):
        sl = procs.add(H.Sluice(cfg, wd))
        ck.check(sl.wait_log(r"assigned \d+ partitions", 30), f"kill run {k + 1}: got partitions")
        H.time.sleep(rng.uniform(1.0, 2.5))
        ck.check(sl.alive(), f"kill run {k + 1}: running before SIGKILL", sl.log_tail())
        before = (es_a.docs(), es_b.docs())
        sl.kill9()
        H.log(f"kill {k + 1}: esemu docs (a, b) {before}")
    sl = procs.add(H.Sluice(cfg, wd))
    ck.check(sl.wait_log(r"assigned \d+ partitions", 60), "final run: got partitions")
    ga = es_a.wait_docs(N_KILL, 200, label="es_a", stall_s=40)
    gb = es_b.wait_docs(N_KILL, 200, label="es_b", stall_s=40)
    ck.check(ga >= N_KILL and gb >= N_KILL, f"both esemus reached {N_KILL} ({ga}, {gb})")
    ck.eq(mk.wait_produced(60), N + N_KILL, "produced everything")
    ck.eq(sl.terminate(60), 0, "final exit code after SIGTERM")
    H.check_conservation(ck, sl.final_stats(), label="kill final run: ")
    H.check_every_seq_once(ck, es_a.dump(), range(N, N + N_KILL), "es_a after kill -9 x2")
    H.check_every_seq_once(ck, es_b.dump(), range(N, N + N_KILL), "es_b after kill -9 x2")
    sa, sb = es_a.stats(), es_b.stats()
    ck.eq(int(sa.get("created", -1)), N_KILL, "es_a created once per seq")
    ck.eq(int(sb.get("created", -1)), N_KILL, "es_b created once per seq")
    H.log(f"RESULT copy kill9: conflicts_409 a={sa.get('conflicts_409')} "
          f"b={sb.get('conflicts_409')}")
    ck.eq(len(H.dead_letters(os.path.join(wd, "dead-letter"))), 0, "no dead letters")


def main():
    ck = H.Checker("test_copy_routing")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            mk = procs.add(H.MockKafka(topics=[f"copy:{PARTS}", f"copykill:{PARTS}"],
                                       workdir=procs.tmpdir()))
            only = os.environ.get("SLUICE_COPY_ONLY")
            for sc in (scenario_faults, scenario_kill9):
                if only and only not in sc.__name__:
                    continue
                try:
                    sc(ck, procs, mk)
                except Exception as e:
                    ck.crash(e)
            H.check_broker_dropped(ck, mk)


if __name__ == "__main__":
    main()
