"""Our properties in the JUnit XML that pytest's junitxml plugin writes.

Test-case properties travel as pytest ``user_properties`` (so they also cross pytest-xdist's
worker boundary). Suite properties are added to the finished file by the controlling process,
because pytest's own suite-property fixture does not work under xdist.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_drcheck.model import CheckResult


def case_properties(result: CheckResult, source: str) -> list[tuple[str, str]]:
    return [
        ("dr.host", result.host),
        ("dr.check", result.check),
        ("dr.subject", result.subject),
        ("dr.outcome", result.outcome.value),
        ("dr.expected", result.expected),
        ("dr.observed", result.observed),
        ("dr.vantage", result.vantage),
        ("dr.started_at", result.started_at.isoformat(timespec="milliseconds")),
        ("dr.duration_ms", f"{result.duration_ms:.1f}"),
        ("dr.attempts", str(result.attempts)),
        ("dr.source", source),
    ]


def add_suite_properties(xml_path: Path, properties: Sequence[tuple[str, str]],
                         not_run: Sequence[tuple[str, str]] = (), not_run_message: str = ""
                         ) -> None:
    """Finish pytest's JUnit file: insert properties first in every <testsuite> (where the
    JUnit schema wants them), give each check error its cause as message, and add the checks
    that never ran (``(classname, name)``, an interrupted run) as errors."""
    tree = ET.parse(xml_path)
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if suites and not_run:
        _add_not_run(root, suites[0], not_run, not_run_message)
    for suite in suites:
        block = suite.find("properties")
        if block is None:
            block = ET.Element("properties")
            suite.insert(0, block)
        existing = {p.get("name") for p in block.findall("property")}
        for name, value in properties:
            if name not in existing:
                existing.add(name)
                ET.SubElement(block, "property", name=name, value=value)
        for case in suite.iter("testcase"):
            _cause_as_error_message(case)
    tree.write(xml_path, encoding="utf-8", xml_declaration=True)


def _add_not_run(root: ET.Element, suite: ET.Element, not_run: Sequence[tuple[str, str]],
                 message: str) -> None:
    present = {(c.get("classname"), c.get("name")) for c in suite.iter("testcase")}
    added = 0
    for classname, name in not_run:
        if (classname, name) in present:
            continue
        case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0.000")
        ET.SubElement(case, "error", type="dr.not_run", message=message).text = message
        added += 1
    for element in {id(e): e for e in (root, suite)}.values():
        for counter in ("tests", "errors"):
            if element.get(counter) is not None:
                element.set(counter, str(int(element.get(counter) or 0) + added))


def _cause_as_error_message(case: ET.Element) -> None:
    """pytest writes a setup error as ``failed on setup with "<report>"``; for a check that
    could not observe, the message CI shows must be the cause itself (the report's text)."""
    error = case.find("error")
    outcome = next((p.get("value") for p in case.iter("property")
                    if p.get("name") == "dr.outcome"), None)
    if error is not None and outcome == "error" and error.text:
        error.set("message", error.text.strip())
        error.set("type", "dr.error")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def evidence_case_properties(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What a result record adds to the foundation's case properties: the reported outcome
    (``waived`` included), time to green and the waiver that applied or expired."""
    properties = [
        ("dr.check_outcome", _text(record.get("check_outcome"))),
        ("dr.green_at", _text(record.get("green_at"))),
        ("dr.time_to_green_s", _text(record.get("time_to_green_s"))),
    ]
    waiver = record.get("waiver")
    if waiver:
        properties += [
            ("dr.waiver", _text(waiver.get("id"))),
            ("dr.waiver_status", _text(waiver.get("status"))),
            ("dr.waiver_justification", _text(waiver.get("justification"))),
            ("dr.waiver_approved_by", _text(waiver.get("approved_by"))),
            ("dr.waiver_expires", _text(waiver.get("expires"))),
        ]
    return properties


def suite_properties(drill: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The drill-level facts of ``drill.json`` as JUnit suite properties."""
    inventory = drill.get("inventory", {})
    git = inventory.get("git") or {}
    rto = drill.get("rto", {})
    ci = drill.get("ci") or {}
    shard = drill.get("shard")
    properties = [
        ("dr.drill", _text(drill.get("drill", {}).get("name"))),
        ("dr.inventory", _text(inventory.get("path"))),
        ("dr.inventory_sha256", _text(inventory.get("sha256"))),
        ("dr.inventory_git_commit", _text(git.get("commit"))),
        ("dr.inventory_modified", _text(git.get("inventory_modified"))),
        ("dr.tool_version", _text(drill.get("tool", {}).get("version"))),
        ("dr.operator", _text(drill.get("operator"))),
        ("dr.ci_system", _text(ci.get("system"))),
        ("dr.ci_run_id", _text(ci.get("run_id"))),
        ("dr.ci_url", _text(ci.get("url"))),
        ("dr.launched_at", _text(rto.get("anchor"))),
        ("dr.launched_at_source", _text(rto.get("anchor_source"))),
        ("dr.started_at", _text(drill.get("started_at"))),
        ("dr.finished_at", _text(drill.get("finished_at"))),
        ("dr.rto_target_s", _text(rto.get("target_s"))),
        ("dr.rto_measured_s", _text(rto.get("measured_s"))),
        ("dr.rto_met", _text(rto.get("met"))),
        ("dr.rto_last_green", _text(rto.get("last_green"))),
        ("dr.rpo_target_s", _text(drill.get("rpo", {}).get("target_s"))),
        ("dr.rpo_measured_s", _text(drill.get("rpo", {}).get("measured_s"))),
        ("dr.rpo_met", _text(drill.get("rpo", {}).get("met"))),
        ("dr.rpo_worst_host", _text(drill.get("rpo", {}).get("worst_host"))),
        ("dr.verdict", _text(drill.get("verdict"))),
        ("dr.shard", f"{shard['index']}/{shard['count']}" if shard else ""),
    ]
    for name, number in sorted(drill.get("counts", {}).items()):
        properties.append((f"dr.count_{name}", _text(number)))
    waivers = drill.get("waivers", [])
    properties += [
        ("dr.waivers", _text(len(waivers))),
        ("dr.waivers_applied", ",".join(w["id"] for w in waivers if w.get("applied"))),
        ("dr.waivers_expired", ",".join(w["id"] for w in waivers if w.get("status") == "expired")),
        ("dr.waivers_stale", ",".join(w["id"] for w in waivers if w.get("stale"))),
    ]
    return [(name, value) for name, value in properties if value != ""]
