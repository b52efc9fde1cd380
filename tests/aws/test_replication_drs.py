"""The replication check's throttle and backlog subjects against the local DRS endpoint (every
request and response validated against botocore's DRS model): the source's write rate from
scripted disk counters, DRS's bandwidthThrottling (GetReplicationConfiguration) and
backloggedStorageBytes (DescribeSourceServers) through the recovery host's AwsHostTarget."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_drcheck.aws.run import AwsHostTarget, AwsOptions
from pytest_drcheck.checks.base import CheckContext
from pytest_drcheck.checks.registry import get
from pytest_drcheck.engine import EngineSettings
from pytest_drcheck.inventory import load_plan
from pytest_drcheck.model import CouldNotObserve, Observation, Outcome, PlanItem
from pytest_drcheck.runtime import DrillRun
from pytest_drcheck.targets.base import Target
from tests.aws.conftest import Drill, write_inventory
from tests.aws.fakeaws import FakeAws
from tests.aws.test_drill_aws import outcomes, run
from tests.checks.test_replication import Source, per_second

CHECK = get("replication")
# 11.125 MiB/s = 93.32 Mbit/s.
SOURCE_RATE = 11.125


def replicated(fake: FakeAws, sid: str, *backlogs: int) -> None:
    """The source server's disks as DescribeSourceServers lists them, with these backlogs."""
    fake.source_servers[sid]["dataReplicationInfo"]["replicatedDisks"] = [
        {"deviceName": f"/dev/sd{chr(97 + n)}", "totalStorageBytes": 100_000_000_000,
         "replicatedStorageBytes": 100_000_000_000, "rescannedStorageBytes": 0,
         "backloggedStorageBytes": backlog} for n, backlog in enumerate(backlogs)]


def configure(fake: FakeAws, sid: str, throttle: int) -> None:
    fake.replication_configurations[sid] = {
        "sourceServerID": sid, "name": "default", "bandwidthThrottling": throttle,
        "stagingAreaSubnetId": "subnet-0123456789abcdef0", "createPublicIP": False,
        "dataPlaneRouting": "PRIVATE_IP", "useDedicatedReplicationServer": False}


class Checked:
    """A drill run of the inventory, its replication items, the sources' scripted counters."""

    def __init__(self, drill_run: DrillRun, sources: dict[str, Target]) -> None:
        self.run = drill_run
        self.sources = sources

    def target_of(self, name: str) -> Target:
        return self.sources.get(name) or self.run.engine.target(name)

    def item(self, subject: str) -> PlanItem:
        return next(i for i in self.run.plan.items
                    if i.check == "replication" and i.subject == subject)

    def evaluate(self, subject: str) -> Observation:
        return CHECK.evaluate(CheckContext(self.item(subject), self.sources["src01"], [], 30.0,
                                           self.target_of, command_timeout=10.0))


@pytest.fixture
def checked(tmp_path: Path, drill: Drill, fake: FakeAws) -> Iterator[Any]:
    """checked(hosts yaml) -> Checked (closed at the end)."""
    runs: list[DrillRun] = []

    def make(hosts: str, rate: float = SOURCE_RATE) -> Checked:
        write_inventory(tmp_path / "site.yaml", fake, hosts)
        drill_run = DrillRun(load_plan(tmp_path / "site.yaml"), EngineSettings())
        runs.append(drill_run)
        drill_run.attach_aws(AwsOptions())
        return Checked(drill_run, {"src01": Source("src01", per_second(rate))})

    yield make
    for drill_run in runs:
        drill_run.close()


def linked(sid: str) -> str:
    return f"""\
        app01: {{drs: {{source_server_id: {sid}}}, source: src01}}
        src01:
          address: 192.0.2.71
          connection: {{type: ssh}}
          checks: {{replication: [{{link: 1Gbit/s, window: 1s}}]}}
        """


def test_the_inventory_links_the_source_through_its_drs_recovery_host(
        checked: Any, drill: Drill) -> None:
    host = drill.add("app01")
    case = checked(linked(host.sid))
    subjects = {i.subject: i for i in case.run.plan.items if i.check == "replication"}
    assert set(subjects) == {"link", "throttle", "backlog"}
    assert subjects["throttle"].params["linked_by"] == {"src01": ("app01",)}
    assert isinstance(case.run.engine.target("app01"), AwsHostTarget)


