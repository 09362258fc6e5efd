#!/usr/bin/python3
# ctest-labels: real
"""esemu checked against the real thing: the same requests to the project's Elasticsearch emulator
(tests/esemu) and to a real OpenSearch 2.19 node, compared where it matters to sluice.

A. Raw bulk requests, one case per kind of answer (success, 409 on create, a string in a long
   field, a document that is not JSON, a missing index with action.auto_create_index false, a body
   over http.max_content_length, a bad index name, an empty _id, no final newline, gzip, a write
   block, a flood-stage block). Each answer is read by sluice's own parser and classifier, the
   helper `test_bulk_servers classify` (tests/unit/test_bulk_servers.c, linked with sluice_core),
   and the two servers must agree on the HTTP status, every item's status, every item's fate in
   sluice (delivered / retry / dead_letter) and the error types, up to the product names listed
   in NAMING. A non-2xx answer is compared by its status and error type: sluice decides what to
   do with a whole request from its status alone (src/outputs/elasticsearch.c, on_done).
   Differences esemu keeps on purpose are in KNOWN: each must still show exactly as described
   (or be gone), so tests/esemu/README.md stays true.
B. sluice itself, end to end, once against each server with the same Kafka records crafted to hit
   those cases (gzip bodies, batches bigger than the limit, a record bigger than the limit, a 409,
   a mapping error, a missing index, a bad index name): every record must end the same way on
   both (a document, or a dead letter with the same status and error type), with 413 splits
   counted on both."""
import gzip
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import realservers as R  # noqa: E402

CLASSIFY = os.path.join(H.BUILD, "tests", "unit", "test_bulk_servers")
LIMIT = 64 * 1024  # http.max_content_length on both
FILTER = "filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason"

# Error types that differ only by product: Elasticsearch 8 (esemu's identity) -> OpenSearch 2.x.
# Same statuses, so sluice treats them the same; it copies either name into a dead letter.
NAMING = {"document_parsing_exception": "mapper_parsing_exception",
          "es_rejected_execution_exception": "rejected_execution_exception"}


def act(index, id_, src='{"n":1}', op="create"):
    line = {op: {"_index": index}}
    if id_ is not None:
        line[op]["_id"] = id_
    return json.dumps(line) + "\n" + src + "\n"


def setup_common(srv):
    """Indices every case may use, the same on both servers."""
    srv.put("/cmp-map", {"mappings": {"properties": {"n": {"type": "long"}}}})
    srv.put("/cmp-plain", {})
    srv.put("/cmp-blocked", {})


# name, op, number of actions, body (bytes), extra headers, settings before / after
def cases():
    big = act("cmp-plain", "big", '{"m":"%s"}' % ("x" * (LIMIT + 100)))
    yield "success", "create", 2, act("cmp-plain", "s1") + act("cmp-plain", "s2"), {}, None
    yield "409 on create", "create", 2, act("cmp-plain", "c1") + act("cmp-plain", "c1"), {}, None
    yield "409 under op index is an update", "index", 2, \
        act("cmp-plain", "i1", op="index") + act("cmp-plain", "i1", op="index"), {}, None
    yield "string in a long field", "create", 3, \
        act("cmp-map", "m1", '{"n":7}') + act("cmp-map", "m2", '{"n":"abc"}') + \
        act("cmp-map", "m3", '{"n":"12"}'), {}, None
    yield "document not JSON", "create", 3, \
        act("cmp-plain", "j1", '{"n":') + act("cmp-plain", "j2", '[1,2]') + \
        act("cmp-plain", "j3", '{"a":1} x'), {}, None
    yield "missing index, auto-create off", "create", 2, \
        act("cmp-absent", "a1") + act("cmp-plain", "a2"), {}, "no-auto-create"
    yield "body over http.max_content_length", "create", 1, big, {}, None
    yield "gzip body over the limit once inflated", "create", 1, gzip.compress(big.encode()), \
        {"Content-Encoding": "gzip"}, None
    yield "bad index name", "create", 2, act("Cmp-Upper", "b1") + act("cmp-plain", "b2"), {}, None
    yield "bad index name, auto-create off", "create", 2, \
        act("Cmp-Upper", "b3") + act("cmp-plain", "b4"), {}, "no-auto-create"
    yield "auto-create patterns", "create", 3, \
        act("e2e-absent-1", "p1") + act("cmp-made-by-pattern", "p2") + act("Cmp-Upper", "p3"), \
        {}, "auto-create-patterns"
    yield "empty _id", "create", 2, act("cmp-plain", "") + act("cmp-plain", "e2"), {}, None
    yield "no final newline", "create", 1, act("cmp-plain", "nl")[:-1], {}, None
    yield "gzip body", "create", 2, gzip.compress((act("cmp-plain", "g1") + act("cmp-plain", "g2"))
                                                 .encode()), {"Content-Encoding": "gzip"}, None
    yield "write block", "create", 2, act("cmp-blocked", "w1") + act("cmp-plain", "w2"), {}, "block"
    yield "flood-stage block", "create", 1, act("cmp-blocked", "f1"), {}, "flood"


