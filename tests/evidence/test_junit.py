"""The bundle's JUnit as CI consumers read it, proved with two independent readers (junitparser
and xunitparser) and the schema: unique case names, the drill facts in the suite's
system-out, flaky checks (Surefire's flakyFailure), capped case output; and the splice that
adds the facts to pytest's own file without rewriting it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import xmlschema
import xunitparser
from junitparser import JUnitXml, SystemOut

from pytest_drcheck.evidence.junit import (
    CASE_TEXT_LIMIT,
    add_suite_properties,
    append_suite_output,
    drill_facts,
)
from pytest_drcheck.evidence.junit_bundle import write_junit
from pytest_drcheck.evidence.session import EvidenceSession
from tests.evidence.test_evidence import ALL_OUTCOMES, SCHEMA, at, record
from tests.evidence.test_evidence import drill_facts as facts_of

FLAKY = record("app01::reach[10.0.0.1:443]", "passed", 40.0, attempts=3, earlier_failures=[
    {"at": at(5), "outcome": "error", "observed": "not observed",
     "message": "app01 reach 10.0.0.1:443: could not observe: no route to host"},
    {"at": at(20), "outcome": "failed", "observed": "refused",
     "message": "app01 reach 10.0.0.1:443: expected open, observed refused"}])
# The same check and subject on another host: the same case name under another class.
TWIN = record("app02::reach[10.0.0.1:22]", "passed", 14.0)
RECORDS = [*ALL_OUTCOMES, FLAKY, TWIN]
NOT_RUN = "app04::dns[db.corp.example]"


def written(tmp_path: Path, records: list[dict[str, Any]] = RECORDS,
            **extra: Any) -> tuple[Path, dict[str, Any]]:
    path = tmp_path / "junit.xml"
    facts = facts_of(records) | {"not_run": [NOT_RUN]} | extra
    write_junit(path, facts, records)
    return path, facts


def test_two_readers_and_the_schema_agree_on_every_case(tmp_path: Path) -> None:
    path, _ = written(tmp_path)
    xmlschema.XMLSchema(SCHEMA).validate(path)
    expected = {
        ("sites.site.yaml.app01", "reach[10.0.0.1:22]"): "passed",
        ("sites.site.yaml.app01", "reach[10.0.0.1:3306]"): "failure",
        ("sites.site.yaml.app02", "dns[dc01.corp.example]"): "error",
        ("sites.site.yaml.app02", "reach[10.0.0.9:443]"): "skipped",
        ("sites.site.yaml.app03", "reach[10.0.0.1:25]"): "skipped",  # waived
        ("sites.site.yaml.app01", "reach[10.0.0.1:443]"): "passed",  # flaky
        ("sites.site.yaml.app02", "reach[10.0.0.1:22]"): "passed",
        ("sites.site.yaml.app04", "dns[db.corp.example]"): "error",  # not run
    }

    (suite,) = list(JUnitXml.fromfile(str(path)))
    by_junitparser = {}
    for case in suite:
        kind = ("passed" if case.is_passed else "failure" if case.is_failure
                else "error" if case.is_error else "skipped")
        by_junitparser[(case.classname, case.name)] = kind
    assert len(by_junitparser) == len(list(suite)) == 8  # unique per file
    assert by_junitparser == expected

    # xunitparser checks the totals on the root element against the cases it read.
    xsuite, result = xunitparser.parse(str(path))
    by_xunitparser = {(case.classname, case.methodname): {
        "success": "passed", "failure": "failure", "error": "error", "skipped": "skipped"}[
        case.result] for case in xsuite}
    assert by_xunitparser == expected
    assert (len(result.failures), len(result.errors), len(result.skipped)) == (1, 2, 2)
    assert xsuite.properties["dr.drill"] == "q3-drill"


def test_the_suite_output_states_the_drill_facts_for_both_readers(tmp_path: Path) -> None:
    path, _ = written(tmp_path, verdict_reasons=["1 check(s) failed"])
    (suite,) = list(JUnitXml.fromfile(str(path)))
    output = suite.child(SystemOut)
    assert output is not None
    text = output.text
    xsuite, _ = xunitparser.parse(str(path))
    assert xsuite.stdout == text.strip()
    assert text.splitlines() == [
        "drcheck drill 'q3-drill': FAILED (1 check(s) failed)",
        "checks: 3 passed, 1 failed, 1 waived, 1 error, 1 skipped",
        "RTO: not reached, 2 check(s) never went green (target 60 min)",
        f"inventory: sites/site.yaml sha256 {'ab' * 32}",
        f"run: {at(0)} to {at(100)}",
    ]


def test_measured_rto_and_rpo_are_stated_with_their_targets() -> None:
    facts = facts_of([record("a::reach[x:1]", "passed", 95.5)]) | {
        "verdict": "passed", "rpo": {"measured_s": 120.0, "target_s": 900.0, "met": True}}
    lines = drill_facts(facts).splitlines()
    assert "RTO: measured 95.5 s (target 60 min): met" in lines
    assert "RPO: measured 2 min (target 15 min): met" in lines
    assert not any(line.startswith("RPO") for line in drill_facts(
        facts | {"rpo": None}).splitlines())  # not measured: not stated


def test_a_check_green_after_retries_carries_its_earlier_failures(tmp_path: Path) -> None:
    path, _ = written(tmp_path)
    case = next(c for c in ET.parse(path).getroot().iter("testcase")
                if c.get("name") == "reach[10.0.0.1:443]")
    flaky = [(e.tag, e.get("type"), e.get("message"), e.findtext("stackTrace"))
             for e in case if e.tag.startswith("flaky")]
    assert flaky == [
        ("flakyError", "dr.error",
         "app01 reach 10.0.0.1:443: could not observe: no route to host",
         f"attempt 1 of 3 at {at(5)}: observed not observed\n"),
        ("flakyFailure", "dr.failed", "app01 reach 10.0.0.1:443: expected open, observed refused",
         f"attempt 2 of 3 at {at(20)}: observed refused\n")]
    # Still a pass for every reader: no failure, no error.
    assert case.find("failure") is None and case.find("error") is None
    (suite,) = list(JUnitXml.fromfile(str(path)))
    assert next(c for c in suite if c.name == "reach[10.0.0.1:443]").is_passed


def test_a_huge_observation_is_cut_with_a_pointer_to_the_bundle(tmp_path: Path) -> None:
    huge = record("app01::reach[10.0.0.1:8080]", "failed", observed="x" * 200_000)
    path, _ = written(tmp_path, [huge])
    xmlschema.XMLSchema(SCHEMA).validate(path)
    case = next(ET.parse(path).getroot().iter("testcase"))
    pointer = ("the full observation: observations/app01.jsonl, key "
               "app01::reach[10.0.0.1:8080], and results.jsonl]")
    for text in (case.findtext("system-out"), case.findtext("failure")):
        assert text is not None
        assert len(text) < CASE_TEXT_LIMIT + 300
        assert pointer in text and "[cut at 2048 of " in text
    assert path.stat().st_size < 12_000


def test_a_huge_value_is_cut_in_pytest_file_properties_too() -> None:
    huge = record("app01::reach[10.0.0.1:8080]", "failed", observed="x" * 200_000)
    properties = dict(EvidenceSession.properties(huge))
    assert len(properties["dr.observed"]) < CASE_TEXT_LIMIT + 300
    assert properties["dr.observed"].endswith("key app01::reach[10.0.0.1:8080], and "
                                              "results.jsonl]\n")
    assert properties["dr.host"] == "app01"


PYTEST_FILE = ('<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
               '<testsuite name="pytest" errors="0" failures="0" skipped="0" tests="1" '
               'time="0.1" timestamp="2024-05-01T09:30:00" hostname="ci01">'
               '<testcase classname="site.yaml.app01" name="dns[x]" time="0.010" />'
               '</testsuite></testsuites>')


def test_facts_are_spliced_into_pytest_file_as_the_suite_output(tmp_path: Path) -> None:
    path = tmp_path / "drill.xml"
    path.write_text(PYTEST_FILE + "\n")
    assert append_suite_output(path, "verdict: <failed> & \x01 odd\n")
    text = path.read_text()
    assert text.startswith(PYTEST_FILE[:-len("</testsuite></testsuites>")])
    assert text.endswith("<system-out>verdict: &lt;failed&gt; &amp; \\x01 odd\n</system-out>"
                         "</testsuite></testsuites>")
    xmlschema.XMLSchema(SCHEMA).validate(path)
    xsuite, _ = xunitparser.parse(str(path))
    assert xsuite.stdout == "verdict: <failed> & \\x01 odd"


def test_a_file_not_ending_as_pytest_writes_it_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "drill.xml"
    original = PYTEST_FILE.replace("</testsuite></testsuites>", "</testsuite>\n</testsuites>")
    path.write_text(original)
    assert not append_suite_output(path, "facts")
    assert path.read_text() == original


def test_an_interrupted_item_half_made_by_pytest_is_listed_as_not_run(tmp_path: Path) -> None:
    """Ctrl-C between a check's setup report and its call: pytest writes a case with a time and
    no name (seen in test_ctrl_c_seals_the_bundle_as_interrupted, about one run in three)."""
    path = tmp_path / "drill.xml"
    path.write_text('<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
                    '<testsuite name="pytest" errors="0" failures="0" skipped="0" tests="0" '
                    'time="1.0"><testcase time="0.002" /></testsuite></testsuites>')
    add_suite_properties(path, [("dr.verdict", "incomplete")],
                         not_run=[("site.yaml.app01", "reach[127.0.0.1:80]")],
                         not_run_message="not run: the run was interrupted")
    xsuite, _ = xunitparser.parse(str(path))  # raised KeyError: 'name' on the nameless case
    assert [(case.classname, case.methodname) for case in xsuite] == [
        ("site.yaml.app01", "reach[127.0.0.1:80]")]
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("errors")) == ("1", "1")
