"""platform: windows on a host, and the winrm connection's own keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_drcheck.inventory import InventoryError, load_plan
from pytest_drcheck.targets.factory import TargetFactory
from pytest_drcheck.targets.winrm import WinrmTarget


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_platform_reaches_the_host_and_its_items(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, """\
version: 1
drill: {name: t}
hosts:
  win01:
    address: 10.0.0.9
    platform: windows
    checks: {reach: [{target: "10.0.0.1:445"}]}
  app01: {address: 10.0.0.1, checks: {reach: [{target: "10.0.0.9:3389"}]}}
  win02:
    address: 10.0.0.10
    connection: {type: winrm, user: 'CORP\\drcheck', password: "env:WINRM_PASSWORD",
                 auth: ntlm, ca_file: /etc/corp-ca.pem}
"""))
    assert {name: host.platform for name, host in plan.hosts.items()} == {
        "app01": "linux", "win01": "windows", "win02": "windows"}
    assert {item.host: item.platform for item in plan.items} == {
        "app01": "linux", "win01": "windows"}
    assert dict(plan.hosts["win02"].connection.extra) == {"auth": "ntlm",
                                                          "ca_file": "/etc/corp-ca.pem"}


def test_winrm_target_defaults_to_https_5986_with_validation(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, """\
version: 1
drill: {name: t}
hosts:
  win01: {address: 10.0.0.9, connection: {type: winrm, user: drcheck}}
  win02: {address: 10.0.0.10, connection: {type: winrm, user: d, scheme: http, port: 15985,
                                           cert_validation: false}}
"""))
    first = TargetFactory()(plan.hosts["win01"], lambda name: pytest.fail(name))
    second = TargetFactory()(plan.hosts["win02"], lambda name: pytest.fail(name))
    assert isinstance(first, WinrmTarget) and isinstance(second, WinrmTarget)
    assert first.vantage == "win01 (winrm https://drcheck@10.0.0.9:5986)"
    assert (first.settings.cert_validation, first.settings.auth) == (True, "negotiate")
    assert second.vantage == ("win02 (winrm http://d@10.0.0.10:15985, certificate not "
                              "validated)")
    assert second.settings.cert_validation is False
    assert first.platform == "windows"


@pytest.mark.parametrize(("host", "place", "message"), [
    ("{address: 10.0.0.9, platform: linux, connection: {type: winrm}}", "hosts.win01.platform",
     "connection type winrm reaches Windows hosts only"),
    ("{address: 10.0.0.9, platform: macos}", "hosts.win01.platform",
     "'macos' is not one of linux, windows"),
    ("{connection: {type: winrm}}", "hosts.win01", "missing required key 'address'"),
    ("{address: 10.0.0.9, connection: {type: winrm, auth: digest}}",
     "hosts.win01.connection.auth", "not one of negotiate"),
    ("{address: 10.0.0.9, connection: {auth: ntlm, scheme: http}}", "hosts.win01.connection",
     "auth, scheme apply to connection type winrm only; remove them or set type: winrm"),
])
def test_windows_mistakes_are_named_where_written(tmp_path: Path, host: str, place: str,
                                                  message: str) -> None:
    with pytest.raises(InventoryError) as info:
        load_plan(write(tmp_path, f"version: 1\ndrill: {{name: t}}\nhosts:\n  win01: {host}\n"))
    (problem,) = info.value.problems
    assert problem.place == place and message in problem.message