# Differences esemu keeps (tests/esemu/README.md): case -> (what, esemu's verdict). Each is
# checked to look exactly like this, so the README cannot go stale unnoticed.
KNOWN = {
    "_id longer than 512 bytes": (
        "OpenSearch refuses the whole request (400 action_request_validation_exception, so "
        "sluice dead-letters every record of the batch); esemu refuses only that item",
        ("items", (("400", "action_request_validation_exception", "dead_letter"),
                   ("201", None, "delivered")))),
    "string in a field a first document made long": (
        "OpenSearch maps fields dynamically; esemu has no dynamic mapping and stores the document",
        ("items", (("201", None, "delivered"), ("201", None, "delivered")))),
}


def known_cases():
    yield "_id longer than 512 bytes", "create", 2, \
        act("cmp-plain", "x" * 513) + act("cmp-plain", "k2"), {}, None
    yield "string in a field a first document made long", "create", 2, \
        act("cmp-dyn", "d1", '{"n":5}') + act("cmp-dyn", "d2", '{"n":"abc"}'), {}, None


class Server:
    def __init__(self, name, port):
        self.name, self.port = name, port

    def raw(self, method, path, body=None, headers=None):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        h = dict(headers or {})
        if body is not None:
            h.setdefault("Content-Type", "application/x-ndjson")
            if isinstance(body, str):
                body = body.encode()
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def put(self, path, obj):
        st, data = self.raw("PUT", path, json.dumps(obj), {"Content-Type": "application/json"})
        if st != 200:
            raise RuntimeError(f"{self.name}: PUT {path} -> {st} {data[:300]!r}")
        return json.loads(data)

    def settings(self, what, on):
        if what == "no-auto-create":
            self.put("/_cluster/settings",
                     {"persistent": {"action.auto_create_index": False if on else None}})
        elif what == "auto-create-patterns":
            # the first pattern that matches decides
            self.put("/_cluster/settings", {"transient": {"action": {
                "auto_create_index": "-e2e-absent*,+*" if on else None}}})
        elif what == "block":
            self.put("/cmp-blocked/_settings", {"index.blocks.write": True if on else None})
        elif what == "flood":
            self.put("/cmp-blocked/_settings",
                     {"index.blocks.read_only_allow_delete": True if on else None})


def classify(op, n, status, body):
    r = subprocess.run([CLASSIFY, "classify", op, str(n)], input=b"%d\n" % status + body,
                       capture_output=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"classify helper exited {r.returncode}: {r.stderr[-500:]!r}")
    return json.loads(r.stdout)


def verdict(c, rename=False):
    """What sluice makes of an answer, comparable across servers."""
    def t(x):
        return NAMING.get(x, x) if rename and x else x
    if "items" in c:
        return ("items", tuple((str(i["status"]), t(i["type"]), i["class"]) for i in c["items"]))
    if "parsed" in c:
        return ("unparsable", c["http"])
    return ("whole", c["http"], t(c["error_type"]))


def part_a(ck, emu, osn_srv, report):
    for srv in (emu, osn_srv):
        setup_common(srv)
    for name, op, n, body, hdrs, setting in list(cases()) + list(known_cases()):
        got = {}
        for srv in (emu, osn_srv):
            if setting:
                srv.settings(setting, True)
            try:
                st, data = srv.raw("POST", f"/_bulk?{FILTER}", body, hdrs)
            finally:
                if setting:
                    srv.settings(setting, False)
            got[srv.name] = (st, data, classify(op, n, st, data))
        (e_st, e_body, e_c), (o_st, o_body, o_c) = got["esemu"], got["opensearch"]
        ve, vo = verdict(e_c, rename=True), verdict(o_c)
        line = f"{name}: esemu {verdict(e_c)} / opensearch {vo}"
        report.append(line)
        H.log(line)
        if name in KNOWN:
            what, esemu_v = KNOWN[name]
            ck.check(ve == vo or verdict(e_c) == esemu_v,
                     f"A known difference '{name}' is as documented ({what})",
                     f"esemu {verdict(e_c)}, opensearch {vo}")
            continue
        ck.eq(e_st, o_st, f"A {name}: HTTP status")
        if "items" in e_c and "items" in o_c:
            ck.eq([i["status"] for i in e_c["items"]], [i["status"] for i in o_c["items"]],
                  f"A {name}: item statuses")
            ck.eq([i["class"] for i in e_c["items"]], [i["class"] for i in o_c["items"]],
                  f"A {name}: sluice's fate of each item")
        ck.eq(ve, vo, f"A {name}: sluice reads the same answer from both (types up to NAMING)")


