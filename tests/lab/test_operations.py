"""Operations continuity against the sandbox's real daemons: clamd and bacula-fd on the
recovery instances, rsyslog on logs01, bacula-sd on backup01, all reached over the drill's own
SSH connections (the reverse probe through backup01's, the delivery search through logs01's).

Each failure mode is produced by a real change in the lab (a stopped daemon, a collector that
drops what it receives, an nftables rule in the instance) and asserted by its one-line reason.
"""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from pytest_drcheck.engine import EngineSettings
from pytest_drcheck.inventory import load_plan
from pytest_drcheck.lab import Lab
from pytest_drcheck.lab.components.bacula import DIRECTOR, director_hello
from pytest_drcheck.lab.components.syslog import RECEIVED_LOG
from pytest_drcheck.model import CheckResult, Outcome
from pytest_drcheck.runtime import DrillRun

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("drlab")]

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "lab.yaml"
OPS_CHECKS = ("agent", "logging", "backup")
INSTANCES = {"app01": "10.77.0.11", "app02": "10.77.0.12", "db01": "10.77.0.13"}
BACKUP01 = "10.77.0.41"


def drill(hosts: tuple[str, ...] = tuple(INSTANCES)) -> dict[str, CheckResult]:
    """The operations checks of the lab inventory, run as the plugin runs them."""
    plan = load_plan(INVENTORY)
    items = [i for i in plan.items if i.check in OPS_CHECKS and i.host in hosts]
    run = DrillRun(plan, EngineSettings())
    try:
        run.engine.select(items)
        run.engine.start()
        return {item.key: run.engine.result(item) for item in items}
    finally:
        run.close()


def failed(results: dict[str, CheckResult]) -> dict[str, str]:
    return {k: r.message for k, r in results.items() if r.outcome is not Outcome.PASSED}


@pytest.fixture
def healthy(lab: Lab) -> Iterator[Lab]:
    """The lab, checked green before and after a test that breaks something."""
    yield lab
    assert failed(drill(("app01",))) == {}


def test_operations_are_green_on_every_instance(lab: Lab) -> None:
    results = drill()
    assert failed(results) == {}
    assert len(results) == 10 * len(INSTANCES)
    for host, address in INSTANCES.items():
        running = results[f"{host}::agent[clamav/running]"]
        assert re.fullmatch(r"clamd running \(pid \d+; process table, no systemd\)",
                            running.observed)
        # The instance's own PID namespace: clamd is a low PID there, not the machine's.
        pid = int(running.details["pids"][0])
        assert pid < 100
        assert results[f"{host}::agent[clamav/health]"].observed == "answered 'PONG'"
        assert results[f"{host}::agent[clamav/version]"].observed.startswith("version 1.")
        assert results[f"{host}::backup[reverse]"].observed.startswith(
            f"backup01 -> {address}:9102 connected in ")
        assert results[f"{host}::backup[hello]"].observed == (
            f"bacula-fd {host}-fd answered Director {DIRECTOR} with a cram-md5 challenge")
        for via in ("tcp", "udp"):
            result = results[f"{host}::logging[central/{via}]"]
            assert result.observed.startswith("delivered within ")
            # The verifier's evidence: the line as logs01 received it, from the instance.
            assert result.details["marker"] in result.details["line"]
            assert f" {address} " in result.details["line"]
            assert 0 <= result.details["delivery_seconds"] < 10


def test_delivery_is_found_only_on_the_collector(lab: Lab) -> None:
    """The received log lives in logs01's private /run: no other host, and not the runner,
    can see it, so a pass really was a search on the collector."""
    results = drill(("app02",))
    marker = results["app02::logging[central/tcp]"].details["marker"]
    found = lab.exec("logs01", ["grep", "-F", "--", marker, RECEIVED_LOG]).stdout
    assert marker in found
    assert lab.exec("app02", ["cat", RECEIVED_LOG]).returncode != 0
    assert not Path(RECEIVED_LOG).exists()


def test_agent_stopped(healthy: Lab) -> None:
    with healthy.stopped("app01", "clamd"):
        results = drill(("app01",))
    running = results["app01::agent[clamav/running]"]
    assert running.outcome is Outcome.FAILED
    assert re.fullmatch(r"app01 agent clamav/running: expected clamav running, observed no "
                        r"clamd process \(process table, no systemd, \d+ processes\)",
                        running.message)
    health = results["app01::agent[clamav/health]"]
    assert health.outcome is Outcome.SKIPPED
    assert health.message.startswith("app01 agent clamav/health: not probed: clamav is not "
                                     "running")
    # The manager is still reachable: one fault, one failure.
    assert set(failed(results)) == {"app01::agent[clamav/running]",
                                    "app01::agent[clamav/health]"}


