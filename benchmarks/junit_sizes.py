"""Sizes and write times of the two JUnit files for a drill of N results (default 2,000: 100
hosts x 20 checks), with a realistic mix (3% failed, 1% error, 1% waived, 2% green after
retries, one huge observation), and what finishing pytest's own ``--junitxml`` file costs:
the old full rewrite (parse and write the whole file) against the splice that adds the drill
facts at its end (the suite properties and error messages go in as pytest writes the file).

Usage: python benchmarks/junit_sizes.py [results] [runs]
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pytest_drcheck.evidence.junit import (  # noqa: E402
    add_suite_properties,
    append_suite_output,
    drill_facts,
    suite_properties,
)
from pytest_drcheck.evidence.junit_bundle import write_junit  # noqa: E402
from pytest_drcheck.evidence.records import counts, iso, measure_rto  # noqa: E402
from pytest_drcheck.evidence.session import EvidenceSession  # noqa: E402

T0 = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)
CHECKS_PER_HOST = 20


def make_records(total: int) -> list[dict[str, Any]]:
    records = []
    for n in range(total):
        host, index = f"app{n // CHECKS_PER_HOST:04d}", n % CHECKS_PER_HOST
        outcome = ("failed" if n % 33 == 5 else "error" if n % 100 == 7
                   else "waived" if n % 100 == 11 else "passed")
        started = T0 + timedelta(seconds=30 + n * 0.01)
        subject = f"10.77.{index}.{n % 250}:443"
        record: dict[str, Any] = {
            "key": f"{host}::reach[{subject}]", "host": host, "check": "reach",
            "subject": subject, "outcome": outcome,
            "check_outcome": "failed" if outcome == "waived" else outcome,
            "expected": "open", "observed": "connected in 2.1 ms" if outcome == "passed"
            else "refused (RST from 10.77.0.1)",
            "message": f"{host} reach {subject}: " + (
                "connected" if outcome == "passed" else "expected open, observed refused"),
            "vantage": f"{host} (10.77.0.{n % 250}, ssh)",
            "source": f"inventories/site.yaml:{40 + index}: hosts.{host}.checks.reach[{index}]",
            "started_at": iso(started), "finished_at": iso(started + timedelta(milliseconds=40)),
            "duration_ms": 40.0, "attempts": 1,
            "green_at": iso(started) if outcome == "passed" else None,
            "time_to_green_s": 30.0 if outcome == "passed" else None, "waiver": None,
        }
        if outcome == "waived":
            record["waiver"] = {"id": "RISK-1", "status": "live", "justification": "retired",
                                "approved_by": "CISO", "expires": "2030-01-01",
                                "note": "waived by RISK-1 until 2030-01-01"}
        if outcome == "passed" and n % 50 == 3:
            record["attempts"] = 3
            record["earlier_failures"] = [
                {"at": iso(started - timedelta(seconds=s)), "outcome": "failed",
                 "observed": "refused", "message": f"{host} reach {subject}: expected open, "
                 "observed refused"} for s in (20, 10)]
        records.append(record)
    records[1]["observed"] = "x" * 500_000  # one huge command output
    return records


def drill_of(records: list[dict[str, Any]]) -> dict[str, Any]:
    rto = measure_rto(records, T0, "--dr-launched-at", 3600.0)
    return {"drill": {"name": "bench", "rto_target_s": 3600.0},
            "inventory": {"path": "inventories/site.yaml", "id": "inventories/site.yaml",
                          "sha256": "ab" * 32},
            "tool": {"version": "0.1.0"}, "runner": {"hostname": "ci01"},
            "started_at": iso(T0), "finished_at": iso(T0 + timedelta(minutes=5)),
            "launched_at": iso(T0), "launched_at_source": "--dr-launched-at",
            "rto": rto.as_dict(), "counts": counts(records), "verdict": "failed",
            "verdict_reasons": ["failed checks"], "waivers": [], "not_run": []}


def pytest_file(path: Path, records: list[dict[str, Any]]) -> None:
    """The shape pytest's junitxml writes for these checks (case properties, one line)."""
    root = ET.Element("testsuites", name="pytest tests")
    suite = ET.SubElement(root, "testsuite", name="pytest", errors="0", failures="0",
                          skipped="0", tests=str(len(records)), time="300.0",
                          timestamp=iso(T0), hostname="ci01")
    for record in records:
        case = ET.SubElement(suite, "testcase", classname=f"inventories.site.yaml.{record['host']}",
                             name=f"reach[{record['subject']}]", time="0.040")
        block = ET.SubElement(case, "properties")
        for name, value in EvidenceSession.properties(record):
            ET.SubElement(block, "property", name=name, value=value)
        if record["outcome"] == "failed":
            ET.SubElement(case, "failure", message=record["message"]).text = record["message"]
    path.write_text('<?xml version="1.0" encoding="utf-8"?>'
                    + ET.tostring(root, encoding="unicode"), encoding="utf-8")


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms"


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    records = make_records(total)
    drill = drill_of(records)
    with tempfile.TemporaryDirectory() as name:
        work = Path(name)
        bundle_times = []
        for _ in range(runs):
            started = time.perf_counter()
            write_junit(work / "junit.xml", drill, records)
            bundle_times.append(time.perf_counter() - started)
        pytest_file(work / "base.xml", records)
        properties = suite_properties(drill)
        facts = drill_facts(drill)
        rewrite, splice = [], []
        for _ in range(runs):  # interleaved
            shutil.copy(work / "base.xml", work / "rewrite.xml")
            started = time.perf_counter()
            add_suite_properties(work / "rewrite.xml", properties, output=facts)
            rewrite.append(time.perf_counter() - started)
            shutil.copy(work / "base.xml", work / "splice.xml")
            started = time.perf_counter()
            assert append_suite_output(work / "splice.xml", facts)
            splice.append(time.perf_counter() - started)
        print(f"{total} results ({total // CHECKS_PER_HOST} hosts x {CHECKS_PER_HOST}), "
              f"medians of {runs} runs")
        print(f"bundle junit.xml: {(work / 'junit.xml').stat().st_size / 1024:.0f} KiB, "
              f"written in {median_ms(bundle_times)}")
        print(f"pytest --junitxml file: {(work / 'splice.xml').stat().st_size / 1024:.0f} KiB")
        print(f"finishing pytest's file: full rewrite {median_ms(rewrite)}, splice "
              f"{median_ms(splice)} "
              f"({statistics.median(rewrite) / statistics.median(splice):.0f}x)")


if __name__ == "__main__":
    main()
