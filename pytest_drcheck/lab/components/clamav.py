"""Endpoint protection on the recovery instances: clamd (ClamAV daemon).

Signatures cannot be downloaded here, and clamd refuses to start with an empty database, so
the database is one line: the EICAR test file's MD5 (an ``.hdb`` hash signature). clamd
listens on 127.0.0.1:3310 inside the instance (the drill's health probe reaches it through the
instance's own sshd) and on a UNIX socket in the host's lab directory (the lab's readiness
probe, from the root namespace).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pytest_drcheck.lab.components.base import Component, HostContext

# MD5 and size of the 68-byte EICAR anti-virus test file.
EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"
EICAR_SIZE = 68
DATABASE_FILE = "drcheck.hdb"


def write_database(directory: Path) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / DATABASE_FILE
    path.write_text(f"{EICAR_MD5}:{EICAR_SIZE}:Eicar-Test-Signature.drcheck\n")
    return path


def clamd_ping(socket_path: Path, timeout: float) -> bytes:
    """clamd's answer to zPING over its UNIX socket (b"PONG" when healthy), b"" if none."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(b"zPING\0")
            return sock.recv(16).rstrip(b"\0")
    except OSError:
        return b""


@dataclass(frozen=True)
class Clamd(Component):
    name: ClassVar[str] = "clamd"
    binary: ClassVar[str] = "clamd"
    package: ClassVar[str] = "clamav-daemon"

    port: int = 3310

    def config(self, ctx: HostContext) -> Path:
        return ctx.dir / "clamd.conf"

    def local_socket(self, ctx: HostContext) -> Path:
        return ctx.dir / "clamd.ctl"

    def prepare(self, ctx: HostContext) -> None:
        database = ctx.dir / "clamav-db"
        write_database(database)
        self.config(ctx).write_text(
            "# written by drcheck lab up\n"
            "Foreground yes\n"
            f"DatabaseDirectory {database}\n"
            f"LocalSocket {self.local_socket(ctx)}\n"
            "FixStaleSocket yes\n"
            f"TCPSocket {self.port}\n"
            # Only the instance itself: the drill reaches it through the instance's sshd.
            "TCPAddr 127.0.0.1\n"
            f"PidFile {ctx.dir / 'clamd.pid'}\n"
            # No clamav account in a lab namespace; and nothing to self-check every 10 min.
            "User root\n"
            "SelfCheck 0\n"
            "LogTime yes\n")

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        return [binary, "-c", str(self.config(ctx))]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        answer = clamd_ping(self.local_socket(ctx), timeout)
        if answer != b"PONG":
            return f"no PONG on {self.local_socket(ctx)} (got {answer!r})"
        return None
