"""The TCP probe that stream-based families share (reach, egress, agent managers...).

A connection made by the instance has four observable outcomes: connected, refused (something
answered with a reset: a host is there, the port is closed or a firewall rejects), timed out
(nothing answered: a black-holing firewall) and unreachable (no route: nothing was sent).
Anything else (the instance's sshd refuses to forward, a name that does not resolve on the
instance) is not an outcome of the connection: it could not be observed, and is raised as
``CouldNotObserve`` with the cause.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pytest_drcheck.checks.base import CheckContext, ExpansionError
from pytest_drcheck.durations import format_duration, parse_duration
from pytest_drcheck.model import CouldNotObserve
from pytest_drcheck.targets.base import StreamError, Target

ENDPOINT = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")
TcpOutcome = Literal["connected", "refused", "timed out", "unreachable"]
_OBSERVED_OUTCOMES: tuple[TcpOutcome, ...] = ("refused", "timed out", "unreachable")


def parse_endpoint(text: str) -> tuple[str, int] | None:
    match = ENDPOINT.match(text)
    if not match or not 0 < int(match.group("port")) < 65536:
        return None
    return match.group("host").strip("[]"), int(match.group("port"))


def connect_timeout_of(entry: Mapping[str, Any], default: float) -> float:
    """An entry's connect_timeout in seconds; a bad value is the entry's mistake."""
    try:
        return parse_duration(entry.get("connect_timeout", default))
    except ValueError as exc:
        raise ExpansionError(str(exc), ".connect_timeout") from None


@dataclass(frozen=True)
class TcpProbe:
    outcome: TcpOutcome
    seconds: float
    # The connect timeout the probe ran under (for "timed out after ...").
    timeout: float

    @property
    def observed(self) -> str:
        if self.outcome == "connected":
            return f"connected in {format_duration(self.seconds)}"
        if self.outcome == "timed out":
            return f"timed out after {format_duration(self.timeout)}"
        return self.outcome


def probe_tcp(target: Target, host: str, port: int, timeout: float) -> TcpProbe:
    """Open and close a TCP connection from the target; raise CouldNotObserve when the
    attempt says nothing about the connection itself."""
    started = time.monotonic()
    try:
        stream = target.open_stream(host, port, timeout)
    except StreamError as exc:
        # A failed name lookup on the instance is reported as such, whatever its base class.
        if isinstance(exc, CouldNotObserve):
            raise
        elapsed = time.monotonic() - started
        for outcome in _OBSERVED_OUTCOMES:
            if exc.outcome == outcome:
                return TcpProbe(outcome, elapsed, timeout)
        raise CouldNotObserve(str(exc)) from None
    elapsed = time.monotonic() - started
    stream.close()
    return TcpProbe("connected", elapsed, timeout)


def probe(ctx: CheckContext, host: str, port: int, connect_timeout: float
          ) -> tuple[str, float]:
    """(outcome, seconds) of ``probe_tcp`` from the check's host (for families that predate
    TcpProbe)."""
    result = probe_tcp(ctx.target, host, port, connect_timeout)
    return result.outcome, result.seconds
