#!/usr/bin/python3
"""TLS to Elasticsearch: certificates are verified by default, with the CA from `ca_file`.

A test CA signs a certificate for 127.0.0.1/localhost; a TLS-terminating proxy (Python's ssl
module, in this process) forwards to the emulator. Three runs over the same 1,000 records:
1. ca_file = the test CA: everything arrives over https;
2. ca_file = an unrelated CA, tls_verify left at its default (true): nothing arrives, the
   certificate failure is logged, and nothing is lost: the records stay in flight (not committed)
   and a later run delivers them;
3. same wrong CA with tls_verify: false: everything arrives.
"""
import os
import socket
import ssl
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

N = 1_000


def make_ca(d, name):
    key, crt = os.path.join(d, f"{name}.key"), os.path.join(d, f"{name}.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-keyout", key, "-out", crt],
                   check=True, capture_output=True)
    return key, crt


def make_server_cert(d, ca_key, ca_crt):
    key, csr, crt = (os.path.join(d, f"server.{x}") for x in ("key", "csr", "crt"))
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-keyout", key, "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
                    "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt],
                   check=True, capture_output=True)
    return key, crt


class TlsProxy(threading.Thread):
    """Accepts TLS on 127.0.0.1:port and pipes plaintext to the emulator."""

    def __init__(self, key, crt, upstream_port):
        super().__init__(daemon=True)
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(crt, key)
        self.upstream = upstream_port
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.handshake_failures = 0
        self.stop = False

    @staticmethod
    def pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve(self, raw):
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshake_failures += 1
            raw.close()
            return
        up = socket.create_connection(("127.0.0.1", self.upstream))
        threading.Thread(target=self.pump, args=(up, tls), daemon=True).start()
        self.pump(tls, up)

    def run(self):
        while not self.stop:
            try:
                raw, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(raw,), daemon=True).start()


def main():
    ck = H.Checker("test_core_tls")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            ca_key, ca_crt = make_ca(wd, "test-ca")
            _, other_crt = make_ca(wd, "other-ca")
            key, crt = make_server_cert(wd, ca_key, ca_crt)
            mk = procs.add(H.MockKafka(topics=["logs:2"], workdir=wd))
            mk.produce("logs", N)
            mk.wait_produced(60)
            es = procs.add(H.EsEmu(workdir=wd))
            proxy = TlsProxy(key, crt, int(es.url.rsplit(":", 1)[1]))
            proxy.start()
            url = f"https://127.0.0.1:{proxy.port}"

            def run(name, group, extra, expect_docs, wait_s):
                d = os.path.join(wd, name)
                cfg = H.sluice_config(brokers=mk.bootstrap, es_url=url, workdir=d, group=group,
                                      shutdown_timeout="2s", output_extra=extra)
                sl = procs.add(H.Sluice(cfg, d))
                got = es.wait_docs(expect_docs, wait_s, label=name) if expect_docs else None
                if not expect_docs:
                    H.time.sleep(wait_s)
                code = sl.terminate(30)
                return sl, got, code

            # 2 first: the wrong CA must deliver nothing (and lose nothing)
            sl, _, code = run("wrong-ca", "tls-a", {"ca_file": other_crt}, 0, 8)
            ck.eq(es.docs(), 0, "wrong CA: nothing was indexed")
            ck.check(len(sl.lines(r"(?i)certificate|SSL")) > 0,
                     "wrong CA: the certificate failure is logged", sl.log_tail(10))
            ck.check(proxy.handshake_failures > 0, "wrong CA: the TLS handshake was refused")
            ck.eq(code, 0, "wrong CA: exit 0 after SIGTERM (records left in flight)")
            fs = sl.final_stats() or {}
            k = (fs.get("inputs") or {}).get("k", {})
            ck.check(k.get("delivered") == 0 and k.get("in_flight", 0) > 0,
                     "wrong CA: records stayed in flight, none counted delivered", k)
            committed = mk.committed("tls-a", "logs")
            ck.check(all(v <= 0 for v in committed.values()),
                     "wrong CA: no offset was committed", committed)

            # 1: the right CA delivers everything, including what run 2 could not
            sl, got, code = run("right-ca", "tls-a", {"ca_file": ca_crt}, N, 60)
            ck.check(got >= N, f"right CA: all {N} records arrived over https (got {got})",
                     sl.log_tail(10))
            ck.eq(code, 0, "right CA: exit code")
            H.check_every_seq_once(ck, es.dump(), range(N), "right CA")

            # 3: verification off accepts the wrong CA
            es.reset()
            sl, got, code = run("no-verify", "tls-b",
                                {"ca_file": other_crt, "tls_verify": False}, N, 60)
            ck.check(got >= N, f"tls_verify false: all records arrived (got {got})", sl.log_tail(10))
            ck.eq(code, 0, "tls_verify false: exit code")
            proxy.stop = True
            proxy.ls.close()


if __name__ == "__main__":
    sys.exit(main())
