"""`drcheck signoff` on a real drill's bundle: signed, chained approvals that the report shows
and `drcheck verify` checks; forged, dropped or stale approvals fail in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_drcheck.cli import main as drcheck
from pytest_drcheck.evidence.signing import key_id, load_public_key
from tests.evidence.drills import pub, reseal
from tests.evidence.test_signing import sign, the_line, verify


def signoff(directory: Path, key: Path, by: str, role: str, comment: str = "") -> int:
    return drcheck(["signoff", str(directory), "--by", by, "--role", role,
                    "--comment", comment, "--key", str(key)])


def ident(key: Path) -> str:
    return key_id(load_public_key(Path(pub(key))))


def approvals_of(directory: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (directory / "approvals.jsonl").read_text().splitlines()]


def test_signoffs_are_kept_shown_and_verified(bundle: Path, keys: dict[str, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    sign(bundle, keys["ci"])
    manifest_before = (bundle / "MANIFEST.sha256").read_text()
    capsys.readouterr()
    assert signoff(bundle, keys["manager"], "J. Doe", "DR manager", "app02 fix tracked") == 0
    assert capsys.readouterr().out == (
        f"{bundle}: approval 1 by J. Doe (DR manager) of the FAILED drill, signed with key "
        f"{ident(keys['manager'])}; MANIFEST.sha256 re-sealed and signed\n")
    assert signoff(bundle, keys["auditor"], "A. Auditor", "internal audit") == 0
    first, second = approvals_of(bundle)
    assert (first["number"], first["by"], first["role"], first["comment"]) == (
        1, "J. Doe", "DR manager", "app02 fix tracked")
    # What J. Doe approved: the bundle exactly as CI signed it.
    assert first["manifest"] == manifest_before
    assert first["seal"]["key_id"] == ident(keys["ci"])  # type: ignore[index]
    assert second["seal"]["key_id"] == ident(keys["manager"])  # type: ignore[index]
    report = (bundle / "report.html").read_text()
    section = report.split('<section id="approvals">', 1)[1].split("</section>", 1)[0]
    assert '<tr data-approval="1"><td>J. Doe</td><td>DR manager</td>' in section
    assert "app02 fix tracked" in section and ident(keys["manager"]) in section
    assert '<tr data-approval="2"><td>A. Auditor</td><td>internal audit</td>' in section

    status, out, err = verify(capsys, bundle, keys["ci"], keys["manager"], keys["auditor"])
    assert (status, err) == (0, "")
    assert "7 files match MANIFEST.sha256" in out  # the bundle's 6 and approvals.jsonl
    assert "2 sign-off(s): J. Doe (DR manager, key" in out and "A. Auditor (internal audit" in out
    # Re-rendering the report keeps the approvals on it.
    assert drcheck(["report", str(bundle)]) == 0
    assert '<tr data-approval="2">' in (bundle / "report.html").read_text()


def test_trusting_only_the_first_signer_names_the_resealing_signoff(
        bundle: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    sign(bundle, keys["ci"])
    assert signoff(bundle, keys["manager"], "J. Doe", "DR manager") == 0
    status, _, err = verify(capsys, bundle, keys["ci"])
    assert status == 1
    assert the_line(err) == (
        f"drcheck verify: FAILED: {bundle}: signed by another key (key id "
        f"{ident(keys['manager'])}, not {ident(keys['ci'])}); key {ident(keys['ci'])} signed it "
        f"before sign-off 1 by J. Doe (key {ident(keys['manager'])}) re-sealed it: trust that "
        "key too (another --pubkey)")


def test_a_forged_approval_fails_even_resealed(bundle: Path, keys: dict[str, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert signoff(bundle, keys["manager"], "J. Doe", "DR manager", "accepted") == 0
    path = bundle / "approvals.jsonl"
    path.write_text(path.read_text().replace('"accepted"', '"accepted, no follow-up"'))
    reseal(bundle, keys["mallory"])
    status, _, err = verify(capsys, bundle, keys["mallory"])
    assert status == 1
    assert the_line(err) == (
        f"drcheck verify: FAILED: {bundle}: approval 1 (by J. Doe): the signature does not "
        f"verify (the record was altered, or signed by another key than "
        f"{ident(keys['manager'])})")


def test_a_dropped_approval_breaks_the_chain(bundle: Path, keys: dict[str, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert signoff(bundle, keys["manager"], "J. Doe", "DR manager") == 0
    assert signoff(bundle, keys["auditor"], "A. Auditor", "internal audit") == 0
    path = bundle / "approvals.jsonl"
    path.write_text(path.read_text().splitlines(keepends=True)[1])
    reseal(bundle, keys["auditor"])
    status, _, err = verify(capsys, bundle, keys["auditor"])
    assert status == 1
    assert the_line(err) == (
        f"drcheck verify: FAILED: {bundle}: approval 1 (by A. Auditor): out of its chain (an "
        "earlier approval was removed, reordered or altered)")


def test_evidence_changed_after_approval_is_named(bundle: Path, keys: dict[str, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Even re-sealed by a key the verifier trusts, the approval is of the old evidence."""
    assert signoff(bundle, keys["manager"], "J. Doe", "DR manager") == 0
    results = bundle / "results.jsonl"
    results.write_text(results.read_text().replace('"failed"', '"passed"'))
    reseal(bundle, keys["ci"])
    status, _, err = verify(capsys, bundle, keys["ci"])
    assert status == 1
    assert the_line(err) == (
        f"drcheck verify: FAILED: {bundle}: approval 1 (by J. Doe): given to other evidence: "
        "results.jsonl changed since")


