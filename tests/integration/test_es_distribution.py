#!/usr/bin/python3
# ctest-labels: asan
"""The Elasticsearch output asks the cluster what it is (GET /) before it sends anything.

A. esemu answering as OpenSearch 2.19.6, with ilm_policy_name/ilm_policy_file configured: sluice
   exits with code 2 within seconds, its log names the keys, the host, what was found and what to
   do instead (ISM); nothing but GET / reached the cluster (no _ilm request, no bulk request, no
   document) and no offset was committed.
B. The same OpenSearch without the ilm keys (an index template and a data stream instead): every
   record arrives once; the log names OpenSearch 2.19.6, and so do /metrics
   (sluice_output_cluster_info) and /status.
C. esemu as Elasticsearch 8.11.0 with the ilm keys: the policy is installed, every record arrives,
   the log and /metrics name Elasticsearch 8.11.0.
D. A proxy in front of esemu refuses GET / with 403 (a user without the monitor privilege): one
   warning, the check is skipped, the ILM policy is installed and every record arrives;
   /metrics says distribution "unknown".
E. The cluster refuses connections for the first 6 s: GET / is retried (retries{reason="setup"}),
   batches wait for it instead of failing (no transport retry), then every record arrives.
F. Elasticsearch 6.8.23: a warning that bulk actions without _type are refused there."""
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

N = 2000
PARTS = 4
DOWN_MS = 6000


def emu(procs, wd, name, *extra):
    d = os.path.join(wd, name)
    os.makedirs(d, exist_ok=True)
    return procs.add(H.EsEmu(workdir=d, extra=list(extra)))


def config(mk, url, wd, group, extra=None):
    return H.sluice_config(brokers=mk.bootstrap, es_url=url, workdir=wd, group=group,
                           output_extra=extra)


