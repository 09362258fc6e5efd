#!/usr/bin/python3
"""Forward transports: TLS on the Forward input and output, the Unix socket listener, users auth.

A throwaway CA signs a server certificate (SAN IP:127.0.0.1, DNS:localhost) and a client
certificate, made with the openssl CLI in a temp dir; a second, unrelated CA is the "wrong" one.
The clients here are independent of sluice's code: Python's ssl + socket + python3-msgpack.

Part 1, one sluice S with three forward inputs and an esemu output:
  t  tls on 127.0.0.1:0
  m  tls with tls_verify_client (mutual TLS)
  u  listen: off, unix_path (unix_mode 0600), shared_key + users {alice: ${env:ALICE_PW}}
 1. TLS client -> t, Forward mode with chunk acks: every ack arrives byte-exact, every event is
    indexed once with its tag (index) and its EventTime (@timestamp).
 2. a client trusting only the wrong CA fails certificate verification; a plain-TCP client on
    the TLS port gets no ack and is closed; a TLS connection opened before both still gets acks;
    the failures are counted (tls_handshake_failures) and logged with the OpenSSL reason.
 3. mutual TLS: without a client certificate the connection is refused (no ack); with one, acked.
 4. Unix socket: the file has mode 0600; HELO carries an auth salt; wrong password and unknown
    user get PONG false "username/password mismatch" and are closed; the right one gets PONG true
    (digest verified here), then events are acked and indexed.
 5. SIGTERM: exit 0, the socket file is removed. A stale socket file (bound, never unlinked) is
    replaced when S starts again, and the socket works.

Part 2, sluice -> sluice over TLS: mockkafka -> A (kafka in; forward out: tls, tls_verify, client
certificate, shared_key, username bob) -> B (forward in: tls, tls_verify_client, users) -> esemu.
 6. N records: all indexed, none twice.
 7. B restarted with a different password for bob: A logs the refusal (rate-limited: few lines),
    nothing new is indexed and the committed offsets do not move past what was delivered.
 8. B restarted with the right password: everything arrives, none twice, conservation in A and B.
"""
import hashlib
import os
import re
import socket
import ssl
import stat
import struct
import subprocess
import sys
import time

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

DAY_TS = 1614859200  # 2021-03-04T12:00:00Z
KEY = "tls-s3cret-key"
ALICE_PW = "alice-pw-\u00e4"
BOB_PW = "bob-pw-42"
PARTS = 4
N_CHAIN = 20_000
N_CHAIN2 = 2_000
GROUP = "fwd-tls"


def event_time(sec, nsec=0):
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))


def forward_frame(tag, seqs, chunk, who):
    entries = [[event_time(DAY_TS + s % 60, 5000), {"seq": s, "who": who}] for s in seqs]
    return msgpack.packb([tag, entries, {"size": len(entries), "chunk": chunk}],
                         use_bin_type=True)


class Client(H.ForwardConn):
    """A Forward client over any connected socket (TLS, TCP or Unix)."""

    def __init__(self, sock):
        super().__init__(sock=sock)

    def request(self, frame, chunk, timeout=20):
        try:
            self.send(frame)
        except (ssl.SSLError, OSError) as e:
            return f"ERROR: {e}"
        return self.read_obj(timeout)


def tls_client(port, cafile, cert=None, key=None, server_hostname="localhost"):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    if cert:
        ctx.load_cert_chain(cert, key)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return Client(ctx.wrap_socket(raw, server_hostname=server_hostname))


