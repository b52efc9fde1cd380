"""The drill lifecycle in Elastic Disaster Recovery: launch a drill of the inventory's source
servers, follow its job, terminate exactly that job's drill instances.

- ``launch`` calls StartRecovery with ``isDrill: true`` (latest point in time, or a named
  recovery snapshot per server) and refuses when a drill of any of those servers is already up
  (unless told): two drills up make every check of the host ambiguous.
- ``status`` reads the job now; ``wait`` reads it until every server's launch has ended.
- ``terminate`` terminates the recovery instances that the job launched and that DRS still
  lists as drills of that job, never anything else (a real recovery's instance, another
  drill's, a production instance), and says what it terminated.

The job's creation time (DRS's clock) is where the measured RTO starts: pass it to pytest as
``--dr-launched-at`` with the job as ``--dr-drs-job``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pytest_drcheck.aws.clients import AwsClients
from pytest_drcheck.aws.guard import GONE_STATES
from pytest_drcheck.aws.jobs import describe_job, failure_reasons, failure_text

_CHUNK = 200  # DRS takes at most 200 ids per filter or terminate call
# A server's launch has ended in these states (PENDING/IN_PROGRESS have not).
ENDED = {"LAUNCHED", "FAILED", "TERMINATED"}


class DrillError(Exception):
    """The lifecycle step cannot be done as asked; one line for the user."""


@dataclass(frozen=True)
class ServerLaunch:
    source_server_id: str
    launch_status: str
    recovery_instance_id: str | None


@dataclass(frozen=True)
class DrillJob:
    job_id: str
    # DRS's creationDateTime: where the measured RTO starts.
    created_at: datetime | None
    status: str
    initiated_by: str
    servers: tuple[ServerLaunch, ...]

    @property
    def ended(self) -> bool:
        return self.status == "COMPLETED" or all(s.launch_status in ENDED for s in self.servers)

    @classmethod
    def from_api(cls, job: Mapping[str, Any]) -> DrillJob:
        created = job.get("creationDateTime")
        return cls(str(job["jobID"]), _instant(created) if created else None,
                   str(job.get("status", "unknown")), str(job.get("initiatedBy", "")),
                   tuple(ServerLaunch(str(p.get("sourceServerID", "")),
                                      str(p.get("launchStatus", "unknown")),
                                      str(p["recoveryInstanceID"])
                                      if p.get("recoveryInstanceID") else None)
                         for p in job.get("participatingServers", [])))


@dataclass(frozen=True)
class Terminated:
    job_id: str
    # The recovery instances terminated (EC2 ids), and the terminate job DRS started.
    instances: tuple[str, ...]
    terminate_job_id: str | None
    # Instances of the job that were already gone.
    already_gone: tuple[str, ...]


def _instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _chunks(values: Sequence[str]) -> list[list[str]]:
    return [list(values[i:i + _CHUNK]) for i in range(0, len(values), _CHUNK)]


def _recovery_instances(clients: AwsClients, source_ids: Sequence[str]
                        ) -> list[Mapping[str, Any]]:
    return [item for chunk in _chunks(sorted(source_ids))
            for item in clients.pages("drs", "describe_recovery_instances", "items",
                                      filters={"sourceServerIDs": chunk})]


def drills_up(clients: AwsClients, source_ids: Sequence[str]) -> list[Mapping[str, Any]]:
    """Drill recovery instances of these servers that are not terminated (or terminating)."""
    return [item for item in _recovery_instances(clients, source_ids)
            if item.get("isDrill") and item.get("ec2InstanceState") not in GONE_STATES]


def launches_in_progress(clients: AwsClients, source_ids: Sequence[str]) -> list[str]:
    """'source (job ...)' for each server whose last drill launch has not ended yet."""
    busy = []
    for chunk in _chunks(sorted(source_ids)):
        for server in clients.pages("drs", "describe_source_servers", "items",
                                    filters={"sourceServerIDs": chunk}):
            last = server.get("lifeCycle", {}).get("lastLaunch", {})
            initiated = last.get("initiated", {})
            if initiated.get("type") == "DRILL" and last.get("status") in ("PENDING",
                                                                           "IN_PROGRESS"):
                busy.append(f"{server['sourceServerID']} (job {initiated.get('jobID', '?')})")
    return busy


def _snapshot(clients: AwsClients, source_id: str, snapshot: str) -> str:
    for item in clients.pages("drs", "describe_recovery_snapshots", "items",
                              sourceServerID=source_id):
        if item.get("snapshotID") == snapshot:
            return snapshot
    raise DrillError(f"recovery snapshot {snapshot} is not a snapshot of source server "
                     f"{source_id}; list them with DescribeRecoverySnapshots")


def refuse_running(clients: AwsClients, ids: Sequence[str]) -> None:
    """DrillError when a drill of these servers is being launched or is up: two drills up make
    every check of the host ambiguous."""
    starting = launches_in_progress(clients, ids)
    if starting:
        raise DrillError(f"a drill of these source servers is being launched: "
                         f"{', '.join(starting)}; wait for it and terminate it first "
                         "(drcheck drill terminate --job ...) or launch anyway with "
                         "--allow-running")
    up = drills_up(clients, ids)
    if up:
        shown = ", ".join(f"{i.get('ec2InstanceID') or i['recoveryInstanceID']} (source "
                          f"{i.get('sourceServerID')}, job {i.get('jobID', '?')})"
                          for i in up)
        raise DrillError(f"a drill of these source servers is already up: {shown}; "
                         "terminate it first (drcheck drill terminate --job ...) or launch "
                         "anyway with --allow-running")


def launch(clients: AwsClients, source_ids: Iterable[str], snapshots: Mapping[str, str]
           | None = None, allow_running: bool = False) -> DrillJob:
    """StartRecovery as a drill; ``snapshots`` maps a server to a recovery snapshot id (the
    others launch from the latest point in time)."""
    ids = sorted(set(source_ids))
    if not ids:
        raise DrillError("no source server to launch: give hosts drs: {source_server_id: ...}")
    if not allow_running:
        refuse_running(clients, ids)
    servers = []
    for source_id in ids:
        entry = {"sourceServerID": source_id}
        wanted = (snapshots or {}).get(source_id)
        if wanted and wanted != "latest":
            entry["recoverySnapshotID"] = _snapshot(clients, source_id, wanted)
        servers.append(entry)
    response = clients.call("drs", "start_recovery", sourceServers=servers, isDrill=True,
                            tags={"drcheck": "drill"})
    return DrillJob.from_api(response["job"])


def status(clients: AwsClients, job_id: str) -> DrillJob:
    return DrillJob.from_api(describe_job(clients, job_id))


def wait(clients: AwsClients, job_id: str, timeout: float,
         sleep: Callable[[float], None] = time.sleep, poll: float = 5.0) -> DrillJob:
    """The job once every server's launch has ended, or the last look when ``timeout`` is
    over (its ``ended`` is then False)."""
    deadline = time.monotonic() + timeout
    while True:
        job = status(clients, job_id)
        left = deadline - time.monotonic()
        if job.ended or left <= 0:
            return job
        sleep(min(poll, left))


def launch_failures(clients: AwsClients, job: DrillJob) -> dict[str, str]:
    """Source server -> why its launch failed (the job log), for failed launches."""
    return {s.source_server_id: failure_text(failure_reasons(clients, job.job_id,
                                                             s.source_server_id))
            for s in job.servers if s.launch_status == "FAILED"}


def terminate(clients: AwsClients, job_id: str) -> Terminated:
    """Terminate the drill instances of this job: those DRS lists with this job id, as
    drills, among the job's own participating servers. A job that is not a drill is refused."""
    job = status(clients, job_id)
    if job.initiated_by and job.initiated_by not in ("START_DRILL", "DIAGNOSTIC"):
        raise DrillError(f"job {job_id} was initiated by {job.initiated_by}, not by a drill: "
                         "refusing to terminate its instances")
    sources = sorted({s.source_server_id for s in job.servers if s.source_server_id})
    mine: list[str] = []
    gone: list[str] = []
    for item in _recovery_instances(clients, sources):
        if item.get("jobID") != job_id or not item.get("isDrill"):
            continue  # another job's, or a real recovery's: never touched
        (gone if item.get("ec2InstanceState") in GONE_STATES else mine).append(
            str(item["recoveryInstanceID"]))
    terminate_job = None
    for chunk in _chunks(sorted(mine)):
        response = clients.call("drs", "terminate_recovery_instances", recoveryInstanceIDs=chunk)
        terminate_job = str(response.get("job", {}).get("jobID") or "") or terminate_job
    return Terminated(job_id, tuple(sorted(mine)), terminate_job, tuple(sorted(gone)))
