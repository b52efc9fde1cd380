"""A drill of three Windows hosts, one per transport, through pytest: win-ssh over a real sshd
(OpenSSH), win-ssm through the local SSM endpoint (AWS-RunPowerShellScript, found by DRS),
win-rm through pypsrp to the local WS-Management endpoint (HTTPS, CA file, Basic auth).

Each host's "PowerShell" is the stand-in (tests/targets/fake_windows) answering the families'
commands from the recorded outputs in tests/data/windows: the inventory, the platform seam, the
transports, the batch, the observers and the shared judges run for real; Windows does not.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_drcheck.checks import registry
from pytest_drcheck.checks.windows import dns as windows_dns
from pytest_drcheck.checks.windows import nic as windows_nic
from pytest_drcheck.checks.windows import running as windows_running
from pytest_drcheck.checks.windows import timesync as windows_time
from pytest_drcheck.inventory import load_plan
from pytest_drcheck.targets import powershell_batch
from tests.aws.conftest import Drill, write_inventory
from tests.aws.fakeaws import FakeAws
from tests.aws.test_drill_aws import outcomes, run
from tests.targets import fake_windows
from tests.targets.conftest import _can_run_sshd
from tests.targets.fake_windows import Answer
from tests.targets.sshd import Sshd, start_sshd
from tests.targets.wsman_endpoint import WsmanEndpoint

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "windows"
CHECKS = """\
    checks:
      time: [{max_offset: 1s, sources: [dc01.corp.example]}]
      agent: [{name: defender, service: Sense}]
      nic: [{count: 2, mtu: {Ethernet: 9001, "Ethernet 2": 1500}}]
      dns:
        - {name: app.corp.example, expect: 10.77.0.11}
        - {name: db01.corp.example, expect: 10.1.2.3}
"""


def recorded(name: str) -> Answer:
    return Answer(0, (DATA / name).read_text(encoding="utf-8"))


def answer_for(command: str) -> Answer | None:
    """The recorded output a Windows host gives each family command of CHECKS."""
    known = {
        windows_time.COMMAND: recorded("w32tm-status-domain.txt"),
        windows_time.lookup_command("dc01.corp.example"): Answer(0, "10.77.0.53\n"),
        windows_running.service_command("Sense"): recorded("get-service-running.json"),
        windows_nic.CONFIG_COMMAND: recorded("get-netipconfiguration-two-nics.json"),
        windows_nic.MTU_COMMAND: recorded("get-netipinterface-ipv4.json"),
        windows_dns.resolve_command("app.corp.example", "A"): recorded(
            "resolve-a-cname-chain.json"),
        windows_dns.resolve_command("app.corp.example", "A", windows_dns.DNS_ONLY): recorded(
            "resolve-a-cname-chain.json"),
        windows_dns.resolve_command("db01.corp.example", "A"): recorded(
            "resolve-a-hosts-file.json"),
        windows_dns.resolve_command("db01.corp.example", "A", windows_dns.DNS_ONLY): recorded(
            "resolve-a-dns-only.json"),
        powershell_batch.lookup_command("localhost"): Answer(0, "127.0.0.1\r\n"),
    }
    return known.get(command)


EXPECTED = {
    "time[offset]": "PASSED",  # this machine's clock stands in for the host's
    "time[sync]": "PASSED",
    "time[source]": "PASSED",
    "agent[defender/running]": "PASSED",
    "nic[interfaces]": "PASSED",
    "nic[count]": "PASSED",
    "nic[mtu]": "PASSED",
    "dns[app.corp.example]": "PASSED",
    "dns[db01.corp.example]": "FAILED",  # served by the hosts file, DNS says 10.77.0.12
}


@pytest.fixture
def windows_sshd(tmp_path: Path) -> Iterator[Sshd]:
    """A real sshd whose ForceCommand is the stand-in, answering every command the families
    send for CHECKS from the recordings."""
    reason = _can_run_sshd()
    if reason:
        pytest.skip(reason)
    plan = load_plan(write_plain(tmp_path / "probe.yaml"))
    commands = [command for item in plan.items
                for command in registry.get(item.check).commands(item)]
    commands.append(powershell_batch.lookup_command("localhost"))
    table = {command: answer for command in commands
             if (answer := answer_for(command)) is not None}
    answers = tmp_path / "answers.json"
    fake_windows.save(str(answers), table)
    force = (f"ForceCommand env PYTHONPATH={REPO} {sys.executable} "
             f"{REPO / 'tests/targets/fake_windows.py'} {answers}")
    server = start_sshd(tmp_path / "sshd", (force,))
    yield server
    server.stop()


def write_plain(path: Path) -> Path:
    path.write_text("version: 1\ndrill: {name: probe}\nhosts:\n  w:\n    address: 10.0.0.1\n"
                    "    platform: windows\n" + CHECKS.replace("    ", "    ", 1))
    return path


@pytest.fixture
def wsman(tmp_path: Path) -> Iterator[WsmanEndpoint]:
    endpoint = WsmanEndpoint(tmp_path, {})
    endpoint.answers = _Lookup()  # type: ignore[assignment]
    yield endpoint
    endpoint.close()


class _Lookup(dict[str, Answer]):
    def get(self, key: str, default: Answer | None = None) -> Answer | None:  # type: ignore[override]
        return answer_for(key) or default


def test_windows_hosts_over_ssh_ssm_and_winrm(pytester: pytest.Pytester, drill: Drill,
                                              fake: FakeAws, windows_sshd: Sshd,
                                              wsman: WsmanEndpoint,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WINRM_PASSWORD", "s3cret")
    host = drill.add("win-ssm")
    fake.ssm_instances[str(host.instance_id)] = {"PingStatus": "Online",
                                                 "PlatformType": "Windows"}
    fake.windows_answers = _Lookup()
    known_hosts = windows_sshd.known_hosts()
    group = "groups:\n  windows:\n" + CHECKS.replace("    ", "    ", 1)
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        win-ssm:
          platform: windows
          groups: [windows]
          drs: {{source_server_id: {host.sid}}}
        win-ssh:
          platform: windows
          groups: [windows]
          address: 127.0.0.1
          connection: {{type: ssh, port: {windows_sshd.port}, user: root,
                        identity_file: "{windows_sshd.client_key}",
                        known_hosts: "{known_hosts}"}}
          # A stream check: OpenSSH's direct-tcpip, the name resolved by the host (PowerShell).
          checks: {{reach: [{{target: "localhost:{wsman.port}"}}]}}
        win-rm:
          groups: [windows]
          address: 127.0.0.1
          connection: {{type: winrm, port: {wsman.port}, user: drcheck, auth: basic,
                        password: "env:WINRM_PASSWORD", ca_file: "{wsman.cert}"}}
        """, extra=group)
    started = time.monotonic()
    result = run(pytester)
    elapsed = time.monotonic() - started
    seen = outcomes(result)
    for name in ("win-ssm", "win-ssh", "win-rm"):
        got = {key.split("::", 2)[2]: value for key, value in seen.items()
               if key.startswith(f"site.yaml::{name}::")}
        reach = {f"reach[localhost:{wsman.port}]": "PASSED"} if name == "win-ssh" else {}
        assert got == {**EXPECTED, **reach}, (name, result.stdout.str()[-3000:])
    text = result.stdout.str()
    assert ("win-rm dns db01.corp.example: expected 10.1.2.3, resolved 10.1.2.3 (from /etc/hosts)"
            "; DNS answers 10.77.0.12") in text
    assert wsman.errors == []
    print(f"three Windows hosts, {len(seen)} tests, {elapsed:.1f} s")
