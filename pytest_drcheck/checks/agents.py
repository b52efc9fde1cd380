"""agent: an operations agent (endpoint protection, vulnerability scanner, monitoring) works on
the instance, one result per property:

- ``running``: the systemd unit is active (running) where systemd is the init system, otherwise
  a process of that name is in the instance's process table (``checks.running``, shared with
  the backup check);
- ``version``: the agent's version (from a command or the package database) meets a constraint;
- ``manager``: the agent's manager endpoint accepts a TCP connection made by the instance;
- ``health``: the agent's own health probe answers (a command, or a request over TCP such as
  clamd's ``zPING`` -> ``PONG``). It requires ``running``: when the agent does not run, the
  probe is skipped naming that, not stacked as a second failure.

Could not observe (an error naming the cause, never a pass or a wrong value): a command that
timed out or is missing (``systemctl``, the version command, the health command), an
unreadable process table, a health probe whose connection could not be opened, a manager
connection that could not even be attempted (sshd refused the channel, a name that does not
resolve on the instance). Refused, timed out and unreachable are what the manager subject
observes: that connection is the property.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

from pytest_drcheck.checks.base import (
    Check,
    CheckContext,
    ExpansionError,
    Subject,
    site_service,
)
from pytest_drcheck.checks.running import (
    Running,
    judge_running,
    observe_running,
    running_commands,
)
from pytest_drcheck.checks.tcp_probe import Connection, connect, open_means, parse_endpoint
from pytest_drcheck.durations import parse_duration
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import CouldNotObserve, Observation, PlanItem
from pytest_drcheck.targets.base import Stream

DEFAULT_CONNECT_TIMEOUT = 3.0
_VERSION = re.compile(r"\d+(?:\.\d+)+")
_CONSTRAINT = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*(\d+(?:\.\d+)*)(\.\*)?\s*$")
# Enough of an answer to find a short token like PONG; a probe is not a download.
MAX_PROBE_BYTES = 65536
# Exit statuses of a health command that are its answer (0 healthy, others not); 124 (timed
# out), 125 (lost from the batch), 126 (not executable) and 127 (missing) say it never answered.
HEALTH_ANSWERS = frozenset(range(256)) - {124, 125, 126, 127}
# dpkg-query -W and rpm -q exit 1 for a package that is not installed: an answer, not a failure.
PACKAGE_NOT_INSTALLED = 1
# What the package query exits with on an instance that has neither dpkg nor rpm.
NO_PACKAGE_DATABASE = 3

DURATION: dict[str, Any] = vocabulary.TIMEOUT
ENDPOINT: dict[str, Any] = vocabulary.ENDPOINT
VERSION_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["constraint"],
    "properties": {
        # Bounded: the constraint pattern backtracks on long runs of blanks.
        "constraint": {"type": "string", "minLength": 1, "maxLength": 200,
                       "x-expect": "comparisons joined by commas, e.g. '>=1.0, <2' or "
                                   "'==1.4.*'"},
        "command": {"type": "string", "minLength": 1},
        "package": {"type": "string", "minLength": 1},
        "pattern": {"type": "string", "minLength": 1,
                    "x-expect": "a regular expression; its first group (or whole match) is "
                                "the version"},
    },
}
HEALTH_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "command": {"type": "string", "minLength": 1},
        "tcp": ENDPOINT,
        "send": {"type": "string"},
        "expect": {"type": "string", "minLength": 1},
    },
}
AGENT_PROPERTIES: dict[str, Any] = {
    "description": {"type": "string"},
    "service": {"type": "string", "minLength": 1},
    "process": {"type": "string", "minLength": 1},
    "version": VERSION_SCHEMA,
    "manager": ENDPOINT,
    "health": HEALTH_SCHEMA,
    "connect_timeout": DURATION,
}


# --- versions --------------------------------------------------------------------------------


def version_command(spec: Mapping[str, Any], platform: str = "linux") -> str:
    if "command" in spec:
        return str(spec["command"])
    if platform == "windows":  # the installed product's DisplayVersion
        from pytest_drcheck.checks.windows.running import package_version_command

        return package_version_command(spec["package"])
    package = shlex.quote(spec["package"])
    return ("if command -v dpkg-query >/dev/null 2>&1; then "
            f"dpkg-query -W -f='${{Version}}' {package}; "
            "elif command -v rpm >/dev/null 2>&1; then "
            f"rpm -q --qf '%{{VERSION}}-%{{RELEASE}}' {package}; "
            f"else exit {NO_PACKAGE_DATABASE}; fi")


def extract_version(text: str, pattern: str | None) -> str | None:
    if pattern:
        match = re.search(pattern, text)
        if not match:
            return None
        return match.group(1) if match.groups() else match.group(0)
    match = _VERSION.search(text)
    return match.group(0) if match else None


def _numbers(version: str) -> tuple[int, ...]:
    match = _VERSION.search(version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def parse_constraint(text: str) -> list[tuple[str, tuple[int, ...], bool]]:
    """[(operator, numbers, prefix match)]; ValueError naming the clause that is wrong."""
    clauses = []
    for clause in text.split(","):
        match = _CONSTRAINT.match(clause)
        if not match:
            raise ValueError(f"'{clause.strip()}' is not a version comparison; write e.g. "
                             "'>=1.0', '<2', '==1.4.*'")
        operator = match.group(1) or "=="
        prefix = bool(match.group(3))
        if prefix and operator not in ("==", "!="):
            raise ValueError(f"'{clause.strip()}': a '.*' wildcard only works with == or !=")
        clauses.append((operator, tuple(int(p) for p in match.group(2).split(".")), prefix))
    return clauses


def satisfies(version: str, constraint: str) -> bool:
    have = _numbers(version)
    for operator, want, prefix in parse_constraint(constraint):
        if prefix:
            equal = have[:len(want)] == want
            ok = equal if operator == "==" else not equal
        else:
            width = max(len(have), len(want))
            a = have + (0,) * (width - len(have))
            b = want + (0,) * (width - len(want))
            ok = {"==": a == b, "!=": a != b, ">=": a >= b, "<=": a <= b, ">": a > b,
                  "<": a < b}[operator]
        if not ok:
            return False
    return True


# --- typed parameters and observed values ---------------------------------------------------


@dataclass(frozen=True)
class VersionSpec:
    constraint: str
    command: str | None
    package: str | None
    pattern: str | None

    @property
    def source(self) -> str:
        return f"`{self.command}`" if self.command is not None else f"package {self.package}"


@dataclass(frozen=True)
class HealthProbe:
    kind: str  # "command" or "tcp"
    expect: str | None
    command: str = ""
    host: str = ""
    port: int = 0
    send: str = ""


@dataclass(frozen=True)
class AgentParams:
    """One agent test's parameters (``expand`` output), typed."""

    prop: str
    agent: str
    service: str | None
    process: str | None
    connect_timeout: float
    version: VersionSpec | None = None
    manager: tuple[str, int] | None = None
    health: HealthProbe | None = None

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> AgentParams:
        version = params.get("version")
        health = params.get("health")
        return cls(
            params["property"], params["agent"], params["service"], params["process"],
            float(params["connect_timeout"]),
            VersionSpec(version["constraint"], version.get("command"), version.get("package"),
                        version.get("pattern")) if version is not None else None,
            (params["host"], int(params["port"])) if "host" in params else None,
            HealthProbe(health["kind"], health.get("expect"), health.get("command", ""),
                        health.get("host", ""), int(health.get("port", 0)),
                        health.get("send", "")) if health is not None else None)


