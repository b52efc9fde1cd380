"""The registry holds every family to the observe/judge contract, built-in or plugged in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from pytest_drcheck.checks import registry
from pytest_drcheck.checks.base import Check, CheckContext, Subject
from pytest_drcheck.model import Observation, PlanItem


class JudgesItself(Check[str]):
    """A family that decides its own outcome: exactly what the contract forbids."""

    type_name: ClassVar[str] = "judgesitself"
    entry_schema: ClassVar[Mapping[str, Any]] = {}

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        return []

    def observe(self, ctx: CheckContext) -> str:
        return ""

    def judge(self, item: PlanItem, value: str) -> Observation:
        return Observation.passed("", value)

    def evaluate(self, ctx: CheckContext) -> Observation:  # type: ignore[misc]
        return Observation.passed("anything", "whatever was or was not seen")


class ObservesOnly(Check[str]):  # type: ignore[misc]
    type_name: ClassVar[str] = "observesonly"
    entry_schema: ClassVar[Mapping[str, Any]] = {}

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        return []

    def observe(self, ctx: CheckContext) -> str:
        return ""


@pytest.mark.parametrize(("name", "message"), [
    ("JudgesItself", "overrides evaluate; implement observe and judge instead"),
    ("ObservesOnly", "does not implement judge"),
])
def test_a_family_that_bypasses_the_contract_is_refused(name: str, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        registry._import(f"{__name__}:{name}")


def test_every_builtin_family_keeps_the_contract() -> None:
    for name in registry.names():
        assert isinstance(registry.get(name), Check)
