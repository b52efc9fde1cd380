"""Findings to track: every check of a drill that failed, could not be evaluated (error), was
waived or has no result, as rows for a ticketing system (``drcheck findings DIR``).

A finding's id is stable across drills: a hash of what the failure *is* (inventory host,
check, subject, kind of failure), never of when it happened or of the volatile text observed,
so the same broken thing in the next drill gets the same id and its ticket is found again.
Waiving a failure does not change its id (its status changes: ``waived``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

from pytest_drcheck.evidence.bundle import load
from pytest_drcheck.evidence.junit_bundle import split_key
from pytest_drcheck.evidence.layout import EvidenceError
from pytest_drcheck.evidence.records import Record, parse_instant

FORMATS = ("csv", "markdown")
# Kinds of failure (part of the id): a wrong value, could not observe, no result at all.
FAILED, ERROR, NOT_RUN = "failed", "error", "not_run"


def finding_id(host: str, check: str, subject: str, kind: str) -> str:
    """``DR-`` and 12 hex digits of SHA-256 over the failure's identity."""
    identity = "\x1f".join((host, check, subject, kind)).encode("utf-8")
    return f"DR-{hashlib.sha256(identity).hexdigest()[:12]}"


@dataclass(frozen=True)
class Finding:
    id: str
    status: str  # failed | error | waived | not_run
    host: str
    check: str
    subject: str
    expected: str
    observed: str
    message: str
    # When this failure was first observed: the earliest drill among the bundles given
    # that has it (its first failed attempt in that drill).
    first_seen: str
    # The drills (bundles given) that have it, this one included.
    seen_in: int
    waiver: str
    source: str


def _kind(record: Mapping[str, Any]) -> str | None:
    outcome = record.get("outcome")
    if outcome in (FAILED, ERROR):
        return str(outcome)
    if outcome == "waived":  # a waived failure is still that failure
        return str(record.get("check_outcome") or FAILED)
    return None


def _first_attempt_at(record: Mapping[str, Any]) -> str:
    earlier = record.get("earlier_failures") or []
    if earlier:
        return str(earlier[0].get("at"))
    return str(record.get("started_at") or "")


def _rows_of(drill: Mapping[str, Any], records: Sequence[Record]) -> list[Finding]:
    found: list[Finding] = []
    for record in records:
        kind = _kind(record)
        if kind is None:
            continue
        host, check, subject = (str(record.get(k)) for k in ("host", "check", "subject"))
        waiver = record.get("waiver") or {}
        found.append(Finding(
            finding_id(host, check, subject, kind), str(record.get("outcome")), host, check,
            subject, str(record.get("expected") or ""), str(record.get("observed") or ""),
            str(record.get("message") or ""), _first_attempt_at(record), 1,
            (f"{waiver.get('id')} ({waiver.get('status')}, expires {waiver.get('expires')})"
             if waiver else ""), str(record.get("source") or "")))
    for key in drill.get("not_run", []):
        host, check, subject = split_key(str(key))
        found.append(Finding(
            finding_id(host, check, subject, NOT_RUN), NOT_RUN, host, check, subject, "", "",
            "no result: the run ended without one for this check",
            str(drill.get("started_at") or ""), 1, "", ""))
    return found


def findings(bundles: Sequence[tuple[Mapping[str, Any], Sequence[Record]]]) -> list[Finding]:
    """The findings of the newest drill (by start time), first seen and counted over all."""
    if not bundles:
        return []
    ordered = sorted(bundles, key=lambda pair: parse_instant(str(pair[0]["started_at"])))
    first_seen: dict[str, str] = {}
    seen_in: dict[str, int] = {}
    for drill, records in ordered:
        for row in _rows_of(drill, records):
            first_seen.setdefault(row.id, row.first_seen)
            seen_in[row.id] = seen_in.get(row.id, 0) + 1
    latest = _rows_of(*ordered[-1])
    return sorted((Finding(**{**row.__dict__, "first_seen": first_seen[row.id],
                              "seen_in": seen_in[row.id]}) for row in latest),
                  key=lambda row: (row.host, row.check, row.subject, row.id))


COLUMNS = tuple(field.name for field in fields(Finding))


def as_csv(rows: Sequence[Finding]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(astuple(row) for row in rows)
    return buffer.getvalue()


def _cell(value: object) -> str:
    """A Markdown table cell: one line, pipes escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


def as_markdown(rows: Sequence[Finding], title: str) -> str:
    lines = [f"# Findings: {_cell(title)}", "",
             f"{len(rows)} finding(s)." if rows else "No findings: every check passed.", ""]
    if rows:
        lines.append("| " + " | ".join(COLUMNS) + " |")
        lines.append("|" + "---|" * len(COLUMNS))
        lines += ["| " + " | ".join(_cell(v) for v in astuple(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def run(directories: Sequence[str], output_format: str, output: str | None) -> int:
    """``drcheck findings DIR... [--format csv|markdown] [-o FILE]``."""
    loaded = []
    for name in directories:
        try:
            drill, records, _ = load(Path(name))
        except EvidenceError as exc:
            print(f"drcheck findings: {exc}", file=sys.stderr)
            return 1
        loaded.append((drill, records))
    rows = findings(loaded)
    latest = max(loaded, key=lambda pair: parse_instant(str(pair[0]["started_at"])))[0]
    title = f"drill '{latest.get('drill', {}).get('name', '')}' of {latest.get('started_at')}"
    text = as_csv(rows) if output_format == "csv" else as_markdown(rows, title)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        print(f"{output}: {len(rows)} finding(s) of {title}")
    else:
        sys.stdout.write(text)
    return 0
