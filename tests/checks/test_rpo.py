"""rpo: measured data loss = recovery point - newest replicated beacon (source clock taken out)."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pytest_drcheck.checks.base import CheckContext, ExpansionError
from pytest_drcheck.checks.rpo import RpoCheck, format_rpo
from pytest_drcheck.inventory import InventoryError, load_plan
from pytest_drcheck.model import CouldNotObserve, Location, Outcome, PlanItem, freeze
from pytest_drcheck.recoverypoint import RecoveryPoint
from pytest_drcheck.targets.base import Stream, Target, TargetError
from pytest_drcheck.targets.local import LocalTarget
from pytest_drcheck.targets.readonly import ReadOnlyTarget

CHECK = RpoCheck()
LAUNCH = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)


LAUNCHED = RecoveryPoint(LAUNCH, "--dr-launched-at")


def item(path: Path, source: str | None = None, target_s: float = 900.0,
         **entry: str) -> PlanItem:
    (subject,) = CHECK.expand({"beacon": str(path), **entry, "host_context": {
        "source": source, "drill_rpo_s": target_s}}, {})
    return PlanItem("app01", "rpo", subject.name, freeze(subject.params),
                    Location("site.yaml", 1, "hosts.app01.checks.rpo[0]"), 20.0)


def context(plan_item: PlanItem, target: Target | None = None,
            sources: dict[str, Target] | None = None,
            launch: RecoveryPoint | None = LAUNCHED) -> CheckContext:
    """The item's command run for real on this machine (the beacon is a real file)."""
    runner = LocalTarget("app01")
    outputs = [runner.run(c, 5) for c in CHECK.commands(plan_item)]

    def target_of(name: str) -> Target:
        return (sources or {})[name]

    return CheckContext(plan_item, target or runner, outputs, 10.0, target_of,
                        command_timeout=5.0, drill_launch=launch)


def write_beacon(tmp_path: Path, moment: datetime | str) -> Path:
    path = tmp_path / "beacon"
    text = moment if isinstance(moment, str) else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    path.write_text(text + "\n")
    return path


class SkewedClock:
    """A source clock ``skew`` seconds ahead of ours, answering each newline at once."""

    def __init__(self, skew: float) -> None:
        self.skew = skew
        self.asked = 0

    def sendall(self, data: bytes) -> None:
        self.asked += data.count(b"\n")

    def settimeout(self, timeout: float | None) -> None:
        pass

    def recv(self, size: int) -> bytes:
        if not self.asked:
            raise TimeoutError
        self.asked = 0
        return f"{time.time() + self.skew:.9f}\n".encode()

    def close(self) -> None:
        pass


class SkewedSource(LocalTarget):
    def __init__(self, skew: float) -> None:
        super().__init__("src01")
        self.clock = SkewedClock(skew)
        self.processes: list[str] = []

    def open_process(self, command: str, timeout: float) -> Stream:
        self.processes.append(command)
        return self.clock


def test_rpo_is_the_recovery_point_minus_the_newest_beacon(tmp_path: Path) -> None:
    path = write_beacon(tmp_path, LAUNCH - timedelta(minutes=3, seconds=12))
    observation = CHECK.evaluate(context(item(path)))
    assert observation.outcome is Outcome.PASSED, observation.reason
    assert observation.details["rpo_s"] == 192.0
    assert observation.details["recovery_point_source"] == "--dr-launched-at"
    assert observation.observed.startswith(
        "RPO measured 3 min 12 s against a target of 15 min (newest beacon "
        "2026-12-01T09:26:48+00:00, recovery point 2026-12-01T09:30:00+00:00 from "
        "--dr-launched-at; source clock not measured (no source: on the host))")


def test_past_the_target_fails_with_the_measured_figure(tmp_path: Path) -> None:
    path = write_beacon(tmp_path, LAUNCH - timedelta(minutes=20))
    observation = CHECK.evaluate(context(item(path)))
    assert observation.outcome is Outcome.FAILED
    assert observation.reason.startswith("RPO measured 20 min against a target of 15 min")
    assert observation.details["rpo_s"] == 1200.0


def test_the_source_clock_offset_is_measured_and_taken_out(tmp_path: Path) -> None:
    # The source runs 30 s fast: its beacon says 09:28:50 when the true time was 09:28:20,
    # 100 s before the recovery point. Read as written it would be 70 s.
    path = write_beacon(tmp_path, LAUNCH - timedelta(seconds=100) + timedelta(seconds=30))
    source = SkewedSource(30.0)
    observation = CHECK.evaluate(context(item(path, source="src01"),
                                         sources={"src01": ReadOnlyTarget(source)}))
    assert observation.outcome is Outcome.PASSED, observation.reason
    assert observation.details["rpo_s"] == pytest.approx(100.0, abs=0.05)
    assert observation.details["clock_offset_s"] == pytest.approx(30.0, abs=0.05)
    assert re.search(r"src01's clock \+30\.0\d\d s \u00b10\.0\d\d s, taken out",
                     observation.observed)
    assert len(source.processes) == 1  # one sampler channel, through the read-only target


def test_a_recovery_point_the_target_knows_wins_over_the_launch_time(tmp_path: Path) -> None:
    class DrsInstance(LocalTarget):
        def recovery_point(self, timeout: float) -> RecoveryPoint | None:
            return RecoveryPoint(LAUNCH - timedelta(hours=1), "DRS point-in-time snapshot")

    path = write_beacon(tmp_path, LAUNCH - timedelta(hours=1, minutes=5))
    observation = CHECK.evaluate(context(item(path), target=DrsInstance("app01")))
    assert observation.details["rpo_s"] == 300.0
    assert observation.details["recovery_point_source"] == "DRS point-in-time snapshot"


