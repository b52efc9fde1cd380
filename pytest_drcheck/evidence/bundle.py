"""The evidence bundle of one drill run (or of merged shards):

    drill.json        where, when, against what, by whom; counts, measured RTO, verdict
    results.jsonl     one record per check result, streamed as results arrive
    observations/     the raw observations (details) per host, streamed, secrets redacted
    junit.xml         JUnit valid against the Jenkins xUnit schema, with our properties
    report.html       the drill report, self-contained
    MANIFEST.sha256   SHA-256 of every other file

Everything but the streamed files is derived from ``results.jsonl`` and ``drill.json``, so
``drcheck report`` and ``drcheck merge`` rebuild it without the inventory or the hosts.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_drcheck import __version__
from pytest_drcheck.evidence import drillinfo
from pytest_drcheck.evidence.junit_bundle import write_junit
from pytest_drcheck.evidence.layout import (
    DRILL,
    FORMAT,
    JUNIT,
    MANIFEST,
    OBSERVATIONS,
    REPORT,
    RESULTS,
    EvidenceError,
)
from pytest_drcheck.evidence.manifest import verify, write_manifest
from pytest_drcheck.evidence.records import (
    Record,
    counts,
    dedupe,
    iso,
    measure_rto,
    parse_instant,
    read_jsonl,
    seconds_between,
    verdict,
)
from pytest_drcheck.evidence.redact import Redactor
from pytest_drcheck.evidence.waiving import waiver_summary
from pytest_drcheck.inventory.plan import Plan

_EVIDENCE_FILES = (DRILL, RESULTS, MANIFEST)


def prepare_directory(directory: Path) -> None:
    """Create the bundle directory; evidence is never overwritten or mixed with another run's."""
    if directory.exists() and not directory.is_dir():
        raise EvidenceError(f"{directory} exists and is not a directory; choose another path")
    present = [name for name in _EVIDENCE_FILES if (directory / name).exists()]
    if present:
        raise EvidenceError(f"{directory} already holds evidence ({present[0]}); evidence is "
                            "never overwritten: choose a new directory or remove this one")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvidenceError(f"cannot create {directory}: {exc.strerror}") from None


def write_json(path: Path, value: Any) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n",
                         encoding="utf-8")
    temporary.replace(path)


def initial_drill(plan: Plan, *, started_at: datetime, anchor: datetime, anchor_source: str,
                  inventory_id: str,
                  shard: tuple[int, int] | None, hosts: Sequence[str], checks: Sequence[str],
                  wait_s: float, redactor: Redactor) -> dict[str, Any]:
    """drill.json as written when the run starts (a killed run keeps this much context)."""
    path = Path(plan.path)
    drill: dict[str, Any] = {
        "format": FORMAT,
        "status": "running",
        "drill": {"name": plan.drill.name, "description": plan.drill.description,
                  "rto_target_s": plan.drill.rto_seconds,
                  "rpo_target_s": plan.drill.rpo_seconds},
        "inventory": {"path": plan.display_name, "absolute_path": str(path.resolve()),
                      "id": inventory_id,
                      "sha256": plan.sha256, "git": drillinfo.inventory_git(path)},
        "tool": {"name": "pytest-drcheck", "version": __version__},
        "ci": drillinfo.ci_info(),
        "operator": drillinfo.operator(),
        "runner": {"hostname": socket.gethostname()},
        "started_at": iso(started_at),
        "finished_at": None,
        "launched_at": iso(anchor),
        "launched_at_source": anchor_source,
        "wait_s": wait_s,
        "shard": {"index": shard[0], "count": shard[1]} if shard else None,
        # Every planned check by key: a run killed before a check reported still names it
        # (as not run) in the JUnit file sealed later.
        "selection": {"hosts": list(hosts), "planned_checks": len(checks),
                      "checks": sorted(checks)},
        "waivers": waiver_summary(plan, started_at.date(), (), ()),
    }
    redacted: dict[str, Any] = redactor.value(drill)
    return redacted


