"""The Elastic Disaster Recovery side of a drill, observed through the APIs from the runner.

drs_replication  replication state and lag against the drill's RPO, per source server
drs_launch       the drill launch of the host's instance, and every post-launch action (skipped
                 when the launch did not pass: its reason is the launch's)
drs_instance_type  the launched and the configured instance type against the source OS
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_drcheck.aws.checks.base import AwsCheck
from pytest_drcheck.checks.base import CheckContext, Subject
from pytest_drcheck.durations import format_duration, parse_duration
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import CouldNotObserve, Observation, PlanItem

if TYPE_CHECKING:
    from pytest_drcheck.aws.run import AwsRun
    from pytest_drcheck.inventory.plan import HostSpec

REPLICATION_STATES = ["STOPPED", "INITIATING", "INITIAL_SYNC", "BACKLOG", "CREATING_SNAPSHOT",
                      "CONTINUOUS", "PAUSED", "RESCAN", "STALLED", "DISCONNECTED"]
_DURATION: dict[str, Any] = vocabulary.duration(vocabulary.MAX_OBJECTIVE_SECONDS,
                                                 "90s, 15m or 1h")
_ISO_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?"
                           r"(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


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


@dataclass(frozen=True)
class Replication:
    """A source server's replication as DRS reports it."""

    source: str  # "s-... (hostname)"
    state: str
    # Seconds behind; None when DRS gives no lag figure.
    lag: float | None
    # " (error CODE: raw)" when DRS records a replication error, else "".
    error: str
    # The drill's RPO in seconds (the default limit for lag).
    rpo: float | None
    details: Mapping[str, Any] = field(default_factory=dict)


class DrsReplicationCheck(AwsCheck[Replication]):
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

    def expected(self, item: PlanItem) -> str:
        if item.params["property"] == "state":
            return "replication " + " or ".join(s.lower() for s in item.params["states"])
        return "replication lag within the RPO"

    def observe(self, ctx: CheckContext) -> Replication:
        target = self.aws_target(ctx)
        server = target.aws.source_server(ctx.item.host, ctx.timeout)
        info: Mapping[str, Any] = server.get("dataReplicationInfo", {})
        state = str(info.get("dataReplicationState", "unknown"))
        raw = info.get("lagDuration")
        lag = None
        if raw is not None:
            try:
                lag = parse_iso_duration(str(raw))
            except ValueError as exc:
                raise CouldNotObserve(f"DRS reported lag {exc}") from None
        error = info.get("dataReplicationError", {})
        why = ""
        if error:
            text = str(error.get("rawError", "")).strip()
            why = f" (error {error.get('error', 'unknown')}{': ' + text if text else ''})"
        return Replication(_source_name(server), state, lag, why,
                           target.aws.plan.drill.rpo_seconds,
                           {"source_server": server.get("sourceServerID"), "state": state,
                            "lag": raw})

    def judge(self, item: PlanItem, value: Replication) -> Observation:
        details = dict(value.details)
        state = value.state
        if item.params["property"] == "state":
            wanted = list(item.params["states"])
            expected = self.expected(item)
            if state in wanted:
                return Observation.passed(expected, state.lower(), **details)
            return Observation.failed(expected, state.lower(), (
                f"expected {expected} for source server {value.source}, observed "
                f"{state.lower()}{value.error}"), **details)
        limit = item.params["max_lag"]
        label = "max_lag"
        if limit is None:
            limit, label = value.rpo or 0.0, "RPO"
        expected = f"lag at most {format_duration(limit)} ({label})"
        if value.lag is None:
            if state == "CONTINUOUS":
                return Observation.passed(expected, "no lag (continuous)", **details)
            return Observation.failed(expected, "unknown", (
                f"expected {expected}, observed no lag figure while replication of "
                f"{value.source} is {state.lower()}"), **details)
        observed = f"lag {format_duration(value.lag)}"
        if value.lag <= limit:
            return Observation.passed(expected, observed, **details)
        return Observation.failed(expected, observed, (
            f"expected {expected}, observed {observed} for source server "
            f"{value.source}: {format_duration(value.lag - limit)} of changes would be lost"),
            **details)


