#!/usr/bin/python3
# ctest-labels: asan
"""Nothing silent: records no output matches, and payloads that are not JSON.

Two topics, `logs` and `other`; the only output matches `kafka.logs`.
Run A (unmatched: dead_letter, on_parse_error: dead_letter): every `other` record is in the
dead-letter files with reason `unmatched tag` (exactly the seqs produced there), the invalid JSON
payloads are dead-lettered with reason `invalid JSON` and an error naming the byte offset, and
every `logs` record is indexed once.
Run B (unmatched: drop, on_parse_error: as_text; new group, fresh esemu): the `other` records are
counted in final-stats `dropped`, nothing is dead-lettered, and the invalid payloads arrive as
{"message": <payload>, "@timestamp": <the Kafka timestamp>}."""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

N_LOGS = 5_000
N_OTHER = 3_000
BAD = [b"not json at all", b'{"level":"INFO","message":"cut off', b'{"a":1}} trailing']
# Where the error is: the first byte, the end of the input, the byte after the object.
BAD_AT = [0, len(BAD[1]), 7]


def wait_settled(es, dl_dir, want, timeout_s=60):
    deadline = H.time.monotonic() + timeout_s
    while H.time.monotonic() < deadline:
        if es.docs() + len(H.dead_letters(dl_dir)) >= want:
            return True
        H.time.sleep(0.25)
    return False


def main():
    ck = H.Checker("test_core_unmatched")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=["logs:4", "other:4"], workdir=wd))
            mk.produce("logs", N_LOGS)
            mk.wait_produced(60)
            mk.produce("other", N_OTHER)
            mk.wait_produced(60)
            bad_off = [mk.produce_raw("logs", i % 4, p) for i, p in enumerate(BAD)]
            logs_seqs = set(range(N_LOGS))
            other_seqs = set(range(N_LOGS, N_LOGS + N_OTHER))
            total = N_LOGS + N_OTHER + len(BAD)

            # ---- run A: dead-letter both kinds
            wa = os.path.join(wd, "a")
            es = procs.add(H.EsEmu(workdir=wd))
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wa,
                                  group="sluice-unmatched-a", topics=("logs", "other"),
                                  match="kafka.logs", unmatched="dead_letter",
                                  on_parse_error="dead_letter")
            sl = procs.add(H.Sluice(cfg, wa))
            ck.check(wait_settled(es, os.path.join(wa, "dead-letter"), total),
                     "A: every record indexed or dead-lettered within 60 s", sl.log_tail())
            ck.eq(sl.terminate(60), 0, "A: exit code after SIGTERM")
            fs = sl.final_stats()
            i = H.check_conservation(ck, fs, label="A: ")
            dls = H.dead_letters(os.path.join(wa, "dead-letter"))
            um = [d for d in dls if d.get("reason") == "unmatched tag"]
            ij = [d for d in dls if d.get("reason") == "invalid JSON"]
            ck.eq(len(dls), len(um) + len(ij), "A: dead letters are only 'unmatched tag' and "
                  "'invalid JSON'")
            um_seqs = sorted(json.loads(d["payload"])["seq"] for d in um)
            ck.check(um_seqs == sorted(other_seqs),
                     f"A: 'unmatched tag' dead letters are exactly the {N_OTHER} records of topic "
                     f"other (got {len(um_seqs)})")
            ck.check(all(d.get("tag") == "kafka.other" and d["source"]["topic"] == "other"
                         for d in um), "A: unmatched dead letters carry tag kafka.other and "
                         "source.topic other")
            ck.eq(len(ij), len(BAD), "A: 'invalid JSON' dead letters")
            by_payload = {d.get("payload"): d for d in ij}
            for p, off, at in zip(BAD, bad_off, BAD_AT):
                d = by_payload.get(p.decode())
                m = re.search(r"\bbyte (\d+)", (d or {}).get("error_reason", ""))
                ok = (d is not None and m is not None and int(m.group(1)) == at
                      and d["source"]["offset"] == off and d["source"]["topic"] == "logs")
                ck.check(ok, f"A: invalid JSON {p[:20]!r} dead-lettered with its payload, "
                         f"offset {off} and the error's byte offset {at}"
                         + (f" ({d.get('error_reason')!r})" if d else ""), d)
            if i:
                ck.eq(i["received"], total, "A: final-stats received")
                ck.eq(i["unmatched"], N_OTHER, "A: final-stats unmatched")
                ck.eq(i["parse_errors"], len(BAD), "A: final-stats parse_errors")
                ck.eq(i["dead_lettered"], N_OTHER + len(BAD), "A: final-stats dead_lettered")
                ck.eq(i["dropped"], 0, "A: final-stats dropped")
                ck.eq(fs.get("dead_letter_lines"), len(dls), "A: dead_letter_lines == file lines")
            H.check_every_seq_once(ck, es.dump(), logs_seqs, "A: topic logs in Elasticsearch")
            es.kill()

            # ---- run B: drop unmatched, keep invalid JSON as text
            wb = os.path.join(wd, "b")
            es = procs.add(H.EsEmu(workdir=wd))
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wb,
                                  group="sluice-unmatched-b", topics=("logs", "other"),
                                  match="kafka.logs", unmatched="drop", on_parse_error="as_text")
            sl = procs.add(H.Sluice(cfg, wb))
            want = N_LOGS + len(BAD)
            got = es.wait_docs(want, 60, label="B", stall_s=30)
            ck.check(got >= want, f"B: {want} documents within 60 s (got {got})", sl.log_tail())
            H.time.sleep(1)  # give the unmatched records time to be counted
            ck.eq(sl.terminate(60), 0, "B: exit code after SIGTERM")
            fs = sl.final_stats()
            i = H.check_conservation(ck, fs, label="B: ")
            if i:
                ck.eq(i["received"], total, "B: final-stats received")
                ck.eq(i["dropped"], N_OTHER, "B: final-stats dropped (unmatched: drop)")
                ck.eq(i["unmatched"], N_OTHER, "B: final-stats unmatched")
                ck.eq(i["dead_lettered"], 0, "B: final-stats dead_lettered")
                ck.eq(i["parse_errors"], len(BAD), "B: final-stats parse_errors")
            ck.eq(len(H.dead_letters(os.path.join(wb, "dead-letter"))), 0, "B: no dead letters")
            docs = es.dump()
            text_docs = [d for d in docs if H.seq_of(d) is None]
            H.check_every_seq_once(ck, [d for d in docs if H.seq_of(d) is not None], logs_seqs,
                                   "B: topic logs in Elasticsearch")
            msgs = sorted(d["_source"].get("message", "") for d in text_docs)
            ck.check(msgs == sorted(p.decode() for p in BAD) and
                     all(list(d["_source"].keys()) == ["message", "@timestamp"] and
                         re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z",
                                      d["_source"]["@timestamp"]) for d in text_docs),
                     "B: invalid JSON payloads indexed as {\"message\": <payload>, "
                     "\"@timestamp\": <Kafka timestamp>}",
                     [d["_source"] for d in text_docs])
            H.check_broker_dropped(ck, mk)
            H.log(f"RESULT unmatched: A dead letters {len(dls)} (unmatched {len(um)}, invalid JSON "
                  f"{len(ij)}: {[d.get('error_reason') for d in ij]}); B dropped "
                  f"{(i or {}).get('dropped')}, text docs {len(text_docs)}")


if __name__ == "__main__":
    main()
