"""agent: an operations agent (endpoint protection, vulnerability scanner, monitoring) works on
the instance, one result per property:

- ``running``: the systemd unit is active (running) where systemd is the init system, otherwise
  a process of that name is in the instance's process table;
- ``version``: the agent's version (from a command or the package database) meets a constraint;
- ``manager``: the agent's manager endpoint accepts a TCP connection made by the instance;
- ``health``: the agent's own health probe answers (a command, or a request over TCP such as
  clamd's ``zPING`` -> ``PONG``); skipped, not stacked as a second failure, when not running.

The running-state helpers are shared with the backup check (its agent is an agent too).
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pytest_drcheck.checks.base import (
    Check,
    CheckContext,
    ExpansionError,
    Subject,
    site_service,
)
from pytest_drcheck.checks.reach import parse_endpoint, probe
from pytest_drcheck.durations import format_duration, parse_duration
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import Observation, PlanItem
from pytest_drcheck.targets.base import CommandResult, StreamError

DEFAULT_CONNECT_TIMEOUT = 3.0
# One line per process, "pid (name) state ppid pgrp session ...": /proc exists on every Linux,
# ps may not; the state tells a zombie (a dead agent its parent has not reaped) from a live
# process. The first line, marked "self", is the reader's own: the other commands of the same
# batch run in its session (one SSH exec) at the same moment, and one of them may well be the
# agent's binary (`clamd --version`); they are left out, or a stopped agent would pass.
PROCESS_TABLE = "printf 'self '; cat /proc/self/stat /proc/[0-9]*/stat 2>/dev/null; true"
DEAD_STATES = ("Z", "X", "x")
NO_SYSTEMD = "drcheck: no systemd"
# The kernel keeps 15 characters of a process name (TASK_COMM_LEN - 1).
COMM_LENGTH = 15
_VERSION = re.compile(r"\d+(?:\.\d+)+")
_CONSTRAINT = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*(\d+(?:\.\d+)*)(\.\*)?\s*$")
# Enough of an answer to find a short token like PONG; a probe is not a download.
MAX_PROBE_BYTES = 65536

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


# --- running: systemd unit or process table ------------------------------------------------


def systemd_command(unit: str) -> str:
    """Unit state where systemd is PID 1 (the /run/systemd/system test is sd_booted())."""
    return (f"if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then "
            f"systemctl show --no-pager --property=LoadState,ActiveState,SubState,MainPID "
            f"-- {shlex.quote(unit)}; else echo '{NO_SYSTEMD}'; fi")


def running_commands(service: str | None) -> tuple[str, ...]:
    return ((systemd_command(service),) if service else ()) + (PROCESS_TABLE,)


def _stat_line(line: str) -> tuple[int, str, list[str]] | None:
    """(pid, name, fields after the name) of a /proc/<pid>/stat line."""
    # The name sits between the first "(" and the LAST ")": it may hold both.
    head, sep, rest = line.rpartition(")")
    pid, paren, name = head.partition(" (")
    fields = rest.split()
    if not (sep and paren and pid.strip().isdigit() and len(fields) >= 4):
        return None
    return int(pid), name, fields


def parse_process_table(text: str) -> list[tuple[int, str]]:
    """(pid, name) of live processes from ``PROCESS_TABLE`` output: zombies, and the
    processes of the reader's own session (the batch it runs in), left out."""
    lines = text.splitlines()
    own_session = None
    if lines and lines[0].startswith("self "):
        own = _stat_line(lines.pop(0)[len("self "):])
        own_session = own[2][3] if own else None
    processes = []
    for line in lines:
        parsed = _stat_line(line)
        if parsed is None:
            continue
        pid, name, fields = parsed
        if fields[0] in DEAD_STATES or (own_session is not None and fields[3] == own_session):
            continue
        processes.append((pid, name))
    return processes


def parse_systemctl_show(text: str) -> dict[str, str] | None:
    """Properties of ``systemctl show``; None when the host does not run systemd."""
    if NO_SYSTEMD in text:
        return None
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


@dataclass(frozen=True)
class Running:
    running: bool
    observed: str
    # How it was observed: "systemd" or "process table".
    source: str
    pids: tuple[int, ...] = ()


