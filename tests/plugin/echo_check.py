"""A check type for tests only: it runs a command on the host and (carelessly, on purpose)
puts the command's output in its observation, its message and its details, as a check that
prints a configuration file or a protocol answer would. Evidence must redact secrets anyway."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pytest_drcheck.checks.base import Check, CheckContext, Subject
from pytest_drcheck.model import Observation, PlanItem


class EchoCheck(Check[str]):
    type_name: ClassVar[str] = "echo"
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "required": ["name", "command"],
        "properties": {"name": {"type": "string"}, "command": {"type": "string"}},
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        return [Subject(entry["name"], {"command": entry["command"]})]

    def commands(self, item: PlanItem) -> Sequence[str]:
        return (item.params["command"],)

    def observe(self, ctx: CheckContext) -> str:
        return ctx.output(0).stdout.strip()

    def judge(self, item: PlanItem, out: str) -> Observation:
        return Observation.failed("nothing", out, f"expected nothing, the host said {out}",
                                  stdout=out, password=out, nested={"lines": [out]})
