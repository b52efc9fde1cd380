"""Waivers: parsing, selectors, live/expired decisions and stale detection (no network)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pytest_drcheck.evidence.waiving import WAIVED, decide, stale_waivers, waiver_summary
from pytest_drcheck.inventory import load_plan
from pytest_drcheck.model import Outcome

INVENTORY = """\
version: 1
drill: {name: t}
defaults: {connection: {type: local}}
groups:
  db: {}
hosts:
  app01:
    checks:
      reach: [{target: "10.0.0.5:22"}, {target: "10.0.0.5:3306"}]
  db01:
    groups: [db]
    checks:
      reach: [{target: "10.0.0.9:5432"}]
waivers:
  - id: RISK-1
    host: app01
    subject: "*:3306"
    justification: MySQL moves to RDS in Q3; no DR copy until then
    approved_by: CISO J. Doe
    expires: 2030-06-30
  - id: RISK-2
    group: db
    check: reach
    justification: old exception
    approved_by: ops lead
    expires: "2020-01-31"
  - id: RISK-3
    host: [app02, app03]
    justification: typo
    approved_by: someone
    expires: 2030-01-01
"""


def plan_of(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "site.yaml"
    path.write_text(INVENTORY)
    return load_plan(path)


def test_waivers_are_parsed_with_their_place(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    first, second, third = plan.waivers
    assert first.id == "RISK-1" and first.expires == date(2030, 6, 30)
    assert first.selector == "host=app01 subject=*:3306"
    assert second.expires == date(2020, 1, 31)  # quoted dates are accepted too
    assert third.host == ("app02", "app03")
    assert str(first.source).endswith("site.yaml:15: waivers[0]")


def test_live_waiver_waives_only_failures(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    items = {i.key: i for i in plan.items}
    item = items["app01::reach[10.0.0.5:3306]"]
    decision = decide(plan, item, Outcome.FAILED, date(2030, 6, 30))  # last day still live
    assert decision.outcome == WAIVED and decision.waiver is not None
    assert decision.note == ("waived by RISK-1 until 2030-06-30 (approved by CISO J. Doe): "
                             "MySQL moves to RDS in Q3; no DR copy until then")
    assert decide(plan, item, Outcome.PASSED, date(2030, 1, 1)).outcome == "passed"
    assert decide(plan, item, Outcome.ERROR, date(2030, 1, 1)).outcome == "error"
    other = items["app01::reach[10.0.0.5:22]"]
    assert decide(plan, other, Outcome.FAILED, date(2030, 1, 1)).outcome == "failed"


def test_expired_waiver_no_longer_applies_and_says_so(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    item = next(i for i in plan.items if i.host == "db01")
    decision = decide(plan, item, Outcome.FAILED, date(2024, 5, 1))
    assert decision.outcome == "failed" and decision.status == "expired"
    assert decision.note == "waiver RISK-2 expired on 2020-01-31 and no longer applies"
    expired_next_day = decide(plan, next(i for i in plan.items if "3306" in i.key),
                              Outcome.FAILED, date(2030, 7, 1))
    assert expired_next_day.status == "expired"


def test_stale_waiver_is_reported_with_a_hint(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    (stale,) = stale_waivers(plan)
    assert stale.waiver.id == "RISK-3"
    assert stale.message == (
        f"{tmp_path / 'site.yaml'}:27: waivers[2]: waiver RISK-3 (host=app02,app03) matches no "
        "check of the inventory (did you mean host 'app01'?); stale waivers hide drift: "
        "remove it or fix its selector")
    summary = {w["id"]: w for w in waiver_summary(plan, date(2024, 5, 1), ["RISK-1"], [])}
    assert summary["RISK-3"]["stale"] and summary["RISK-3"]["matched_checks"] == 0
    assert summary["RISK-2"]["status"] == "expired" and summary["RISK-2"]["matched_checks"] == 1
    assert summary["RISK-1"]["applied"] == 1
