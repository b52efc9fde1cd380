"""The Elastic Disaster Recovery side of a drill, observed through the APIs from the runner.

drs_replication  replication state and lag against the drill's RPO, per source server
drs_launch       the drill launch of the host's instance, and every post-launch action
drs_instance_type  the launched and the configured instance type against the source OS
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_drcheck.checks.aws_base import AwsCheck
from pytest_drcheck.checks.base import CheckContext, Subject
from pytest_drcheck.durations import format_duration, parse_duration
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import Observation, PlanItem

if TYPE_CHECKING:
    from pytest_drcheck.aws.discovery import Found
    from pytest_drcheck.aws.run import AwsHostTarget, AwsRun
    from pytest_drcheck.inventory.plan import HostSpec

REPLICATION_STATES = ["STOPPED", "INITIATING", "INITIAL_SYNC", "BACKLOG", "CREATING_SNAPSHOT",
                      "CONTINUOUS", "PAUSED", "RESCAN", "STALLED", "DISCONNECTED"]
_DURATION: dict[str, Any] = vocabulary.duration(vocabulary.MAX_OBJECTIVE_SECONDS,
                                                 "90s, 15m or 1h")
_ISO_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?"
                           r"(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
# Job log events that explain a failed launch.
_FAILURE_EVENTS = ("SNAPSHOT_FAIL", "USING_PREVIOUS_SNAPSHOT_FAILED", "CONVERSION_FAIL",
                   "LAUNCH_FAILED", "CLEANUP_FAIL")


def parse_iso_duration(text: str) -> float:
    """Seconds of an ISO 8601 duration as DRS writes lag (``PT1H2M3S``, ``P1DT2H``)."""
    match = _ISO_DURATION.match(text.strip())
    if not match or text.strip() in ("P", "PT"):
        raise ValueError(f"'{text}' is not an ISO 8601 duration")
    weeks, days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + seconds


def _source_name(server: Mapping[str, Any]) -> str:
    hints = server.get("sourceProperties", {}).get("identificationHints", {})
    name = hints.get("hostname") or hints.get("fqdn")
    ident = server.get("sourceServerID", "?")
    return f"{ident} ({name})" if name else str(ident)


class DrsReplicationCheck(AwsCheck):
    type_name: ClassVar[str] = "drs_replication"
    default_timeout: ClassVar[float] = 30.0
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "max_lag": _DURATION,
            "states": {"type": "array", "minItems": 1, "uniqueItems": True,
                       "items": {"enum": REPLICATION_STATES}},
        },
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        max_lag = parse_duration(entry["max_lag"]) if "max_lag" in entry else None
        return [Subject("state", {"property": "state",
                                  "states": list(entry.get("states", ["CONTINUOUS"]))}),
                Subject("lag", {"property": "lag", "max_lag": max_lag})]

    def plan_problem(self, item: PlanItem, host: HostSpec, drill: Mapping[str, Any]
                     ) -> str | None:
        if item.params["property"] == "lag" and item.params["max_lag"] is None and (
                "rpo" not in drill):
            return ("drs_replication needs the RPO target to compare the lag with; set "
                    "drill.rpo (e.g. rpo: 15m) or max_lag on the entry")
        return super().plan_problem(item, host, drill)

    def expectation(self, item: PlanItem) -> str:
        if item.params["property"] == "state":
            return "replication " + " or ".join(s.lower() for s in item.params["states"])
        return "replication lag within the RPO"

    def observe(self, ctx: CheckContext, target: AwsHostTarget) -> Observation:
        server = target.aws.source_server(ctx.item.host, ctx.timeout)
        info: Mapping[str, Any] = server.get("dataReplicationInfo", {})
        state = str(info.get("dataReplicationState", "unknown"))
        details = {"source_server": server.get("sourceServerID"), "state": state,
                   "lag": info.get("lagDuration")}
        if ctx.params["property"] == "state":
            wanted = list(ctx.params["states"])
            expected = "replication " + " or ".join(s.lower() for s in wanted)
            if state in wanted:
                return Observation.passed(expected, state.lower(), **details)
            error = info.get("dataReplicationError", {})
            why = ""
            if error:
                raw = str(error.get("rawError", "")).strip()
                why = f" (error {error.get('error', 'unknown')}{': ' + raw if raw else ''})"
            return Observation.failed(expected, state.lower(), (
                f"expected {expected} for source server {_source_name(server)}, observed "
                f"{state.lower()}{why}"), **details)
        return self._lag(ctx, target.aws, server, info, state, details)

    @staticmethod
    def _lag(ctx: CheckContext, aws: AwsRun, server: Mapping[str, Any],
             info: Mapping[str, Any], state: str, details: Mapping[str, Any]) -> Observation:
        limit = ctx.params["max_lag"]
        label = "max_lag"
        if limit is None:
            limit, label = aws.plan.drill.rpo_seconds or 0.0, "RPO"
        expected = f"lag at most {format_duration(limit)} ({label})"
        raw = info.get("lagDuration")
        if raw is None:
            if state == "CONTINUOUS":
                return Observation.passed(expected, "no lag (continuous)", **details)
            return Observation.failed(expected, "unknown", (
                f"expected {expected}, observed no lag figure while replication of "
                f"{_source_name(server)} is {state.lower()}"), **details)
        try:
            lag = parse_iso_duration(str(raw))
        except ValueError as exc:
            return Observation.failed(expected, str(raw), f"DRS reported lag {exc}", **details)
        observed = f"lag {format_duration(lag)}"
        if lag <= limit:
            return Observation.passed(expected, observed, **details)
        return Observation.failed(expected, observed, (
            f"expected {expected}, observed {observed} for source server "
            f"{_source_name(server)}: {format_duration(lag - limit)} of changes would be lost"),
            **details)


class DrsLaunchCheck(AwsCheck):
    type_name: ClassVar[str] = "drs_launch"
    default_timeout: ClassVar[float] = 30.0
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "actions": {"type": "array", "uniqueItems": True,
                        "items": {"type": "string", "minLength": 1},
                        "x-expect": "a list of post-launch action names that must have "
                                    "succeeded"},
        },
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        return [Subject("launch", {"property": "launch"}),
                Subject("post_launch", {"property": "post_launch",
                                        "actions": list(entry.get("actions", []))})]

    def expectation(self, item: PlanItem) -> str:
        if item.params["property"] == "launch":
            return "launched"
        return "every post-launch action succeeded"

    def observe(self, ctx: CheckContext, target: AwsHostTarget) -> Observation:
        from pytest_drcheck.aws.guard import DiscoveryError

        aws = target.aws
        found: Found | None = None
        try:
            found = target.found(ctx.timeout)
            server = found.source_server
            if server is None:
                raise DiscoveryError(f"{found.instance_id} is not a DRS recovery instance")
            job_id = found.job_id
        except DiscoveryError as exc:
            # No instance to check (e.g. the launch failed): the launch itself can still say
            # why, if the source server's last launch is this drill's.
            server, job_id = self._last_drill_launch(ctx, aws, exc)
        if not job_id:
            raise DiscoveryError(f"no launch job is recorded for {_source_name(server)}")
        job = aws.memo(("drs-job", job_id), lambda: self._job(aws, job_id))
        source_id = str(server["sourceServerID"])
        entry = next((p for p in job.get("participatingServers", [])
                      if p.get("sourceServerID") == source_id), None)
        if entry is None:
            raise DiscoveryError(f"job {job_id} has no record of {_source_name(server)}")
        if ctx.params["property"] == "launch":
            return self._launch(aws, job, entry, found, server)
        return self._post_launch(ctx, job_id, entry)

    @staticmethod
    def _last_drill_launch(ctx: CheckContext, aws: AwsRun, exc: Exception
                           ) -> tuple[Mapping[str, Any], str | None]:
        from pytest_drcheck.aws.guard import DiscoveryError, Refused

        if isinstance(exc, Refused):
            raise exc
        server = aws.source_server(ctx.item.host, ctx.timeout)
        initiated = server.get("lifeCycle", {}).get("lastLaunch", {}).get("initiated", {})
        job_id = initiated.get("jobID")
        wanted = aws.options.job_id
        if initiated.get("type") != "DRILL" or not job_id or (wanted and job_id != wanted):
            raise DiscoveryError(str(exc)) from None
        return server, str(job_id)

    @staticmethod
    def _job(aws: AwsRun, job_id: str) -> Mapping[str, Any]:
        from pytest_drcheck.aws.guard import DiscoveryError

        jobs = aws.clients.call("drs", "describe_jobs", filters={"jobIDs": [job_id]})
        for job in jobs.get("items", []):
            if job.get("jobID") == job_id:
                found: Mapping[str, Any] = job
                return found
        raise DiscoveryError(f"job {job_id} not found in Elastic Disaster Recovery")

    @staticmethod
    def _launch(aws: AwsRun, job: Mapping[str, Any], entry: Mapping[str, Any],
                found: Found | None, server: Mapping[str, Any]) -> Observation:
        job_id = str(job["jobID"])
        status = str(entry.get("launchStatus", "unknown"))
        details = {"job": job_id, "launch_status": status,
                   "initiated_by": job.get("initiatedBy"),
                   "recovery_instance": entry.get("recoveryInstanceID")}
        if status == "LAUNCHED":
            instance = found.instance_id if found else entry.get("recoveryInstanceID", "?")
            return Observation.passed("launched", f"launched {instance} (job {job_id})",
                                      **details)
        if status == "FAILED":
            source_id = str(server["sourceServerID"])
            log = aws.memo(("drs-job-log", job_id), lambda: list(aws.clients.pages(
                "drs", "describe_job_log_items", "items", jobID=job_id)))
            errors = [f"{item['event']}: {item.get('eventData', {}).get('rawError', '').strip()}"
                      .rstrip(": ")
                      for item in log if item.get("event") in _FAILURE_EVENTS
                      and item.get("eventData", {}).get("sourceServerID") in (source_id, None)]
            why = "; ".join(errors) or "the job log gives no reason"
            return Observation.failed("launched", "failed", (
                f"the launch of {_source_name(server)} in job {job_id} failed: {why}"),
                **details)
        return Observation.failed("launched", status.lower(), (
            f"the launch of {_source_name(server)} in job {job_id} is {status.lower()}, "
            "not launched"), **details)

    @staticmethod
    def _post_launch(ctx: CheckContext, job_id: str, entry: Mapping[str, Any]) -> Observation:
        expected_names: Sequence[str] = ctx.params["actions"]
        expected = ("post-launch actions " + ", ".join(expected_names) + " succeeded"
                    if expected_names else "every post-launch action succeeded")
        status: Mapping[str, Any] = entry.get("launchActionsStatus", {})
        runs: Sequence[Mapping[str, Any]] = status.get("runs", [])
        by_name = {str(r.get("action", {}).get("name", r.get("runId", "?"))): r for r in runs}
        details = {"job": job_id, "actions": {n: r.get("status") for n, r in by_name.items()},
                   "ssm_agent_discovered": status.get("ssmAgentDiscoveryDatetime")}
        if not runs and not expected_names:
            return Observation.skipped(expected, f"no post-launch action ran in job {job_id}",
                                       **details)
        problems = []
        for name in expected_names:
            if name not in by_name:
                why = ("" if status.get("ssmAgentDiscoveryDatetime") else
                       " (the SSM agent was never discovered on the instance: post-launch "
                       "actions need it)")
                problems.append(f"'{name}' did not run{why}")
        for name, run in sorted(by_name.items()):
            state = str(run.get("status", "unknown"))
            if state == "SUCCEEDED":
                continue
            action = run.get("action", {})
            what = f"'{name}' ({action.get('actionCode', '?')}"
            what += ", optional)" if action.get("optional") else ")"
            if state == "FAILED":
                reason = str(run.get("failureReason", "")).strip() or "no reason given"
                problems.append(f"{what} failed: {reason}")
            else:
                problems.append(f"{what} is {state.lower().replace('_', ' ')}")
        ran = ", ".join(f"{n} {str(r.get('status', '?')).lower()}"
                        for n, r in sorted(by_name.items())) or "none ran"
        if not problems:
            return Observation.passed(expected, ran, **details)
        return Observation.failed(expected, ran, f"post-launch action {'; '.join(problems)}",
                                  **details)


class DrsInstanceTypeCheck(AwsCheck):
    type_name: ClassVar[str] = "drs_instance_type"
    default_timeout: ClassVar[float] = 30.0
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            # launched: the drill's instance; configured: the launch template (what a real
            # recovery gets); both (the default).
            "of": {"enum": ["launched", "configured", "both"]},
        },
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        which = entry.get("of", "both")
        names = ["launched", "configured"] if which == "both" else [which]
        return [Subject(name, {"property": name}) for name in names]

    def expectation(self, item: PlanItem) -> str:
        return "an instance type the source OS boots on"

    def observe(self, ctx: CheckContext, target: AwsHostTarget) -> Observation:
        from pytest_drcheck.aws import ostype

        aws = target.aws
        expected = self.expectation(ctx.item)
        if ctx.params["property"] == "launched":
            found = target.found(ctx.timeout)
            server = found.source_server or aws.source_server(ctx.item.host, ctx.timeout)
            instance_type = found.instance_type or "unknown"
            origin = f"launched {found.instance_id}"
        else:
            server = aws.source_server(ctx.item.host, ctx.timeout)
            instance_type, origin = self._configured(aws, server)
        props: Mapping[str, Any] = server.get("sourceProperties", {})
        os_name = str(props.get("os", {}).get("fullString", ""))
        supports = props.get("supportsNitroInstances")
        described = aws.memo(("ec2-instance-type", instance_type),
                             lambda: self._describe_type(aws, instance_type))
        nitro = ostype.is_nitro(instance_type, described)
        verdict = ostype.compatible(instance_type, nitro, os_name, supports)
        observed = f"{instance_type} ({'nitro' if nitro else 'xen'}) for {os_name or 'unknown OS'}"
        details = {"instance_type": instance_type, "nitro": nitro, "os": os_name,
                   "supports_nitro": supports, "origin": origin}
        if verdict.compatible:
            return Observation.passed(expected, observed, **details)
        return Observation.failed(expected, observed, f"{origin}: {verdict.reason}", **details)

    @staticmethod
    def _configured(aws: AwsRun, server: Mapping[str, Any]) -> tuple[str, str]:
        from pytest_drcheck.aws.guard import DiscoveryError

        source_id = str(server["sourceServerID"])
        config = aws.clients.call("drs", "get_launch_configuration", sourceServerID=source_id)
        sizing = config.get("targetInstanceTypeRightSizingMethod", "NONE")
        if sizing in ("BASIC", "IN_AWS"):
            recommended = server.get("sourceProperties", {}).get("recommendedInstanceType")
            if recommended:
                return str(recommended), f"right-sizing {sizing} picks {recommended}"
        template = config.get("ec2LaunchTemplateID")
        if not template:
            raise DiscoveryError(f"the launch configuration of {_source_name(server)} has no "
                                 "EC2 launch template")
        versions = aws.clients.call("ec2", "describe_launch_template_versions",
                                    LaunchTemplateId=str(template), Versions=["$Default"])
        for version in versions.get("LaunchTemplateVersions", []):
            instance_type = version.get("LaunchTemplateData", {}).get("InstanceType")
            if instance_type:
                return str(instance_type), f"launch template {template} configures " \
                                           f"{instance_type}"
        raise DiscoveryError(f"launch template {template} of {_source_name(server)} names no "
                             "instance type")

    @staticmethod
    def _describe_type(aws: AwsRun, instance_type: str) -> Mapping[str, Any] | None:
        from pytest_drcheck.aws.clients import AwsError

        try:
            found = aws.clients.call("ec2", "describe_instance_types",
                                     InstanceTypes=[instance_type]).get("InstanceTypes", [])
        except AwsError:
            return None  # the family table decides
        return found[0] if found else None
