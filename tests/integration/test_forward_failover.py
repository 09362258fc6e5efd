#!/usr/bin/python3
# ctest-labels: asan
"""Forward output: a server that accepts connections and reads requests but never acks them is
left for the next healthy one (mockkafka -> sluice -> fake Forward servers of
test_forward_out.py).

Two outputs of one sluice, ack_timeout 1s, max_ack_timeouts and recover_wait as set below:
 1. list:     servers [A, B] (a failover list). A never acks.
 2. weighted: servers [C, D] with weights [50, 50]. C never acks; recover_wait 3s, so C is
    tried again after it and left again.
Checks, per output: every record arrives at the acking server (nothing lost), the warning names
the stuck server, sluice_forward_output_server_unhealthy{server=<stuck>} is 1 and
sluice_forward_output_failovers_total counts it, the group's committed offsets reach the high
watermarks (every record acked end to end), and at SIGTERM conservation holds with nothing in
flight. Before, only a failed connect or handshake moved on: the batches were resent to the stuck
server for ever, nothing reached the other one and nothing was committed."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from test_forward_out import FakeForward, entries_of  # noqa: E402

GROUP = "fwd-failover"
N1, N2 = 6000, 3000
NEVER = ["drop"] * 1_000_000  # read every request, answer none


def config(wd, bootstrap, a, b, c, d):
    each = {"ack_timeout": "1s", "batch_max_bytes": "64KiB", "batch_max_wait": "100ms",
            "retry_base": "100ms", "retry_max": "1s"}
    return H.config(
        H.service(wd, memory_limit="32MiB", shutdown_timeout="10s", stats_interval="2s"),
        [H.kafka_input(bootstrap, GROUP, ["fl", "fw"], tag="kafka.${topic}")],
        [H.forward_output([a.port, b.port], name="list", match="kafka.fl", recover_wait="120s",
                          concurrency=2, **each),
         H.forward_output([c.port, d.port], name="weighted", match="kafka.fw", weights=[50, 50],
                          recover_wait="3s", **each)])


def acked(server, topic):
    """(partition, offset) -> times the server acked a request carrying that record."""
    out = {}
    for f in server.snapshot()[0]:
        if f["action"] != "ack":
            continue
        for e in entries_of(f["obj"]):
            r = e[1]
            if isinstance(r, dict) and r.get("kafka_topic") == topic:
                k = (r.get("kafka_partition"), r.get("kafka_offset"))
                out[k] = out.get(k, 0) + 1
    return out


def log_records(mk, topic, since=None):
    """Every (partition, offset) in the topic's log, past `since` ({partition: offset})."""
    return {(p, off) for p, (lo, hi) in mk.watermarks(topic).items()
            for off in range((since or {}).get(p, lo), hi)}


def wait_all(server, topic, want, timeout):
    deadline = time.monotonic() + timeout
    got = {}
    while time.monotonic() < deadline:
        got = acked(server, topic)
        if want <= set(got):
            break
        time.sleep(0.3)
    return got


def requests_to(server):
    return len(server.snapshot()[0])


def metric_of(sl, name, output, server):
    for labels, v in sl.metrics(name):
        if labels.get("output") == output and labels.get("server") == server:
            return v
    return None


def wait_committed(mk, topic, timeout):
    wm = {p: hi for p, (lo, hi) in mk.watermarks(topic).items()}
    deadline = time.monotonic() + timeout
    got = {}
    while time.monotonic() < deadline:
        got = mk.committed(GROUP, topic)
        if all(got.get(p, -1) >= hi for p, hi in wm.items()):
            break
        time.sleep(0.5)
    return got, wm


def check_output(ck, sl, mk, name, topic, stuck, good, want, timeout):
    got = wait_all(good, topic, want, timeout)
    missing = len(want - set(got))
    ck.check(missing == 0, f"{name}: all {len(want)} records acked by {good.name}",
             f"{missing} missing; requests to {stuck.name}: {requests_to(stuck)}, to "
             f"{good.name}: {requests_to(good)}; {sl.log_tail(8)}")
    addr = f"127.0.0.1:{stuck.port}"
    warned = sl.lines(rf"{name}.*{addr}: \d+ ack timeouts in a row .*marked unhealthy")
    ck.check(warned, f"{name}: a warning names {addr} as unhealthy after ack timeouts")
    if warned:
        H.log(f"{name}: {warned[0]}")
    return addr


