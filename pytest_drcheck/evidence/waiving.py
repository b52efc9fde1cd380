"""What waivers do to results: a failed check under a live waiver is *waived* (never passed);
under an expired one it stays failed and says so; a waiver that selects nothing is stale."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from pytest_drcheck.inventory.plan import Plan
from pytest_drcheck.inventory.waivers import Waiver
from pytest_drcheck.model import Outcome, PlanItem

WAIVED = "waived"


@dataclass(frozen=True)
class Decision:
    outcome: str  # an Outcome value, or "waived"
    waiver: Waiver | None = None
    # "live" (applied) or "expired" (matched, no longer applies)
    status: str = ""

    @property
    def note(self) -> str:
        waiver = self.waiver
        if waiver is None:
            return ""
        if self.status == "live":
            return (f"waived by {waiver.id} until {waiver.expires.isoformat()} (approved by "
                    f"{waiver.approved_by}): {waiver.justification}")
        return (f"waiver {waiver.id} expired on {waiver.expires.isoformat()} and no longer "
                "applies")


def matching(plan: Plan, item: PlanItem) -> list[Waiver]:
    host = plan.hosts.get(item.host)
    groups = host.groups if host is not None else ()
    return [w for w in plan.waivers if w.matches(item, groups)]


def decide(plan: Plan, item: PlanItem, outcome: Outcome, day: date) -> Decision:
    """Only a failure can be waived: errors are the tool's problem, not the site's."""
    if outcome is not Outcome.FAILED:
        return Decision(outcome.value)
    candidates = matching(plan, item)
    for waiver in candidates:
        if waiver.live_on(day):
            return Decision(WAIVED, waiver, "live")
    if candidates:
        return Decision(outcome.value, candidates[0], "expired")
    return Decision(outcome.value)


@dataclass(frozen=True)
class StaleWaiver:
    waiver: Waiver
    hint: str

    @property
    def message(self) -> str:
        return (f"{self.waiver.source}: waiver {self.waiver.id} ({self.waiver.selector}) "
                f"matches no check of the inventory{self.hint}; stale waivers hide drift: "
                "remove it or fix its selector")


def stale_waivers(plan: Plan) -> list[StaleWaiver]:
    """Waivers that select no check of the whole inventory (not only this shard or -k)."""
    found = []
    for waiver in plan.waivers:
        if any(waiver.matches(item, plan.hosts[item.host].groups) for item in plan.items):
            continue
        hint = ""
        for pattern in waiver.host:
            close = difflib.get_close_matches(pattern, list(plan.hosts), n=1, cutoff=0.6)
            if pattern not in plan.hosts and close:
                hint = f" (did you mean host '{close[0]}'?)"
        found.append(StaleWaiver(waiver, hint))
    return found


def waiver_summary(plan: Plan, day: date, applied: Iterable[str],
                   expired_hits: Iterable[str]) -> list[dict[str, Any]]:
    """Every waiver with its state for the evidence: live/expired, stale, times applied."""
    stale = {s.waiver.id: s.message for s in stale_waivers(plan)}
    applied_counts: dict[str, int] = {}
    for waiver_id in applied:
        applied_counts[waiver_id] = applied_counts.get(waiver_id, 0) + 1
    expired_counts: dict[str, int] = {}
    for waiver_id in expired_hits:
        expired_counts[waiver_id] = expired_counts.get(waiver_id, 0) + 1
    summary = []
    for waiver in plan.waivers:
        matched = sum(1 for item in plan.items
                      if waiver.matches(item, plan.hosts[item.host].groups))
        summary.append(waiver_dict(waiver) | {
            "status": "live" if waiver.live_on(day) else "expired",
            "stale": waiver.id in stale,
            "stale_message": stale.get(waiver.id, ""),
            "matched_checks": matched,
            "applied": applied_counts.get(waiver.id, 0),
            "expired_hits": expired_counts.get(waiver.id, 0),
        })
    return summary


def waiver_dict(waiver: Waiver) -> dict[str, Any]:
    return {
        "id": waiver.id,
        "selector": waiver.selector,
        "justification": waiver.justification,
        "approved_by": waiver.approved_by,
        "expires": waiver.expires.isoformat(),
        "source": str(waiver.source),
    }
