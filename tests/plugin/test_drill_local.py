"""Whole drills through pytest, against the runner itself (connection type local) and real
sockets on 127.0.0.1: collection, selection, outcomes, one-line failures, JUnit evidence."""

from __future__ import annotations

import json
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.plugin.sockets import Listener


def inventory(pytester: pytest.Pytester, open_port: int, closed_port: int,
              extra: str = "") -> Path:
    path = pytester.path / "site.yaml"
    path.write_text(textwrap.dedent(f"""\
        version: 1
        drill: {{name: local-drill, rto: 1h}}
        defaults:
          timeout: 5s
          connection: {{type: local}}
        hosts:
          app01:
            checks:
              reach:
                - {{target: "127.0.0.1:{open_port}"}}
                - {{target: "127.0.0.1:{closed_port}", expect: closed}}
              dns:
                - {{name: localhost, expect: 127.0.0.1, allow_hosts_file: true}}
          app02:
            checks:
              reach:
                - {{target: "127.0.0.1:{closed_port}"}}
              dns:
                - {{name: localhost, expect: 127.0.0.1}}
        """) + extra)
    return path


def test_ids_are_sorted_readable_and_k_selects(pytester: pytest.Pytester, listener: Listener,
                                               closed_port: int) -> None:
    inventory(pytester, listener.port, closed_port)
    result = pytester.runpytest("--dr-inventory=site.yaml", "--collect-only", "-q")
    ids = [line for line in result.stdout.lines if line.startswith("site.yaml::")]
    assert ids == sorted([
        "site.yaml::app01::dns[localhost]",
        f"site.yaml::app01::reach[127.0.0.1:{closed_port}]",
        f"site.yaml::app01::reach[127.0.0.1:{listener.port}]",
        "site.yaml::app02::dns[localhost]",
        f"site.yaml::app02::reach[127.0.0.1:{closed_port}]",
    ])
    assert listener.accepted == 0  # collection does no network I/O
    selected = pytester.runpytest("--dr-inventory=site.yaml", "--collect-only", "-q",
                                  "-k", "app01 and reach")
    assert [line for line in selected.stdout.lines if line.startswith("site.yaml::")] == [
        i for i in ids if i.startswith("site.yaml::app01::reach")]
    assert "2/5 tests collected (3 deselected)" in selected.stdout.str()


def test_each_check_is_marked_with_its_type_and_m_selects(
        pytester: pytest.Pytester, listener: Listener, closed_port: int) -> None:
    """One marker per check type is shared by its items: each item still carries its own
    type, and -m selects by it."""
    inventory(pytester, listener.port, closed_port)
    pytester.makeconftest("""
        def pytest_collection_modifyitems(items):
            for item in items:
                marks = [m.args for m in item.iter_markers("dr_check")]
                print("MARK", item.nodeid, marks, "dr_check" in item.keywords)
    """)
    result = pytester.runpytest("--dr-inventory=site.yaml", "--collect-only", "-q", "-s")
    assert sorted(line for line in result.stdout.lines if line.startswith("MARK")) == sorted([
        "MARK site.yaml::app01::dns[localhost] [('dns',)] True",
        f"MARK site.yaml::app01::reach[127.0.0.1:{closed_port}] [('reach',)] True",
        f"MARK site.yaml::app01::reach[127.0.0.1:{listener.port}] [('reach',)] True",
        "MARK site.yaml::app02::dns[localhost] [('dns',)] True",
        f"MARK site.yaml::app02::reach[127.0.0.1:{closed_port}] [('reach',)] True",
    ])
    selected = pytester.runpytest("--dr-inventory=site.yaml", "--collect-only", "-q",
                                  "-m", "dr_check")
    assert "5 tests collected" in selected.stdout.str()
    assert listener.accepted == 0


def test_outcomes_and_one_line_failures(pytester: pytest.Pytester, listener: Listener,
                                        closed_port: int) -> None:
    inventory(pytester, listener.port, closed_port)
    result = pytester.runpytest("--dr-inventory=site.yaml", "-rf")
    result.assert_outcomes(passed=3, failed=2)
    assert listener.accepted == 1
    lines = result.stdout.lines
    # The failure section is exactly the one-line message, nothing else.
    assert (f"app02 reach 127.0.0.1:{closed_port}: expected open, observed refused"
            in lines)
    assert any(line.startswith("app02 dns localhost: expected 127.0.0.1, resolved 127.0.0.1 "
                               "(from /etc/hosts)") for line in lines)
    result.stdout.fnmatch_lines([f"FAILED site.yaml::app02::reach[[]127.0.0.1:{closed_port}[]]*"])
    assert "Traceback" not in result.stdout.str()


