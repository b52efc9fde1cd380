"""Operations continuity against the sandbox's real daemons: clamd and bacula-fd on the
recovery instances, rsyslog on logs01, bacula-sd on backup01, all reached over the drill's own
SSH connections (the reverse probe through backup01's, the delivery search through logs01's).

The fault matrix of the agent, logging and backup families: each fault is a real change in the
lab (a killed daemon, a collector that is down or drops what it receives, an nftables rule, a
port that accepts and closes) and asserts the exact set of tests that do not pass, their
outcomes and one-line reasons; every other operations test of the host, and of another
instance, stays green.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
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
from pytest_drcheck.lab.commands import CLEAN_ENV
from pytest_drcheck.lab.components.bacula import DIRECTOR, director_hello
from pytest_drcheck.lab.components.syslog import RECEIVED_LOG
from pytest_drcheck.lab.realhost import nsenter
from pytest_drcheck.model import CheckResult, Outcome
from pytest_drcheck.runtime import DrillRun

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("drlab")]

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "lab.yaml"
OPS_CHECKS = ("agent", "logging", "backup")
INSTANCES = {"app01": "10.77.0.11", "app02": "10.77.0.12", "db01": "10.77.0.13"}
BACKUP01 = "10.77.0.41"


def drill(hosts: tuple[str, ...] = tuple(INSTANCES),
          checks: tuple[str, ...] = OPS_CHECKS) -> dict[str, CheckResult]:
    """The operations checks of the lab inventory, run as the plugin runs them."""
    plan = load_plan(INVENTORY)
    items = [i for i in plan.items if i.check in checks and i.host in hosts]
    run = DrillRun(plan, EngineSettings())
    try:
        run.engine.select(items)
        run.engine.start()
        return {item.key: run.engine.result(item) for item in items}
    finally:
        run.close()


def failed(results: dict[str, CheckResult]) -> dict[str, str]:
    return {k: r.message for k, r in results.items() if r.outcome is not Outcome.PASSED}


def not_passed(results: dict[str, CheckResult]) -> dict[str, tuple[Outcome, str]]:
    """Every test that did not pass: (outcome, one-line message)."""
    return {k: (r.outcome, r.message) for k, r in results.items()
            if r.outcome is not Outcome.PASSED}


def assert_one_line(results: dict[str, CheckResult]) -> None:
    for result in results.values():
        assert "\n" not in result.message and "Traceback" not in result.message, result


# Stands in for a daemon: a process named like it (its comm), listening on its port, that
# accepts every connection and closes it at once without a word.
ACCEPT_AND_CLOSE = """
import socket, sys
with open("/proc/self/comm", "w") as comm:
    comm.write(sys.argv[1])
