"""paramiko's records name their host, and a failed connection is one line, not a traceback."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_drcheck.targets.base import StreamError, TargetError
from tests.plugin.sockets import AcceptAndClose
from tests.targets.conftest import MakeTarget

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def accept_and_close() -> Iterator[AcceptAndClose]:
    server = AcceptAndClose()
    yield server
    server.close()


def test_a_port_without_ssh_is_one_line_and_no_loud_record(
        make_target: MakeTarget, accept_and_close: AcceptAndClose,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TargetError) as caught:
        make_target(name="web01", port=accept_and_close.port).connect()
    assert str(caught.value) == (
        f"web01: 127.0.0.1:{accept_and_close.port} closed the connection before sending an SSH "
        "banner; is it an SSH server (and is MaxStartups exhausted)?")
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == []
    banner = [r for r in caplog.records if "Error reading SSH protocol banner" in r.getMessage()]
    assert banner and {r.name for r in banner} == {"pytest_drcheck.ssh.web01"}


def test_refused_streams_are_logged_quietly_under_their_host(
        make_target: MakeTarget, closed_port: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    target = make_target(name="db01")
    with pytest.raises(StreamError, match="connection refused"):
        target.open_stream("127.0.0.1", closed_port, 3)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert {r.name for r in caplog.records if "open FAILED" in r.getMessage()} == {
        "pytest_drcheck.ssh.db01"}


def test_no_traceback_reaches_stderr_without_logging_configured(
        accept_and_close: AcceptAndClose) -> None:
    # As a script using the targets (or the CLI) would run: Python's last-resort handler prints
    # WARNING and above on stderr when nothing configured logging.
    script = (
        "from pytest_drcheck.targets.ssh import SshSettings, SshTarget\n"
        "from pytest_drcheck.targets.base import TargetError\n"
        f"t = SshTarget(SshSettings(name='web01', address='127.0.0.1', "
        f"port={accept_and_close.port}, user='root', connect_timeout=5))\n"
        "try:\n    t.connect()\nexcept TargetError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.stderr == ""
    assert done.stdout.splitlines() == [
        f"web01: 127.0.0.1:{accept_and_close.port} closed the connection before sending an SSH "
        "banner; is it an SSH server (and is MaxStartups exhausted)?"]
