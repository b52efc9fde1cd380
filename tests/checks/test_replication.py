"""replication: the sources' write rates from /proc/diskstats, summed, against the link; with
sources linked to DRS, its throttle and backlog (through the ReplicationSettings seam)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_drcheck.checks.base import CheckContext, ExpansionError
from pytest_drcheck.checks.replication import (
    ReplicationCheck,
    parse_readings,
    write_rate,
)
from pytest_drcheck.checks.replication_service import (
    BacklogGrowth,
    format_bytes,
    judge_backlog,
)
from pytest_drcheck.checks.replication_settings import Backlog, Throttle
from pytest_drcheck.inventory import load_plan
from pytest_drcheck.model import CouldNotObserve, Location, Outcome, PlanItem, freeze
from pytest_drcheck.targets.base import CommandResult, Target, TargetError
from pytest_drcheck.targets.local import LocalTarget
from pytest_drcheck.targets.readonly import DISKSTATS_READ, ReadOnlyTarget

CHECK = ReplicationCheck()
MIB_SECTORS = 2048  # 1 MiB in 512-byte sectors


def diskstats(uptime: float, sda: int, sda1: int = 0, loop0: int = 0) -> str:
    def line(major: int, minor: int, name: str, written: int) -> str:
        return f" {major} {minor} {name} 10 0 80 5 7 0 {written} 9 0 12 14 0 0 0 0 0 0\n"

    return (f"{uptime:.2f} 400.00\n" + line(8, 0, "sda", sda) + line(8, 1, "sda1", sda1)
            + line(7, 0, "loop0", loop0))


def sampled(*readings: str) -> str:
    return "".join(r + "---\n" for r in readings)


def test_average_and_peak_over_a_window() -> None:
    # 1 MiB in the first second, 2 MiB in the next: 1.5 MiB/s average, 2 MiB/s peak.
    readings = parse_readings(sampled(diskstats(100.0, 0, 0, 999), diskstats(
        101.0, MIB_SECTORS, MIB_SECTORS, 5000), diskstats(102.0, 3 * MIB_SECTORS)))
    rate = write_rate("src01", readings, ())
    assert rate.devices == ("sda",)  # the partition and the loop device write the same data
    assert rate.average_bps == 1.5 * 2 ** 20
    assert rate.peak_bps == 2 * 2 ** 20
    assert rate.basis == "over 2.0 s"


def test_counters_since_boot_give_an_average_only() -> None:
    rate = write_rate("src01", parse_readings(diskstats(7200.0, 7200 * MIB_SECTORS)), ())
    assert (rate.average_bps, rate.peak_bps, rate.basis) == (2 ** 20, None, "since boot (2.0 h)")


def test_named_devices_are_counted_instead() -> None:
    readings = parse_readings(sampled(diskstats(10.0, 0, loop0=0),
                                      diskstats(12.0, MIB_SECTORS, loop0=4 * MIB_SECTORS)))
    assert write_rate("src01", readings, ("loop0",)).average_bps == 2 * 2 ** 20
    assert write_rate("src01", readings, ("loop*",)).average_bps == 2 * 2 ** 20


def test_no_counted_device_is_could_not_observe() -> None:
    with pytest.raises(CouldNotObserve, match="src01 has none of nvme9n1 in /proc/diskstats "
                                              r"\(it lists loop0, sda, sda1\)"):
        write_rate("src01", parse_readings(diskstats(1.0, 0)), ("nvme9n1",))


class Source(LocalTarget):
    """A source whose disk counters are given (the sampler's reading of them)."""

    def __init__(self, name: str, output: str, status: int = 0) -> None:
        super().__init__(name)
        self.output, self.status = output, status
        self.ran: list[str] = []

    def run(self, command: str, timeout: float) -> CommandResult:
        self.ran.append(command)
        return CommandResult(command, self.status, self.output, "")


def item(**entry: object) -> PlanItem:
    (subject,) = CHECK.expand({"link": "100Mbit/s", **entry,
                               "host_context": {"sources": ["src01", "src02"]}}, {})
    return PlanItem("app01", "replication", subject.name, freeze(subject.params),
                    Location("site.yaml", 1, "hosts.app01.checks.replication[0]"), 30.0)


def context(plan_item: PlanItem, sources: dict[str, Target]) -> CheckContext:
    return CheckContext(plan_item, LocalTarget("app01"), [], 30.0, lambda n: sources[n],
                        command_timeout=10.0)


def per_second(mib: float) -> str:
    return sampled(diskstats(50.0, 0), diskstats(51.0, round(mib * MIB_SECTORS)))


def test_the_sum_of_the_sources_against_the_link() -> None:
    # 5 MiB/s + 3 MiB/s = 8 MiB/s = 67.1 Mbit/s < 100 Mbit/s.
    src01, src02 = Source("src01", per_second(5)), Source("src02", per_second(3))
    observation = CHECK.evaluate(context(item(window="1s"), {
        "src01": ReadOnlyTarget(src01), "src02": ReadOnlyTarget(src02)}))
    assert observation.outcome is Outcome.PASSED, observation.reason
    assert observation.details["average_mbit_s"] == pytest.approx(8 * 2 ** 20 * 8 / 1e6,
                                                                  abs=1e-4)
    assert observation.observed.startswith(
        "writes 67.11 Mbit/s on average over 1 s, 67.11 Mbit/s at peak across 2 source(s) "
        "(src01 41.94 (peak 41.94), src02 25.17 (peak 25.17)) against a 100 Mbit/s link; "
        "with headroom x1.3 it needs 87.24 Mbit/s")
    assert src01.ran[0].startswith("n=0; while [ $n -lt 2 ]; do cat /proc/uptime")


def test_a_link_below_the_average_fails_naming_both_figures() -> None:
    observation = CHECK.evaluate(context(item(window="1s", link="50Mbit/s"), {
        "src01": Source("src01", per_second(5)), "src02": Source("src02", per_second(3))}))
    assert observation.outcome is Outcome.FAILED
    assert observation.reason == (
        "the link is too small: sources write 67.11 Mbit/s on average over 1 s, the link "
        "carries 50 Mbit/s; replication lags and the RPO grows")


def test_since_boot_reads_once() -> None:
    src = Source("src01", diskstats(3600.0, 3600 * MIB_SECTORS))
    observation = CHECK.evaluate(context(item(window="boot", sources=["src01"]),
                                         {"src01": src}))
    assert src.ran == [DISKSTATS_READ]
    assert "on average since boot (1.0 h)" in observation.observed
    assert observation.details["peak_mbit_s"] is None


def test_an_unreachable_source_is_could_not_observe() -> None:
    class Down(LocalTarget):
        def connect(self) -> None:
            raise TargetError("connection timed out after 5 s")

    with pytest.raises(CouldNotObserve, match="cannot read source src02's disk counters: "
                                              "connection timed out after 5 s"):
        CHECK.evaluate(context(item(window="1s"), {
            "src01": Source("src01", per_second(1)), "src02": Down("src02")}))


def test_a_failed_read_is_could_not_observe() -> None:
    with pytest.raises(CouldNotObserve, match="failed on src01 \\(exit 1\\)"):
        CHECK.evaluate(context(item(window="1s", sources=["src01"]),
                               {"src01": Source("src01", "", status=1)}))


def test_the_real_sampler_reads_this_machine_through_the_read_only_target() -> None:
    observation = CHECK.evaluate(context(item(window="2s", sources=["src01"], link=100000), {
        "src01": ReadOnlyTarget(LocalTarget("src01"))}))
    details = observation.details
    assert observation.outcome is Outcome.PASSED, observation.reason
    assert details["basis"] == "window 2 s"
    (measured,) = details["sources"].values()
    assert measured["devices"]  # this machine's whole disks
    assert 0 <= measured["average_bytes_s"] <= measured["peak_bytes_s"]


@pytest.mark.parametrize(("entry", "message"), [
    ({"link": "100MB/s"}, "is not a bandwidth"),
    ({"link": "1Gbit/s", "window": "10m"}, "the window must be 1s to 300s"),
])
def test_entry_mistakes(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ExpansionError, match=message):
        CHECK.expand({**entry, "host_context": {"sources": ["src01"]}}, {})


def test_the_inventory_sources_are_measured_by_default(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("""
version: 1
drill: {name: d}
hosts:
  app01:
    address: 10.0.0.1
    source: {address: 192.0.2.1}
    checks: {replication: [{link: 1Gbit/s}]}
  app02: {address: 10.0.0.2, source: db-src}
  db-src: {address: 192.0.2.2}
""")
    (only,) = load_plan(path).items
    assert only.params["sources"] == ("app01.source", "db-src")
    assert (only.params["link_mbit"], only.params["window_s"]) == (1000.0, 10.0)


# --- throttle and backlog: what the replication service says (the ReplicationSettings seam) --

SID = "DRS source server s-00000000000000001"


class Linked(LocalTarget):
    """A recovery host's target that reads the replication service (as the aws extra's does):
    a throttle, and a backlog per read (the last one repeats)."""

    def __init__(self, name: str = "app01", throttle: float | None = 50.0,
                 backlogs: tuple[int, ...] = (0,), error: str = "",
                 origin: str = SID) -> None:
        super().__init__(name)
        self.throttle, self.backlogs = throttle, list(backlogs)
        self.error, self.origin = error, origin
        self.reads = 0

    def replication_throttle(self, timeout: float) -> Throttle:
        if self.error:
            raise TargetError(self.error)
        return Throttle(self.throttle, self.origin, "DRS")

    def replication_backlog(self, timeout: float) -> Backlog:
        if self.error:
            raise TargetError(self.error)
        self.reads += 1
        value = self.backlogs.pop(0) if len(self.backlogs) > 1 else self.backlogs[0]
        return Backlog(value, self.origin, "DRS")


def linked_items(sources: tuple[str, ...] = ("src01",), **entry: object) -> dict[str, PlanItem]:
    linked_by = {"src01": ["app01"], "src02": ["app02"]}
    subjects = CHECK.expand({"link": "1Gbit/s", "window": "1s", "sources": list(sources),
                             **entry, "host_context": {"linked_by": linked_by}}, {})
    return {s.name: PlanItem("src01", "replication", s.name, freeze(s.params),
                             Location("site.yaml", 1, "hosts.src01.checks.replication[0]"),
                             30.0) for s in subjects}


def test_linked_sources_add_throttle_and_backlog_subjects() -> None:
    items = linked_items(window="boot")
    assert list(items) == ["link", "throttle", "backlog"]
    # The link subject is exactly as without DRS (its params are unchanged).
    assert "linked_by" not in items["link"].params
    assert items["throttle"].params["linked_by"] == {"src01": ("app01",)}
    assert items["backlog"].params["window_s"] == 10.0  # since boot: the default window
    assert CHECK.needs_connection(items["link"]) and CHECK.needs_connection(items["throttle"])
    assert not CHECK.needs_connection(items["backlog"])  # read from the runner alone
    # Sources no recovery host links: the link subject only, as before.
    (only,) = CHECK.expand({"link": "1Gbit/s", "host_context": {
        "sources": ["src01"], "linked_by": {"src09": ["app09"]}}}, {})
    assert only.name == "link"


def linked_context(plan_item: PlanItem, targets: dict[str, Target]) -> CheckContext:
    return CheckContext(plan_item, targets["src01"], [], 30.0, lambda n: targets[n],
                        command_timeout=10.0)


# 11.125 MiB/s = 93.32 Mbit/s.
SOURCE_RATE = 11.125


def test_a_throttle_below_the_write_rate_fails_naming_both_figures() -> None:
    items = linked_items()
    targets: dict[str, Target] = {"src01": Source("src01", per_second(SOURCE_RATE)),
                                  "app01": Linked(throttle=50.0)}
    observation = CHECK.evaluate(linked_context(items["throttle"], targets))
    assert observation.outcome is Outcome.FAILED
    assert observation.reason == (
        "DRS throttles replication to 50 Mbit/s, below the 93.32 Mbit/s the sources write on "
        "average over 1.0 s; replication lags and the RPO grows")
    assert observation.observed == (
        f"throttle 50 Mbit/s ({SID}); the sources write 93.32 Mbit/s on average over 1.0 s")
    assert observation.details["throttles"]["src01"] == {
        "throttle_mbit_s": 50.0, "origin": SID, "average_mbit_s": 93.3233,
        "verdict": "too low"}
    # The link itself is big enough: its own subject passes.
    assert CHECK.evaluate(linked_context(items["link"], targets)).outcome is Outcome.PASSED


def test_a_throttle_above_the_write_rate_passes_and_says_the_headroom() -> None:
    items = linked_items()
    targets: dict[str, Target] = {"src01": Source("src01", per_second(SOURCE_RATE)),
                                  "app01": Linked(throttle=100.0)}
    observation = CHECK.evaluate(linked_context(items["throttle"], targets))
    assert observation.outcome is Outcome.PASSED, observation.reason
    assert observation.observed == (
        f"throttle 100 Mbit/s ({SID}); the sources write 93.32 Mbit/s on average over 1.0 s; "
        "with headroom x1.3 src01 needs 121.32 Mbit/s")
    assert observation.details["throttles"]["src01"]["verdict"] == "tight"


def test_drs_s_zero_is_not_throttled() -> None:
    targets: dict[str, Target] = {"src01": Source("src01", per_second(SOURCE_RATE)),
                                  "app01": Linked(throttle=None)}
    observation = CHECK.evaluate(linked_context(linked_items()["throttle"], targets))
    assert observation.outcome is Outcome.PASSED, observation.reason
    assert observation.observed == (
        f"throttle none ({SID}: not throttled); the sources write 93.32 Mbit/s on average "
        "over 1.0 s")


def test_each_source_against_its_own_throttle() -> None:
    # src01 writes 5 MiB/s (41.94 Mbit/s) unthrottled; src02 3 MiB/s (25.17) throttled to 10.
    items = linked_items(("src01", "src02"))
    targets: dict[str, Target] = {
        "src01": Source("src01", per_second(5)), "src02": Source("src02", per_second(3)),
        "app01": Linked(throttle=None),
        "app02": Linked("app02", throttle=10.0, origin="DRS source server s-00000000000000002")}
    observation = CHECK.evaluate(linked_context(items["throttle"], targets))
    assert observation.outcome is Outcome.FAILED
    assert observation.reason == (
        "DRS throttles src02's replication to 10 Mbit/s, below the 25.17 Mbit/s it writes on "
        "average over 1 s; replication lags and the RPO grows")
    assert observation.details["throttle_mbit_s"] is None  # src01 is not throttled
    # Both throttled, in all below what they write: the totals, each throttle named.
    targets["app01"] = Linked(throttle=30.0)
    observation = CHECK.evaluate(linked_context(items["throttle"], targets))
    assert observation.reason == (
        "DRS throttles replication to 40 Mbit/s (src01 30, src02 10), below the 67.11 Mbit/s "
        "the sources write on average over 1 s; replication lags and the RPO grows")
    assert observation.details["throttle_mbit_s"] == 40.0


def test_an_unreadable_throttle_is_could_not_observe_and_leaves_the_link_alone() -> None:
    items = linked_items()
    targets: dict[str, Target] = {
        "src01": Source("src01", per_second(1)),
        "app01": Linked(error="GetReplicationConfiguration failed: AccessDeniedException: no")}
    with pytest.raises(CouldNotObserve) as raised:
        CHECK.evaluate(linked_context(items["throttle"], targets))
    assert str(raised.value) == (
        "cannot read the replication throttle of src01 through app01: "
        "GetReplicationConfiguration failed: AccessDeniedException: no")
    with pytest.raises(CouldNotObserve, match="cannot read the replication backlog of src01 "
                                              "through app01: GetReplicationConfiguration"):
        CHECK.evaluate(linked_context(items["backlog"], targets))
    assert CHECK.evaluate(linked_context(items["link"], targets)).outcome is Outcome.PASSED


def test_both_causes_are_named_when_neither_side_can_be_read() -> None:
    targets: dict[str, Target] = {"src01": Source("src01", "", status=1),
                                  "app01": Linked(error="DRS timed out")}
    with pytest.raises(CouldNotObserve) as raised:
        CHECK.evaluate(linked_context(linked_items()["throttle"], targets))
    assert str(raised.value).startswith(
        "cannot read the replication throttle of src01 through app01: DRS timed out; ")
    assert "failed on src01 (exit 1)" in str(raised.value)


def test_a_source_no_recovery_host_links_is_could_not_observe() -> None:
    # src02 is listed, but no recovery host found through DRS names it as its source.
    subjects = CHECK.expand({"link": "1Gbit/s", "window": "1s", "sources": ["src01", "src02"],
                             "host_context": {"linked_by": {"src01": ["app01"]}}}, {})
    throttle = next(s for s in subjects if s.name == "throttle")
    plan_item = PlanItem("src01", "replication", "throttle", freeze(throttle.params),
                         Location("site.yaml", 1, "x"), 30.0)
    targets: dict[str, Target] = {"src01": Source("src01", per_second(1)),
                                  "src02": Source("src02", per_second(1)), "app01": Linked()}
    with pytest.raises(CouldNotObserve, match=(
            "cannot read the replication throttle of src02: no recovery host whose source: "
            "names it is found through the replication service")):
        CHECK.evaluate(linked_context(plan_item, targets))


def test_a_recovery_host_whose_target_cannot_read_the_service() -> None:
    targets: dict[str, Target] = {"src01": Source("src01", per_second(1)),
                                  "app01": LocalTarget("app01")}
    with pytest.raises(CouldNotObserve, match="through app01: app01: its target does not read "
                                              "the replication service"):
        CHECK.evaluate(linked_context(linked_items()["throttle"], targets))


def backlog_verdict(before: int, after: int, elapsed: float = 10.0) -> tuple[Outcome, str, str]:
    observation = judge_backlog("the replication backlog not growing over 10 s", BacklogGrowth(
        {"src01": Backlog(before, SID, "DRS")}, {"src01": Backlog(after, SID, "DRS")}, elapsed))
    return observation.outcome, observation.observed, observation.reason


def test_a_growing_backlog_fails_with_its_rate() -> None:
    # +300 MB in 10 s: 30 MB/s = 240 Mbit/s more written than replicated.
    outcome, observed, reason = backlog_verdict(1_200_000_000, 1_500_000_000)
    assert outcome is Outcome.FAILED
    assert reason == (
        "DRS's replication backlog of src01 grew from 1.20 GB to 1.50 GB over 10.0 s "
        "(+30.00 MB/s, 240.00 Mbit/s): replication is falling behind and the RPO grows")
    assert observed == ("backlog 1.20 GB to 1.50 GB over 10.0 s (+30.00 MB/s, 240.00 Mbit/s) "
                        f"({SID})")


def test_a_shrinking_or_steady_backlog_passes() -> None:
    outcome, observed, _ = backlog_verdict(1_500_000_000, 1_200_000_000)
    assert (outcome, observed) == (Outcome.PASSED, (
        f"backlog 1.50 GB to 1.20 GB over 10.0 s (-30.00 MB/s, 240.00 Mbit/s) ({SID})"))
    outcome, observed, _ = backlog_verdict(0, 0)
    assert (outcome, observed) == (Outcome.PASSED,
                                   f"backlog 0 B to 0 B over 10.0 s (unchanged) ({SID})")


def test_the_backlog_is_read_twice_across_the_window() -> None:
    items = linked_items(("src01", "src02"))
    app01, app02 = Linked(backlogs=(5_000_000, 4_000_000)), Linked("app02", backlogs=(
        1_000, 2_000_000), origin="DRS source server s-00000000000000002")
    # The backlog is read from the service only: the sources' counters are not touched.
    src01 = Source("src01", "")
    observation = CHECK.evaluate(linked_context(items["backlog"], {
        "src01": src01, "app01": app01, "app02": app02}))
    assert (app01.reads, app02.reads, src01.ran) == (2, 2, [])
    assert observation.outcome is Outcome.FAILED
    elapsed = observation.details["elapsed_s"]
    assert elapsed >= 0.9  # from the middle of one read to the middle of the next
    assert observation.details["backlog"]["src02"] == {
        "before_bytes": 1000, "after_bytes": 2_000_000, "origin":
        "DRS source server s-00000000000000002",
        "growth_bytes_s": pytest.approx(1_999_000 / elapsed, rel=1e-3)}
    assert observation.reason.startswith(
        f"DRS's replication backlog of src02 grew from 1.00 kB to 2.00 MB over {elapsed:.1f} s")
    assert "of src01" not in observation.reason  # src01's shrank


def test_a_backlog_window_that_does_not_fit_the_timeout() -> None:
    plan_item = linked_items(window="60s")["backlog"]
    with pytest.raises(CouldNotObserve, match="a 60 s window does not fit in the check's 30 s "
                                              "timeout"):
        CHECK.evaluate(linked_context(plan_item, {"src01": LocalTarget("src01"),
                                                  "app01": Linked()}))


@pytest.mark.parametrize(("count", "text"), [(0, "0 B"), (999, "999 B"), (1500, "1.50 kB"),
                                             (2_500_000, "2.50 MB"), (3e12, "3000.00 GB")])
def test_backlog_sizes_are_decimal(count: float, text: str) -> None:
    assert format_bytes(count) == text


def test_the_lab_drill_s_replication_check_is_unchanged() -> None:
    # No recovery host of the lab is found through DRS: src01 keeps its one link test.
    plan = load_plan(Path(__file__).parents[2] / "inventories" / "lab.yaml")
    assert [(i.key, dict(i.params)) for i in plan.items if i.check == "replication"] == [
        ("src01::replication[link]", {"sources": ("src01",), "link_mbit": 100.0,
                                      "window_s": 3.0, "devices": ("loop*",),
                                      "headroom": 1.3})]