server = socket.create_server((sys.argv[2], int(sys.argv[3])))
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    conn.close()
"""


@contextlib.contextmanager
def accepting_and_closing(lab: Lab, host: str, daemon: str, address: str,
                          port: int) -> Iterator[None]:
    """``daemon`` on ``host`` replaced, until the block ends, by a process of the same name
    whose port accepts and closes every connection."""
    with lab.stopped(host, daemon):
        init = lab.state().hosts[host].init
        assert init is not None
        child = subprocess.Popen(
            [*nsenter(init), sys.executable, "-c", ACCEPT_AND_CLOSE, daemon, address,
             str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True, env=dict(CLEAN_ENV), cwd="/")
        try:
            assert child.stdout is not None
            ready, _, _ = select.select([child.stdout], [], [], 15.0)
            assert ready and child.stdout.readline().strip() == "ready", child.poll()
            yield
        finally:
            # Its own process group, which spans the host's PID namespace: nsenter and the
            # stand-in go together, before the real daemon starts again on that port.
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate(timeout=10)


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


def test_agent_killed(healthy: Lab) -> None:
    with healthy.stopped("app01", "clamd"):
        results = drill(("app01", "app02"))
    assert_one_line(results)
    found = not_passed(results)
    running = results["app01::agent[clamav/running]"].message
    assert re.fullmatch(r"app01 agent clamav/running: expected clamav running, observed no "
                        r"clamd process \(process table, no systemd, \d+ processes\)", running)
    why = running.split(": ", 1)[1]
    # The probe of an agent that does not run is skipped naming the cause, not failed again;
    # the version (the binary is still there), the manager, app02: all green.
    assert found == {
        "app01::agent[clamav/running]": (Outcome.FAILED, running),
        "app01::agent[clamav/health]": (
            Outcome.SKIPPED, f"app01 agent clamav/health: skipped: agent[clamav/running] did "
                             f"not pass ({why})"),
    }


def test_agent_port_accepts_and_closes(healthy: Lab) -> None:
    with accepting_and_closing(healthy, "app01", "clamd", "127.0.0.1", 3310):
        results = drill(("app01",))
    assert_one_line(results)
    assert results["app01::agent[clamav/running]"].observed.startswith("clamd running (pid ")
    assert not_passed(results) == {
        "app01::agent[clamav/health]": (
            Outcome.FAILED, "app01 agent clamav/health: expected health probe answers PONG, "
                            "observed connected, then the agent closed the connection without "
                            "answering"),
    }


def test_collector_down(healthy: Lab) -> None:
    # A marker delivered before the fault: the received log exists to be searched.
    assert failed(drill(("app01",), ("logging",))) == {}
    with healthy.stopped("logs01", "rsyslog"):
        results = drill(("app01", "app02"))
    assert_one_line(results)
    found = not_passed(results)
    assert set(found) == {f"{host}::logging[central/{via}]" for host in ("app01", "app02")
                          for via in ("tcp", "udp")}
    for host in ("app01", "app02"):
        assert found[f"{host}::logging[central/tcp]"] == (
            Outcome.FAILED, f"{host} logging central/tcp: expected marker delivered to central "
                            "within 10 s, observed 10.77.0.40:514/tcp refused (collector "
                            "unreachable)")
        outcome, udp = found[f"{host}::logging[central/udp]"]
        assert outcome is Outcome.FAILED
        assert re.fullmatch(
            rf"{host} logging central/udp: expected marker delivered to central within 10 s, "
            rf"observed not delivered: drcheck-{host}-udp-\S+ sent via 10\.77\.0\.40:514/udp "
            r"\(UDP has no handshake: arrival is the only proof\), logs01 did not find it in "
            r"[\d.]+ s \(\d+ searches\)", udp)
        # Searched until after the deadline: not given up early, not a search that never ran.
        assert results[f"{host}::logging[central/udp]"].details["searches"] >= 2
        assert float(udp.rsplit(" did not find it in ", 1)[1].split(" s ")[0]) >= 10.0


def test_collector_reachable_but_discarding(healthy: Lab) -> None:
    with healthy.discarding():
        results = drill(("app01",))
    assert_one_line(results)
    found = not_passed(results)
    assert set(found) == {"app01::logging[central/tcp]", "app01::logging[central/udp]"}
    outcome, tcp = found["app01::logging[central/tcp]"]
    assert outcome is Outcome.FAILED
    assert re.fullmatch(
        r"app01 logging central/tcp: expected marker delivered to central within 10 s, "
        r"observed reachable but not delivered: 10\.77\.0\.40:514/tcp accepted "
        r"drcheck-app01-tcp-\S+, logs01 did not find it in [\d.]+ s \(\d+ searches\)", tcp)
    assert results["app01::logging[central/tcp]"].details["searches"] > 5
    assert found["app01::logging[central/udp]"][0] is Outcome.FAILED


def test_collector_port_accepts_and_closes(healthy: Lab) -> None:
    """rsyslog replaced by a port that takes the connection and drops it: the instance could
    send, nothing arrived. The received log (rsyslog's, left in place) is still searched."""
    assert failed(drill(("app01",), ("logging",))) == {}
    with accepting_and_closing(healthy, "logs01", "rsyslog", "10.77.0.40", 514):
        results = drill(("app01",), ("logging",))
    assert_one_line(results)
    outcome, tcp = not_passed(results)["app01::logging[central/tcp]"]
    assert outcome is Outcome.FAILED
    assert "observed reachable but not delivered: 10.77.0.40:514/tcp accepted " in tcp
    assert set(not_passed(results)) == {"app01::logging[central/tcp]",
                                        "app01::logging[central/udp]"}


def test_outbound_fine_but_reverse_blocked(healthy: Lab) -> None:
    with healthy.firewall("app01", 9102, "drop", "input", source=BACKUP01):
        results = drill(("app01",))
        # Only the backup server is blocked: the same port still answers anyone else.
        assert director_hello("10.77.0.11", 9102, DIRECTOR, 3.0).startswith("auth cram-md5")
    assert_one_line(results)
    reverse = ("app01 backup reverse: expected backup01 -> 10.77.0.11:9102 open, observed "
               "timed out after 3 s")
    assert not_passed(results) == {
        "app01::backup[reverse]": (Outcome.FAILED, reverse),
        "app01::backup[hello]": (
            Outcome.SKIPPED, "app01 backup hello: skipped: backup[reverse] did not pass "
                             "(expected backup01 -> 10.77.0.11:9102 open, observed timed out "
                             "after 3 s)"),
    }
    assert results["app01::backup[server]"].observed.startswith(
        "app01 -> 10.77.0.41:9103 connected in ")


def test_backup_server_path_blocked(healthy: Lab) -> None:
    """nftables on backup01 drops what arrives for its storage daemon: every instance's
    outbound backup path times out; the reverse direction and the agents are fine."""
    with healthy.firewall("backup01", 9103, "drop", "input"):
        results = drill(("app01", "app02"))
    assert_one_line(results)
    assert not_passed(results) == {
        f"{host}::backup[server]": (
            Outcome.FAILED, f"{host} backup server: expected {host} -> backup01 "
                            "10.77.0.41:9103 open, observed timed out after 3 s")
        for host in ("app01", "app02")}


def test_backup_agent_killed(healthy: Lab) -> None:
    with healthy.stopped("app01", "bacula-fd"):
        results = drill(("app01", "app02"))
    assert_one_line(results)
    agent = results["app01::backup[agent]"].message
    assert re.fullmatch(r"app01 backup agent: expected backup agent bacula-fd running, "
                        r"observed no bacula-fd process \(process table, no systemd, \d+ "
                        r"processes\)", agent)
    why = agent.split(": ", 1)[1]
    # One cause, one failure: the server's connection to a port nobody listens on, and the
    # hello over it, are skipped naming the agent.
    assert not_passed(results) == {
        "app01::backup[agent]": (Outcome.FAILED, agent),
        "app01::backup[reverse]": (
            Outcome.SKIPPED, f"app01 backup reverse: skipped: backup[agent] did not pass "
                             f"({why})"),
        "app01::backup[hello]": (
            Outcome.SKIPPED, f"app01 backup hello: skipped: backup[agent] did not pass "
                             f"({why})"),
    }


def test_backup_agent_port_accepts_and_closes(healthy: Lab) -> None:
    with accepting_and_closing(healthy, "app01", "bacula-fd", "10.77.0.11", 9102):
        results = drill(("app01",))
    assert_one_line(results)
    assert results["app01::backup[reverse]"].observed.startswith(
        "backup01 -> 10.77.0.11:9102 connected in ")
    assert not_passed(results) == {
        "app01::backup[hello]": (
            Outcome.FAILED, "app01 backup hello: expected bacula agent answers backup01's hello "
                            "on 10.77.0.11:9102, observed no hello answer: connection closed "
                            "after 0 of 4 bytes"),
    }


def test_the_operations_drill_is_green_through_pytest(lab: Lab, tmp_path: Path) -> None:
    """The main job, as a user runs it, for these families: the lab inventory's operations
    checks through pytest, JUnit evidence. (The whole drill is test_drill's.)"""
    xml = tmp_path / "drill.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", f"--dr-inventory={INVENTORY}", f"--junitxml={xml}",
         "-q", "-p", "no:cacheprovider", "-rfEs", "-k", " or ".join(OPS_CHECKS)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    cases = [{p.get("name"): p.get("value") for p in case.iter("property")}
             for case in ET.parse(xml).getroot().iter("testcase")]
    by_check: dict[str, list[dict[str, str | None]]] = {}
    for case in cases:
        by_check.setdefault(str(case.get("dr.check")), []).append(case)
    assert {check: len(found) for check, found in by_check.items()} == {
        "agent": 4 * len(INSTANCES), "logging": 2 * len(INSTANCES),
        "backup": 4 * len(INSTANCES)}
    for case in cases:
        assert case["dr.outcome"] == "passed", case
    for case in by_check["logging"]:
        assert str(case["dr.observed"]).startswith("delivered within ")
        datetime.fromisoformat(str(case["dr.started_at"]))
