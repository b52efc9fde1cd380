"""OSCAL assessment-results of a real drill's bundle (`drcheck export --format oscal` and
`--dr-oscal`), validated with compliance-trestle's OSCAL models."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from trestle.oscal.assessment_results import Model

from pytest_drcheck.cli import main as drcheck
from pytest_drcheck.evidence.oscal import assessment_results
from tests.evidence.drills import local_drill, reseal
from tests.evidence.test_signing import sign, the_line
from tests.evidence.test_signoff import ident, signoff


def export(capsys: pytest.CaptureFixture[str], directory: Path) -> dict[str, Any]:
    capsys.readouterr()
    assert drcheck(["export", "--format", "oscal", str(directory)]) == 0
    out = capsys.readouterr().out
    document: dict[str, Any] = json.loads(out)
    Model.model_validate(document)  # raises on anything OSCAL does not allow
    return document


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_drill_as_oscal_assessment_results(bundle: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    document = export(capsys, bundle)["assessment-results"]
    drill = json.loads((bundle / "drill.json").read_text())
    records = {r["key"]: r for r in lines_of(bundle / "results.jsonl")}
    resources = {r["uuid"]: r for r in document["back-matter"]["resources"]}
    assert document["metadata"]["title"] == "DR drill local-drill: FAILED"
    # The imported plan stub is the inventory, by hash.
    plan = resources[document["import-ap"]["href"].removeprefix("#")]
    assert plan["rlinks"][0]["hashes"] == [{"algorithm": "SHA-256",
                                            "value": drill["inventory"]["sha256"]}]
    [result] = document["results"]
    assert (result["start"], result["end"]) == (drill["started_at"], drill["finished_at"])
    observations = {o["title"]: o for o in result["observations"]}
    assert set(observations) == {*records, "Measured RTO"}
    for key, record in records.items():
        observation = observations[key]
        assert observation["methods"] == ["TEST"]
        assert observation["collected"] == record["finished_at"]
        props = {p["name"]: p["value"] for p in observation["props"]}
        assert props["outcome"] == record["outcome"] and props["host"] == record["host"]
        # Each piece of relevant evidence is a bundle file whose hash is the file's own.
        for evidence in observation["relevant-evidence"]:
            resource = resources[evidence["href"].removeprefix("#")]
            link = resource["rlinks"][0]
            actual = hashlib.sha256((bundle / link["href"]).read_bytes()).hexdigest()
            assert link["hashes"] == [{"algorithm": "SHA-256", "value": actual}]
        assert {resources[e["href"][1:]]["title"] for e in observation["relevant-evidence"]} == {
            "results.jsonl", f"observations/{record['host']}.jsonl"}
    states = {f["title"]: (f["target"]["status"]["state"], f["target"]["status"]["reason"])
              for f in result["findings"]}
    failed = next(k for k, r in records.items() if r["outcome"] == "failed")
    assert states.pop(failed) == ("not-satisfied", "fail")
    # A failed check means the RTO was never reached: the objective is not satisfied.
    assert states.pop("RTO objective") == ("not-satisfied", "fail")
    assert set(states.values()) == {("satisfied", "pass")} and len(states) == 3
    rto = observations["Measured RTO"]
    assert rto["description"] == "RTO not measured against a target of 3600.0 s: missed"
    assert "attestations" not in result
    # Exporting twice gives the same document (name-based UUIDs, times from the bundle).
    assert export(capsys, bundle) == {"assessment-results": document}


def test_measured_rto_and_rpo_and_approvals(bundle: Path, keys: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    drill_path = bundle / "drill.json"
    drill = json.loads(drill_path.read_text())
    drill["rto"] |= {"measured_s": 1712.5, "met": True}
    # The shape a measured RPO takes in drill.json (beside the RTO).
    drill["rpo"] = {"target_s": 900.0, "measured_s": 192.0, "met": True, "worst_host": "app01"}
    drill_path.write_text(json.dumps(drill))
    reseal(bundle)
    sign(bundle, keys["ci"])
    assert signoff(bundle, keys["manager"], "J. Doe", "DR manager", "fix app02 by Q3") == 0
    result = export(capsys, bundle)["assessment-results"]["results"][0]
    observations = {o["title"]: o for o in result["observations"]}
    assert observations["Measured RTO"]["description"] == (
        "RTO measured 1712.5 s against a target of 3600.0 s: met")
    rpo = observations["Measured RPO"]
    assert rpo["description"] == "RPO measured 192.0 s against a target of 900.0 s: met"
    assert {p["name"]: p["value"] for p in rpo["props"]} == {
        "rpo-measured-seconds": "192.0", "rpo-target-seconds": "900.0", "rpo-met": "true",
        "rpo-worst-host": "app01"}
    findings = {f["title"]: f["target"]["status"]["state"] for f in result["findings"]}
    assert findings["RTO objective"] == findings["RPO objective"] == "satisfied"
    [attestation] = result["attestations"]
    [part] = attestation["parts"]
    assert part["title"] == "Sign-off 1 by J. Doe (DR manager)"
    assert "fix app02 by Q3" in part["prose"] and ident(keys["manager"]) in part["prose"]


def test_export_to_a_file_and_refusing_altered_evidence(bundle: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    output = tmp_path / "ar.json"
    capsys.readouterr()
    assert drcheck(["export", "--format", "oscal", str(bundle), "-o", str(output)]) == 0
    assert capsys.readouterr().out == (
        f"{output}: OSCAL assessment-results of {bundle}, {output.stat().st_size} bytes\n")
    Model.model_validate_json(output.read_text())
    (bundle / "junit.xml").write_text("<testsuites/>")
    assert drcheck(["export", "--format", "oscal", str(bundle)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert the_line(err) == (f"drcheck export: {bundle}: the bundle does not match its manifest "
                             "(changed: junit.xml); refusing to export altered evidence")


def test_trestle_rejects_what_oscal_does_not_allow(bundle: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The validation in these tests can fail: a state OSCAL does not know is refused."""
    document = export(capsys, bundle)
    broken = copy.deepcopy(document)
    broken["assessment-results"]["results"][0]["findings"][0]["target"]["status"][
        "state"] = "passed"
    with pytest.raises(ValidationError, match="satisfied"):
        Model.model_validate(broken)
    broken = copy.deepcopy(document)
    broken["assessment-results"]["results"][0]["observations"][0]["props"][0]["value"] = ""
    with pytest.raises(ValidationError):
        Model.model_validate(broken)