def status(sl):
    port = re.search(r'http_listen"?: *"?127\.0\.0\.1:(\d+)', open(sl.config_path).read()).group(1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
        return json.loads(r.read())


def cluster_info(sl):
    return [(lb.get("output"), lb.get("distribution"), lb.get("version"), v)
            for lb, v in sl.metrics("sluice_output_cluster_info")]


def retries(sl, reason):
    for lb, v in sl.metrics("sluice_output_retries_total"):
        if lb.get("output") == "es" and lb.get("reason") == reason:
            return v
    return None


def write_json(path, body):
    with open(path, "w") as f:
        json.dump(body, f)
    return path


def wait_all(ck, es, sl, label):
    got = es.wait_docs(N, timeout_s=60, stall_s=30, label=label)
    ck.eq(got, N, f"{label}: documents")
    return got


def check_once(ck, es, label, index_prefix="logs-logs-"):
    docs = [d for d in es.dump() if d["_index"].startswith(index_prefix) or
            d["_index"].startswith(".ds-")]
    H.check_every_seq_once(ck, docs, range(N), f"{label}: documents")


class Forbid(http.server.BaseHTTPRequestHandler):
    """Answers GET / with 403 as a secured cluster does for a user without the monitor
    privilege; everything else goes to the cluster behind."""
    protocol_version = "HTTP/1.1"
    upstream = None
    info_requests = 0

    def log_message(self, *a):
        pass

    def _relay(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        if self.command == "GET" and self.path == "/":
            Forbid.info_requests += 1
            out = (b'{"error":{"root_cause":[{"type":"security_exception","reason":"action '
                   b'[cluster:monitor/main] is unauthorized for user [shipper]"}],"type":'
                   b'"security_exception","reason":"action [cluster:monitor/main] is '
                   b'unauthorized for user [shipper]"},"status":403}')
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        c = http.client.HTTPConnection("127.0.0.1", Forbid.upstream, timeout=60)
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


def main():
    ck = H.Checker("test_es_distribution")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=[f"logs:{PARTS}"], workdir=wd))
            mk.produce("logs", N)
            ck.eq(mk.wait_produced(60), N, "records produced")
            ilm = write_json(os.path.join(wd, "ilm.json"),
                             {"policy": {"phases": {"hot": {"actions": {}}}}})
            tmpl = write_json(os.path.join(wd, "template.json"),
                              {"index_patterns": ["logs-*"], "priority": 300,
                               "template": {"settings": {"number_of_shards": 1}}})
            ds_tmpl = write_json(os.path.join(wd, "ds-template.json"),
                                 {"index_patterns": ["logs-app-*"], "data_stream": {},
                                  "priority": 300})
            ilm_keys = {"ilm_policy_name": "logs", "ilm_policy_file": ilm,
                        "template_name": "logs", "template_file": tmpl}

            # ---- A: OpenSearch and ILM keys: a clear error, exit 2, nothing sent
            es = emu(procs, wd, "esa", "--distribution", "opensearch")
            wa = os.path.join(wd, "a")
            t0 = time.monotonic()
            sl = procs.add(H.Sluice(config(mk, es.url, wa, "dist-a", ilm_keys), wa))
            try:
                rc = sl.proc.wait(timeout=20)
            except Exception:  # noqa: BLE001
                rc = sl.terminate()
            secs = time.monotonic() - t0
            H.log(f"A: exit {rc} after {secs:.1f}s")
            ck.eq(rc, 2, "A: sluice exits with code 2 (configuration error) on its own")
            ck.check(secs < 10, f"A: ... within seconds ({secs:.1f}s)")
            err = sl.lines(r" error es: .*_ilm")
            ck.check(len(err) == 1, "A: one error line about _ilm", sl.log_tail())
            e = err[0] if err else ""
            for want in ("ilm_policy_name", "ilm_policy_file", es.url, "OpenSearch 2.19.6",
                         "no _ilm API", "_plugins/_ism", "Remove the ilm_policy_* keys"):
                ck.check(want in e, f"A: the error names {want!r}", e)
            ck.check(bool(sl.lines(rf"cluster at {re.escape(es.url)}: OpenSearch 2\.19\.6$")),
                     "A: the log names what was found", sl.log_tail())
            st = es.stats()
            ck.eq(st.get("requests"), 1, "A: the cluster got exactly one request (GET /)")
            ck.eq(st.get("bulk_requests"), 0, "A: no bulk request")
            ck.eq(st.get("ilm_put", 0) + st.get("templates_put", 0), 0,
                  "A: no policy and no template written")
            ck.eq(es.docs(), 0, "A: no document")
            com = mk.committed("dist-a", "logs")
            ck.check(all(v < 0 for v in com.values()), "A: no offset committed", com)
            fs = sl.final_stats()
            ck.check(fs is not None and fs["inputs"]["k"]["delivered"] == 0,
                     "A: final-stats: nothing delivered", fs)
            es.kill()

            # ---- B: OpenSearch without ILM: template, data stream, every record
            es = emu(procs, wd, "esb", "--distribution", "opensearch")
            wb = os.path.join(wd, "b")
            sl = procs.add(H.Sluice(config(mk, es.url, wb, "dist-b",
                                           {"data_stream": "logs-app-default",
                                            "template_name": "logs-app",
                                            "template_file": ds_tmpl}), wb))
            wait_all(ck, es, sl, "B")
            ck.check(bool(sl.lines(rf"cluster at {re.escape(es.url)}: OpenSearch 2\.19\.6$")),
                     "B: the log names OpenSearch 2.19.6", sl.log_tail())
            ck.eq(cluster_info(sl), [("es", "opensearch", "2.19.6", 1.0)],
                  "B: /metrics sluice_output_cluster_info")
            ck.eq(status(sl)["outputs"][0].get("cluster"),
                  {"distribution": "opensearch", "version": "2.19.6"}, "B: /status cluster")
            ck.eq(sl.terminate(), 0, "B: exit code after SIGTERM")
            H.check_conservation(ck, sl.final_stats(), label="B: ")
            res = es.resources()
            ck.check("logs-app" in res["index_templates"], "B: template installed",
                     res["index_templates"])
            ds = res["data_streams"].get("logs-app-default") or {}
            ck.eq(ds.get("docs"), N, "B: every record in the data stream")
            check_once(ck, es, "B")
            ck.eq(es.stats().get("ilm_put"), 0, "B: nothing sent to _ilm")
            es.kill()

            # ---- C: Elasticsearch with ILM
            es = emu(procs, wd, "esc")
            wc = os.path.join(wd, "c")
            sl = procs.add(H.Sluice(config(mk, es.url, wc, "dist-c", ilm_keys), wc))
            wait_all(ck, es, sl, "C")
            ck.check(bool(sl.lines(rf"cluster at {re.escape(es.url)}: Elasticsearch 8\.11\.0$")),
                     "C: the log names Elasticsearch 8.11.0", sl.log_tail())
            ck.eq(cluster_info(sl), [("es", "elasticsearch", "8.11.0", 1.0)],
                  "C: /metrics sluice_output_cluster_info")
            ck.eq(sl.terminate(), 0, "C: exit code after SIGTERM")
            res = es.resources()
            ck.check("logs" in res["ilm_policies"] and "logs" in res["index_templates"],
                     "C: ILM policy and template installed", res)
            check_once(ck, es, "C")
            es.kill()

            # ---- D: GET / refused with 403: warned once, check skipped, records flow
            es = emu(procs, wd, "esd")
            Forbid.upstream = es.port
            proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forbid)
            threading.Thread(target=proxy.serve_forever, daemon=True).start()
            purl = f"http://127.0.0.1:{proxy.server_address[1]}"
            wdd = os.path.join(wd, "d")
            sl = procs.add(H.Sluice(config(mk, purl, wdd, "dist-d", ilm_keys), wdd))
            wait_all(ck, es, sl, "D")
            warn = sl.lines(r"did not say what it is")
            ck.eq(len(warn), 1, "D: one warning that GET / did not say what the cluster is")
            ck.check(bool(warn) and "HTTP 403" in warn[0] and "unauthorized" in warn[0],
                     "D: ... with the status and the cluster's reason", warn)
            ck.eq(Forbid.info_requests, 1, "D: GET / asked once, not retried")
            ck.eq(cluster_info(sl), [("es", "unknown", "", 1.0)],
                  "D: /metrics says the distribution is unknown")
            ck.eq(sl.terminate(), 0, "D: exit code after SIGTERM")
            ck.check("logs" in es.resources()["ilm_policies"],
                     "D: the ILM policy is installed all the same")
            check_once(ck, es, "D")
            proxy.shutdown()
            es.kill()

            # ---- E: unreachable at start: GET / retried, batches wait for it
            es = emu(procs, wd, "ese")
            # longer than the mock's group join (about 3 s): batches are ready while it is down
            es.down(DOWN_MS)
            we = os.path.join(wd, "e")
            t0 = time.monotonic()
            sl = procs.add(H.Sluice(config(mk, es.url, we, "dist-e"), we))
            ck.check(sl.wait_log(r"k: assigned 4 partitions", 20), "E: partitions assigned")
            assigned = time.monotonic() - t0
            wait_all(ck, es, sl, "E")
            secs = time.monotonic() - t0
            H.log(f"E: assigned after {assigned:.1f}s, every record in after {secs:.1f}s")
            ck.check(assigned < DOWN_MS / 1000 - 1, f"E: records were ready while the cluster "
                     f"was down (assigned after {assigned:.1f}s)")
            ck.check((retries(sl, "setup") or 0) >= 1,
                     f"E: GET / retried and counted (retries{{reason=\"setup\"}} = "
                     f"{retries(sl, 'setup')})")
            ck.eq(retries(sl, "transport"), 0.0, "E: no bulk request failed meanwhile (batches "
                  "waited for the check)")
            ck.eq(len(sl.lines(r"cluster at .*: Elasticsearch 8\.11\.0$")), 1,
                  "E: the cluster is named once it answers")
            ck.eq(sl.terminate(), 0, "E: exit code after SIGTERM")
            check_once(ck, es, "E")
            es.kill()

            # ---- F: Elasticsearch 6: the missing _type is announced
            es = emu(procs, wd, "esf", "--version-number", "6.8.23")
            wf = os.path.join(wd, "f")
            sl = procs.add(H.Sluice(config(mk, es.url, wf, "dist-f"), wf))
            ck.check(sl.wait_log(r"Elasticsearch 6\.8\.23: versions before 7 require a _type", 15),
                     "F: a warning that Elasticsearch 6 refuses bulk actions without _type",
                     sl.log_tail())
            ck.eq(sl.terminate(), 0, "F: exit code after SIGTERM")
            es.kill()


if __name__ == "__main__":
    main()
