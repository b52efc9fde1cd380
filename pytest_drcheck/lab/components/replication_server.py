"""A replication server's port (TCP 1500, as DRS's staging area and a failback target have):
socat from Debian's socat, accepting every connection and discarding what it receives.

The replication-path and failback-path suites only observe that the source reaches the port;
what is listening is a real daemon on a real socket, so a stopped daemon is refused and a
dropping firewall times out, as on a real site.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import ClassVar

from pytest_drcheck.lab.components.base import Component, HostContext

REPLICATION_PORT = 1500


@dataclass(frozen=True)
class ReplicationServer(Component):
    name: ClassVar[str] = "replication-server"
    binary: ClassVar[str] = "socat"
    package: ClassVar[str] = "socat"

    port: int = REPLICATION_PORT

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        # -u: one way, the connection into /dev/null; fork: one child per connection.
        return [binary, "-u", f"TCP-LISTEN:{self.port},bind={ctx.host.address},reuseaddr,fork",
                "OPEN:/dev/null,wronly"]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        try:
            with socket.create_connection((ctx.host.address, self.port), timeout=timeout):
                return None
        except OSError as exc:
            return f"no connection to {ctx.host.address}:{self.port}: {exc}"
