"""Drill instances left behind: DRS does not terminate drill recovery instances, and they cost
money until someone does. Listed at the end of a run, as a warning and in the evidence."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


def leftover_report(clients: AwsClients, hosts: Mapping[str, HostSpec],
                    find: Callable[[], list[Leftover]] | None = None) -> dict[str, Any]:
    """JSON-able record for the evidence: region, when, the instances, or why unknown."""
    from datetime import datetime, timezone

    from pytest_drcheck.aws.clients import AwsError

    report: dict[str, Any] = {
        "region": clients.settings.region,
        "checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "instances": [], "error": ""}
    try:
        found = find() if find is not None else find_leftovers(clients, hosts)
    except AwsError as exc:
        report["error"] = str(exc)
        return report
    report["instances"] = [item.as_dict() for item in found]
    return report


def describe_report(report: Mapping[str, Any]) -> str:
    """One line: the JUnit suite property and the warning."""
    if report.get("error"):
        return f"unknown ({report['error']})"
    items = [Leftover(**item) for item in report.get("instances", [])]
    return "; ".join(str(item) for item in items) if items else "none"