def test_signoff_refuses_altered_or_resealed_evidence(bundle: Path, keys: dict[str, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    sign(bundle, keys["ci"])
    drill = bundle / "drill.json"
    original = drill.read_text()
    drill.write_text(original.replace('"failed"', '"passed"'))
    capsys.readouterr()
    assert signoff(bundle, keys["manager"], "J. Doe", "DR manager") == 1
    assert the_line(capsys.readouterr().err) == (
        f"drcheck signoff: {bundle}: the bundle does not match its manifest (changed: "
        "drill.json); refusing to approve altered evidence")
    reseal(bundle)  # manifest recomputed: CI's signature no longer holds
    assert signoff(bundle, keys["manager"], "J. Doe", "DR manager") == 1
    assert the_line(capsys.readouterr().err).startswith(
        f"drcheck signoff: {bundle}: MANIFEST.sha256 changed after it was signed (by key "
        f"{ident(keys['ci'])}")
    assert not (bundle / "approvals.jsonl").exists()
    assert signoff(bundle, keys["manager"], " ", "DR manager") == 1
    assert the_line(capsys.readouterr().err) == "drcheck signoff: --by must not be empty"


def test_a_removed_seal_after_signoff_is_named(bundle: Path, keys: dict[str, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert signoff(bundle, keys["manager"], "J. Doe", "DR manager") == 0
    (bundle / "MANIFEST.sig").unlink()
    status, _, err = verify(capsys, bundle)
    assert status == 1
    assert the_line(err) == (f"drcheck verify: FAILED: {bundle}: has 1 sign-off(s) but no "
                             "MANIFEST.sig: the seal the last sign-off wrote was removed")


def test_with_pubkey_every_approver_key_must_be_trusted(bundle: Path, keys: dict[str, Path],
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    """A sign-off 'by J. Doe' that someone else signed, then sealed by a trusted key."""
    assert signoff(bundle, keys["mallory"], "J. Doe", "DR manager") == 0
    sign(bundle, keys["ci"])
    status, _, err = verify(capsys, bundle, keys["ci"])
    assert status == 1
    assert the_line(err) == (
        f"drcheck verify: FAILED: {bundle}: sign-off 1 by J. Doe is signed by another key "
        f"(key id {ident(keys['mallory'])}, not {ident(keys['ci'])})")
    assert verify(capsys, bundle, keys["ci"], keys["mallory"])[0] == 0
