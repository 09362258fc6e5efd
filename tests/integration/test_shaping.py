#!/usr/bin/python3
# ctest-labels: asan
"""Records shaped as the seed chain shaped them.

Apache access-log lines go through Kafka (mock cluster) as plain text. sluice parses them with
fluentd's apache pattern (format: regexp, types), takes the event time from the line
(time_format with %z), applies field edits on the input (remove_keys, rename_keys into a nested
path, add_fields with ${topic}/${partition}/${offset}, include_tag_key) and on the output
(add_fields), and writes @timestamp.

Run A, dated indices (index: access-%Y.%m.%d): each document is exactly the expected record:
typed code and size (a "-" size is null and counted), @timestamp equal to the line's instant in
UTC, stored in the index of the line's UTC date (lines near midnight with +02:00 land on the
previous day; none on today's date), the edits applied. Lines the pattern does not match are
dead-lettered with reason "pattern did not match"; lines whose date does not parse keep the
Kafka timestamp and are counted. /metrics shows the three counts.

Run B, a data stream: the ILM policy and the index template are installed from files at start-up
(the emulator refuses the first two template PUTs with 503: retried, counted under
retries{reason="setup"}), a policy that already exists is left alone (no overwrite), the data
stream is created, every document lands in it with op create and @timestamp, through the ingest
pipeline named in the config.

Run C: the template is refused for good: batches wait setup_timeout, then go anyway (logged and
counted), so a broken cluster-side setup never holds the records forever."""
import base64
import datetime
import json
import os
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PATTERN = (r'^(?<host>\S+) \S+ (?<user>\S+) \[(?<time>[^\]]*)\] "(?<method>\S+) (?<path>\S*) \S*" '
           r'(?<code>\d+) (?<size>\S+)(?: "(?<referer>[^"]*)" "(?<agent>[^"]*)")?$')
N = 1200
N_NOMATCH = 5
N_BADTIME = 3
OFFSETS = [("+0200", 120), ("-0700", -420), ("+0000", 0), ("+0530", 330)]
UTC = datetime.timezone.utc
T0 = datetime.datetime(2025, 10, 9, 0, 0, 0, tzinfo=UTC)


