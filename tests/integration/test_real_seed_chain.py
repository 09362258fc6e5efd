#!/usr/bin/python3
# ctest-labels: real
"""The seed chain on the real servers, with crashes at both hops:

  Kafka 4.4 (logs, 8 partitions, 200,000 records streamed at 5,000/s)
    -> sluice A (kafka in, forward out: require_ack, the Kafka coordinates carried as fields)
    -> sluice B (forward in, ack: delivered, id_from_kafka_fields; elasticsearch out, id: kafka)
    -> OpenSearch 2.19

While records flow, A or B (chosen at random, SLUICE_SEED replays the choice) is killed with
SIGKILL four times and restarted at once (B on the same port). A user must find every record of
the Kafka log exactly once in OpenSearch, under the id of its coordinates, the group's offsets
at the log's end, and nothing dead-lettered at either hop."""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import realservers as R  # noqa: E402

N = int(os.environ.get("REAL_RECORDS") or 200_000)
RATE = 5_000
PARTS = 8
KILLS = 4
GROUP = "sluice-real-chain"


def config_a(wd, bootstrap, b_port):
    return R.sluice_config(wd, bootstrap, None, group=GROUP, outputs=[{
        "type": "forward", "name": "fwd", "match": "kafka.**",
        "servers": [f"127.0.0.1:{b_port}"], "require_ack": True, "ack_timeout": "10s",
        "connect_timeout": "2s", "batch_max_bytes": "1MiB", "batch_max_wait": "200ms",
        "concurrency": 4, "retry_base": "100ms", "retry_max": "1s"}],
        inp={"metadata_key": None}, service={"shutdown_timeout": "20s"})


def config_b(wd, b_port, es_url):
    import json
    cfg = json.loads(R.sluice_config(wd, "unused", es_url, memory_limit="64MiB",
                                      out={"match": "**", "index": "chain", "id": "kafka",
                                           "batch_max_bytes": "2MiB"},
                                      service={"shutdown_timeout": "20s"}))
    cfg["inputs"] = [{"type": "forward", "name": "f", "listen": f"127.0.0.1:{b_port}",
                      "ack": "delivered", "id_from_kafka_fields": True}]
    return json.dumps(cfg, indent=2) + "\n"


def main():
    ck = H.Checker("test_real_seed_chain")
    H.require_binaries(H.SLUICE_BIN)
    seed = int(os.environ.get("SLUICE_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    H.log(f"kill schedule seed {seed} (SLUICE_SEED={seed} replays it)")
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir("real-chain-")
            kafka = procs.add(R.KafkaServer(os.path.join(wd, "kafka")))
            osn = procs.add(R.OpenSearch(os.path.join(wd, "opensearch")))
            kafka.create_topic("logs", PARTS)
            b_port = H.free_port()
            wa, wb = os.path.join(wd, "a"), os.path.join(wd, "b")
            cfg_a, cfg_b = config_a(wa, kafka.bootstrap, b_port), config_b(wb, b_port, osn.url)
            b = procs.add(H.Sluice(cfg_b, wb))
            ck.check(b.wait_log(r"listening on 127\.0\.0\.1:\d+", 15), "B listens", b.log_tail())
            a = procs.add(H.Sluice(cfg_a, wa))
            ck.check(a.wait_log(r"assigned \d+ partitions", 60), "A got partitions", a.log_tail())
            prod = R.Streamer(kafka.bootstrap, "logs", N, RATE, R.log_record).start()
            kills = []
            for k in range(KILLS):
                time.sleep(rng.uniform(3.0, 7.0))
                who = rng.choice("AB")
                victim = a if who == "A" else b
                ck.check(victim.alive(), f"kill {k + 1}: {who} still running before SIGKILL",
                         victim.log_tail())
                sent_at_kill = prod.sent
                victim.kill9()
                kills.append(who)
                H.log(f"kill {k + 1}/{KILLS}: {who}, producer at {sent_at_kill}, documents "
                      f"{osn.count('chain')}")
                if who == "A":
                    a = procs.add(H.Sluice(cfg_a, wa))
                    ck.check(a.wait_log(r"assigned \d+ partitions", 60),
                             f"kill {k + 1}: A got partitions again", a.log_tail())
                else:
                    b = procs.add(H.Sluice(cfg_b, wb))
                    ck.check(b.wait_log(r"listening on 127\.0\.0\.1:\d+", 15),
                             f"kill {k + 1}: B listens again on its port", b.log_tail())
            # Measured when the last SIGKILL was sent: waiting for the restarted A's partitions
            # (a rebalance) can outlast the stream, which says nothing about the kills.
            ck.check(sent_at_kill < N,
                     f"the kills landed while records flowed (the last at {sent_at_kill}/{N})")
            prod.join()
            R.check_all_arrived(ck, kafka=kafka, osn=osn, group=GROUP, n=N, index="chain",
                                stall_s=90, flat=True,
                                shippers=[("A: ", a, "k"), ("B: ", b, "f")],
                                dl_dirs=[os.path.join(wa, "dead-letter"),
                                         os.path.join(wb, "dead-letter")])
            H.log(f"kills {kills}")


if __name__ == "__main__":
    main()
