"""reach: each outcome of a real TCP connection made through the target, judged against open
and closed; an attempt that says nothing about the connection could not be observed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_drcheck.checks.reach import ReachCheck
from pytest_drcheck.checks.tcp_probe import Connection, connect, parse_endpoint
from pytest_drcheck.model import CouldNotObserve, Outcome
from pytest_drcheck.targets.local import LocalTarget
from tests.checks.instances import InstanceTarget, context, item_of
from tests.plugin.sockets import Listener, closed_port

CHECK = ReachCheck()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def verdict(target: str, expect: str = "open") -> tuple[Outcome, str]:
    item = item_of(CHECK, {"target": target, "expect": expect})
    observation = CHECK.evaluate(context(item, InstanceTarget()))
    return observation.outcome, observation.reason or observation.observed


def test_connected_and_refused_against_open_and_closed(listener: Listener) -> None:
    port = closed_port()
    outcome, observed = verdict(f"127.0.0.1:{listener.port}")
    assert outcome is Outcome.PASSED and observed.startswith("connected in ")
    assert verdict(f"127.0.0.1:{listener.port}", "closed")[1].startswith(
        "expected closed, observed connected in ")
    assert verdict(f"127.0.0.1:{port}") == (Outcome.FAILED,
                                            "expected open, observed refused")
    assert verdict(f"127.0.0.1:{port}", "closed") == (Outcome.PASSED, "refused")


def test_judged_timeouts_and_unreachable() -> None:
    item = item_of(CHECK, {"target": "10.77.0.53:53", "connect_timeout": "2s"})
    timed_out = CHECK.judge(item, Connection("timed out", 2.0, 2.0))
    assert timed_out.reason == "expected open, observed timed out after 2 s"
    closed = item_of(CHECK, {"target": "10.77.0.53:53", "expect": "closed"})
    assert CHECK.judge(closed, Connection("unreachable", 0.01, 3.0)).outcome is Outcome.PASSED


def test_a_name_that_does_not_resolve_is_not_a_closed_port() -> None:
    # Passes the way the target raises it: an error naming the name, never "closed".
    with pytest.raises(CouldNotObserve, match=r"^dc09.corp.example does not resolve on app01"):
        verdict("dc09.corp.example:636", "closed")


def test_a_channel_the_instances_sshd_refuses_is_not_refused_by_the_destination() -> None:
    # Before: "expected closed" passed on "error: ..." read as not connected.
    with pytest.raises(CouldNotObserve, match=r"sshd refused the channel"):
        verdict("127.0.0.1:9", "closed")


def test_probe_reports_the_seconds_it_took(listener: Listener) -> None:
    result = connect(LocalTarget("app01"), "127.0.0.1", listener.port, 2.0)
    assert result.outcome == "connected" and 0 <= result.seconds < 2.0


def test_endpoints() -> None:
    assert parse_endpoint("[fd00::1]:53") == ("fd00::1", 53)
    assert parse_endpoint("dc01.corp.example:636") == ("dc01.corp.example", 636)
    assert parse_endpoint("dc01:0") is None
    assert parse_endpoint("dc01") is None
