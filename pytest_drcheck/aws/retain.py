"""Retain-IP mode: the addresses a recovery instance must keep are the source server's.

When the DRS launch configuration copies private IPs (``copyPrivateIp``), the recovery
instance must come up with the source server's addresses, as DRS recorded them
(``sourceProperties.networkInterfaces[].ips``). A nic entry with ``mode: retain`` and no
``addresses`` takes its expectation from here, through the target of a host found in AWS
(``AwsHostTarget.source_addresses``, the checks' ``RecordsSourceAddresses`` seam).

DRS records bare addresses (no prefix length): nic compares them with the instance's addresses
without their prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytest_drcheck.checks.source_addresses import SourceAddresses
from pytest_drcheck.targets.base import TargetError

if TYPE_CHECKING:
    from pytest_drcheck.aws.run import AwsRun

CHANGES_IPS = ("its DRS launch configuration does not copy the private IPs "
               "(copyPrivateIp: false)")


def source_addresses(server: Mapping[str, Any]) -> list[str]:
    """The source server's recorded IPs, primary NIC first, in the order DRS lists them."""
    nics = server.get("sourceProperties", {}).get("networkInterfaces", [])
    ordered = sorted(nics, key=lambda n: not n.get("isPrimary", False))
    seen: dict[str, None] = {}
    for nic in ordered:
        for ip in nic.get("ips", []):
            seen.setdefault(str(ip), None)
    return list(seen)


def recorded_addresses(aws: AwsRun, host: str, timeout: float) -> SourceAddresses:
    """The host's source server's IPs as DRS recorded them, with a caveat when its launch
    configuration does not keep them. Raises TargetError (one line) when the host's source
    server is not found or the APIs fail."""
    from pytest_drcheck.aws.clients import AwsError
    from pytest_drcheck.aws.guard import DiscoveryError

    try:
        server = aws.source_server(host, timeout)
        source_id = str(server["sourceServerID"])
        config = aws.memo(("drs-launch-configuration", source_id), lambda: aws.clients.call(
            "drs", "get_launch_configuration", sourceServerID=source_id))
    except (AwsError, DiscoveryError) as exc:
        raise TargetError(str(exc)) from None
    return SourceAddresses(tuple(source_addresses(server)), f"DRS source server {source_id}",
                           "" if config.get("copyPrivateIp") else CHANGES_IPS)
