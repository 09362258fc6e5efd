#!/usr/bin/python3
# ctest-labels: real
"""Secured Kafka on real brokers: TLS with SASL/SCRAM-SHA-512 and SASL/PLAIN.

Each broker gets a SASL_SSL listener with a certificate from a test CA; SCRAM users are written
into its storage when it is formatted. sluice reaches it through the `librdkafka:` pass-through,
as examples/kafka-sasl-ssl.yaml shows, the password from ${env:...}. Debian's librdkafka 2.0.2
cannot authenticate with SCRAM to Apache Kafka 4.x (fixed in librdkafka 2.6.1: 4.x brokers refuse
the nonce it sends), so SCRAM is proven on Kafka 3.9 and PLAIN over TLS on Kafka 4.4. A user must
see:
 1. Kafka 3.9, SCRAM-SHA-512: a wrong password, and then a CA that did not sign the broker's
    certificate, each stop sluice at start with exit 2 and an error naming the cause and the
    settings to check, not a retry loop; the right ones deliver every record once, the group's
    committed offsets reach the high watermarks, exit 0 on SIGTERM.
 2. Kafka 4.4, PLAIN over TLS: every record once, offsets committed to the end.
 3. Kafka 4.4, SCRAM-SHA-512 with the right password: with a librdkafka before 2.6.1, exit 2 and
    an error that says this librdkafka cannot do SCRAM with 4.x brokers and what to use instead;
    with a newer one, every record once.
In every run the password appears nowhere in sluice's log.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import realservers as R  # noqa: E402

N = 20_000
PARTITIONS = 4
USER, PASSWORD = "sluice", "s3cret-for-the-test"


def config(wd, kafka, es, ca, group, mechanism="SCRAM-SHA-512"):
    secure = {"security.protocol": "SASL_SSL", "sasl.mechanisms": mechanism,
              "sasl.username": USER, "sasl.password": "${env:IT_KAFKA_PW}",
              "ssl.ca.location": ca}
    return H.sluice_config(brokers=kafka.secure_bootstrap, es_url=es.url, workdir=wd,
                           group=group, memory_limit="32MiB", shutdown_timeout="10s",
                           librdkafka=secure)


def start(procs, wd, kafka, es, ca, password, group, mechanism="SCRAM-SHA-512"):
    env = dict(os.environ, IT_KAFKA_PW=password)
    return procs.add(H.Sluice(config(wd, kafka, es, ca, group, mechanism), wd, env=env))


def refused(ck, sl, what, pattern, password):
    """sluice must stop by itself at start, with exit 2 and an error naming the cause."""
    t0 = time.monotonic()
    code = None
    try:
        code = sl.proc.wait(timeout=60)
    except Exception:  # noqa: BLE001
        sl.kill()
    took = time.monotonic() - t0
    ck.eq(code, 2, f"{what}: sluice stops by itself with exit 2 ({took:.1f} s)")
    ck.check(took < 30, f"{what}: within 30 s of starting ({took:.1f} s)")
    lines = sl.lines(r"cannot connect to the brokers")
    ck.check(lines and H.re.search(pattern, lines[0]),
             f"{what}: the error names the cause (/{pattern}/)", sl.log_tail(6))
    ck.check(lines and "sasl.password" in lines[0] and "ssl.ca.location" in lines[0],
             f"{what}: the error names the settings to check", lines[:1])
    ck.check(password not in sl.text(), f"{what}: the password is not in the log")
    return took


def delivered(ck, procs, kafka, es, sl, group, what):
    """Every record of topic `logs` once, offsets committed to the end, exit 0."""
    got = es.wait_docs(N, 120, label=what, stall_s=60)
    ck.check(got == N, f"{what}: every record arrived ({got} of {N})", sl.log_tail(10))
    ok, committed, highs = R.wait_committed(kafka, group, "logs", PARTITIONS, 60)
    ck.check(ok, f"{what}: the group's committed offsets reach the high watermarks",
             (committed, highs))
    ck.eq(sl.terminate(30), 0, f"{what}: exit 0 after SIGTERM")
    H.check_every_seq_once(ck, es.dump(), range(N), what)
    ck.check(PASSWORD not in sl.text(), f"{what}: the password is not in the log")
    return got


def broker(procs, wd, name, pki, dist):
    kafka = procs.add(R.KafkaServer(os.path.join(wd, name), partitions=PARTITIONS, dist=dist,
                                    scram={USER: PASSWORD}, plain={USER: PASSWORD}, pki=pki))
    kafka.create_topic("logs", PARTITIONS)
    # spread over every partition, so each one's committed offset is checked
    R.produce(kafka.bootstrap, "logs", [R.log_record(i) for i in range(N)],
              partitions=lambda i: i % PARTITIONS)
    return kafka


def main():
    ck = H.Checker("test_real_kafka_security")
    H.require_binaries(H.SLUICE_BIN, H.ESEMU_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            pki = H.make_pki(wd)
            es = procs.add(H.EsEmu(workdir=wd))

            # ---- 1: Kafka 3.9, SCRAM-SHA-512
            k39 = broker(procs, wd, "kafka39", pki, "kafka39")
            sl = start(procs, os.path.join(wd, "badpw"), k39, es, pki["ca"], "not-the-password",
                       "secure39")
            t_pw = refused(ck, sl, "3.9 wrong password", r"(?i)authentication", PASSWORD)
            sl = start(procs, os.path.join(wd, "badca"), k39, es, pki["wrongca"], PASSWORD,
                       "secure39")
            t_ca = refused(ck, sl, "3.9 wrong CA", r"(?i)certificate", PASSWORD)
            ck.eq(es.docs(), 0, "nothing was delivered by the refused runs")
            sl = start(procs, os.path.join(wd, "scram39"), k39, es, pki["ca"], PASSWORD,
                       "secure39")
            n39 = delivered(ck, procs, k39, es, sl, "secure39", "3.9 SCRAM-SHA-512")
            k39.kill9()  # its JVM's memory back before the next broker starts
            es.reset()

            # ---- 2 and 3: Kafka 4.4
            k44 = broker(procs, wd, "kafka44", pki, "kafka")
            sl = start(procs, os.path.join(wd, "plain44"), k44, es, pki["ca"], PASSWORD,
                       "plain44", mechanism="PLAIN")
            n44 = delivered(ck, procs, k44, es, sl, "plain44", "4.4 PLAIN over TLS")
            es.reset()
            sl = start(procs, os.path.join(wd, "scram44"), k44, es, pki["ca"], PASSWORD,
                       "scram44")
            rdk = H.subprocess.run(["pkg-config", "--modversion", "rdkafka"], capture_output=True,
                                   text=True).stdout.strip()
            old = tuple(int(x) for x in (rdk or "0").split(".")[:3]) < (2, 6, 1)
            if old:
                refused(ck, sl, f"4.4 SCRAM with librdkafka {rdk}",
                        r"librdkafka \S+ cannot authenticate with SCRAM to them \(2\.6\.1 can\); "
                        r"use SASL PLAIN over TLS", PASSWORD)
            else:
                delivered(ck, procs, k44, es, sl, "scram44", "4.4 SCRAM-SHA-512")
            H.log(f"RESULT kafka security: Kafka 3.9 SCRAM-SHA-512 {n39}/{N} documents, wrong "
                  f"password stopped in {t_pw:.1f} s, wrong CA in {t_ca:.1f} s (exit 2); Kafka 4.4 "
                  f"PLAIN over TLS {n44}/{N}; Kafka 4.4 SCRAM with librdkafka {rdk}: "
                  f"{'exit 2 with the librdkafka hint' if old else 'delivered'}")


if __name__ == "__main__":
    main()
