"""time on Windows: w32tm's status into the family's DaemonView, judged by the shared judge."""

from __future__ import annotations

import pytest

from pytest_drcheck.checks.timesync import DaemonState, DaemonView, TimeCheck
from pytest_drcheck.checks.windows import timesync as windows
from pytest_drcheck.model import CouldNotObserve, Outcome
from tests.checks.windows.helpers import evaluate, observe, recorded, windows_item
from tests.targets.fake_windows import Answer

CHECK = TimeCheck()
SITE = {"time": {"max_offset": "1s", "sources": ["dc01.corp.example", "169.254.169.123"]}}


@pytest.mark.parametrize(("name", "view"), [
    ("w32tm-status-domain.txt", DaemonView("w32time", True, "10.77.0.53", 4, 0.0004127)),
    ("w32tm-status-ntpserver-flags.txt",
     DaemonView("w32time", True, "169.254.169.123", 3, -2.5104881)),
    ("w32tm-status-cmos.txt", DaemonView(
        "w32time", False, problem="not synchronised (source: Local CMOS Clock, leap indicator "
                                  "3(not synchronized))")),
    ("w32tm-service-stopped.txt", DaemonView(
        "w32time", False, problem="w32tm printed no status (The following error occurred: The "
                                  "service has not been started. (0x80070426))")),
])
def test_w32tm_status(name: str, view: DaemonView) -> None:
    assert windows.parse_w32tm(recorded(name)) == view


def test_windows_items_ask_w32time_whatever_the_daemon_list() -> None:
    item = windows_item(CHECK, "sync", {}, SITE)
    assert list(CHECK.commands(item)) == [windows.COMMAND]
    source = windows_item(CHECK, "source", {}, SITE)
    assert list(CHECK.commands(source)) == [windows.COMMAND,
                                            windows.lookup_command("dc01.corp.example")]


def test_synchronised_within_the_limit_passes_through_the_shared_judge() -> None:
    item = windows_item(CHECK, "sync", {}, SITE)
    verdict = evaluate(CHECK, item, {windows.COMMAND: Answer(0, recorded(
        "w32tm-status-domain.txt"))})
    assert verdict.outcome is Outcome.PASSED
    assert verdict.observed.startswith("w32time synchronised to 10.77.0.53 (stratum 4)")


def test_an_offset_past_the_limit_fails() -> None:
    item = windows_item(CHECK, "sync", {}, SITE)
    verdict = evaluate(CHECK, item, {windows.COMMAND: Answer(0, recorded(
        "w32tm-status-ntpserver-flags.txt"))})
    assert verdict.outcome is Outcome.FAILED and "169.254.169.123" in verdict.observed


def test_a_stopped_service_is_a_daemon_that_did_not_answer() -> None:
    item = windows_item(CHECK, "sync", {}, SITE)
    value = observe(CHECK, item, {windows.COMMAND: Answer(1, recorded(
        "w32tm-service-stopped.txt"))})
    assert isinstance(value, DaemonState) and value.view is None
    assert value.why_none == ("w32time: The following error occurred: The service has not been "
                              "started. (0x80070426)")
    verdict = evaluate(CHECK, item, {windows.COMMAND: Answer(1, recorded(
        "w32tm-service-stopped.txt"))})
    assert verdict.outcome is Outcome.FAILED


def test_source_by_name_resolved_on_the_host() -> None:
    item = windows_item(CHECK, "source", {}, SITE)
    answers = {windows.COMMAND: Answer(0, recorded("w32tm-status-domain.txt")),
               windows.lookup_command("dc01.corp.example"): Answer(0, "10.77.0.53\n")}
    verdict = evaluate(CHECK, item, answers)
    assert verdict.outcome is Outcome.PASSED and verdict.observed == (
        "10.77.0.53 = dc01.corp.example (w32time)")


def test_w32tm_timing_out_is_could_not_observe() -> None:
    item = windows_item(CHECK, "sync", {}, SITE)
    with pytest.raises(CouldNotObserve, match=r"timed out after 1 s on win01"):
        observe(CHECK, item, {windows.COMMAND: Answer(0, "", seconds=30)}, 1)