# ------------------------------------------------------------------------------------------ B

def e2e_records():
    """(case, record) in log order: all on partition 0, so offset = position. Indices are
    created up front, and action.auto_create_index refuses e2e-absent* but lets any other name
    be tried (so E2E-Upper is refused for its name)."""
    out = []
    for i in range(2000):
        out.append(("ok", {"seq": len(out), "idx": "e2e-ok", "m": "line %d %s" % (i, "y" * 200)}))
    for i in range(40):
        out.append(("dup", {"seq": len(out), "idx": "e2e-dup"}))
    for i in range(30):
        out.append(("mapping", {"seq": len(out), "idx": "e2e-map", "n": "bad-%d" % i}))
        out.append(("mapping-ok", {"seq": len(out) + 0, "idx": "e2e-map", "n": i}))
    for i in range(10):
        out.append(("absent", {"seq": len(out), "idx": "e2e-absent"}))
    for i in range(10):
        out.append(("badname", {"seq": len(out), "idx": "E2E-Upper"}))
    out.append(("big", {"seq": len(out), "idx": "e2e-ok", "m": "z" * (LIMIT + 1000)}))
    for i in range(500):
        out.append(("ok", {"seq": len(out), "idx": "e2e-ok", "m": "tail %d" % i}))
    for k, (case, r) in enumerate(out):
        r["seq"] = k
        r["case"] = case
    return out


def e2e_setup(srv, topic, recs):
    srv.put("/e2e-ok", {})
    srv.put("/e2e-map", {"mappings": {"properties": {"n": {"type": "long"}}}})
    srv.put("/e2e-dup", {})
    # the documents sluice will try to create already exist: 409, delivered, left as they are
    body = "".join(act("e2e-dup", f"{topic}-0-{k}", '{"pre":true}')
                   for k, (case, _) in enumerate(recs) if case == "dup")
    st, data = srv.raw("POST", "/_bulk?refresh=true", body)
    if st != 200 or b'"errors":true' in data:
        raise RuntimeError(f"{srv.name}: pre-creating e2e-dup: {st} {data[:300]!r}")
    srv.settings("auto-create-patterns", True)


def e2e_fates(docs_by_index, dls, topic):
    """offset -> ("doc", index) or ("dead_letter", status, error type as OpenSearch names it)."""
    fates = {}
    for index, ids in docs_by_index.items():
        for i in ids:
            pre, _, off = i.rpartition("-")
            if pre == f"{topic}-0":
                fates.setdefault(int(off), []).append(("doc", index))
    for d in dls:
        s = d.get("source") or {}
        et = d.get("error_type")
        fates.setdefault(s.get("offset"), []).append(
            ("dead_letter", d.get("status"), NAMING.get(et, et)))
    return fates


def run_e2e(ck, procs, wd, kafka, url, topic, label):
    swd = os.path.join(wd, f"e2e-{label}")
    os.makedirs(swd, exist_ok=True)
    cfg = R.sluice_config(swd, kafka.bootstrap, url, group=f"cmp-{label}", topics=(topic,),
                          out={"index": "${record.idx}", "compression": "gzip",
                               "batch_max_bytes": "256KiB", "batch_max_wait": "100ms",
                               "retry_base": "50ms", "retry_max": "1s"})
    sl = procs.add(H.Sluice(cfg, swd))
    ok, com, highs = R.wait_committed(kafka, f"cmp-{label}", topic, 1, timeout_s=90)
    ck.check(ok, f"B {label}: the group's committed offsets reach the high watermark",
             f"committed {com}, high {highs}")
    rt = {lab.get("reason"): v for lab, v in sl.metrics("sluice_output_retries_total")}
    ck.eq(sl.terminate(), 0, f"B {label}: sluice exit code")
    fs = H.check_conservation(ck, sl.final_stats(), label=f"B {label}: ")
    return rt, fs, H.dead_letters(os.path.join(swd, "dead-letter"))


