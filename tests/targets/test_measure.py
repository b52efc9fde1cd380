"""What the targets cost on loopback (medians), with loose ceilings that catch regressions.

Run with ``-s`` to see the figures, e.g. ``pytest tests/targets/test_measure.py -s``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest

from pytest_drcheck.targets.local import LocalTarget
from tests.targets.conftest import EchoServer, MakeTarget

BATCH = [f"echo {i}" for i in range(20)]


def median_seconds(action: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def report(label: str, seconds: float) -> None:
    print(f"{label:<44} {seconds * 1000:8.2f} ms")


def test_ssh_costs(make_target: MakeTarget, echo_server: EchoServer,
                   record_property: Callable[[str, object], None]) -> None:
    def first_command() -> None:
        target = make_target()
        target.run("true", 10)
        target.close()

    target = make_target()
    target.run("true", 10)
    figures = {
        "ssh: connect + first command": median_seconds(first_command, 5),
        "ssh: each further command (`true`)": median_seconds(lambda: target.run("true", 10), 20),
        "ssh: run_batch of 20 commands": median_seconds(lambda: target.run_batch(BATCH, 10), 10),
        "ssh: open_stream + close (direct-tcpip)": median_seconds(
            lambda: target.open_stream("127.0.0.1", echo_server.port, 5).close(), 50),
    }
    print()
    for label, seconds in figures.items():
        report(label, seconds)
        record_property(label, f"{seconds * 1000:.2f} ms")
    assert figures["ssh: connect + first command"] < 2.0
    assert figures["ssh: each further command (`true`)"] < 1.0
    assert figures["ssh: run_batch of 20 commands"] < 2.0
    assert figures["ssh: open_stream + close (direct-tcpip)"] < 0.1


@pytest.mark.parametrize("rounds", [10])
def test_local_costs(rounds: int, echo_server: EchoServer) -> None:
    target = LocalTarget("runner")
    figures = {
        "local: each command (`true`)": median_seconds(lambda: target.run("true", 10), rounds),
        "local: run_batch of 20 commands": median_seconds(
            lambda: target.run_batch(BATCH, 10), rounds),
        "local: open_stream + close": median_seconds(
            lambda: target.open_stream("127.0.0.1", echo_server.port, 5).close(), rounds),
    }
    print()
    for label, seconds in figures.items():
        report(label, seconds)
    assert figures["local: each command (`true`)"] < 0.5
