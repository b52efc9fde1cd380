"""The seam through which the replication check reads what the replication service itself says
about a source server: its configured bandwidth throttle and its replication backlog.

A source server is linked to the service through the recovery hosts whose ``source:`` names it
and that are found through it (the aws extra: hosts with ``drs:``). Their targets implement
``ReplicationSettings`` (the aws extra's target answers from DRS: GetReplicationConfiguration's
``bandwidthThrottling``, DescribeSourceServers' ``backloggedStorageBytes``). The checks only know
this protocol, never the layer that answers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Throttle:
    # Mbit/s (10^6 bits) the service lets the source send; None: not throttled.
    mbit_per_s: float | None
    # Who says so, for messages: "DRS source server s-0123...".
    origin: str
    # The service, for verdicts: "DRS".
    service: str


@dataclass(frozen=True)
class Backlog:
    # Bytes written on the source and not yet replicated, summed over its replicated disks.
    backlog_bytes: int
    origin: str
    service: str


@runtime_checkable
class ReplicationSettings(Protocol):
    def replication_throttle(self, timeout: float) -> Throttle:
        """The configured throttle; ``TargetError`` (one line, the cause) when it cannot be
        read within ``timeout`` seconds."""
        ...

    def replication_backlog(self, timeout: float) -> Backlog:
        """The backlog as the service reports it now (read afresh on every call);
        ``TargetError`` with the cause when it cannot be read."""
        ...
