"""Whether an agent runs on the instance: one observation shared by the agent and backup checks.

Where systemd is the init system the unit's state decides; elsewhere a process of that name
must be in the instance's process table. Three batched commands, read in that order:

1. ``SYSTEMD_BOOTED``: is systemd PID 1 (sd_booted(): /run/systemd/system exists)?
2. ``systemctl show`` of the unit (only read where systemd is booted);
3. ``PROCESS_TABLE``: /proc, read where systemd cannot answer.

Every output is read through ``ctx.output``: a command that timed out or is missing is
"could not observe" naming it, never "not running".
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_drcheck.checks.base import CheckContext
from pytest_drcheck.model import CouldNotObserve, Observation

SYSTEMD_BOOTED = ("test -d /run/systemd/system && echo 'systemd booted' "
                  "|| echo 'drcheck: no systemd'")
BOOTED = "systemd booted"
# One line per process, "pid (name) state ppid pgrp session ...": /proc exists on every Linux,
# ps may not; the state tells a zombie (a dead agent its parent has not reaped) from a live
# process. The first line, marked "self", is the reader's own: the other commands of the same
# batch run in its session (one SSH exec) at the same moment, and one of them may well be the
# agent's binary (`clamd --version`); they are left out, or a stopped agent would pass.
PROCESS_TABLE = "printf 'self '; cat /proc/self/stat /proc/[0-9]*/stat 2>/dev/null; true"
DEAD_STATES = ("Z", "X", "x")
# The kernel keeps 15 characters of a process name (TASK_COMM_LEN - 1).
COMM_LENGTH = 15


def systemctl_command(unit: str) -> str:
    properties = "--property=LoadState,ActiveState,SubState,MainPID --no-pager"
    if unit.startswith("-"):  # not an option
        return f"systemctl show {properties} -- {shlex.quote(unit)}"
    # The unit first: a message about this command shows its beginning.
    return f"systemctl show {shlex.quote(unit)} {properties}"


def running_commands(service: str | None, platform: str = "linux",
                     process: str | None = None) -> tuple[str, ...]:
    """The commands ``observe_running`` reads, in this order."""
    if platform == "windows":
        from pytest_drcheck.checks.windows import running as windows

        return windows.running_commands(service, process)
    if service is None:
        return (PROCESS_TABLE,)
    return (SYSTEMD_BOOTED, systemctl_command(service), PROCESS_TABLE)


@dataclass(frozen=True)
class Running:
    running: bool
    observed: str
    # How it was observed: "systemd" or "process table".
    source: str
    pids: tuple[int, ...] = ()


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


def parse_systemctl_show(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def unit_state(service: str, unit: Mapping[str, str]) -> Running:
    """The unit's state from ``systemctl show`` properties."""
    load = unit.get("LoadState", "")
    if load != "loaded":
        return Running(False, f"unit {service} {load or 'unknown'}", "systemd")
    active, sub = unit.get("ActiveState", "?"), unit.get("SubState", "?")
    main_pid = unit.get("MainPID", "0")
    pids = (int(main_pid),) if main_pid.isdigit() and int(main_pid) > 0 else ()
    pid_text = f", pid {pids[0]}" if pids else ""
    observed = f"unit {service} {active} ({sub}{pid_text}; systemd)"
    return Running(active == "active" and sub == "running", observed, "systemd", pids)


def process_state(host: str, process: str, table: str, without_systemd: bool) -> Running:
    """Whether ``process`` is in the process table; CouldNotObserve if /proc was unreadable."""
    processes = parse_process_table(table)
    if not processes:
        raise CouldNotObserve(f"the process table of {host} could not be read (/proc)")
    name = process[:COMM_LENGTH]
    pids = tuple(sorted(pid for pid, comm in processes if comm == name))
    where = "process table" + (", no systemd" if without_systemd else "")
    if pids:
        shown = ", ".join(str(p) for p in pids[:5]) + (" ..." if len(pids) > 5 else "")
        return Running(True, f"{process} running (pid {shown}; {where})", "process table", pids)
    return Running(False, f"no {process} process ({where}, {len(processes)} processes)",
                   "process table")


def observe_running(ctx: CheckContext, service: str | None, process: str | None,
                    first: int = 0) -> Running:
    """Read ``running_commands(service)``, whose outputs start at ``ctx.output(first)``.
    Only the outputs that decide are read: a timed-out process table does not matter where
    systemd answered."""
    host = ctx.item.host
    if ctx.item.platform == "windows":
        from pytest_drcheck.checks.windows import running as windows

        return windows.observe_running([ctx.output(first).stdout], host, service, process)
    if service is not None:
        booted = ctx.output(first).stdout.strip() == BOOTED
        if booted:
            return unit_state(service, parse_systemctl_show(ctx.output(first + 1).stdout))
        if process is None:
            raise CouldNotObserve(f"{host} does not run systemd to ask about {service}, and "
                                  "no process name is given to look for (add process:)")
        return process_state(host, process, ctx.output(first + 2).stdout, True)
    if process is None:  # expand() requires service or process
        raise CouldNotObserve("neither a service nor a process to look for")
    return process_state(host, process, ctx.output(first).stdout, False)


def judge_running(expected: str, state: Running) -> Observation:
    """Passed or failed on whether the agent runs, with where that was read."""
    details: dict[str, Any] = {"source": state.source, "pids": list(state.pids)}
    if state.running:
        return Observation.passed(expected, state.observed, **details)
    return Observation.failed(expected, state.observed, **details)

