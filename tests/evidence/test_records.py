"""The verdict step (records.Verdicts): a check result becomes its record once, waiver decided,
times from the launch anchor, secrets redacted; earlier failed attempts kept for JUnit."""

from __future__ import annotations

import textwrap
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pytest_drcheck.evidence.junit import case_properties
from pytest_drcheck.evidence.records import Verdicts
from pytest_drcheck.evidence.redact import Redactor
from pytest_drcheck.inventory import load_plan
from pytest_drcheck.inventory.plan import Plan
from pytest_drcheck.model import CheckResult, EarlierAttempt, Outcome

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent("""\
        version: 1
        drill: {name: t}
        defaults: {connection: {type: local}}
        hosts:
          app01:
            checks:
              reach: [{target: "127.0.0.1:25"}, {target: "127.0.0.1:22"}]
        waivers:
          - id: RISK-1
            host: app01
            check: reach
            subject: "127.0.0.1:25"
            justification: mail relay retired
            approved_by: CISO
            expires: 2099-12-31
        """))
    return load_plan(path)


def result(subject: str, outcome: Outcome, observed: str = "refused",
           earlier: tuple[EarlierAttempt, ...] = ()) -> CheckResult:
    return CheckResult("app01", "reach", subject, outcome, "open", observed,
                       f"app01 reach {subject}: expected open, observed {observed}",
                       "app01 (local)", T0 + timedelta(seconds=10), 250.0, 1 + len(earlier),
                       {}, earlier)


def test_a_result_becomes_its_record_once(plan: Plan) -> None:
    verdicts = Verdicts(plan, T0, T0.date(), Redactor([("env:PW", "hunter2")]))
    first = result("127.0.0.1:22", Outcome.FAILED, observed="banner hunter2")
    records = []
    threads = [threading.Thread(target=lambda: records.append(verdicts.record(first)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r is records[0] for r in records)  # one record, whoever asks first
    assert records[0]["observed"] == "banner [redacted env:PW]"
    assert verdicts.record(first) is records[0]
    # A new result of the same check (a later run of it) is a new record.
    again = result("127.0.0.1:22", Outcome.PASSED, observed="connected")
    assert verdicts.record(again)["outcome"] == "passed"


def test_the_waiver_is_decided_in_the_verdict_step(plan: Plan) -> None:
    verdicts = Verdicts(plan, T0, T0.date(), Redactor([]))
    waived = verdicts.record(result("127.0.0.1:25", Outcome.FAILED))
    assert (waived["outcome"], waived["check_outcome"]) == ("waived", "failed")
    assert waived["waiver"]["id"] == "RISK-1" and waived["waiver"]["status"] == "live"
    properties = dict(case_properties(waived))
    assert (properties["dr.outcome"], properties["dr.waiver"]) == ("waived", "RISK-1")
    after_expiry = Verdicts(plan, T0, datetime(2100, 1, 1).date(), Redactor([]))
    expired = after_expiry.record(result("127.0.0.1:25", Outcome.FAILED))
    assert expired["outcome"] == "failed" and expired["waiver"]["status"] == "expired"
    assert "waiver RISK-1 expired on 2099-12-31" in expired["message"]


def test_earlier_failed_attempts_are_kept_in_the_record(plan: Plan) -> None:
    verdicts = Verdicts(plan, T0, T0.date(), Redactor([]))
    earlier = (EarlierAttempt(T0 + timedelta(seconds=3), Outcome.ERROR, "not observed",
                              "could not observe: no route to host"),
               EarlierAttempt(T0 + timedelta(seconds=6), Outcome.FAILED, "refused",
                              "expected open, observed refused"))
    record = verdicts.record(result("127.0.0.1:22", Outcome.PASSED, "connected", earlier))
    assert record["attempts"] == 3 and record["time_to_green_s"] == 10.25
    assert record["earlier_failures"] == [
        {"at": "2024-05-01T09:30:03.000+00:00", "outcome": "error", "observed": "not observed",
         "message": "could not observe: no route to host"},
        {"at": "2024-05-01T09:30:06.000+00:00", "outcome": "failed", "observed": "refused",
         "message": "expected open, observed refused"}]
    plain = verdicts.record(result("127.0.0.1:22", Outcome.PASSED, "connected"))
    assert "earlier_failures" not in plain
