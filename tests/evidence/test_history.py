"""`drcheck history` over real drills' bundles: the page in headless chromium (DOM and
screenshot), the chart's geometry, flipped checks, and refusing altered evidence."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from pytest_drcheck.cli import main as drcheck
from pytest_drcheck.evidence.history import Drill, chart, flips
from tests.browser import ARTIFACTS, chromium, colour_share, hex_colour, render
from tests.evidence.drills import drill_series
from tests.evidence.test_signing import the_line

PASSED, FAILED, AMBER = hex_colour("#1a7f37"), hex_colour("#cf222e"), hex_colour("#b35900")


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return drill_series(tmp_path_factory.mktemp("history"))


def history(capsys: pytest.CaptureFixture[str], output: Path, *bundles: Path) -> str:
    capsys.readouterr()
    assert drcheck(["history", *map(str, bundles), "-o", str(output)]) == 0
    out: str = capsys.readouterr().out
    return out


@pytest.mark.skipif(chromium() is None, reason="needs chromium (apt install chromium)")
def test_history_in_a_real_browser(series: list[Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "history.html"
    # Given newest first: the page orders drills by launch time all the same.
    out = history(capsys, page, *reversed(series))
    assert out.startswith(f"{page}: history of 3 drill(s), ")
    assert out.endswith("; 2 check(s) flipped since the previous drill\n")
    html = page.read_text()
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)
    screenshot = ARTIFACTS / "history-three-drills.png"
    dom = render(page, screenshot, height=1500)

    assert "<title>DR drill history web-tier: 3 drills</title>" in dom
    assert '<section class="banner failed" id="summary">' in dom
    rows = re.findall(r'<tr data-drill="(2026-q\d)">.*?data-rto-state="(\w+)">([^<]*)</td>', dom,
                      re.S)
    assert [(d, state) for d, state, _ in rows] == [
        ("2026-q1", "missed"), ("2026-q2", "met"), ("2026-q3", "missed")]
    assert rows[2][2] == "not measured / 60 min"
    bars = re.findall(r'data-kind="(\w+)" data-state="(\w+)"', dom)
    # q1: RTO ~70 min missed, RPO 4 min met; q2: RTO ~40 min met, RPO 21 min missed;
    # q3: a check failed so no RTO bar, RPO 8 min met.
    assert bars == [("rto", "missed"), ("rpo", "met"), ("rto", "met"), ("rpo", "missed"),
                    ("rpo", "met")]
    assert dom.count('class="target"') == 6 and ">RTO n/a</text>" in dom
    reach = dom.split('<tr data-family="reach">', 1)[1].split("</tr>", 1)[0]
    assert re.findall(r">(\d+% \(\d/\d\))<", reach) == ["100% (3/3)", "100% (3/3)",
                                                         "33% (1/3)"]
    flipped = dom.split('<section id="flips">', 1)[1].split("</section>", 1)[0]
    service = json.loads((series[0] / "drill.json").read_text())["selection"]["checks"]
    port = next(k for k in service if k.startswith("app02::reach")).split(":")[-1].rstrip("]")
    assert re.findall(r'<tr data-key="([^"]+)" data-direction="(\w+)">', flipped) == [
        (f"app01::reach[127.0.0.1:{port}]", "broke"),
        (f"app02::reach[127.0.0.1:{port}]", "broke")]
    assert "expected open, observed refused" in flipped

    # What a person sees: a red banner, red and green bars in the chart, an amber pass rate.
    assert colour_share(screenshot, FAILED, box=(80, 30, 1200, 110)) > 0.5
    chart_box = (80, 180, 1200, 500)
    assert colour_share(screenshot, PASSED, box=chart_box) > 0.01
    assert colour_share(screenshot, FAILED, box=chart_box) > 0.01
    assert colour_share(screenshot, AMBER) > 0.0003


def drill(name: str, hour: int, rto: dict[str, Any], outcomes: dict[str, str]) -> Drill:
    return Drill(directory=name, name="d", launched_at=datetime(2026, 1, 1, hour,
                                                                tzinfo=timezone.utc),
                 verdict="passed", counts={}, rto=rto, rpo={}, approvals=0,
                 manifest_sha256="0" * 64,
                 records=[{"key": k, "check": k.split("::")[1].split("[")[0], "outcome": o,
                           "observed": "x", "message": "m"} for k, o in outcomes.items()])


def test_chart_bars_and_targets_share_one_scale() -> None:
    drills = [drill("a", 1, {"measured_s": 1800.0, "target_s": 3600.0, "met": True}, {}),
              drill("b", 2, {"measured_s": 5400.0, "target_s": 3600.0, "met": False}, {}),
              drill("c", 3, {"measured_s": None, "target_s": 3600.0, "met": False}, {})]
    made = chart(drills)
    first, second = made.bars
    assert (first.state, second.state) == ("met", "missed")
    assert second.height == pytest.approx(3 * first.height, abs=0.2)
    target_height = made.bottom_y - made.targets[0][2]
    assert target_height == pytest.approx(2 * first.height, abs=0.2)
    assert made.not_reached == [(pytest.approx(made.x_labels[2][0]), "RTO n/a")]
    # Gridlines at round durations up to the first step above the tallest bar (90 min and 8%).
    assert [label for _, label in made.y_ticks] == ["0", "20 min", "40 min", "60 min", "80 min",
                                                    "100 min"]
    assert not made.has_rpo


def test_flips_are_checks_in_both_drills_that_changed_between_pass_and_not() -> None:
    before = drill("a", 1, {}, {"h::reach[1]": "passed", "h::reach[2]": "failed",
                                "h::dns[x]": "passed", "h::dns[gone]": "failed",
                                "h::ntp[y]": "failed"})
    after = drill("b", 2, {}, {"h::reach[1]": "error", "h::reach[2]": "passed",
                               "h::dns[x]": "passed", "h::dns[new]": "failed",
                               "h::ntp[y]": "waived"})
    assert [(f["key"], f["direction"], f["before"], f["after"]) for f in flips(before, after)] == [
        ("h::reach[1]", "broke", "passed", "error"), ("h::reach[2]", "fixed", "failed",
                                                       "passed")]


def test_one_bundle_has_no_flips_and_altered_ones_are_refused(
        series: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "one.html"
    assert history(capsys, page, series[0]).endswith(
        "; 0 check(s) flipped since the previous drill\n")
    assert '<section id="flips">' not in page.read_text()
    altered = tmp_path / "altered"
    altered.mkdir()
    copy = altered / "2026-q2"
    shutil.copytree(series[1], copy)
    (copy / "drill.json").write_text("{}")
    assert drcheck(["history", str(series[0]), str(copy), "-o", str(tmp_path / "x.html")]) == 1
    assert the_line(capsys.readouterr().err) == (
        f"drcheck history: {copy}: the bundle does not match its manifest (changed: "
        "drill.json); history is built from intact evidence only")
    assert not (tmp_path / "x.html").exists()


def test_many_drills_label_some_dates_and_alike_bundles_by_parent(
        series: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    many = [drill(f"d{n}", n % 24, {"measured_s": 60.0 * n, "target_s": 3600.0,
                                     "met": n < 60}, {}) for n in range(30)]
    labels = chart(many).x_labels
    assert 6 <= len(labels) < 30 and labels[-1][2] == "d29"  # the latest always named
    alike = []
    for name, bundle in zip(("ci-run-1", "ci-run-2"), series[:2], strict=True):
        (tmp_path / name).mkdir()
        alike.append(tmp_path / name / "evidence")
        shutil.copytree(bundle, alike[-1])
    history(capsys, tmp_path / "alike.html", *alike)
    html = (tmp_path / "alike.html").read_text()
    assert '<tr data-drill="ci-run-1/evidence">' in html
    assert '<tr data-drill="ci-run-2/evidence">' in html