def test_collector_down(healthy: Lab) -> None:
    with healthy.stopped("logs01", "rsyslog"):
        results = drill(("app01",))
    assert results["app01::logging[central/tcp]"].message == (
        "app01 logging central/tcp: expected marker delivered to central within 10 s, observed "
        "10.77.0.40:514/tcp refused (collector unreachable)")
    udp = results["app01::logging[central/udp]"].message
    assert udp.startswith("app01 logging central/udp: expected marker delivered to central "
                          "within 10 s, observed not delivered: drcheck-app01-udp-")
    assert "(UDP has no handshake: arrival is the only proof), logs01 did not find it" in udp
    assert set(failed(results)) == {"app01::logging[central/tcp]",
                                    "app01::logging[central/udp]"}


def test_collector_reachable_but_discarding(healthy: Lab) -> None:
    with healthy.discarding():
        results = drill(("app01",))
    tcp = results["app01::logging[central/tcp]"]
    assert re.fullmatch(
        r"app01 logging central/tcp: expected marker delivered to central within 10 s, "
        r"observed reachable but not delivered: 10\.77\.0\.40:514/tcp accepted "
        r"drcheck-app01-tcp-\S+, logs01 did not find it in \S+ s \(\d+ searches\)",
        tcp.message)
    assert tcp.details["searches"] > 5  # polled until the deadline, not given up at once
    assert set(failed(results)) == {"app01::logging[central/tcp]",
                                    "app01::logging[central/udp]"}


def test_outbound_fine_but_reverse_blocked(healthy: Lab) -> None:
    with healthy.firewall("app01", 9102, "drop", "input", source=BACKUP01):
        results = drill(("app01",))
        # Only the backup server is blocked: the same port still answers anyone else.
        assert director_hello("10.77.0.11", 9102, DIRECTOR, 3.0).startswith("auth cram-md5")
    assert results["app01::backup[reverse]"].message == (
        "app01 backup reverse: expected backup01 -> 10.77.0.11:9102 open, observed timed out "
        "after 3 s")
    assert results["app01::backup[server]"].outcome is Outcome.PASSED
    assert results["app01::backup[server]"].observed.startswith(
        "app01 -> 10.77.0.41:9103 connected in ")
    hello = results["app01::backup[hello]"]
    assert hello.outcome is Outcome.SKIPPED
    assert hello.message.endswith("not probed: backup01 -> 10.77.0.11:9102 timed out after "
                                  "3 s (see reverse)")
    assert set(failed(results)) == {"app01::backup[reverse]", "app01::backup[hello]"}


def test_backup_agent_stopped(healthy: Lab) -> None:
    with healthy.stopped("app01", "bacula-fd"):
        results = drill(("app01",))
    assert re.fullmatch(r"app01 backup agent: expected backup agent bacula-fd running, "
                        r"observed no bacula-fd process \(process table, no systemd, \d+ "
                        r"processes\)", results["app01::backup[agent]"].message)
    assert results["app01::backup[reverse]"].message == (
        "app01 backup reverse: expected backup01 -> 10.77.0.11:9102 open, observed refused")
    assert set(failed(results)) == {"app01::backup[agent]", "app01::backup[reverse]",
                                    "app01::backup[hello]"}


def test_the_lab_drill_is_green_through_pytest(lab: Lab, tmp_path: Path) -> None:
    """The main job, as a user runs it: every check of the lab inventory, JUnit evidence."""
    xml = tmp_path / "drill.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", f"--dr-inventory={INVENTORY}", f"--junitxml={xml}",
         "-q", "-p", "no:cacheprovider", "-rfEs"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    cases = [{p.get("name"): p.get("value") for p in case.iter("property")}
             for case in ET.parse(xml).getroot().iter("testcase")]
    by_check: dict[str, list[dict[str, str | None]]] = {}
    for case in cases:
        by_check.setdefault(str(case.get("dr.check")), []).append(case)
    assert {check: len(found) for check, found in by_check.items() if check in OPS_CHECKS} == {
        "agent": 4 * len(INSTANCES), "logging": 2 * len(INSTANCES),
        "backup": 4 * len(INSTANCES)}
    for case in cases:
        assert case["dr.outcome"] == "passed", case
    for case in by_check["logging"]:
        assert str(case["dr.observed"]).startswith("delivered within ")
        datetime.fromisoformat(str(case["dr.started_at"]))
