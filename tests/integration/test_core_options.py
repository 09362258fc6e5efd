#!/usr/bin/python3
"""Elasticsearch output and Kafka input options, each as a user would configure it.

One mock cluster with 2,000 records in `logs`; every case runs sluice with its own group against a
fresh emulator and checks what arrived:
- basic auth and API key: the emulator saw the Authorization header sluice was configured with;
- gzip: bodies were gzip-encoded and every record arrived;
- failover: the first host refuses connections, the second gets everything;
- op: index + id: none: documents get emulator-generated ids, results are 'created';
- id: field:<path>: the _id is the record's field;
- index with ${record.service}: one index per service;
- format: text + metadata_key: the payload is wrapped as {"message": ...} with Kafka coordinates;
- GLIBC_TUNABLES with malloc settings: sluice logs that it uses them as given (it sets its own
  only when the operator did not), its block cache is off, and every record arrives; without
  them the block cache is a quarter of memory_limit (at most 16 MiB); a SLUICE_BLOCK_CACHE that
  is not a number of bytes stops sluice with exit 2;
- the CLI: `sluice check` prints FILE:LINE errors and exits 2, --version and --help exit 0.
"""
import base64
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

N = 2_000


def run_case(ck, procs, mk, wd, name, extra_output=None, es_urls=None, fmt="json",
             extra_input=None, es=None, env=None):
    """Runs sluice until the emulator has N documents; returns (esemu, sluice, final-stats)."""
    es = es or procs.add(H.EsEmu(workdir=wd))
    d = os.path.join(wd, name)
    cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es_urls or es.url, workdir=d,
                          group=f"opt-{name}", fmt=fmt, inp=extra_input, output_extra=extra_output)
    sl = procs.add(H.Sluice(cfg, d, env=env))
    got = es.wait_docs(N, 60, label=name)
    ck.check(got >= N, f"{name}: all {N} records arrived (got {got})", sl.log_tail())
    code = sl.terminate(30)
    ck.eq(code, 0, f"{name}: exit code after SIGTERM")
    fs = sl.final_stats()
    H.check_conservation(ck, fs, label=f"{name}: ")
    return es, sl, fs


