"""Source servers are only ever read: their target runs nothing outside a read-only allowlist.

A source host (``source:`` in the inventory) is a production server being protected, not a
recovery instance made for the drill. Every command a check sends it is compared here with a
short list of commands that only read (the clock sampler, the disk counters, a name lookup);
anything else is refused before it reaches the host, whichever check asked. Streams opened
*from* the source (reach/egress from its network position) change nothing on it and pass.

The usual per-host batch is not used for a source: it creates a temporary directory on the
host. Commands run one by one instead (a source has one or two of them).
"""

from __future__ import annotations

import re
import threading

from pytest_drcheck.net.clockoffset import SAMPLE_COMMAND, SAMPLER_COMMAND
from pytest_drcheck.targets.base import Stream, Target, TargetError
from pytest_drcheck.targets.names import lookup_command
from pytest_drcheck.targets.result import CommandResult

# What one disk-counter reading is: uptime (seconds since boot, for "since boot" averages)
# and every block device's counters.
DISKSTATS_READ = "cat /proc/uptime /proc/diskstats"
_MAX_WINDOW_SAMPLES = 600


def diskstats_sampler(samples: int, interval: float) -> str:
    """``samples`` disk-counter readings ``interval`` seconds apart, each ended by '---'."""
    if not 1 <= samples <= _MAX_WINDOW_SAMPLES:
        raise ValueError(f"samples must be 1 to {_MAX_WINDOW_SAMPLES}")
    # A decimal with at most one fractional digit: the allowlist pattern below is exact.
    pause = f"{max(0.1, round(interval, 1)):.1f}"
    return (f"n=0; while [ $n -lt {samples} ]; do {DISKSTATS_READ}; echo ---; n=$((n+1)); "
            f"[ $n -lt {samples} ] && sleep {pause}; done; true")


# `true`: after a stream from the source timed out, tcp_probe.require_responsive runs it to
# tell a black-holed path from a stalled connection (a reach from the source, failback-path).
RESPONSIVE_PROBE = "true"
_EXACT = frozenset({SAMPLER_COMMAND, SAMPLE_COMMAND, DISKSTATS_READ, RESPONSIVE_PROBE})
_PATTERNS = (
    re.compile(r"\An=0; while \[ \$n -lt [0-9]{1,3} \]; do "
               + re.escape(DISKSTATS_READ)
               + r"; echo ---; n=\$\(\(n\+1\)\); \[ \$n -lt [0-9]{1,3} \] && sleep "
                 r"[0-9]{1,4}\.[0-9]; done; true\Z"),
    # getent ahosts 'name' (resolve() before a stream opened from the source).
    re.compile(r"\A" + re.escape(lookup_command("getent", "X")).replace("X", "")
               + r"(?:[A-Za-z0-9_.:-]{1,253}|'[A-Za-z0-9_.:\[\]-]{1,255}')\Z"),
)


class ReadOnlyViolation(TargetError):
    """A check asked a source host to run a command that is not known to only read."""


def is_read_only(command: str) -> bool:
    return command in _EXACT or any(p.match(command) for p in _PATTERNS)


def assert_read_only(host: str, command: str) -> None:
    if not is_read_only(command):
        shown = command if len(command) <= 60 else command[:57] + "..."
        raise ReadOnlyViolation(
            f"{host} is a source server (read-only): refused to run `{shown}`, which is not "
            "on the read-only allowlist (pytest_drcheck/targets/readonly.py); source servers "
            "are only read by checks")


class ReadOnlyTarget(Target):
    """A source host's target: the real connection behind a read-only allowlist."""

    def __init__(self, inner: Target) -> None:
        super().__init__(inner.name)
        self._inner = inner
        self._lock = threading.Lock()

    @property
    def vantage(self) -> str:
        return f"{self._inner.vantage} [source, read-only]"

    def connect(self) -> None:
        self._inner.connect()

    def run(self, command: str, timeout: float) -> CommandResult:
        assert_read_only(self.name, command)
        return self._inner.run(command, timeout)

    def run_batch(self, commands: list[str], timeout: float) -> list[CommandResult]:
        results = []
        for command in commands:
            try:
                results.append(self.run(command, timeout))
            except ReadOnlyViolation as exc:
                results.append(CommandResult.not_run(command, str(exc)))
        return results

    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        return self._inner.open_stream(host, port, timeout)

    def open_process(self, command: str, timeout: float) -> Stream:
        assert_read_only(self.name, command)
        return self._inner.open_process(command, timeout)

    def close(self) -> None:
        self._inner.close()
