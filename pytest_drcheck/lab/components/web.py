"""A web server on the "fake internet" segment (busybox httpd from Debian's busybox)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pytest_drcheck.lab.components.base import Component, HostContext


@dataclass(frozen=True)
class WebServer(Component):
    name: ClassVar[str] = "httpd"
    binary: ClassVar[str] = "busybox"
    package: ClassVar[str] = "busybox"

    port: int = 80

    def prepare(self, ctx: HostContext) -> None:
        root = ctx.dir / "www"
        root.mkdir(exist_ok=True)
        (root / "index.html").write_text(f"hello from {ctx.host.name}\n")

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        return [binary, "httpd", "-f", "-p", f"0.0.0.0:{self.port}", "-h",
                str(ctx.dir / "www")]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        # Not reachable from the root namespace by design (its segment has no gateway);
        # the proxy's own probe and the egress tests exercise it.
        return None
