"""The drill report: one self-contained HTML file (inline CSS and SVG, no script, nothing
fetched), rendered with Jinja2 from ``drill.json`` and the result records.

This module computes everything the page shows (the view); the template only lays it out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pytest_drcheck.durations import format_duration
from pytest_drcheck.evidence.records import OUTCOMES, parse_instant

OUTCOME_LABELS = {"passed": "pass", "failed": "fail", "waived": "waived", "error": "error",
                  "skipped": "skipped", "not_run": "not run"}
# Worst first: a matrix cell takes the colour of its worst result.
_SEVERITY = ("error", "failed", "waived", "skipped", "passed")
TIMELINE_ROWS = 40
SLOWEST = 10


def _duration(seconds: float | None) -> str:
    return "n/a" if seconds is None else format_duration(max(0.0, seconds))


def _short_time(text: str | None) -> str:
    if not text:
        return "n/a"
    return parse_instant(text).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class Cell:
    outcome: str
    results: list[Mapping[str, Any]]

    @property
    def label(self) -> str:
        passed = sum(1 for r in self.results if r.get("outcome") == "passed")
        return f"{passed}/{len(self.results)}"


@dataclass
class Mark:
    x: float
    outcome: str
    title: str


@dataclass
class Row:
    host: str
    y: float
    bar_x: float
    bar_width: float
    marks: list[Mark] = field(default_factory=list)


@dataclass
class Timeline:
    width: float
    height: float
    left: float
    rows: list[Row]
    ticks: list[tuple[float, str]]
    measured_x: float | None
    target_x: float | None
    target_off_scale: bool
    hidden_hosts: int


def _matrix(records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[tuple[str, list[
        Cell | None]]]]:
    checks = sorted({str(r["check"]) for r in records})
    hosts = sorted({str(r["host"]) for r in records})
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for record in records:
        grouped.setdefault((str(record["host"]), str(record["check"])), []).append(record)
    rows = []
    for host in hosts:
        cells: list[Cell | None] = []
        for check in checks:
            results = sorted(grouped.get((host, check), []), key=lambda r: str(r["subject"]))
            if not results:
                cells.append(None)
                continue
            present = {str(r.get("outcome")) for r in results}
            worst = next((o for o in _SEVERITY if o in present), "skipped")
            cells.append(Cell(worst, results))
        rows.append((host, cells))
    return checks, rows


def _timeline(drill: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> Timeline | None:
    if not records:
        return None
    anchor = parse_instant(str(drill["launched_at"]))

    def offset(text: str) -> float:
        return (parse_instant(text) - anchor).total_seconds()

    end = max(offset(str(r["finished_at"])) for r in records)
    end = max(end, 1.0)
    rto = drill.get("rto", {})
    target = rto.get("target_s")
    scale_end = end * 1.04
    target_off_scale = False
    if target is not None:
        if target <= end * 3:
            scale_end = max(scale_end, target * 1.04)
        else:
            target_off_scale = True
    left, width, row_height = 130.0, 860.0, 22.0
    plot = width - left - 20

    def x_of(seconds: float) -> float:
        return round(left + plot * max(0.0, seconds) / scale_end, 1)

    by_host: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_host.setdefault(str(record["host"]), []).append(record)

    def last_event(host: str) -> float:
        return max(offset(str(r["green_at"] or r["finished_at"])) for r in by_host[host])

    hosts = sorted(by_host, key=lambda h: (-last_event(h), h))[:TIMELINE_ROWS]
    hosts.sort()
    rows = []
    for index, host in enumerate(hosts):
        host_records = by_host[host]
        first = min(offset(str(r["started_at"])) for r in host_records)
        last = max(offset(str(r["finished_at"])) for r in host_records)
        row = Row(host, 30 + index * row_height, x_of(first),
                  max(2.0, x_of(last) - x_of(first)))
        # Passes first, so that a failure at the same moment is drawn on top, visible.
        for record in sorted(host_records, key=lambda r: (r.get("outcome") != "passed",
                                                          str(r["key"]))):
            at = record.get("green_at") or record["finished_at"]
            seconds = offset(str(at))
            verb = "green" if record.get("outcome") == "passed" else str(record.get("outcome"))
            row.marks.append(Mark(x_of(seconds), str(record.get("outcome")),
                                  f"{record['check']}[{record['subject']}]: {verb} at "
                                  f"+{_duration(seconds)} after {record.get('attempts')} "
                                  "attempt(s)"))
        rows.append(row)
    ticks = []
    for step in range(5):
        seconds = scale_end * step / 4
        ticks.append((x_of(seconds), "launch" if step == 0 else f"+{_duration(seconds)}"))
    measured = rto.get("measured_s")
    return Timeline(
        width=width, height=30 + len(rows) * row_height + 30, left=left, rows=rows,
        ticks=ticks, measured_x=x_of(measured) if measured is not None else None,
        target_x=x_of(target) if target is not None and not target_off_scale else None,
        target_off_scale=target_off_scale, hidden_hosts=len(by_host) - len(rows))


def _gauge(rto: Mapping[str, Any]) -> dict[str, Any] | None:
    target, measured = rto.get("target_s"), rto.get("measured_s")
    if target is None and measured is None:
        return None
    full = max(v for v in (target, measured) if v is not None) * 1.15 or 1.0
    return {
        "measured_pct": None if measured is None else round(100 * measured / full, 2),
        "target_pct": None if target is None else round(100 * target / full, 2),
    }


_RECORD_DEFAULTS: dict[str, Any] = {
    "key": "", "host": "", "check": "", "subject": "", "outcome": "skipped", "expected": "",
    "observed": "", "message": "", "attempts": 1, "source": "", "vantage": "",
    "duration_ms": 0.0, "time_to_green_s": None, "green_at": None, "waiver": None,
}
_WAIVER_DEFAULTS: dict[str, Any] = {
    "id": "", "selector": "", "status": "live", "stale": False, "applied": 0,
    "expired_hits": 0, "approved_by": "", "expires": "", "justification": "",
}


def view(drill: Mapping[str, Any], given: Sequence[Mapping[str, Any]],
         approvals: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    # Defaults keep a hand-trimmed or older bundle renderable under StrictUndefined, which
    # stays on to catch mistakes in the template itself.
    records = [_RECORD_DEFAULTS | dict(r) for r in given]
    for record in records:
        if record["outcome"] not in OUTCOME_LABELS:
            record["outcome"] = "error"
    rto = drill.get("rto", {})
    counts = dict(drill.get("counts", {}))
    checks, matrix = _matrix(records)
    failures = [r for r in records if r.get("outcome") in ("failed", "error")]
    waived = [r for r in records if r.get("outcome") == "waived"]
    slowest = sorted(records, key=lambda r: -float(r.get("duration_ms") or 0))[:SLOWEST]
    slowest_green = sorted((r for r in records if r.get("time_to_green_s") is not None),
                           key=lambda r: -float(r["time_to_green_s"]))[:SLOWEST]
    target, measured, met = rto.get("target_s"), rto.get("measured_s"), rto.get("met")
    if measured is not None:
        rto_text = f"{_duration(measured)} measured"
    elif rto.get("never_green"):
        rto_text = f"not reached: {rto['never_green']} check(s) never went green"
        if drill.get("counts", {}).get("not_run"):
            rto_text += " or have no result"
    else:
        rto_text = "not measured"
    ci = drill.get("ci") or {}
    git = (drill.get("inventory") or {}).get("git") or {}
    return {
        "drill_name": str(drill.get("drill", {}).get("name", "")),
        "description": str(drill.get("drill", {}).get("description") or ""),
        "tool_version": str(drill.get("tool", {}).get("version", "")),
        "records": records,
        "verdict": drill.get("verdict", "incomplete"),
        "reasons": drill.get("verdict_reasons", []),
        "counts": [(o, OUTCOME_LABELS[o], counts.get(o, 0)) for o in (*OUTCOMES, "not_run")],
        "total": counts.get("total", len(records)),
        "checks": checks,
        "matrix": matrix,
        "failures": failures,
        "waived": waived,
        "waivers": [_WAIVER_DEFAULTS | dict(w) for w in drill.get("waivers", [])],
        "slowest": slowest,
        "slowest_green": slowest_green,
        "rto": {"text": rto_text, "target": _duration(target) if target is not None else None,
                "met": met, "anchor": _short_time(rto.get("anchor")),
                "anchor_source": rto.get("anchor_source", ""),
                "last_green": rto.get("last_green"),
                "margin": (_duration(abs(target - measured))
                           if target is not None and measured is not None else None),
                "measured": _duration(measured),
                "share": _share(measured, target)},
        "gauge": _gauge(rto),
        "rpo": _rpo_view(drill.get("rpo") or {}),
        "link_bars": _link_bars(records),
        "timeline": _timeline(drill, records),
        "facts": [
            ("Inventory", f"{drill['inventory']['path']}"),
            ("Inventory SHA-256", drill["inventory"]["sha256"]),
            ("Inventory commit", (git.get("commit", "") + (" (inventory modified since)"
                                                           if git.get("inventory_modified")
                                                           else "")) or "not in a git "
                                                                            "repository"),
            ("Launched", f"{_short_time(drill.get('launched_at'))} "
                         f"({drill.get('launched_at_source', '')})"),
            ("Checks started", _short_time(drill.get("started_at"))),
            ("Finished", _short_time(drill.get("finished_at"))),
            ("Operator", str(drill.get("operator", ""))),
            ("CI run", " ".join(str(v) for v in (ci.get("system"), ci.get("run_id")) if v)
             or "not run in CI"),
            ("Tool", f"pytest-drcheck {drill.get('tool', {}).get('version', '')}"),
            ("Shard", _shard_text(drill)),
        ],
        "ci_url": ci.get("url"),
        "approvals": [{"by": str(a.get("by", "")), "role": str(a.get("role", "")),
                       "comment": str(a.get("comment", "")), "key_id": str(a.get("key_id", "")),
                       "at": _short_time(a.get("approved_at"))} for a in approvals],
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "duration": _duration,
        "short_time": _short_time,
        "labels": OUTCOME_LABELS,
    }


def _rpo_view(rpo: Mapping[str, Any]) -> dict[str, Any] | None:
    """The measured RPO beside the RTO: 'RPO measured 3 min 12 s against a target of 15 min'
    for the worst host, and each host's figure. None when no rpo check ran."""
    from pytest_drcheck.checks.rpo import format_rpo

    if not rpo.get("hosts") and not rpo.get("unmeasured"):
        return None
    measured, target = rpo.get("measured_s"), rpo.get("target_s")
    text = ("RPO not measured" if measured is None else
            f"RPO measured {format_rpo(float(measured))}"
            + (f" against a target of {format_rpo(float(target))}" if target else ""))
    hosts = [(h["host"], format_rpo(float(h["measured_s"])),
              format_rpo(float(h["target_s"])) if h.get("target_s") else "n/a",
              h.get("target_s") is None or float(h["measured_s"]) <= float(h["target_s"]))
             for h in rpo.get("hosts", [])]
    return {"text": text, "met": rpo.get("met"), "worst_host": rpo.get("worst_host"),
            "hosts": hosts, "unmeasured": list(rpo.get("unmeasured", []))}


