"""Waivers: accepted, approved, time-limited exceptions to checks, declared in the inventory.

A waiver selects checks by host, group, check type and subject (each a name or a glob, or a
list of them; every selector given must match), says why, who approved it and until when. This
module only parses and matches; what a waiver does to a result is the evidence layer's job.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pytest_drcheck.checks import registry
from pytest_drcheck.inventory.errors import Problem
from pytest_drcheck.inventory.yamldoc import Document, place_of
from pytest_drcheck.model import Location, PlanItem

SELECTORS = ("host", "group", "check", "subject")
_PATTERNS: dict[str, Any] = {
    "anyOf": [{"type": "string", "minLength": 1},
              {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}],
    "x-expect": "a name or glob (app*), or a list of them",
}
WAIVER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["justification", "approved_by", "expires"],
    "properties": {
        "id": {"type": "string", "minLength": 1, "x-expect": "a short reference, e.g. RISK-142"},
        "host": _PATTERNS,
        "group": _PATTERNS,
        "check": _PATTERNS,
        "subject": _PATTERNS,
        "justification": {"type": "string", "minLength": 1},
        "approved_by": {"type": "string", "minLength": 1},
        # YAML reads 2025-12-31 as a date, which JSON Schema has no type for: checked below.
        "expires": {"x-expect": "a date like 2025-12-31"},
    },
}


@dataclass(frozen=True)
class Waiver:
    id: str
    host: tuple[str, ...]
    group: tuple[str, ...]
    check: tuple[str, ...]
    subject: tuple[str, ...]
    justification: str
    approved_by: str
    expires: date
    source: Location

    @property
    def selector(self) -> str:
        """``host=app02 check=reach subject=10.77.0.11:*`` (the selectors given)."""
        parts = []
        for name in SELECTORS:
            values: tuple[str, ...] = getattr(self, name)
            if values:
                parts.append(f"{name}={','.join(values)}")
        return " ".join(parts)

    def matches(self, item: PlanItem, groups: Sequence[str]) -> bool:
        def any_match(patterns: tuple[str, ...], values: Sequence[str]) -> bool:
            return not patterns or any(fnmatch.fnmatchcase(v, p)
                                       for p in patterns for v in values)

        return (any_match(self.host, [item.host]) and any_match(self.group, groups)
                and any_match(self.check, [item.check])
                and any_match(self.subject, [item.subject]))

    def live_on(self, day: date) -> bool:
        """A waiver is live through the whole of its expiry day."""
        return day <= self.expires


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (str(value),) if isinstance(value, str) else tuple(str(v) for v in value)


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip()).date()
        except ValueError:
            return None
    return None


def parse_waivers(doc: Document, entries: Sequence[Mapping[str, Any]],
                  problems: list[Problem]) -> tuple[Waiver, ...]:
    """Schema-valid ``waivers:`` entries to Waivers; mistakes the schema cannot see go to
    ``problems`` (one line each)."""
    waivers: list[Waiver] = []
    seen: dict[str, str] = {}
    known_checks = registry.names()
    for index, entry in enumerate(entries):
        path: tuple[str | int, ...] = ("waivers", index)
        expires = _as_date(entry["expires"])
        if expires is None:
            shown = str(entry["expires"])[:40]
            problems.append(doc.problem((*path, "expires"), (
                f"'{shown}' is not a date; write the expiry date like 2025-12-31")))
            continue
        if not any(key in entry for key in SELECTORS):
            problems.append(doc.problem(path, (
                "a waiver must select checks with at least one of host, group, check, "
                "subject; add one (a waiver for everything would hide every failure)")))
            continue
        checks = _as_tuple(entry.get("check"))
        bad = [c for c in checks if not any(ch in c for ch in "*?[") and c not in known_checks]
        if bad:
            close = difflib.get_close_matches(bad[0], known_checks, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(doc.problem((*path, "check"), (
                f"unknown check type '{bad[0]}'{hint}; known: {', '.join(known_checks)}")))
            continue
        waiver_id = str(entry.get("id") or place_of(path))
        if waiver_id in seen:
            problems.append(doc.problem((*path, "id"), (
                f"waiver id '{waiver_id}' is already used by {seen[waiver_id]}; ids must be "
                "unique")))
            continue
        seen[waiver_id] = place_of(path)
        waivers.append(Waiver(
            id=waiver_id, host=_as_tuple(entry.get("host")), group=_as_tuple(entry.get("group")),
            check=checks, subject=_as_tuple(entry.get("subject")),
            justification=str(entry["justification"]).strip(),
            approved_by=str(entry["approved_by"]).strip(), expires=expires,
            source=Location(doc.file, doc.line_of(path), place_of(path))))
    return tuple(waivers)