def observe_running(service: str | None, process: str | None,
                    outputs: Sequence[CommandResult]) -> Running:
    """Interpret ``running_commands(service)`` outputs, in order."""
    table = outputs[-1]
    if service:
        unit = parse_systemctl_show(outputs[0].stdout)
        if unit is not None:
            return _unit_state(service, unit, outputs[0])
    if not process:
        return Running(False, f"no systemd on the instance to ask about {service}, and no "
                              "process name to look for (add process:)", "process table")
    if table.timed_out:
        return Running(False, "reading the process table timed out", "process table")
    processes = parse_process_table(table.stdout)
    if not processes:
        return Running(False, "the process table could not be read (/proc)", "process table")
    name = process[:COMM_LENGTH]
    pids = tuple(sorted(pid for pid, comm in processes if comm == name))
    where = "process table" + ("" if service is None else ", no systemd")
    if pids:
        shown = ", ".join(str(p) for p in pids[:5]) + (" ..." if len(pids) > 5 else "")
        return Running(True, f"{process} running (pid {shown}; {where})", "process table", pids)
    return Running(False, f"no {process} process ({where}, {len(processes)} processes)",
                   "process table")



def running_observation(expected: str, service: str | None, process: str | None,
                        outputs: Sequence[CommandResult]) -> Observation:
    """Pass/fail on whether the agent runs, with where that was read (systemd or /proc)."""
    state = observe_running(service, process, outputs)
    details: dict[str, Any] = {"source": state.source, "pids": list(state.pids)}
    if state.running:
        return Observation.passed(expected, state.observed, **details)
    return Observation.failed(expected, state.observed, **details)

def _unit_state(service: str, unit: Mapping[str, str], result: CommandResult) -> Running:
    if result.timed_out:
        return Running(False, f"systemctl show {service} timed out", "systemd")
    load = unit.get("LoadState", "")
    if load != "loaded":
        return Running(False, f"unit {service} {load or 'unknown'}"
                              f"{': ' + result.stderr.strip() if result.stderr.strip() else ''}",
                       "systemd")
    active, sub = unit.get("ActiveState", "?"), unit.get("SubState", "?")
    main_pid = unit.get("MainPID", "0")
    pids = (int(main_pid),) if main_pid.isdigit() and int(main_pid) > 0 else ()
    pid_text = f", pid {pids[0]}" if pids else ""
    observed = f"unit {service} {active} ({sub}{pid_text}; systemd)"
    return Running(active == "active" and sub == "running", observed, "systemd", pids)


# --- versions --------------------------------------------------------------------------------


def version_command(spec: Mapping[str, Any]) -> str:
    if "command" in spec:
        return str(spec["command"])
    package = shlex.quote(spec["package"])
    return ("if command -v dpkg-query >/dev/null 2>&1; then "
            f"dpkg-query -W -f='${{Version}}' {package}; "
            "elif command -v rpm >/dev/null 2>&1; then "
            f"rpm -q --qf '%{{VERSION}}-%{{RELEASE}}' {package}; "
            "else echo 'no package database (dpkg or rpm) on the instance' >&2; exit 127; fi")


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


# --- TCP health probes -----------------------------------------------------------------------


def describe_connect(outcome: str, seconds: float, connect_timeout: float) -> str:
    if outcome == "timed out":
        return f"timed out after {format_duration(connect_timeout)}"
    if outcome == "connected":
        return f"connected in {format_duration(seconds)}"
    return outcome


def ask_over_tcp(ctx: CheckContext, host: str, port: int, send: bytes, expect: bytes,
                 connect_timeout: float, deadline: float) -> tuple[bool, str]:
    """Open a stream from the host, send, read until ``expect`` shows up, EOF or the deadline.
    (answered as expected, what was observed)."""
    try:
        stream = ctx.target.open_stream(host, port, connect_timeout)
    except StreamError as exc:
        shown = (f"timed out after {format_duration(connect_timeout)}"
                 if exc.outcome == "timed out" else exc.outcome)
        return False, f"{host}:{port} {shown}"
    received = b""
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
                break
            received += chunk
    except OSError as exc:
        return False, f"{host}:{port} connection failed: {exc}"
    finally:
        stream.close()
    shown = _printable(received)
    if expect in received:
        return True, f"answered {shown}"
    if not received:
        return False, "connected, no answer"
    return False, f"answered {shown}"


