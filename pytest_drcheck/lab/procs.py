"""Processes the lab started, known by PID *and* start time.

A PID alone is not an identity: after a reboot or a long time, the number can belong to
someone else's process. Every signal the lab sends first checks that the start time recorded
at launch still matches, so the lab can only ever stop processes it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcRef:
    pid: int
    # Field 22 of /proc/PID/stat, in clock ticks since boot.
    start: int


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name sits in parentheses and may contain spaces or ')': split after the last.
    return raw[raw.rfind(")") + 2:].split()


def ref(pid: int) -> ProcRef | None:
    fields = _stat_fields(pid)
    return None if fields is None else ProcRef(pid, int(fields[19]))


def is_running(proc: ProcRef) -> bool:
    """True while the very process we started exists and is not a zombie."""
    fields = _stat_fields(proc.pid)
    return fields is not None and fields[0] not in ("Z", "X") and int(fields[19]) == proc.start


def comm(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def children(ppid: int) -> list[int]:
    """PIDs whose parent is ``ppid`` (this kernel has no /proc/PID/task/TID/children)."""
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == ppid:
                found.append(int(entry.name))
    return found


def wait_child(ppid: int, name: str, timeout: float) -> ProcRef | None:
    """The child of ``ppid`` once it has exec'd ``name``; None if that does not happen in time."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in children(ppid):
            if comm(pid) == name[:15]:
                found = ref(pid)
                if found is not None:
                    return found
        if time.monotonic() >= deadline or ref(ppid) is None:
            return None
        time.sleep(0.005)


def cpu_ticks(pid: int, children: bool = False) -> int | None:
    """User and system CPU of ``pid`` in clock ticks, with its waited-for children's when
    ``children``; None when it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # Fields 14-17 of /proc/PID/stat: utime stime cutime cstime.
    return sum(int(v) for v in fields[11:15 if children else 13])


def rss_kib(proc: ProcRef) -> int:
    if not is_running(proc):
        return 0
    try:
        for line in (_PROC / str(proc.pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def send(proc: ProcRef, sig: signal.Signals) -> bool:
    """Signal ``proc`` if it is still the process we started; False if it is gone."""
    if not is_running(proc):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
        return True
    return False


def wait_gone(procs: list[ProcRef], timeout: float) -> list[ProcRef]:
    """Wait until none of ``procs`` runs; return those still running at the deadline."""
    deadline = time.monotonic() + timeout
    left = [p for p in procs if is_running(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        left = [p for p in left if is_running(p)]
    return left


def stop(procs: list[ProcRef], grace: float = 3.0) -> list[ProcRef]:
    """SIGTERM, wait ``grace`` seconds, then SIGKILL; return what survived even that."""
    for proc in procs:
        send(proc, signal.SIGTERM)
    left = wait_gone(procs, grace)
    for proc in left:
        send(proc, signal.SIGKILL)
    return wait_gone(left, 2.0)
