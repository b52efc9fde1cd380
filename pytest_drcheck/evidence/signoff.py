"""Sign-off: who approved a drill's evidence, when, in which role, signed with their key.

``drcheck signoff`` appends one record to ``approvals.jsonl``. The record holds the exact
manifest the approver saw (so the approval names the evidence file by file), the bundle's
signature at that moment, and the SHA-256 of the previous approval (a chain: none can be
dropped or reordered unnoticed); the approver's Ed25519 key signs the record. The report is
re-rendered with the approvals, the manifest re-sealed and signed with the approver's key.
Sign-off changes only ``approvals.jsonl`` and ``report.html``: any other file that differs from
what an approver saw makes the approval fail verification.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pytest_drcheck.evidence.layout import APPROVALS, MANIFEST, REPORT, EvidenceError
from pytest_drcheck.evidence.manifest import read_manifest, write_manifest
from pytest_drcheck.evidence.signing import (
    Seal,
    canonical,
    check_seal,
    key_id,
    load_private_key,
    manifest_bytes,
    now_iso,
    parse_public_pem,
    public_pem,
    require_intact,
    seal,
    sign_bytes,
    signature_holds,
)

APPROVAL_FORMAT = "pytest-drcheck-approval/1"
# Files a sign-off itself changes; every other file must be as the approver saw it.
CHANGED_BY_SIGNOFF = frozenset({APPROVALS, REPORT})
_TEXT_FIELDS = ("format", "by", "role", "comment", "approved_at", "manifest",
                "manifest_sha256", "key_id", "public_key", "signature")


def read_approvals(directory: Path) -> list[dict[str, Any]]:
    """The approval records as written (unchecked; see check_approvals)."""
    path = directory / APPROVALS
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise EvidenceError(f"{path}: cannot read: {exc}") from None
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            value = json.loads(line)
        except ValueError:
            raise EvidenceError(f"{path}:{number}: not a JSON approval record") from None
        if (not isinstance(value, dict) or value.get("format") != APPROVAL_FORMAT
                or not all(isinstance(value.get(name), str) for name in _TEXT_FIELDS)):
            raise EvidenceError(f"{path}:{number}: not a {APPROVAL_FORMAT} record")
        records.append(value)
    return records


def _unsigned(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name != "signature"}


def _manifest_entries(text: str) -> dict[str, str]:
    entries = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        entries[name] = digest
    return entries


def check_approvals(directory: Path) -> list[dict[str, Any]]:
    """Every approval verified: its signature, its place in the chain, the seal it recorded,
    and that the evidence is still what its approver saw. Raises EvidenceError naming the first
    approval that does not hold and why."""
    records = read_approvals(directory)
    current = read_manifest(directory) if records else {}
    previous: str | None = None
    for number, record in enumerate(records, 1):
        who = f"{directory}: approval {number} (by {record['by']})"
        key = parse_public_pem(record["public_key"], who)
        if key_id(key) != record["key_id"]:
            raise EvidenceError(f"{who}: its key id does not match its public key")
        if not signature_holds(key, record["signature"], canonical(_unsigned(record))):
            raise EvidenceError(f"{who}: the signature does not verify (the record was "
                                f"altered, or signed by another key than {record['key_id']})")
        if record.get("number") != number or record.get("previous_sha256") != previous:
            raise EvidenceError(f"{who}: out of its chain (an earlier approval was removed, "
                                "reordered or altered)")
        manifest = record["manifest"].encode("utf-8")
        if hashlib.sha256(manifest).hexdigest() != record["manifest_sha256"]:
            raise EvidenceError(f"{who}: the manifest it holds is not the one it names")
        if record.get("seal") is not None and not Seal.from_dict(
                record["seal"], who).holds_for(manifest, who):
            raise EvidenceError(f"{who}: the bundle signature it recorded does not verify")
        seen = _manifest_entries(record["manifest"])
        for name in sorted(set(seen) | set(current)):
            if name not in CHANGED_BY_SIGNOFF and seen.get(name) != current.get(name):
                state = ("added" if name not in seen else "removed" if name not in current
                         else "changed")
                raise EvidenceError(f"{who}: given to other evidence: {name} {state} since")
        previous = hashlib.sha256(canonical(record)).hexdigest()
    return records


def approve(directory: Path, key: Ed25519PrivateKey, by: str, role: str, comment: str,
            now: str) -> dict[str, Any]:
    """Append a signed approval, re-render the report, re-seal and re-sign the bundle."""
    from pytest_drcheck.evidence.bundle import load
    from pytest_drcheck.evidence.report import render_report

    for name, value in (("--by", by), ("--role", role)):
        if not value.strip():
            raise EvidenceError(f"{name} must not be empty")
    require_intact(directory, "approve")
    # Approving on top of a broken chain or seal would launder it: refuse instead.
    existing_seal = check_seal(directory)
    approvals = check_approvals(directory)
    drill, records, _ = load(directory)
    public = key.public_key()
    record: dict[str, Any] = {
        "format": APPROVAL_FORMAT,
        "number": len(approvals) + 1,
        "by": by.strip(),
        "role": role.strip(),
        "comment": comment.strip(),
        "approved_at": now,
        "verdict": drill.get("verdict"),
        "manifest": manifest_bytes(directory).decode("utf-8"),
        "manifest_sha256": hashlib.sha256(manifest_bytes(directory)).hexdigest(),
        "seal": existing_seal.as_dict() if existing_seal else None,
        "previous_sha256": (hashlib.sha256(canonical(approvals[-1])).hexdigest()
                            if approvals else None),
        "key_id": key_id(public),
        "public_key": public_pem(public),
    }
    record["signature"] = sign_bytes(key, canonical(record))
    with (directory / APPROVALS).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    (directory / REPORT).write_text(render_report(drill, records, [*approvals, record]),
                                    encoding="utf-8")
    write_manifest(directory)
    seal(directory, key, now)
    return record


def signoff_command(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    try:
        record = approve(directory, load_private_key(Path(args.key)), args.by, args.role,
                         args.comment or "", now_iso())
    except EvidenceError as exc:
        print(f"drcheck signoff: {exc}", file=sys.stderr)
        return 1
    print(f"{directory}: approval {record['number']} by {record['by']} ({record['role']}) "
          f"of the {str(record['verdict']).upper()} drill, signed with key {record['key_id']}; "
          f"{MANIFEST} re-sealed and signed")
    return 0
