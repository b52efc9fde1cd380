"""Plain data shared by every layer: what to check (plan) and what was observed (results).

Nothing here imports pytest or does I/O, so the inventory, the engine, the evidence writers and
the pytest glue can all depend on it without depending on each other.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any


class Outcome(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    ERROR = "error"


class CouldNotObserve(Exception):
    """The property could not be observed; the message is the real cause, in one line.

    Raised anywhere below a check (a command that timed out or is missing, a resolver that
    failed, a name that does not resolve on the instance, a host that is unusable). The engine
    turns it into an ERROR outcome that names the cause: it is never a pass and never a wrong
    value, whatever the check family does with the values it did observe.
    """


@dataclass(frozen=True)
class Location:
    """Where something was written: file, line, and the dotted place inside the document."""

    file: str
    line: int | None
    place: str

    def __str__(self) -> str:
        line = f":{self.line}" if self.line is not None else ""
        return f"{self.file}{line}: {self.place}"


_SCALARS = (str, int, float, type(None))
# Exactly these types are their own frozen copy: kept without a call (most values are).
_PLAIN_SCALARS = frozenset({str, int, float, bool, type(None)})


def freeze(value: Any) -> Any:
    """Deep read-only copy, so a plan item cannot be changed by the check that runs it."""
    # Plain dicts, lists and scalars first (the loader's values): spared the Mapping check,
    # an ABC's slow isinstance, which every value of a large drill used to go through.
    kind = type(value)
    if kind is dict:
        return MappingProxyType({k: v if type(v) in _PLAIN_SCALARS else freeze(v)
                                 for k, v in value.items()})
    if kind is list or kind is tuple:
        return tuple([v if type(v) in _PLAIN_SCALARS else freeze(v) for v in value])
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain JSON-able copy of a frozen value (for evidence and messages)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class PlanItem:
    """One test: a check of one type, about one subject, observed from one host."""

    host: str
    check: str
    subject: str
    params: Mapping[str, Any]
    source: Location
    timeout: float
    # Other tests of the same host (``check[subject]``) that must pass before this one is
    # observed; when one does not, this one is skipped with that reason (see checks.base).
    requires: tuple[str, ...] = ()
    # What the host runs (linux, windows): the shell a family writes its commands for.
    platform: str = "linux"

    @property
    def key(self) -> str:
        """Stable identity inside one inventory; also the pytest item name."""
        return f"{self.host}::{self.check}[{self.subject}]"

    @property
    def required_keys(self) -> tuple[str, ...]:
        return tuple(f"{self.host}::{name}" for name in self.requires)


@dataclass(frozen=True)
class Observation:
    """What a check saw, before the engine stamps it with host, timing and vantage."""

    outcome: Outcome
    expected: str
    observed: str
    # The part of the one-line message after "host check subject: ".
    reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def passed(cls, expected: str, observed: str, **details: Any) -> Observation:
        return cls(Outcome.PASSED, expected, observed, "", details)

    @classmethod
    def failed(cls, expected: str, observed: str, reason: str | None = None,
               **details: Any) -> Observation:
        return cls(Outcome.FAILED, expected, observed,
                   reason or f"expected {expected}, observed {observed}", details)

    @classmethod
    def skipped(cls, expected: str, reason: str, **details: Any) -> Observation:
        return cls(Outcome.SKIPPED, expected, "not observed", reason, details)

    @classmethod
    def not_observed(cls, expected: str, cause: str, **details: Any) -> Observation:
        """Could not observe: an error naming the cause, never a pass or a wrong value."""
        return cls(Outcome.ERROR, expected, "not observed", f"could not observe: {cause}",
                   details)


@dataclass(frozen=True)
class EarlierAttempt:
    """An attempt of a check that did not pass, before a later one under ``--dr-wait``."""

    at: datetime
    outcome: Outcome
    observed: str
    reason: str


@dataclass(frozen=True)
class CheckResult:
    """A finished check: the unit of evidence."""

    host: str
    check: str
    subject: str
    outcome: Outcome
    expected: str
    observed: str
    message: str
    vantage: str
    started_at: datetime
    duration_ms: float
    attempts: int = 1
    details: Mapping[str, Any] = field(default_factory=dict)
    # The attempts before the last one that did not pass, oldest first (--dr-wait).
    earlier: tuple[EarlierAttempt, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.host}::{self.check}[{self.subject}]"

    @classmethod
    def from_observation(cls, item: PlanItem, obs: Observation, vantage: str,
                         started_at: datetime, duration_ms: float, attempts: int = 1,
                         earlier: tuple[EarlierAttempt, ...] = ()) -> CheckResult:
        head = f"{item.host} {item.check} {item.subject}"
        if obs.outcome is Outcome.PASSED:
            message = f"{head}: {obs.observed}"
        else:
            message = f"{head}: {obs.reason}"
        return cls(item.host, item.check, item.subject, obs.outcome, obs.expected,
                   obs.observed, message, vantage, started_at, duration_ms, attempts,
                   obs.details, earlier)
