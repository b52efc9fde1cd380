"""The engine's side of the check contract: "could not observe" is an error naming its cause,
never a pass and never a wrong value, and a test whose requirement did not pass is skipped
with that reason. Real commands on the local target; no mock."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pytest_drcheck import engine as engine_module
from pytest_drcheck.checks import registry
from pytest_drcheck.checks.base import Check, CheckContext, Subject
from pytest_drcheck.concurrency import AdaptiveLimit, HostGate
from pytest_drcheck.engine import Engine, EngineSettings, handshake_limit
from pytest_drcheck.inventory.plan import ConnectionSpec, DrillSpec, HostSpec, Plan
from pytest_drcheck.model import (
    CheckResult,
    CouldNotObserve,
    Location,
    Observation,
    Outcome,
    PlanItem,
)
from pytest_drcheck.retry import Backoff
from pytest_drcheck.targets.base import Target, TargetError
from pytest_drcheck.targets.factory import TargetFactory
from pytest_drcheck.targets.local import LocalTarget

JUDGED: list[str] = []


class ProbeCheck(Check[str]):
    """Runs ``command`` and expects ``want`` on its stdout; ``unobservable`` raises."""

    type_name: ClassVar[str] = "probe"
    entry_schema: ClassVar[Mapping[str, Any]] = {}

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        return [Subject(entry["name"], entry)]

    def commands(self, item: PlanItem) -> Sequence[str]:
        command = item.params.get("command")
        return (command,) if command else ()

    def expected(self, item: PlanItem) -> str:
        return str(item.params.get("want", ""))

    def observe(self, ctx: CheckContext) -> str:
        if ctx.params.get("unobservable"):
            raise CouldNotObserve(str(ctx.params["unobservable"]))
        return ctx.output(0, accept=tuple(ctx.params.get("accept", (0,)))).stdout.strip()

    def judge(self, item: PlanItem, value: str) -> Observation:
        JUDGED.append(item.subject)
        if value == item.params["want"]:
            return Observation.passed(item.params["want"], value)
        return Observation.failed(item.params["want"], value)


class RunnerCheck(Check[int]):
    """Observed from the runner (as the AWS checks are): fails on its first look only."""

    type_name: ClassVar[str] = "runner"
    entry_schema: ClassVar[Mapping[str, Any]] = {}
    looks: ClassVar[int] = 0

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        return [Subject(entry["name"], entry)]

    def needs_connection(self, item: PlanItem) -> bool:
        return False

    def observe(self, ctx: CheckContext) -> int:
        RunnerCheck.looks += 1
        return RunnerCheck.looks

    def judge(self, item: PlanItem, value: int) -> Observation:
        if value >= 2:
            return Observation.passed("a second look", f"look {value}")
        return Observation.failed("a second look", f"look {value}")


class StreamOnlyCheck(Check[str]):
    """A light check (streams only, no command), as reach and egress are."""

    type_name: ClassVar[str] = "streamonly"
    entry_schema: ClassVar[Mapping[str, Any]] = {}
    light: ClassVar[bool] = True

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        return [Subject(entry["name"], entry)]

    def observe(self, ctx: CheckContext) -> str:
        return "open"

    def judge(self, item: PlanItem, value: str) -> Observation:
        return Observation.passed("open", value)


class GatedCheck(Check[str]):
    """No command; its look waits (at most its item's timeout) until GATE is set."""

    type_name: ClassVar[str] = "gated"
    entry_schema: ClassVar[Mapping[str, Any]] = {}

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        return [Subject(entry["name"], entry)]

    def observe(self, ctx: CheckContext) -> str:
        return "released" if GATE.wait(ctx.timeout) else "never released"

    def judge(self, item: PlanItem, value: str) -> Observation:
        if value == "released":
            return Observation.passed("released", value)
        return Observation.failed("released", value)


GATE = threading.Event()


class CountingLocalTarget(LocalTarget):
    connects = 0

    def connect(self) -> None:
        CountingLocalTarget.connects += 1


@pytest.fixture(autouse=True)
def probe_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(registry.BUILTIN_CHECKS, "probe", f"{__name__}:ProbeCheck")
    monkeypatch.setitem(registry.BUILTIN_CHECKS, "runner", f"{__name__}:RunnerCheck")
    monkeypatch.setitem(registry.BUILTIN_CHECKS, "streamonly", f"{__name__}:StreamOnlyCheck")
    monkeypatch.setitem(registry.BUILTIN_CHECKS, "gated", f"{__name__}:GatedCheck")
    registry.available.cache_clear()
    registry.get.cache_clear()
    JUDGED.clear()
    yield
    registry.available.cache_clear()
    registry.get.cache_clear()


def _item(subject: str, requires: tuple[str, ...] = (), check: str = "probe",
          **params: Any) -> PlanItem:
    return PlanItem("h1", check, subject, {"name": subject, **params},
                    Location("site.yaml", 1, f"hosts.h1.checks.probe[{subject}]"), 10.0,
                    requires)


def _run(*items: PlanItem, command_timeout: float = 10.0,
         settings: EngineSettings | None = None, factory: Any = None,
         listener: Any = None) -> dict[str, Any]:
    host = HostSpec("h1", None, ConnectionSpec(type="local", command_timeout=command_timeout),
                    ())
    plan = Plan("site.yaml", "site.yaml", "0" * 64, DrillSpec("t"), {"h1": host}, items, {})
    engine = Engine(plan, factory or TargetFactory(),
                    settings or EngineSettings(workers=2, per_host=2))
    if listener is not None:
        engine.add_listener(listener)
    try:
        engine.select(items)
        engine.start()
        return {item.subject: engine.result(item) for item in items}
    finally:
        engine.close()


def test_could_not_observe_is_an_error_naming_its_cause_and_is_never_judged() -> None:
    results = _run(_item("a", want="x", unobservable="the resolver 10.0.0.2 timed out"))
    result = results["a"]
    assert result.outcome is Outcome.ERROR
    assert result.message == ("h1 probe a: could not observe: the resolver 10.0.0.2 "
                              "timed out")
    assert result.expected == "x" and result.observed == "not observed"
    assert JUDGED == []


def test_a_command_that_timed_out_is_not_read_as_data() -> None:
    results = _run(_item("slow", want="", command="sleep 30"), command_timeout=1.0)
    assert results["slow"].outcome is Outcome.ERROR
    assert results["slow"].message == ("h1 probe slow: could not observe: `sleep 30` timed "
                                       "out after 1 s on h1")
    assert JUDGED == []


def test_a_missing_tool_and_an_unexpected_status_name_the_command() -> None:
    results = _run(_item("missing", want="", command="no-such-tool-drcheck --version"),
                   _item("status", want="", command="echo oops >&2; exit 3"))
    assert results["missing"].message == (
        "h1 probe missing: could not observe: `no-such-tool-drcheck --version` is not "
        "available on h1 (command not found)")
    assert results["status"].message == (
        "h1 probe status: could not observe: `echo oops >&2; exit 3` failed on h1 (exit 3): "
        "oops")
    assert {r.outcome for r in results.values()} == {Outcome.ERROR}


def test_a_declared_status_is_data_and_is_judged() -> None:
    results = _run(_item("inactive", want="inactive", command="echo inactive; exit 3",
                         accept=(0, 3)))
    assert results["inactive"].outcome is Outcome.PASSED
    assert JUDGED == ["inactive"]


def test_a_dependent_is_skipped_when_its_requirement_fails_and_runs_when_it_passes() -> None:
    results = _run(
        _item("running", want="yes", command="echo no"),
        _item("health", ("probe[running]",), want="pong", command="echo pong"),
        _item("up", want="yes", command="echo yes"),
        _item("served", ("probe[up]",), want="ok", command="echo ok"))
    assert results["running"].outcome is Outcome.FAILED
    assert results["health"].outcome is Outcome.SKIPPED
    assert results["health"].message == (
        "h1 probe health: skipped: probe[running] did not pass (expected yes, observed no)")
    assert results["served"].outcome is Outcome.PASSED
    assert "health" not in JUDGED


def test_a_requirement_that_could_not_be_observed_skips_its_dependent_with_the_cause() -> None:
    results = _run(_item("base", want="x", unobservable="`ip -j addr` timed out"),
                   _item("mtu", ("probe[base]",), want="1500", command="echo 1500"))
    assert results["mtu"].outcome is Outcome.SKIPPED
    assert results["mtu"].message == ("h1 probe mtu: skipped: probe[base] did not pass "
                                      "(could not observe: `ip -j addr` timed out)")


def test_a_dependent_starts_when_its_requirement_ends_not_when_unrelated_checks_do() -> None:
    # "slow" is released only by the dependent's result: if dependents waited for every
    # check of the host (waves), "slow" would wait out its timeout and fail.
    GATE.clear()

    def release(result: CheckResult) -> None:
        if result.subject == "dependent":
            GATE.set()

    results = _run(_item("slow", check="gated"),
                   _item("base", want="yes", command="echo yes"),
                   _item("dependent", ("probe[base]",), want="ok", command="echo ok"),
                   listener=release)
    assert results["dependent"].outcome is Outcome.PASSED
    assert results["slow"].outcome is Outcome.PASSED, results["slow"].message


def test_a_requirement_cycle_runs_its_checks_rather_than_wait_forever() -> None:
    results = _run(_item("a", ("probe[b]",), want="x", command="echo x"),
                   _item("b", ("probe[a]",), want="y", command="echo y"),
                   _item("c", ("probe[a]",), want="z", command="echo z"))
    assert {s: r.outcome for s, r in results.items()} == {
        "a": Outcome.PASSED, "b": Outcome.PASSED, "c": Outcome.PASSED}


def test_a_requirement_outside_the_selection_does_not_hold_a_test_back() -> None:
    results = _run(_item("lonely", ("probe[elsewhere]",), want="ok", command="echo ok"))
    assert results["lonely"].outcome is Outcome.PASSED


def test_a_retry_of_a_check_observed_from_the_runner_never_dials_the_host() -> None:
    RunnerCheck.looks = 0
    CountingLocalTarget.connects = 0

    def make_target(host: HostSpec, target_of: Any) -> Target:
        return CountingLocalTarget(host.name)

    results = _run(_item("api", check="runner"), factory=make_target,
                   settings=EngineSettings(workers=2, per_host=2, wait=30.0,
                                           backoff=Backoff(first=0.01, cap=0.01)))
    assert results["api"].outcome is Outcome.PASSED
    assert results["api"].attempts == 2
    assert CountingLocalTarget.connects == 0


def test_stream_checks_start_alongside_the_batch_not_after_it(tmp_path: Path) -> None:
    # The batch blocks until the stream check's result has landed: if stream checks waited
    # for the batch, this would deadlock until the command timeout and read as an error.
    gate = tmp_path / "gate"
    os.mkfifo(gate)

    def open_the_gate(result: CheckResult) -> None:
        if result.check == "streamonly":
            with open(gate, "w") as fifo:
                fifo.write("go\n")

    results = _run(_item("batch", want="go", command=f"read line < {gate}; echo $line"),
                   _item("port", check="streamonly"), listener=open_the_gate)
    assert results["port"].outcome is Outcome.PASSED
    assert results["batch"].outcome is Outcome.PASSED, results["batch"].message


class HurriedLocalTarget(LocalTarget):
    """Gives every whole script a tenth of a second (its commands keep their own timeouts):
    the batch then really runs out of time, as an overloaded host's does."""

    def run(self, command: str, timeout: float) -> Any:
        return super().run(command, 0.1)


def _run_paced(*items: PlanItem, workers: int, factory: Any = None
               ) -> tuple[dict[str, CheckResult], int, int]:
    """Results, and the host gate's limit before and after the run."""
    host = HostSpec("h1", None, ConnectionSpec(type="local", command_timeout=1.0), ())
    plan = Plan("site.yaml", "site.yaml", "0" * 64, DrillSpec("t"), {"h1": host}, items, {})
    engine = Engine(plan, factory or TargetFactory(), EngineSettings(workers=workers))
    before = engine.gate.limit
    try:
        engine.select(items)
        engine.start()
        results = {item.subject: engine.result(item) for item in items}
        return results, before, engine.gate.limit
    finally:
        engine.close()


def test_the_host_limit_starts_at_what_the_handshakes_take_and_never_passes_workers() -> None:
    assert Engine(Plan("s", "s", "0" * 64, DrillSpec("t"), {}, [], {}), TargetFactory(),
                  EngineSettings(workers=1000)).gate.limit == handshake_limit()
    assert Engine(Plan("s", "s", "0" * 64, DrillSpec("t"), {}, [], {}), TargetFactory(),
                  EngineSettings(workers=1)).gate.limit == 1


def test_a_batch_that_answers_lets_the_host_limit_grow() -> None:
    results, before, after = _run_paced(_item("a", want="ok", command="echo ok"),
                                        workers=1000)
    assert results["a"].outcome is Outcome.PASSED
    assert after == before + 1


def test_a_batch_that_timed_out_shrinks_the_host_limit_and_is_reported_as_without_it() -> None:
    def make_target(host: HostSpec, target_of: Any) -> Target:
        return HurriedLocalTarget(host.name)

    results, before, after = _run_paced(_item("slow", want="", command="sleep 5"),
                                        workers=1000, factory=make_target)
    # The verdict is the batch's own: an error naming the timeout, never judged.
    assert results["slow"].outcome is Outcome.ERROR
    assert results["slow"].message == (
        "h1 probe slow: could not observe: `sleep 5` did not run on h1: the batch of 1 "
        "commands timed out after 6 s")
    assert JUDGED == []
    assert after == max(os.cpu_count() or 1, before // 2)


def test_a_command_that_timed_out_on_its_own_is_a_round_trip_not_a_lost_batch() -> None:
    # The batch came back (one command hit its own timeout): the host answered.
    results, before, after = _run_paced(_item("slow", want="", command="sleep 30"),
                                        workers=1000)
    assert results["slow"].message == ("h1 probe slow: could not observe: `sleep 30` timed "
                                       "out after 1 s on h1")
    assert after == before + 1


def test_a_host_waiting_for_its_instance_under_dr_wait_lets_another_host_be_checked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # One host at a time. h1's instance refuses connections until h2 has been checked: if
    # h1 kept its place while it waited, h2 would only start once h1's wait had run out.
    monkeypatch.setattr(engine_module, "host_gate",
                        lambda settings: HostGate(AdaptiveLimit(2, initial=1, floor=1)))
    h2_checked = threading.Event()

    class BootingLocalTarget(LocalTarget):
        def connect(self) -> None:
            if self.name == "h1" and not h2_checked.is_set():
                raise TargetError(f"{self.name}: connection refused")

    def make_target(host: HostSpec, target_of: Any) -> Target:
        return BootingLocalTarget(host.name)

    def on_result(result: CheckResult) -> None:
        if result.host == "h2":
            h2_checked.set()

    items = [dataclasses.replace(_item("a", want="ok", command="echo ok"), host=name)
             for name in ("h1", "h2")]
    hosts = {name: HostSpec(name, None, ConnectionSpec(type="local"), ()) for name in ("h1", "h2")}
    plan = Plan("site.yaml", "site.yaml", "0" * 64, DrillSpec("t"), hosts, items, {})
    engine = Engine(plan, make_target,
                    EngineSettings(workers=2, wait=30.0, backoff=Backoff(first=0.05, cap=0.05)))
    engine.add_listener(on_result)
    try:
        engine.select(items)
        engine.start()
        first, second = (engine.result(item) for item in items)
    finally:
        engine.close()
    assert second.outcome is Outcome.PASSED
    assert first.outcome is Outcome.PASSED, first.message
    assert first.attempts > 1


def test_a_small_drill_starts_a_host_thread_per_host_not_per_worker() -> None:
    item = _item("a", want="ok", command="echo ok")
    host = HostSpec("h1", None, ConnectionSpec(type="local"), ())
    plan = Plan("site.yaml", "site.yaml", "0" * 64, DrillSpec("t"), {"h1": host}, [item], {})
    engine = Engine(plan, TargetFactory(), EngineSettings(workers=100))
    try:
        engine.select([item])
        engine.start()
        assert engine.result(item).outcome is Outcome.PASSED
        assert len(engine._workers) == 1
    finally:
        engine.close()


def test_a_drill_without_ldap_checks_does_not_import_the_ldap_machinery(tmp_path: Path) -> None:
    inventory = tmp_path / "site.yaml"
    inventory.write_text("version: 1\ndrill: {name: t}\ndefaults: {connection: {type: local}}\n"
                         "hosts:\n  h1:\n    checks:\n      reach: [{target: '127.0.0.1:1'}]\n")
    probe = ("import sys, pytest\n"
             f"pytest.main(['-q', '-p', 'no:cacheprovider', '-p', 'no:hypothesispytest', "
             f"'--dr-inventory={inventory}'])\n"
             "print('ldap3 imported:', 'ldap3' in sys.modules)\n")
    ran = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert "1 failed" in ran.stdout, ran.stdout + ran.stderr
    assert ran.stdout.rstrip().endswith("ldap3 imported: False"), ran.stdout