def test_empty_and_odd_values_still_make_valid_oscal() -> None:
    """Names OSCAL's tokens do not allow, empty messages, waived and not-run checks."""
    drill = {"drill": {"name": "d"}, "started_at": "2024-05-01T09:30:00.000+00:00",
             "finished_at": "2024-05-01T09:31:00.000+00:00", "verdict": "incomplete",
             "inventory": {"path": "site.yaml", "sha256": "0" * 64},
             "not_run": ["9host::reach[10.0.0.1:443]"], "rto": {}}
    records = [{"key": "9host::dns[ä b/c]", "host": "9host", "check": "dns",
                "subject": "ä b/c", "outcome": "waived", "message": "", "expected": "",
                "observed": " ", "finished_at": "2024-05-01T09:30:30.000+00:00",
                "waiver": {"id": "RISK-1", "justification": "by design"}}]
    document = assessment_results(drill, records, {"results.jsonl": "1" * 64}, "2" * 64)
    Model.model_validate(document)
    findings = document["assessment-results"]["results"][0]["findings"]
    assert [f["target"]["status"]["state"] for f in findings] == ["not-satisfied"] * 2
    assert findings[0]["target"]["remarks"] == "waived under RISK-1: by design"
    assert findings[0]["target"]["target-id"] == "_9host.dns.__b_c"
    # A drill with no result at all (every check filtered out) is still a valid document.
    empty = assessment_results(drill | {"not_run": []}, [], {}, "3" * 64)
    Model.model_validate(empty)
    assert "observations" not in empty["assessment-results"]["results"][0]


def test_dr_oscal_writes_it_at_the_end_of_the_run(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "drill" / "drill.oscal.json"
    bundle = local_drill(tmp_path / "drill", extra=[f"--dr-oscal={output}"])
    ran = (tmp_path / "drill" / "pytest-output.txt").read_text()
    assert f"{output}: OSCAL assessment-results, {output.stat().st_size} bytes" in ran
    written = json.loads(output.read_text())
    assert written == export(capsys, bundle)  # the same as exporting the bundle afterwards


def test_dr_oscal_needs_an_evidence_bundle(pytester: pytest.Pytester) -> None:
    (pytester.path / "site.yaml").write_text(
        "version: 1\ndrill: {name: d}\nhosts:\n  a: {connection: {type: local}}\n")
    result = pytester.runpytest("--dr-inventory=site.yaml", "--dr-oscal=x.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --dr-oscal needs --dr-evidence=DIR: the OSCAL file "
                                 "refers to the evidence bundle's files by their SHA-256"])