@dataclass(frozen=True)
class VersionSeen:
    """The agent's version as the instance reports it; None: the package is not installed."""

    version: str | None
    source: str


@dataclass(frozen=True)
class HealthAnswer:
    healthy: bool
    observed: str
    # The failure line's part after "expected ..., " (when not healthy).
    why: str = ""


AgentValue: TypeAlias = Running | VersionSeen | Connection | HealthAnswer


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:120]
    return ""


def _printable(data: bytes) -> str:
    text = data.decode("utf-8", "replace").replace("\x00", "").strip()
    text = " ".join(text.split())
    return f"'{text[:80]}{'...' if len(text) > 80 else ''}'"


def converse(stream: Stream, send: bytes, expect: bytes, deadline: float) -> HealthAnswer:
    """Send the probe's request and read until ``expect`` shows up, EOF or the deadline: what
    the agent answered on a connection that was opened (closing it is the caller's)."""
    received = b""
    ended = "no answer"
    try:
        if send:
            stream.sendall(send)
        while expect not in received and len(received) < MAX_PROBE_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            stream.settimeout(left)
            try:
                chunk = stream.recv(4096)
            except TimeoutError:
                break
            if not chunk:
                ended = "closed the connection"
                break
            received += chunk
    except (ConnectionResetError, BrokenPipeError):
        # The agent hung up first: a reset is how a close looks when a request was in flight.
        ended = "closed the connection"
    except OSError as exc:
        return HealthAnswer(False, f"connection failed after connecting: {exc}")
    shown = _printable(received)
    if expect in received:
        return HealthAnswer(True, f"answered {shown}")
    if not received:
        what = ("connected, then the agent closed the connection without answering"
                if ended == "closed the connection" else "connected, no answer")
        return HealthAnswer(False, what)
    return HealthAnswer(False, f"answered {shown}")