def unix_client(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return Client(s)


def handshake(c, user, password, host="py-client"):
    """HELO -> PING (with user auth) -> PONG. Returns (helo, pong)."""
    helo = c.read_obj(10)
    if not (isinstance(helo, list) and helo[0] == "HELO"):
        return helo, None
    opts = helo[1]
    nonce, auth = opts["nonce"], opts.get("auth") or b""
    nonce = nonce.encode() if isinstance(nonce, str) else nonce
    auth = auth.encode() if isinstance(auth, str) else auth
    salt = os.urandom(16).hex()
    digest = hashlib.sha512(salt.encode() + host.encode() + nonce + KEY.encode()).hexdigest()
    pw = hashlib.sha512(auth + user.encode() + password.encode()).hexdigest() if auth else ""
    c.send(msgpack.packb(["PING", host, salt, digest, user if auth else "", pw],
                         use_bin_type=True))
    pong = c.read_obj(10)
    if isinstance(pong, list) and len(pong) == 5 and pong[1] is True:
        want = hashlib.sha512(salt.encode() + pong[3].encode() + nonce + KEY.encode()).hexdigest()
        if pong[4] != want:
            return helo, ["PONG-DIGEST-MISMATCH"] + pong
    return helo, pong


def config_s(wd, es_url, pki, sock):
    server_tls = {"tls": True, "tls_cert_file": pki["server"], "tls_key_file": pki["server_key"]}
    return H.config(
        H.service(wd, http_listen="off", shutdown_timeout="20s", stats_interval="2s"),
        [H.forward_input("t", handshake_timeout="3s", **server_tls),
         H.forward_input("m", tls_ca_file=pki["ca"], tls_verify_client=True,
                         tls_min_version="1.2", **server_tls),
         H.forward_input("u", listen="off", unix_path=sock, unix_mode="0600", shared_key=KEY,
                         self_hostname="sluice-s", users={"alice": "${env:ALICE_PW}"})],
        [H.es_output(es_url, index="fwd-${tag}-%Y.%m.%d", id="kafka", op="create",
                     batch_max_bytes="1MiB", batch_max_wait="100ms")])


def config_a(wd, bootstrap, b_port, pki):
    return H.config(
        H.service(wd, dead_letter="dead-letter-a", memory_limit="32MiB", http_listen="off",
                  shutdown_timeout="20s", stats_interval="2s"),
        [H.kafka_input(bootstrap, GROUP, ["logs"], tag="kafka.${topic}")],
        [H.forward_output([b_port], tls=True, tls_ca_file=pki["ca"],
                          tls_cert_file=pki["client"], tls_key_file=pki["client_key"],
                          shared_key=KEY, username="bob", password="${env:BOB_PW}",
                          ack_timeout="10s", connect_timeout="3s", batch_max_bytes="1MiB",
                          batch_max_wait="200ms", concurrency=4, retry_base="100ms",
                          retry_max="1s")])


def config_b(wd, b_port, es_url, pki):
    return H.config(
        H.service(wd, dead_letter="dead-letter-b", http_listen="off", shutdown_timeout="20s",
                  stats_interval="2s"),
        [H.forward_input("f", listen=f"127.0.0.1:{b_port}", tls=True,
                         tls_cert_file=pki["server"], tls_key_file=pki["server_key"],
                         tls_ca_file=pki["ca"], tls_verify_client=True, shared_key=KEY,
                         users={"bob": "${env:BOB_PW}"}, id_from_kafka_fields=True)],
        [H.es_output(es_url, index="chain-%Y.%m.%d", id="kafka", op="create",
                     batch_max_bytes="2MiB", batch_max_wait="200ms")])


def ports(sl):
    out = {}
    for ln in sl.lines(r"listening on 127\.0\.0\.1:\d+"):
        m = re.search(r"\b([tm])\b.*listening on 127\.0\.0\.1:(\d+)", ln)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def env_with(**kw):
    e = dict(os.environ)
    e.update(kw)
    return e


def part1(ck, procs, wd, pki):
    es = procs.add(H.EsEmu(workdir=wd))
    sock = os.path.join(wd, "fwd.sock")
    cfg = config_s(wd, es.url, pki, sock)
    env = env_with(ALICE_PW=ALICE_PW)
    s = procs.add(H.Sluice(cfg, os.path.join(wd, "s"), env=env))
    ck.check(s.wait_log(r"\bu\b.*listening on unix:", 10) and s.wait_log(r"\bm\b.*listening", 2),
             "S: three inputs listening", s.log_tail())
    pt = ports(s)
    ck.check("t" in pt and "m" in pt, f"S: ports parsed {pt}")
    ck.check(s.lines(r"\bt\b.*listening on 127\.0\.0\.1:\d+ \(tcp with tls"), "t logs tls")
    expected = 0

    # ---- 1. TLS client, Forward mode with chunk acks
    c = tls_client(pt["t"], pki["ca"])
    ck.check(c.s.version() in ("TLSv1.2", "TLSv1.3"), f"TLS version {c.s.version()}")
    acks_ok = True
    seq = 0
    for i in range(10):
        tag = f"tls.t{i % 2}"
        chunk = f"tls-chunk-{i:04d}-AAAAAAAAAAAAAA"
        frame = forward_frame(tag, range(seq, seq + 200), chunk, "tls")
        seq += 200
        a = c.request(frame, chunk)
        if a != {"ack": chunk}:
            acks_ok = False
            ck.check(False, f"ack of chunk {i}", a)
            break
    expected += seq
    ck.check(acks_ok, "TLS: 10 chunks acked byte-exact")
    ck.eq(es.wait_docs(expected, 30, label="tls"), expected, "TLS: events indexed")
    docs = [d for d in es.dump() if d["_index"].startswith("fwd-tls.")]
    seqs = sorted(d["_source"]["seq"] for d in docs)
    ck.check(seqs == list(range(seq)), "TLS: every seq exactly once")
    ck.check(all(d["_index"] == f"fwd-tls.t{(d['_source']['seq'] // 200) % 2}-2021.03.04"
                 for d in docs), "TLS: index from the tag and the EventTime day",
             sorted({d["_index"] for d in docs}))
    ck.check(all(d["_source"].get("@timestamp", "").startswith("2021-03-04T12:00:")
                 for d in docs), "TLS: @timestamp from the EventTime",
             docs[0]["_source"] if docs else None)

    # ---- 2. wrong CA, plain TCP on the TLS port; an open TLS connection is unaffected
    # plain first: its failure takes the log line (one per kind per log_interval)
    plain = Client(socket.create_connection(("127.0.0.1", pt["t"]), timeout=10))
    chunk = "plain-chunk-AAAAAAAAAAAAAA"
    r = plain.request(forward_frame("tls.plain", [999999], chunk, "plain"), chunk, timeout=5)
    ck.check(r == "EOF" or (isinstance(r, str) and r.startswith("ERROR")),
             f"plain TCP on the TLS port: closed without an ack ({r!r})")
    plain.close()
    try:
        bad = tls_client(pt["t"], pki["wrongca"])
        ck.check(False, "wrong CA: handshake should fail", bad.s.version())
        bad.close()
    except ssl.SSLCertVerificationError as e:
        ck.check(True, f"wrong CA: certificate verification failed ({e.verify_message})")
    chunk = "after-chunk-AAAAAAAAAAAAAA"
    a = c.request(forward_frame("tls.t0", range(seq, seq + 10), chunk, "tls"), chunk)
    ck.eq(a, {"ack": chunk}, "the open TLS connection still gets acks")
    seq += 10
    expected += 10
    c.close()
    ck.check(s.wait_log(r"tls_handshake|TLS handshake", 5), "TLS failures logged",
             s.log_tail())
    reasons = s.lines(r"\bt\b.*TLS handshake")
    ck.check(any(re.search(r"wrong version number|http request|record layer|packet length|"
                           r"unexpected message", ln) for ln in reasons),
             "plain TCP: logged with the OpenSSL reason", reasons[-3:])

    # ---- 3. mutual TLS
    try:
        nc = tls_client(pt["m"], pki["ca"])
        chunk = "mtls-nocert-AAAAAAAAAAAAAA"
        r = nc.request(forward_frame("mtls.x", [888888], chunk, "nocert"), chunk, timeout=5)
        ck.check(r != {"ack": chunk}, f"mTLS without a client certificate: refused ({r!r})")
        nc.close()
    except (ssl.SSLError, OSError) as e:
        ck.check(True, f"mTLS without a client certificate: refused in the handshake ({e})")
    mc = tls_client(pt["m"], pki["ca"], pki["client"], pki["client_key"])
    chunk = "mtls-cert-AAAAAAAAAAAAAAAA"
    ck.eq(mc.request(forward_frame("mtls.ok", range(seq, seq + 50), chunk, "mtls"), chunk),
          {"ack": chunk}, "mTLS with the client certificate: acked")
    mc.close()
    seq += 50
    expected += 50

    # ---- 4. Unix socket with users
    st = os.stat(sock)
    ck.check(stat.S_ISSOCK(st.st_mode), "unix_path is a socket")
    ck.eq(oct(st.st_mode & 0o777), "0o600", "unix_mode applied")
    for user, pw, what in (("alice", "wrong", "wrong password"), ("mallory", ALICE_PW,
                                                                   "unknown user")):
        uc = unix_client(sock)
        helo, pong = handshake(uc, user, pw)
        ck.check(isinstance(helo, list) and len(helo[1].get("auth") or b"") == 16,
                 f"unix HELO carries a 16-byte auth salt ({what})", helo)
        ck.check(isinstance(pong, list) and pong[:3] == ["PONG", False,
                                                         "username/password mismatch"],
                 f"{what}: PONG false username/password mismatch", pong)
        ck.eq(uc.read_obj(5), "EOF", f"{what}: connection closed")
        uc.close()
    uc = unix_client(sock)
    helo, pong = handshake(uc, "alice", ALICE_PW)
    ck.check(isinstance(pong, list) and pong[1] is True and pong[3] == "sluice-s",
             "right password: PONG true with a valid digest", pong)
    chunk = "unix-chunk-AAAAAAAAAAAAAAA"
    ck.eq(uc.request(forward_frame("unix.x", range(seq, seq + 300), chunk, "unix"), chunk),
          {"ack": chunk}, "unix: acked after the handshake")
    uc.close()
    seq += 300
    expected += 300
    ck.eq(es.wait_docs(expected, 30, label="all"), expected, "all part-1 events indexed")
    ck.check(not any(ALICE_PW in ln for ln in s.text().splitlines()), "password never logged")
    # one line per (input, kind) per log_interval: the unknown user is counted, not logged again
    ck.check(s.lines(r"wrong password for user 'alice'"), "user refusal logged", s.log_tail())

    # ---- 5. clean exit removes the socket; a stale one is replaced
    ck.eq(s.terminate(30), 0, "S exit code after SIGTERM")
    for name in ("t", "m", "u"):
        H.check_conservation(ck, s.final_stats(), input_name=name, label=f"S {name}: ")
    fs = s.text()
    m = re.findall(r"\bt\b.*tls_handshake_failures=(\d+)", fs)
    ck.check(m and int(m[-1]) >= 2, f"t counted TLS handshake failures ({m[-1:] if m else m})")
    m = re.findall(r"\bu\b.* handshake_failures=(\d+)", fs)
    ck.check(m and int(m[-1]) == 2, f"u counted 2 refused handshakes ({m[-1:] if m else m})")
    ck.check(not os.path.exists(sock), "socket file removed at clean exit")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock)
    stale.close()  # the file stays: what a crashed process leaves
    s2 = procs.add(H.Sluice(cfg, os.path.join(wd, "s2"), env=env))
    ck.check(s2.wait_log(r"\bu\b.*listening on unix:", 10), "S restarted over a stale socket",
             s2.log_tail())
    ck.check(s2.lines(r"replaced the stale socket file"), "stale socket replacement logged")
    uc = unix_client(sock)
    helo, pong = handshake(uc, "alice", ALICE_PW)
    ck.check(isinstance(pong, list) and pong[1] is True, "the replaced socket works", pong)
    uc.close()
    ck.eq(s2.terminate(30), 0, "S2 exit code after SIGTERM")


