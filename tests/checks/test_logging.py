"""logging: markers sent by the instance to a real rsyslog on 127.0.0.1 and searched for on
the collector (the runner, through its own target); delivery observed, failures judged, and
a collector that could not be searched reported as not observed."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pytest_drcheck.checks.collector_search import Sighting
from pytest_drcheck.checks.logging_delivery import (
    Delivery,
    LoggingCheck,
    NotSent,
    logger_command,
    new_marker,
    syslog_line,
    verify_command,
)
from pytest_drcheck.durations import parse_duration
from pytest_drcheck.model import CouldNotObserve, Observation, Outcome, PlanItem
from pytest_drcheck.targets.base import Stream
from pytest_drcheck.targets.local import LocalTarget
from pytest_drcheck.targets.ssh import SshSettings, SshTarget
from tests.checks.ops_site import (
    SITE,
    context,
    plan_items,
    problems_of,
    ssh_target,
    stalled,
)
from tests.plugin import daemons
from tests.plugin.sockets import closed_port
from tests.targets.sshd import Sshd, start_sshd

CHECK = LoggingCheck()


@dataclass
class Collector:
    port: int
    received: Path


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    directory = tmp_path_factory.mktemp("rsyslog")
    port = daemons.free_port()
    daemon, received = daemons.rsyslog(directory, port)
    try:
        yield Collector(port, received)
    finally:
        daemon.stop()


def items(tmp_path: Path, collector: Collector, *, search: str | None = None,
          within: str = "5s", port: int | None = None) -> dict[str, PlanItem]:
    search = search or f"grep -F -- {{marker}} {collector.received}"
    site = (SITE.replace("address: 10.77.0.40", "address: 127.0.0.1")
            .replace("tcp: 514", f"tcp: {port or collector.port}")
            .replace("udp: 514", f"udp: {port or collector.port}")
            .replace("within: 5s", f"within: {within}")
            .replace("grep -F -- {marker} /run/remote.log", search))
    return plan_items(tmp_path, "logging:\n  - collector: central", site)


def evaluate(item: PlanItem, instance: LocalTarget | SshTarget | None = None,
             timeout: float = 10.0,
             verifier: LocalTarget | SshTarget | None = None) -> Observation:
    others = {"logs01": verifier or LocalTarget("logs01")}
    return CHECK.evaluate(context(item, target=instance, timeout=timeout, others=others))


def could_not_observe(item: PlanItem, instance: LocalTarget | SshTarget | None = None,
                      timeout: float = 10.0,
                      verifier: LocalTarget | SshTarget | None = None) -> str:
    with pytest.raises(CouldNotObserve) as info:
        evaluate(item, instance, timeout, verifier)
    return str(info.value)


class StalledStreams(LocalTarget):
    """The runner, whose streams open only after ``delay`` seconds, as an SSH channel does
    while the instance's sshd is busy (issue 14: a slow name lookup on the same connection)."""

    def __init__(self, name: str, delay: float) -> None:
        super().__init__(name)
        self.delay = delay

    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        time.sleep(self.delay)  # a channel open the host has not answered yet
        return super().open_stream(host, port, timeout)


# --- delivered ---------------------------------------------------------------------------------


def test_delivered_via_tcp_and_udp(tmp_path: Path, collector: Collector) -> None:
    for via in ("tcp", "udp"):
        verdict = evaluate(items(tmp_path, collector)[f"logging[central/{via}]"])
        assert verdict.outcome is Outcome.PASSED, verdict.reason
        assert verdict.observed.startswith("delivered within ")
        assert f"via 127.0.0.1:{collector.port}/{via}, found by logs01 (search " in \
            verdict.observed
        assert verdict.details["marker"] in verdict.details["line"]
        assert verdict.details["marker"] in collector.received.read_text()


def test_within_counts_from_the_send_not_from_the_start(tmp_path: Path,
                                                        collector: Collector) -> None:
    """Issue 14 item 5: the deadline was computed from the start of the check, so time spent
    before the marker left (a stalled stream, the verifier's handshake) was taken from the
    wait: "did not find it in 4.48 s (0 searches)" against a 10 s deadline. Here the stream
    opens after 2.5 s and `within` is 2 s: the marker arrives and is found."""
    item = items(tmp_path, collector, within="2s")["logging[central/tcp]"]
    verdict = evaluate(item, instance=StalledStreams("app01", 2.5))
    assert verdict.outcome is Outcome.PASSED, verdict.reason
    assert verdict.details["searches"] >= 1


# --- not delivered, and not observed -----------------------------------------------------------