# --- the check -------------------------------------------------------------------------------


def agent_spec(entry: Mapping[str, Any], site: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(label, merged definition) of an entry: a site.agents name with overrides, or inline."""
    overrides = {k: v for k, v in entry.items() if k in AGENT_PROPERTIES}
    if "agent" in entry:
        known: Mapping[str, Any] = site.get("agents", {})
        name = entry["agent"]
        definition = site_service(known, name, "agent", "site.agents", ".agent",
                                  "define it there or describe it here with 'name'")
        return entry.get("name", name), {**definition, **overrides}
    if "name" not in entry:
        raise ExpansionError("give 'agent' (a name in site.agents) or 'name' with the agent's "
                             "definition (process, service, manager...)")
    return entry["name"], overrides


class AgentCheck(Check[AgentValue]):
    type_name: ClassVar[str] = "agent"
    site_key: ClassVar[str | None] = "agents"
    default_timeout: ClassVar[float] = 10.0
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "agent": {"type": "string", "minLength": 1,
                      "x-expect": "the name of an agent in site.agents"},
            "name": vocabulary.NAME,
            **AGENT_PROPERTIES,
        },
    }
    site_schema: ClassVar[Mapping[str, Any] | None] = {
        "type": "object", "x-kind": "agent",
        "propertyNames": vocabulary.NAME,
        "additionalProperties": {"type": "object", "additionalProperties": False,
                                 "properties": AGENT_PROPERTIES},
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        label, spec = agent_spec(entry, site)
        if "service" not in spec and "process" not in spec:
            raise ExpansionError(f"agent '{label}' needs 'process' (its process name) and/or "
                                 "'service' (its systemd unit) to tell whether it runs")
        try:
            connect_timeout = parse_duration(spec.get("connect_timeout",
                                                      DEFAULT_CONNECT_TIMEOUT))
        except ValueError as exc:
            raise ExpansionError(str(exc), ".connect_timeout") from None
        common = {"agent": label, "service": spec.get("service"),
                  "process": spec.get("process"), "connect_timeout": connect_timeout}
        subjects = [Subject(f"{label}/running", {**common, "property": "running"})]
        if "version" in spec:
            version = spec["version"]
            if ("command" in version) == ("package" in version):
                raise ExpansionError("version needs exactly one of 'command' (prints the "
                                     "version) or 'package' (asks dpkg/rpm)", ".version")
            try:
                parse_constraint(version["constraint"])
            except ValueError as exc:
                raise ExpansionError(str(exc), ".version") from None
            if "pattern" in version:
                try:
                    re.compile(version["pattern"])
                except re.error as exc:
                    raise ExpansionError(f"version pattern is not a regular expression: "
                                         f"{exc}", ".version") from None
            subjects.append(Subject(f"{label}/version",
                                    {**common, "property": "version", "version": version}))
        if "manager" in spec:
            endpoint = parse_endpoint(spec["manager"])
            if endpoint is None:
                raise ExpansionError(f"manager '{spec['manager']}' has no valid port (1-65535)",
                                     ".manager")
            subjects.append(Subject(f"{label}/manager", {
                **common, "property": "manager", "host": endpoint[0], "port": endpoint[1]}))
        if "health" in spec:
            # A probe of an agent that does not run would only fail again for the same cause.
            subjects.append(Subject(f"{label}/health", {
                **common, "property": "health", "health": self._health(spec["health"])},
                requires=(f"agent[{label}/running]",)))
        return subjects

    @staticmethod
    def _health(health: Mapping[str, Any]) -> dict[str, Any]:
        if ("command" in health) == ("tcp" in health):
            raise ExpansionError("health needs exactly one of 'command' (exit status 0 is "
                                 "healthy) or 'tcp' (host:port to send a request to)",
                                 ".health")
        if "tcp" in health:
            endpoint = parse_endpoint(health["tcp"])
            if endpoint is None:
                raise ExpansionError(f"health tcp '{health['tcp']}' has no valid port",
                                     ".health")
            if "expect" not in health:
                raise ExpansionError("a tcp health probe needs 'expect' (text the healthy "
                                     "agent answers, e.g. PONG)", ".health")
            return {"kind": "tcp", "host": endpoint[0], "port": endpoint[1],
                    "send": health.get("send", ""), "expect": health["expect"]}
        if "send" in health:
            raise ExpansionError("'send' only goes with a tcp health probe", ".health")
        return {"kind": "command", "command": health["command"],
                "expect": health.get("expect")}


    def commands(self, item: PlanItem) -> Sequence[str]:
        params = AgentParams.of(item.params)
        if params.prop == "running":
            return running_commands(params.service, item.platform, params.process)
        if params.version is not None:
            return (version_command(item.params["version"], item.platform),)
        if params.health is not None and params.health.kind == "command":
            return (params.health.command,)
        return ()

    def expected(self, item: PlanItem) -> str:
        params = AgentParams.of(item.params)
        if params.version is not None:
            return f"version {params.version.constraint}"
        if params.manager is not None:
            return f"manager {params.manager[0]}:{params.manager[1]} open"
        if params.health is not None:
            return (f"health probe answers {params.health.expect}" if params.health.expect
                    else "health probe succeeds")
        return f"{params.agent} running"

    def observe(self, ctx: CheckContext) -> AgentValue:
        params = AgentParams.of(ctx.params)
        if params.version is not None:
            return self._observe_version(ctx, params.version)
        if params.manager is not None:
            host, port = params.manager
            return connect(ctx.target, host, port, min(params.connect_timeout, ctx.timeout))
        if params.health is not None:
            return self._observe_health(ctx, params, params.health)
        return observe_running(ctx, params.service, params.process)

    def judge(self, item: PlanItem, value: AgentValue) -> Observation:
        params = AgentParams.of(item.params)
        expected = self.expected(item)
        if isinstance(value, Running):
            return judge_running(expected, value)
        if isinstance(value, VersionSeen) and params.version is not None:
            return self._judge_version(params.version, expected, value)
        if isinstance(value, Connection) and params.manager is not None:
            endpoint = f"{params.manager[0]}:{params.manager[1]}"
            if value.connected:
                return Observation.passed(expected, f"manager {endpoint} {value.observed}",
                                          outcome=value.outcome)
            return Observation.failed(expected, value.observed, outcome=value.outcome)
        if not isinstance(value, HealthAnswer):
            raise TypeError(f"{type(value).__name__} is not a value of {item.subject}")
        if value.healthy:
            return Observation.passed(expected, value.observed)
        return Observation.failed(expected, value.observed,
                                  f"expected {expected}, {value.why}" if value.why else None)

    @staticmethod
    def _observe_version(ctx: CheckContext, spec: VersionSpec) -> VersionSeen:
        host = ctx.item.host
        if spec.package is not None:
            result = ctx.output(0, accept=(0, PACKAGE_NOT_INSTALLED, NO_PACKAGE_DATABASE))
            if result.exit_status == NO_PACKAGE_DATABASE:
                raise CouldNotObserve(f"{host} has no package database (dpkg or rpm) to ask "
                                      f"about {spec.package}")
            if result.exit_status == PACKAGE_NOT_INSTALLED or not result.stdout.strip():
                return VersionSeen(None, spec.source)
        else:
            result = ctx.output(0)
        text = result.stdout + "\n" + result.stderr
        version = extract_version(text, spec.pattern)
        if version is None or not _VERSION.search(version):
            said = _first_line(result.stdout) or _first_line(result.stderr) or "no output"
            raise CouldNotObserve(f"{spec.source} gave no version on {host}: {said}")
        return VersionSeen(version, spec.source)

    @staticmethod
    def _judge_version(spec: VersionSpec, expected: str, seen: VersionSeen) -> Observation:
        if seen.version is None:
            return Observation.failed(expected, "not installed",
                                      f"expected {expected}, {seen.source} is not installed")
        observed = f"version {seen.version} ({seen.source})"
        if satisfies(seen.version, spec.constraint):
            return Observation.passed(expected, observed, version=seen.version)
        return Observation.failed(expected, observed, version=seen.version)

    @staticmethod
    def _observe_health(ctx: CheckContext, params: AgentParams,
                        probe: HealthProbe) -> HealthAnswer:
        if probe.kind == "command":
            result = ctx.output(0, accept=HEALTH_ANSWERS)
            said = " ".join((result.stdout + " " + result.stderr).split())[:120]
            if result.exit_status == 0 and (not probe.expect or probe.expect in result.stdout):
                return HealthAnswer(True, f"`{probe.command}` said {said!r}")
            return HealthAnswer(False, f"exit status {result.exit_status}: {said!r}",
                                f"`{probe.command}` exited {result.exit_status}: {said!r}")
        connect_timeout = min(params.connect_timeout, ctx.timeout)
        stream = open_means(ctx.target, probe.host, probe.port, connect_timeout,
                            "the health probe")
        try:
            # The answer may take a little longer than the connection did, not forever.
            deadline = time.monotonic() + min(ctx.timeout, 2 * connect_timeout)
            return converse(stream, probe.send.encode("utf-8"),
                            (probe.expect or "").encode("utf-8"), deadline)
        finally:
            stream.close()
