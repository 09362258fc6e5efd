#!/usr/bin/python3
# ctest-labels: asan
"""id: field:<path> and records without a usable value there.

Sent without an _id, such a record would become a new document on every redelivery. 1,000
records in the mock cluster (4 partitions): 970 with a string `rid`, 5 with a number, and 25
without a usable one: 10 without the field, 5 null, 5 empty strings, 3 objects, 2 strings of 600
bytes (a cluster refuses the whole bulk request for an _id over 512 bytes).

Run A, id_missing left at its default (dead_letter): the 975 usable ids are the documents' ids;
the 25 others are dead-lettered with reason "no usable id", counted in
sluice_output_id_missing_total and logged; nothing else is dead-lettered.
Run B, id_missing: source, twice over the same records into the same emulator with two groups
(a redelivery): the 25 get <topic>-<partition>-<offset>, so the second pass adds no document."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import realservers as R  # noqa: E402  (its config builder; no real server is started here)

N = 1000


def records():
    out = []
    for i in range(N):
        r = {"seq": i, "msg": f"m{i}"}
        k = i % 100
        if k < 97:
            r["rid"] = f"r-{i}"
        if k == 97:
            r["rid"] = 100000 + i if i % 200 < 100 else ""
        if k == 98:
            r["rid"] = {"nested": i} if i < 300 else ("x" * 600 if i < 500 else None)
        out.append(r)
    return out


def run(ck, procs, mk, es, wd, group, extra, label):
    """One sluice over the whole topic with its own group; (dead letters, id_missing count, sluice)."""
    d = os.path.join(wd, group)
    cfg = R.sluice_config(d, mk.bootstrap, es.url, group=group, memory_limit="16MiB",
                          inp={"metadata_key": None},
                          out={"id": "field:rid", "index": "ids", **extra})
    sl = procs.add(H.Sluice(cfg, d))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sum(max(v, 0) for v in mk.committed(group, "logs").values()) >= N:
            break
        time.sleep(0.3)
    missing = sum(v for _, v in sl.metrics("sluice_output_id_missing_total"))
    ck.eq(sl.terminate(), 0, f"{label}: exit code")
    H.check_conservation(ck, sl.final_stats(), label=f"{label}: ")
    return H.dead_letters(os.path.join(d, "dead-letter")), missing, sl


def main():
    ck = H.Checker("test_id_field")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    recs = records()
    usable = {r["seq"]: str(r["rid"]) for r in recs
              if isinstance(r.get("rid"), (str, int)) and str(r.get("rid")) != ""
              and len(str(r["rid"])) <= 512}
    unusable = {r["seq"] for r in recs} - set(usable)
    H.log(f"{len(usable)} records with a usable id, {len(unusable)} without")
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=["logs:4"], workdir=wd))
            coords = {}
            for r in recs:
                p = r["seq"] % 4
                off = mk.produce_raw("logs", p, json.dumps(r))
                coords[r["seq"]] = (p, off)

            es = procs.add(H.EsEmu(workdir=wd))
            dls, missing, sl = run(ck, procs, mk, es, wd, "ida", {}, "A")
            docs = es.dump()
            by_seq = {d["_source"]["seq"]: d["_id"] for d in docs}
            ck.eq(len(docs), len(usable), "A: documents = records with a usable id")
            ck.check(all(by_seq.get(s) == rid for s, rid in usable.items()),
                     "A: each document's _id is its record's rid",
                     [(s, by_seq.get(s), rid) for s, rid in usable.items()
                      if by_seq.get(s) != rid][:5])
            ck.eq(sorted(json.loads(d["payload"])["seq"] for d in dls), sorted(unusable),
                  "A: exactly the records without a usable id are dead-lettered")
            ck.check(all(d.get("reason") == "no usable id" and d.get("error_type") == "id_missing"
                         for d in dls), "A: with reason 'no usable id'", dls[:2])
            ck.eq(missing, len(unusable), "A: sluice_output_id_missing_total")
            ck.check(sl.lines(r"no usable _id in field rid"), "A: logged")

            os.makedirs(os.path.join(wd, "b"), exist_ok=True)
            es_b = procs.add(H.EsEmu(workdir=os.path.join(wd, "b")))
            for group in ("idb1", "idb2"):
                dls, missing, sl = run(ck, procs, mk, es_b, wd, group, {"id_missing": "source"},
                                       f"B {group}")
                docs = es_b.dump()
                by_seq = {d["_source"]["seq"]: d["_id"] for d in docs}
                ck.eq(len(docs), N, f"B {group}: every record is one document (after both passes)")
                ck.eq(len(dls), 0, f"B {group}: nothing dead-lettered")
                ck.check(all(by_seq.get(s) == "logs-%d-%d" % coords[s] for s in unusable),
                         f"B {group}: those without a usable id have their coordinates' id",
                         [(s, by_seq.get(s)) for s in sorted(unusable)[:3]])
                ck.eq(missing, len(unusable), f"B {group}: sluice_output_id_missing_total")


if __name__ == "__main__":
    main()
