"""Retain-IP mode: the addresses a recovery instance must keep are the source server's.

When the DRS launch configuration copies private IPs (``copyPrivateIp``), the recovery
instance must come up with the source server's addresses, as DRS recorded them
(``sourceProperties.networkInterfaces[].ips``). The nic check can take its retain-mode
expectation from here instead of the inventory repeating the addresses:

    from pytest_drcheck.aws.retain import recorded_addresses
    addresses = recorded_addresses(ctx.target, ctx.timeout)   # None: change-IP mode

``ctx.target`` must be the host's target (an AwsHostTarget: the host has drs: or ec2:).
DRS records bare addresses (no prefix length): compare them with the instance's addresses
without their prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_drcheck.targets.base import Target, TargetError


def source_addresses(server: Mapping[str, Any]) -> list[str]:
    """The source server's recorded IPs, primary NIC first, in the order DRS lists them."""
    nics = server.get("sourceProperties", {}).get("networkInterfaces", [])
    ordered = sorted(nics, key=lambda n: not n.get("isPrimary", False))
    seen: dict[str, None] = {}
    for nic in ordered:
        for ip in nic.get("ips", []):
            seen.setdefault(str(ip), None)
    return list(seen)


def recorded_addresses(target: Target, timeout: float) -> list[str] | None:
    """The source server's IPs when its launch configuration retains them, else None.

    Raises TargetError (one line) when the host is not found in AWS or the APIs fail.
    """
    from pytest_drcheck.aws.clients import AwsError
    from pytest_drcheck.aws.guard import DiscoveryError
    from pytest_drcheck.aws.run import AwsHostTarget

    if not isinstance(target, AwsHostTarget):
        raise TargetError(f"{target.name} is not found in AWS (add drs: or ec2: to the host) "
                          "so its source server's addresses are unknown")
    aws = target.aws
    try:
        server = aws.source_server(target.name, timeout)
        source_id = str(server["sourceServerID"])
        config = aws.memo(("drs-launch-configuration", source_id), lambda: aws.clients.call(
            "drs", "get_launch_configuration", sourceServerID=source_id))
    except (AwsError, DiscoveryError) as exc:
        raise TargetError(str(exc)) from None
    if not config.get("copyPrivateIp"):
        return None
    return source_addresses(server)