def part_b(ck, procs, wd, kafka, emu, emu_srv, osn, osn_srv, report):
    topic = "cases"
    kafka.create_topic(topic, 1)
    recs = e2e_records()
    R.produce(kafka.bootstrap, topic, [json.dumps(r, separators=(",", ":")) for _, r in recs],
              partitions=lambda i: 0)
    ck.eq(len(R.log_offsets(kafka, topic, 1)), len(recs), "B records in the Kafka log")
    want = {"ok": "doc", "dup": "doc", "mapping-ok": "doc", "mapping": 400, "absent": 404,
            "badname": 400, "big": 413}
    results = {}
    for label, srv, url in (("esemu", emu_srv, emu.url), ("opensearch", osn_srv, osn.url)):
        e2e_setup(srv, topic, recs)
        rt, fs, dls = run_e2e(ck, procs, wd, kafka, url, topic, label)
        if label == "esemu":
            docs = {}
            for d in emu.dump():
                docs.setdefault(d["_index"], []).append(d["_id"])
            dup_src = [d["_source"] for d in emu.dump() if d["_index"] == "e2e-dup"]
        else:
            osn.refresh()
            docs = {ix: [d["_id"] for d in osn.scan(ix, source=False)]
                    for ix in ("e2e-ok", "e2e-map", "e2e-dup")}
            dup_src = [d["_source"] for d in osn.scan("e2e-dup")]
        srv.settings("auto-create-patterns", False)
        fates = e2e_fates(docs, dls, topic)
        results[label] = fates
        wrong = []
        for k, (case, _) in enumerate(recs):
            f = fates.get(k, [])
            w = want[case]
            if len(f) != 1 or (w == "doc" and f[0][0] != "doc") or \
                    (w != "doc" and (f[0][0] != "dead_letter" or f[0][1] != w)):
                wrong.append((k, case, f))
        ck.check(not wrong, f"B {label}: every record ended as its case says (documents for ok, "
                 "409 and good numbers; dead letters 400/404/400/413 for the others)", wrong[:5])
        ck.check(all(s == {"pre": True} for s in dup_src) and len(dup_src) == 40,
                 f"B {label}: the 409s left the existing documents as they were")
        ck.check(rt.get("split_413", 0) > 0,
                 f"B {label}: requests over the limit were split (split_413={rt.get('split_413')})")
        if fs:
            n_dl = sum(1 for c, _ in recs if want[c] != "doc")
            ck.eq((fs["delivered"], fs["dead_lettered"]), (len(recs) - n_dl, n_dl),
                  f"B {label}: sluice's delivered and dead-lettered counts")
        types = {}
        for d in dls:
            types.setdefault((d.get("status"), d.get("error_type")), 0)
            types[(d.get("status"), d.get("error_type"))] += 1
        line = f"B {label}: dead letters by (status, error type) {types}; retries {rt}"
        report.append(line)
        H.log(line)
    same = results.get("esemu") == results.get("opensearch")
    diff = [(k, results["esemu"].get(k), results["opensearch"].get(k)) for k in range(len(recs))
            if results["esemu"].get(k) != results["opensearch"].get(k)] if not same else []
    ck.check(same, "B every record ends the same way through sluice on esemu and on OpenSearch "
             "(error types up to NAMING)", diff[:5])


def main():
    ck = H.Checker("test_real_esemu")
    H.require_binaries(H.SLUICE_BIN, H.ESEMU_BIN, CLASSIFY)
    report = []
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir("real-esemu-")
            kafka = procs.add(R.KafkaServer(os.path.join(wd, "kafka")))
            osn = procs.add(R.OpenSearch(os.path.join(wd, "opensearch"),
                                         settings={"http.max_content_length": f"{LIMIT}b"}))
            ver = osn.version()
            os.makedirs(os.path.join(wd, "esemu"))
            emu = procs.add(H.EsEmu(workdir=os.path.join(wd, "esemu"),
                                    extra=["--max-content-length", str(LIMIT)]))
            H.log(f"OpenSearch {ver['number']} ({ver['distribution']}) and esemu, both with "
                  f"http.max_content_length {LIMIT}")
            emu_srv, osn_srv = Server("esemu", emu.port), Server("opensearch", osn.port)
            part_a(ck, emu_srv, osn_srv, report)
            part_b(ck, procs, wd, kafka, emu, emu_srv, osn, osn_srv, report)
            osn.rss_kb()
            kafka.rss_kb()
            H.log("servers: " + R.server_rss_report(kafka, osn))


if __name__ == "__main__":
    main()
