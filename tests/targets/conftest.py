"""Fixtures for target tests: a real sshd, real TCP peers, all on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_drcheck.targets.ssh import SshSettings, SshTarget
from tests.plugin import sockets
from tests.plugin.sockets import Listener, blackhole
from tests.sockets import LoopbackServer
from tests.targets.sshd import Sshd, start_sshd


def _can_run_sshd() -> str | None:
    if not os.path.exists("/usr/sbin/sshd") and shutil.which("sshd") is None:
        return "OpenSSH server (sshd) is not installed"
    if os.geteuid() != 0:
        return "sshd logins for the current user need root here (AuthorizedKeysFile as root)"
    return None


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    reason = _can_run_sshd()
    if reason:
        pytest.skip(reason)
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def known_hosts(sshd: Sshd, tmp_path: Path) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(sshd.host_key_line + "\n")
    return path


MakeTarget = Callable[..., SshTarget]


@pytest.fixture
def make_target(sshd: Sshd, known_hosts: Path) -> Iterator[MakeTarget]:
    """SshTarget to the test sshd as root with the client key; keywords override settings."""
    made: list[SshTarget] = []

    def make(**overrides: Any) -> SshTarget:
        values: dict[str, Any] = {
            "name": "app01", "address": "127.0.0.1", "port": sshd.port, "user": "root",
            "identity_file": str(sshd.client_key), "known_hosts": str(known_hosts),
            "connect_timeout": 3.0}
        values.update(overrides)
        target = SshTarget(SshSettings(**values))
        made.append(target)
        return target

    yield make
    for target in reversed(made):
        target.close()


class EchoServer(LoopbackServer):
    """Echoes every byte back; counts connections."""

    def converse(self, conn: socket.socket, index: int) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


# Accepts TCP connections and never says a word (after an optional banner): a hung sshd,
# from the client's side.
SilentListener = Listener


@pytest.fixture
def silent_listener() -> Iterator[SilentListener]:
    server = SilentListener()
    yield server
    server.close()


@pytest.fixture
def closed_port() -> int:
    return sockets.closed_port()


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """A port whose SYNs go unanswered: a dropping firewall (tests.plugin.sockets)."""
    with blackhole() as port:
        yield port