def test_junit_properties(pytester: pytest.Pytester, listener: Listener,
                          closed_port: int) -> None:
    inventory(pytester, listener.port, closed_port)
    pytester.runpytest("--dr-inventory=site.yaml", "--junitxml=drill.xml")
    root = ET.parse(pytester.path / "drill.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None
    suite_props = {p.get("name"): p.get("value") for p in suite.iter("property")
                   if p.get("name", "").startswith("dr.") and p in list(
                       suite.find("properties") or [])}
    assert suite_props["dr.drill"] == "local-drill"
    assert len(suite_props["dr.inventory_sha256"] or "") == 64
    assert suite_props["dr.started_at"] <= suite_props["dr.finished_at"]  # type: ignore[operator]
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    case = cases[f"reach[127.0.0.1:{closed_port}]"]
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["dr.host"] in ("app01", "app02")
    assert props["dr.check"] == "reach"
    assert props["dr.subject"] == f"127.0.0.1:{closed_port}"
    assert props["dr.observed"] == "refused"
    assert props["dr.vantage"].startswith(props["dr.host"])
    assert props["dr.started_at"].endswith("+00:00")
    assert float(props["dr.duration_ms"]) >= 0
    assert props["dr.source"].startswith("site.yaml:")


def test_junit_properties_under_xdist(pytester: pytest.Pytester, listener: Listener,
                                      closed_port: int) -> None:
    inventory(pytester, listener.port, closed_port)
    result = pytester.runpytest_subprocess("--dr-inventory=site.yaml", "-n", "2",
                                           "--junitxml=drill.xml", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=2)
    root = ET.parse(pytester.path / "drill.xml").getroot()
    names = [p.get("name") for p in root.iter("property")]
    assert names.count("dr.drill") == 1
    assert names.count("dr.host") == 5 and names.count("dr.observed") == 5


def test_hung_host_fails_its_own_checks_within_its_timeout(
        pytester: pytest.Pytester, listener: Listener, closed_port: int) -> None:
    silent = Listener()  # accepts TCP, never sends an SSH banner
    try:
        # The check may take 10 minutes: only the 1 s connect timeout ends it sooner.
        inventory(pytester, listener.port, closed_port, extra=textwrap.indent(textwrap.dedent(f"""\
            hung01:
              address: 127.0.0.1
              connection: {{type: ssh, port: {silent.port}, connect_timeout: 1s}}
              checks:
                reach: [{{target: "127.0.0.1:{listener.port}", timeout: 10m}}]
            """), "  "))
        result = pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev", "-rf")
    finally:
        silent.close()
    outcomes = result.parseoutcomes()  # hung01's check: a failure or an error (not observed)
    assert outcomes["passed"] == 3 and outcomes["failed"] + outcomes.get("errors", 0) == 3
    result.stdout.fnmatch_lines([
        f"hung01 reach 127.0.0.1:{listener.port}: cannot reach hung01 (reason in the drcheck "
        "summary)", "unreachable hosts (their checks observed nothing):",
        "  hung01 (1 check): timed out after 1 s *"])
    (hung,) = [json.loads(line) for line in (pytester.path / "ev" / "results.jsonl").open()
               if json.loads(line)["host"] == "hung01"]
    # The connection attempt ended the check: about 1 s (a fallback to the check's 10 minutes
    # would be 600 s; the bound leaves an overloaded runner's scheduling delays room).
    assert hung["outcome"] == "error" and hung["duration_ms"] < 60_000, hung


def test_collect_only_touches_no_host(pytester: pytest.Pytester, listener: Listener) -> None:
    (pytester.path / "site.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        drill: {{name: t}}
        hosts:
          app01:
            address: 127.0.0.1
            connection: {{port: {listener.port}}}
            checks: {{reach: [{{target: "127.0.0.1:{listener.port}"}}]}}
        """))
    result = pytester.runpytest("--dr-inventory=site.yaml", "--collect-only", "-q")
    assert "1 test collected" in result.stdout.str()
    time.sleep(0.2)
    assert listener.accepted == 0


def test_ids_start_with_the_inventory_file_name_outside_rootdir(
        pytester: pytest.Pytester, listener: Listener, closed_port: int,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """An inventory outside pytest's rootdir (the usual CI layout: a checkout of the drill
    repository next to the job's working directory) still gives site.yaml::host::check ids,
    in the terminal, in both JUnit files, and identically on every xdist worker."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    source = inventory(pytester, listener.port, closed_port)
    path = elsewhere / "site.yaml"
    source.rename(path)
    assert not path.is_relative_to(pytester.path)
    common = (f"--dr-inventory={path}", f"--rootdir={pytester.path}", "-p", "no:cacheprovider")
    collected = pytester.runpytest(*common, "--collect-only", "-q")
    ids = [line for line in collected.stdout.lines if "::" in line]
    assert len(ids) == 5 and all(i.startswith("site.yaml::app0") for i in ids), ids
    result = pytester.runpytest_subprocess(*common, "-n", "2", "--dr-evidence=ev",
                                           "--junitxml=drill.xml", "-rf")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines([f"FAILED site.yaml::app02::reach[[]127.0.0.1:{closed_port}[]]*"])
    for junit in (pytester.path / "drill.xml", pytester.path / "ev" / "junit.xml"):
        classnames = {c.get("classname") for c in ET.parse(junit).getroot().iter("testcase")}
        assert classnames == {"site.yaml.app01", "site.yaml.app02"}, junit
    drill = json.loads((pytester.path / "ev" / "drill.json").read_text())
    assert drill["selection"]["planned_checks"] == 5 and drill["counts"]["not_run"] == 0
    assert drill["inventory"]["id"] == "site.yaml"
