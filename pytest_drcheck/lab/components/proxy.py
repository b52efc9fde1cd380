"""Squid as the site's controlled egress point, with a domain allow-list.

It is the only host with a NIC on the "fake internet" segment: instances reach that segment
through it or not at all (no default route, no NAT, no forwarding anywhere).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import ClassVar

from pytest_drcheck.lab.components.base import Component, HostContext


@dataclass(frozen=True)
class Squid(Component):
    name: ClassVar[str] = "squid"
    binary: ClassVar[str] = "squid"
    package: ClassVar[str] = "squid"

    # dstdomain entries (".example.com" covers the domain and its subdomains).
    allow: tuple[str, ...]
    nameserver: str
    port: int = 3128

    def config(self, ctx: HostContext) -> str:
        return str(ctx.dir / "squid.conf")

    def allow_file(self, ctx: HostContext) -> str:
        """The allow-list lives in its own file so a breaker can widen it and restart."""
        return str(ctx.dir / "squid-allow.txt")

    def write_allow_list(self, ctx: HostContext, domains: tuple[str, ...]) -> None:
        with open(self.allow_file(ctx), "w") as handle:
            handle.write("".join(f"{domain}\n" for domain in domains))

    def prepare(self, ctx: HostContext) -> None:
        # squid drops privileges to the 'proxy' user after binding: its files must be
        # writable by that user, so its directory is world-writable (inside the state dir).
        ctx.dir.chmod(0o777)
        self.write_allow_list(ctx, self.allow)
        lan = ctx.host.nics[0].address
        lines = [
            "# written by drcheck lab up",
            f"http_port {lan}:{self.port}",
            f"pid_filename {ctx.dir}/squid.pid",
            f"cache_log {ctx.dir}/cache.log",
            f"access_log stdio:{ctx.dir}/access.log",
            f"coredump_dir {ctx.dir}",
            "cache deny all",
            "cache_mem 8 MB",
            f"dns_nameservers {self.nameserver}",
            f"visible_hostname {ctx.host.name}",
            # No grace for open connections: lab restarts and down must be quick.
            "shutdown_lifetime 0 seconds",
            # -n: never reverse-resolve a raw IP to match a domain: raw IPs are denied.
            f'acl allowed_sites dstdomain -n "{self.allow_file(ctx)}"',
            "http_access allow allowed_sites",
            "http_access deny all",
        ]
        with open(self.config(ctx), "w") as handle:
            handle.write("\n".join(lines) + "\n")

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        return [binary, "-N", "-f", self.config(ctx)]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        """A CONNECT to a raw IP must be refused by the allow-list with 403."""
        address = ctx.host.nics[0].address
        try:
            with socket.create_connection((address, self.port), timeout=timeout) as sock:
                sock.settimeout(timeout)
                sock.sendall(b"CONNECT 10.99.0.1:443 HTTP/1.1\r\nHost: 10.99.0.1:443\r\n\r\n")
                first = sock.recv(256).decode("latin-1").split("\r\n", 1)[0]
        except OSError as exc:
            return f"no answer on {address}:{self.port}: {exc}"
        return None if " 403 " in first else f"unexpected answer {first!r}"