def make_lines():
    """[(line, expected partial record or None)] in produce order."""
    out = []
    for i in range(N):
        t = T0 + datetime.timedelta(seconds=i * 211)
        off, mins = OFFSETS[i % len(OFFSETS)]
        local = t + datetime.timedelta(minutes=mins)
        stamp = local.strftime("%d/%b/%Y:%H:%M:%S") + " " + off
        size = "-" if i % 7 == 0 else str(100 + i)
        host = f"10.0.{i // 250}.{i % 250}"
        tail = f' "http://ref.example/{i}" "agent {i}"' if i % 2 else ""
        ln = f'{host} - user{i % 3} [{stamp}] "GET /item/{i} HTTP/1.1" {200 + i % 5} {size}{tail}'
        exp = {"method": "GET", "path": f"/item/{i}", "code": 200 + i % 5,
               "size": None if size == "-" else int(size),
               "client": {"ip": host}, "@timestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
               "_index": "access-" + t.strftime("%Y.%m.%d")}
        if i % 2:
            exp["referer"] = f"http://ref.example/{i}"
            exp["agent"] = f"agent {i}"
        out.append((ln, exp))
    for j in range(N_NOMATCH):
        out.append((f"garbage line {j} that is no access log", None))
    for j in range(N_BADTIME):
        out.append((f'10.9.9.{j} - - [99/Foo/2025:25:61:00 +0200] "GET /bad/{j} HTTP/1.1" 500 1',
                    "badtime"))
    return out


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def metric(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


# JSON records on a second topic: where @timestamp goes, and that a record's own one is kept
JSON_RECORDS = [
    (b'{}', {"@timestamp": "2025-10-09T08:00:00Z"}),
    (b'{"a":1}  ', {"a": 1, "@timestamp": "2025-10-09T08:00:00Z"}),
    (b'{"@timestamp":"mine","b":2}', {"@timestamp": "mine", "b": 2}),
    (b'{"time":"2025-10-09T10:00:00.5+02:00","c":3}',
     {"time": "2025-10-09T10:00:00.5+02:00", "c": 3, "@timestamp": "2025-10-09T08:00:00.500Z"}),
    (b'{"time":1760000000123456,"d":4}',
     {"time": 1760000000123456, "d": 4, "@timestamp": "2025-10-09T08:53:20.123456Z"}),
]


def config(*, mk, es, wd, port, group, output):
    return H.config(
        H.service(wd, memory_limit="16MiB", http_listen=f"127.0.0.1:{port}"),
        [H.kafka_input(mk.bootstrap, group, ["access"], format="regexp", pattern=PATTERN,
                       types={"code": "int", "size": "int"}, time_format="%d/%b/%Y:%H:%M:%S %z",
                       remove_keys=["time", "user"], rename_keys={"host": "client.ip"},
                       add_fields={"env": "prod", "source": "${topic}/${partition}/${offset}",
                                   "kafka_partition": "${partition}"},
                       include_tag_key=True),
         H.kafka_input(mk.bootstrap, f"{group}-json", ["json"], name="j", tag="json")],
        [H.es_output(es.url, name="esj", match="json", index="json", batch_max_wait="200ms"),
         H.es_output(es.url, id="kafka", batch_max_wait="200ms", retry_base="100ms",
                     retry_max="1s", add_fields={"shipper": "sluice"}, **output)])


def wait_settled(es, dl_dir, want, timeout_s=60):
    deadline = H.time.monotonic() + timeout_s
    while H.time.monotonic() < deadline:
        if es.docs() + len(H.dead_letters(dl_dir)) >= want:
            return True
        H.time.sleep(0.25)
    return False


def check_doc(ck, src, exp, topic_part_off, label):
    """The whole document: pattern fields, types, edits, @timestamp; nothing else."""
    part, off = topic_part_off
    want = {k: v for k, v in exp.items() if k != "_index"}
    want.update({"env": "prod", "source": f"access/{part}/{off}", "kafka_partition": part,
                 "tag": "kafka.access", "shipper": "sluice"})
    if src != want:
        ck.check(False, f"{label}: document is exactly the shaped record",
                 f"got  {json.dumps(src, sort_keys=True)}\nwant {json.dumps(want, sort_keys=True)}")
        return False
    return True


def main():
    ck = H.Checker("test_shaping")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    lines = make_lines()
    n_valid = N + N_BADTIME
    n_null_size = sum(1 for i in range(N) if i % 7 == 0)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=["access:4", "json:1"], workdir=wd))
            coords = {}  # path -> (partition, offset)
            for k, (ln, exp) in enumerate(lines):
                part = k % 4
                off = mk.produce_raw("access", part, ln)
                if isinstance(exp, dict):
                    coords[exp["path"]] = (part, off)

            # The Kafka timestamp stands in where a record has no time: 2025-10-09T08:00:00Z
            for rec, _ in JSON_RECORDS:
                mk.ok("produce-b64 json 0 " + base64.b64encode(rec).decode()
                      + " timestamp=1759996800000")

            # ---- run A: dated indices
            wa = os.path.join(wd, "a")
            es = procs.add(H.EsEmu(workdir=wd))
            port = H.free_port()
            out_a = {"index": "access-%Y.%m.%d"}
            sl = procs.add(H.Sluice(config(mk=mk, es=es, wd=wa, port=port, group="shape-a",
                                           output=out_a), wa))
            dl_dir = os.path.join(wa, "dead-letter")
            ck.check(wait_settled(es, dl_dir, len(lines) + len(JSON_RECORDS)),
                     "A: every line indexed or dead-lettered within 60 s", sl.log_tail())
            m = scrape(port)
            ck.eq(metric(m, "sluice_records_parse_errors_total", input="k"), N_NOMATCH,
                  "A: parse errors (lines the pattern does not match)")
            ck.eq(metric(m, "sluice_records_time_parse_errors_total", input="k"), N_BADTIME,
                  "A: time parse errors (dates that do not parse)")
            ck.eq(metric(m, "sluice_records_type_errors_total", input="k"), n_null_size,
                  "A: type errors (size '-' is not an int)")
            ck.eq(sl.terminate(60), 0, "A: exit code after SIGTERM")
            H.check_conservation(ck, sl.final_stats(), label="A: ")
            dls = H.dead_letters(dl_dir)
            ck.eq(sorted(d.get("reason") for d in dls), ["pattern did not match"] * N_NOMATCH,
                  "A: dead letters are the unmatched lines, with their reason")
            ck.eq(sorted(d.get("payload") for d in dls),
                  sorted(ln for ln, e in lines if e is None),
                  "A: dead letters carry the original lines")
            docs = es.dump()
            json_docs = sorted((d["_source"] for d in docs if d["_index"] == "json"),
                               key=lambda x: json.dumps(x, sort_keys=True))
            ck.eq(json_docs, sorted((w for _, w in JSON_RECORDS),
                                    key=lambda x: json.dumps(x, sort_keys=True)),
                  "A: JSON records get @timestamp from time_key or the Kafka timestamp, as "
                  "precise as the time, and keep one they have")
            docs = [d for d in docs if d["_index"] != "json"]
            ck.eq(len(docs), n_valid, "A: documents")
            by_path = {d["_source"].get("path"): d for d in docs}
            ok = 0
            for ln, exp in lines:
                if not isinstance(exp, dict):
                    continue
                d = by_path.get(exp["path"])
                if d is None:
                    ck.check(False, f"A: document for {exp['path']} exists")
                    break
                if d["_index"] != exp["_index"]:
                    ck.check(False, f"A: {exp['path']} is in the index of its line's UTC date",
                             f"got {d['_index']}, want {exp['_index']} ({ln})")
                    break
                if not check_doc(ck, d["_source"], exp, coords[exp["path"]], "A"):
                    break
                ok += 1
            ck.eq(ok, N, "A: documents exactly as expected (fields, types, edits, @timestamp, "
                  "index date)")
            prev_day = sum(1 for i in range(N) if OFFSETS[i % len(OFFSETS)][1] > 0 and
                           (T0 + datetime.timedelta(seconds=i * 211,
                                                    minutes=OFFSETS[i % len(OFFSETS)][1])).date()
                           != (T0 + datetime.timedelta(seconds=i * 211)).date())
            ck.check(prev_day > 0, "A: the data has lines east of UTC whose UTC date is the day "
                     f"before their local date ({prev_day})")
            today = datetime.datetime.now(UTC).strftime("%Y.%m.%d")
            bad = [d for d in docs if d["_source"].get("path", "").startswith("/bad/")]
            ck.eq(len(bad), N_BADTIME, "A: records with an unparsable date are indexed")
            ck.check(all(d["_index"] == f"access-{today}" and
                         d["_source"]["@timestamp"].endswith("Z") for d in bad),
                     "A: ... under the Kafka timestamp (today's index), not dropped",
                     [(d["_index"], d["_source"].get("@timestamp")) for d in bad])
            ck.eq(sum(1 for d in docs if d["_index"] == f"access-{today}"), N_BADTIME,
                  "A: no parsed line went to today's index")

            # ---- run B: ILM policy, index template, data stream, pipeline
            wb = os.path.join(wd, "b")
            os.makedirs(wb, exist_ok=True)
            es.reset()
            old_policy = {"policy": {"phases": {"hot": {"actions": {}}}}}
            for path, body in (("/_ilm/policy/logs-access", old_policy),
                               ("/_ingest/pipeline/access-enrich",
                                {"processors": [{"set": {"field": "enriched", "value": True}}]})):
                status, answer = es._req("PUT", path, body, port=es.port)
                ck.eq(status, 200, f"B: set-up PUT {path} ({answer[:200]!r})")
            ilm_file = os.path.join(wb, "ilm.json")
            tmpl_file = os.path.join(wb, "template.json")
            with open(ilm_file, "w") as f:
                json.dump({"policy": {"phases": {"hot": {"actions": {"rollover": {
                    "max_age": "1d"}}}, "delete": {"min_age": "30d",
                                                  "actions": {"delete": {}}}}}}, f)
            template = {"index_patterns": ["logs-access-*"], "data_stream": {}, "priority": 200,
                        "template": {"settings": {"index.lifecycle.name": "logs-access"}}}
            with open(tmpl_file, "w") as f:
                json.dump(template, f)
            es.faults(template_status=503, template_count=2)
            port = H.free_port()
            out_b = {"data_stream": "logs-access-default", "pipeline": "access-enrich",
                     "ilm_policy_name": "logs-access", "ilm_policy_file": ilm_file,
                     "template_name": "logs-access", "template_file": tmpl_file}
            sl = procs.add(H.Sluice(config(mk=mk, es=es, wd=wb, port=port, group="shape-b",
                                           output=out_b), wb))
            ck.check(wait_settled(es, os.path.join(wb, "dead-letter"), len(lines)),
                     "B: every line indexed or dead-lettered within 60 s", sl.log_tail())
            m = scrape(port)
            ck.check((metric(m, "sluice_output_retries_total", output="es", reason="setup")
                      or 0) >= 2, "B: the refused template PUTs were retried and counted",
                     metric(m, "sluice_output_retries_total", output="es", reason="setup"))
            ck.eq(sl.terminate(60), 0, "B: exit code after SIGTERM")
            res = es.resources()
            st = es.stats()
            ck.eq(st.get("injected_resource_errors"), 2, "B: the emulator refused two PUTs")
            ck.eq(res["index_templates"].get("logs-access", {}).get("index_patterns"),
                  ["logs-access-*"], "B: index template installed from template_file")
            pol = res["ilm_policies"].get("logs-access", {})
            ck.eq(pol.get("policy"), old_policy["policy"],
                  "B: an existing ILM policy is left alone (ilm_policy_overwrite: false)")
            ds = res["data_streams"].get("logs-access-default")
            ck.check(ds is not None, "B: data stream created", res["data_streams"])
            ck.eq(ds and ds.get("docs"), n_valid, "B: every parsed line is in the data stream")
            ck.eq(st.get("data_stream_op_type_errors", 0) + st.get("data_stream_timestamp_errors",
                                                                    0), 0,
                  "B: no bulk item refused for op type or a missing @timestamp")
            ck.eq((st.get("pipeline_docs") or {}).get("access-enrich"), n_valid,
                  "B: every document went through the configured ingest pipeline")
            docs_b = [d for d in es.dump() if d["_index"] != "json"]
            ck.check(all(d["_index"].startswith(".ds-logs-access-default-") for d in docs_b),
                     "B: documents are in the data stream's backing index",
                     sorted({d["_index"] for d in docs_b}))
            ck.check(any(ln for ln in sl.text().splitlines() if "resources in place" in ln),
                     "B: the log says when the resources are in place")

            # ---- run C: the template is refused for good: batches wait setup_timeout, then go
            wc = os.path.join(wd, "c")
            os.makedirs(wc, exist_ok=True)
            es.reset()
            es.faults(template_status=503, template_count=-1)
            port = H.free_port()
            out_c = {"data_stream": "logs-access-default", "template_name": "logs-access",
                     "template_file": tmpl_file, "setup_timeout": "3s"}
            t0 = H.time.monotonic()
            sl = procs.add(H.Sluice(config(mk=mk, es=es, wd=wc, port=port, group="shape-c",
                                           output=out_c), wc))
            H.time.sleep(max(0.0, 2.0 - (H.time.monotonic() - t0)))
            ck.eq(sum(1 for d in es.dump() if d["_index"] != "json"), 0,
                  "C: no access document 2 s in, while the setup waits (timeout 3 s)")
            ck.check(wait_settled(es, os.path.join(wc, "dead-letter"), len(lines)),
                     "C: with the template refused, every line still arrives (after "
                     "setup_timeout)", sl.log_tail())
            ck.check(any("still not in place" in ln and "plain index" in ln
                         for ln in sl.text().splitlines()),
                     "C: the log says the setup timed out and what that means for a data stream")
            m = scrape(port)
            ck.check((metric(m, "sluice_output_retries_total", output="es", reason="setup")
                      or 0) >= 2, "C: the refused template PUTs are counted as setup retries")
            ck.eq(sl.terminate(60), 0, "C: exit code after SIGTERM")
            es.clear_faults()


if __name__ == "__main__":
    main()
