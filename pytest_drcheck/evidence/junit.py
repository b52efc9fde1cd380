"""Our properties in the JUnit XML that pytest's junitxml plugin writes.

Test-case properties travel as pytest ``user_properties`` (so they also cross pytest-xdist's
worker boundary). Suite properties are added to the finished file by the controlling process,
because pytest's own suite-property fixture does not work under xdist.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_drcheck.durations import format_duration
from pytest_drcheck.evidence.layout import OBSERVATIONS, RESULTS
from pytest_drcheck.evidence.properties import CASE_FIELDS, OUTCOME, WAIVER_FIELDS

# The type of a check error's <error> element (both JUnit files).
ERROR_TYPE = "dr.error"


# The most of one case's text (its system-out, a failure's details) the file carries: dorny's
# test-reporter caps a whole report at 64 KiB and CI pages slow down on huge cases. The full
# observation stays in the bundle, which the cut text points to.
CASE_TEXT_LIMIT = 2048


def capped(text: str, record: Mapping[str, Any], limit: int = CASE_TEXT_LIMIT) -> str:
    """``text``, or its first ``limit`` characters and where the whole observation is."""
    if len(text) <= limit:
        return text
    return (f"{text[:limit]}\n[cut at {limit} of {len(text)} characters; the full "
            f"observation: {OBSERVATIONS}/{record.get('host')}.jsonl, key {record.get('key')}, "
            f"and {RESULTS}]\n")


def case_properties(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A check's case properties, from its (redacted) result record: the reported outcome
    (``waived`` included), the observation, time to green and the waiver that applied or
    expired."""
    properties = [(name, _text(record.get(field))) for name, field in CASE_FIELDS]
    waiver = record.get("waiver")
    if waiver:
        properties += [(name, _text(waiver.get(field))) for name, field in WAIVER_FIELDS]
    return properties


def add_suite_properties(xml_path: Path, properties: Sequence[tuple[str, str]],
                         not_run: Sequence[tuple[str, str]] = (), not_run_message: str = "",
                         output: str | None = None) -> None:
    """Finish pytest's JUnit file by rewriting it (the slow path, see ``plugins.evidence``):
    insert properties first in every <testsuite> (where the JUnit schema wants them), give each
    check error its cause as message, add the checks that never ran (``(classname, name)``, an
    interrupted run) as errors and the drill facts as the suite's ``system-out``."""
    tree = ET.parse(xml_path)
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if suites and not_run:
        for suite in suites:
            _drop_half_made_cases(suite)
        _add_not_run(root, suites[0], not_run, not_run_message)
    for suite in suites:
        block = suite.find("properties")
        if block is None:
            block = ET.Element("properties")
            suite.insert(0, block)
        existing = {p.get("name") for p in block.findall("property")}
        for name, value in unique_properties(properties):
            if name not in existing:
                ET.SubElement(block, "property", name=name, value=value)
        for case in suite.iter("testcase"):
            _cause_as_error_message(case)
        if output is not None and suite.find("system-out") is None:
            ET.SubElement(suite, "system-out").text = xml_text(output)
    tree.write(xml_path, encoding="utf-8", xml_declaration=True)


def unique_properties(properties: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The first value of each name (a suite property appears once)."""
    seen: set[str] = set()
    unique = []
    for name, value in properties:
        if name not in seen:
            seen.add(name)
            unique.append((name, value))
    return unique


# Characters XML 1.0 cannot carry at all (command output can contain them).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: object) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", "" if value is None else str(value))


# How pytest's junitxml ends its file (``ET.tostring`` of <testsuites><testsuite>).
_PYTEST_TAIL = b"</testsuite></testsuites>"


def append_suite_output(xml_path: Path, text: str) -> bool:
    """Add the suite's ``system-out`` to pytest's JUnit file without rewriting it: the element
    goes last in the suite (where the schema wants it), spliced in before the closing tags.
    False (nothing changed) when the file does not end as pytest writes it."""
    # Imported here: xml.sax.saxutils brings urllib, http and ssl, at every collection.
    from xml.sax.saxutils import escape

    element = f"<system-out>{escape(xml_text(text))}</system-out>".encode()
    with xml_path.open("r+b") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        tail_at = max(0, size - len(_PYTEST_TAIL) - 8)
        handle.seek(tail_at)
        tail = handle.read()
        stripped = tail.rstrip()
        if not stripped.endswith(_PYTEST_TAIL):
            return False
        handle.seek(tail_at + len(stripped) - len(_PYTEST_TAIL))
        handle.write(element + _PYTEST_TAIL)
        handle.truncate()
    return True


def cause_as_error_message(element: ET.Element, cause: str) -> None:
    """pytest writes a setup error as ``failed on setup with "<report>"``; for a check that
    could not observe, the message CI shows must be the cause itself."""
    element.set("message", cause.strip())
    element.set("type", ERROR_TYPE)


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


def _drop_half_made_cases(suite: ET.Element) -> None:
    """An interrupt between an item's setup report and its call leaves pytest a case with a
    duration and no name (its reporter was made for the duration, never opened): no reader
    can identify it (xunitparser fails on it), and the check is listed as not run."""
    for case in suite.findall("testcase"):
        if not case.get("name"):
            suite.remove(case)


def _cause_as_error_message(case: ET.Element) -> None:
    """pytest writes a setup error as ``failed on setup with "<report>"``; for a check that
    could not observe, the message CI shows must be the cause itself (the report's text)."""
    error = case.find("error")
    outcome = next((p.get("value") for p in case.iter("property")
                    if p.get("name") == OUTCOME), None)
    if error is not None and outcome == "error" and error.text:
        cause_as_error_message(error, error.text)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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


def drill_facts(drill: Mapping[str, Any]) -> str:
    """The drill's key facts as the suite's ``system-out``: CI systems that drop suite
    properties (Jenkins, GitLab) show it. Verdict, measured RTO (and RPO when measured)
    against target, the counts and the inventory's hash."""
    name = drill.get("drill", {}).get("name", "")
    counts = drill.get("counts", {})
    shown = ", ".join(f"{counts[key]} {key.replace('_', ' ')}"
                      for key in ("passed", "failed", "waived", "error", "skipped", "not_run")
                      if counts.get(key))
    reasons = "; ".join(str(r) for r in drill.get("verdict_reasons", []))
    lines = [f"drcheck drill '{name}': {str(drill.get('verdict', 'unknown')).upper()}"
             f"{' (' + reasons + ')' if reasons else ''}",
             f"checks: {shown or 'none'}"]
    for label, facts in (("RTO", drill.get("rto") or {}), ("RPO", drill.get("rpo") or {})):
        target = facts.get("target_s")
        target_text = f"target {format_duration(target)}" if target is not None else "no target"
        measured = facts.get("measured_s")
        if measured is not None:
            met = facts.get("met")
            state = ": met" if met is True else ": MISSED" if met is False else ""
            lines.append(f"{label}: measured {format_duration(measured)} ({target_text}){state}")
        elif label == "RTO" and facts.get("never_green"):
            lines.append(f"RTO: not reached, {facts['never_green']} check(s) never went green "
                         f"({target_text})")
    inventory = drill.get("inventory", {})
    lines.append(f"inventory: {inventory.get('path', '')} sha256 {inventory.get('sha256', '')}")
    if drill.get("started_at"):
        lines.append(f"run: {drill.get('started_at')} to {drill.get('finished_at') or '?'}")
    return "".join(f"{line}\n" for line in lines)