def derive(drill: Mapping[str, Any], records: Sequence[Record], complete: bool
           ) -> dict[str, Any]:
    """Counts, measured RTO, waiver use and the verdict, from the records."""
    result = dict(drill)
    anchor = parse_instant(str(drill["launched_at"]))
    for record in records:
        green = record.get("green_at")
        record["time_to_green_s"] = (seconds_between(str(drill["launched_at"]), str(green))
                                     if green else None)
    totals = counts(records)
    selection = drill.get("selection", {})
    planned = int(selection.get("planned_checks") or totals["total"])
    planned_keys = selection.get("checks")
    missing: list[str] = []
    if planned_keys is not None:
        present = {str(r.get("key")) for r in records}
        missing = sorted(set(planned_keys) - present)
        totals["not_run"] = len(missing)
    else:  # a bundle of an earlier format: the count is all there is
        totals["not_run"] = max(0, planned - totals["total"])
    result["not_run"] = missing
    rto = measure_rto(records, anchor, str(drill.get("launched_at_source", "")),
                      drill.get("drill", {}).get("rto_target_s"), totals["not_run"])
    complete = complete and totals["not_run"] == 0
    outcome, reasons = verdict(totals, rto, complete)
    if totals["not_run"]:
        reasons.append(f"{totals['not_run']} planned check(s) have no result")
    applied: dict[str, int] = {}
    expired: dict[str, int] = {}
    for record in records:
        waiver = record.get("waiver") or {}
        target = applied if waiver.get("status") == "live" else expired
        if waiver:
            target[waiver["id"]] = target.get(waiver["id"], 0) + 1
    result["waivers"] = [dict(w) | {"applied": applied.get(w["id"], 0),
                                    "expired_hits": expired.get(w["id"], 0)}
                         for w in drill.get("waivers", [])]
    result["counts"] = totals
    result["rto"] = rto.as_dict()
    result["rpo"] = drillinfo.measure_rpo(records, drill.get("drill", {}).get("rpo_target_s"))
    result["verdict"] = outcome
    result["verdict_reasons"] = reasons
    return result


@dataclass(frozen=True)
class Written:
    drill: dict[str, Any]
    records: list[Record]
    manifest_sha256: str


def write_derived(directory: Path, drill: Mapping[str, Any], records: list[Record]) -> Written:
    from pytest_drcheck.evidence.report import render_report

    write_json(directory / DRILL, drill)
    write_junit(directory / JUNIT, drill, records)
    (directory / REPORT).write_text(render_report(drill, records), encoding="utf-8")
    digest = write_manifest(directory)
    return Written(dict(drill), records, digest)


