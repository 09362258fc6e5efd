#!/usr/bin/python3
"""Operating sluice: JSON logs in a file, rotation with SIGHUP, rate-limited repeats, /healthz.

sluice runs with log_format: json, log_file, stall_after: 3s. A user must see:
- every log line in the file is one JSON object with time, level, component, msg, suppressed;
- after the file is renamed and SIGHUP sent, new lines go to a new file at the configured path
  and the renamed file keeps the old ones (logrotate's create mode);
- a flood of item retries (50% item 429) is logged at most once per (component, kind) per
  log_interval with a `suppressed` count, not once per failure;
- /healthz answers 200 while records flow, 503 with a reason while Elasticsearch stalls longer
  than stall_after with records pending, and 200 again after the stall.
"""
import json
import os
import signal
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def healthz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def json_lines(path):
    out, bad = [], []
    with open(path) as f:
        for ln in f:
            try:
                out.append(json.loads(ln))
            except ValueError:
                bad.append(ln)
    return out, bad


def main():
    ck = H.Checker("test_logs_health")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            log = os.path.join(wd, "sluice.log")
            mk = procs.add(H.MockKafka(topics=["logs:4"], workdir=wd))
            es = procs.add(H.EsEmu(workdir=wd))
            es.faults(item_retryable_rate=0.5)
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es.url, workdir=wd, group="lh",
                                  service={"log_format": "json", "log_file": log,
                                           "log_interval": "2s", "stall_after": "3s"})
            port = H.status_port(cfg)
            sl = procs.add(H.Sluice(cfg, wd))
            mk.produce("logs", 8000, rate=2000)
            ck.check(es.wait_docs(2000, 30, label="flowing") >= 2000, "records flow")
            st, body = healthz(port)
            ck.eq(st, 200, "healthz while records flow")

            lines, bad = json_lines(log)
            ck.check(lines and not bad, f"{len(lines)} log lines, all JSON", bad[:3])
            ck.check(all({"time", "level", "component", "msg", "suppressed"} <= set(x)
                          for x in lines), "every line has time, level, component, msg, suppressed")
            retries = [x for x in lines if x.get("kind") == "item_retry"]
            H.time.sleep(4.5)
            lines, _ = json_lines(log)
            retries = [x for x in lines if x.get("kind") == "item_retry"]
            ck.check(any(x["suppressed"] > 0 for x in retries),
                     "repeated item retries are summarised with a suppressed count",
                     [(x["time"], x["suppressed"]) for x in retries])
            ck.check(len(retries) <= 6, f"item retry lines rate-limited ({len(retries)} lines "
                     f"for {es.stats()['injected_item_errors']} failed items)")

            # rotation
            os.rename(log, log + ".1")
            sl.proc.send_signal(signal.SIGHUP)
            ck.check(H.time.sleep(1) is None and os.path.exists(log),
                     "SIGHUP: a new log file appears at the configured path")
            new, _ = json_lines(log)
            old, _ = json_lines(log + ".1")
            ck.check(any("reopened" in x["msg"] for x in new) and len(old) >= len(lines),
                     "new lines go to the new file, the renamed one keeps the old lines")
            ck.check(sl.alive(), "SIGHUP does not stop sluice")

            # health: a stall longer than stall_after with records pending
            es.faults(stall_ms=9000)
            mk.produce("logs", 2000, rate=2000)
            got503 = None
            for _ in range(40):
                H.time.sleep(0.25)
                st, body = healthz(port)
                if st == 503:
                    got503 = body
                    break
            ck.check(got503 is not None, "healthz turns 503 during the stall", body)
            ck.check(got503 and ("progress" in got503 or "stall" in got503 or "finished" in got503),
                     "the 503 says why", got503)
            ck.check(es.wait_docs(10000, 40, label="after stall") >= 10000, "all records arrive")
            ok = False
            for _ in range(40):
                st, body = healthz(port)
                if st == 200:
                    ok = True
                    break
                H.time.sleep(0.25)
            ck.check(ok, "healthz back to 200 after the stall", body)
            ck.eq(sl.terminate(30), 0, "exit code after SIGTERM")
            final = [x for x in json_lines(log)[0] if x["msg"].startswith("final-stats")]
            ck.check(len(final) == 1, "final-stats written to the log file as JSON")
            if final:
                fs = json.loads(final[0]["msg"][len("final-stats "):])
                H.check_conservation(ck, fs)


if __name__ == "__main__":
    sys.exit(main())
