#!/usr/bin/python3
# ctest-labels: asan
"""Dead letters after the cause is fixed: `sluice dead-letter list|show|replay`.

Run 1: Elasticsearch rejects ~3% of documents permanently (item 400) and a second topic has no
output (unmatched tag). Then a user
- lists the store: the totals by reason match what happened;
- shows the 400s: status, error type and the original payload are printed;
- fixes the config (an output for the second topic) and replays with the 400s still in
  place: the unmatched ones are delivered, the 400s are dead-lettered again into a new file,
  the replayed file is moved to replayed/;
- clears the fault and replays again: everything is delivered once, with the ids it would have
  had the first time (topic-partition-offset), and nothing is left to replay.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

N_LOGS = 6_000
N_OTHER = 500


def dead_letters_file(path):
    import json
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


H.dead_letters_file = dead_letters_file


def cli(*args):
    return subprocess.run([H.SLUICE_BIN, *args], capture_output=True, text=True, timeout=120)


def main():
    ck = H.Checker("test_dead_letter_replay")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            dl_dir = os.path.join(wd, "dead-letter")
            mk = procs.add(H.MockKafka(topics=["logs:4", "other:2"], workdir=wd))
            mk.produce("logs", N_LOGS)
            mk.wait_produced(60)
            mk.produce("other", N_OTHER)
            mk.wait_produced(60)
            es = procs.add(H.EsEmu(workdir=wd))
            es.faults(item_permanent_rate=0.03)
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd, group="dl",
                                  topics=("logs", "other"), match="kafka.logs")
            sl = procs.add(H.Sluice(cfg, wd))
            deadline = H.time.monotonic() + 60
            while H.time.monotonic() < deadline:
                if es.docs() + len(H.dead_letters(dl_dir)) >= N_LOGS + N_OTHER:
                    break
                H.time.sleep(0.3)
            ck.eq(sl.terminate(30), 0, "run 1: exit code")
            dls = H.dead_letters(dl_dir)
            n400 = sum(1 for d in dls if d.get("status") == 400)
            nun = sum(1 for d in dls if d.get("reason") == "unmatched tag")
            ck.eq(nun, N_OTHER, "run 1: unmatched records dead-lettered")
            ck.check(n400 > 0 and es.docs() + n400 == N_LOGS,
                     f"run 1: {n400} rejected + {es.docs()} indexed = {N_LOGS}")

            r = cli("dead-letter", "list", dl_dir)
            ck.eq(r.returncode, 0, "list: exit code")
            ck.check(f"{n400 + N_OTHER} records" in r.stdout, "list: total", r.stdout)
            ck.check(f"{N_OTHER}  unmatched tag" in r.stdout, "list: unmatched count", r.stdout)
            ck.check(f"{n400}  rejected by elasticsearch | 400 mapper_parsing_exception"
                     in r.stdout, "list: 400 count with error type", r.stdout)
            r = cli("dead-letter", "show", dl_dir, "--reason", "mapper_parsing", "--limit", "2")
            ck.eq(r.returncode, 0, "show: exit code")
            ck.check(r.stdout.count("(HTTP 400)") == 2 and '"seq":' in r.stdout
                     and "source: k logs [" in r.stdout, "show: two 400s with source and payload",
                     r.stdout[:800])

            # ---- replay with an output for `other`, the 400s still happening
            cfg2 = H.merged(cfg, {"outputs": [H.merged(cfg["outputs"][0],
                                                       {"match": "kafka.**"})]})
            cfg_path = os.path.join(wd, "fixed.yaml")
            with open(cfg_path, "w") as f:
                f.write(H.config_text(cfg2))
            before_files = sorted(os.listdir(dl_dir))
            r = cli("dead-letter", "replay", "-c", cfg_path)
            ck.eq(r.returncode, 0, "replay 1: exit code", )
            moved = sorted(os.listdir(os.path.join(dl_dir, "replayed")))
            ck.check(all(f in moved for f in before_files if f.endswith(".ndjson")),
                     "replay 1: replayed files moved to replayed/", (before_files, moved))
            # the emulator's permanent fault hits ~3% of every topic's documents (by id hash),
            # so some `other` records are now rejected with 400 as well
            new = []
            for f in os.listdir(dl_dir):
                if f.endswith(".ndjson"):
                    new += H.dead_letters_file(os.path.join(dl_dir, f))
            ck.check(new and all(d.get("status") == 400 for d in new),
                     "replay 1: what failed again was dead-lettered with its new 400", new[:2])
            k = sum(1 for d in new if d.get("source", {}).get("topic") == "other")
            ck.eq(len(new) - k, n400, "replay 1: the earlier 400s failed again, once each")
            ck.eq(es.docs(), N_LOGS - n400 + N_OTHER - k,
                  f"replay 1: the unmatched records arrived (except {k} now rejected)")

            # ---- the cause is fixed: replay again
            es.clear_faults()
            r = cli("dead-letter", "replay", "-c", cfg_path)
            ck.eq(r.returncode, 0, "replay 2: exit code")
            ck.eq(es.docs(), N_LOGS + N_OTHER, "replay 2: every record is indexed")
            docs = es.dump()
            H.check_every_seq_once(ck, docs, range(N_LOGS + N_OTHER), "after replays")
            ids_ok = all(d["_id"] == f"{d['_index'].split('-')[1]}-"
                         f"{d['_id'].rsplit('-', 2)[1]}-{d['_id'].rsplit('-', 1)[1]}" for d in docs)
            ck.check(ids_ok and all(d["_id"].startswith(("logs-", "other-")) for d in docs),
                     "ids keep the Kafka coordinates (topic-partition-offset)")
            left = [f for f in os.listdir(dl_dir) if f.endswith(".ndjson")]
            lines = 0
            for f in left:
                with open(os.path.join(dl_dir, f)) as fh:
                    lines += sum(1 for _ in fh)
            ck.eq(lines, 0, "nothing left to replay")


if __name__ == "__main__":
    sys.exit(main())
