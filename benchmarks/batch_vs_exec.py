"""Cost of N commands on one lab instance: one SSH exec each (what testinfra does) vs one
batched exec (what the engine does), and of opening direct-tcpip streams. Side by side,
medians of repeated rounds, ratios.

Needs root and the lab lock (brings the lab up and down itself).
Usage: python benchmarks/batch_vs_exec.py [rounds]
"""

from __future__ import annotations

import statistics
import sys
import time

from lablock import fresh_lab

from pytest_drcheck.engine import Engine
from pytest_drcheck.inventory import load_plan
from pytest_drcheck.targets.factory import TargetFactory

COMMANDS = [f"getent ahostsv4 dc01.corp.example; echo {i}" for i in range(20)]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with fresh_lab():
        measure(rounds)


def measure(rounds: int) -> None:
    plan = load_plan("inventories/lab.yaml")
    target = Engine(plan, TargetFactory()).target("app01")
    started = time.perf_counter()
    target.connect()
    target.run("true", 10)
    first = time.perf_counter() - started
    one_by_one, batched, streams = [], [], []
    for _ in range(rounds):
        started = time.perf_counter()
        for command in COMMANDS:
            assert target.run(command, 10).ok
        one_by_one.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert all(r.ok for r in target.run_batch(COMMANDS, 10))
        batched.append(time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(20):
            target.open_stream("10.77.0.53", 53, 3).close()
        streams.append((time.perf_counter() - started) / 20)
    target.close()
    a, b = statistics.median(one_by_one), statistics.median(batched)
    print(f"app01 over SSH, {len(COMMANDS)} commands, {rounds} rounds (medians)")
    print(f"  connect + first command         {first * 1000:8.1f} ms")
    each = a / len(COMMANDS) * 1000
    print(f"  one exec per command (testinfra) {a * 1000:8.1f} ms  ({each:.1f} ms each)")
    print(f"  one batched exec                 {b * 1000:8.1f} ms  ratio {a / b:.1f}x faster")
    print(f"  direct-tcpip stream open+close   {statistics.median(streams) * 1000:8.2f} ms")


if __name__ == "__main__":
    main()
