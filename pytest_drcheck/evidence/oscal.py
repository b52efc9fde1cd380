"""NIST OSCAL ``assessment-results`` (JSON) for one drill, from its finished evidence bundle.

What GRC tools ingest: metadata (drill, tool, approvers as parties), an imported assessment plan
stub (the inventory, by SHA-256, in the back-matter), and one result holding

- one observation per check (method TEST, collected when the check finished, the relevant
  evidence being the bundle files it lives in, each a back-matter resource with its SHA-256 from
  the manifest), and one for the measured RTO (and RPO when the drill measured one);
- one finding per check, and per objective (RTO, RPO): satisfied only when it passed (waived,
  failed, error, skipped and not run are all not satisfied: nothing was observed to hold);
- one attestation per sign-off.

UUIDs are name-based (v5) on the manifest's SHA-256, so exporting one bundle twice gives the
same identifiers, and another bundle never reuses them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_drcheck.evidence.layout import (
    APPROVALS,
    DRILL,
    MANIFEST,
    OBSERVATIONS,
    RESULTS,
    EvidenceError,
)

OSCAL_VERSION = "1.2.1"
# Our own property names live in our namespace (OSCAL's rule for non-core names).
NAMESPACE = "urn:pytest-drcheck:oscal"
_UUID_ROOT = uuid.uuid5(uuid.NAMESPACE_URL, "urn:pytest-drcheck:oscal")
_NOT_TOKEN = re.compile(r"[^A-Za-z0-9_.\-]")


def _token(text: str) -> str:
    """An OSCAL token (letters, digits, ``_.-``, starting with a letter or ``_``)."""
    token = _NOT_TOKEN.sub("_", text)
    return token if token[:1].isalpha() or token[:1] == "_" else f"_{token}"


def _prop(name: str, value: Any, namespaced: bool = True) -> dict[str, str] | None:
    text = "" if value is None else str(value).strip()
    if not text:
        return None  # OSCAL forbids empty values: an absent fact is no property
    prop = {"name": name, "value": text}
    if namespaced:
        prop["ns"] = NAMESPACE
    return prop


def _props(*given: dict[str, str] | None) -> dict[str, list[dict[str, str]]]:
    """``{"props": [...]}`` to spread into an object, or nothing: OSCAL arrays are never
    empty."""
    props = [p for p in given if p is not None]
    return {"props": props} if props else {}


def _text(value: Any, fallback: str) -> str:
    text = "" if value is None else str(value).strip()
    return text or fallback


class _Ids:
    def __init__(self, seed: str) -> None:
        self.seed = seed

    def __call__(self, *parts: str) -> str:
        return str(uuid.uuid5(_UUID_ROOT, "\x1f".join((self.seed, *parts))))


def _outcome_state(outcome: str) -> tuple[str, str]:
    """(objective state, reason) of a check outcome."""
    if outcome == "passed":
        return "satisfied", "pass"
    if outcome == "failed":
        return "not-satisfied", "fail"
    return "not-satisfied", "other"  # waived, error, skipped, not run: not shown to hold


def _evidence_files(record: Mapping[str, Any], manifest: Mapping[str, str]) -> list[str]:
    names = [RESULTS]
    observation = f"{OBSERVATIONS}/{record.get('host')}.jsonl"
    if observation in manifest:
        names.append(observation)
    return names


def _objective(name: str, figure: Mapping[str, Any] | None, ids: _Ids, collected: str,
               evidence: list[dict[str, str]]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The observation and finding of a measured objective (RTO or RPO), if measured or
    targeted."""
    if not figure:
        return None
    measured, target, met = figure.get("measured_s"), figure.get("target_s"), figure.get("met")
    if measured is None and target is None:
        return None
    said = (f"{name} measured {measured} s" if measured is not None
            else f"{name} not measured")
    if target is not None:
        said += f" against a target of {target} s"
        said += {True: ": met", False: ": missed", None: ""}[met]
    lower = name.lower()
    observation = {
        "uuid": ids("observation", lower),
        "title": f"Measured {name}",
        "description": said,
        **_props(_prop(f"{lower}-measured-seconds", measured),
                        _prop(f"{lower}-target-seconds", target),
                        _prop(f"{lower}-met", None if met is None else str(met).lower()),
                        _prop(f"{lower}-anchor", figure.get("anchor")),
                        _prop(f"{lower}-anchor-source", figure.get("anchor_source")),
                        # drill.json's rpo names the host whose figure is the drill's (worst).
                        _prop(f"{lower}-worst-host", figure.get("worst_host"))),
        "methods": ["TEST"],
        "types": ["finding"],
        **({"relevant-evidence": evidence} if evidence else {}),
        "collected": collected,
    }
    state = "satisfied" if met is True else "not-satisfied"
    finding = {
        "uuid": ids("finding", lower),
        "title": f"{name} objective",
        "description": said,
        "target": {"type": "objective-id", "target-id": f"drill-{lower}",
                   "status": {"state": state,
                              "reason": "pass" if met is True else
                              "fail" if met is False else "other"}},
        "related-observations": [{"observation-uuid": observation["uuid"]}],
    }
    return observation, finding


