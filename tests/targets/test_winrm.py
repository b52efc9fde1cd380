"""The winrm target through pypsrp against a local WS-Management endpoint (HTTPS, 127.0.0.1).

The endpoint (tests/targets/wsman_endpoint.py) checks every WinRS message's shape and answers
commands with the stand-in PowerShell. Proven: pypsrp's Create/Command/Receive/Signal/Delete
flow as the target drives it, TLS with certificate validation (a ca_file, and the refusal of
an untrusted certificate by default), Basic authentication and its failure, the per-run
deadline with a terminate signal, and the PowerShell batch carried end to end. Not proven:
NTLM/Kerberos/CredSSP against a real domain, message encryption over http, a real WinRM
service.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_drcheck.targets import powershell_batch
from pytest_drcheck.targets.base import TargetError
from pytest_drcheck.targets.winrm import WinrmSettings, WinrmTarget
from tests.targets.fake_windows import Answer
from tests.targets.wsman_endpoint import WsmanEndpoint, wait_until

ANSWERS = {
    "Get-Service -Name 'W32Time' | ConvertTo-Json -Compress": Answer(0, '{"Status":4}'),
    "nltest /sc_verify:corp.example": Answer(5, "", "ERROR_ACCESS_DENIED"),
    "slow": Answer(0, "", seconds=60),
}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WsmanEndpoint]:
    server = WsmanEndpoint(tmp_path_factory.mktemp("wsman"), ANSWERS)
    yield server
    server.close()


def target_for(endpoint: WsmanEndpoint, **overrides: object) -> WinrmTarget:
    values: dict[str, object] = {
        "name": "win01", "address": "127.0.0.1", "user": "drcheck", "port": endpoint.port,
        "password": lambda: "s3cret", "auth": "basic", "cert_validation": str(endpoint.cert),
        "connect_timeout": 5.0}
    values.update(overrides)
    return WinrmTarget(WinrmSettings(**values))  # type: ignore[arg-type]


def test_the_batch_goes_through_winrs_with_valid_messages(endpoint: WsmanEndpoint) -> None:
    target = target_for(endpoint)
    endpoint.operations.clear()
    commands = [*list(ANSWERS)[:2], "Get-Nothing"]
    results = target.run_batch(commands, 10)
    assert [(r.exit_status, r.stdout, r.stderr) for r in results[:2]] == [
        (0, '{"Status":4}', ""), (5, "", "ERROR_ACCESS_DENIED")]
    assert results[2].missing and results[0].host == "win01"
    assert endpoint.errors == []
    # connect: one empty shell; the batch: one shell, one command.
    assert endpoint.operations.count("Command") == 1
    assert endpoint.operations[:2] == ["Create", "Delete"]
    assert endpoint.operations[-1] == "Delete" and not endpoint.shells
    target.close()


def test_a_run_past_its_deadline_is_terminated(endpoint: WsmanEndpoint) -> None:
    target = target_for(endpoint)
    line = powershell_batch.command_line(powershell_batch.batch_script(["slow"], 60, "DRC1"))
    result = target.run(line, 1.5)
    assert result.timed_out and result.exit_status == 124
    assert wait_until(lambda: any(
        r.signalled.endswith("/terminate") for r in endpoint.commands.values()), 5)
    assert endpoint.errors == [] and not endpoint.shells
    target.close()


def test_an_untrusted_certificate_is_refused_by_default(endpoint: WsmanEndpoint) -> None:
    target = target_for(endpoint, cert_validation=True)
    with pytest.raises(TargetError, match=r"127.0.0.1:\d+: the server's TLS certificate is not "
                                          "trusted; give connection.ca_file"):
        target.connect()


def test_wrong_credentials_are_named(endpoint: WsmanEndpoint) -> None:
    target = target_for(endpoint, password=lambda: "wrong")
    with pytest.raises(TargetError, match="authentication failed for drcheck \\(basic\\)"):
        target.connect()


def test_nothing_listening(endpoint: WsmanEndpoint, closed_port: int) -> None:
    target = target_for(endpoint, port=closed_port)
    with pytest.raises(TargetError, match="connection refused or unreachable"):
        target.connect()


def test_without_pypsrp_the_extra_is_named(endpoint: WsmanEndpoint,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypsrp.wsman", None)
    with pytest.raises(TargetError, match=r"needs pypsrp, in the windows extra: pip install "
                                          r"'pytest-drcheck\[windows\]'"):
        target_for(endpoint).connect()


def test_streams_are_refused_with_the_way_out(endpoint: WsmanEndpoint, tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="needs connection type ssh"):
        target_for(endpoint).open_stream("10.0.0.1", 389, 1)
