"""The lab's replication: an on-premises source writing a beacon and a known disk load, and a
simulator copying that beacon to its recovery instance with a known lag.

Both are processes of ``replica_processes.py`` run by the system python3 on the source host.
Lab hosts share one file system (only /run is private to each): the source's beacon sits in its
host directory and the replica in the recovery instance's (``replica_path``), where the ``rpo``
check reads it over the instance's SSH like any file. Stopping the simulator (the breaker in
``faults/replication.py``) stalls replication.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pytest_drcheck.lab.components.base import Component, HostContext

SCRIPT = Path(__file__).resolve().with_name("replica_processes.py")


def beacon_path(ctx: HostContext, host: str) -> Path:
    """The beacon of source ``host`` (in its host directory, on the shared file system)."""
    return ctx.paths.host_dir(host) / "beacon"


def replica_path(ctx: HostContext, host: str) -> Path:
    """Where the replicated beacon of recovery instance ``host`` lands."""
    return ctx.paths.host_dir(host) / "replica-beacon"


def device_file(ctx: HostContext, host: str) -> Path:
    """Names the loop device the source writes its known load to (or why there is none)."""
    return ctx.paths.host_dir(host) / "disk.device"


@dataclass(frozen=True)
class SourceLoad(Component):
    """On a source host: the beacon every ``beacon_interval`` s and ``rate`` bytes/s of
    writes to a loop device of its own."""

    name: ClassVar[str] = "source-load"
    binary: ClassVar[str] = "python3"
    package: ClassVar[str] = "python3"

    rate: int = 1024 * 1024
    beacon_interval: float = 0.25

    def prepare(self, ctx: HostContext) -> None:
        for stale in (beacon_path(ctx, ctx.host.name), device_file(ctx, ctx.host.name)):
            stale.unlink(missing_ok=True)

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        return [binary, str(SCRIPT), "source", "--beacon", str(beacon_path(ctx, ctx.host.name)),
                "--beacon-interval", str(self.beacon_interval), "--disk",
                str(ctx.dir / "disk.img"), "--rate", str(self.rate), "--device-file",
                str(device_file(ctx, ctx.host.name))]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        if not beacon_path(ctx, ctx.host.name).exists():
            return "no beacon written yet"
        if not device_file(ctx, ctx.host.name).exists():
            return "no loop device set up yet"
        return None


@dataclass(frozen=True)
class ReplicationSimulator(Component):
    """On a source host: its beacon copied to ``replica_path`` of ``replica_of``, ``lag`` s
    late."""

    name: ClassVar[str] = "replication"
    binary: ClassVar[str] = "python3"
    package: ClassVar[str] = "python3"

    replica_of: str = "app01"
    lag: float = 2.0
    tick: float = 0.05

    def prepare(self, ctx: HostContext) -> None:
        replica_path(ctx, self.replica_of).unlink(missing_ok=True)

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        return [binary, str(SCRIPT), "replicate", "--source",
                str(beacon_path(ctx, ctx.host.name)), "--replica",
                str(replica_path(ctx, self.replica_of)), "--lag", str(self.lag), "--tick",
                str(self.tick)]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        # The replica appears `lag` seconds after start. Until then a drill's rpo check reads
        # "no replicated beacon": CI saw a drill started right after a rebuild do just that.
        if not replica_path(ctx, self.replica_of).exists():
            return "no replicated beacon yet"
        return None
