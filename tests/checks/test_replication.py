"""replication: the sources' write rates from /proc/diskstats, summed, against the link."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_drcheck.checks.base import CheckContext, ExpansionError
from pytest_drcheck.checks.replication import (
    ReplicationCheck,
    parse_readings,
    write_rate,
)
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