def test_a_missing_beacon_is_could_not_observe(tmp_path: Path) -> None:
    with pytest.raises(CouldNotObserve, match=f"no replicated beacon at {tmp_path}/none on "
                                              "app01 \\(cat: .*No such file or directory\\); "
                                              "is the beacon written on the source"):
        CHECK.evaluate(context(item(tmp_path / "none")))


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-45T00:00:00Z"])
def test_a_beacon_that_is_not_a_time_is_could_not_observe(tmp_path: Path, text: str) -> None:
    path = write_beacon(tmp_path, text)
    with pytest.raises(CouldNotObserve, match=f"{path} on app01: the beacon (is empty|holds)"):
        CHECK.evaluate(context(item(path)))


def test_no_recovery_point_is_could_not_observe(tmp_path: Path) -> None:
    path = write_beacon(tmp_path, LAUNCH)
    with pytest.raises(CouldNotObserve, match="no recovery point for app01: no DRS point in "
                                              "time and no launch time; pass --dr-launched-at"):
        CHECK.evaluate(context(item(path), launch=None))


def test_a_beacon_newer_than_the_recovery_point_is_could_not_observe(tmp_path: Path) -> None:
    path = write_beacon(tmp_path, LAUNCH + timedelta(minutes=2))
    with pytest.raises(CouldNotObserve, match=r"is 2 min newer than the recovery point .*: the "
                                              r"recovery point or a clock is wrong"):
        CHECK.evaluate(context(item(path)))


def test_a_beacon_a_moment_newer_is_rounding_and_reads_as_zero(tmp_path: Path) -> None:
    path = write_beacon(tmp_path, LAUNCH + timedelta(milliseconds=300))
    observation = CHECK.evaluate(context(item(path)))
    assert observation.outcome is Outcome.PASSED
    assert observation.details["rpo_s"] == 0.0


def test_an_unreachable_source_is_could_not_observe(tmp_path: Path) -> None:
    class Down(LocalTarget):
        def connect(self) -> None:
            raise TargetError("connection refused")

    path = write_beacon(tmp_path, LAUNCH - timedelta(seconds=10))
    with pytest.raises(CouldNotObserve, match="cannot reach source src01 to measure its "
                                              "clock: connection refused"):
        CHECK.evaluate(context(item(path, source="src01"), sources={"src01": Down("src01")}))


@pytest.mark.parametrize(("seconds", "text"), [
    (0.0, "0.0 s"), (45.25, "45.2 s"), (192, "3 min 12 s"), (900, "15 min"),
    (7500, "2 h 5 min"), (7200, "2 h")])
def test_figures_read_as_auditors_write_them(seconds: float, text: str) -> None:
    assert format_rpo(seconds) == text


def test_without_a_target_the_entry_is_refused() -> None:
    with pytest.raises(ExpansionError, match=r"no RPO to compare with; set drill\.rpo"):
        CHECK.expand({"host_context": {"source": None, "drill_rpo_s": None}}, {})


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_the_inventory_gives_the_drill_rpo_and_the_source(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, """
version: 1
drill: {name: d, rpo: 15m}
hosts:
  app01:
    address: 10.0.0.1
    source: {address: 192.0.2.1}
    checks: {rpo: [{}]}
  app02:
    address: 10.0.0.2
    checks: {rpo: [{beacon: /run/beacon, max: 1m}]}
"""))
    first, second = plan.items
    assert (first.subject, first.params["max_s"], first.params["source"]) == (
        "/var/lib/drcheck/beacon", 900.0, "app01.source")
    assert (second.subject, second.params["max_s"], second.params["source"]) == (
        "/run/beacon", 60.0, None)


def test_an_rpo_entry_without_any_target_is_an_inventory_mistake(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"hosts\.app01\.checks\.rpo\[0\]: no RPO to "
                                             r"compare with; set drill\.rpo"):
        load_plan(write(tmp_path, """
version: 1
drill: {name: d}
hosts:
  app01: {address: 10.0.0.1, checks: {rpo: [{}]}}
"""))


def test_a_live_standby_is_measured_at_the_moment_its_beacon_is_read(tmp_path: Path) -> None:
    path = write_beacon(tmp_path, datetime.now(timezone.utc) - timedelta(seconds=3))
    plan_item = item(path, recovery_point="now")
    assert CHECK.commands(plan_item) == ()  # read by observe, timed, not in the batch
    # No launch time: none is needed, the read is the point.
    observation = CHECK.evaluate(context(plan_item, launch=None))
    assert observation.outcome is Outcome.PASSED, observation.reason
    assert 3.0 <= observation.details["rpo_s"] <= 3.0 + 5.0
    assert observation.details["recovery_point_source"] == (
        "the moment the beacon was read (a live standby)")
    assert observation.details["uncertainty_s"] > 0  # half the read's round trip


def test_a_stalled_live_standby_fails_once_its_beacon_is_older_than_the_target(
        tmp_path: Path) -> None:
    path = write_beacon(tmp_path, datetime.now(timezone.utc) - timedelta(seconds=90))
    observation = CHECK.evaluate(context(item(path, target_s=60.0, recovery_point="now")))
    assert observation.outcome is Outcome.FAILED
    assert re.match(r"RPO measured 1 min 3\d s against a target of 1 min", observation.reason)
