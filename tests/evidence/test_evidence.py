"""Evidence building blocks without pytest sessions: redaction, records and RTO, sharding,
the manifest, the schema-valid JUnit file, CI identifiers and the report's rendering."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from junitparser import JUnitXml

from pytest_drcheck.evidence import drillinfo
from pytest_drcheck.evidence.junit_bundle import write_junit
from pytest_drcheck.evidence.manifest import verify, write_manifest
from pytest_drcheck.evidence.records import counts, measure_rto, parse_instant, verdict
from pytest_drcheck.evidence.redact import Redactor, redactor_for, secret_references
from pytest_drcheck.evidence.report import render_report
from pytest_drcheck.inventory import load_plan
from pytest_drcheck.sharding import Shard, assign, hosts_of, parse_shard

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "junit-ci.xsd"
T0 = datetime(2024, 5, 1, 9, 30, tzinfo=timezone.utc)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def record(key: str, outcome: str, green: float | None = None, **extra: Any) -> dict[str, Any]:
    host, rest = key.split("::")
    check, subject = rest.rstrip("]").split("[", 1)
    return {
        "key": key, "host": host, "check": check, "subject": subject, "outcome": outcome,
        "check_outcome": "failed" if outcome == "waived" else outcome,
        "expected": "open", "observed": "connected" if outcome == "passed" else "refused",
        "message": f"{host} {check} {subject}: observed", "vantage": f"{host} (local)",
        "source": "site.yaml:12: hosts.app01.checks.reach[0]", "started_at": at(1),
        "finished_at": at(green or 2), "duration_ms": 1000.0 * ((green or 2) - 1),
        "attempts": 1, "green_at": at(green) if green is not None else None,
        "time_to_green_s": green, "waiver": None, **extra,
    }


# --- redaction ------------------------------------------------------------------------------


def test_redactor_replaces_values_deeply_and_secret_keys() -> None:
    redactor = Redactor([("env:DB_PW", "s3cr3t-canary")])
    value = redactor.value({"stdout": "user=a pw=s3cr3t-canary\n", "list": ["x s3cr3t-canary"],
                            "password": "anything", "n": 3, "raw": b"s3cr3t-canary"})
    assert value == {"stdout": "user=a pw=[redacted env:DB_PW]\n",
                     "list": ["x [redacted env:DB_PW]"], "password": "[redacted]", "n": 3,
                     "raw": "[redacted env:DB_PW]"}
    assert "s3cr3t-canary" not in json.dumps(value)


def test_redactor_for_resolves_env_and_file_references(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("file-canary-9f\n")
    monkeypatch.setenv("DRC_TEST_PW", "env-canary-42")
    path = tmp_path / "site.yaml"
    path.write_text(f"""\
version: 1
drill: {{name: t}}
defaults: {{connection: {{type: local, password: "env:DRC_TEST_PW"}}}}
hosts:
  app01: {{}}
  app02: {{connection: {{password: "file:{secret_file}"}}}}
  app03: {{connection: {{password: "env:DRC_UNSET_VARIABLE"}}}}
