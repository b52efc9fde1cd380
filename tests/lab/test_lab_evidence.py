"""The sandbox drill's evidence: the lab drill (real sshd, dnsmasq, unbound in namespaces) run
with --dr-evidence gives a bundle that verifies, a JUnit file two independent readers agree on,
and a report that headless chromium renders; the screenshot is kept for people to look at."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xmlschema
from junitparser import JUnitXml

from pytest_drcheck.cli import main as drcheck
from pytest_drcheck.lab import Lab
from tests.browser import ARTIFACTS, chromium, colour_share, hex_colour, render

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("drlab")]

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "lab.yaml"
SCHEMA = REPO / "tests" / "data" / "junit-ci.xsd"


def drill(cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", f"--dr-inventory={INVENTORY}", "-p", "no:cacheprovider",
         "-q", *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    return done, time.perf_counter() - started


def test_lab_drill_bundle_verifies_and_its_report_renders(lab: Lab, tmp_path: Path) -> None:
    plain, plain_seconds = drill(tmp_path, "--junitxml=plain.xml")
    done, evidence_seconds = drill(tmp_path, "--dr-evidence=ev", "--junitxml=drill.xml")
    assert done.returncode == plain.returncode, done.stdout[-3000:]
    print(f"lab drill: {plain_seconds:.2f} s plain, {evidence_seconds:.2f} s with the bundle")
    evidence = tmp_path / "ev"
    assert drcheck(["verify", str(evidence)]) == 0

    facts = json.loads((evidence / "drill.json").read_text())
    counts = facts["counts"]
    assert counts["total"] == counts["passed"] + counts["failed"] + counts["error"] + counts[
        "skipped"] + counts["waived"] > 20
    assert facts["drill"]["name"] == "lab-drill" and facts["drill"]["rto_target_s"] == 4 * 3600
    hosts = set(facts["selection"]["hosts"])
    assert {"app01", "app02", "db01"} <= hosts
    assert {p.stem for p in (evidence / "observations").glob("*.jsonl")} == hosts
    records = [json.loads(line) for line in (evidence / "results.jsonl").read_text().splitlines()]
    assert all(r["vantage"].startswith(f"{r['host']} (ssh root@10.77.0.") for r in records)
    if counts["failed"] == counts["error"] == 0:
        assert facts["verdict"] == "passed" and facts["rto"]["met"] is True
        assert 0 < facts["rto"]["measured_s"] < 60

    xmlschema.XMLSchema(SCHEMA).validate(evidence / "junit.xml")
    for path in (evidence / "junit.xml", tmp_path / "drill.xml"):
        suites = list(JUnitXml.fromfile(str(path)))
        assert (sum(s.tests for s in suites), sum(s.failures for s in suites),
                sum(s.errors for s in suites)) == (counts["total"], counts["failed"],
                                                   counts["error"])

    if chromium() is None:
        pytest.skip("needs chromium for the rendering half")
    screenshot = ARTIFACTS / "report-lab-drill.png"
    dom = render(evidence / "report.html", screenshot, height=2600)
    assert f'<section class="verdict {facts["verdict"]}" id="verdict">' in dom
    assert "DR drill <span id=\"drill-name\">lab-drill</span>" in dom
    for host in ("app01", "app02", "db01"):
        row = dom.split(f'<tr data-host="{host}">', 1)[1].split("</tr>", 1)[0]
        assert 'data-check="dns"' in row and 'data-check="reach"' in row
    if facts["verdict"] == "passed":
        assert "target met" in dom
        assert colour_share(screenshot, hex_colour("#1a7f37"), box=(80, 30, 400, 120)) > 0.5
