"""DRS's replication settings of a recovery host's source server, for the replication check's
``throttle`` and ``backlog`` subjects (``AwsHostTarget.replication_throttle`` /
``replication_backlog``, the checks' ``ReplicationSettings`` seam).

Shapes, from botocore's DRS model (drs/2020-02-26):
- GetReplicationConfiguration(sourceServerID) -> ReplicationConfiguration.bandwidthThrottling:
  long, min 0, "the outbound data transfer rate of the Source Server in Mbps"; 0 = not
  throttled. Configured per source server, so read once per run (memo).
- DescribeSourceServers(filters.sourceServerIDs) -> items[].dataReplicationInfo
  .replicatedDisks[].backloggedStorageBytes: long, min 0, "the size of the replication backlog
  in bytes". It changes while replication runs, so it is read afresh on every call.

The source server is the one the host's ``drs: {source_server_id: ...}`` names: reading its
settings needs no recovery instance (none may be up yet) and goes around discovery.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytest_drcheck.checks.replication_settings import Backlog, Throttle
from pytest_drcheck.targets.base import TargetError

if TYPE_CHECKING:
    from pytest_drcheck.aws.run import AwsRun
    from pytest_drcheck.inventory.plan import HostSpec

SERVICE = "DRS"


def source_server_id(host: HostSpec) -> str:
    """The DRS source server the host recovers; TargetError when the inventory does not say."""
    drs = host.aws.get("drs") or {}
    sid = drs.get("source_server_id")
    if not sid:
        found_by = " and ".join(f"{key}:" for key in host.aws) or "its address"
        raise TargetError(f"{host.name} is found through {found_by}, which does not name its "
                          "DRS source server: add drs: {source_server_id: ...} to it")
    return str(sid)


def throttle(aws: AwsRun, host: HostSpec) -> Throttle:
    from pytest_drcheck.aws.clients import AwsError

    sid = source_server_id(host)
    try:
        config = aws.memo(("drs-replication-configuration", sid), lambda: aws.clients.call(
            "drs", "get_replication_configuration", sourceServerID=sid))
    except AwsError as exc:
        raise TargetError(str(exc)) from None
    origin = f"DRS source server {sid}"
    value = config.get("bandwidthThrottling")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TargetError(f"DRS's replication configuration of {sid} does not state "
                          f"bandwidthThrottling (it has {value!r})")
    return Throttle(float(value) if value else None, origin, SERVICE)


def backlog(aws: AwsRun, host: HostSpec) -> Backlog:
    from pytest_drcheck.aws.clients import AwsError

    sid = source_server_id(host)

    def describe() -> list[Mapping[str, Any]]:
        return list(aws.clients.pages("drs", "describe_source_servers", "items",
                                      filters={"sourceServerIDs": [sid]}))

    try:
        servers = aws.fresh(("drs-source-server-now", sid), describe)
    except AwsError as exc:
        raise TargetError(str(exc)) from None
    server = next((s for s in servers if s.get("sourceServerID") == sid), None)
    if server is None:
        raise TargetError(f"DRS source server {sid} not found")
    info = server.get("dataReplicationInfo") or {}
    backlogs = [disk["backloggedStorageBytes"] for disk in info.get("replicatedDisks") or []
                if isinstance(disk.get("backloggedStorageBytes"), int)]
    if not backlogs:
        state = info.get("dataReplicationState", "not stated")
        raise TargetError(f"DRS reports no replication backlog for source server {sid} (no "
                          f"replicated disk states backloggedStorageBytes; replication state "
                          f"{state})")
    return Backlog(sum(backlogs), f"DRS source server {sid}", SERVICE)