def test_not_delivered_is_searched_until_after_the_deadline(tmp_path: Path,
                                                            collector: Collector) -> None:
    nothing = tmp_path / "nothing.log"
    nothing.write_text("")
    item = items(tmp_path, collector, search=f"grep -F -- {{marker}} {nothing}",
                 within="1s")["logging[central/tcp]"]
    verdict = evaluate(item)
    assert verdict.outcome is Outcome.FAILED
    assert verdict.reason.startswith(
        f"expected marker delivered to central within 1 s, observed reachable but not "
        f"delivered: 127.0.0.1:{collector.port}/tcp accepted drcheck-app01-tcp-")
    waited = verdict.reason.split("logs01 did not find it in ")[1]
    seconds, searches = waited.split(" (")
    # The last search started after the deadline: waited at least `within`.
    assert parse_duration(seconds.replace(" ", "")) >= 1.0
    assert searches == f"{verdict.details['searches']} searches)"
    assert verdict.details["searches"] >= 2


def test_a_search_that_never_returns_is_not_an_undelivered_marker(
        tmp_path: Path, collector: Collector) -> None:
    """Before: "logs01 did not find it in 2.5 s (0 searches)", a failed delivery."""
    item = items(tmp_path, collector, search="sleep 8; grep -F -- {marker} /dev/null")[
        "logging[central/udp]"]
    cause = could_not_observe(item, timeout=3.0)
    assert cause.startswith("logs01 could not be searched for the marker in ")
    assert ": the search on logs01 has not returned after " in cause


def test_a_failing_search_is_not_an_undelivered_marker(tmp_path: Path,
                                                       collector: Collector) -> None:
    """Before: a failed delivery with "last search: grep: ...: No such file or directory"."""
    missing = tmp_path / "missing" / "remote.log"
    item = items(tmp_path, collector, search=f"grep -F -- {{marker}} {missing}", within="1s")[
        "logging[central/tcp]"]
    cause = could_not_observe(item)
    assert cause.startswith("logs01 could not be searched for the marker in ")
    assert cause.endswith(f": the search failed on logs01 (exit 2): grep: {missing}: No such "
                          "file or directory")


def test_a_missing_search_command_is_named(tmp_path: Path, collector: Collector) -> None:
    item = items(tmp_path, collector, search="drcheck-no-such-search {marker}", within="1s")[
        "logging[central/udp]"]
    cause = could_not_observe(item)
    assert "the search command is not available on logs01: " in cause
    assert cause.endswith("drcheck-no-such-search: not found")


def test_a_timeout_shorter_than_within_cannot_tell(tmp_path: Path, collector: Collector) -> None:
    """Before: the deadline was silently cut to the check's timeout and "not delivered"."""
    nothing = tmp_path / "nothing.log"
    nothing.write_text("")
    item = items(tmp_path, collector, search=f"grep -F -- {{marker}} {nothing}", within="5s")[
        "logging[central/tcp]"]
    cause = could_not_observe(item, timeout=2.0)
    assert cause.startswith("the check's timeout left ")
    assert cause.endswith("of the 5 s to wait for the marker (" + cause.split("(")[1])
    assert "searches, not found); raise the check's timeout" in cause


def test_an_unreachable_verifier_sends_nothing(tmp_path: Path, collector: Collector) -> None:
    closed = closed_port()
    verifier = SshTarget(SshSettings("logs01", "127.0.0.1", port=closed,
                                     known_hosts="/dev/null", connect_timeout=2.0))
    before = collector.received.read_text() if collector.received.exists() else ""
    item = items(tmp_path, collector)["logging[central/tcp]"]
    assert could_not_observe(item, verifier=verifier) == (
        f"cannot search the collector: logs01: connection refused by 127.0.0.1:{closed}; is "
        f"sshd running and listening on port {closed}?")
    after = collector.received.read_text() if collector.received.exists() else ""
    assert after.count("drcheck-app01-") == before.count("drcheck-app01-")


def test_a_refused_collector_is_unreachable(tmp_path: Path, collector: Collector) -> None:
    closed = closed_port()
    verdict = evaluate(items(tmp_path, collector, port=closed)["logging[central/tcp]"])
    assert (verdict.outcome, verdict.reason) == (
        Outcome.FAILED, f"expected marker delivered to central within 5 s, observed "
                        f"127.0.0.1:{closed}/tcp refused (collector unreachable)")
    assert verdict.details == {"outcome": "refused"}


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if os.geteuid() != 0:
        pytest.skip("sshd logins for the current user need root here")
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


