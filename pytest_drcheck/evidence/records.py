"""One JSON record per check result, and what a set of records adds up to (counts, measured
RTO, verdict). Records are the single source every evidence file is built from, so a report,
a JUnit file or a merge of shards can be rebuilt from ``results.jsonl`` alone."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pytest_drcheck.evidence.redact import Redactor
from pytest_drcheck.evidence.waiving import WAIVED, Decision, decide, waiver_dict
from pytest_drcheck.inventory.plan import Plan
from pytest_drcheck.model import CheckResult, Outcome, PlanItem

OUTCOMES = ("passed", "failed", WAIVED, "error", "skipped")
Record = dict[str, Any]


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def parse_instant(text: str, what: str = "time") -> datetime:
    """ISO-8601 with a timezone (``Z`` or ``+02:00``) to an aware UTC datetime.

    Raises ValueError with a one-line message naming the accepted form."""
    raw = text.strip()
    candidate = raw[:-1] + "+00:00" if raw[-1:] in ("Z", "z") else raw
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        raise ValueError(f"{what}={text}: not an ISO-8601 time; write e.g. "
                         "2024-05-01T09:30:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"{what}={text}: no timezone; add one, e.g. {raw}Z for UTC")
    return moment.astimezone(timezone.utc)


def seconds_between(start: str, end: str) -> float:
    return round((parse_instant(end) - parse_instant(start)).total_seconds(), 3)


def make_record(result: CheckResult, item: PlanItem, decision: Decision, anchor: datetime,
                redactor: Redactor) -> Record:
    finished = result.started_at + timedelta(milliseconds=result.duration_ms)
    green = finished if result.outcome is Outcome.PASSED else None
    message = result.message
    if decision.status == "expired":
        message = f"{message}; {decision.note}"
    record: Record = {
        "key": result.key,
        "host": result.host,
        "check": result.check,
        "subject": result.subject,
        "outcome": decision.outcome,
        "check_outcome": result.outcome.value,
        "expected": result.expected,
        "observed": result.observed,
        "message": message,
        "vantage": result.vantage,
        "source": str(item.source),
        "started_at": iso(result.started_at),
        "finished_at": iso(finished),
        "duration_ms": round(result.duration_ms, 1),
        "attempts": result.attempts,
        "green_at": iso(green) if green is not None else None,
        # From the millisecond timestamps as written, so that anyone recomputing it from the
        # file (drcheck report, merge, an auditor) gets the same figure.
        "time_to_green_s": (seconds_between(iso(anchor), iso(green))
                            if green is not None else None),
        "waiver": None,
    }
    if "rpo_s" in result.details:  # the measured RPO drill.json sums up (checks/rpo.py)
        record["rpo"] = {"measured_s": result.details["rpo_s"],
                         "target_s": result.details.get("rpo_target_s")}
    if "link_mbit_s" in result.details:  # the replication check's figures (report chart)
        record["replication"] = {key: result.details.get(key) for key in (
            "average_mbit_s", "peak_mbit_s", "link_mbit_s", "headroom")}
    if "throttle_mbit_s" in result.details:  # replication[throttle]: DRS's (report chart)
        record["replication"] = {"throttle_mbit_s": result.details["throttle_mbit_s"]}
    if decision.waiver is not None:
        record["waiver"] = waiver_dict(decision.waiver) | {"status": decision.status,
                                                           "note": decision.note}
    if result.earlier:
        # Attempts that did not pass before the last one (--dr-wait): a check that went
        # green after them is flaky, and the bundle's JUnit says so.
        record["earlier_failures"] = [
            {"at": iso(attempt.at), "outcome": attempt.outcome.value,
             "observed": attempt.observed, "message": attempt.reason}
            for attempt in result.earlier]
    redacted: Record = redactor.value(record)
    return redacted


class Verdicts:
    """The verdict step: where a check result becomes its record, once. Its waiver is decided
    (on the drill's day), its times are derived from the launch anchor and its secrets are
    redacted here; the stream, the pytest item, the JUnit files and the report all consume
    the one record. Safe to call from the engine's threads."""

    def __init__(self, plan: Plan, anchor: datetime, day: date, redactor: Redactor) -> None:
        self.plan = plan
        self.anchor = anchor
        self.day = day
        self.redactor = redactor
        self._items = {item.key: item for item in plan.items}
        self._lock = threading.Lock()
        self._records: dict[str, tuple[CheckResult, Record]] = {}

    def knows(self, key: str) -> bool:
        """An inventory check (not a hand-written test)."""
        return key in self._items

    def record(self, result: CheckResult) -> Record:
        with self._lock:
            known = self._records.get(result.key)
        if known is not None and known[0] is result:
            return known[1]
        item = self._items[result.key]
        made = make_record(result, item, decide(self.plan, item, result.outcome, self.day),
                           self.anchor, self.redactor)
        with self._lock:
            # Two threads may build the same result's record at once: the first one stored
            # is the one everybody gets.
            known = self._records.get(result.key)
            if known is not None and known[0] is result:
                return known[1]
            self._records[result.key] = (result, made)
        return made


def read_jsonl(path: Path) -> tuple[list[Record], int]:
    """Records of a JSON-lines file and the number of unreadable lines (a run killed in the
    middle of a write leaves at most one, the last)."""
    records: list[Record] = []
    broken = 0
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            broken += 1
            continue
        if isinstance(value, dict):
            records.append(value)
        else:
            broken += 1
    return records, broken


def dedupe(records: Iterable[Record]) -> list[Record]:
    """One record per check (the last written wins), sorted by key."""
    by_key: dict[str, Record] = {}
    for record in records:
        by_key[str(record.get("key"))] = record
    return [by_key[key] for key in sorted(by_key)]


def counts(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    result = dict.fromkeys(OUTCOMES, 0)
    for record in records:
        outcome = str(record.get("outcome"))
        result[outcome] = result.get(outcome, 0) + 1
    result["total"] = len(records)
    return result


@dataclass(frozen=True)
class Rto:
    anchor: datetime
    anchor_source: str
    target_s: float | None
    measured_s: float | None
    last_green: str | None
    # Checks that had to go green and did not (failed or error, not waived).
    never_green: int

    @property
    def met(self) -> bool | None:
        if self.target_s is None:
            return None
        if self.measured_s is None:
            return False if self.never_green else None
        return self.measured_s <= self.target_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "anchor": iso(self.anchor),
            "anchor_source": self.anchor_source,
            "target_s": self.target_s,
            "measured_s": self.measured_s,
            "met": self.met,
            "last_green": self.last_green,
            "never_green": self.never_green,
        }


def measure_rto(records: Sequence[Mapping[str, Any]], anchor: datetime, anchor_source: str,
                target_s: float | None, missing: int = 0) -> Rto:
    """Launch (the anchor) to the last check green; not reached while any check never went
    green, or has no result (``missing``: an interrupted run). Waived and skipped checks do
    not count: they were never expected to go green."""
    never = len([r for r in records if r.get("outcome") in ("failed", "error")]) + missing
    greens = [(r["green_at"], str(r["key"])) for r in records
              if r.get("outcome") == "passed" and r.get("green_at")]
    if never or not greens:
        return Rto(anchor, anchor_source, target_s, None, None, never)
    last_at, last_key = max(greens, key=lambda pair: parse_instant(str(pair[0])))
    measured = seconds_between(iso(anchor), str(last_at))
    return Rto(anchor, anchor_source, target_s, measured, last_key, 0)


def verdict(record_counts: Mapping[str, int], rto: Rto, complete: bool) -> tuple[str, list[str]]:
    """("passed" | "failed" | "incomplete", reasons in plain words)."""
    reasons = []
    failing = record_counts.get("failed", 0) + record_counts.get("error", 0)
    if record_counts.get("failed"):
        reasons.append(f"{record_counts['failed']} check(s) failed")
    if record_counts.get("error"):
        reasons.append(f"{record_counts['error']} check(s) could not be evaluated (error)")
    if rto.met is False and rto.measured_s is not None:
        reasons.append("measured RTO exceeds the target")
    if not complete:
        reasons.append("the results are partial")
        return "incomplete", reasons
    if failing or rto.met is False:
        return "failed", reasons
    return "passed", reasons