def _link_bars(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per replication check: the sources' average and peak write rate and the rate with
    headroom, as bar widths (percent) against the link's capacity, and DRS's throttle in all
    (its ``throttle`` subject) when every source is throttled."""
    throttles = {str(r["key"]).rsplit("[", 1)[0]: float(r["replication"]["throttle_mbit_s"])
                 for r in records
                 if (r.get("replication") or {}).get("throttle_mbit_s") is not None}
    bars = []
    for record in records:
        figures = record.get("replication") or {}
        link = figures.get("link_mbit_s")
        if not link or figures.get("average_mbit_s") is None:
            continue
        average, peak = float(figures["average_mbit_s"]), figures.get("peak_mbit_s")
        needed = average * float(figures.get("headroom") or 1.0)
        throttle = throttles.get(str(record["key"]).rsplit("[", 1)[0])
        scale = max(float(link), average, needed, float(peak or 0.0), throttle or 0.0)

        def pct(value: float, scale: float = scale) -> float:
            return round(100.0 * value / scale, 1)

        bars.append({"key": record["key"], "link": f"{float(link):g}",
                     "link_pct": pct(float(link)),
                     "throttle": None if throttle is None else f"{throttle:g}",
                     "throttle_pct": None if throttle is None else pct(throttle),
                     "rows": [(name, f"{value:.2f}", pct(value), value > float(link))
                              for name, value in (("average", average),
                                                  ("with headroom", needed),
                                                  ("peak", peak)) if value is not None]})
    return bars


def _share(measured: float | None, target: float | None) -> str:
    if measured is None or not target:
        return "n/a"
    percent = 100.0 * measured / target
    return "under 1%" if percent < 1 else f"{percent:.0f}%"


def _shard_text(drill: Mapping[str, Any]) -> str:
    shard = drill.get("shard")
    if shard:
        return f"{shard['index']} of {shard['count']}"
    merged = drill.get("merged_from")
    if merged:
        return f"merged from {len(merged)} bundle(s)"
    return "whole inventory"


def render_report(drill: Mapping[str, Any], records: Sequence[Mapping[str, Any]],
                  approvals: Sequence[Mapping[str, Any]] = ()) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    environment = Environment(loader=PackageLoader("pytest_drcheck", "templates"),
                              autoescape=select_autoescape(["html", "j2"]),
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    template = environment.get_template("report.html.j2")
    return template.render(**view(drill, records, approvals))
