"""agent and backup on Windows: Get-Service / Get-Process / the uninstall registry into the
families' values, judged by their shared judges."""

from __future__ import annotations

import pytest

from pytest_drcheck.checks.agents import AgentCheck
from pytest_drcheck.checks.backup import BackupCheck
from pytest_drcheck.checks.running import Running
from pytest_drcheck.checks.windows import running as windows
from pytest_drcheck.checks.windows.backup import address_command
from pytest_drcheck.model import CouldNotObserve, Outcome
from tests.checks.windows.helpers import evaluate, observe, recorded, windows_item
from tests.targets.fake_windows import Answer

AGENT = AgentCheck()
DEFENDER = {"name": "defender", "service": "Sense", "process": "MsSense.exe",
            "version": {"constraint": ">=10.8", "package": "Microsoft Defender for Endpoint"}}


@pytest.mark.parametrize(("name", "running", "observed"), [
    ("get-service-running.json", True,
     "service Sense Running (start Automatic; service control manager)"),
    ("get-service-stopped.json", False,
     "service Sense Stopped (start Automatic; service control manager)"),
])
def test_service_state(name: str, running: bool, observed: str) -> None:
    assert windows.service_state("win01", "Sense", recorded(name)) == Running(
        running, observed, "service control manager")


@pytest.mark.parametrize(("name", "pids", "observed"), [
    ("get-process-two.json", (2212, 4876), "MsSense.exe running (pid 2212, 4876; Get-Process)"),
    ("get-process-one-ps3.json", (3120,), "MsSense.exe running (pid 3120; Get-Process)"),
    ("get-process-none.json", (), "no MsSense.exe process (Get-Process, 98 processes)"),
])
def test_process_state(name: str, pids: tuple[int, ...], observed: str) -> None:
    state = windows.process_state("win01", "MsSense.exe", recorded(name))
    assert (state.pids, state.observed, state.running) == (pids, observed, bool(pids))


def test_the_service_decides_through_the_shared_judge() -> None:
    item = windows_item(AGENT, "defender/running", DEFENDER)
    assert list(AGENT.commands(item)) == [windows.service_command("Sense"),
                                          windows.process_command("MsSense.exe")]
    assert "Get-Process -Name 'MsSense'" in windows.process_command("MsSense.exe")
    running = {windows.service_command("Sense"): Answer(0, recorded("get-service-running.json")),
               windows.process_command("MsSense.exe"): Answer(0, recorded(
                   "get-process-none.json"))}
    assert evaluate(AGENT, item, running).outcome is Outcome.PASSED
    stopped = {**running, windows.service_command("Sense"): Answer(0, recorded(
        "get-service-stopped.json"))}
    verdict = evaluate(AGENT, item, stopped)
    assert verdict.outcome is Outcome.FAILED and "Stopped" in verdict.observed
    missing = {**running, windows.service_command("Sense"): Answer(0, '{"missing":true}\n')}
    assert evaluate(AGENT, item, missing).observed == (
        "service Sense not installed (service control manager)")


def test_a_process_only_agent() -> None:
    item = windows_item(AGENT, "nxlog/running", {"name": "nxlog", "process": "nxlog.exe"})
    verdict = evaluate(AGENT, item, {windows.process_command("nxlog.exe"): Answer(
        0, recorded("get-process-two.json"))})
    assert verdict.outcome is Outcome.PASSED and "pid 2212, 4876" in verdict.observed


def test_version_from_the_installed_product() -> None:
    item = windows_item(AGENT, "defender/version", DEFENDER)
    (command,) = AGENT.commands(item)
    assert command == windows.package_version_command("Microsoft Defender for Endpoint")
    assert "$_.DisplayName -eq 'Microsoft Defender for Endpoint'" in command
    verdict = evaluate(AGENT, item, {command: Answer(0, "10.8760.22621.1\n")})
    assert verdict.outcome is Outcome.PASSED
    old = evaluate(AGENT, item, {command: Answer(0, "10.7.1\n")})
    assert old.outcome is Outcome.FAILED
    absent = evaluate(AGENT, item, {command: Answer(1, "")})
    assert absent.outcome is Outcome.FAILED and "not installed" in (absent.observed
                                                                   + absent.reason)


def test_a_hung_service_query_is_could_not_observe() -> None:
    item = windows_item(AGENT, "defender/running", DEFENDER)
    with pytest.raises(CouldNotObserve, match=r"`\$s = Get-Service -Name 'Sense'.*timed out "
                                              "after 1 s on win01"):
        observe(AGENT, item, {windows.service_command("Sense"): Answer(0, "", seconds=30)}, 1)


def test_backup_agent_and_reverse_address_on_windows() -> None:
    check = BackupCheck()
    site = {"backup": {"systems": {"veeam": {
        "server": {"host": "backup01", "endpoint": "backup01.corp.example:10006"},
        "agent": {"service": "VeeamEndpointBackupSvc", "port": 6160}}}}}
    agent = windows_item(check, "agent", {"system": "veeam"}, site)
    assert list(check.commands(agent)) == [windows.service_command("VeeamEndpointBackupSvc")]
    reverse = windows_item(check, "reverse", {"system": "veeam"}, site)
    (command,) = check.commands(reverse)
    assert command == address_command("backup01.corp.example")
    assert "GetHostAddresses('backup01.corp.example')" in command
    assert "Find-NetRoute -RemoteIPAddress $a" in command
