#!/usr/bin/python3
# ctest-labels: real
"""Record shaping on the real servers: Kafka 4.4 -> sluice -> OpenSearch 2.19.6.

1. With ilm_policy_name/ilm_policy_file configured, sluice asks the node what it is (GET /),
   finds OpenSearch and exits with code 2 and an error that names the keys, the host and ISM.
   A recording proxy in front of the node shows GET / was the only request (nothing reached
   _ilm, no template, no bulk); no index, no committed offset.
2. One sluice, one Kafka input, three outputs (copy: true), each record once in each:
   - an index whose composable template is installed from template_file at start: the template
     is there (GET /_index_template), the index has its settings (2 shards) and mappings
     (service and level keyword: a terms aggregation on them works and counts every record);
   - a data stream (data_stream key, op create): its template with "data_stream": {} installed,
     the stream created with one backing index, every record one document counted through the
     stream's name, each with @timestamp equal to the record's time;
   - an index written through an ingest pipeline created beforehand with set, rename and
     lowercase (ingest-common): every document shows all three, and the other outputs' documents
     show none of them.
   The log, /metrics and /status name OpenSearch 2.19.6. Every record of the Kafka log is exactly
   one document of each index under its <topic>-<partition>-<offset> id, the group commits the
   high watermarks, nothing is dead-lettered."""
import datetime
import http.client
import http.server
import json
import os
import re
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import realservers as R  # noqa: E402

N = int(os.environ.get("REAL_RECORDS") or 30_000)
PARTS = 4
LEVELS = ["INFO", "Warn", "ERROR"]
SERVICES = ["checkout", "payments", "search", "auth"]
T0 = datetime.datetime(2026, 12, 7, 10, 0, 0, tzinfo=datetime.timezone.utc)
DS = "logs-shaping-default"


def rec_time(i):
    return T0 + datetime.timedelta(milliseconds=37 * i)


def record(i):
    t = rec_time(i).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return json.dumps({"seq": i, "time": t, "level": LEVELS[i % 3],
                       "service": SERVICES[i % len(SERVICES)], "msg": f"order {i} accepted"})


def parse_ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