@dataclass(frozen=True)
class Launch:
    """The host's drill launch, as its DRS job records it now."""

    source: str  # "s-... (hostname)"
    job_id: str
    initiated_by: str | None
    # The job's launchStatus for this source server (LAUNCHED, FAILED, PENDING, ...).
    status: str
    instance_id: str | None
    # Why it failed, from the job log (only read for a failed launch).
    failure: str
    # Post-launch action runs as DRS lists them.
    runs: tuple[Mapping[str, Any], ...]
    agent_discovered: str | None


class DrsLaunchCheck(AwsCheck[Launch]):
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
                # Post-launch actions run on a launched instance: a failed launch is one
                # failure (the launch's), not a second one about actions that never ran.
                Subject("post_launch", {"property": "post_launch",
                                        "actions": list(entry.get("actions", []))},
                        requires=("drs_launch[launch]",))]

    def expected(self, item: PlanItem) -> str:
        if item.params["property"] == "launch":
            return "launched"
        return "every post-launch action succeeded"

    def observe(self, ctx: CheckContext) -> Launch:
        from pytest_drcheck.aws.guard import DiscoveryError
        from pytest_drcheck.aws.jobs import describe_job, failure_reasons, failure_text

        aws = self.aws_target(ctx).aws
        launch = aws.drill_launch(ctx.item.host, ctx.timeout)
        server, job_id = launch.source_server, launch.job_id
        # Read afresh on every look (shared only with checks asking at the same moment):
        # under --dr-wait a launch or an action still in progress must be seen to finish.
        job = aws.fresh(("drs-job", job_id), lambda: describe_job(aws.clients, job_id))
        source_id = str(server["sourceServerID"])
        entry = next((p for p in job.get("participatingServers", [])
                      if p.get("sourceServerID") == source_id), None)
        if entry is None:
            raise DiscoveryError(f"job {job_id} has no record of {_source_name(server)}")
        status = str(entry.get("launchStatus", "unknown"))
        failure = ""
        if status == "FAILED" and ctx.params["property"] == "launch":
            failure = failure_text(aws.fresh(("drs-job-log", job_id, source_id),
                                             lambda: failure_reasons(aws.clients, job_id,
                                                                     source_id)))
        actions: Mapping[str, Any] = entry.get("launchActionsStatus", {})
        instance = (launch.found.instance_id if launch.found is not None
                    else entry.get("recoveryInstanceID"))
        return Launch(_source_name(server), job_id, job.get("initiatedBy"), status,
                      str(instance) if instance else None, failure,
                      tuple(actions.get("runs", [])), actions.get("ssmAgentDiscoveryDatetime"))

    def judge(self, item: PlanItem, value: Launch) -> Observation:
        if item.params["property"] == "launch":
            return self._launch(value)
        return self._post_launch(item, value)

    @staticmethod
    def _launch(value: Launch) -> Observation:
        details = {"job": value.job_id, "launch_status": value.status,
                   "initiated_by": value.initiated_by, "recovery_instance": value.instance_id}
        if value.status == "LAUNCHED":
            return Observation.passed("launched", f"launched {value.instance_id or '?'} (job "
                                                  f"{value.job_id})", **details)
        if value.status == "FAILED":
            return Observation.failed("launched", "failed", (
                f"the launch of {value.source} in job {value.job_id} failed: {value.failure}"),
                **details)
        return Observation.failed("launched", value.status.lower(), (
            f"the launch of {value.source} in job {value.job_id} is {value.status.lower()}, "
            "not launched"), **details)

    @staticmethod
    def _post_launch(item: PlanItem, value: Launch) -> Observation:
        expected_names: list[str] = list(item.params["actions"])
        expected = ("post-launch actions " + ", ".join(expected_names) + " succeeded"
                    if expected_names else "every post-launch action succeeded")
        by_name = {str(r.get("action", {}).get("name", r.get("runId", "?"))): r
                   for r in value.runs}
        details = {"job": value.job_id,
                   "actions": {n: r.get("status") for n, r in by_name.items()},
                   "ssm_agent_discovered": value.agent_discovered}
        if not value.runs and not expected_names:
            return Observation.skipped(expected, f"no post-launch action ran in job "
                                                 f"{value.job_id}", **details)
        problems = []
        for name in expected_names:
            if name not in by_name:
                why = ("" if value.agent_discovered else
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


@dataclass(frozen=True)
class InstanceType:
    """An instance type (launched, or configured for a real recovery) and the source OS."""

    instance_type: str
    # Where the type comes from, e.g. "launched i-..." or "launch template lt-... configures".
    origin: str
    nitro: bool
    os_name: str
    supports_nitro: bool | None


class DrsInstanceTypeCheck(AwsCheck[InstanceType]):
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

    def expected(self, item: PlanItem) -> str:
        return "an instance type the source OS boots on"

    def observe(self, ctx: CheckContext) -> InstanceType:
        from pytest_drcheck.aws import ostype

        target = self.aws_target(ctx)
        aws = target.aws
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
        from pytest_drcheck.aws.ec2types import describe_instance_type

        described = aws.memo(("ec2-instance-type", instance_type),
                             lambda: describe_instance_type(aws.clients, instance_type))
        return InstanceType(instance_type, origin, ostype.is_nitro(instance_type, described),
                            os_name, supports if isinstance(supports, bool) else None)

    def judge(self, item: PlanItem, value: InstanceType) -> Observation:
        from pytest_drcheck.aws import ostype

        verdict = ostype.compatible(value.instance_type, value.nitro, value.os_name,
                                    value.supports_nitro)
        observed = (f"{value.instance_type} ({'nitro' if value.nitro else 'xen'}) for "
                    f"{ostype.short_name(value.os_name) or 'unknown OS'}")
        details = {"instance_type": value.instance_type, "nitro": value.nitro,
                   "os": value.os_name, "supports_nitro": value.supports_nitro,
                   "origin": value.origin, "decided_by": verdict.decided_by}
        expected = self.expected(item)
        if verdict.compatible:
            return Observation.passed(expected, f"{observed} (decided by "
                                                f"{verdict.decided_by})", **details)
        return Observation.failed(expected, observed, f"{value.origin}: {verdict.reason}",
                                  **details)

    @staticmethod
    def _configured(aws: AwsRun, server: Mapping[str, Any]) -> tuple[str, str]:
        source_id = str(server["sourceServerID"])
        config = aws.clients.call("drs", "get_launch_configuration", sourceServerID=source_id)
        sizing = config.get("targetInstanceTypeRightSizingMethod", "NONE")
        if sizing in ("BASIC", "IN_AWS"):
            recommended = server.get("sourceProperties", {}).get("recommendedInstanceType")
            if recommended:
                return str(recommended), f"right-sizing {sizing} picks {recommended}"
        template = config.get("ec2LaunchTemplateID")
        if not template:
            raise CouldNotObserve(f"the launch configuration of {_source_name(server)} has no "
                                  "EC2 launch template")
        for version in aws.clients.pages("ec2", "describe_launch_template_versions",
                                         "LaunchTemplateVersions",
                                         LaunchTemplateId=str(template), Versions=["$Default"]):
            instance_type = version.get("LaunchTemplateData", {}).get("InstanceType")
            if instance_type:
                return (str(instance_type),
                        f"launch template {template} configures {instance_type}")
        raise CouldNotObserve(f"launch template {template} of {_source_name(server)} names "
                              "no instance type")
