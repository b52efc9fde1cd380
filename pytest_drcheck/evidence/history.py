"""``drcheck history DIR... -o FILE``: how a site's drills compare over time, as one
self-contained HTML page in the style of the drill report (inline CSS and SVG, no script).

It shows the measured RTO (and RPO, when a drill measured one) of each drill against its target
as a bar chart, the pass rate of each check family per drill, and the checks whose outcome
flipped between the last two drills. Every bundle must match its manifest: history is built
from evidence, never from altered files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_drcheck.durations import format_duration
from pytest_drcheck.evidence.layout import EvidenceError
from pytest_drcheck.evidence.records import Record, parse_instant

CHART_WIDTH, CHART_HEIGHT = 900.0, 300.0
_LEFT, _RIGHT, _TOP, _BOTTOM = 78.0, 16.0, 18.0, 54.0
# Gridline steps a person reads at a glance (seconds): 1 s up to a day.
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600,
          43200, 86400)


@dataclass
class Drill:
    directory: str
    name: str
    launched_at: datetime
    verdict: str
    counts: dict[str, int]
    rto: dict[str, Any]
    rpo: dict[str, Any]
    records: list[Record]
    approvals: int
    manifest_sha256: str
    path: Path | None = None

    @property
    def outcomes(self) -> dict[str, str]:
        return {str(r["key"]): str(r.get("outcome")) for r in self.records}

    @property
    def label(self) -> str:
        return self.launched_at.strftime("%Y-%m-%d %H:%M")


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    state: str  # met, missed, unknown
    title: str
    kind: str  # rto, rpo


@dataclass
class Chart:
    width: float
    height: float
    left: float
    top: float
    bottom_y: float
    bars: list[Bar] = field(default_factory=list)
    targets: list[tuple[float, float, float, str]] = field(default_factory=list)
    not_reached: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_labels: list[tuple[float, str, str]] = field(default_factory=list)
    has_rpo: bool = False


def _seconds(figure: Mapping[str, Any], name: str) -> float | None:
    value = figure.get(name)
    return float(value) if isinstance(value, (int, float)) else None


def _state(figure: Mapping[str, Any]) -> str:
    met = figure.get("met")
    return "met" if met is True else "missed" if met is False else "unknown"


def chart(drills: Sequence[Drill]) -> Chart:
    """Measured RTO (and RPO) bars per drill, each with its target as a dashed line."""
    plot_width = CHART_WIDTH - _LEFT - _RIGHT
    plot_height = CHART_HEIGHT - _TOP - _BOTTOM
    bottom = _TOP + plot_height
    has_rpo = any(_seconds(d.rpo, "measured_s") is not None for d in drills)
    values = [v for d in drills for fig in (d.rto, d.rpo)
              for v in (_seconds(fig, "measured_s"), _seconds(fig, "target_s")) if v is not None]
    highest = max(values, default=60.0) * 1.08 or 60.0
    step = next((s for s in _STEPS if highest / s <= 5), _STEPS[-1])
    ticks = int(-(-highest // step))  # gridlines up to the first step above everything
    top_value = float(step * ticks)
    result = Chart(CHART_WIDTH, CHART_HEIGHT, _LEFT, _TOP, bottom, has_rpo=has_rpo)

    def y_of(seconds: float) -> float:
        return round(bottom - plot_height * max(0.0, seconds) / top_value, 1)

    slot = plot_width / max(1, len(drills))
    # Dates under every bar while they fit (about 110 px each); else under every n-th and the last.
    label_every = max(1, -(-len(drills) * 110 // int(plot_width)))
    bar_width = round(min(64.0, slot * (0.3 if has_rpo else 0.5)), 1)
    for index, drill in enumerate(drills):
        centre = _LEFT + slot * (index + 0.5)
        series = [("rto", "RTO", drill.rto)] + ([("rpo", "RPO", drill.rpo)] if has_rpo else [])
        for position, (kind, label, figure) in enumerate(series):
            x = round(centre - bar_width * len(series) / 2 + bar_width * position, 1)
            measured, target = _seconds(figure, "measured_s"), _seconds(figure, "target_s")
            target_text = f" against {format_duration(target)}" if target is not None else ""
            if measured is None:
                result.not_reached.append((x + bar_width / 2, f"{label} n/a"))
            else:
                result.bars.append(Bar(
                    x=x, y=y_of(measured), width=bar_width - 2,
                    height=round(bottom - y_of(measured), 1), state=_state(figure),
                    title=f"{drill.label}: {label} {format_duration(measured)}{target_text}",
                    kind=kind))
            if target is not None:
                result.targets.append((x - 3, x + bar_width + 1, y_of(target),
                                       f"{label} target {format_duration(target)}"))
        if index % label_every == 0 or index == len(drills) - 1:
            result.x_labels.append((round(centre, 1), drill.label, drill.directory))
    for index in range(ticks + 1):
        seconds = float(step * index)
        result.y_ticks.append((y_of(seconds), "0" if index == 0 else format_duration(seconds)))
    return result


def family_rates(drills: Sequence[Drill]) -> list[tuple[str, list[tuple[int, int] | None]]]:
    """Per check family: (passed, results) in each drill; None where it had no such check."""
    families = sorted({str(r.get("check")) for d in drills for r in d.records})
    rows = []
    for family in families:
        cells: list[tuple[int, int] | None] = []
        for drill in drills:
            results = [r for r in drill.records if r.get("check") == family]
            cells.append((sum(1 for r in results if r.get("outcome") == "passed"), len(results))
                         if results else None)
        rows.append((family, cells))
    return rows


def flips(previous: Drill, latest: Drill) -> list[dict[str, str]]:
    """Checks in both drills that passed in one and did not in the other; new failures first."""
    before, after = previous.outcomes, latest.outcomes
    by_key = {str(r["key"]): r for r in latest.records}
    changed = []
    for key in sorted(set(before) & set(after)):
        if (before[key] == "passed") == (after[key] == "passed"):
            continue
        record = by_key[key]
        changed.append({"key": key, "before": before[key], "after": after[key],
                        "direction": "broke" if before[key] == "passed" else "fixed",
                        "observed": str(record.get("observed", "")),
                        "message": str(record.get("message", ""))})
    changed.sort(key=lambda f: (f["direction"] != "broke", f["key"]))
    return changed


def load_drills(directories: Sequence[Path]) -> list[Drill]:
    """The bundles, checked against their manifests, oldest launch first."""
    import hashlib

    from pytest_drcheck.evidence.bundle import load
    from pytest_drcheck.evidence.layout import MANIFEST
    from pytest_drcheck.evidence.manifest import verify
    from pytest_drcheck.evidence.signoff import read_approvals

    drills = []
    for directory in directories:
        check = verify(directory)
        if not check.ok:
            raise EvidenceError(f"{directory}: the bundle does not match its manifest "
                                f"({check.lines()[0]}); history is built from intact evidence "
                                "only")
        drill, records, _ = load(directory)
        drills.append(Drill(
            directory=directory.name or str(directory),
            name=str(drill.get("drill", {}).get("name", "")),
            launched_at=parse_instant(str(drill.get("launched_at") or drill["started_at"])),
            verdict=str(drill.get("verdict", "incomplete")),
            counts=dict(drill.get("counts", {})),
            rto=dict(drill.get("rto") or {}),
            rpo=dict(drill.get("rpo") or {"target_s": drill.get("drill", {})
                                          .get("rpo_target_s")}),
            records=records,
            approvals=len(read_approvals(directory)),
            manifest_sha256=hashlib.sha256((directory / MANIFEST).read_bytes()).hexdigest(),
            path=directory))
    drills.sort(key=lambda d: d.launched_at)
    # Bundles are often all called alike (evidence/ in each job's workspace): then name them by
    # their parent directory too.
    names = [d.directory for d in drills]
    for entry in drills:
        if names.count(entry.directory) > 1 and entry.path is not None:
            entry.directory = f"{entry.path.resolve().parent.name}/{entry.path.name}"
    return drills


def _figure(figure: Mapping[str, Any]) -> str:
    measured, target = _seconds(figure, "measured_s"), _seconds(figure, "target_s")
    text = format_duration(measured) if measured is not None else "not measured"
    if target is not None:
        text += f" / {format_duration(target)}"
    return text


def render_history(drills: Sequence[Drill]) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    if not drills:
        raise EvidenceError("history needs at least one bundle directory")
    environment = Environment(loader=PackageLoader("pytest_drcheck", "templates"),
                              autoescape=select_autoescape(["html", "j2"]),
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    names = sorted({d.name for d in drills})
    return environment.get_template("history.html.j2").render(
        title=", ".join(names),
        drills=drills,
        chart=chart(drills),
        families=family_rates(drills),
        flips=flips(drills[-2], drills[-1]) if len(drills) > 1 else None,
        latest=drills[-1],
        previous=drills[-2] if len(drills) > 1 else None,
        figure=_figure,
        state=_state,
        generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )


def history_command(args: argparse.Namespace) -> int:
    output = Path(args.output)
    try:
        drills = load_drills([Path(d) for d in args.directory])
        page = render_history(drills)
        output.write_text(page, encoding="utf-8")
    except EvidenceError as exc:
        print(f"drcheck history: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"drcheck history: cannot write {output}: {exc.strerror}", file=sys.stderr)
        return 1
    flipped = flips(drills[-2], drills[-1]) if len(drills) > 1 else []
    print(f"{output}: history of {len(drills)} drill(s), {drills[0].label} to "
          f"{drills[-1].label}; {len(flipped)} check(s) flipped since the previous drill")
    return 0
