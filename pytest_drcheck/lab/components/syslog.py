"""Centralised logging: an rsyslog collector on TCP and UDP 514 (logs01).

Received messages are written inside the collector host's private /run, so the only way to
see them is a command run ON the collector, through its own sshd: exactly what the drill's
delivery verifier does. ``discarding`` keeps the collector up and its ports open while the
received messages are thrown away: "reachable but not delivered".
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pytest_drcheck.lab.components.base import Component, HostContext

# Inside the collector's private /run (see realhost.py): readable only from that host.
RECEIVED_LOG = "/run/drcheck-syslog/remote.log"


def tcp_accepts(address: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class RsyslogCollector(Component):
    name: ClassVar[str] = "rsyslog"
    binary: ClassVar[str] = "rsyslogd"
    package: ClassVar[str] = "rsyslog"

    port: int = 514
    received_log: str = RECEIVED_LOG

    def config(self, ctx: HostContext) -> Path:
        return ctx.dir / "rsyslog.conf"

    def _discard_flag(self, ctx: HostContext) -> Path:
        return ctx.dir / "rsyslog.discarding"

    def is_discarding(self, ctx: HostContext) -> bool:
        return self._discard_flag(ctx).exists()

    def set_discarding(self, ctx: HostContext, discarding: bool) -> None:
        """Takes effect on the next start (rsyslog reads its config once)."""
        if discarding:
            self._discard_flag(ctx).touch()
        else:
            self._discard_flag(ctx).unlink(missing_ok=True)
        self.prepare(ctx)

    def prepare(self, ctx: HostContext) -> None:
        work = ctx.dir / "rsyslog-work"
        work.mkdir(exist_ok=True)
        address = ctx.host.address
        if self.is_discarding(ctx):
            # Accepted, parsed, then dropped: what a wrong filter or a full queue policy does.
            remote = "  stop\n"
        else:
            remote = (f'  action(type="omfile" file="{self.received_log}" '
                      'template="drcheckReceived" dirCreateMode="0700" createDirs="on")\n')
        self.config(ctx).write_text(
            "# written by drcheck lab up\n"
            f'global(workDirectory="{work}" maxMessageSize="8k")\n'
            # No imuxsock or imklog: this collector must not take the machine's /dev/log.
            'module(load="imudp")\n'
            'module(load="imtcp")\n'
            # Received and sent times (the sender's own timestamp) side by side: every lab
            # host shares one clock, so their difference is the transit time.
            'template(name="drcheckReceived" type="string" string="%timegenerated:::'
            'date-rfc3339% %timereported:::date-rfc3339% %fromhost-ip% %hostname% '
            '%syslogtag% %msg%\\n")\n'
            f'input(type="imudp" address="{address}" port="{self.port}" ruleset="remote")\n'
            f'input(type="imtcp" address="{address}" port="{self.port}" ruleset="remote")\n'
            # rsyslog's own messages; also, rsyslog refuses to run without any action.
            f'action(type="omfile" file="{ctx.dir / "rsyslog-internal.log"}")\n'
            'ruleset(name="remote") {\n'
            f"{remote}"
            "}\n")

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        return [binary, "-n", "-f", str(self.config(ctx)), "-i", str(ctx.dir / "rsyslogd.pid")]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        if not tcp_accepts(ctx.host.address, self.port, timeout):
            return f"nothing accepts on {ctx.host.address}:{self.port}/tcp"
        return None


@dataclass(frozen=True)
class SignatureMirror(Component):
    """The endpoint-protection agents' manager in the sandbox: a private signature mirror
    (busybox httpd) serving the one-signature database the instances' clamd load."""

    name: ClassVar[str] = "mirror"
    binary: ClassVar[str] = "busybox"
    package: ClassVar[str] = "busybox"

    port: int = 8080

    def prepare(self, ctx: HostContext) -> None:
        from pytest_drcheck.lab.components.clamav import write_database

        write_database(ctx.dir / "mirror")

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        return [binary, "httpd", "-f", "-p", f"{ctx.host.address}:{self.port}", "-h",
                str(ctx.dir / "mirror")]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        from pytest_drcheck.lab.components.clamav import DATABASE_FILE

        try:
            with socket.create_connection((ctx.host.address, self.port), timeout=timeout) as s:
                s.settimeout(timeout)
                s.sendall(f"GET /{DATABASE_FILE} HTTP/1.0\r\n\r\n".encode())
                status = s.recv(64)
        except OSError:
            status = b""
        if not (status.startswith(b"HTTP/1.") and status[8:13] == b" 200 "):
            return f"no HTTP 200 for /{DATABASE_FILE} from {ctx.host.address}:{self.port}"
        return None
