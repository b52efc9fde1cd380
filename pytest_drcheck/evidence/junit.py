"""Our properties in the JUnit XML that pytest's junitxml plugin writes.

Test-case properties travel as pytest ``user_properties`` (so they also cross pytest-xdist's
worker boundary). Suite properties are added to the finished file by the controlling process,
because pytest's own suite-property fixture does not work under xdist.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

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


def add_suite_properties(xml_path: Path, properties: Sequence[tuple[str, str]]) -> None:
    """Insert properties first in every <testsuite> (where the JUnit schema wants them)."""
    tree = ET.parse(xml_path)
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for suite in suites:
        block = suite.find("properties")
        if block is None:
            block = ET.Element("properties")
            suite.insert(0, block)
        existing = {p.get("name") for p in block.findall("property")}
        for name, value in properties:
            if name not in existing:
                ET.SubElement(block, "property", name=name, value=value)
    tree.write(xml_path, encoding="utf-8", xml_declaration=True)