""")
    redactor = redactor_for(load_plan(path))
    assert len(redactor) == 2
    assert redactor.text("a env-canary-42 b file-canary-9f") == (
        "a [redacted env:DRC_TEST_PW] b [redacted file:" + str(secret_file) + "]")


def test_secret_references_come_from_anywhere_in_the_document_in_the_order_written(
        tmp_path: Path) -> None:
    """References outside connections (a site section's bind password) are found, and in
    the order written: the label of a value two references share depends on it."""
    path = tmp_path / "site.yaml"
    path.write_text("""\
version: 1
drill: {name: t}
site:
  directory:
    corp:
      servers: [dc01.corp.example]
      user: uid=drcheck,dc=corp
      password: env:DRC_BIND_B
    ad:
      kind: ad
      domain: ad.corp.example
      servers: [dc02.ad.corp.example]
      user: drcheck
      password: file:/run/secrets/ad-a
hosts:
  app01: {address: 10.0.0.1, connection: {password: "env:DRC_HOST_PW"}}
  app02: {address: 10.0.0.2, checks: {reach: [{target: "db:5432"}]}}
""")
    assert [str(ref) for ref in secret_references(load_plan(path))] == [
        "env:DRC_HOST_PW", "env:DRC_BIND_B", "file:/run/secrets/ad-a"]


# --- records, RTO, verdict --------------------------------------------------------------------


def test_parse_instant_needs_a_timezone() -> None:
    assert parse_instant("2024-05-01T09:30:00Z") == T0
    assert parse_instant("2024-05-01T11:30:00+02:00") == T0
    with pytest.raises(ValueError, match=r"no timezone; add one, e\.g\. 2024-05-01T09:30Z"):
        parse_instant("2024-05-01T09:30", "--dr-launched-at")
    with pytest.raises(ValueError, match="not an ISO-8601 time"):
        parse_instant("yesterday")


def test_measured_rto_is_launch_to_last_green() -> None:
    records = [record("a::reach[x:1]", "passed", 10.0), record("b::reach[x:1]", "passed", 95.5),
               record("b::reach[x:2]", "waived"), record("c::dns[n]", "skipped")]
    rto = measure_rto(records, T0, "--dr-launched-at", 120.0)
    assert (rto.measured_s, rto.last_green, rto.met) == (95.5, "b::reach[x:1]", True)
    assert measure_rto(records, T0, "", 60.0).met is False
    assert measure_rto(records, T0, "", None).met is None
    failing = [*records, record("c::reach[x:9]", "failed")]
    not_reached = measure_rto(failing, T0, "", 120.0)
    assert (not_reached.measured_s, not_reached.never_green, not_reached.met) == (None, 1, False)
    assert verdict(counts(records), rto, complete=True) == ("passed", [])
    assert verdict(counts(failing), not_reached, complete=True) == (
        "failed", ["1 check(s) failed"])
    assert verdict(counts(records), rto, complete=False)[0] == "incomplete"


# --- sharding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ("3/2", "--dr-shard=3/2: K must be between 1 and 2 (shards are numbered from 1)"),
    ("0/4", "--dr-shard=0/4: K must be between 1 and 4"),
    ("1/0", "--dr-shard=1/0: N must be at least 1"),
    ("a/b", "--dr-shard=a/b: write K/N, e.g. --dr-shard=2/4"),
    ("2", "--dr-shard=2: write K/N"),
])
def test_bad_shard_is_one_line(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_shard(text)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_shards_partition_hosts_deterministically_and_balance_checks() -> None:
    hosts = [(f"h{i:03d}", 1 + (i * 7) % 13) for i in range(200)]
    first = assign(hosts, 4)
    assert first == assign(list(reversed(hosts)), 4)  # order of the inventory does not matter
    union: set[str] = set()
    loads = []
    for k in range(1, 5):
        mine = hosts_of(Shard(k, 4), hosts)
        assert not union & mine
        union |= mine
        loads.append(sum(n for h, n in hosts if h in mine))
    assert union == {h for h, _ in hosts}
    assert max(loads) - min(loads) <= 13  # within one host's worth of checks
    assert parse_shard(" 2 / 4 ") == Shard(2, 4)


# --- manifest -----------------------------------------------------------------------------------


def test_manifest_detects_changed_added_removed(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.jsonl").write_text("x\n")
    write_manifest(tmp_path)
    assert verify(tmp_path).ok
    assert (tmp_path / "MANIFEST.sha256").read_text().splitlines()[0].endswith("  a.json")
    (tmp_path / "a.json").write_text("{ }")
    (tmp_path / "sub" / "b.jsonl").unlink()
    (tmp_path / "c.txt").write_text("new")
    result = verify(tmp_path)
    assert result.lines() == ["changed: a.json", "added: c.txt", "removed: sub/b.jsonl"]


# --- JUnit ----------------------------------------------------------------------------------


def drill_facts(records: list[dict[str, Any]]) -> dict[str, Any]:
    rto = measure_rto(records, T0, "--dr-launched-at", 3600.0)
    return {
        "drill": {"name": "q3-drill", "rto_target_s": 3600.0},
        "inventory": {"path": "sites/site.yaml", "sha256": "ab" * 32,
                      "git": {"commit": "c0ffee", "inventory_modified": False}},
        "tool": {"version": "0.1.0"}, "operator": "dr-bot", "runner": {"hostname": "ci01"},
        "ci": {"system": "gitlab-ci", "run_id": "991", "url": "https://gitlab.example/j/1"},
        "started_at": at(0), "finished_at": at(100), "launched_at": at(0),
        "launched_at_source": "--dr-launched-at", "rto": rto.as_dict(),
        "counts": counts(records), "verdict": "failed", "shard": {"index": 2, "count": 3},
        "waivers": [{"id": "RISK-1", "applied": 1, "status": "live", "stale": False},
                    {"id": "RISK-2", "applied": 0, "status": "live", "stale": True}],
    }


ALL_OUTCOMES = [
    record("app01::reach[10.0.0.1:22]", "passed", 12.0),
    record("app01::reach[10.0.0.1:3306]", "failed",
           observed="refused \x00\x1b[31m odd bytes"),
    record("app02::dns[dc01.corp.example]", "error"),
    record("app02::reach[10.0.0.9:443]", "skipped"),
    record("app03::reach[10.0.0.1:25]", "waived", waiver={
        "id": "RISK-1", "status": "live", "justification": "mail relay retired",
        "approved_by": "CISO", "expires": "2030-01-01",
        "note": "waived by RISK-1 until 2030-01-01 (approved by CISO): mail relay retired"}),
]


def test_bundle_junit_is_schema_valid_and_counts_agree_with_an_independent_parser(
        tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    facts = drill_facts(ALL_OUTCOMES)
    write_junit(path, facts, ALL_OUTCOMES)
    xmlschema.XMLSchema(SCHEMA).validate(path)
    parsed = JUnitXml.fromfile(str(path))
    (suite,) = list(parsed)
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (5, 1, 1, 2)
    properties = {p.name: p.value for p in suite.properties()}
    assert properties["dr.drill"] == "q3-drill"
    assert properties["dr.rto_target_s"] == "3600.0"
    assert properties["dr.rto_met"] == "false"  # a failure: RTO not reached
    assert properties["dr.ci_run_id"] == "991" and properties["dr.shard"] == "2/3"
    assert properties["dr.waivers_applied"] == "RISK-1"
    assert properties["dr.waivers_stale"] == "RISK-2"
    cases = {f"{c.classname}::{c.name}": c for c in suite}
    waived = cases["sites.site.yaml.app03::reach[10.0.0.1:25]"]
    assert waived.is_skipped and waived.result[0].type == "dr.waived"
    assert "mail relay retired" in waived.result[0].message
    failed = cases["sites.site.yaml.app01::reach[10.0.0.1:3306]"]
    assert failed.result[0].type == "dr.failed"
    assert "dr.observed: refused \\x00\\x1b[31m odd bytes" in (failed.system_out or "")


# --- CI identifiers ----------------------------------------------------------------------------


def test_ci_identifiers_from_the_usual_variables() -> None:
    github = drillinfo.ci_info({"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com",
                                "GITHUB_REPOSITORY": "acme/dr", "GITHUB_RUN_ID": "77",
                                "GITHUB_TOKEN": "ghs_secret"})
    assert github == {"system": "github-actions", "run_id": "77",
                      "url": "https://github.com/acme/dr/actions/runs/77",
                      "variables": {"GITHUB_SERVER_URL": "https://github.com",
                                    "GITHUB_REPOSITORY": "acme/dr", "GITHUB_RUN_ID": "77"}}
    gitlab = drillinfo.ci_info({"GITLAB_CI": "true", "CI_PIPELINE_ID": "5",
                                "CI_JOB_URL": "https://gl/j/9", "CI_JOB_TOKEN": "x"})
    assert gitlab is not None and (gitlab["run_id"], gitlab["url"]) == ("5", "https://gl/j/9")
    assert "CI_JOB_TOKEN" not in gitlab["variables"]
    jenkins = drillinfo.ci_info({"JENKINS_URL": "https://j", "BUILD_TAG": "jenkins-dr-12",
                                 "BUILD_URL": "https://j/job/dr/12/"})
    assert jenkins is not None and jenkins["url"] == "https://j/job/dr/12/"
    assert drillinfo.ci_info({}) is None
    assert drillinfo.operator({"GITHUB_ACTOR": "octo"}) == "octo"
    assert drillinfo._strip_credentials("https://u:tok@git.example/x.git") == (
        "https://git.example/x.git")


# --- report ---------------------------------------------------------------------------------


def test_report_renders_every_outcome_and_escapes(tmp_path: Path) -> None:
    records = [*ALL_OUTCOMES, record("app04::reach[<script>:1]", "failed",
                                     observed="<img src=x onerror=alert(1)>")]
    html = render_report(drill_facts(records), records)
    assert "<script>:1" not in html and "&lt;script&gt;:1" in html
    assert "<img src=x" not in html
    for section in ("verdict", "counts", "rto", "matrix", "failures", "waivers", "timeline",
                    "slowest"):
        assert f'id="{section}"' in html
    assert "http://" not in html.replace("http://www.w3.org", "")  # nothing to fetch
    assert "https://" not in html.replace('href="https://gitlab.example/j/1"', "")


def test_report_of_no_results_renders() -> None:
    facts = drill_facts([])
    html = render_report(facts, [])
    assert "No results." in html
