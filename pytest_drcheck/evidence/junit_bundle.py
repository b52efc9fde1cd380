"""The bundle's JUnit file, written from the result records.

Unlike pytest's ``--junitxml`` file (whose test cases carry ``<properties>``, which Jenkins'
JUnit plugin reads but the Jenkins xUnit ``junit-10.xsd`` schema forbids), this file is valid
against that schema, the strictest one CI systems apply: drill facts are suite properties, and
each case's evidence is in its ``<system-out>`` as ``dr.name: value`` lines (shown by Jenkins,
GitLab and GitHub reporters). A waived check is ``<skipped type="dr.waived">``: it does not
fail the build, and it is not counted as passed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_drcheck.evidence.junit import (
    ERROR_TYPE,
    capped,
    case_properties,
    drill_facts,
    suite_properties,
    xml_text,
)
from pytest_drcheck.evidence.records import counts, parse_instant


def _seconds(milliseconds: object) -> str:
    try:
        return f"{float(milliseconds) / 1000.0:.3f}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "0.000"


def classname(inventory: str, host: str) -> str:
    """What pytest's junitxml writes for the same test (``site.yaml.app01``), so both files
    name a check the same way."""
    return f"{inventory.replace('/', '.').replace(chr(92), '.')}.{host}"


def case_lines(record: Mapping[str, Any]) -> str:
    """The case properties as ``dr.name: value`` lines (shown by CI where properties are not)."""
    return "".join(f"{name}: {value}\n" for name, value in case_properties(record))


def _flaky(case: ET.Element, record: Mapping[str, Any]) -> None:
    """Surefire's convention for a test that passed on a rerun: each earlier failed attempt is
    a ``<flakyFailure>`` (a wrong value) or ``<flakyError>`` (could not observe) of the
    passing case. Readers that do not know them ignore them: the case stays a pass."""
    earlier = record.get("earlier_failures") or []
    for number, attempt in enumerate(earlier, start=1):
        tag = "flakyError" if attempt.get("outcome") == "error" else "flakyFailure"
        element = ET.SubElement(case, tag, type=f"dr.{attempt.get('outcome')}",
                                message=xml_text(capped(str(attempt.get("message")), record)))
        ET.SubElement(element, "stackTrace").text = xml_text(capped(
            f"attempt {number} of {record.get('attempts')} at {attempt.get('at')}: observed "
            f"{attempt.get('observed')}\n", record))


def _case(parent: ET.Element, record: Mapping[str, Any], inventory: str) -> None:
    source = str(record.get("source", ""))
    file_part, _, rest = source.partition(":")
    line = rest.split(":", 1)[0] if rest else ""
    attributes = {
        "classname": classname(inventory, str(record.get("host"))),
        "name": f"{record.get('check')}[{record.get('subject')}]",
        "time": _seconds(record.get("duration_ms")),
        "timestamp": str(record.get("started_at", "")),
        "file": file_part,
    }
    if line.isdigit():
        attributes["line"] = line
    case = ET.SubElement(parent, "testcase", {k: xml_text(v) for k, v in attributes.items()})
    outcome = record.get("outcome")
    message = xml_text(capped(str(record.get("message")), record))
    detail = xml_text(capped(
        f"expected: {record.get('expected')}\nobserved: {record.get('observed')}\n"
        f"attempts: {record.get('attempts')}\nsource: {source}\n", record))
    if outcome == "passed":
        _flaky(case, record)
    elif outcome == "failed":
        element = ET.SubElement(case, "failure", type="dr.failed", message=message)
        element.text = detail
    elif outcome == "error":
        element = ET.SubElement(case, "error", type=ERROR_TYPE, message=message)
        element.text = detail
    elif outcome == "waived":
        waiver = record.get("waiver") or {}
        element = ET.SubElement(case, "skipped", type="dr.waived",
                                message=xml_text(waiver.get("note") or "waived"))
        element.text = xml_text(f"failure waived: {message}\n") + detail
    elif outcome == "skipped":
        element = ET.SubElement(case, "skipped", type="dr.skipped", message=message)
    out = ET.SubElement(case, "system-out")
    out.text = xml_text(capped(case_lines(record), record))


NOT_RUN_TYPE = "dr.not_run"


def not_run_message(drill: Mapping[str, Any]) -> str:
    if drill.get("status") == "interrupted":
        return "not run: the run was interrupted"
    return "not run: the run ended without a result for this check"


def split_key(key: str) -> tuple[str, str, str]:
    """``host::check[subject]`` -> (host, check, subject)."""
    host, _, name = key.partition("::")
    check, _, subject = name.partition("[")
    return host, check, subject[:-1] if subject.endswith("]") else subject


def _not_run_case(parent: ET.Element, key: str, inventory: str, message: str) -> None:
    host, check, subject = split_key(key)
    case = ET.SubElement(parent, "testcase", {
        "classname": xml_text(classname(inventory, host)),
        "name": xml_text(f"{check}[{subject}]"), "time": "0.000"})
    element = ET.SubElement(case, "error", type=NOT_RUN_TYPE, message=message)
    element.text = xml_text(f"{key}: {message}\n")


def wall_seconds(drill: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> float:
    """The run's wall time: start of checking to its end, or (a killed run sealed later) to
    the last result it wrote. Not the sum of the checks' durations: they overlap."""
    started = drill.get("started_at")
    if not started:
        return 0.0
    ends = [str(drill["finished_at"])] if drill.get("finished_at") else [
        str(r["finished_at"]) for r in records if r.get("finished_at")]
    if not ends:
        return 0.0
    last = max(parse_instant(end) for end in ends)
    return max(0.0, (last - parse_instant(str(started))).total_seconds())


