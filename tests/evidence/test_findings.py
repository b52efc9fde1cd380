"""``drcheck findings``: every failed, errored, waived or not-run check of a drill as rows for a
ticketing system, with an id that the same failure keeps in the next drill."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from pytest_drcheck.cli import main as drcheck
from pytest_drcheck.evidence.findings import COLUMNS, finding_id
from pytest_drcheck.evidence.layout import FORMAT
from tests.evidence.test_evidence import record

WAIVER = {"id": "RISK-1", "status": "live", "expires": "2030-01-01", "justification": "retired",
          "approved_by": "CISO", "note": "waived"}


def bundle(directory: Path, started_at: str, records: list[dict[str, Any]],
           not_run: list[str] = ()) -> Path:  # type: ignore[assignment]
    directory.mkdir()
    (directory / "drill.json").write_text(json.dumps({
        "format": FORMAT, "drill": {"name": "q3-drill"}, "started_at": started_at,
        "not_run": list(not_run)}))
    (directory / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return directory


def first_drill(tmp_path: Path) -> Path:
    return bundle(tmp_path / "d1", "2024-05-01T09:30:00.000+00:00", [
        record("app01::reach[10.0.0.1:22]", "passed", 5.0),
        record("app01::reach[10.0.0.1:3306]", "failed", observed="refused (attempt at 09:31)",
               started_at="2024-05-01T09:31:00.000+00:00"),
        record("app02::dns[dc01]", "error", started_at="2024-05-01T09:31:30.000+00:00"),
    ])


def second_drill(tmp_path: Path) -> Path:
    """A month later: the same failure (other text and times), the error now waived... no:
    the error fixed, a new failure on another host, a waived one and a check with no result."""
    return bundle(tmp_path / "d2", "2024-06-01T09:30:00.000+00:00", [
        record("app01::reach[10.0.0.1:22]", "passed", 5.0),
        record("app01::reach[10.0.0.1:3306]", "failed", observed="timed out after 5 s",
               message="app01 reach 10.0.0.1:3306: expected open, observed timed out",
               started_at="2024-06-01T09:32:00.000+00:00"),
        record("app02::dns[dc01]", "passed", 7.0),
        record("app03::reach[10.0.0.1:3306]", "failed",
               started_at="2024-06-01T09:33:00.000+00:00"),
        record("app03::reach[10.0.0.1:25]", "waived", waiver=WAIVER,
               started_at="2024-06-01T09:34:00.000+00:00"),
    ], not_run=["app04::dns[db|corp]"])


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_same_failure_keeps_its_id_across_drills(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    d1, d2 = first_drill(tmp_path), second_drill(tmp_path)
    assert drcheck(["findings", str(d1)]) == 0
    first = {r["host"] + " " + r["subject"]: r for r in rows(capsys.readouterr().out)}
    assert drcheck(["findings", str(d1), str(d2)]) == 0
    second = {r["host"] + " " + r["subject"]: r for r in rows(capsys.readouterr().out)}

    assert sorted(first) == ["app01 10.0.0.1:3306", "app02 dc01"]
    assert sorted(second) == ["app01 10.0.0.1:3306", "app03 10.0.0.1:25",
                              "app03 10.0.0.1:3306", "app04 db|corp"]
    same = second["app01 10.0.0.1:3306"]
    # Other observed text, other times: the same id, first seen in the first drill.
    assert same["id"] == first["app01 10.0.0.1:3306"]["id"]
    assert same["id"] == finding_id("app01", "reach", "10.0.0.1:3306", "failed")
    assert same["observed"] == "timed out after 5 s"
    assert same["first_seen"] == "2024-05-01T09:31:00.000+00:00" and same["seen_in"] == "2"
    # The same check on another host is another finding; new ones are first seen now.
    new = second["app03 10.0.0.1:3306"]
    assert new["id"] != same["id"] and new["first_seen"] == "2024-06-01T09:33:00.000+00:00"
    assert new["seen_in"] == "1"
    waived = second["app03 10.0.0.1:25"]
    assert waived["status"] == "waived"
    assert waived["id"] == finding_id("app03", "reach", "10.0.0.1:25", "failed")
    assert waived["waiver"] == "RISK-1 (live, expires 2030-01-01)"
    not_run = second["app04 db|corp"]
    assert (not_run["status"], not_run["check"]) == ("not_run", "dns")
    assert list(rows_header(d2, capsys)) == list(COLUMNS)


def rows_header(directory: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert drcheck(["findings", str(directory)]) == 0
    return capsys.readouterr().out.splitlines()[0].split(",")


def test_an_error_and_a_failure_of_one_check_are_different_findings() -> None:
    failed = finding_id("app01", "dns", "dc01", "failed")
    assert failed != finding_id("app01", "dns", "dc01", "error")
    assert failed != finding_id("app02", "dns", "dc01", "failed")
    assert failed == finding_id("app01", "dns", "dc01", "failed")
    assert failed.startswith("DR-") and len(failed) == 15


def test_markdown_table_for_a_ticket(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    d2 = second_drill(tmp_path)
    out = tmp_path / "findings.md"
    assert drcheck(["findings", str(d2), "--format", "markdown", "-o", str(out)]) == 0
    assert capsys.readouterr().out == (
        f"{out}: 4 finding(s) of drill 'q3-drill' of 2024-06-01T09:30:00.000+00:00\n")
    lines = out.read_text().splitlines()
    assert lines[0] == "# Findings: drill 'q3-drill' of 2024-06-01T09:30:00.000+00:00"
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 + 4
    assert all(line.count(" | ") == len(COLUMNS) - 1 for line in table if "---" not in line)
    assert "| db\\|corp |" in table[-1]  # a pipe in a subject does not break the table


def test_a_clean_drill_and_a_missing_bundle(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    clean = bundle(tmp_path / "ok", "2024-05-01T09:30:00.000+00:00",
                   [record("app01::reach[10.0.0.1:22]", "passed", 5.0)])
    assert drcheck(["findings", str(clean), "--format", "markdown"]) == 0
    assert "No findings: every check passed." in capsys.readouterr().out
    assert drcheck(["findings", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err == (
        f"drcheck findings: {tmp_path / 'nope'}: no drill.json; not an evidence bundle\n")
