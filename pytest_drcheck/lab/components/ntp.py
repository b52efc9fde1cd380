"""Time in the lab: a chrony NTP server, chrony clients on the instances, a skewed source.

Every chronyd runs with ``-x``: it never sets the clock, which all namespaces share with the
real machine. A client still measures its sources and reports how far the clock is from them,
so a client that follows the skewed responder (120 s ahead) says its clock is 120 s slow,
exactly as a real instance would before correcting it. Polling is fast (0.25-1 s) so clients
are synchronised within a second or two of ``up``.

Faults: ``faults.skewed_source`` (an instance follows the skewed responder); an instance with
no time sync at all is ``lab.stopped(host, "chronyd")``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest_drcheck.net.sntp as sntp
from pytest_drcheck.lab import skewntp
from pytest_drcheck.lab.commands import CLEAN_ENV, require
from pytest_drcheck.lab.components.base import Component, HostContext
from pytest_drcheck.lab.errors import LabError

# 2^-2 .. 2^0 seconds between polls: synchronised in about a second (LAB-NOTES: 0.8 s).
POLL = "minpoll -2 maxpoll 0"
# chronyc's default command socket; the directory must exist, owned by root, mode 0700.
SOCKET_DIR = "/run/chrony"


@dataclass(frozen=True)
class Chronyd(Component):
    name: ClassVar[str] = "chronyd"
    binary: ClassVar[str] = "chronyd"
    package: ClassVar[str] = "chrony"

    # Sources to follow (a client), by address.
    servers: tuple[str, ...] = ()
    # Networks allowed to ask it for time (a server, on its own clock at stratum 8).
    serve: tuple[str, ...] = ()

    def config(self, ctx: HostContext) -> Path:
        return ctx.dir / "chrony.conf"

    def prepare(self, ctx: HostContext) -> None:
        lines = ["# written by drcheck lab up"]
        lines += [f"server {server} iburst {POLL}" for server in self.servers]
        if self.serve:
            lines += ["local stratum 8", *(f"allow {net}" for net in self.serve), "port 123"]
        else:
            lines.append("port 0")
        lines += [f"bindcmdaddress {SOCKET_DIR}/chronyd.sock",
                  f"pidfile {SOCKET_DIR}/chronyd.pid"]
        # The lab's probes ask chronyc-style questions from the root namespace.
        gateways = sorted({nic.network.gateway for nic in ctx.host.nics if nic.network.gateway})
        if gateways:
            lines += ["bindcmdaddress 0.0.0.0", *(f"cmdallow {gw}" for gw in gateways)]
        self.config(ctx).write_text("\n".join(lines) + "\n")

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        # -d foreground, -x never touch the (shared) clock, -u root: no account to drop to.
        return ["sh", "-c", f"mkdir -p -m 0700 {SOCKET_DIR} && exec {binary} -d -x -u root "
                            f"-f {self.config(ctx)}"]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        if self.serve:
            try:
                sntp.query(ctx.host.address, 123, timeout)
            except sntp.SntpError as exc:
                return str(exc)
            return None
        try:
            tracking = chronyc_remote(ctx.host.address, ["tracking"], timeout)
        except LabError as exc:
            return str(exc)
        fields = tracking.split(",")
        if len(fields) < 14 or fields[0] in ("00000000", "7F7F0101") or \
                fields[13].strip() == "Not synchronised":
            return "not synchronised yet"
        if self.servers and fields[1] not in self.servers:
            return f"follows {fields[1]}, not {', '.join(self.servers)}"
        return None


@dataclass(frozen=True)
class SkewedNtp(Component):
    """An NTP responder whose clock is ``offset`` seconds ahead (see ``lab/skewntp.py``)."""

    name: ClassVar[str] = "skewntp"
    binary: ClassVar[str] = "python3"
    package: ClassVar[str] = "python3"

    port: int = 1123
    offset: float = 120.0

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        return [binary, str(Path(skewntp.__file__)), "--listen", ctx.host.address,
                "--port", str(self.port), "--offset", f"{self.offset:g}"]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        try:
            sample = sntp.query(ctx.host.address, self.port, timeout)
        except sntp.SntpError as exc:
            return str(exc)
        if abs(sample.offset - self.offset) > 1.0:
            return f"answers {sample.offset:+.1f} s, not {self.offset:+g} s"
        return None


def chronyc_remote(address: str, command: list[str], timeout: float) -> str:
    """chronyc's CSV answer from the chronyd at ``address`` (monitoring commands only)."""
    argv = [require("chronyc", "chrony"), "-h", address, "-n", "-c", *command]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=dict(CLEAN_ENV),
                              timeout=timeout + 1, check=False)
    except subprocess.TimeoutExpired:
        raise LabError(f"chronyc -h {address}: no answer") from None
    if done.returncode != 0:
        detail = (done.stdout.strip() or done.stderr.strip() or f"exit {done.returncode}")
        raise LabError(f"chronyc -h {address}: {detail.splitlines()[0]}")
    return done.stdout.strip()
