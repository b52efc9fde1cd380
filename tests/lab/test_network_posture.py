"""egress and nic against the lab's real squid, fake internet and multi-NIC instance: each
observed outcome (connected / denied / refused / timed out) and each NIC mismatch, one line."""

from __future__ import annotations

import contextlib
import time

import pytest

from pytest_drcheck.lab import Lab
from pytest_drcheck.lab.faults import direct_path, extra_address, nic_missing, proxy_allows
from tests.lab.test_drill import SSH, failure_lines

pytestmark = pytest.mark.lab

EGRESS = """\
site:
  egress:
    proxies: {corp: "10.77.0.60:3128"}
hosts:
  app01:
    address: 10.77.0.11
    checks:
      egress:
        - {destination: "http://www.example.com/", via: corp, expect: allowed}
        - {destination: "http://blocked.example.org/", via: corp, expect: denied}
        - {destination: "http://repo.example.net/", via: corp, expect: allowed}
        - {destination: "10.77.0.60:25", expect: denied}
        - {destination: "10.99.0.80:80", expect: denied}
        - {destination: "10.77.0.60:3128", expect: denied}
"""


def run(pytester: pytest.Pytester, hosts: str, *args: str) -> pytest.RunResult:
    (pytester.path / "site.yaml").write_text("version: 1\ndrill: {name: posture}\n" + SSH
                                             + hosts)
    return pytester.runpytest("--dr-inventory=site.yaml", "-p", "no:cacheprovider", *args)


def test_every_egress_outcome_is_observed_and_explained(lab: Lab,
                                                        pytester: pytest.Pytester) -> None:
    result = run(pytester, EGRESS)
    result.assert_outcomes(passed=4, failed=2)
    assert sorted(failure_lines(result)) == [
        # Something answers on the proxy port directly: a direct path that should not exist.
        "app01 egress 10.77.0.60:3128@direct: expected denied direct, observed connected",
        # The proxy allows the domain but cannot reach it: not a denial, and not working.
        "app01 egress repo.example.net/@corp: expected allowed via corp, observed proxy could "
        "not reach it (HTTP 503 Service Unavailable)",
    ]
    properties = result.stdout.str()
    assert "Traceback" not in properties


def test_denied_and_refused_and_timed_out_cells_pass_as_denied(
        lab: Lab, pytester: pytest.Pytester) -> None:
    hosts = EGRESS.replace('        - {destination: "10.77.0.60:3128", expect: denied}\n', "")
    with lab.firewall("proxy01", 25, "drop"):
        result = run(pytester, hosts, "-rA", "--junitxml=egress.xml")
    result.assert_outcomes(passed=4, failed=1)
    xml = (pytester.path / "egress.xml").read_text()
    assert 'value="denied by proxy (HTTP 403 Forbidden)"' in xml
    assert 'value="timed out after 3 s"' in xml
    assert 'value="unreachable"' in xml
    assert 'value="connected (HTTP 200)"' in xml


def test_proxy_allowing_a_denied_domain(lab: Lab, pytester: pytest.Pytester) -> None:
    with proxy_allows(lab, ".example.org"):
        result = run(pytester, EGRESS, "-k", "blocked")
    result.assert_outcomes(failed=1)
    assert failure_lines(result) == [
        "app01 egress blocked.example.org/@corp: expected denied via corp, observed connected "
        "(HTTP 200)"]


def test_direct_path_opened(lab: Lab, pytester: pytest.Pytester) -> None:
    with direct_path(lab, "app01"):
        result = run(pytester, EGRESS, "-k", "direct and 10.99")
    result.assert_outcomes(failed=1)
    assert failure_lines(result) == [
        "app01 egress 10.99.0.80:80@direct: expected denied direct, observed connected"]


def test_timed_out_cells_run_concurrently(lab: Lab, pytester: pytest.Pytester) -> None:
    cells = "".join(f'        - {{destination: "10.77.0.60:{port}", expect: denied, '
                    f'connect_timeout: 2s}}\n' for port in range(9001, 9009))
    hosts = "hosts:\n" + "".join(
        f"  {name}:\n    address: {address}\n    checks:\n      egress:\n{cells}"
        for name, address in (("app01", "10.77.0.11"), ("app02", "10.77.0.12"),
                              ("db01", "10.77.0.13")))
    with contextlib.ExitStack() as stack:
        for port in range(9001, 9009):
            stack.enter_context(lab.firewall("proxy01", port, "drop"))
        started = time.monotonic()
        result = run(pytester, hosts, "--junitxml=cells.xml")
        elapsed = time.monotonic() - started
    assert (pytester.path / "cells.xml").read_text().count('value="timed out after 2 s"') == 24
    result.assert_outcomes(passed=24)
    assert elapsed < 6  # 24 cells with 2 s timeouts: about one timeout, not 48 s


NIC = """\
hosts:
  app01:
    address: 10.77.0.11
    checks:
      nic:
        - {count: 1, mode: change, subnets: [10.77.0.0/24], default_gateway: null}
  db01:
    address: 10.77.0.13
    checks:
      nic:
        - {count: 2, names: [eth0, eth1], mode: retain, mtu: 1500,
           addresses: [10.77.0.13/24, 10.78.0.13/24], dns_servers: [10.77.0.53]}
"""


def test_nic_green_then_each_mismatch(lab: Lab, pytester: pytest.Pytester) -> None:
    run(pytester, NIC).assert_outcomes(passed=10)
    with extra_address(lab, "app01", "10.66.0.5/24"):
        outside = run(pytester, NIC, "-k", "app01")
    assert failure_lines(outside) == [
        "app01 nic addresses: expected every address in 10.77.0.0/24, observed 10.66.0.5/24, "
        "10.77.0.11/24: 10.66.0.5/24 outside the target subnets"]
    with nic_missing(lab, "db01", "eth1", "10.78.0.13/24"):
        missing = run(pytester, NIC, "-k", "db01")
    assert sorted(failure_lines(missing)) == [
        "db01 nic addresses: expected retain 10.77.0.13/24, 10.78.0.13/24 (source server's "
        "addresses), observed 10.77.0.13/24: missing 10.78.0.13/24",
        "db01 nic count: expected 2, observed 1 (eth0)",
        "db01 nic names: expected eth0, eth1, observed eth0",
    ]
    run(pytester, NIC).assert_outcomes(passed=10)  # restored
