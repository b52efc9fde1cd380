"""TCP connections made by a host: the one probe every stream-based family shares (reach,
egress, agent managers, backup, logging).

A connection made by the instance has four observable outcomes: connected, refused (something
answered with a reset: a host is there, the port is closed or a firewall rejects), timed out
(nothing answered: a black-holing firewall) and unreachable (no route: nothing was sent).

Two kinds of use, told apart because a failure means different things:

- ``connect``: the connection IS the property (an agent's manager, the backup server, the
  server's connection back to the agent). Refused, timed out and unreachable are what was
  observed; anything else (sshd refusing the channel, a name that cannot be resolved) means
  the connection was never attempted: CouldNotObserve with that cause. A timeout is only the
  path's when the host's own connection still answers (``require_responsive``): while sshd
  is stuck (resolving a name for another channel, say) every channel open times out, and
  that says nothing about the path. Nor is it the path's when sshd confirms the connection
  after our timeout, by the time it has run `true` (an overloaded instance, or a burstable
  one out of CPU credits, answers late): the path let it through, so "timed out" would be a
  wrong value, and a pass where the policy expects the path to be silent.
- ``open_means``: the connection is only the way to a property (a health probe's request, a
  Director hello): any failure to open it is CouldNotObserve naming the cause.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_drcheck.checks.base import ExpansionError
from pytest_drcheck.durations import format_duration, parse_duration
from pytest_drcheck.model import CouldNotObserve
from pytest_drcheck.targets.base import Stream, StreamError, Target

ENDPOINT = re.compile(r"\A(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})\Z")

# The network outcomes of a connection attempt that was made; "error" is not one of them.
OBSERVED_OUTCOMES = ("refused", "timed out", "unreachable")


def parse_endpoint(text: str) -> tuple[str, int] | None:
    """(host, port) of ``host:port`` / ``[v6]:port``, or None when it is not one."""
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
class Connection:
    """What one connection attempt showed."""

    outcome: str  # "connected" or one of OBSERVED_OUTCOMES
    seconds: float
    connect_timeout: float

    @property
    def connected(self) -> bool:
        return self.outcome == "connected"

    @property
    def observed(self) -> str:
        if self.outcome == "timed out":
            return f"timed out after {format_duration(self.connect_timeout)}"
        if self.outcome == "connected":
            return f"connected in {format_duration(self.seconds)}"
        return self.outcome


def connect(target: Target, host: str, port: int, connect_timeout: float) -> Connection:
    """Open and close a connection made by ``target``'s host, where the attempt is the
    property; CouldNotObserve when it could not even be attempted."""
    started = time.monotonic()
    try:
        target.open_stream(host, port, connect_timeout).close()
    except StreamError as exc:
        # A failed name lookup on the instance is reported as such, whatever its base class.
        if isinstance(exc, CouldNotObserve):
            raise
        if exc.outcome not in OBSERVED_OUTCOMES:
            raise CouldNotObserve(str(exc)) from None
        seconds = time.monotonic() - started
        if exc.outcome == "timed out":
            require_responsive(target, str(exc), connect_timeout)
            if exc.opened_late is not None and exc.opened_late():
                raise CouldNotObserve(
                    f"{exc}, then opened: {target.name}'s sshd confirmed the connection late, "
                    "so the path is not silent; whether the path or the instance was slow "
                    "cannot be told (a larger connect_timeout can)") from None
        return Connection(exc.outcome, seconds, connect_timeout)
    return Connection("connected", time.monotonic() - started, connect_timeout)


def open_means(target: Target, host: str, port: int, connect_timeout: float,
               purpose: str) -> Stream:
    """A stream that only carries the observation (``purpose``, e.g. "the health probe");
    CouldNotObserve naming why when it cannot be opened."""
    try:
        return target.open_stream(host, port, connect_timeout)
    except StreamError as exc:
        raise CouldNotObserve(f"cannot open {purpose}'s connection: {exc}") from None


def require_responsive(target: Target, what: str, seconds: float) -> None:
    """After a stream from ``target`` timed out (``what``): CouldNotObserve unless the host's
    own connection still runs a trivial command within ``seconds``."""
    result = target.run("true", seconds)
    if result.ok:
        return
    said = " ".join(result.stderr.split())[:160]
    why = said or ("timed out" if result.timed_out else f"exit {result.exit_status}")
    raise CouldNotObserve(f"{what}; {target.name}'s own connection did not run `true` in "
                          f"{format_duration(seconds)} either ({why}): the connection "
                          "stalled, not the network path")
