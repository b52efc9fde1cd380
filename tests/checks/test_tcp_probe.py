"""Connections made by a host through a real sshd on 127.0.0.1: what a connection attempt
observed (connected, refused, timed out) and when it observed nothing (the host's own SSH
connection stalled, issue 14 item 2; a stream that is only the way to a property)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pytest_drcheck.checks.tcp_probe import Connection, connect, open_means
from pytest_drcheck.durations import format_duration
from pytest_drcheck.model import CouldNotObserve
from pytest_drcheck.targets.local import LocalTarget
from pytest_drcheck.targets.ssh import SshTarget
from tests.checks.ops_site import Server, ssh_target, stalled
from tests.plugin.sockets import blackhole, closed_port
from tests.targets.sshd import Sshd, start_sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if os.geteuid() != 0:
        pytest.skip("sshd logins for the current user need root here")
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def target(sshd: Sshd, tmp_path: Path) -> Iterator[SshTarget]:
    made = ssh_target(sshd, tmp_path)
    yield made
    made.close()


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """A port whose SYNs go unanswered: a dropping firewall (tests.plugin.sockets)."""
    with blackhole() as port:
        yield port


def test_connections_observed(target: SshTarget, blackhole_port: int) -> None:
    server = Server(None)
    try:
        assert connect(target, "127.0.0.1", server.port, 3.0).outcome == "connected"
    finally:
        server.close()
    assert connect(target, "127.0.0.1", closed_port(), 3.0).outcome == "refused"
    # A path that drops: the connection answers `true` at once, so the timeout is the path's.
    dropped = connect(target, "127.0.0.1", blackhole_port, 1.0)
    assert dropped == Connection("timed out", dropped.seconds, 1.0)
    assert dropped.observed == "timed out after 1 s"


def test_a_stalled_connection_is_not_a_timed_out_path(target: SshTarget, sshd: Sshd) -> None:
    """Issue 14 item 2: while sshd is stuck (a synchronous name lookup for another channel)
    every channel open times out; before, that read "backup server ... timed out". Here the
    instance's sshd is stopped outright: nothing about the path was observed."""
    server = Server(None)
    try:
        with stalled(sshd), pytest.raises(CouldNotObserve) as info:
            connect(target, "127.0.0.1", server.port, 1.0)
    finally:
        server.close()
    assert str(info.value) == (
        f"127.0.0.1:{server.port} from app01: timed out after 1 s; app01's own connection did "
        "not run `true` in 1 s either (timed out opening an SSH session): the connection "
        "stalled, not the network path")


def test_a_connection_sshd_confirms_after_the_timeout_is_not_a_timed_out_path(
        target: SshTarget, sshd: Sshd) -> None:
    """An overloaded instance (or one out of CPU credits) answers late: sshd is stopped past
    the connect timeout and resumed while `true` may still run. It then makes the connection
    it was asked for, to a listening server: before, that read "timed out" (a FAILED reach,
    a pass where a policy expects the path silent)."""
    round_trip = max(_true_round_trip(target) for _ in range(3))
    connect_timeout = max(1.0, 8 * round_trip)
    server = Server(None)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            with stalled(sshd):
                attempt = pool.submit(connect, target, "127.0.0.1", server.port,
                                      connect_timeout)
                # Resumed once the open has timed out, with most of `true`'s time left.
                time.sleep(connect_timeout + 2 * round_trip)
            with pytest.raises(CouldNotObserve) as info:
                attempt.result(timeout=60)
    finally:
        server.close()
    assert str(info.value) == (
        f"127.0.0.1:{server.port} from app01: timed out after "
        f"{format_duration(connect_timeout)}, then opened: app01's sshd confirmed the "
        "connection late, so the path is not silent; whether the path or the instance was slow "
        "cannot be told (a larger connect_timeout can)")


def _true_round_trip(target: SshTarget) -> float:
    started = time.monotonic()
    assert target.run("true", 30).ok
    return time.monotonic() - started


def test_a_stream_that_is_only_a_means_is_not_observed_when_refused() -> None:
    closed = closed_port()
    with pytest.raises(CouldNotObserve) as info:
        open_means(LocalTarget("app01"), "127.0.0.1", closed, 1.0, "the health probe")
    assert str(info.value) == (f"cannot open the health probe's connection: 127.0.0.1:{closed} "
                               "from app01: connection refused")