class Recorder(http.server.BaseHTTPRequestHandler):
    """Relays to the node and records every request's method and path."""
    protocol_version = "HTTP/1.1"
    upstream = None
    seen = []

    def log_message(self, *a):
        pass

    def _relay(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        Recorder.seen.append((self.command, self.path))
        c = http.client.HTTPConnection("127.0.0.1", Recorder.upstream, timeout=60)
        hdrs = {k: v for k, v in self.headers.items()
                if k.lower() in ("content-type", "content-encoding", "authorization")}
        c.request(self.command, self.path, body=body, headers=hdrs)
        r = c.getresponse()
        out = r.read()
        c.close()
        self.send_response(r.status)
        self.send_header("Content-Type", r.getheader("Content-Type") or "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay


def write_json(path, body):
    with open(path, "w") as f:
        json.dump(body, f)
    return path


def es_out(name, url, **kw):
    o = {"type": "elasticsearch", "name": name, "match": "kafka.**", "hosts": [url], "id": "kafka",
         "op": "create", "batch_max_bytes": "1MiB", "batch_max_wait": "200ms", "concurrency": 2}
    o.update(kw)
    return o


def status_port(sl):
    return json.loads(open(sl.config_path).read())["service"]["http_listen"].split(":")[1]


def phase_ilm(ck, procs, wd, kafka, osn):
    """ILM keys on OpenSearch: exit 2 with a clear error, nothing but GET / sent."""
    Recorder.upstream = osn.port
    Recorder.seen = []
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    purl = f"http://127.0.0.1:{proxy.server_address[1]}"
    d = os.path.join(wd, "ilm")
    os.makedirs(d, exist_ok=True)
    ilm = write_json(os.path.join(d, "ilm.json"),
                     {"policy": {"phases": {"hot": {"actions": {"rollover": {"max_age": "1d"}}}}}})
    tmpl = write_json(os.path.join(d, "template.json"),
                      {"index_patterns": ["ilm-*"], "priority": 400,
                       "template": {"settings": {"index.lifecycle.name": "shaping"}}})
    out = es_out("es", purl, index="ilm-${topic}", ilm_policy_name="shaping", ilm_policy_file=ilm,
                 template_name="ilm-shaped", template_file=tmpl)
    cfg = R.sluice_config(d, kafka.bootstrap, purl, group="real-shaping-ilm",
                          inp={"time_key": "time"}, outputs=[out])
    t0 = time.monotonic()
    sl = procs.add(H.Sluice(cfg, d))
    try:
        rc = sl.proc.wait(timeout=60)
    except Exception:  # noqa: BLE001
        rc = sl.terminate()
    secs = time.monotonic() - t0
    proxy.shutdown()
    H.log(f"ilm: exit {rc} after {secs:.1f}s; requests {Recorder.seen}")
    ck.eq(rc, 2, "ilm: sluice exits with code 2 on its own (configuration error)")
    ck.check(secs < 30, f"ilm: ... in {secs:.1f}s")
    ck.check(bool(sl.lines(rf"es: cluster at {re.escape(purl)}: OpenSearch 2\.19\.6$")),
             "ilm: the log names OpenSearch 2.19.6", sl.log_tail())
    err = sl.lines(r" error es: .*_ilm")
    e = err[0] if err else ""
    ck.check(all(w in e for w in ("ilm_policy_name", "ilm_policy_file", purl, "OpenSearch 2.19.6",
                                  "no _ilm API", "_plugins/_ism", "Remove the ilm_policy_*")),
             "ilm: the error names the keys, the host, what was found and what to do", e or
             sl.log_tail())
    ck.eq(Recorder.seen, [("GET", "/")], "ilm: GET / was the only request the node got")
    st, _ = osn.req("GET", "/_index_template/ilm-shaped")
    ck.eq(st, 404, "ilm: no template installed")
    ck.eq(osn.count("ilm-logs"), 0, "ilm: no document")
    com = kafka.committed("real-shaping-ilm", "logs", PARTS)
    ck.check(all(v < 0 for v in com.values()), "ilm: no offset committed", com)


def check_template_index(ck, osn, kafka):
    tl = osn.ok("GET", "/_index_template/shaped")["index_templates"]
    ck.check(len(tl) == 1 and tl[0]["index_template"]["index_patterns"] == ["shaped-*"] and
             tl[0]["index_template"].get("_meta") == {"owner": "sluice-test"},
             "template: installed from template_file (GET /_index_template/shaped)", tl)
    s = osn.ok("GET", "/shaped-logs/_settings")["shaped-logs"]["settings"]["index"]
    ck.eq(s.get("number_of_shards"), "2", "template: the index has the template's 2 shards")
    props = osn.ok("GET", "/shaped-logs/_mapping")["shaped-logs"]["mappings"]["properties"]
    ck.eq((props.get("service", {}).get("type"), props.get("level", {}).get("type")),
          ("keyword", "keyword"), "template: service and level mapped keyword by the template")
    ck.eq(props.get("msg", {}).get("type"), "text", "template: msg mapped dynamically (text)")
    agg = osn.ok("POST", "/shaped-logs/_search",
                 {"size": 0, "aggs": {"s": {"terms": {"field": "service", "size": 10}}}})
    got = {b["key"]: b["doc_count"] for b in agg["aggregations"]["s"]["buckets"]}
    want = {s: sum(1 for i in range(N) if SERVICES[i % len(SERVICES)] == s) for s in SERVICES}
    ck.eq(got, want, "template: a terms aggregation on the keyword field counts every record")
    R.check_index_is_log(ck, osn, "shaped-logs", kafka, "logs", PARTS, range(N), label="template: ")
    bad = [d for d in osn.scan("shaped-logs", source=["seq", "msg", "level", "shipped_by"])
           if d["_source"].get("msg") != f"order {d['_source'].get('seq')} accepted" or
           d["_source"].get("level") != LEVELS[d["_source"]["seq"] % 3] or
           "shipped_by" in d["_source"]]
    ck.check(not bad, "template: documents are the records as sent (no pipeline here)", bad[:3])


def check_data_stream(ck, osn, kafka):
    tl = osn.ok("GET", "/_index_template/logs-shaping")["index_templates"]
    ck.check(len(tl) == 1 and "data_stream" in tl[0]["index_template"],
             "data stream: its template with data_stream installed", tl)
    dss = osn.ok("GET", f"/_data_stream/{DS}")["data_streams"]
    ck.check(len(dss) == 1 and dss[0]["name"] == DS and dss[0]["template"] == "logs-shaping" and
             dss[0]["timestamp_field"]["name"] == "@timestamp" and len(dss[0]["indices"]) == 1 and
             dss[0]["indices"][0]["index_name"].startswith(f".ds-{DS}-"),
             "data stream: created, on its template, one backing index", dss)
    osn.refresh(DS)
    ck.eq(osn.count(DS), N, "data stream: documents counted through the stream's name")
    R.check_index_is_log(ck, osn, DS, kafka, "logs", PARTS, range(N), label="data stream: ")
    docs = osn.scan(DS, source=["seq", "@timestamp"])
    bad = [d for d in docs if not d["_index"].startswith(f".ds-{DS}-") or
           parse_ts(d["_source"].get("@timestamp", "1970-01-01T00:00:00Z")) !=
           rec_time(d["_source"]["seq"])]
    ck.check(not bad and len(docs) == N,
             f"data stream: every document in the backing index with @timestamp = the record's "
             f"time ({len(docs)} documents)", bad[:3])


def check_pipeline(ck, osn, kafka):
    R.check_index_is_log(ck, osn, "piped-logs", kafka, "logs", PARTS, range(N), label="pipeline: ")
    docs = osn.scan("piped-logs", source=["seq", "msg", "message", "level", "shipped_by"])
    bad = []
    for d in docs:
        s = d["_source"]
        i = s.get("seq")
        if s.get("shipped_by") != "sluice" or "msg" in s or \
                s.get("message") != f"order {i} accepted" or s.get("level") != LEVELS[i % 3].lower():
            bad.append(s)
    ck.check(not bad and len(docs) == N,
             f"pipeline: every document set (shipped_by), renamed (msg -> message) and "
             f"lowercased (level) by the ingest pipeline ({len(docs)} documents)", bad[:3])


def phase_shaping(ck, procs, wd, kafka, osn):
    d = os.path.join(wd, "shape")
    os.makedirs(d, exist_ok=True)
    tmpl = write_json(os.path.join(d, "template.json"), {
        "index_patterns": ["shaped-*"], "priority": 400, "_meta": {"owner": "sluice-test"},
        "template": {"settings": {"number_of_shards": 2, "number_of_replicas": 0},
                     "mappings": {"properties": {"service": {"type": "keyword"},
                                                 "level": {"type": "keyword"},
                                                 "seq": {"type": "long"}}}}})
    ds_tmpl = write_json(os.path.join(d, "ds-template.json"), {
        "index_patterns": ["logs-shaping-*"], "data_stream": {}, "priority": 500,
        "template": {"mappings": {"properties": {"service": {"type": "keyword"}}}}})
    osn.ok("PUT", "/_ingest/pipeline/shaping-pipe", {
        "description": "sluice real-server test",
        "processors": [{"set": {"field": "shipped_by", "value": "sluice"}},
                       {"rename": {"field": "msg", "target_field": "message"}},
                       {"lowercase": {"field": "level"}}]})
    outs = [es_out("tmpl", osn.url, copy=True, index="shaped-${topic}", template_name="shaped",
                   template_file=tmpl),
            es_out("ds", osn.url, copy=True, data_stream=DS, template_name="logs-shaping",
                   template_file=ds_tmpl),
            es_out("piped", osn.url, index="piped-${topic}", pipeline="shaping-pipe")]
    cfg = R.sluice_config(d, kafka.bootstrap, osn.url, group="real-shaping",
                          inp={"time_key": "time"}, outputs=outs)
    sl = procs.add(H.Sluice(cfg, d))
    t0 = time.monotonic()
    for ix in ("shaped-logs", DS, "piped-logs"):
        got = R.wait_count(osn, ix, N, timeout_s=180, stall_s=60, label=ix)
        ck.eq(got, N, f"documents in {ix}")
    H.log(f"shaping: {3 * N} documents in {time.monotonic() - t0:.1f}s")
    ok, com, highs = R.wait_committed(kafka, "real-shaping", "logs", PARTS, timeout_s=60)
    ck.check(ok, "the group's committed offsets equal the high watermarks",
             f"committed {com}, high {highs}")
    ck.eq(len(sl.lines(rf"cluster at {re.escape(osn.url)}: OpenSearch 2\.19\.6$")), 3,
          "the log names OpenSearch 2.19.6, once per output")
    info = sorted((lb["output"], lb["distribution"], lb["version"], v)
                  for lb, v in sl.metrics("sluice_output_cluster_info"))
    ck.eq(info, [(o, "opensearch", "2.19.6", 1.0) for o in ("ds", "piped", "tmpl")],
          "/metrics sluice_output_cluster_info")
    with urllib.request.urlopen(f"http://127.0.0.1:{status_port(sl)}/status", timeout=5) as r:
        st = json.loads(r.read())
    ck.eq([o.get("cluster") for o in st["outputs"]],
          [{"distribution": "opensearch", "version": "2.19.6"}] * 3, "/status outputs[].cluster")
    ck.check(len(sl.lines(r"resources in place")) == 2,
             "the two outputs with resources say when they are in place")
    ck.eq(sl.terminate(), 0, "sluice exit code after SIGTERM")
    fs = H.check_conservation(ck, sl.final_stats())
    if fs:
        ck.eq(fs["delivered"], N, "sluice counted every record delivered (to all three)")
    ck.eq(len(H.dead_letters(os.path.join(d, "dead-letter"))), 0, "dead-letter store is empty")
    check_template_index(ck, osn, kafka)
    check_data_stream(ck, osn, kafka)
    check_pipeline(ck, osn, kafka)


def main():
    ck = H.Checker("test_real_shaping")
    H.require_binaries(H.SLUICE_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir("real-shaping-")
            kafka = procs.add(R.KafkaServer(os.path.join(wd, "kafka")))
            osn = procs.add(R.OpenSearch(os.path.join(wd, "opensearch")))
            ver = osn.version()
            H.log(f"OpenSearch {ver['number']} ({ver.get('distribution')})")
            kafka.create_topic("logs", PARTS)
            R.produce(kafka.bootstrap, "logs", [record(i) for i in range(N)],
                      compression="lz4", partitions=lambda i: i % PARTS)
            ck.eq(len(R.log_offsets(kafka, "logs", PARTS)), N, "records in the Kafka log")
            phase_ilm(ck, procs, wd, kafka, osn)
            phase_shaping(ck, procs, wd, kafka, osn)
            kafka.rss_kb()
            osn.rss_kb()
            H.log(f"result: records {N}; {R.server_rss_report(kafka, osn)}")


if __name__ == "__main__":
    main()
