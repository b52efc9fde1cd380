"""Drill instances left behind: DRS does not terminate drill recovery instances, and they cost
money until someone does. Listed at the end of a run, as a warning and in the evidence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pytest_drcheck.aws.clients import AwsClients
from pytest_drcheck.aws.guard import GONE_STATES
from pytest_drcheck.inventory.plan import HostSpec


@dataclass(frozen=True)
class Leftover:
    instance_id: str
    state: str
    job_id: str
    source_server_id: str
    # The inventory host whose source server this is ("" when the inventory does not name it).
    host: str
    source_hostname: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        who = self.host or self.source_hostname or self.source_server_id
        return f"{self.instance_id} ({who}, job {self.job_id or 'unknown'}, {self.state.lower()})"


def find_leftovers(clients: AwsClients, hosts: Mapping[str, HostSpec]) -> list[Leftover]:
    """Every drill recovery instance of the region that is not terminated."""
    by_source = {str(h.aws["drs"]["source_server_id"]): name
                 for name, h in hosts.items() if "drs" in h.aws}
    found: list[Leftover] = []
    for item in clients.pages("drs", "describe_recovery_instances", "items"):
        if not item.get("isDrill") or item.get("ec2InstanceState") in GONE_STATES:
            continue
        source = str(item.get("sourceServerID", ""))
        hints: Mapping[str, Any] = (item.get("recoveryInstanceProperties", {})
                                    .get("identificationHints", {}))
        found.append(Leftover(
            instance_id=str(item.get("ec2InstanceID") or item["recoveryInstanceID"]),
            state=str(item.get("ec2InstanceState", "unknown")),
            job_id=str(item.get("jobID", "")), source_server_id=source,
            host=by_source.get(source, ""), source_hostname=str(hints.get("hostname", ""))))
    return sorted(found, key=lambda f: (f.host or "~", f.instance_id))
