"""reach: a TCP connection made by the instance, with three observable outcomes.

connected, refused (something answered with a reset: a host is there, the port is closed or a
firewall rejects) and timed out (nothing answered: a black-holing firewall or a missing route).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from pytest_drcheck.checks.base import Check, CheckContext, ExpansionError, Subject
from pytest_drcheck.durations import format_duration, parse_duration
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import Observation
from pytest_drcheck.targets.base import StreamError

_ENDPOINT = re.compile(r"\A(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})\Z")
DEFAULT_CONNECT_TIMEOUT = 3.0


def parse_endpoint(text: str) -> tuple[str, int] | None:
    match = _ENDPOINT.match(text)
    if not match or not 0 < int(match.group("port")) < 65536:
        return None
    return match.group("host").strip("[]"), int(match.group("port"))


def connect_timeout_of(entry: Mapping[str, Any], default: float) -> float:
    """An entry's connect_timeout in seconds; a bad value is the entry's mistake."""
    try:
        return parse_duration(entry.get("connect_timeout", default))
    except ValueError as exc:
        raise ExpansionError(str(exc), ".connect_timeout") from None


def probe(ctx: CheckContext, host: str, port: int, connect_timeout: float) -> tuple[str, float]:
    """('connected'|'refused'|'timed out'|'unreachable'|'error: ...', seconds taken)."""
    started = time.monotonic()
    try:
        stream = ctx.target.open_stream(host, port, connect_timeout)
    except StreamError as exc:
        outcome = exc.outcome if exc.outcome != "error" else f"error: {exc}"
        return outcome, time.monotonic() - started
    elapsed = time.monotonic() - started
    stream.close()
    return "connected", elapsed


class ReachCheck(Check):
    type_name: ClassVar[str] = "reach"
    default_timeout: ClassVar[float] = 10.0
    light: ClassVar[bool] = True
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "required": ["target"],
        "properties": {
            "target": vocabulary.ENDPOINT,
            "expect": {"enum": ["open", "closed"]},
            "connect_timeout": vocabulary.TIMEOUT,
        },
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        endpoint = parse_endpoint(entry["target"])
        if endpoint is None:
            raise ExpansionError(f"'{entry['target']}' has no valid port (1-65535)", ".target")
        connect_timeout = connect_timeout_of(entry, DEFAULT_CONNECT_TIMEOUT)
        return [Subject(entry["target"], {
            "host": endpoint[0], "port": endpoint[1], "expect": entry.get("expect", "open"),
            "connect_timeout": connect_timeout})]

    def evaluate(self, ctx: CheckContext) -> Observation:
        params = ctx.params
        connect_timeout = min(params["connect_timeout"], ctx.timeout)
        outcome, seconds = probe(ctx, params["host"], params["port"], connect_timeout)
        if outcome == "timed out":
            observed = f"timed out after {format_duration(connect_timeout)}"
        elif outcome == "connected":
            observed = f"connected in {format_duration(seconds)}"
        else:
            observed = outcome
        expected = params["expect"]
        is_open = outcome == "connected"
        if (expected == "open") == is_open and not outcome.startswith("error"):
            return Observation.passed(expected, observed, outcome=outcome)
        return Observation.failed(expected, observed, f"expected {expected}, observed {observed}",
                                  outcome=outcome)
