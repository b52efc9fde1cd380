"""Backups: a Bacula file daemon on each recovery instance, a storage daemon on backup01.

Bacula connects in both directions: the Director (server) opens the file daemon's port 9102
to start a job, and the file daemon opens the storage daemon's port 9103 to send the data.
The file daemon answers a Director hello from a Director it knows with a cram-md5 challenge,
which is what the lab's readiness probe and the drill's ``hello`` subject look for.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pytest_drcheck.lab.components.base import Component, HostContext
from pytest_drcheck.lab.components.syslog import tcp_accepts

DIRECTOR = "backup01-dir"
# A lab-only shared secret between the (absent) Director and the daemons; Bacula needs one.
LAB_PASSWORD = "drcheck-lab-not-a-secret"


def director_hello(address: str, port: int, director: str, timeout: float) -> str:
    """The file daemon's first answer to a Director hello ('' if none)."""
    message = f"Hello Director {director} calling\n".encode()
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(message)) + message)
            header = sock.recv(4)
            if len(header) < 4:
                return ""
            (length,) = struct.unpack(">i", header)
            if not 0 < length < 4096:
                return ""
            return sock.recv(length).decode("utf-8", "replace").strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class BaculaFd(Component):
    name: ClassVar[str] = "bacula-fd"
    binary: ClassVar[str] = "bacula-fd"
    package: ClassVar[str] = "bacula-fd"

    director: str = DIRECTOR
    port: int = 9102
    connection_slots: int = 64

    def config(self, ctx: HostContext) -> Path:
        return ctx.dir / "bacula-fd.conf"

    def prepare(self, ctx: HostContext) -> None:
        work = ctx.dir / "bacula-fd"
        work.mkdir(exist_ok=True)
        self.config(ctx).write_text(
            "# written by drcheck lab up\n"
            "Director {\n"
            f"  Name = {self.director}\n"
            f'  Password = "{LAB_PASSWORD}"\n'
            "}\n"
            "FileDaemon {\n"
            f"  Name = {ctx.host.name}-fd\n"
            f"  FDport = {self.port}\n"
            f"  FDAddress = {ctx.host.address}\n"
            f"  WorkingDirectory = {work}\n"
            f"  Pid Directory = {work}\n"
            # Also the number of connection threads: every connection that does not complete
            # a Director login (a readiness probe, the drill's reverse and hello probes) holds
            # one for about 5 s (Bacula's delay against password guessing). With 5, a few
            # probes in a row left the next one unanswered and made ``up`` rebuild the lab.
            f"  Maximum Concurrent Jobs = {self.connection_slots}\n"
            "}\n"
            "Messages {\n"
            "  Name = Standard\n"
            f"  director = {self.director} = all, !skipped, !restored\n"
            "}\n")

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        return [binary, "-f", "-c", str(self.config(ctx))]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        answer = director_hello(ctx.host.address, self.port, self.director, timeout)
        if not answer.startswith("auth cram-md5"):
            return f"no cram-md5 challenge on {ctx.host.address}:{self.port}"
        return None


@dataclass(frozen=True)
class BaculaSd(Component):
    name: ClassVar[str] = "bacula-sd"
    binary: ClassVar[str] = "bacula-sd"
    package: ClassVar[str] = "bacula-sd"

    director: str = DIRECTOR
    port: int = 9103

    def config(self, ctx: HostContext) -> Path:
        return ctx.dir / "bacula-sd.conf"

    def prepare(self, ctx: HostContext) -> None:
        work = ctx.dir / "bacula-sd"
        archive = ctx.dir / "bacula-archive"
        work.mkdir(exist_ok=True)
        archive.mkdir(exist_ok=True)
        self.config(ctx).write_text(
            "# written by drcheck lab up\n"
            "Storage {\n"
            f"  Name = {ctx.host.name}-sd\n"
            f"  SDPort = {self.port}\n"
            f"  SDAddress = {ctx.host.address}\n"
            f"  WorkingDirectory = {work}\n"
            f"  Pid Directory = {work}\n"
            "  Maximum Concurrent Jobs = 20\n"
            "}\n"
            "Director {\n"
            f"  Name = {self.director}\n"
            f'  Password = "{LAB_PASSWORD}"\n'
            "}\n"
            "Device {\n"
            "  Name = FileStorage\n"
            "  Media Type = File\n"
            f"  Archive Device = {archive}\n"
            "  LabelMedia = yes\n"
            "  Random Access = yes\n"
            "  AutomaticMount = yes\n"
            "  RemovableMedia = no\n"
            "  AlwaysOpen = no\n"
            "}\n"
            "Messages {\n"
            "  Name = Standard\n"
            f"  director = {self.director} = all\n"
            "}\n")

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        return [binary, "-f", "-c", str(self.config(ctx))]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        if not tcp_accepts(ctx.host.address, self.port, timeout):
            return f"nothing accepts on {ctx.host.address}:{self.port}"
        return None