def _printable(data: bytes) -> str:
    text = data.decode("utf-8", "replace").replace("\x00", "").strip()
    text = " ".join(text.split())
    return f"'{text[:80]}{'...' if len(text) > 80 else ''}'"


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


class AgentCheck(Check):
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
            subjects.append(Subject(f"{label}/health", {
                **common, "property": "health", "health": self._health(spec["health"])}))
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
        params = item.params
        prop = params["property"]
        if prop == "running":
            return running_commands(params["service"])
        if prop == "version":
            return (version_command(params["version"]),)
        if prop == "health":
            health = params["health"]
            extra = (health["command"],) if health["kind"] == "command" else ()
            return running_commands(params["service"]) + extra
        return ()

    def evaluate(self, ctx: CheckContext) -> Observation:
        prop = ctx.params["property"]
        if prop == "running":
            return self._running(ctx)
        if prop == "version":
            return self._version(ctx)
        if prop == "manager":
            return self._manager(ctx)
        return self._health_probe(ctx)

    def _running(self, ctx: CheckContext) -> Observation:
        params = ctx.params
        return running_observation(f"{params['agent']} running", params["service"],
                                   params["process"], ctx.outputs)

    @staticmethod
    def _version(ctx: CheckContext) -> Observation:
        spec = ctx.params["version"]
        result = ctx.outputs[0]
        expected = f"version {spec['constraint']}"
        source = f"`{spec['command']}`" if "command" in spec else f"package {spec['package']}"
        if result.timed_out:
            return Observation.failed(expected, "timed out", f"expected {expected}, {source} "
                                      "timed out")
        text = result.stdout + "\n" + result.stderr
        version = extract_version(text, spec.get("pattern"))
        if version is None or not _VERSION.search(version):
            said = (result.stderr or result.stdout).strip().splitlines()
            hint = f": {said[0][:120]}" if said else f" (exit status {result.exit_status})"
            return Observation.failed(expected, "no version",
                                      f"expected {expected}, {source} gave no version{hint}")
        observed = f"version {version} ({source})"
        if satisfies(version, spec["constraint"]):
            return Observation.passed(expected, observed, version=version)
        return Observation.failed(expected, observed, version=version)

    @staticmethod
    def _manager(ctx: CheckContext) -> Observation:
        params = ctx.params
        connect_timeout = min(params["connect_timeout"], ctx.timeout)
        endpoint = f"{params['host']}:{params['port']}"
        outcome, seconds = probe(ctx, params["host"], params["port"], connect_timeout)
        observed = describe_connect(outcome, seconds, connect_timeout)
        expected = f"manager {endpoint} open"
        if outcome == "connected":
            return Observation.passed(expected, f"manager {endpoint} {observed}",
                                      outcome=outcome)
        return Observation.failed(expected, observed, outcome=outcome)

    def _health_probe(self, ctx: CheckContext) -> Observation:
        params = ctx.params
        health = params["health"]
        count = len(running_commands(params["service"]))
        state = observe_running(params["service"], params["process"], ctx.outputs[:count])
        expected = (f"health probe answers {health['expect']}" if health["expect"]
                    else "health probe succeeds")
        if not state.running:
            return Observation.skipped(expected, f"not probed: {params['agent']} is not "
                                                 f"running ({state.observed})")
        if health["kind"] == "command":
            result = ctx.outputs[count]
            said = " ".join((result.stdout + " " + result.stderr).split())[:120]
            if result.timed_out:
                return Observation.failed(expected, "timed out",
                                          f"expected {expected}, `{health['command']}` "
                                          "timed out")
            if result.ok and (not health["expect"] or health["expect"] in result.stdout):
                return Observation.passed(expected, f"`{health['command']}` said {said!r}")
            return Observation.failed(expected, f"exit status {result.exit_status}: {said!r}",
                                      f"expected {expected}, `{health['command']}` exited "
                                      f"{result.exit_status}: {said!r}")
        connect_timeout = min(params["connect_timeout"], ctx.timeout)
        deadline = time.monotonic() + min(ctx.timeout, 2 * connect_timeout)
        ok, observed = ask_over_tcp(ctx, health["host"], health["port"],
                                    health["send"].encode("utf-8"),
                                    health["expect"].encode("utf-8"), connect_timeout, deadline)
        if ok:
            return Observation.passed(expected, observed)
        return Observation.failed(expected, observed)
