"""OpenSSH on a Windows host: the PowerShell batch over a real sshd.

The sshd is real (127.0.0.1); its ForceCommand stands in for the Windows host's cmd.exe and
powershell.exe (tests/targets/fake_windows: recorded answers). Proven: the batch goes out as
one exec of ``powershell -NoProfile -NonInteractive -EncodedCommand ...`` within cmd.exe's
command-line limit, its answers come back framed, and names resolve through the PowerShell
lookup. Not proven: Windows' own OpenSSH and PowerShell.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_drcheck.model import CouldNotObserve
from pytest_drcheck.targets import powershell_batch
from pytest_drcheck.targets.result import CommandResult
from pytest_drcheck.targets.ssh import SshSettings, SshTarget
from tests.targets import fake_windows
from tests.targets.conftest import _can_run_sshd
from tests.targets.fake_windows import Answer
from tests.targets.sshd import Sshd, start_sshd

REPO = Path(__file__).resolve().parents[2]
ANSWERS = {
    "Get-CimInstance Win32_OperatingSystem | ConvertTo-Json": Answer(0, '{"Version":"10.0"}'),
    "w32tm /query /status": Answer(0, "Source: dc01.corp.example\n"),
    "exit 5": Answer(5, "", ""),
    powershell_batch.lookup_command("dc01.corp.example"): Answer(0, "10.0.0.53\r\n"),
}


@pytest.fixture(scope="module")
def windows_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sshd, Path]]:
    reason = _can_run_sshd()
    if reason:
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("winsshd")
    answers = directory / "answers.json"
    fake_windows.save(str(answers), ANSWERS)
    force = (f"ForceCommand env PYTHONPATH={REPO} {sys.executable} "
             f"{REPO / 'tests/targets/fake_windows.py'} {answers}")
    server = start_sshd(directory, (force,))
    yield server, answers
    server.stop()


@pytest.fixture
def target(windows_sshd: tuple[Sshd, Path], tmp_path: Path) -> Iterator[SshTarget]:
    server, _ = windows_sshd
    made = SshTarget(SshSettings(
        name="win01", address="127.0.0.1", port=server.port, user="root",
        identity_file=str(server.client_key), known_hosts=str(server.known_hosts()),
        connect_timeout=5.0))
    made.platform = "windows"
    yield made
    made.close()


def test_the_batch_is_one_powershell_exec(target: SshTarget,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []
    run = target.run

    def counted(command: str, timeout: float) -> CommandResult:
        sent.append(command)
        return run(command, timeout)

    monkeypatch.setattr(target, "run", counted)
    commands = [*list(ANSWERS)[:3], "Get-Nothing"]
    results = target.run_batch(commands, 10)
    assert len(sent) == 1 and sent[0].startswith(fake_windows.PREFIX)
    assert [(r.exit_status, r.stdout) for r in results[:3]] == [
        (0, '{"Version":"10.0"}'), (0, "Source: dc01.corp.example\n"), (5, "")]
    assert results[3].missing and results[0].host == "win01"
    with pytest.raises(CouldNotObserve, match=r"`exit 5` failed on win01 \(exit 5\)"):
        results[2].require()


def test_names_resolve_through_powershell_on_the_host(target: SshTarget) -> None:
    assert target.resolve("dc01.corp.example", 10) == ("10.0.0.53",)
    with pytest.raises(CouldNotObserve, match=r"nowhere.example does not resolve on win01 "
                                              r"\(Dns.GetHostAddresses: The term"):
        target.resolve("nowhere.example", 10)
