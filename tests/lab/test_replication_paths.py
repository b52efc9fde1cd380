"""The replication and failback paths in the lab (issue 15), observed from the source server
src01 (real sshd, read-only): the DRS endpoint drs.us-east-1.amazonaws.com:443 through the
proxy (squid; the name is the lab's drs01 behind it), staging01's replication server and
app01's failback port (socat on TCP 1500).

Green as shipped; each breaker fails its own check only, with the one-line cause, and the
path is green again once it is undone.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_drcheck.lab import Lab, faults
from pytest_drcheck.lab.inventory_text import ssh_defaults
from pytest_drcheck.lab.site import DRS_ENDPOINT

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("drlab")]
REPO = Path(__file__).resolve().parents[2]
INVENTORY = """\
version: 1
drill: {name: lab-paths}
""" + ssh_defaults(timeout="20s", connect_timeout="5s") + """\
site:
  egress: {proxies: {corp: "10.77.0.60:3128"}}
  replication: {region: us-east-1, via: corp, staging: [10.78.0.80]}
hosts:
  src01: {address: 10.77.0.71, suites: [replication-path, failback-path]}
  app01: {address: 10.77.0.11, source: src01}
"""
ENDPOINT = "src01 egress DRS endpoint drs.us-east-1.amazonaws.com:443 via corp"
STAGING = "src01 reach staging 10.78.0.80:1500"
FAILBACK = "src01 reach recovery instance app01 10.77.0.11:1500"
GREEN = {ENDPOINT: ("passed", r"connected \(HTTP 200\)"),
         STAGING: ("passed", r"connected in [\d.]+ m?s"),
         FAILBACK: ("passed", r"connected in [\d.]+ m?s")}


def drill(pytester: pytest.Pytester) -> dict[str, tuple[str, str]]:
    """Each check's outcome and its message after ``<host> <check> <subject>: ``."""
    (pytester.path / "site.yaml").write_text(INVENTORY)
    evidence = pytester.path / f"ev{len(list(pytester.path.glob('ev*')))}"
    result = pytester.runpytest_subprocess("--dr-inventory=site.yaml", "-p", "no:cacheprovider",
                                           f"--dr-evidence={evidence}", timeout=120)
    assert "Traceback" not in result.stdout.str()
    records = [json.loads(line) for line in
               (evidence / "results.jsonl").read_text().splitlines() if line.strip()]
    shown = {}
    for record in records:
        head = f"{record['host']} {record['check']} {record['subject']}"
        shown[head] = (record["outcome"], str(record["message"]).removeprefix(f"{head}: "))
    return shown


def assert_shown(shown: dict[str, tuple[str, str]],
                 expected: dict[str, tuple[str, str]]) -> None:
    import re

    assert set(shown) == set(expected), shown
    for head, (outcome, pattern) in expected.items():
        assert shown[head][0] == outcome and re.fullmatch(pattern, shown[head][1]), (
            head, shown[head])


def test_the_paths_are_green_as_shipped(lab: Lab, pytester: pytest.Pytester) -> None:
    assert_shown(drill(pytester), GREEN)
    # The endpoint name is the lab's own: it resolves to drs01 inside the lab only.
    done = lab.exec("src01", ["getent", "hosts", DRS_ENDPOINT])
    assert done.stdout.split()[:1] == ["10.99.0.90"]


BREAKERS: dict[str, tuple[Callable[[Lab], contextlib.AbstractContextManager[Any]], str,
                          tuple[str, str]]] = {
    "staging server stopped": (faults.staging_down, STAGING,
                               ("failed", "expected open, observed refused")),
    "proxy denies the DRS endpoint": (
        lambda lab: faults.proxy_denies(lab, DRS_ENDPOINT), ENDPOINT,
        ("failed", r"expected allowed via corp, observed denied by proxy \(HTTP 403 "
                   r"Forbidden\)")),
    "failback port dropped on app01": (faults.failback_blocked, FAILBACK,
                                       ("failed", r"expected open, observed timed out after "
                                                  r"3 s")),
}


@pytest.mark.parametrize("name", sorted(BREAKERS))
def test_each_breaker_fails_its_own_check_only(lab: Lab, pytester: pytest.Pytester,
                                               name: str) -> None:
    breaker, broken, verdict = BREAKERS[name]
    with breaker(lab):
        shown = drill(pytester)
    assert_shown(shown, {**GREEN, broken: verdict})
    # Undone: the path is green again, and the lab finds nothing to repair.
    assert lab.up().action == "already up"
    assert_shown(drill(pytester), GREEN)
