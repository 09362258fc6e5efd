#!/usr/bin/python3
# ctest-labels: reliability
"""Forward input, ack: delivered: 40 connections × 3 chunks of 4.68 MiB (480,000 events) against
a 12,582,912-byte pipeline budget (memory_limit 32MiB), as test_forward_budget.py:
 1. healthy: Elasticsearch answers throughout; clients wait up to 30 s for each ack.
 2. resend: Elasticsearch stalled 15 s while the clients give up on an ack after 5 s and resend
    every un-acked chunk on a new connection (same chunk ids), leaving the old connections
    with data sluice has not read.
Each must end with all 120 chunks acked, each event once in the emulator, and peak RSS at most
memory_limit + 16 MiB. Before reads were admitted against the budget, 16 (healthy) and 0
(resend) of the 120 chunks were acked in 100 s, and peak RSS reached 48.4 and 274.8 MiB.
Run one scenario: test_forward_budget_many.py healthy|resend."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_forward_budget import run_all  # noqa: E402

SCENARIOS = {
    "healthy": dict(conns=40, chunks=3, timeout_s=100),
    "resend": dict(conns=40, chunks=3, stall_ms=15000, ack_timeout=5.0, timeout_s=100),
}


if __name__ == "__main__":
    run_all("test_forward_budget_many", SCENARIOS)
