"""Errors ("could not observe") and skips end to end: every consumer of a result (pytest's
outcome and report, pytest's JUnit file, the bundle's junit.xml, results.jsonl, drill.json,
report.html, the terminal summary) says error or skipped, never failed or passed."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import xmlschema
from junitparser import JUnitXml

from pytest_drcheck.checks import registry

REPO = Path(__file__).resolve().parents[2]
SCHEMA = xmlschema.XMLSchema(REPO / "tests" / "data" / "junit-ci.xsd")
CAUSE = "the resolver failed (getent exit status 2)"
ERROR_LINE = f"app01 outcome blind: could not observe: {CAUSE}"
SKIP_REASON = "depends on dns[dc01], which could not be observed"


@pytest.fixture
def outcome_check(pytester: pytest.Pytester) -> Iterator[None]:
    """Check type 'outcome' (tests/plugin/outcome_check.py), for in-process and subprocess
    runs alike (the conftest registers it in the process that loads the inventory)."""
    pytester.makeconftest(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from pytest_drcheck.checks import registry
        registry.BUILTIN_CHECKS["outcome"] = "tests.plugin.outcome_check:OutcomeCheck"
        registry.available.cache_clear()
        """)
    yield
    registry.BUILTIN_CHECKS.pop("outcome", None)
    registry.available.cache_clear()
    registry.get.cache_clear()


def write_inventory(pytester: pytest.Pytester, *entries: str) -> None:
    body = "".join(f"          - {entry}\n" for entry in entries)
    (pytester.path / "site.yaml").write_text(textwrap.dedent("""\
        version: 1
        drill: {name: outcomes}
        defaults: {connection: {type: local}}
        hosts:
          app01:
            checks:
              outcome:
        """) + body)


EVERY_OUTCOME = (
    "{name: ok, outcome: passed}",
    "{name: bad, outcome: failed, reason: 'expected 10.0.0.1, observed 10.0.0.2'}",
    f"{{name: blind, outcome: error, reason: '{CAUSE}'}}",
    f"{{name: later, outcome: skipped, reason: '{SKIP_REASON}'}}",
)


def cases(path: Path) -> dict[str, ET.Element]:
    return {str(c.get("name")): c for c in ET.parse(path).getroot().iter("testcase")}


def counts(path: Path) -> tuple[int, int, int, int]:
    suites = list(JUnitXml.fromfile(str(path)))
    return (sum(s.tests for s in suites), sum(s.failures for s in suites),
            sum(s.errors for s in suites), sum(s.skipped for s in suites))


def test_error_and_skip_reach_every_consumer(pytester: pytest.Pytester,
                                             outcome_check: None) -> None:
    write_inventory(pytester, *EVERY_OUTCOME)
    result = pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev",
                                "--junitxml=drill.xml", "-rA")
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    lines = result.stdout.lines
    # The error's report is the cause, in one line.
    start = next(i for i, line in enumerate(lines) if "ERROR at setup of" in line
                 and "outcome[blind]" in line)
    assert lines[start + 1] == ERROR_LINE
    assert lines[start + 2].startswith("_") or lines[start + 2].startswith("=")
    output = result.stdout.str()
    assert "Traceback" not in output and "plugin.py" not in output
    # A skip points at its inventory entry, not at the plugin.
    assert f"SKIPPED [1] site.yaml:11: app01 outcome later: {SKIP_REASON}" in lines
    result.stdout.fnmatch_lines(["drill 'outcomes': FAILED (1 passed, 1 failed, 1 error, "
                                 "1 skipped)"])

    evidence = pytester.path / "ev"
    for path in (pytester.path / "drill.xml", evidence / "junit.xml"):
        assert counts(path) == (4, 1, 1, 1), path
        by_name = cases(path)
        error = by_name["outcome[blind]"].find("error")
        assert error is not None and by_name["outcome[blind]"].find("failure") is None, path
        assert error.get("message") == ERROR_LINE, path
        skipped = by_name["outcome[later]"].find("skipped")
        assert skipped is not None and SKIP_REASON in (skipped.get("message") or ""), path
        assert by_name["outcome[bad]"].find("failure") is not None, path
    SCHEMA.validate(evidence / "junit.xml")

    records = {r["subject"]: r for r in map(json.loads, (evidence / "results.jsonl")
                                             .read_text().splitlines())}
    assert {s: r["outcome"] for s, r in records.items()} == {
        "ok": "passed", "bad": "failed", "blind": "error", "later": "skipped"}
    assert records["blind"]["message"] == ERROR_LINE
    drill = json.loads((evidence / "drill.json").read_text())
    assert (drill["counts"]["error"], drill["counts"]["skipped"]) == (1, 1)
    assert drill["verdict"] == "failed"
    assert "1 check(s) could not be evaluated (error)" in drill["verdict_reasons"]
    report = (evidence / "report.html").read_text()
    assert 'data-key="app01::outcome[blind]" data-outcome="error"' in report
    assert 'data-key="app01::outcome[later]" data-outcome="skipped"' in report
    assert '<div class="count error" data-outcome="error"><b>1</b>' in report


def test_an_error_alone_is_never_a_passed_drill(pytester: pytest.Pytester,
                                               outcome_check: None) -> None:
    write_inventory(pytester, "{name: ok, outcome: passed}",
                    f"{{name: blind, outcome: error, reason: '{CAUSE}'}}",
                    f"{{name: later, outcome: skipped, reason: '{SKIP_REASON}'}}")
    result = pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev",
                                "--junitxml=drill.xml")
    result.assert_outcomes(passed=1, errors=1, skipped=1)
    assert result.ret != pytest.ExitCode.OK
    drill = json.loads((pytester.path / "ev" / "drill.json").read_text())
    assert drill["verdict"] == "failed" and drill["rto"]["measured_s"] is None
    suite = ET.parse(pytester.path / "drill.xml").getroot().find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props["dr.verdict"] == "failed" and props["dr.count_error"] == "1"
    result.stdout.fnmatch_lines(["drill 'outcomes': FAILED (1 passed, 1 error, 1 skipped)"])


def test_errors_and_skips_under_xdist_without_a_bundle(pytester: pytest.Pytester,
                                                      outcome_check: None) -> None:
    """The controller's summary comes from the workers' reports (no bundle to read)."""
    write_inventory(pytester, *EVERY_OUTCOME)
    result = pytester.runpytest_subprocess("--dr-inventory=site.yaml", "-n", "2",
                                           "--junitxml=drill.xml", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1)
    result.stdout.fnmatch_lines(["drill 'outcomes': FAILED (1 passed, 1 failed, 1 error, "
                                 "1 skipped)"])
    assert counts(pytester.path / "drill.xml") == (4, 1, 1, 1)
    error = cases(pytester.path / "drill.xml")["outcome[blind]"].find("error")
    assert error is not None and error.get("message") == ERROR_LINE
