#!/usr/bin/python3
# ctest-labels: asan
"""Integration tests for tests/esemu, the Elasticsearch Bulk-API emulator.

The independent Debian client (python3-elasticsearch) checks that the emulator looks like
Elasticsearch to a real client; raw http.client and sockets check the wire-level behaviour and the
fault injection that sluice's tests rely on. Prints "N passed, N failed" and exits non-zero on any
failure."""
import gzip
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BUILD = os.environ.get("SLUICE_BUILD") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build")
ESEMU = os.path.join(BUILD, "tests", "esemu", "esemu")
NDJSON = "application/x-ndjson"


class Emu:
    def __init__(self, *args):
        self.tmp = tempfile.mkdtemp(prefix="esemu-test-")
        self.port_file = os.path.join(self.tmp, "ports")
        self.proc = subprocess.Popen([ESEMU, "--port-file", self.port_file, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.line = self.proc.stdout.readline().strip()
        m = re.fullmatch(r"esemu listening on 127\.0\.0\.1:(\d+) control 127\.0\.0\.1:(\d+)", self.line)
        if not m:
            self.proc.kill()
            raise RuntimeError("unexpected startup line: %r" % self.line)
        self.dp, self.cp = int(m.group(1)), int(m.group(2))

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self.proc.stdout.close()
            self.proc.stderr.close()
            for f in os.listdir(self.tmp):
                os.unlink(os.path.join(self.tmp, f))
            os.rmdir(self.tmp)


def request(port, method, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, r, data
    finally:
        conn.close()


def rjson(port, method, path, body=None, headers=None):
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        headers = dict(headers or {}, **{"Content-Type": "application/json"})
    st, _, data = request(port, method, path, body, headers)
    return st, json.loads(data) if data else None


def bulk(port, lines, path="/_bulk", ctype=NDJSON, raw=None):
    """lines: list of dicts or strings; returns (status, parsed body or raw bytes)."""
    if raw is None:
        raw = "".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines).encode()
    st, r, data = request(port, "POST", path, raw, {"Content-Type": ctype} if ctype else {})
    try:
        return st, json.loads(data)
    except ValueError:
        return st, data


def ctl(emu, method, path, body=None):
    return rjson(emu.cp, method, path, body)


def stats(emu):
    return ctl(emu, "GET", "/_emu/stats")[1]


def faults(emu, cfg):
    st, b = ctl(emu, "POST", "/_emu/faults", cfg)
    assert st == 200, (st, b)


def reset(emu):
    assert ctl(emu, "POST", "/_emu/reset")[0] == 200
    faults(emu, {})


def create(index, id_, doc=None):
    head = {"create": {"_index": index}}
    if id_ is not None:
        head["create"]["_id"] = id_
    return [head, doc or {"msg": "hello", "n": 1}]


def items_of(body):
    return [list(i.values())[0] for i in body["items"]]


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


E = None  # the main instance


@test
def startup_line_and_port_file():
    with open(E.port_file) as f:
        assert f.read() == "%d %d\n" % (E.dp, E.cp)
    st, r, data = request(E.dp, "GET", "/")
    assert st == 200 and r.getheader("X-Elastic-Product") == "Elasticsearch"
    assert r.getheader("Content-Type").startswith("application/json")
    info = json.loads(data)
    assert info["version"]["number"] == "8.11.0" and info["tagline"] == "You Know, for Search"
    st, r, data = request(E.dp, "HEAD", "/")
    assert st == 200 and data == b""
    st, h = rjson(E.dp, "GET", "/_cluster/health")
    assert st == 200 and h["status"] in ("green", "yellow") and h["number_of_nodes"] == 1


@test
def es_client_info_bulk_count_search_conflict():
    from elasticsearch import Elasticsearch, helpers
    es = Elasticsearch(["http://127.0.0.1:%d" % E.dp])
    assert es.info()["version"]["number"] == "8.11.0"
    actions = [{"_op_type": "create", "_index": "logs-client", "_id": "id-%d" % i,
                "_source": {"msg": "m%d" % i, "n": i}} for i in range(50)]
    ok, errs = helpers.bulk(es, actions)
    assert ok == 50 and errs == []
    assert es.count(index="logs-client")["count"] == 50
    assert es.count(index="logs-*")["count"] == 50
    res = es.search(index="logs-client", query={"match_all": {}}, size=5)
    assert res["hits"]["total"]["value"] == 50 and len(res["hits"]["hits"]) == 5
    res = es.search(index="logs-client", query={"term": {"_id": "id-7"}})
    hits = res["hits"]["hits"]
    assert len(hits) == 1 and hits[0]["_id"] == "id-7" and hits[0]["_source"] == {"msg": "m7", "n": 7}
    res = es.search(index="logs-client", query={"ids": {"values": ["id-1", "id-2", "nope"]}})
    assert sorted(h["_id"] for h in res["hits"]["hits"]) == ["id-1", "id-2"]
    ok, errs = helpers.bulk(es, actions[:3], raise_on_error=False)
    assert ok == 0 and len(errs) == 3
    e = errs[0]["create"]
    assert e["status"] == 409 and e["error"]["type"] == "version_conflict_engine_exception"
    assert "document already exists (current version [1])" in e["error"]["reason"]


@test
def index_create_delete_semantics():
    st, b = bulk(E.dp, [{"index": {"_index": "sem", "_id": "a"}}, {"v": 1},
                        {"index": {"_index": "sem", "_id": "a"}}, {"v": 2},
                        {"create": {"_index": "sem", "_id": "a"}}, {"v": 3},
                        {"delete": {"_index": "sem", "_id": "a"}},
                        {"delete": {"_index": "sem", "_id": "a"}},
                        {"index": {"_index": "sem"}}, {"v": 4},
                        {"update": {"_index": "sem", "_id": "u"}}, {"doc": {"v": 5}}])
    assert st == 200 and b["errors"] is True
    it = items_of(b)
    assert [i["status"] for i in it] == [201, 200, 409, 200, 404, 201, 400]
    assert [i.get("result") for i in it[:6]] == ["created", "updated", None, "deleted", "not_found", "created"]
    assert it[1]["_version"] == 2 and it[3]["_version"] == 3
    for i in it[:2]:
        assert i["_shards"] == {"total": 2, "successful": 1, "failed": 0} and i["_primary_term"] == 1
        assert isinstance(i["_seq_no"], int)
    assert re.fullmatch(r"[A-Za-z0-9_-]{20}", it[5]["_id"])
    assert "not supported by the emulator" in it[6]["error"]["reason"]
    assert list(b["items"][6].keys()) == ["update"]
    assert rjson(E.dp, "GET", "/sem/_count")[1]["count"] == 1
    # the path index applies when the action has none; an action's own _index wins
    st, b = bulk(E.dp, [{"create": {"_id": "p1"}}, {"x": 1}, {"create": {"_index": "other", "_id": "p2"}}, {"x": 2}],
                 path="/pathidx/_bulk")
    assert [i["_index"] for i in items_of(b)] == ["pathidx", "other"]
    st, b = bulk(E.dp, [{"create": {"_id": "p1"}}, {"x": 1}])
    i = items_of(b)[0]
    assert i["status"] == 400 and i["error"]["type"] == "action_request_validation_exception"
    assert "index is missing" in i["error"]["reason"]


@test
def missing_trailing_newline_400():
    before = stats(E)["missing_trailing_newline"]
    st, b = bulk(E.dp, None, raw=b'{"create":{"_index":"nl","_id":"1"}}\n{"a":1}')
    assert st == 400 and b["error"]["type"] == "illegal_argument_exception"
    assert b["error"]["reason"] == "The bulk request must be terminated by a newline [\\n]"
    assert b["status"] == 400
    assert stats(E)["missing_trailing_newline"] == before + 1
    st, b = bulk(E.dp, None, raw=b'{"create":{"_index":"nl","_id":"1"}}\r\n{"a":1}\r\n')
    assert st == 200 and items_of(b)[0]["status"] == 201


@test
def content_type_406():
    for ct in ("text/plain", None, "application/xml"):
        st, b = bulk(E.dp, create("ct", "1"), ctype=ct)
        assert st == 406, (ct, st)
        assert b["status"] == 406 and "is not supported" in b["error"]
    for ct in ("application/json", "application/json; charset=UTF-8",
               "application/vnd.elasticsearch+x-ndjson; compatible-with=8"):
        st, b = bulk(E.dp, create("ct", ct), ctype=ct)
        assert st == 200 and items_of(b)[0]["status"] == 201, (ct, b)
    assert stats(E)["content_types"].get("text/plain", 0) >= 1


@test
def malformed_action_lines_400():
    cases = [
        (b'{"foo":{"_index":"x"}}\n{}\n', r"line \[1\].*\[foo\]"),
        (b'{"create":{"_index":"x","_id":"1"}}\n{}\n{"index":{}, "delete":{}}\n{}\n', r"line \[3\]"),
        (b'[1]\n{}\n', r"line \[1\].*START_OBJECT"),
        (b'{"create":"x"}\n{}\n', r"line \[1\]"),
        (b'{"create":{"_index":"x","bogus":1}}\n{}\n', r"line \[1\].*unknown parameter \[bogus\]"),
        (b'{}\n', r"line \[1\]"),
    ]
    for raw, pat in cases:
        st, b = bulk(E.dp, None, raw=raw)
        assert st == 400, raw
        assert b["error"]["type"] == "illegal_argument_exception", b
        assert re.search(pat, b["error"]["reason"]), (pat, b["error"]["reason"])
    st, b = bulk(E.dp, None, raw=b'{"create":{"_index":"x",}}\n{}\n')
    assert st == 400 and b["error"]["type"] == "x_content_parse_exception"
    assert re.match(r"\[1:\d+\] ", b["error"]["reason"])
    # nothing from a rejected request is stored
    st, c = rjson(E.dp, "GET", "/x/_count")
    assert st == 404 or c["count"] == 0


@test
def source_json_validation():
    bad = [b'{"a":1,}', b'{"a":tru}', b'{"a":"x\x01y"}', b'{"a":"\xc3\x28"}', b'{"a":"\xed\xa0\x80"}',
           b'{"a":1} x', b'[1,2]', b'"str"', b'{"a":01}', b'{"a":"\\q"}', b'', b'{"a":1']
    good = [b'{"a":"\\ud83d\\ude00","b":-0.5e+3,"c":[],"d":{},"e":null,"f":true}',
            '{"u":"é😀 ok"}'.encode(), b' {"sp":1} ']
    body = b""
    for i, src in enumerate(bad + good):
        body += b'{"create":{"_index":"src","_id":"%d"}}\n' % i + src + b"\n"
    st, b = bulk(E.dp, None, raw=body)
    assert st == 200 and b["errors"] is True
    it = items_of(b)
    for i in range(len(bad)):
        assert it[i]["status"] == 400, (bad[i], it[i])
        assert it[i]["error"]["type"] == "document_parsing_exception"
        assert re.match(r"^\[1:\d+\] failed to parse", it[i]["error"]["reason"]), it[i]["error"]["reason"]
    assert "[1:8] failed to parse" in it[0]["error"]["reason"]  # the '}' after the comma
    for i in range(len(bad), len(bad) + len(good)):
        assert it[i]["status"] == 201, (i, it[i])
    st, r = rjson(E.dp, "POST", "/src/_search", {"query": {"term": {"_id": str(len(bad) + 1)}}})
    assert r["hits"]["hits"][0]["_source"] == {"u": "é😀 ok"}


@test
def id_length_and_index_names():
    st, b = bulk(E.dp, create("ids", "x" * 513) + create("ids", "y" * 512) + create("ids", ""))
    it = items_of(b)
    assert it[0]["status"] == 400 and it[0]["error"]["type"] == "action_request_validation_exception"
    assert "must be no longer than 512 bytes but was: 513" in it[0]["error"]["reason"]
    assert it[1]["status"] == 201 and it[2]["status"] == 400
    bad = ["Upper", "_x", "-x", "+x", "a b", "a*b", "a,b", "a#b", "a/b", "a?b", 'a"b', "a<b", "a|b",
           ".", "..", "a:b", "a" * 256]
    good = ["logs-2024.01.01", "a" * 255, ".hidden", "x_y+z"]
    lines = []
    for n in bad + good:
        lines += create(n, "1")
    st, b = bulk(E.dp, lines)
    it = items_of(b)
    for i, n in enumerate(bad):
        assert it[i]["status"] == 400 and it[i]["error"]["type"] == "invalid_index_name_exception", (n, it[i])
        assert it[i]["error"]["index"] == n
    for i in range(len(bad), len(bad) + len(good)):
        assert it[i]["status"] == 201, it[i]


@test
def gzip_and_chunked_bodies():
    before = stats(E)
    lines = create("gz", "1") + create("gz", "2")
    raw = "".join(json.dumps(l) + "\n" for l in lines).encode()
    # two concatenated gzip members, as RFC 1952 allows
    body = gzip.compress(raw[:20]) + gzip.compress(raw[20:])
    st, r, data = request(E.dp, "POST", "/_bulk", body, {"Content-Type": NDJSON, "Content-Encoding": "gzip"})
    b = json.loads(data)
    assert st == 200 and [i["status"] for i in items_of(b)] == [201, 201], b
    after = stats(E)
    assert after["gzip_requests"] == before["gzip_requests"] + 1
    assert after["bytes_in_decompressed"] - before["bytes_in_decompressed"] == len(raw)
    st, r, data = request(E.dp, "POST", "/_bulk", b"\x1f\x8bgarbage", {"Content-Type": NDJSON, "Content-Encoding": "gzip"})
    assert st == 400
    conn = http.client.HTTPConnection("127.0.0.1", E.dp, timeout=5)
    chunks = iter([b'{"create":{"_index":"gz","_id":"3"}}\n', b'{"a"', b':1}\n'])
    conn.request("POST", "/_bulk", body=chunks, headers={"Content-Type": NDJSON}, encode_chunked=True)
    r = conn.getresponse()
    b = json.loads(r.read())
    assert r.status == 200 and items_of(b)[0]["status"] == 201
    conn.close()


@test
def expect_100_continue():
    before = stats(E)["expect_100_continue"]
    body = b'{"create":{"_index":"exp","_id":"1"}}\n{"a":1}\n'
    s = socket.create_connection(("127.0.0.1", E.dp), timeout=5)
    s.sendall(b"POST /_bulk HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
              b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
    first = s.recv(100)
    assert first == b"HTTP/1.1 100 Continue\r\n\r\n", first
    s.sendall(body)
    resp = b""
    while b"\r\n\r\n" not in resp or not resp.endswith(b"}}]}"):
        chunk = s.recv(65536)
        if not chunk:
            break
        resp += chunk
    s.close()
    assert resp.startswith(b"HTTP/1.1 200 "), resp[:100]
    assert stats(E)["expect_100_continue"] == before + 1


@test
def max_content_length_413():
    small = Emu("--max-content-length", "1000")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", small.dp, timeout=5)
        ok = b'{"create":{"_index":"m","_id":"1"}}\n{"a":"' + b"x" * 800 + b'"}\n'
        big = b'{"create":{"_index":"m","_id":"2"}}\n{"a":"' + b"x" * 1900 + b'"}\n'
        conn.request("POST", "/_bulk", body=big, headers={"Content-Type": NDJSON})
        r = conn.getresponse()
        r.read()
        assert r.status == 413
        # the connection survives the 413: the body was drained, not left in the stream
        conn.request("POST", "/_bulk", body=ok, headers={"Content-Type": NDJSON})
        r = conn.getresponse()
        assert r.status == 200 and items_of(json.loads(r.read()))[0]["status"] == 201
        # the limit applies to the decompressed body
        gz = gzip.compress(big)
        assert len(gz) < 1000
        conn.request("POST", "/_bulk", body=gz, headers={"Content-Type": NDJSON, "Content-Encoding": "gzip"})
        r = conn.getresponse()
        r.read()
        assert r.status == 413
        conn.close()
        st = stats(small)
        assert st["status_413"] == 2 and st["docs"] == 1
    finally:
        assert small.stop() == 0


@test
def filter_path_shapes():
    reset(E)
    lines = create("fp", "1") + create("fp", "1") + create("fp", "2")
    st, b = bulk(E.dp, lines, path="/_bulk?filter_path=took,errors,items.*.status,items.*.error.type,items.*.error.reason,items.*._id")
    assert set(b.keys()) == {"took", "errors", "items"} and b["errors"] is True
    assert b["items"][0] == {"create": {"_id": "1", "status": 201}}
    assert set(b["items"][1]["create"].keys()) == {"_id", "status", "error"}
    assert set(b["items"][1]["create"]["error"].keys()) == {"type", "reason"}
    # ES quirk: items.*.error drops the items without an error, so positions are lost
    st, b = bulk(E.dp, create("fp", "2") + create("fp", "3"), path="/_bulk?filter_path=items.*.error")
    assert list(b.keys()) == ["items"] and len(b["items"]) == 1
    assert b["items"][0]["create"]["error"]["type"] == "version_conflict_engine_exception"
    st, b = bulk(E.dp, create("fp", "4"), path="/_bulk?filter_path=items.*.error")
    assert b == {}
    st, b = bulk(E.dp, create("fp", "5"), path="/_bulk?filter_path=errors")
    assert b == {"errors": False}
    st, b = bulk(E.dp, create("fp", "6"), path="/_bulk?filter_path=items.create._shards")
    assert b == {"items": [{"create": {"_shards": {"total": 2, "successful": 1, "failed": 0}}}]}
    st, b = bulk(E.dp, create("fp", "7"), path="/_bulk?filter_path=**.status")
    assert b == {"items": [{"create": {"status": 201}}]}
    # unsupported expression: the full body comes back
    st, b = bulk(E.dp, create("fp", "8"), path="/_bulk?filter_path=-took")
    assert "took" in b and items_of(b)[0]["result"] == "created"


@test
def count_search_refresh_delete_routes():
    reset(E)
    bulk(E.dp, create("cnt-a", "1") + create("cnt-a", "2") + create("cnt-b", "1") + create("zzz", "1"))
    assert rjson(E.dp, "GET", "/cnt-*/_count")[1]["count"] == 3
    assert rjson(E.dp, "POST", "/cnt-a,zzz/_count")[1]["count"] == 3
    assert rjson(E.dp, "GET", "/_count")[1]["count"] == 4
    assert rjson(E.dp, "GET", "/nomatch-*/_count")[1]["count"] == 0
    st, b = rjson(E.dp, "GET", "/missing/_count")
    assert st == 404 and b["error"]["type"] == "index_not_found_exception"
    st, b = rjson(E.dp, "POST", "/cnt-*/_search?size=2&from=1", {"query": {"match_all": {}}})
    assert b["hits"]["total"]["value"] == 3 and len(b["hits"]["hits"]) == 2
    st, b = rjson(E.dp, "POST", "/cnt-*/_count", {"query": {"term": {"_id": "1"}}})
    assert b["count"] == 2
    st, b = rjson(E.dp, "POST", "/cnt-a/_search", {"query": {"match": {"x": 1}}})
    assert st == 400
    st, b = rjson(E.dp, "POST", "/cnt-a/_refresh")
    assert st == 200 and "_shards" in b
    st, b = rjson(E.dp, "DELETE", "/cnt-a")
    assert st == 200 and b == {"acknowledged": True}
    st, b = rjson(E.dp, "DELETE", "/cnt-a")
    assert st == 404 and b["error"]["type"] == "index_not_found_exception"
    assert rjson(E.dp, "GET", "/_count")[1]["count"] == 2
    st, b = rjson(E.dp, "GET", "/no/such/route/here")
    assert st in (400, 404) and "error" in b
    st, b = rjson(E.dp, "GET", "/_bulk")
    assert st == 405 and "error" in b


@test
def fault_request_status():
    reset(E)
    faults(E, {"request_status": 429, "request_count": 2})
    for _ in range(2):
        st, b = bulk(E.dp, create("rf", "1"))
        assert st == 429 and b["error"]["type"] == "es_rejected_execution_exception"
        assert b["error"]["reason"].startswith("rejected execution of coordinating operation")
    st, b = bulk(E.dp, create("rf", "1"))
    assert st == 200 and items_of(b)[0]["status"] == 201
    faults(E, {"request_status": 503, "request_count": -1})
    for _ in range(3):
        st, b = bulk(E.dp, create("rf", "2"))
        assert st == 503 and b["error"]["type"] in ("unavailable_shards_exception", "cluster_block_exception")
    faults(E, {"request_status": 413, "request_count": 1})
    st, r, data = request(E.dp, "POST", "/_bulk", b'{"create":{"_index":"rf","_id":"3"}}\n{}\n', {"Content-Type": NDJSON})
    assert st == 413
    faults(E, {})
    s = stats(E)
    assert s["injected_request_errors"] == 6 and s["docs"] == 1


@test
def fault_item_retryable():
    reset(E)
    faults(E, {"item_retryable_rate": 1.0})
    st, b = bulk(E.dp, create("ir", "1") + create("ir", "2"))
    assert st == 200 and b["errors"] is True
    for i in items_of(b):
        assert i["status"] == 429 and i["error"]["type"] == "es_rejected_execution_exception"
    faults(E, {"item_retryable_rate": 0.5, "item_retryable_status": 503})
    pending = ["d%d" % i for i in range(200)]
    rounds, first_failed = 0, None
    while pending and rounds < 30:
        lines = []
        for d in pending:
            lines += create("ir", d)
        st, b = bulk(E.dp, lines)
        failed = []
        for d, i in zip(pending, items_of(b)):
            if i["status"] == 503:
                assert i["error"]["type"] == "unavailable_shards_exception"
                failed.append(d)
            else:
                assert i["status"] == 201, i
        if first_failed is None:
            first_failed = len(failed)
        pending, rounds = failed, rounds + 1
    assert pending == [] and 50 < first_failed < 150, (pending, first_failed)
    faults(E, {})
    s = stats(E)
    assert s["docs"] == 200 and s["injected_item_errors"] >= first_failed + 2


@test
def fault_item_permanent():
    reset(E)
    faults(E, {"item_permanent_rate": 0.3})
    lines = []
    for i in range(100):
        lines += create("ip", "p%d" % i, {"level": "WARN", "n": i})
    st, b = bulk(E.dp, lines)
    failed1 = {i["_id"] for i in items_of(b) if i["status"] == 400}
    assert 10 < len(failed1) < 50, len(failed1)
    one = next(i for i in items_of(b) if i["status"] == 400)
    assert one["error"]["type"] == "mapper_parsing_exception"
    assert re.search(r"failed to parse field \[level\] of type \[long\] in document with id '%s'" % one["_id"],
                     one["error"]["reason"])
    st, b = bulk(E.dp, lines)
    failed2 = {i["_id"] for i in items_of(b) if i["status"] == 400}
    assert failed1 == failed2
    assert all(i["status"] == 409 for i in items_of(b) if i["_id"] not in failed1)
    faults(E, {})
    assert stats(E)["permanent_item_errors"] == 2 * len(failed1)


@test
def fault_stall_and_delay():
    reset(E)
    faults(E, {"stall_ms": 800})
    t0 = time.monotonic()
    result = {}

    def send():
        result["r"] = bulk(E.dp, create("st", "1"))
        result["t"] = time.monotonic() - t0

    th = threading.Thread(target=send)
    th.start()
    time.sleep(0.25)
    s = stats(E)  # the control port answers during the stall
    assert s["stalled_now"] == 1 and s["docs"] == 0, s
    t1 = time.monotonic()
    assert request(E.dp, "GET", "/")[0] == 200  # and so do other data connections
    assert time.monotonic() - t1 < 0.3
    th.join(5)
    assert 0.7 < result["t"] < 2.5, result
    assert result["r"][0] == 200 and items_of(result["r"][1])[0]["status"] == 201
    faults(E, {"delay_ms": 300})
    t0 = time.monotonic()
    st, b = bulk(E.dp, create("st", "2"))
    assert st == 200 and time.monotonic() - t0 >= 0.28
    t0 = time.monotonic()
    assert request(E.dp, "GET", "/")[0] == 200 and time.monotonic() - t0 < 0.25
    faults(E, {})


def raw_exchange(port, body):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"POST /_bulk HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    data, err = b"", None
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
    except ConnectionResetError as e:
        err = e
    s.close()
    return data, err


@test
def fault_resets_and_truncation():
    reset(E)
    body = b'{"create":{"_index":"rs","_id":"1"}}\n{"a":1}\n'
    faults(E, {"reset_after_write_count": 1})
    data, err = raw_exchange(E.dp, body)
    assert data == b"" and isinstance(err, ConnectionResetError)
    assert rjson(E.dp, "GET", "/rs/_count")[1]["count"] == 1  # stored although never acknowledged
    faults(E, {"reset_before_write_count": 1})
    data, err = raw_exchange(E.dp, body.replace(b'"1"', b'"2"'))
    assert data == b"" and isinstance(err, ConnectionResetError)
    assert rjson(E.dp, "GET", "/rs/_count")[1]["count"] == 1  # not stored
    faults(E, {"truncate_response_count": 1})
    data, err = raw_exchange(E.dp, body.replace(b'"1"', b'"3"'))
    head, _, rest = data.partition(b"\r\n\r\n")
    clen = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    assert 0 < len(rest) < clen and len(rest) == clen // 2
    assert rjson(E.dp, "GET", "/rs/_count")[1]["count"] == 2
    # counts are consumed: the next request is normal
    st, b = bulk(E.dp, create("rs", "4"))
    assert st == 200 and items_of(b)[0]["status"] == 201
    s = stats(E)
    assert s["resets_injected"] == 2 and s["truncations_injected"] == 1


@test
def down_then_up():
    st, _ = ctl(E, "POST", "/_emu/down", {"ms": 600})
    assert st == 200
    try:
        socket.create_connection(("127.0.0.1", E.dp), timeout=1).close()
        raise AssertionError("connect succeeded while down")
    except ConnectionRefusedError:
        pass
    assert stats(E)["connections_open"] >= 1  # the control port stays up
    time.sleep(0.8)
    assert request(E.dp, "GET", "/")[0] == 200
    # a keep-alive data connection is reset when the port goes down
    conn = http.client.HTTPConnection("127.0.0.1", E.dp, timeout=5)
    conn.request("GET", "/")
    conn.getresponse().read()
    ctl(E, "POST", "/_emu/down", {"ms": 10000})
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
        raise AssertionError("request succeeded on a reset connection")
    except (ConnectionError, http.client.HTTPException, OSError):
        pass
    conn.close()
    assert ctl(E, "POST", "/_emu/up")[0] == 200
    assert request(E.dp, "GET", "/")[0] == 200


@test
def stats_counters_and_dump():
    reset(E)
    t0 = time.time_ns()
    lines = create("sc", "1") + create("sc", "1") + create("sc2", "2", {"m": "é"})
    raw = "".join(json.dumps(l) + "\n" for l in lines).encode()
    st, b = bulk(E.dp, None, raw=raw)
    t1 = time.time_ns()
    s = stats(E)
    assert s["requests"] == 1 and s["bulk_requests"] == 1 and s["bulk_items"] == 3
    assert s["created"] == 2 and s["conflicts_409"] == 1 and s["docs"] == 2
    assert s["bytes_in_decompressed"] == len(raw) and s["max_body_bytes"] == len(raw)
    assert s["bytes_in"] > len(raw) and s["content_types"] == {NDJSON: 1}
    assert t0 <= s["first_doc_ns"] <= s["last_doc_ns"] <= t1
    for k in ("injected_request_errors", "injected_item_errors", "permanent_item_errors",
              "gzip_requests", "expect_100_continue", "missing_trailing_newline", "stalled_now"):
        assert s[k] == 0, k
    st, r, data = request(E.cp, "GET", "/_emu/dump")
    docs = [json.loads(l) for l in data.decode().splitlines()]
    assert sorted((d["_index"], d["_id"], d["_version"]) for d in docs) == [("sc", "1", 1), ("sc2", "2", 1)]
    assert [d["_source"] for d in docs if d["_index"] == "sc2"] == [{"m": "é"}]
    st, r, data = request(E.cp, "GET", "/_emu/dump?index=sc2")
    assert len(data.decode().splitlines()) == 1
    reset(E)
    s = stats(E)
    assert s["docs"] == 0 and s["bulk_items"] == 0


@test
def many_keepalive_connections():
    socks = []
    for i in range(100):
        s = socket.create_connection(("127.0.0.1", E.dp), timeout=5)
        socks.append(s)
    for i, s in enumerate(socks):
        body = b'{"create":{"_index":"many","_id":"%d"}}\n{"a":1}\n' % i
        req = (b"POST /_bulk?filter_path=items.*.status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body) + body)
        s.sendall(req * 2)  # two pipelined requests on each connection
    for s in socks:
        data = b""
        while data.count(b"]}") < 2:
            c = s.recv(65536)
            assert c
            data += c
        assert data.count(b"HTTP/1.1 200") == 2 and b'"status":201' in data and b'"status":409' in data
        s.close()
    assert rjson(E.dp, "GET", "/many/_count")[1]["count"] == 100


@test
def count_only_mode():
    co = Emu("--count-only")
    try:
        st, b = bulk(co.dp, create("co", "a") + create("co", "a") + create("co", "b") +
                     ["{\"index\":{\"_index\":\"co\",\"_id\":\"c\"}}", "not json"])
        assert [i["status"] for i in items_of(b)] == [201, 409, 201, 400]
        assert rjson(co.dp, "GET", "/co/_count")[1]["count"] == 2
        st, r = rjson(co.dp, "POST", "/co/_search", {"query": {"ids": {"values": ["a", "zz"]}}})
        hits = r["hits"]["hits"]
        assert len(hits) == 1 and hits[0]["_id"] == "a" and "_source" not in hits[0]
        st, r, data = request(co.cp, "GET", "/_emu/dump")
        lines = [json.loads(l) for l in data.decode().splitlines()]
        assert len(lines) == 2 and all("_id_hash" in l and "_source" not in l for l in lines)
        assert stats(co)["count_only"] is True
    finally:
        assert co.stop() == 0


@test
def latency_field():
    le = Emu("--count-only", "--latency-field", "sent_ns")
    try:
        assert stats(E)["latency_field"] is None and stats(E)["latency_docs"] == 0
        now = time.time_ns()
        lines = []
        # 100 documents sent 0..99 ms ago, one without the field, one with a string there, one
        # from a clock 10 s ahead, and a 409 (not stored, not counted)
        for i in range(100):
            lines += create("lat", str(i), {"sent_ns": now - i * 1_000_000, "n": i})
        lines += create("lat", "none", {"n": 1}) + create("lat", "str", {"sent_ns": "12"})
        lines += create("lat", "ahead", {"sent_ns": now + 10_000_000_000})
        lines += create("lat", "0", {"sent_ns": now})
        st, b = bulk(le.dp, lines)
        assert [i["status"] for i in items_of(b)].count(201) == 103
        s = stats(le)
        assert s["latency_field"] == "sent_ns"
        assert s["latency_docs"] == 101 and s["latency_missing"] == 2 and s["latency_ahead"] == 1
        # the request left this script within a second; the histogram is exact to 1.6%
        assert 99.0 <= s["latency_max_ms"] < 1100, s
        assert 49.0 * 0.98 <= s["latency_p50_ms"] <= 50 * 1.02 + 1000, s
        assert s["latency_p50_ms"] <= s["latency_p90_ms"] <= s["latency_p99_ms"] <= s["latency_max_ms"]
        assert s["latency_p99_ms"] >= 98 * 0.98
        reset(le)
        s = stats(le)
        assert s["latency_docs"] == 0 and s["latency_max_ms"] == 0 and s["latency_p99_ms"] == 0
        assert s["latency_field"] == "sent_ns"
    finally:
        assert le.stop() == 0


# ---- resource endpoints: index templates, ILM policies, data streams, ingest pipelines ---------

DS_TEMPLATE = {"index_patterns": ["ds-*"], "data_stream": {}, "priority": 200,
               "template": {"settings": {"index.lifecycle.name": "pol"}}}


def err_type(body):
    assert set(body) == {"error", "status"}, body
    e = body["error"]
    assert e["root_cause"][0]["type"] == e["type"] and e["root_cause"][0]["reason"] == e["reason"]
    return e["type"], e["reason"]


@test
def resources_index_templates():
    reset(E)
    st, b = rjson(E.dp, "PUT", "/_index_template/t1", {"index_patterns": "tpl-*", "priority": 5,
                                                      "template": {"settings": {"number_of_shards": 1}}})
    assert (st, b) == (200, {"acknowledged": True})
    st, b = rjson(E.dp, "GET", "/_index_template/t1")
    assert st == 200 and len(b["index_templates"]) == 1
    t = b["index_templates"][0]
    assert t["name"] == "t1"
    # a single pattern is stored as an array and composed_of defaults to [], as in ES
    assert t["index_template"] == {"index_patterns": ["tpl-*"], "priority": 5, "composed_of": [],
                                   "template": {"settings": {"number_of_shards": 1}}}
    st, b = rjson(E.dp, "POST", "/_index_template/t1", {"index_patterns": ["tpl-*", "x-*"]})
    assert st == 200
    assert rjson(E.dp, "GET", "/_index_template/t1")[1]["index_templates"][0]["index_template"]["index_patterns"] == ["tpl-*", "x-*"]
    st, b = rjson(E.dp, "PUT", "/_index_template/t1?create=true", {"index_patterns": ["y"]})
    assert st == 400 and err_type(b) == ("illegal_argument_exception", "index template [t1] already exists")
    assert rjson(E.dp, "PUT", "/_index_template/t2?create=true", {"index_patterns": ["y"]})[0] == 200
    st, r, data = request(E.dp, "HEAD", "/_index_template/t1")
    assert st == 200 and data == b""
    st, r, data = request(E.dp, "HEAD", "/_index_template/nope")
    assert st == 404 and data == b""
    st, b = rjson(E.dp, "GET", "/_index_template/nope")
    assert st == 404 and err_type(b) == ("resource_not_found_exception", "index template matching [nope] not found")
    st, b = rjson(E.dp, "GET", "/_index_template")
    assert st == 200 and sorted(t["name"] for t in b["index_templates"]) == ["t1", "t2"]
    assert rjson(E.dp, "GET", "/_index_template/zz*") == (200, {"index_templates": []})
    # validation
    st, b = rjson(E.dp, "PUT", "/_index_template/bad", {"template": {}})
    assert st == 400 and err_type(b) == ("illegal_argument_exception", "Required [index_patterns]")
    st, b = rjson(E.dp, "PUT", "/_index_template/bad", {"index_patterns": []})
    assert st == 400 and err_type(b)[0] == "action_request_validation_exception"
    st, b = rjson(E.dp, "PUT", "/_index_template/bad", {"index_patterns": ["a"], "settings": {}})
    assert st == 400 and err_type(b) == ("x_content_parse_exception", "[1:27] [index_template] unknown field [settings]")
    st, b = rjson(E.dp, "PUT", "/_index_template/bad", {"index_patterns": [1]})
    assert st == 400 and err_type(b)[0] == "x_content_parse_exception"
    st, b = rjson(E.dp, "PUT", "/_index_template/bad", "[1]", {"Content-Type": "application/json"})
    assert st == 400 and err_type(b)[0] == "parse_exception"
    st, b = rjson(E.dp, "PUT", "/_index_template/bad", "{", {"Content-Type": "application/json"})
    assert st == 400 and err_type(b)[0] == "x_content_parse_exception"
    st, b = rjson(E.dp, "PUT", "/_index_template/bad")
    assert st == 400 and err_type(b) == ("parse_exception", "request body is required")
    assert rjson(E.dp, "GET", "/_index_template/bad")[0] == 404
    assert rjson(E.dp, "PATCH", "/_index_template/t1")[0] in (404, 405)
    assert rjson(E.dp, "DELETE", "/_index_template")[0] == 405
    assert rjson(E.dp, "DELETE", "/_index_template/t1") == (200, {"acknowledged": True})
    st, b = rjson(E.dp, "DELETE", "/_index_template/t1")
    assert st == 404 and err_type(b) == ("resource_not_found_exception", "index_template [t1] missing")
    s = stats(E)
    assert s["templates_put"] == 3 and s["templates_deleted"] == 1 and s["templates"] == 1
    res = ctl(E, "GET", "/_emu/resources")[1]
    assert list(res["index_templates"]) == ["t2"] and res["index_templates"]["t2"]["index_patterns"] == ["y"]


@test
def resources_ilm_policies():
    reset(E)
    pol = {"phases": {"hot": {"actions": {"rollover": {"max_age": "1d"}}},
                      "delete": {"min_age": "7d", "actions": {"delete": {}}}}}
    assert rjson(E.dp, "PUT", "/_ilm/policy/pol", {"policy": pol}) == (200, {"acknowledged": True})
    assert rjson(E.dp, "PUT", "/_ilm/policy/pol", {"policy": pol})[0] == 200
    st, b = rjson(E.dp, "GET", "/_ilm/policy/pol")
    assert st == 200 and list(b) == ["pol"]
    assert b["pol"]["version"] == 2 and b["pol"]["policy"] == pol
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", b["pol"]["modified_date"])
    assert b["pol"]["in_use_by"] == {"indices": [], "data_streams": [], "composable_templates": []}
    st, b = rjson(E.dp, "PUT", "/_ilm/policy/bad", pol)  # phases at the top level
    assert st == 400 and err_type(b) == ("x_content_parse_exception", "[1:2] [put_lifecycle_request] unknown field [phases]")
    st, b = rjson(E.dp, "PUT", "/_ilm/policy/bad", {})
    assert st == 400 and err_type(b) == ("illegal_argument_exception", "Required [policy]")
    st, b = rjson(E.dp, "PUT", "/_ilm/policy/bad", {"policy": {"hot": {}}})
    assert st == 400 and err_type(b)[0] == "x_content_parse_exception" and "unknown field [hot]" in b["error"]["reason"]
    st, b = rjson(E.dp, "GET", "/_ilm/policy/bad")
    assert st == 404 and err_type(b) == ("resource_not_found_exception", "Lifecycle policy not found: [bad]")
    assert rjson(E.dp, "POST", "/_ilm/policy/pol", {"policy": pol})[0] == 405
    assert rjson(E.dp, "DELETE", "/_ilm/policy/pol") == (200, {"acknowledged": True})
    assert rjson(E.dp, "DELETE", "/_ilm/policy/pol")[0] == 404
    s = stats(E)
    assert s["ilm_put"] == 2 and s["ilm_deleted"] == 1 and s["ilm_policies"] == 0


@test
def resources_data_streams():
    reset(E)
    st, b = rjson(E.dp, "PUT", "/_data_stream/ds-a")
    assert st == 400 and err_type(b) == ("illegal_argument_exception", "no matching index template found for data stream [ds-a]")
    # the highest-priority matching template decides; a plain one blocks data streams
    assert rjson(E.dp, "PUT", "/_index_template/plain", {"index_patterns": ["ds-*"], "priority": 300})[0] == 200
    assert rjson(E.dp, "PUT", "/_index_template/dst", DS_TEMPLATE)[0] == 200
    st, b = rjson(E.dp, "PUT", "/_data_stream/ds-a")
    assert st == 400 and err_type(b)[0] == "illegal_argument_exception" and "has no data stream template" in b["error"]["reason"]
    assert rjson(E.dp, "PUT", "/_index_template/plain", {"index_patterns": ["ds-*"], "priority": 100})[0] == 200
    assert rjson(E.dp, "PUT", "/_data_stream/ds-a") == (200, {"acknowledged": True})
    st, b = rjson(E.dp, "PUT", "/_data_stream/ds-a")
    assert st == 400 and err_type(b) == ("resource_already_exists_exception", "data_stream [ds-a] already exists")
    st, b = rjson(E.dp, "PUT", "/_data_stream/DS-A")
    assert st == 400 and err_type(b)[0] == "illegal_argument_exception" and "lowercase" in b["error"]["reason"]
    st, b = rjson(E.dp, "GET", "/_data_stream/ds-a")
    assert st == 200 and len(b["data_streams"]) == 1
    d = b["data_streams"][0]
    assert d["name"] == "ds-a" and d["timestamp_field"] == {"name": "@timestamp"}
    assert d["generation"] == 1 and d["status"] == "GREEN" and d["template"] == "dst" and d["ilm_policy"] == "pol"
    assert len(d["indices"]) == 1
    today = time.strftime("%Y.%m.%d", time.gmtime())
    assert d["indices"][0]["index_name"] == ".ds-ds-a-%s-000001" % today
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", d["indices"][0]["index_uuid"])
    st, b = rjson(E.dp, "GET", "/_data_stream/ds-zz")
    assert st == 404 and err_type(b) == ("index_not_found_exception", "no such index [ds-zz]")
    assert [x["name"] for x in rjson(E.dp, "GET", "/_data_stream")[1]["data_streams"]] == ["ds-a"]
    assert rjson(E.dp, "GET", "/_ilm/policy/pol")[0] == 404  # the template may name a missing policy
    # a template in use cannot be deleted
    st, b = rjson(E.dp, "DELETE", "/_index_template/dst")
    assert st == 400 and err_type(b)[0] == "illegal_argument_exception"
    res = ctl(E, "GET", "/_emu/resources")[1]
    assert res["data_streams"] == {"ds-a": {"template": "dst", "ilm_policy": "pol", "docs": 0,
                                            "backing_indices": [d["indices"][0]["index_name"]]}}
    assert rjson(E.dp, "DELETE", "/_data_stream/ds-a") == (200, {"acknowledged": True})
    st, b = rjson(E.dp, "DELETE", "/_data_stream/ds-a")
    assert st == 404 and err_type(b)[0] == "index_not_found_exception"
    s = stats(E)
    assert s["data_streams_created"] == 1 and s["data_streams_deleted"] == 1 and s["data_streams"] == 0
    assert s["indices"] == 0  # the backing index went with it


@test
def bulk_into_data_streams():
    reset(E)
    assert rjson(E.dp, "PUT", "/_index_template/dst", DS_TEMPLATE)[0] == 200
    assert rjson(E.dp, "PUT", "/_index_template/plain", {"index_patterns": ["pl-*"], "priority": 500})[0] == 200
    assert rjson(E.dp, "PUT", "/_data_stream/ds-x")[0] == 200
    backing = rjson(E.dp, "GET", "/_data_stream/ds-x")[1]["data_streams"][0]["indices"][0]["index_name"]
    ts = "2024-05-01T10:00:00.000Z"
    st, b = bulk(E.dp, [{"create": {"_index": "ds-x", "_id": "1"}}, {"@timestamp": ts, "m": 1},
                        {"index": {"_index": "ds-x", "_id": "2"}}, {"@timestamp": ts, "m": 2},
                        {"delete": {"_index": "ds-x", "_id": "1"}},
                        {"create": {"_index": "ds-x", "_id": "3"}}, {"m": 3},
                        {"create": {"_index": "ds-x", "_id": "4"}}, {"@timestamp": None},
                        {"create": {"_index": "ds-auto", "_id": "5"}}, {"@timestamp": ts},
                        {"index": {"_index": "pl-x", "_id": "6"}}, {"m": 6},
                        {"create": {"_id": "7"}}, {"@timestamp": ts}], path="/ds-x/_bulk")
    assert st == 200 and b["errors"] is True
    it = items_of(b)
    assert [i["status"] for i in it] == [201, 400, 400, 400, 400, 201, 201, 201]
    assert it[0]["_index"] == backing and it[0]["result"] == "created"
    for i in it[1:3]:
        assert i["_index"] == "ds-x" and i["error"]["type"] == "illegal_argument_exception"
        assert i["error"]["reason"] == "only write ops with an op_type of create are allowed in data streams"
    for i in it[3:5]:
        assert i["error"]["type"] == "document_parsing_exception"
        assert i["error"]["reason"].endswith("failed to parse: data stream timestamp field [@timestamp] is missing")
    assert it[5]["_index"].startswith(".ds-ds-auto-")  # auto-created from the data-stream template
    assert it[6]["_index"] == "pl-x"  # a plain template changes nothing
    assert it[7]["_index"] == backing  # the path index works too
    s = stats(E)
    assert s["data_streams_created"] == 2 and s["data_streams_auto_created"] == 1
    assert s["data_stream_op_type_errors"] == 2 and s["data_stream_timestamp_errors"] == 2
    # reads by data stream name resolve to the backing index
    assert rjson(E.dp, "GET", "/ds-x/_count")[1]["count"] == 2
    assert rjson(E.dp, "GET", "/ds-*/_count")[1]["count"] == 3
    assert rjson(E.dp, "GET", "/ds-x,pl-x/_count")[1]["count"] == 3
    assert rjson(E.dp, "GET", "/_count")[1]["count"] == 4
    st, b = rjson(E.dp, "POST", "/ds-x/_search", {"query": {"ids": {"values": ["1"]}}})
    assert [(h["_index"], h["_id"], h["_source"]["m"]) for h in b["hits"]["hits"]] == [(backing, "1", 1)]
    st, b = rjson(E.dp, "GET", "/ds-x/_doc/7")
    assert st == 200 and b["found"] is True and b["_index"] == backing
    assert request(E.dp, "HEAD", "/ds-x")[0] == 200
    st, r, data = request(E.cp, "GET", "/_emu/dump?index=ds-x")
    assert sorted(json.loads(l)["_id"] for l in data.decode().splitlines()) == ["1", "7"]
    assert ctl(E, "GET", "/_emu/resources")[1]["data_streams"]["ds-x"]["docs"] == 2
    # a create of an existing id in the data stream conflicts like any create
    st, b = bulk(E.dp, [{"create": {"_index": "ds-x", "_id": "1"}}, {"@timestamp": ts}])
    assert items_of(b)[0]["status"] == 409
    st, b = rjson(E.dp, "DELETE", "/ds-x")  # the delete index API does not take data streams
    assert st == 400 and err_type(b)[0] == "illegal_argument_exception" and "matches a data stream" in b["error"]["reason"]
    assert rjson(E.dp, "DELETE", "/_data_stream/ds-*") == (200, {"acknowledged": True})
    assert rjson(E.dp, "GET", "/_count")[1]["count"] == 1


@test
def ingest_pipelines_and_bulk():
    reset(E)
    body = {"description": "d", "processors": [{"set": {"field": "x", "value": 1}}]}
    assert rjson(E.dp, "PUT", "/_ingest/pipeline/p1", body) == (200, {"acknowledged": True})
    assert rjson(E.dp, "GET", "/_ingest/pipeline/p1") == (200, {"p1": body})
    assert rjson(E.dp, "GET", "/_ingest/pipeline/nope") == (404, {})
    st, b = rjson(E.dp, "PUT", "/_ingest/pipeline/bad", {"description": "no processors"})
    assert st == 400 and err_type(b) == ("parse_exception", "[processors] required property is missing")
    st, b = rjson(E.dp, "PUT", "/_ingest/pipeline/bad", {"processors": "x"})
    assert st == 400 and err_type(b)[0] == "parse_exception"
    st, b = bulk(E.dp, [{"create": {"_index": "pi", "_id": "1"}}, {"m": 1},
                        {"index": {"_index": "pi", "_id": "2", "pipeline": "p2"}}, {"m": 2},
                        {"index": {"_index": "pi", "_id": "3", "pipeline": "_none"}}, {"m": 3},
                        {"delete": {"_index": "pi", "_id": "1"}}], path="/_bulk?pipeline=p1")
    it = items_of(b)
    assert [i["status"] for i in it] == [201, 400, 201, 200]
    assert it[1]["_index"] == "pi" and it[1]["error"]["type"] == "illegal_argument_exception"
    assert it[1]["error"]["reason"] == "pipeline with id [p2] does not exist"
    st, b = bulk(E.dp, [{"create": {"_index": "pi", "_id": "4"}}, {"m": 4}], path="/_bulk?pipeline=nope")
    assert items_of(b)[0]["error"]["reason"] == "pipeline with id [nope] does not exist"
    st, b = rjson(E.dp, "GET", "/pi/_doc/3")
    assert b["_source"] == {"m": 3}  # stored unchanged: processors are not run
    s = stats(E)
    assert s["pipeline_docs"] == {"p1": 1} and s["pipeline_missing_errors"] == 2 and s["pipelines_put"] == 1
    assert rjson(E.dp, "DELETE", "/_ingest/pipeline/p1") == (200, {"acknowledged": True})
    st, b = rjson(E.dp, "DELETE", "/_ingest/pipeline/p1")
    assert st == 404 and err_type(b)[0] == "resource_not_found_exception"
    assert stats(E)["pipeline_docs"] == {"p1": 1}  # counts survive until /_emu/reset


@test
def resource_faults_stats_and_reset():
    reset(E)
    faults(E, {"template_status": 503, "template_count": 2})
    st, f = ctl(E, "GET", "/_emu/faults")
    assert f["template_status"] == 503 and f["template_count"] == 2 and f["ilm_status"] == 0
    tpl = {"index_patterns": ["f-*"], "data_stream": {}}
    for _ in range(2):
        st, b = rjson(E.dp, "PUT", "/_index_template/ft", tpl)
        assert st == 503 and err_type(b)[0] == "master_not_discovered_exception"
        assert rjson(E.dp, "GET", "/_index_template/ft")[0] == 404  # reads are not faulted
    assert rjson(E.dp, "PUT", "/_index_template/ft", tpl)[0] == 200
    faults(E, {"ilm_status": 429, "data_stream_status": 500, "data_stream_count": 1,
               "pipeline_status": 502, "resource_faults_reads": 1})
    st, b = rjson(E.dp, "PUT", "/_ilm/policy/p", {"policy": {"phases": {}}})
    assert st == 429 and err_type(b)[0] == "es_rejected_execution_exception"
    assert rjson(E.dp, "GET", "/_ilm/policy/p")[0] == 429  # count -1: until cleared, reads too
    assert rjson(E.dp, "GET", "/_data_stream/f-1")[0] == 500
    assert rjson(E.dp, "PUT", "/_data_stream/f-1")[0] == 200
    st, r, data = request(E.dp, "PUT", "/_ingest/pipeline/p", b'{"processors":[]}', {"Content-Type": "application/json"})
    assert st == 502 and r.getheader("Content-Type") == "text/plain"
    assert stats(E)["injected_resource_errors"] == 6
    # bulk faults do not touch resource endpoints, resource faults do not touch bulk
    st, b = bulk(E.dp, [{"create": {"_index": "f-1", "_id": "1"}}, {"@timestamp": "2024-01-01"}])
    assert items_of(b)[0]["status"] == 201
    faults(E, {})
    assert rjson(E.dp, "PUT", "/_ilm/policy/p", {"policy": {"phases": {}}})[0] == 200
    s = stats(E)
    assert s["resource_requests"] == 11 and s["templates"] == 1 and s["data_streams"] == 1 and s["ilm_policies"] == 1
    reset(E)
    s = stats(E)
    for k in ("templates", "ilm_policies", "data_streams", "pipelines", "templates_put", "resource_requests",
              "injected_resource_errors", "data_streams_created"):
        assert s[k] == 0, k
    assert s["pipeline_docs"] == {}
    assert ctl(E, "GET", "/_emu/resources")[1] == {"index_templates": {}, "ilm_policies": {},
                                                  "data_streams": {}, "pipelines": {}}


@test
def es_client_templates_ilm_data_streams():
    from elasticsearch import Elasticsearch, helpers
    from elasticsearch.exceptions import NotFoundError, RequestError
    reset(E)
    es = Elasticsearch(["http://127.0.0.1:%d" % E.dp])
    pol = {"phases": {"hot": {"actions": {"rollover": {"max_primary_shard_size": "50gb"}}}}}
    assert es.ilm.put_lifecycle(policy="logs-pol", body={"policy": pol}) == {"acknowledged": True}
    assert es.ilm.get_lifecycle(policy="logs-pol")["logs-pol"]["policy"] == pol
    tpl = {"index_patterns": ["cl-*"], "data_stream": {}, "priority": 150,
           "template": {"settings": {"index": {"lifecycle": {"name": "logs-pol"}}}}}
    assert es.indices.put_index_template(name="cl-tpl", body=tpl) == {"acknowledged": True}
    assert es.indices.exists_index_template(name="cl-tpl") is True
    assert es.indices.exists_index_template(name="nope") is False
    got = es.indices.get_index_template(name="cl-tpl")["index_templates"][0]
    assert got["name"] == "cl-tpl" and got["index_template"]["data_stream"] == {}
    assert es.indices.create_data_stream(name="cl-app") == {"acknowledged": True}
    try:
        es.indices.create_data_stream(name="cl-app")
        raise AssertionError("second create_data_stream succeeded")
    except RequestError as e:
        assert e.status_code == 400 and e.error == "resource_already_exists_exception"
    try:
        es.indices.get_data_stream(name="cl-missing")
        raise AssertionError("get_data_stream of a missing stream succeeded")
    except NotFoundError as e:
        assert e.error == "index_not_found_exception"
    d = es.indices.get_data_stream(name="cl-app")["data_streams"][0]
    assert d["name"] == "cl-app" and d["template"] == "cl-tpl" and d["ilm_policy"] == "logs-pol"
    assert d["indices"][0]["index_name"].startswith(".ds-cl-app-")
    ops = []
    for i in range(20):
        ops += [{"create": {"_index": "cl-app"}}, {"@timestamp": "2024-01-01T00:00:%02dZ" % i, "n": i}]
    ops += [{"index": {"_index": "cl-app"}}, {"@timestamp": "2024-01-01T00:00:00Z"},
            {"create": {"_index": "cl-app"}}, {"n": -1}]
    r = es.bulk(body=ops)
    assert r["errors"] is True
    st = [list(i.values())[0] for i in r["items"]]
    assert [i["status"] for i in st] == [201] * 20 + [400, 400]
    assert st[20]["error"]["type"] == "illegal_argument_exception"
    assert st[21]["error"]["type"] == "document_parsing_exception"
    assert es.count(index="cl-app")["count"] == 20
    ok, errs = helpers.bulk(es, [{"_op_type": "create", "_index": "cl-other", "_source": {"@timestamp": "2024-01-01"}}])
    assert ok == 1 and errs == []
    assert es.count(index="cl-*")["count"] == 21
    assert {d["name"] for d in es.indices.get_data_stream(name="cl-*")["data_streams"]} == {"cl-app", "cl-other"}
    es.ingest.put_pipeline(id="cl-pipe", body={"processors": [{"lowercase": {"field": "m"}}]})
    ok, errs = helpers.bulk(es, [{"_op_type": "create", "_index": "cl-app", "_source": {"@timestamp": "2024-01-02"}}],
                            pipeline="cl-pipe")
    assert ok == 1 and stats(E)["pipeline_docs"] == {"cl-pipe": 1}
    assert es.indices.delete_data_stream(name="cl-app") == {"acknowledged": True}
    assert es.count(index="cl-*")["count"] == 1


@test
def count_only_data_streams():
    co = Emu("--count-only")
    try:
        assert rjson(co.dp, "PUT", "/_index_template/t", {"index_patterns": ["co-*"], "data_stream": {}})[0] == 200
        st, b = bulk(co.dp, create("co-ds", "a", {"@timestamp": "2024-01-01"}) + create("co-ds", "b", {"m": 1}) +
                     [{"index": {"_index": "co-ds", "_id": "c"}}, {"@timestamp": "2024-01-01"}])
        assert [i["status"] for i in items_of(b)] == [201, 400, 400]
        assert rjson(co.dp, "GET", "/co-ds/_count")[1]["count"] == 1
        assert stats(co)["data_streams_auto_created"] == 1
    finally:
        assert co.stop() == 0


def main():
    global E
    if not os.access(ESEMU, os.X_OK):
        print("esemu binary not found at %s" % ESEMU)
        print("0 passed, 1 failed")
        return 1
    E = Emu()
    passed = failed = 0
    t_all = time.monotonic()
    try:
        for fn in TESTS:
            t0 = time.monotonic()
            try:
                fn()
                passed += 1
                print("ok   %-45s %.2fs" % (fn.__name__, time.monotonic() - t0))
            except Exception:
                failed += 1
                print("FAIL %s" % fn.__name__)
                traceback.print_exc()
                try:
                    faults(E, {})
                    ctl(E, "POST", "/_emu/up")
                except Exception:
                    pass
    finally:
        rc = E.stop()
    if rc != 0:
        failed += 1
        print("FAIL clean_exit_on_sigterm (rc=%r)" % rc)
    else:
        passed += 1
        print("ok   clean_exit_on_sigterm")
    print("total %.1fs" % (time.monotonic() - t_all))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