def test_a_stalled_instance_connection_is_not_an_unreachable_collector(
        tmp_path: Path, collector: Collector, sshd: Sshd) -> None:
    """Issue 14 item 2: while the instance's sshd was stuck on a name lookup for another
    channel, `logging central/tcp` read "timed out after 3 s (collector unreachable)". Here
    the instance is reached over real SSH and its sshd stopped: nothing was observed about
    the collector, and the cause says so; the UDP path's `logger` never started either."""
    instance = ssh_target(sshd, tmp_path)
    found = items(tmp_path, collector)
    try:
        with stalled(sshd):
            tcp = could_not_observe(found["logging[central/tcp]"], instance=instance,
                                    timeout=6.0)
            udp = could_not_observe(found["logging[central/udp]"], instance=instance,
                                    timeout=3.0)
    finally:
        instance.close()
    assert tcp == (f"127.0.0.1:{collector.port} from app01: timed out after 3 s; app01's own "
                   "connection did not run `true` in 3 s either (timed out opening an SSH "
                   "session): the connection stalled, not the network path")
    assert udp.startswith("`logger` timed out after ")
    assert udp.endswith(" on app01 (timed out opening an SSH session): the marker could not "
                        "be sent")


def test_judge_is_pure(tmp_path: Path, collector: Collector) -> None:
    item = items(tmp_path, collector)["logging[central/udp]"]
    found = Delivery("m-1", "2026-12-01T15:00:00.000+00:00",
                     Sighting(True, 1.0, "line m-1", 3, True), 0.42)
    assert CHECK.judge(item, found).observed == (
        f"delivered within 420 ms: m-1 via 127.0.0.1:{collector.port}/udp, found by logs01 "
        "(search 3)")
    lost = Delivery("m-2", "2026-12-01T15:00:00.000+00:00",
                    Sighting(False, searches=12, looked_after_deadline=True), 5.2)
    assert CHECK.judge(item, lost).reason == (
        f"expected marker delivered to central within 5 s, observed not delivered: m-2 sent "
        f"via 127.0.0.1:{collector.port}/udp (UDP has no handshake: arrival is the only "
        "proof), logs01 did not find it in 5.2 s (12 searches)")
    assert CHECK.judge(item, NotSent("not sent", "the instance could not send the marker via "
                                                 "x: boom")).reason == (
        "expected marker delivered to central within 5 s, the instance could not send the "
        "marker via x: boom")


# --- markers, syslog lines, logger commands, expansion -----------------------------------------


def test_markers_are_unique_timestamped_and_shell_safe() -> None:
    now = datetime(2026, 11, 24, 15, 0, 1, 234000, tzinfo=timezone.utc)
    marker = new_marker("app01", "tcp", now)
    assert marker.startswith("drcheck-app01-tcp-20261124T150001.234Z-")
    assert new_marker("app01", "tcp", now) != marker
    assert all(c.isalnum() or c in "-_.:" for c in marker)
    line = syslog_line("app01", marker, now)
    assert line == (f"<13>1 2026-11-24T15:00:01.234Z app01 drcheck - - - drcheck delivery "
                    f"marker {marker}\n").encode()


def test_verify_command_quotes_the_marker() -> None:
    assert verify_command("grep -F -- {marker} /x | awk '{print $1}'", "m-1") == (
        "grep -F -- m-1 /x | awk '{print $1}'")


def test_logger_commands_run_here() -> None:
    """The commands are real shell: sh parses them, logger takes the options (to a closed
    UDP port on loopback, which logger cannot notice: UDP has no handshake)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.settimeout(3)
    command = logger_command("udp", "drcheck-t-udp-1", "127.0.0.1", port)
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    datagram = sock.recv(4096).decode()
    sock.close()
    assert "drcheck delivery marker drcheck-t-udp-1" in datagram
    assert "--socket-errors=on" in logger_command("local", "m")


def test_logging_defaults_to_the_collectors_ports(tmp_path: Path) -> None:
    found = plan_items(tmp_path, "logging:\n  - collector: central\n  - {collector: central, "
                                 "via: [local], within: 20s}")
    assert sorted(found) == ["logging[central/local]", "logging[central/tcp]",
                             "logging[central/udp]"]
    assert found["logging[central/local]"].params["within"] == 20.0
    assert found["logging[central/tcp]"].params["within"] == 5.0  # the collector's own
    # The paths are independent: none waits for another.
    assert all(item.requires == () for item in found.values())


@pytest.mark.parametrize(("checks", "message"), [
    ("logging:\n  - collector: centrl",
     "collector 'centrl' is not in site.logging.collectors (central)"),
    ("logging:\n  - {collector: central, via: [tcp, syslog]}", "'syslog' is not one of tcp, "
                                                              "udp, local"),
])
def test_mistakes_are_one_line_with_the_place(tmp_path: Path, checks: str, message: str) -> None:
    text = problems_of(tmp_path, checks)
    assert message in text, text
    assert len(text.splitlines()) == 1


def test_verify_command_without_marker_is_refused(tmp_path: Path) -> None:
    site = SITE.replace("grep -F -- {marker} /run/remote.log", "grep drcheck /run/remote.log")
    text = problems_of(tmp_path, "logging:\n  - collector: central", site)
    assert "verify.command must contain {marker}" in text
