#!/usr/bin/python3
# ctest-labels: reliability asan
# (under ASan it skips its RSS check and runs for the read-buffer admission paths)
"""Forward input, ack: delivered, with many large chunks against one memory budget.

memory_limit 32MiB (a pipeline budget of 12,582,912 bytes), PackedForward chunks of 4.68 MiB
(4,000 events of ~1.2 KB) from fwdload clients that wait for acks and resend what is not acked
(same chunk id, so a resent event overwrites its document). Each scenario runs its own sluice
and esemu and must end with every chunk acked, the emulator holding each event exactly once,
nothing left in flight, and peak RSS (VmHWM) at most memory_limit + 16 MiB:
 1. stall: 10 connections, one chunk each, Elasticsearch stalled 20 s.
 2. tail: 10 connections × 2 chunks, each frame's last 100 bytes sent 1 s late.
Before the input admitted reads against the budget, 6 of 10 resp. 0 of 20 chunks were acked in
100 s: complete requests sat in paused connections' buffers, with nothing in flight.
test_forward_budget_many.py runs 40 connections × 3 chunks (healthy, and stalled with resends).
Run one scenario: test_forward_budget.py stall|tail."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import fwdload as L  # noqa: E402

MEM_LIMIT_MIB = 32
EVENTS = 4000
PAD = "x" * 1200  # 4,000 entries of 1,227 bytes: 4.68 MiB per chunk


def config(es_url, wd, hp, max_frame="6MiB"):
    return H.config(
        H.service(wd, memory_limit=f"{MEM_LIMIT_MIB}MiB", http_listen=f"127.0.0.1:{hp}",
                  shutdown_timeout="10s", stats_interval="5s", log_level="info"),
        [H.forward_input("f", ack="delivered", max_frame_size=max_frame)],
        [H.es_output(es_url, match="**", index="fwd-%Y.%m.%d", id="kafka", op="create",
                     batch_max_wait="100ms")])


def port_of(sl):
    for ln in sl.lines(r"listening on 127\.0\.0\.1:\d+"):
        return int(ln.split("listening on 127.0.0.1:")[1].split()[0])
    return None


def run_scenario(ck, name, *, conns, chunks, stall_ms=0, tail_delay=0.0, ack_timeout=30.0,
                 pipeline=True, timeout_s=100, events=EVENTS, max_frame="6MiB"):
    with H.Procs() as procs:
        wd = procs.tmpdir()
        es = procs.add(H.EsEmu(workdir=wd))
        hp = H.free_port()
        sl = procs.add(H.Sluice(config(es.url, wd, hp, max_frame), wd))
        if not ck.check(sl.wait_log(r"listening on 127\.0\.0\.1:\d+", 15),
                        f"{name}: sluice listens", sl.log_tail()):
            return
        if stall_ms:
            es.faults(stall_ms=stall_ms)
        clients, n = L.make_clients(port_of(sl), conns, chunks, events, PAD, name,
                                    pipeline=pipeline, tail_delay=tail_delay,
                                    ack_timeout=ack_timeout)
        took = L.run_clients(clients, timeout_s, lambda: L.log_state(sl, name))
        r = L.chunk_report(clients)
        H.log(f"{name}: {r}")
        ck.check(r["unacked"] == 0 and r["acked_twice"] == 0,
                 f"{name}: each of the {r['chunks']} chunks acked once ({took:.1f} s, "
                 f"{r['resends']} resend rounds)",
                 f"{r['acked']} acked, {r['unacked']} never, {r['acked_twice']} twice")
        es.wait_docs(n, 30, label=name, stall_s=10)
        L.check_each_once(ck, es, n, name)
        ck.eq(L.metric(sl, "sluice_forward_stalls_total"), 0.0,
              f"{name}: sluice_forward_stalls_total (reading never waited with nothing in flight)")
        closed = L.metric(sl, "sluice_forward_partial_closed_total")
        H.log(f"{name}: connections closed by the partial-request breaker: {closed}, budget "
              f"waits: {L.metric(sl, 'sluice_forward_budget_waits_total')}")
        for ln in sl.lines(r" (warn|error) ")[:10]:
            H.log(f"{name}: sluice: {ln}")
        ck.eq(sl.terminate(30), 0, f"{name}: exit code after SIGTERM")
        H.check_conservation(ck, sl.final_stats(), input_name="f", label=f"{name}: ")
        peak = sl.rss.peak_hwm_kb / 1024
        fs = sl.final_stats() or {}
        if os.environ.get("SLUICE_SANITIZED") != "1":
            ck.check(peak <= MEM_LIMIT_MIB + 16,
                     f"{name}: peak RSS {peak:.1f} MiB <= {MEM_LIMIT_MIB} + 16")
        received = ((fs.get("inputs") or {}).get("f") or {}).get("received")
        H.log(f"RESULT {name}: {r['acked']}/{r['chunks']} chunks acked in {took:.1f} s, "
              f"{r['resends']} resend rounds, events received {received} for {n} sent "
              f"(resent chunks arrive again), peak RSS {peak:.1f} MiB, budget_peak "
              f"{fs.get('budget_peak')} of {fs.get('budget_limit')}, stall warnings "
              f"{len(sl.lines('no request taken in and no byte read'))}, closed by the "
              f"breaker {closed}")


SCENARIOS = {
    "stall": dict(conns=10, chunks=1, stall_ms=20000),
    "tail": dict(conns=10, chunks=2, tail_delay=1.0),
    "whole": dict(conns=3, chunks=2, events=10_250, max_frame="12MiB"),
}


def run_all(test, scenarios):
    """Runs the scenarios named on the command line (default: all) as one test."""
    ck = H.Checker(test)
    H.require_binaries(H.SLUICE_BIN, H.ESEMU_BIN)
    with ck:
        for name in sys.argv[1:] or list(scenarios):
            run_scenario(ck, name, **scenarios[name])


if __name__ == "__main__":
    run_all("test_forward_budget", SCENARIOS)