def assessment_results(drill: Mapping[str, Any], records: Sequence[Mapping[str, Any]],
                       manifest: Mapping[str, str], manifest_sha256: str,
                       approvals: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The OSCAL document (a JSON-able dict) of a sealed bundle's parts."""
    ids = _Ids(manifest_sha256)
    name = str(drill.get("drill", {}).get("name", "drill"))
    verdict = str(drill.get("verdict", "incomplete"))
    finished = str(drill.get("finished_at") or drill["started_at"])
    inventory = drill.get("inventory", {})
    tool = drill.get("tool", {})

    resources: list[dict[str, Any]] = []
    resource_of: dict[str, str] = {}
    for file_name, digest in sorted(manifest.items()):
        resource_of[file_name] = ids("resource", file_name)
        resources.append({
            "uuid": resource_of[file_name],
            "title": file_name,
            "description": f"Evidence bundle file {file_name}",
            "rlinks": [{"href": file_name, "hashes": [{"algorithm": "SHA-256",
                                                       "value": digest}]}],
        })
    plan_uuid = ids("assessment-plan")
    resources.insert(0, {
        "uuid": plan_uuid,
        "title": f"Assessment plan (stub): inventory {inventory.get('path', '')}",
        "description": ("The drill's inventory is its assessment plan: every check it "
                        "implies, run from the recovery instances' own network position."),
        **_props(_prop("inventory-id", inventory.get("id"))),
        "rlinks": [{"href": str(inventory.get("path") or "inventory"),
                    "hashes": [{"algorithm": "SHA-256", "value": str(inventory["sha256"])}]}],
    })

    def evidence(files: Iterable[str]) -> list[dict[str, str]]:
        # The hash is on the back-matter resource the href points to (once per file).
        return [{"href": f"#{resource_of[f]}", "description": f} for f in files if f in manifest]

    observations: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    for record in records:
        key = str(record.get("key"))
        outcome = str(record.get("outcome"))
        observation = {
            "uuid": ids("observation", key),
            "title": key,
            "description": _text(record.get("message"), f"{key}: {outcome}"),
            **_props(
                _prop("host", record.get("host")), _prop("check", record.get("check")),
                _prop("subject", record.get("subject")), _prop("outcome", outcome),
                _prop("expected", record.get("expected")),
                _prop("observed", record.get("observed")),
                _prop("vantage", record.get("vantage")),
                _prop("attempts", record.get("attempts")),
                _prop("time-to-green-seconds", record.get("time_to_green_s")),
                _prop("waiver", (record.get("waiver") or {}).get("id")),
                _prop("source", record.get("source"))),
            "methods": ["TEST"],
            "types": ["finding"],
            **({"relevant-evidence": relevant} if (relevant := evidence(
                _evidence_files(record, manifest))) else {}),
            "collected": str(record.get("finished_at") or finished),
        }
        observations.append(observation)
        state, reason = _outcome_state(outcome)
        waiver = record.get("waiver") or {}
        findings.append({
            "uuid": ids("finding", key),
            "title": key,
            "description": _text(record.get("message"), f"{key}: {outcome}"),
            **_props(_prop("outcome", outcome)),
            "target": {"type": "objective-id",
                       "target-id": _token(f"{record.get('host')}.{record.get('check')}."
                                           f"{record.get('subject')}"),
                       "status": {"state": state, "reason": reason},
                       **({"remarks": f"waived under {waiver.get('id')}: "
                                      f"{waiver.get('justification', '')}".strip()}
                          if outcome == "waived" else {})},
            "related-observations": [{"observation-uuid": observation["uuid"]}],
        })
    for key in drill.get("not_run", []):
        findings.append({
            "uuid": ids("finding", str(key)),
            "title": str(key),
            "description": f"{key}: planned, but no result (the run ended before it reported)",
            **_props(_prop("outcome", "not_run")),
            "target": {"type": "objective-id", "target-id": _token(str(key)),
                       "status": {"state": "not-satisfied", "reason": "other"}},
        })
    for label, figure in (("RTO", drill.get("rto")), ("RPO", drill.get("rpo"))):
        pair = _objective(label, figure, ids, finished, evidence([DRILL]))
        if pair:
            observations.append(pair[0])
            findings.append(pair[1])

    parties: list[dict[str, Any]] = []
    attestations: list[dict[str, Any]] = []
    for approval in approvals:
        party_uuid = ids("party", str(approval["key_id"]), str(approval["by"]))
        if party_uuid not in {p["uuid"] for p in parties}:
            parties.append({"uuid": party_uuid, "type": "person", "name": str(approval["by"]),
                            **_props(_prop("signing-key-id", approval["key_id"]))})
        attestations.append({
            "responsible-parties": [{"role-id": "approver", "party-uuids": [party_uuid]}],
            "parts": [{
                "name": "approval",
                "title": f"Sign-off {approval.get('number')} by {approval['by']} "
                         f"({approval['role']})",
                "prose": (f"Approved at {approval['approved_at']} as {approval['role']}"
                          + (f": {approval['comment']}" if approval.get("comment") else "")
                          + f". Signed with Ed25519 key {approval['key_id']} over the evidence "
                          f"manifest sha256 {approval['manifest_sha256']} (see {APPROVALS})."),
                **_props(_prop("approved-at", approval["approved_at"]),
                                _prop("signing-key-id", approval["key_id"]),
                                _prop("approved-manifest-sha256",
                                      approval["manifest_sha256"])),
            }],
        })

    metadata: dict[str, Any] = {
        "title": f"DR drill {name}: {verdict.upper()}",
        "last-modified": str(approvals[-1]["approved_at"]) if approvals else finished,
        "version": manifest_sha256[:12],
        "oscal-version": OSCAL_VERSION,
        **_props(_prop("tool", f"{tool.get('name', 'pytest-drcheck')} "
                                      f"{tool.get('version', '')}"),
                        _prop("manifest-sha256", manifest_sha256)),
        "roles": [{"id": "assessor", "title": "Drill runner"},
                  *([{"id": "approver", "title": "Drill approver"}] if approvals else [])],
    }
    if parties:
        metadata["parties"] = parties
        metadata["responsible-parties"] = [
            {"role-id": "approver", "party-uuids": [p["uuid"] for p in parties]}]
    result: dict[str, Any] = {
        "uuid": ids("result"),
        "title": f"DR drill {name}",
        "description": _text(drill.get("drill", {}).get("description"),
                             f"Disaster-recovery drill {name}, checked by pytest-drcheck: "
                             f"{verdict}"),
        "start": str(drill["started_at"]),
        "end": finished,
        **_props(_prop("verdict", verdict),
                        *(_prop("verdict-reason", r) for r in drill.get("verdict_reasons", [])),
                        _prop("operator", drill.get("operator")),
                        _prop("launched-at", drill.get("launched_at"))),
        "reviewed-controls": {"control-selections": [{"include-all": {}}]},
        **({"observations": observations} if observations else {}),
        **({"findings": findings} if findings else {}),
    }
    if attestations:
        result["attestations"] = attestations
    return {"assessment-results": {
        "uuid": ids("assessment-results"),
        "metadata": metadata,
        "import-ap": {"href": f"#{plan_uuid}"},
        "results": [result],
        "back-matter": {"resources": resources},
    }}


def export(directory: Path) -> dict[str, Any]:
    """The OSCAL document of a bundle; refuses a bundle that does not match its manifest (its
    hashes would vouch for files that are not there) or whose sign-offs do not verify."""
    from pytest_drcheck.evidence.bundle import load
    from pytest_drcheck.evidence.manifest import read_manifest, verify
    from pytest_drcheck.evidence.signoff import check_approvals

    check = verify(directory)
    if not check.ok:
        raise EvidenceError(f"{directory}: the bundle does not match its manifest "
                            f"({check.lines()[0]}); refusing to export altered evidence")
    drill, records, _ = load(directory)
    manifest = read_manifest(directory)
    digest = hashlib.sha256((directory / MANIFEST).read_bytes()).hexdigest()
    return assessment_results(drill, records, manifest, digest, check_approvals(directory))


def write(document: Mapping[str, Any], output: Path | None) -> int:
    """Write the document (to stdout when ``output`` is None); returns its size in bytes."""
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        temporary = output.with_name(output.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(output)
    return len(text.encode("utf-8"))


def export_command(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    output = Path(args.output) if args.output else None
    try:
        size = write(export(directory), output)
    except EvidenceError as exc:
        print(f"drcheck export: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"drcheck export: cannot write {output}: {exc.strerror}", file=sys.stderr)
        return 1
    if output is not None:
        print(f"{output}: OSCAL assessment-results of {directory}, {size} bytes")
    return 0
