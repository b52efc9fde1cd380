"""The operations site (agents, a collector, a backup system) the agent, logging and backup
tests expand, and contexts that hand a check recorded command outputs, as a batch would."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from pytest_drcheck.checks.base import CheckContext
from pytest_drcheck.inventory import InventoryError, load_plan
from pytest_drcheck.model import PlanItem
from pytest_drcheck.targets.base import CommandResult, Target
from pytest_drcheck.targets.local import LocalTarget
from pytest_drcheck.targets.ssh import SshSettings, SshTarget
from tests.sockets import LoopbackServer
from tests.targets.sshd import Sshd

SITE = """\
version: 1
drill: {name: ops}
site:
  agents:
    clamav:
      service: clamav-daemon
      process: clamd
      version: {constraint: ">=1.0, <2", command: "clamd --version"}
      manager: 10.77.0.40:8080
      health: {tcp: "127.0.0.1:3310", send: "zPING\\0", expect: PONG}
  logging:
    collectors:
      central:
        address: 10.77.0.40
        tcp: 514
        udp: 514
        within: 5s
        verify: {host: logs01, command: "grep -F -- {marker} /run/remote.log"}
  backup:
    systems:
      bacula:
        server: {host: backup01, endpoint: "10.77.0.41:9103"}
        agent:
          process: bacula-fd
          port: 9102
          probe: {protocol: bacula, director: backup01-dir}
hosts:
  logs01: {address: 10.77.0.40}
  backup01: {address: 10.77.0.41}
  app01:
    address: 10.77.0.11
    checks:
"""


def plan_items(tmp_path: Path, checks: str, site: str = SITE) -> dict[str, PlanItem]:
    """The plan items of app01's ``checks`` (YAML under checks:), by check[subject]."""
    path = tmp_path / "site.yaml"
    path.write_text(site + "".join(f"      {line}\n" for line in checks.splitlines()))
    return {f"{i.check}[{i.subject}]": i for i in load_plan(path).items}


def problems_of(tmp_path: Path, checks: str, site: str = SITE) -> str:
    with pytest.raises(InventoryError) as info:
        plan_items(tmp_path, checks, site)
    return str(info.value)


def done(command: str, status: int = 0, stdout: str = "", stderr: str = "") -> CommandResult:
    if status == 125:  # what the batch gives a command whose result never came back
        return CommandResult.not_run(command, stderr)
    return CommandResult(command, status, stdout, stderr, timed_out=status == 124)


def context(item: PlanItem, outputs: Sequence[CommandResult] = (),
            target: Target | None = None, timeout: float = 10.0,
            others: Mapping[str, Target] | None = None) -> CheckContext:
    """A context as the engine builds it, with these outputs of the item's commands."""
    known = others or {}

    def target_of(name: str) -> Target:
        return known[name]

    return CheckContext(item, target or LocalTarget(item.host), outputs, timeout, target_of,
                        command_timeout=10.0)


class Server(LoopbackServer):
    """A real TCP server on 127.0.0.1 that answers each connection with ``answer(data)`` of
    the first bytes received (None: close at once without reading)."""

    def __init__(self, answer: Callable[[bytes], bytes] | None) -> None:
        self.answer = answer
        super().__init__()

    def serve(self, conn: socket.socket, index: int) -> None:
        with conn:
            if self.answer is None:
                return  # accepts and closes
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                conn.sendall(self.answer(conn.recv(4096)))


def ssh_target(sshd: Sshd, directory: Path, name: str = "app01") -> SshTarget:
    """A connected target to the test sshd (tests.targets.sshd), as root."""
    known = directory / f"known_hosts-{name}"
    known.write_text(sshd.host_key_line + "\n")
    target = SshTarget(SshSettings(name, "127.0.0.1", port=sshd.port, user="root",
                                   identity_file=str(sshd.client_key), known_hosts=str(known),
                                   connect_timeout=5.0))
    target.connect()
    return target


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rpartition(")")[2].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # a session that just ended
            os.kill(pid, signum)


@contextlib.contextmanager
def stalled(sshd: Sshd) -> Iterator[None]:
    """Every sshd process serving a connection stopped until the block ends: what a client
    sees while sshd resolves a name synchronously (issue 14 item 2), only longer."""
    serving = _descendants(sshd.process.pid)
    assert serving, "no sshd process serves a connection"
    _signal_all(serving, signal.SIGSTOP)
    try:
        yield
    finally:
        _signal_all(serving, signal.SIGCONT)
