"""The lab drill against real daemons: green as shipped, and each check fails with the right
one-line reason when the lab is made wrong. Everything is observed from the instances."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_drcheck.lab import Lab

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
SSH = """\
defaults:
  timeout: 10s
  connection:
    type: ssh
    user: root
    identity_file: /var/tmp/drcheck-lab/ssh/id_ed25519
    known_hosts: /var/tmp/drcheck-lab/ssh/known_hosts
    connect_timeout: 2s
"""
HOSTS = """\
site:
  dns:
    resolvers: {onprem: 10.77.0.53}
hosts:
  app01:
    address: 10.77.0.11
    checks:
      dns:
        - {name: dc01.corp.example, expect: 10.77.0.20}
        - {name: dc01.corp.example, expect: 10.77.0.20, resolver: onprem}
      reach:
        - {target: "10.77.0.53:53"}
  app02:
    address: 10.77.0.12
    checks:
      reach: [{target: "10.77.0.53:53"}]
  db01:
    address: 10.77.0.13
    checks:
      reach: [{target: "10.77.0.53:53"}]
"""


def drill(pytester: pytest.Pytester, *args: str, hosts: str = HOSTS) -> pytest.RunResult:
    (pytester.path / "site.yaml").write_text("version: 1\ndrill: {name: lab-break}\n" + SSH
                                             + hosts)
    return pytester.runpytest("--dr-inventory=site.yaml", "-p", "no:cacheprovider", *args)


def failure_lines(result: pytest.RunResult) -> list[str]:
    """The failure sections' bodies: our one-line messages."""
    return [line for line in result.stdout.lines
            if line.split(" ", 1)[0] in ("app01", "app02", "db01")]


def test_shipped_lab_drill_is_green_with_evidence(lab: Lab, tmp_path: Path) -> None:
    xml = tmp_path / "drill.xml"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--dr-inventory=inventories/lab.yaml",
         f"--junitxml={xml}", "-q", "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
    root = ET.parse(xml).getroot()
    cases = list(root.iter("testcase"))
    assert len(cases) >= 51
    vantages = {p.get("value") for p in root.iter("property") if p.get("name") == "dr.vantage"}
    assert "app01 (ssh root@10.77.0.11:22)" in vantages
    assert elapsed < 60


def test_wrong_dns_answer(lab: Lab, pytester: pytest.Pytester) -> None:
    with lab.dns_record("dc01.corp.example", "10.77.0.99"):
        result = drill(pytester, "-k", "dns")
    result.assert_outcomes(failed=2)
    assert sorted(failure_lines(result)) == [
        "app01 dns dc01.corp.example: expected 10.77.0.20, resolved 10.77.0.99",
        "app01 dns dc01.corp.example@onprem: expected 10.77.0.20, resolved 10.77.0.99 via "
        "onprem (10.77.0.53:53)",
    ]


def test_hosts_file_entry_is_not_dns(lab: Lab, pytester: pytest.Pytester) -> None:
    with lab.hosts_entry("app01", "dc01.corp.example", "10.9.9.9"):
        result = drill(pytester, "-k", "dns")
    result.assert_outcomes(passed=1, failed=1)
    assert failure_lines(result) == [
        "app01 dns dc01.corp.example: expected 10.77.0.20, resolved 10.9.9.9 (from /etc/hosts);"
        " DNS answers 10.77.0.20"]


def test_closed_port_refused_and_blackholed_port_timed_out(lab: Lab,
                                                           pytester: pytest.Pytester) -> None:
    with lab.firewall("dns01", 53, "reject"):
        refused = drill(pytester, "-k", "reach")
    assert sorted(failure_lines(refused)) == [
        f"{h} reach 10.77.0.53:53: expected open, observed refused"
        for h in ("app01", "app02", "db01")]
    with lab.firewall("dns01", 53, "drop"):
        started = time.monotonic()
        dropped = drill(pytester, "-k", "reach")
        elapsed = time.monotonic() - started
    assert sorted(failure_lines(dropped)) == [
        f"{h} reach 10.77.0.53:53: expected open, observed timed out after 3 s"
        for h in ("app01", "app02", "db01")]
    assert elapsed < 6  # three hosts in parallel: about one 3 s timeout


def test_unreachable_host_fails_alone_and_quickly(lab: Lab, pytester: pytest.Pytester) -> None:
    with lab.isolate("app02"):
        started = time.monotonic()
        result = drill(pytester)
        elapsed = time.monotonic() - started
    result.assert_outcomes(passed=4, failed=1)
    (line,) = failure_lines(result)
    # The reason is said once per host, in the drcheck summary; the item points there.
    assert line == "app02 reach 10.77.0.53:53: cannot reach app02 (reason in the drcheck summary)"
    result.stdout.fnmatch_lines(["  app02 (1 check): timed out after 2 s*"])
    assert elapsed < 8


def test_changed_host_key_is_refused(lab: Lab, pytester: pytest.Pytester) -> None:
    with lab.rotated_host_key("db01"):
        result = drill(pytester, "-k", "db01")
    result.assert_outcomes(failed=1)
    (line,) = failure_lines(result)
    assert line == "db01 reach 10.77.0.53:53: cannot reach db01 (reason in the drcheck summary)"
    result.stdout.fnmatch_lines(["  db01 (1 check): host key mismatch*SHA256:*"])


def test_hand_written_testinfra_test_uses_the_drill_connection(
        lab: Lab, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_custom=textwrap.dedent("""\
        import pytest

        def test_hostname(dr_host, dr_host_name):
            assert dr_host.check_output("hostname") == dr_host_name

        @pytest.mark.dr_group("db")
        def test_only_db(dr_host):
            assert dr_host.interface("eth1").exists
        """))
    hosts = HOSTS.replace("  db01:\n    address: 10.77.0.13\n",
                          "  db01:\n    address: 10.77.0.13\n    groups: [db]\n") + (
        "groups:\n  db: {}\n")
    result = drill(pytester, "-v", "test_custom.py", hosts=hosts)
    # The inventory's 5 checks, test_hostname on 3 hosts, test_only_db on db01 only.
    result.assert_outcomes(passed=9)
    result.stdout.fnmatch_lines(["*test_hostname[[]app01[]] PASSED*",
                                 "*test_only_db[[]db01[]] PASSED*"])


def test_password_never_printed(lab: Lab, pytester: pytest.Pytester) -> None:
    canary = "Canary-Pw-7f3a9c"
    os.environ["DRCHECK_TEST_CANARY"] = canary
    try:
        hosts = HOSTS.replace("    address: 10.77.0.12\n", (
            "    address: 10.77.0.12\n    connection: {password: env:DRCHECK_TEST_CANARY,"
            " identity_file: /nonexistent/key}\n"))
        result = drill(pytester, "-k", "app02", "--junitxml=drill.xml", hosts=hosts)
    finally:
        del os.environ["DRCHECK_TEST_CANARY"]
    result.assert_outcomes(failed=1)
    everything = result.stdout.str() + result.stderr.str() + (
        pytester.path / "drill.xml").read_text()
    assert "cannot reach app02" in everything
    assert canary not in everything