def write_junit(path: Path, drill: Mapping[str, Any], records: Sequence[Mapping[str, Any]]
                ) -> None:
    totals = counts(records)
    not_run = [str(key) for key in drill.get("not_run", [])]
    seconds = wall_seconds(drill, records)
    # A check that never ran is an error: CI must not read an interrupted drill as green.
    tests = str(totals["total"] + len(not_run))
    failures, errors = str(totals["failed"]), str(totals["error"] + len(not_run))
    skipped = str(totals["skipped"] + totals["waived"])
    root = ET.Element("testsuites", {
        "name": xml_text(f"drcheck {drill.get('drill', {}).get('name', '')}"),
        "tests": tests, "failures": failures, "errors": errors, "time": f"{seconds:.3f}"})
    suite = ET.SubElement(root, "testsuite", {
        "name": xml_text(drill.get("drill", {}).get("name", "drill")),
        "tests": tests, "failures": failures, "errors": errors, "skipped": skipped,
        "time": f"{seconds:.3f}", "timestamp": xml_text(drill.get("started_at", "")),
        "hostname": xml_text(drill.get("runner", {}).get("hostname", ""))})
    properties = ET.SubElement(suite, "properties")
    for name, value in suite_properties(drill):
        ET.SubElement(properties, "property", name=xml_text(name), value=xml_text(value))
    inventory = inventory_id(drill)
    for record in records:
        _case(suite, record, inventory)
    message = not_run_message(drill)
    for key in not_run:
        _not_run_case(suite, key, inventory, message)
    ET.SubElement(suite, "system-out").text = xml_text(drill_facts(drill))
    ET.indent(root)
    temporary = path.with_suffix(".tmp")
    ET.ElementTree(root).write(temporary, encoding="utf-8", xml_declaration=True)
    temporary.replace(path)


def inventory_id(drill: Mapping[str, Any]) -> str:
    """The first part of the checks' pytest ids (``site.yaml``), as the run recorded it."""
    inventory = drill.get("inventory", {})
    return str(inventory.get("id") or inventory.get("path") or "inventory")