def test_a_drs_throttle_below_the_write_rate_fails_naming_both_figures(
        checked: Any, drill: Drill, fake: FakeAws) -> None:
    host = drill.add("app01")
    configure(fake, host.sid, 50)
    case = checked(linked(host.sid))
    observation = case.evaluate("throttle")
    assert observation.outcome is Outcome.FAILED
    assert observation.reason == (
        "DRS throttles replication to 50 Mbit/s, below the 93.32 Mbit/s the sources write on "
        "average over 1.0 s; replication lags and the RPO grows")
    assert observation.observed.startswith(
        f"throttle 50 Mbit/s (DRS source server {host.sid}); the sources write 93.32 Mbit/s")
    # The link (1 Gbit/s) carries it: its own subject passes.
    assert case.evaluate("link").outcome is Outcome.PASSED
    assert ("drs", "GetReplicationConfiguration") in fake.calls


def test_green_drs_unthrottled_and_above_the_rate(checked: Any, drill: Drill,
                                                  fake: FakeAws) -> None:
    host = drill.add("app01")
    configure(fake, host.sid, 0)  # DRS's 0: not throttled
    replicated(fake, host.sid, 0, 0)
    case = checked(linked(host.sid))
    observation = case.evaluate("throttle")
    assert observation.outcome is Outcome.PASSED, observation.reason
    assert observation.observed == (
        f"throttle none (DRS source server {host.sid}: not throttled); the sources write "
        "93.32 Mbit/s on average over 1.0 s")
    backlog = case.evaluate("backlog")
    assert backlog.outcome is Outcome.PASSED, backlog.reason
    assert backlog.observed.startswith("backlog 0 B to 0 B over ")
    assert backlog.observed.endswith(f" s (unchanged) (DRS source server {host.sid})")
    configure(fake, host.sid, 200)
    fresh = checked(linked(host.sid))  # a new run: the configuration is read once per run
    assert fresh.evaluate("throttle").outcome is Outcome.PASSED


def growing_backlog(fake: FakeAws, sid: str, *reads: tuple[int, ...]) -> list[int]:
    """Each DescribeSourceServers of the server answers the next disks' backlogs."""
    left = list(reads)
    seen: list[int] = []

    def on_call(operation: str, body: dict[str, Any]) -> None:
        if operation == "DescribeSourceServers" and left:
            backlogs = left.pop(0) if len(left) > 1 else left[0]
            replicated(fake, sid, *backlogs)
            seen.append(sum(backlogs))

    fake.on_drs_call = on_call
    return seen


def test_a_growing_drs_backlog_fails_with_its_rate(checked: Any, drill: Drill,
                                                   fake: FakeAws) -> None:
    host = drill.add("app01")
    # Two disks: 1.2 GB then 1.5 GB in all.
    seen = growing_backlog(fake, host.sid, (1_000_000_000, 200_000_000),
                           (1_100_000_000, 400_000_000))
    observation = checked(linked(host.sid)).evaluate("backlog")
    assert seen == [1_200_000_000, 1_500_000_000]
    assert observation.outcome is Outcome.FAILED
    elapsed = observation.details["elapsed_s"]
    assert elapsed >= 1.0  # a window (1 s) from the middle of one read to the next
    shown = re.fullmatch(
        r"DRS's replication backlog of src01 grew from 1\.20 GB to 1\.50 GB over ([0-9.]+) s "
        r"\(\+([0-9.]+) MB/s, ([0-9.]+) Mbit/s\): replication is falling behind and the RPO "
        r"grows", observation.reason)
    assert shown is not None, observation.reason
    assert float(shown.group(1)) == pytest.approx(elapsed, abs=0.05)
    assert float(shown.group(2)) == pytest.approx(300 / elapsed, rel=1e-3)
    assert float(shown.group(3)) == pytest.approx(8 * 300 / elapsed, rel=1e-3)
    assert observation.details["backlog"]["src01"]["origin"] == f"DRS source server {host.sid}"


def test_a_shrinking_drs_backlog_passes(checked: Any, drill: Drill, fake: FakeAws) -> None:
    host = drill.add("app01")
    growing_backlog(fake, host.sid, (1_500_000_000,), (1_200_000_000,))
    observation = checked(linked(host.sid)).evaluate("backlog")
    assert observation.outcome is Outcome.PASSED, observation.reason
    assert observation.observed.startswith("backlog 1.50 GB to 1.20 GB over ")
    assert observation.details["backlog"]["src01"]["growth_bytes_s"] < 0


