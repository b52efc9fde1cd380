"""The measured RPO in the evidence: drill.json's rpo (from the records), the JUnit suite
properties and the report, next to the measured RTO."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from junitparser import JUnitXml

from pytest_drcheck.evidence.drillinfo import measure_rpo
from pytest_drcheck.evidence.junit_bundle import write_junit
from pytest_drcheck.evidence.report import render_report
from tests.evidence.test_evidence import drill_facts, record


def rpo_record(host: str, outcome: str, measured: float | None,
               target: float = 900.0) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if measured is not None:
        extra["rpo"] = {"measured_s": measured, "target_s": target}
    return record(f"{host}::rpo[/var/lib/drcheck/beacon]", outcome,
                  5.0 if outcome == "passed" else None, **extra)


RECORDS = [rpo_record("app01", "passed", 192.0), rpo_record("app02", "passed", 45.5),
           record("app01::reach[10.0.0.1:22]", "passed", 3.0)]


def test_drill_rpo_is_the_worst_host_against_the_target() -> None:
    rpo = measure_rpo(RECORDS, 900.0)
    assert rpo == {"target_s": 900.0, "measured_s": 192.0, "worst_host": "app01", "met": True,
                   "hosts": [{"host": "app01", "measured_s": 192.0, "target_s": 900.0},
                             {"host": "app02", "measured_s": 45.5, "target_s": 900.0}],
                   "unmeasured": []}


def test_a_host_past_its_target_misses_and_an_unobserved_one_is_not_guessed() -> None:
    missed = measure_rpo([*RECORDS, rpo_record("db01", "failed", 1200.0)], 900.0)
    assert (missed["met"], missed["worst_host"], missed["measured_s"]) == (False, "db01",
                                                                            1200.0)
    unobserved = measure_rpo([*RECORDS, rpo_record("db01", "error", None)], 900.0)
    assert unobserved["met"] is None and unobserved["unmeasured"] == ["db01"]
    assert measure_rpo([RECORDS[2]], 900.0)["measured_s"] is None


def facts(records: list[dict[str, Any]]) -> dict[str, Any]:
    drill = drill_facts(records)
    drill["drill"]["rpo_target_s"] = 900.0
    drill["rpo"] = measure_rpo(records, 900.0)
    return drill


def test_junit_suite_properties_carry_the_measured_rpo(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    write_junit(path, facts(RECORDS), RECORDS)
    (suite,) = list(JUnitXml.fromfile(str(path)))
    properties = {p.name: p.value for p in suite.properties()}
    assert (properties["dr.rpo_measured_s"], properties["dr.rpo_target_s"],
            properties["dr.rpo_met"], properties["dr.rpo_worst_host"]) == (
        "192.0", "900.0", "true", "app01")


def test_the_report_shows_the_rpo_next_to_the_rto() -> None:
    html = render_report(facts(RECORDS), RECORDS)
    assert '<span id="rpo-line">RPO measured 3 min 12 s against a target of 15 min</span>' in html
    assert 'id="rpo"' in html
    assert "<td>app02</td><td>45.5 s</td><td>15 min</td>" in html


def test_a_drill_without_rpo_checks_has_no_rpo_section() -> None:
    records = [RECORDS[2]]
    html = render_report(facts(records), records)
    assert 'id="rpo"' not in html and "RPO measured" not in html


def test_the_report_charts_the_write_rate_against_the_link() -> None:
    records = [*RECORDS, record("app01::replication[link]", "passed", 4.0, replication={
        "average_mbit_s": 40.0, "peak_mbit_s": 120.0, "link_mbit_s": 100.0, "headroom": 1.3})]
    html = render_report(facts(records), records)
    assert 'id="replication-link"' in html
    assert "link 100 Mbit/s" in html
    for shown in ("average 40.00 Mbit/s", "with headroom 52.00 Mbit/s", "peak 120.00 Mbit/s"):
        assert shown in html
    # Scaled to the peak (the largest figure): the link line at 100/120 of the width.
    assert '<line x1="516.5" x2="516.5"' in html
    assert 'width="126.5" height="14"' in html  # 40/120 of 380 (as rounded to 0.1 %)


def test_the_chart_draws_drs_s_throttle_as_a_second_line() -> None:
    link = record("src01::replication[link]", "passed", 4.0, replication={
        "average_mbit_s": 40.0, "peak_mbit_s": 60.0, "link_mbit_s": 100.0, "headroom": 1.3})
    throttle = record("src01::replication[throttle]", "failed", None,
                      replication={"throttle_mbit_s": 120.0})
    records = [*RECORDS, link, throttle]
    html = render_report(facts(records), records)
    assert "link 100 Mbit/s, DRS throttle 120 Mbit/s (dashed)" in html
    # Scaled to the throttle (the largest figure): the link at 100/120 of the width, the
    # throttle at the full 380.
    assert '<line x1="516.5" x2="516.5"' in html
    assert '<line class="throttle" x1="580.0" x2="580.0"' in html
    assert "The dashed line is what DRS's throttles let through in all." in html
    # A source DRS does not throttle: no second line.
    unthrottled = record("src01::replication[throttle]", "passed", 4.0,
                         replication={"throttle_mbit_s": None})
    records = [*RECORDS, link, unthrottled]
    html = render_report(facts(records), records)
    assert 'class="throttle"' not in html and "DRS throttle" not in html
    assert "The dashed line" not in html