def load(directory: Path) -> tuple[dict[str, Any], list[Record], int]:
    """drill.json, the records (one per check) and the number of unreadable result lines."""
    try:
        drill = json.loads((directory / DRILL).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvidenceError(f"{directory}: no {DRILL}; not an evidence bundle") from None
    except (OSError, ValueError) as exc:
        raise EvidenceError(f"{directory / DRILL}: unreadable: {exc}") from None
    if not isinstance(drill, dict) or drill.get("format") != FORMAT:
        raise EvidenceError(f"{directory / DRILL}: not a {FORMAT} file")
    raw, broken = read_jsonl(directory / RESULTS)
    return drill, dedupe(raw), broken


def finish_run(directory: Path, drill: Mapping[str, Any], finished_at: datetime,
               complete: bool = True) -> Written:
    """End of a pytest session: derive everything from what was streamed and seal it."""
    _, records, _ = load(directory)
    final = dict(drill) | {"status": "finished" if complete else "interrupted",
                           "finished_at": iso(finished_at)}
    return write_derived(directory, derive(final, records, complete), records)


def rerender(directory: Path) -> Written:
    """``drcheck report DIR``: re-render the report. A sealed bundle must be intact (except
    the report itself); an unsealed one (the run was killed) is finished as *interrupted*."""
    drill, records, _ = load(directory)
    if (directory / MANIFEST).exists():
        check = verify(directory)
        problems = [line for line in check.lines() if line != f"changed: {REPORT}"
                    and line != f"removed: {REPORT}"]
        if problems:
            raise EvidenceError(f"{directory}: the bundle does not match its manifest "
                                f"({problems[0]}); refusing to re-render over altered "
                                "evidence (see 'drcheck verify')")
        from pytest_drcheck.evidence.report import render_report
        from pytest_drcheck.evidence.signoff import read_approvals

        (directory / REPORT).write_text(render_report(drill, records, read_approvals(directory)),
                                        encoding="utf-8")
        return Written(drill, records, write_manifest(directory))
    if drill.get("status") == "running":
        drill = dict(drill) | {"status": "interrupted"}
    complete = drill.get("status") == "finished"
    return write_derived(directory, derive(drill, records, complete), records)


def _merged_selection(selections: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "hosts": sorted({h for s in selections for h in s["hosts"]}),
        "planned_checks": sum(int(s["planned_checks"]) for s in selections)}
    if all("checks" in s for s in selections):
        merged["checks"] = sorted({k for s in selections for k in s["checks"]})
    return merged


def merge(output: Path, sources: Sequence[Path]) -> Written:
    """Combine the bundles of one drill's shards into one bundle."""
    if not sources:
        raise EvidenceError("merge needs at least one bundle directory")
    loaded = []
    for source in sources:
        check = verify(source)
        if not check.ok:
            raise EvidenceError(f"{source}: does not match its manifest "
                                f"({check.lines()[0]}); refusing to merge altered evidence")
        drill, source_records, _ = load(source)
        loaded.append((source, drill, source_records))
    first = loaded[0][1]
    for source, drill, _ in loaded[1:]:
        if drill["inventory"]["sha256"] != first["inventory"]["sha256"]:
            raise EvidenceError(
                f"{source}: inventory sha256 {drill['inventory']['sha256'][:12]} differs from "
                f"{loaded[0][0]} ({first['inventory']['sha256'][:12]}); merge the shards of "
                "one drill, run against one inventory")
    owner: dict[str, Path] = {}
    records: list[Record] = []
    for source, _, source_records in loaded:
        for record in source_records:
            if record["key"] in owner:
                raise EvidenceError(f"{record['key']} is in both {owner[record['key']]} and "
                                    f"{source}; shards must not overlap (same --dr-shard "
                                    "twice?)")
            owner[record["key"]] = source
            records.append(record)
    records.sort(key=lambda r: str(r["key"]))
    shards = [d.get("shard") for _, d, _ in loaded]
    reasons: list[str] = []
    counts_n = {s["count"] for s in shards if s}
    if len(counts_n) > 1:
        raise EvidenceError(f"the bundles come from different shard counts "
                            f"({', '.join(str(n) for n in sorted(counts_n))}); merge the shards "
                            "of one --dr-shard=K/N matrix")
    if counts_n and all(shards):
        missing = sorted(set(range(1, next(iter(counts_n)) + 1))
                         - {s["index"] for s in shards if s})
        if missing:
            reasons.append("missing shard(s) " + ", ".join(
                f"{m}/{next(iter(counts_n))}" for m in missing))
    anchors = sorted({str(d["launched_at"]) for _, d, _ in loaded},
                     key=lambda text: parse_instant(text))
    merged: dict[str, Any] = dict(first) | {
        "status": "finished" if all(d.get("status") == "finished" for _, d, _ in loaded)
        else "interrupted",
        "started_at": min((str(d["started_at"]) for _, d, _ in loaded),
                          key=lambda text: parse_instant(text)),
        "finished_at": max((str(d["finished_at"]) for _, d, _ in loaded if d["finished_at"]),
                           key=lambda text: parse_instant(text), default=None),
        "launched_at": anchors[0],
        "launched_at_source": (first["launched_at_source"] if len(anchors) == 1
                               else "earliest launch time of the shards"),
        "shard": None,
        "merged_from": [{"directory": str(source), "shard": d.get("shard"), "ci": d.get("ci"),
                         "operator": d.get("operator"), "started_at": d["started_at"],
                         "finished_at": d["finished_at"], "status": d.get("status")}
                        for source, d, _ in loaded],
        "selection": _merged_selection([d["selection"] for _, d, _ in loaded]),
    }
    prepare_directory(output)
    with (output / RESULTS).open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    (output / OBSERVATIONS).mkdir(exist_ok=True)
    for source, _, _ in loaded:
        for path in sorted((source / OBSERVATIONS).glob("*.jsonl")):
            with (output / OBSERVATIONS / path.name).open("ab") as out, path.open("rb") as src:
                shutil.copyfileobj(src, out)
    final = derive(merged, records, merged["status"] == "finished" and not reasons)
    final["verdict_reasons"] = reasons + final["verdict_reasons"]
    return write_derived(output, final, records)
