"""DRS launch jobs as the checks and discovery read them: a job by id, and why a source
server's launch in a job failed (from the job log). Every listing goes through the paginators:
an endpoint may page before it filters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_drcheck.aws.clients import AwsClients
from pytest_drcheck.aws.guard import DiscoveryError

# Job log events that explain a failed launch.
FAILURE_EVENTS = ("SNAPSHOT_FAIL", "USING_PREVIOUS_SNAPSHOT_FAILED", "CONVERSION_FAIL",
                  "LAUNCH_FAILED", "CLEANUP_FAIL")


def describe_job(clients: AwsClients, job_id: str, label: str = "job") -> Mapping[str, Any]:
    """The job as DescribeJobs has it now; DiscoveryError when DRS does not know it."""
    for job in clients.pages("drs", "describe_jobs", "items", filters={"jobIDs": [job_id]}):
        if job.get("jobID") == job_id:
            return job
    raise DiscoveryError(f"{label} {job_id} not found in Elastic Disaster Recovery "
                         f"({clients.settings.region})")


def failure_reasons(clients: AwsClients, job_id: str, source_server_id: str) -> list[str]:
    """The job log's failure events for this source server (or for the whole job)."""
    reasons = []
    for item in clients.pages("drs", "describe_job_log_items", "items", jobID=job_id):
        data: Mapping[str, Any] = item.get("eventData", {})
        if (item.get("event") in FAILURE_EVENTS
                and data.get("sourceServerID") in (source_server_id, None)):
            raw = " ".join(str(data.get("rawError", "")).split())
            reasons.append(f"{item['event']}: {raw}" if raw else str(item["event"]))
    return reasons


def failure_text(reasons: list[str]) -> str:
    return "; ".join(reasons) or "the job log gives no reason"
