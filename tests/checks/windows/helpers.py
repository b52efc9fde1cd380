"""Windows observers run the way the engine runs them: the family's commands go through the
host's PowerShell batch (framing and parsing included) to a stand-in PowerShell that answers
from recorded outputs (tests/data/windows, see SOURCES.md there), then observe and judge."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pytest_drcheck.checks.base import Check, CheckContext
from pytest_drcheck.model import Location, Observation, PlanItem, freeze
from pytest_drcheck.targets import powershell_batch
from pytest_drcheck.targets.base import CommandResult, Stream, Target, TargetError
from tests.targets import fake_windows
from tests.targets.fake_windows import Answer

DATA = Path(__file__).resolve().parents[2] / "data" / "windows"


def recorded(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


class EmulatedWindows(Target):
    """A Windows host over a command-line transport (OpenSSH or WinRS), answering from a table."""

    platform = "windows"

    def __init__(self, answers: Mapping[str, Answer] | Callable[[str], Answer | None],
                 name: str = "win01") -> None:
        super().__init__(name)
        self.answer_of = answers if callable(answers) else dict(answers).get
        self.lines: list[str] = []

    @property
    def vantage(self) -> str:
        return f"{self.name} (emulated Windows)"

    def connect(self) -> None:
        return

    def run(self, command: str, timeout: float) -> CommandResult:
        self.lines.append(command)
        out = fake_windows.run_script(fake_windows.script_of(command), self.answer_of)
        return CommandResult(command, 0, out, "")

    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        raise TargetError("no streams here")

    def close(self) -> None:
        return


def windows_item(check: Check[Any], subject: str, entry: Mapping[str, Any],
                 site: Mapping[str, Any] | None = None) -> PlanItem:
    found = next(s for s in check.expand(entry, site or {}) if s.name == subject)
    return PlanItem("win01", check.type_name, found.name, freeze(found.params),
                    Location("site.yaml", 1, f"hosts.win01.checks.{check.type_name}[0]"),
                    10.0, found.requires, platform="windows")


def observe(check: Check[Any], item: PlanItem, answers: Mapping[str, Answer],
            timeout: float = 10.0) -> Any:
    """The family's observed value for ``item`` on an emulated Windows host."""
    return check.observe(context(check, item, answers, timeout))


def evaluate(check: Check[Any], item: PlanItem, answers: Mapping[str, Answer]) -> Observation:
    return check.evaluate(context(check, item, answers))


def context(check: Check[Any], item: PlanItem, answers: Mapping[str, Answer],
            timeout: float = 10.0) -> CheckContext:
    """``timeout``: the batch's per-command timeout (a recorded answer slower than it times
    out)."""
    target = EmulatedWindows(answers)
    commands = list(check.commands(item))
    outputs = powershell_batch.run_batch(target.run, target.name, commands, timeout)
    return CheckContext(item, target, outputs, 10.0, lambda name: EmulatedWindows({}, name),
                        command_timeout=timeout)
