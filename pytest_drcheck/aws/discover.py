"""``drcheck discover``: an inventory skeleton for a drill, from Elastic Disaster Recovery.

One host per source server (of the drill job, or of the region), named after the source's
hostname, found at run time by its source server id; the drill instance's address, the source
OS and the source's recorded IPs are written down for the reader (attributes and description),
and the AWS-side checks are applied through a group. The output validates as it is and is meant
to be extended with the checks that run on the instances (dns, reach, nic, ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import yaml

from pytest_drcheck.aws.clients import AwsClients, AwsError
from pytest_drcheck.aws.guard import GONE_STATES, DiscoveryError
from pytest_drcheck.aws.jobs import describe_job
from pytest_drcheck.aws.retain import source_addresses

_CHUNK = 200  # DRS filters take at most 200 ids


def _host_name(server: Mapping[str, Any], taken: set[str]) -> str:
    hints = server.get("sourceProperties", {}).get("identificationHints", {})
    raw = str(hints.get("hostname") or hints.get("fqdn") or server["sourceServerID"])
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", raw.split(".")[0].lower()).strip("-_.") or str(
        server["sourceServerID"])
    if not name[0].isalnum():
        name = "h" + name
    candidate, index = name, 2
    while candidate in taken:
        candidate, index = f"{name}-{index}", index + 1
    taken.add(candidate)
    return candidate


def _chunks(values: Sequence[str]) -> list[list[str]]:
    return [list(values[i:i + _CHUNK]) for i in range(0, len(values), _CHUNK)]


def instant(value: Any) -> datetime:
    """A DRS timestamp as a datetime, whatever its form (``...Z``, ``...00.5Z``, ``+00:00``,
    or a datetime already); naive ones are UTC. Unparseable or missing: the distant past."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return datetime.min.replace(tzinfo=timezone.utc)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def gather(clients: AwsClients, job: str | None) -> list[dict[str, Any]]:
    """Per source server: the server, its drill instance (of the job) and that EC2 instance.
    Without a job and with several drills of a server up, the newest is kept (compared as
    datetimes) and the row says how many were up."""
    if job:
        try:
            found = describe_job(clients, job, "drill job")
        except DiscoveryError as exc:
            raise AwsError(str(exc)) from None
        ids = sorted({str(p["sourceServerID"]) for p in found.get("participatingServers", [])
                      if p.get("sourceServerID")})
        servers = [s for chunk in _chunks(ids) for s in clients.pages(
            "drs", "describe_source_servers", "items", filters={"sourceServerIDs": chunk})]
    else:
        servers = list(clients.pages("drs", "describe_source_servers", "items", filters={}))
    ids = [str(s["sourceServerID"]) for s in servers]
    drills: dict[str, Mapping[str, Any]] = {}
    up: dict[str, int] = {}
    for chunk in _chunks(ids):
        for item in clients.pages("drs", "describe_recovery_instances", "items",
                                  filters={"sourceServerIDs": chunk}):
            if (not item.get("isDrill") or item.get("ec2InstanceState") in GONE_STATES
                    or (job and item.get("jobID") != job)):
                continue
            source = str(item["sourceServerID"])
            up[source] = up.get(source, 0) + 1
            # The newest drill when several are up (no job given).
            if source not in drills or instant(item.get("pointInTimeSnapshotDateTime")) > (
                    instant(drills[source].get("pointInTimeSnapshotDateTime"))):
                drills[source] = item
    instance_ids = sorted(str(d.get("ec2InstanceID") or d["recoveryInstanceID"])
                          for d in drills.values())
    instances: dict[str, Mapping[str, Any]] = {}
    if instance_ids:
        for reservation in clients.pages("ec2", "describe_instances", "Reservations",
                                         InstanceIds=instance_ids):
            for instance in reservation.get("Instances", []):
                instances[str(instance["InstanceId"])] = instance
    rows = []
    for server in sorted(servers, key=lambda s: str(s["sourceServerID"])):
        drill = drills.get(str(server["sourceServerID"]))
        instance_id = str(drill.get("ec2InstanceID") or drill["recoveryInstanceID"]) if (
            drill) else None
        rows.append({"server": server, "drill": drill,
                     "instance": instances.get(instance_id or ""),
                     "drills_up": up.get(str(server["sourceServerID"]), 0)})
    return rows


def skeleton(rows: Sequence[Mapping[str, Any]], region: str, job: str | None,
             connection: str, aws_section: Mapping[str, Any]) -> str:
    taken: set[str] = set()
    hosts: dict[str, Any] = {}
    for row in rows:
        server = row["server"]
        props = server.get("sourceProperties", {})
        os_name = str(props.get("os", {}).get("fullString", "unknown OS"))
        ips = source_addresses(server)
        name = _host_name(server, taken)
        attributes: dict[str, Any] = {"source_os": os_name, "source_ips": ips}
        drill, instance = row["drill"], row["instance"]
        if drill is not None:
            attributes["drill_instance"] = str(drill.get("ec2InstanceID")
                                               or drill["recoveryInstanceID"])
            attributes["drill_job"] = str(drill.get("jobID", ""))
        if instance is not None and instance.get("PrivateIpAddress"):
            attributes["drill_address"] = str(instance["PrivateIpAddress"])
        hints = props.get("identificationHints", {})
        description = (f"{hints.get('fqdn') or hints.get('hostname') or name}: {os_name}; "
                       f"source IPs {', '.join(ips) or 'unknown'}")
        if drill is None:
            description += "; no drill instance is up"
        elif row.get("drills_up", 1) > 1:
            description += (f"; {row['drills_up']} drills are up: the newest is shown (job "
                            f"{attributes['drill_job']}); run the drill with --dr-drs-job")
        hosts[name] = {"description": description, "groups": ["recovery"],
                       "drs": {"source_server_id": str(server["sourceServerID"])},
                       "attributes": attributes}
        if "windows" in os_name.lower():  # learned from DRS's source OS: PowerShell batches
            hosts[name]["platform"] = "windows"
    document: dict[str, Any] = {
        "version": 1,
        "drill": {"name": f"drill-{job}" if job else f"drill-{region}",
                  "rpo": "15m"},
        "aws": dict(aws_section),
        "defaults": {"timeout": "30s",
                     "connection": {"type": connection, "connect_timeout": "60s"}},
        "groups": {"recovery": {
            "description": "Recovery instances of the drill (AWS-side checks)",
            "checks": {"drs_replication": [{}], "drs_launch": [{}],
                       "drs_instance_type": [{}]}}},
        "hosts": hosts or {},
    }
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    header = (f"# Inventory skeleton from AWS Elastic Disaster Recovery, {region}"
              f"{', job ' + job if job else ''}, {stamp} ({len(hosts)} source servers).\n"
              "# Set drill.rpo to your RPO target; add the checks that run on the instances\n"
              "# (dns, reach, nic, ...). Hosts are found at run time by drs.source_server_id.\n")
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=None,
                                   width=100)