def main():
    ck = H.Checker("test_core_options")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=["logs:4"], workdir=wd))
            mk.produce("logs", N)
            mk.wait_produced(60)

            es, sl, _ = run_case(ck, procs, mk, wd, "basic",
                                 {"user": "elastic", "password": "s3cret"})
            ck.check(not sl.lines(r"GLIBC_TUNABLES"), "basic: no GLIBC_TUNABLES line without "
                     "the variable")
            started = sl.lines(r"started: memory_limit=")
            m = re.search(r"memory_limit=(\d+) .* block_cache=(\d+)", started[0] if started else "")
            want = 0 if os.environ.get("SLUICE_SANITIZED") == "1" else \
                min(int(m.group(1)) // 4, 16 << 20) if m else -1
            ck.eq(int(m.group(2)) if m else None, want,
                  "basic: the block cache is a quarter of memory_limit, at most 16 MiB (0 under "
                  "the sanitizers)")
            handoff = "off" if os.environ.get("SLUICE_SANITIZED") == "1" else "on"
            ck.check(started and f" chunk_handoff={handoff} " in started[0],
                     f"basic: the start-up line says chunk_handoff={handoff}", started)
            st = es.stats()
            ck.check(st["authorization_basic"] > 0, "basic: requests carried Basic auth", st)
            ck.eq(st["last_authorization"],
                  "Basic " + base64.b64encode(b"elastic:s3cret").decode(),
                  "basic: the header holds the configured user and password")

            os.environ["IT_API_KEY"] = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
            es, _, _ = run_case(ck, procs, mk, wd, "apikey",
                                {"api_key": "${env:IT_API_KEY}"})
            st = es.stats()
            ck.check(st["authorization_apikey"] > 0, "apikey: requests carried ApiKey auth", st)
            ck.eq(st["last_authorization"], "ApiKey " + os.environ["IT_API_KEY"],
                  "apikey: the header holds the key from the environment")

            env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
            env["GLIBC_TUNABLES"] = "glibc.malloc.mmap_threshold=4194304:glibc.malloc.arena_max=1"
            _, sl, _ = run_case(ck, procs, mk, wd, "tunables", env=env)
            ck.check(sl.lines(r"GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304:glibc.malloc.arena_max=1: its malloc settings are used as given"),
                     "tunables: sluice logs that it uses the operator's malloc settings",
                     sl.log_tail(5))
            ck.check(sl.lines(r"started: .* block_cache=0 chunk_handoff=off "),
                     "tunables: sluice's block cache and chunk hand-off are off, glibc serves "
                     "every size", sl.log_tail(5))
            env["SLUICE_BLOCK_CACHE"] = "8M"
            bad = subprocess.run([H.SLUICE_BIN, "-c", sl.config_path], env=env, timeout=30,
                                 capture_output=True, text=True)
            ck.eq(bad.returncode, 2, "SLUICE_BLOCK_CACHE=8M: sluice exits 2")
            ck.check("SLUICE_BLOCK_CACHE=8M: want a number of bytes" in bad.stderr + bad.stdout,
                     "SLUICE_BLOCK_CACHE=8M: the error names the variable and what it wants",
                     (bad.stderr + bad.stdout)[-400:])

            es2 = procs.add(H.EsEmu(workdir=wd))
            d = os.path.join(wd, "gzip")
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es2.url, workdir=d,
                                  group="opt-gzip", compression="gzip")
            sl = procs.add(H.Sluice(cfg, d))
            ck.check(es2.wait_docs(N, 60, label="gzip") >= N, "gzip: all records arrived", sl.log_tail())
            ck.eq(sl.terminate(30), 0, "gzip: exit code")
            st = es2.stats()
            ck.check(st["gzip_requests"] > 0 and st["gzip_requests"] == st["bulk_requests"],
                     "gzip: every bulk request was gzip-encoded", st)
            H.check_every_seq_once(ck, es2.dump(), range(N), "gzip")

            dead = f"http://127.0.0.1:{H.free_port()}"
            es = procs.add(H.EsEmu(workdir=wd))
            es, sl, _ = run_case(ck, procs, mk, wd, "failover", es=es,
                                 es_urls=[dead, es.url])
            ck.check(len(sl.lines(r"failed: .*(Couldn't connect|Connection refused)")) > 0,
                     "failover: the refused first host was logged")
            H.check_every_seq_once(ck, es.dump(), range(N), "failover")

            es3 = procs.add(H.EsEmu(workdir=wd))
            d = os.path.join(wd, "index-noid")
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es3.url, workdir=d,
                                  group="opt-noid", output_extra={"id": "none", "op": "index"})
            sl = procs.add(H.Sluice(cfg, d))
            ck.check(es3.wait_docs(N, 60, label="noid") >= N, "index/none: all records arrived")
            ck.eq(sl.terminate(30), 0, "index/none: exit code")
            docs = es3.dump()
            ck.check(len(docs) == N and all(not d["_id"].startswith("logs-") for d in docs),
                     "index/none: ids were generated by the emulator, not from Kafka")
            ck.eq(es3.stats()["created"], N, "index/none: every document created")

            es4 = procs.add(H.EsEmu(workdir=wd))
            d = os.path.join(wd, "idfield")
            cfg = H.sluice_config(brokers=mk.bootstrap, es_url=es4.url, workdir=d,
                                  group="opt-idfield",
                                  output_extra={"id": "field:trace_id",
                                                "index": "logs-${record.service}"})
            sl = procs.add(H.Sluice(cfg, d))
            ck.check(es4.wait_docs(N, 60, label="idfield") >= N, "id field: all records arrived")
            ck.eq(sl.terminate(30), 0, "id field: exit code")
            docs = es4.dump()
            ck.eq(len(docs), N, "id field: documents in the emulator")
            ck.check(docs and all(d["_id"] == d["_source"]["trace_id"] for d in docs),
                     "id field: _id equals the record's trace_id")
            ck.check(docs and all(d["_index"] == "logs-" + d["_source"]["service"] for d in docs),
                     "index template: ${record.service} chose the index",
                     sorted({d["_index"] for d in docs}))
            ck.check(len({d["_index"] for d in docs}) > 1, "index template: several indices")

            es5 = procs.add(H.EsEmu(workdir=wd))
            es5, sl, _ = run_case(ck, procs, mk, wd, "text", es=es5, fmt="text",
                                  extra_input={"metadata_key": "kafka"})
            docs = es5.dump()
            ok = len(docs) == N
            for d in docs[:500]:
                src = d["_source"]
                inner = json.loads(src["message"])
                p, o = src["kafka"]["partition"], src["kafka"]["offset"]
                ok &= d["_id"] == f"logs-{p}-{o}" and src["kafka"]["topic"] == "logs"
                ok &= inner["seq"] % 4 == p
            ck.check(ok, "text + metadata: payload wrapped as message, coordinates match the id")

            # ---- the CLI
            bad = os.path.join(wd, "bad.yaml")
            with open(bad, "w") as f:
                f.write("service:\n  memry_limit: 16MiB\ninputs:\n  - type: kafka\n"
                        "    brokers: x:1\n    topics: [a]\noutputs:\n"
                        "  - type: elasticsearch\n    concurrency: 100\n")
            r = subprocess.run([H.SLUICE_BIN, "check", "-c", bad], capture_output=True, text=True)
            ck.eq(r.returncode, 2, "check: exit code 2 on a bad file")
            ck.check(f"{bad}:2: unknown key 'memry_limit'" in r.stderr,
                     "check: unknown key reported with its line", r.stderr)
            ck.check(f"{bad}:9: 'concurrency' must be between 1 and 64" in r.stderr,
                     "check: out-of-range value reported with its line", r.stderr)
            r = subprocess.run([H.SLUICE_BIN, "--version"], capture_output=True, text=True)
            ck.check(r.returncode == 0 and r.stdout.startswith("sluice "), "--version", r.stdout)
            r = subprocess.run([H.SLUICE_BIN, "--help"], capture_output=True, text=True)
            ck.check(r.returncode == 0 and "sluice check -c FILE" in r.stdout, "--help", r.stdout)


if __name__ == "__main__":
    sys.exit(main())
