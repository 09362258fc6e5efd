#!/usr/bin/python3
# ctest-labels: reliability
"""A chain of two sluice processes survives kill -9 of either, without loss
and without duplicates.

  mockkafka (logs, 8 partitions, 200,000 records)
    -> sluice A (kafka in, forward out: require_ack, kafka_fields on)
    -> sluice B (forward in, ack: delivered, id_from_kafka_fields: true; elasticsearch out, id: kafka,
                 op: create)
    -> esemu

While the producer runs (paced at 5,000 records/s), three times, 2-5 s apart, one of A or B (chosen at random) is killed with SIGKILL and restarted at
once (B on the same port). A resends unacked chunks (same chunk id) to the new B; a new A re-reads
from its last committed offsets and builds new chunks. Either way each record reaches B again with
the same kafka_topic/kafka_partition/kafka_offset fields, so B's Elasticsearch _id is
`<topic>-<partition>-<offset>` on every delivery and a resend is a 409 on create, not a second
document. At the end every seq is indexed exactly once.

REQUIRES the forward input option `id_from_kafka_fields` (it sets the event's Kafka coordinates from
the record's kafka_topic/kafka_partition/kafka_offset fields); without it B refuses the config.
Set SLUICE_SEED to replay a run's kill schedule.

RELIABILITY_LONG=1 (make reliability RELIABILITY_LONG=1): 500,000 records (100 s of production at
5,000/s) and 15 kills. A kill that waits for A's reassignment takes 10-15 s, so the last kills
can land after every record is indexed (4 of 15 in the run of 2026-11-27): they still test a
restart of an idle chain."""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

LONG = os.environ.get("RELIABILITY_LONG") == "1"
N = 500_000 if LONG else 200_000
PARTS = 8
KILLS = 15 if LONG else 3
GROUP = "seed-chain"
RATE = 5000


def config_a(wd, bootstrap, b_port):
    return H.config(
        H.service(wd, dead_letter="dead-letter-a", memory_limit="32MiB", shutdown_timeout="20s",
                  stats_interval="5s"),
        [H.kafka_input(bootstrap, GROUP, ["logs"], tag="kafka.${topic}")],
        [H.forward_output([b_port], require_ack=True, ack_timeout="10s", connect_timeout="2s",
                          batch_max_bytes="1MiB", batch_max_wait="200ms", concurrency=4,
                          retry_base="100ms", retry_max="1s")])


def config_b(wd, b_port, es_url):
    return H.config(
        H.service(wd, dead_letter="dead-letter-b", shutdown_timeout="20s", stats_interval="5s"),
        [H.forward_input("f", listen=f"127.0.0.1:{b_port}", ack="delivered",
                         id_from_kafka_fields=True)],
        [H.es_output(es_url, index="chain-%Y.%m.%d", id="kafka", op="create",
                     batch_max_bytes="2MiB", batch_max_wait="200ms", concurrency=4)])


def main():
    ck = H.Checker("test_seed_chain")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN, H.ESEMU_BIN)
    seed = int(os.environ.get("SLUICE_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    H.log(f"kill schedule seed {seed} (SLUICE_SEED={seed} replays it)")
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=[f"logs:{PARTS}"], workdir=wd))
            es = procs.add(H.EsEmu(workdir=wd))
            b_port = H.free_port()
            cfg_a = config_a(wd, mk.bootstrap, b_port)
            cfg_b = config_b(wd, b_port, es.url)
            b = procs.add(H.Sluice(cfg_b, os.path.join(wd, "b")))
            if not ck.check(b.wait_log(r"listening on 127\.0\.0\.1:\d+", 15), "B listens",
                            b.log_tail()):
                raise RuntimeError("B did not start (does the forward input know "
                                   "id_from_kafka_fields?)")
            a = procs.add(H.Sluice(cfg_a, os.path.join(wd, "a")))
            ck.check(a.wait_log(r"assigned \d+ partitions", 30), "A got partitions", a.log_tail())
            # Paced so that the kills land while records flow (about 40 s of production).
            mk.produce("logs", N, group=GROUP, rate=RATE)
            kills = []
            for k in range(KILLS):
                H.time.sleep(rng.uniform(2.0, 5.0))
                who = rng.choice("AB")
                victim = a if who == "A" else b
                ck.check(victim.alive(), f"kill {k + 1}: {who} still running before SIGKILL",
                         victim.log_tail())
                before = es.docs()
                victim.kill9()
                kills.append((who, before))
                H.log(f"kill {k + 1}/{KILLS}: {who}, esemu docs {before}")
                if who == "A":
                    a = procs.add(H.Sluice(cfg_a, os.path.join(wd, "a")))
                    ck.check(a.wait_log(r"assigned \d+ partitions", 30),
                             f"kill {k + 1}: A got partitions again", a.log_tail())
                else:
                    b = procs.add(H.Sluice(cfg_b, os.path.join(wd, "b")))
                    ck.check(b.wait_log(r"listening on 127\.0\.0\.1:\d+", 15),
                             f"kill {k + 1}: B listens again on its port", b.log_tail())
            got = es.wait_docs(N, timeout_s=300 if LONG else 150, label="chain", stall_s=40)
            ck.check(got >= N, f"esemu reached {N} docs after {KILLS} SIGKILLs (got {got})",
                     "A:\n" + a.log_tail(15) + "\nB:\n" + b.log_tail(15))
            ck.check(mk.wait_produced(60) == N, "mockkafka produced everything")
            ck.eq(a.terminate(60), 0, "A exit code after SIGTERM")
            ck.eq(b.terminate(60), 0, "B exit code after SIGTERM")
            H.check_conservation(ck, a.final_stats(), input_name="k", label="A: ")
            H.check_conservation(ck, b.final_stats(), input_name="f", label="B: ")
            H.check_broker_dropped(ck, mk)
            stats = es.stats()
            docs = es.dump()
            r = H.check_every_seq_once(ck, docs, range(N), f"chain after kill -9 x{KILLS}")
            ids_ok = all(d.get("_id") == "logs-%d-%d" % (d["_source"]["kafka_partition"],
                                                          d["_source"]["kafka_offset"])
                         for d in docs[:1000] if isinstance(d.get("_source"), dict)
                         and "kafka_partition" in d["_source"])
            ck.check(ids_ok, "B's _id is logs-<partition>-<offset> from the carried fields",
                     [(d.get("_id"), d["_source"].get("kafka_partition"),
                       d["_source"].get("kafka_offset")) for d in docs[:3]])
            H.log(f"RESULT seed chain: kills {kills}; docs {r['docs']} unique {r['unique']}; "
                  f"conflicts_409 {stats.get('conflicts_409')} created {stats.get('created')}")
            ck.eq(int(stats.get("created", -1)), N, "esemu created (one create per seq)")


if __name__ == "__main__":
    main()
