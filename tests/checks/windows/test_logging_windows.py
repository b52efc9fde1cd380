"""logging on Windows: the marker command (event log, UDP datagram) and a UDP marker delivered
to a real rsyslog collector on 127.0.0.1, found there by the site's existing verifier.

The stand-in PowerShell performs the datagram's UdpClient.Send from the command's own literals
(address, port, bytes): what is proven is that the command carries the right datagram and the
family's send/verify path works on Windows hosts; Write-EventLog and a forwarder need Windows.
"""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_drcheck.checks.logging_delivery import LoggingCheck
from pytest_drcheck.checks.windows.logging import marker_command
from pytest_drcheck.model import Outcome
from pytest_drcheck.targets.local import LocalTarget
from tests.checks.ops_site import SITE, context, plan_items
from tests.checks.windows.helpers import EmulatedWindows
from tests.plugin import daemons
from tests.targets import fake_windows
from tests.targets.fake_windows import Answer

CHECK = LoggingCheck()


def test_event_log_marker_command() -> None:
    command = marker_command("local", "drcheck delivery marker m'1", b"")
    assert "New-EventLog -LogName Application -Source 'drcheck'" in command
    assert ("Write-EventLog -LogName Application -Source 'drcheck' -EventId 4242 -EntryType "
            "Information -Message 'drcheck delivery marker m''1'") in command


def send_datagram(command: str) -> Answer | None:
    """UdpClient.Send as the command asks: its bytes literal, address and port."""
    start = command.find("GetBytes(") + len("GetBytes(")
    payload, end = fake_windows.read_literal(command, start)
    target = re.compile(r"\$b\.Length, ('(?:[^']|'')*'), (\d+)\)").search(command, end)
    if target is None:
        return None
    address, _ = fake_windows.read_literal(target.group(1), 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload.encode(), (address, int(target.group(2))))
    return Answer(0)


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    port = daemons.free_port()
    daemon, received = daemons.rsyslog(tmp_path_factory.mktemp("rsyslog"), port)
    try:
        yield port, received
    finally:
        daemon.stop()


def test_a_udp_marker_from_windows_is_delivered(tmp_path: Path,
                                                collector: tuple[int, Path]) -> None:
    port, received = collector
    site = (SITE.replace("address: 10.77.0.40", "address: 127.0.0.1")
            .replace("tcp: 514", f"tcp: {port}").replace("udp: 514", f"udp: {port}")
            .replace("grep -F -- {marker} /run/remote.log", f"grep -F -- {{marker}} {received}"))
    item = dataclasses.replace(plan_items(tmp_path, "logging:\n  - collector: central", site)[
        "logging[central/udp]"], platform="windows")
    instance = EmulatedWindows(send_datagram)
    verdict = CHECK.evaluate(context(item, target=instance,
                                     others={"logs01": LocalTarget("logs01")}))
    assert verdict.outcome is Outcome.PASSED, verdict.reason
    assert verdict.details["marker"] in received.read_text()
    assert len(instance.lines) == 1 and instance.lines[0].startswith(fake_windows.PREFIX)