def committed_total(mk):
    return sum(v for v in mk.committed(GROUP, "logs").values() if v > 0)


def part2(ck, procs, wd, pki):
    mk = procs.add(H.MockKafka(topics=[f"logs:{PARTS}"], workdir=wd))
    os.makedirs(os.path.join(wd, "es2"))
    es = procs.add(H.EsEmu(workdir=os.path.join(wd, "es2")))
    b_port = H.free_port()
    cfg_b = config_b(wd, b_port, es.url, pki)
    b = procs.add(H.Sluice(cfg_b, os.path.join(wd, "b"), env=env_with(BOB_PW=BOB_PW)))
    ck.check(b.wait_log(r"listening on 127\.0\.0\.1:\d+", 10), "B listens", b.log_tail())
    a = procs.add(H.Sluice(config_a(wd, mk.bootstrap, b_port, pki), os.path.join(wd, "a"),
                           env=env_with(BOB_PW=BOB_PW)))
    ck.check(a.wait_log(r"assigned \d+ partitions", 30), "A got partitions", a.log_tail())

    # ---- 6. N records over TLS + users
    mk.produce("logs", N_CHAIN, group=GROUP)
    got = es.wait_docs(N_CHAIN, 60, label="chain", stall_s=20)
    ck.eq(got, N_CHAIN, "chain: all records indexed", )
    H.check_every_seq_once(ck, es.dump(), range(N_CHAIN), "chain over TLS")
    deadline = time.monotonic() + 20
    while committed_total(mk) < N_CHAIN and time.monotonic() < deadline:
        time.sleep(0.2)
    ck.eq(committed_total(mk), N_CHAIN, "chain: offsets committed after delivery")

    # ---- 7. B with another password for bob
    ck.eq(b.terminate(30), 0, "B exit code after SIGTERM")
    b = procs.add(H.Sluice(cfg_b, os.path.join(wd, "b-wrong"),
                           env=env_with(BOB_PW="not-" + BOB_PW)))
    ck.check(b.wait_log(r"listening on 127\.0\.0\.1:\d+", 10), "B (wrong password) listens")
    mk.produce("logs", N_CHAIN2, group=GROUP)  # seqs continue from N_CHAIN
    ck.check(a.wait_log(r"username/password mismatch", 15),
             "A logs the refusal (authentication failed)", a.log_tail())
    time.sleep(4)
    refusals = a.lines(r"username/password mismatch")
    ck.check(1 <= len(refusals) <= 6, f"A's refusal log is rate-limited ({len(refusals)} lines "
             "in ~5 s of retries every <=1 s on 4 connections)", refusals[-3:])
    ck.check(b.lines(r"wrong password for user 'bob'"), "B logs the wrong password for bob")
    hs = [int(x) for x in re.findall(r"retries\{[^}]*handshake=(\d+)", a.text())]
    ck.check(hs and max(hs) >= 3, f"A kept retrying the handshake (counted: {max(hs or [0])})")
    ck.eq(es.docs(), N_CHAIN, "nothing indexed while refused")
    ck.eq(committed_total(mk), N_CHAIN, "no offsets committed for refused records")

    # ---- 8. fixed: everything arrives once
    ck.eq(b.terminate(30), 0, "B (wrong password) exit code")
    b = procs.add(H.Sluice(cfg_b, os.path.join(wd, "b-fixed"), env=env_with(BOB_PW=BOB_PW)))
    total = N_CHAIN + N_CHAIN2
    got = es.wait_docs(total, 60, label="chain fixed", stall_s=20)
    ck.eq(got, total, "after the fix: every record indexed")
    H.check_every_seq_once(ck, es.dump(), range(total), "chain after the refusal")
    deadline = time.monotonic() + 20
    while committed_total(mk) < total and time.monotonic() < deadline:
        time.sleep(0.2)
    ck.eq(committed_total(mk), total, "after the fix: offsets committed")
    ck.eq(a.terminate(30), 0, "A exit code after SIGTERM")
    ck.eq(b.terminate(30), 0, "B exit code after SIGTERM")
    H.check_conservation(ck, a.final_stats(), input_name="k", label="A: ")
    H.check_conservation(ck, b.final_stats(), input_name="f", label="B: ")
    ck.check(not any(BOB_PW in ln for ln in a.text().splitlines() + b.text().splitlines()),
             "bob's password never logged")


def main():
    ck = H.Checker("test_forward_tls")
    H.require_binaries(H.SLUICE_BIN, H.ESEMU_BIN, H.MOCKKAFKA_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            pki = H.make_pki(wd)
            t0 = time.monotonic()
            part1(ck, procs, wd, pki)
            H.log(f"part 1 took {time.monotonic() - t0:.1f} s")
            t0 = time.monotonic()
            part2(ck, procs, wd, pki)
            H.log(f"part 2 took {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