def main():
    ck = H.Checker("test_forward_failover")
    H.require_binaries(H.SLUICE_BIN, H.MOCKKAFKA_BIN)
    with ck:
        with H.Procs() as procs:
            wd = procs.tmpdir()
            mk = procs.add(H.MockKafka(topics=["fl:2", "fw:2"], workdir=wd))
            a, b = FakeForward("A", plan=NEVER), FakeForward("B")
            c, d = FakeForward("C", plan=NEVER), FakeForward("D")
            sl = procs.add(H.Sluice(config(wd, mk.bootstrap, a, b, c, d), wd))
            ck.check(sl.wait_log(r"assigned \d+ partitions", 30), "sluice got partitions",
                     sl.log_tail())

            mk.produce("fl", N1)
            mk.produce("fw", N1)
            ck.eq(mk.wait_produced(30), 2 * N1, "produced (first round)")
            want_l, want_w = log_records(mk, "fl"), log_records(mk, "fw")
            ends = {t: {p: hi for p, (lo, hi) in mk.watermarks(t).items()} for t in ("fl", "fw")}

            # 1. failover list
            addr_a = check_output(ck, sl, mk, "list", "fl", a, b, want_l, 60)
            ck.eq(metric_of(sl, "sluice_forward_output_server_unhealthy", "list", addr_a), 1.0,
                  "list: sluice_forward_output_server_unhealthy for A (within recover_wait)")
            ck.eq(metric_of(sl, "sluice_forward_output_server_unhealthy", "list",
                            f"127.0.0.1:{b.port}"), 0.0,
                  "list: sluice_forward_output_server_unhealthy for B")
            fo_a = metric_of(sl, "sluice_forward_output_failovers_total", "list", addr_a)
            ck.check(fo_a is not None and fo_a >= 1,
                     f"list: sluice_forward_output_failovers_total for A counts it ({fo_a})")
            n_a = requests_to(a)
            H.log(f"list: requests A={n_a} B={requests_to(b)}")

            # 2. weighted; then C's recover_wait passes, it is tried again and left again
            addr_c = check_output(ck, sl, mk, "weighted", "fw", c, d, want_w, 60)
            time.sleep(4)
            mk.produce("fw", N2)
            mk.produce("fl", N2)
            ck.eq(mk.wait_produced(30), 2 * (N1 + N2), "produced (second round)")
            want2 = log_records(mk, "fw", ends["fw"])
            got = wait_all(d, "fw", want2, 60)
            ck.check(len(want2) == N2 and want2 <= set(got),
                     f"weighted: all {len(want2)} later records acked by D",
                     f"{len(want2 - set(got))} missing")
            want2 = log_records(mk, "fl", ends["fl"])
            got = wait_all(b, "fl", want2, 60)
            ck.check(len(want2) == N2 and want2 <= set(got),
                     f"list: all {len(want2)} later records acked by B",
                     f"{len(want2 - set(got))} missing")
            fo_c = metric_of(sl, "sluice_forward_output_failovers_total", "weighted", addr_c)
            ck.check(fo_c is not None and fo_c >= 2,
                     f"weighted: C was tried again after recover_wait and left again "
                     f"(failovers {fo_c})")
            ck.eq(requests_to(a), n_a,
                  "list: no request went to A while it was unhealthy (recover_wait 120s)")
            H.log(f"RESULT failover: list A={requests_to(a)} B={requests_to(b)} requests, "
                  f"failovers A={fo_a}; weighted C={requests_to(c)} D={requests_to(d)} "
                  f"requests, failovers C={fo_c}")

            for topic in ("fl", "fw"):
                got, wm = wait_committed(mk, topic, 30)
                ck.check(all(got.get(p, -1) >= hi for p, hi in wm.items()),
                         f"{topic}: committed offsets reached the high watermarks",
                         f"committed {got}, watermarks {wm}")
            ck.eq(sl.terminate(30), 0, "exit code after SIGTERM")
            inp = H.check_conservation(ck, sl.final_stats())
            if inp:
                ck.eq(inp["delivered"], 2 * (N1 + N2), "every record delivered")
            ck.check(all(not x.violations for x in (a, b, c, d)), "no protocol violations",
                     [x.violations[:2] for x in (a, b, c, d)])


if __name__ == "__main__":
    main()
