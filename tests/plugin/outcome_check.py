"""A check type for tests only: each entry says which outcome to produce, so every consumer of
results (pytest, both JUnit files, results.jsonl, drill.json, the report) can be tested with
errors ("could not observe") and skips without breaking a real host."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pytest_drcheck.checks.base import Check, CheckContext, Subject
from pytest_drcheck.model import CouldNotObserve, Observation, Outcome, PlanItem


class OutcomeCheck(Check[Outcome]):
    type_name: ClassVar[str] = "outcome"
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "required": ["name", "outcome"],
        "properties": {"name": {"type": "string"},
                       "outcome": {"enum": ["passed", "failed", "error", "skipped"]},
                       "reason": {"type": "string"}},
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        return [Subject(entry["name"], {"outcome": entry["outcome"],
                                        "reason": entry.get("reason", "")})]

    def observe(self, ctx: CheckContext) -> Outcome:
        outcome = Outcome(ctx.params["outcome"])
        if outcome is Outcome.ERROR:
            raise CouldNotObserve(ctx.params["reason"] or "told to be error")
        return outcome

    def judge(self, item: PlanItem, outcome: Outcome) -> Observation:
        reason = item.params["reason"] or f"told to be {outcome.value}"
        if outcome is Outcome.PASSED:
            return Observation.passed("anything", "something")
        if outcome is Outcome.FAILED:
            return Observation.failed("something", "something else", reason)
        return Observation.skipped("something", reason)