def test_a_drs_api_error_is_could_not_observe_never_a_pass(checked: Any, drill: Drill,
                                                           fake: FakeAws) -> None:
    host = drill.add("app01")
    # No replication configuration: DRS answers ResourceNotFoundException.
    case = checked(linked(host.sid))
    with pytest.raises(CouldNotObserve) as raised:
        case.evaluate("throttle")
    assert str(raised.value) == (
        "cannot read the replication throttle of src01 through app01: "
        "GetReplicationConfiguration failed: ResourceNotFoundException: source server not "
        "found")
    # Disks DRS lists without a backlog figure (replication not started yet).
    fake.source_servers[host.sid]["dataReplicationInfo"]["dataReplicationState"] = "INITIATING"
    with pytest.raises(CouldNotObserve) as raised:
        case.evaluate("backlog")
    assert str(raised.value) == (
        "cannot read the replication backlog of src01 through app01: DRS reports no "
        f"replication backlog for source server {host.sid} (no replicated disk states "
        "backloggedStorageBytes; replication state INITIATING)")
    # The disk counters are still judged on their own.
    assert case.evaluate("link").outcome is Outcome.PASSED


def test_a_source_server_drs_does_not_know(checked: Any, drill: Drill, fake: FakeAws) -> None:
    drill.add("app01")
    case = checked(linked("s-00000000000000fff"))
    with pytest.raises(CouldNotObserve, match=(
            "cannot read the replication backlog of src01 through app01: DRS source server "
            "s-00000000000000fff not found")):
        case.evaluate("backlog")


def test_a_recovery_host_without_a_source_server_id(checked: Any, drill: Drill) -> None:
    host = drill.add("app01")
    case = checked(f"""\
        app01: {{ec2: {{instance_id: {host.instance_id}}}, source: src01}}
        src01:
          address: 192.0.2.71
          connection: {{type: ssh}}
          checks: {{replication: [{{link: 1Gbit/s, window: 1s}}]}}
        """)
    for subject, what in (("throttle", "throttle"), ("backlog", "backlog")):
        with pytest.raises(CouldNotObserve) as raised:
            case.evaluate(subject)
        assert str(raised.value) == (
            f"cannot read the replication {what} of src01 through app01: app01 is found "
            "through ec2:, which does not name its DRS source server: add drs: "
            "{source_server_id: ...} to it")


def test_without_drs_the_check_is_as_before(checked: Any) -> None:
    case = checked("""\
        app01: {address: 10.0.0.1, source: src01, connection: {type: ssh}}
        src01:
          address: 192.0.2.71
          connection: {type: ssh}
          checks: {replication: [{link: 1Gbit/s, window: 1s}]}
        """)
    assert [i.subject for i in case.run.plan.items if i.check == "replication"] == ["link"]


def test_a_drill_shows_each_subject_on_its_own(pytester: pytest.Pytester, drill: Drill,
                                                fake: FakeAws) -> None:
    # The source is this machine (read through the local connection): whatever it writes,
    # a 100 Gbit/s link and an unthrottled DRS carry it, and DRS's backlog stands still.
    host = drill.add("app01")
    other = drill.add("app02")
    configure(fake, host.sid, 0)
    replicated(fake, host.sid, 0)
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01: {{drs: {{source_server_id: {host.sid}}}, source: src01}}
        app02: {{ec2: {{instance_id: {other.instance_id}}}, source: src02}}
        src01:
          connection: {{type: local}}
          checks: {{replication: [{{link: 100Gbit/s, window: 1s, sources: [src01]}}]}}
        src02:
          connection: {{type: local}}
          checks: {{replication: [{{link: 100Gbit/s, window: 1s, sources: [src02]}}]}}
        """)
    result = run(pytester)
    assert outcomes(result) == {
        "site.yaml::src01::replication[link]": "PASSED",
        "site.yaml::src01::replication[throttle]": "PASSED",
        "site.yaml::src01::replication[backlog]": "PASSED",
        "site.yaml::src02::replication[link]": "PASSED",
        # app02 is found through ec2: DRS's settings of src02 cannot be read.
        "site.yaml::src02::replication[throttle]": "ERROR",
        "site.yaml::src02::replication[backlog]": "ERROR",
    }
    result.stdout.fnmatch_lines(["*cannot read the replication throttle of src02 through "
                                 "app02: app02 is found through ec2:, which does not name its "
                                 "DRS source server*"])
