"""The evidence bundle of real drills (connection type local, real sockets on 127.0.0.1):
contents, verification and tampering, JUnit validity, canary secrets, waivers, --dr-wait and
time to green, launch time and RTO, shards and merge, a run killed with SIGKILL, xdist."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import xmlschema
import xunitparser
from junitparser import JUnitXml

from pytest_drcheck import __version__
from pytest_drcheck.checks import registry
from pytest_drcheck.cli import main as drcheck
from pytest_drcheck.durations import format_duration
from pytest_drcheck.retry import Backoff
from tests.plugin.sockets import Listener

SCHEMA = xmlschema.XMLSchema(Path(__file__).resolve().parents[1] / "data" / "junit-ci.xsd")
BUNDLE_FILES = {"MANIFEST.sha256", "drill.json", "junit.xml", "report.html", "results.jsonl",
                "observations/app01.jsonl", "observations/app02.jsonl"}


def write_inventory(pytester: pytest.Pytester, open_port: int, closed_port: int,
                    extra: str = "", rto: str = "1h") -> Path:
    path = pytester.path / "site.yaml"
    path.write_text(textwrap.dedent(f"""\
        version: 1
        drill: {{name: local-drill, rto: {rto}}}
        defaults:
          timeout: 5s
          connection: {{type: local}}
        hosts:
          app01:
            checks:
              reach:
                - {{target: "127.0.0.1:{open_port}"}}
                - {{target: "127.0.0.1:{closed_port}", expect: closed}}
              dns:
                - {{name: localhost, expect: 127.0.0.1, allow_hosts_file: true}}
          app02:
            checks:
              reach:
                - {{target: "127.0.0.1:{closed_port}"}}
              dns:
                - {{name: localhost, expect: 127.0.0.1, allow_hosts_file: true}}
        """) + textwrap.dedent(extra))
    return path


def host_block(name: str, *targets: str) -> str:
    """A host of the inventory (under hosts:) with reach checks to these targets."""
    lines = [f"  {name}:\n    checks:\n      reach:\n"]
    lines += [f'        - {{target: "{target}"}}\n' for target in targets]
    return "".join(lines)


def files_of(directory: Path) -> set[str]:
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def junit_counts(path: Path) -> tuple[int, int, int, int]:
    suites = list(JUnitXml.fromfile(str(path)))
    return (sum(s.tests for s in suites), sum(s.failures for s in suites),
            sum(s.errors for s in suites), sum(s.skipped for s in suites))


@pytest.fixture
def echo_check() -> Iterator[None]:
    """Registers tests/plugin/echo_check.py as check type 'echo' for in-process runs."""
    registry.BUILTIN_CHECKS["echo"] = "tests.plugin.echo_check:EchoCheck"
    registry.available.cache_clear()
    yield
    del registry.BUILTIN_CHECKS["echo"]
    registry.available.cache_clear()
    registry.get.cache_clear()


# --- the bundle -------------------------------------------------------------------------------


def test_bundle_is_complete_verifies_and_every_edit_is_detected(
        pytester: pytest.Pytester, listener: Listener, closed_port: int,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = write_inventory(pytester, listener.port, closed_port)
    subprocess.run(["git", "init", "-q"], cwd=pytester.path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit",
                    "-q", "--allow-empty", "-m", "x"], cwd=pytester.path, check=True)
    subprocess.run(["git", "add", "site.yaml"], cwd=pytester.path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit",
                    "-q", "-m", "inventory"], cwd=pytester.path, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=pytester.path, check=True,
                            capture_output=True, text=True).stdout.strip()
    for name, value in {"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com",
                        "GITHUB_REPOSITORY": "acme/dr", "GITHUB_RUN_ID": "4242",
                        "GITHUB_ACTOR": "dr-bot"}.items():
        monkeypatch.setenv(name, value)
    result = pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev",
                                "--junitxml=drill.xml")
    result.assert_outcomes(passed=4, failed=1)
    evidence = pytester.path / "ev"
    assert files_of(evidence) == BUNDLE_FILES

    drill = json.loads((evidence / "drill.json").read_text())
    assert drill["status"] == "finished" and drill["verdict"] == "failed"
    assert drill["drill"] == {"name": "local-drill", "description": "", "rto_target_s": 3600.0,
                              "rpo_target_s": None}
    assert drill["inventory"]["path"] == "site.yaml"
    assert drill["inventory"]["sha256"] == hashlib.sha256(inventory.read_bytes()).hexdigest()
    assert drill["inventory"]["git"] == {"commit": commit, "inventory_modified": False,
                                         "remote": None}
    assert drill["tool"] == {"name": "pytest-drcheck", "version": __version__}
    assert drill["ci"]["run_id"] == "4242"
    assert drill["ci"]["url"] == "https://github.com/acme/dr/actions/runs/4242"
    assert drill["operator"] == "dr-bot"
    assert drill["started_at"].endswith("+00:00") and drill["finished_at"].endswith("+00:00")
    assert drill["started_at"] <= drill["finished_at"]
    assert drill["launched_at_source"].startswith("start of checking")
    assert drill["counts"] == {"passed": 4, "failed": 1, "waived": 0, "error": 0, "skipped": 0,
                               "total": 5, "not_run": 0}
    assert drill["rto"]["measured_s"] is None and drill["rto"]["never_green"] == 1
    assert drill["selection"] == {"hosts": ["app01", "app02"], "planned_checks": 5,
                                  "checks": sorted(r["key"] for r in lines_of(
                                      evidence / "results.jsonl"))}
    assert drill["not_run"] == []

    records = lines_of(evidence / "results.jsonl")
    assert sorted(r["key"] for r in records) == sorted(
        json.loads(line)["key"] for line in (evidence / "results.jsonl").read_text().splitlines())
    assert len(records) == 5
    passed = next(r for r in records if r["key"] == f"app01::reach[127.0.0.1:{listener.port}]")
    assert passed["outcome"] == "passed" and passed["green_at"] is not None
    assert 0 <= passed["time_to_green_s"] < 30
    observations = lines_of(evidence / "observations" / "app01.jsonl")
    dns = next(o for o in observations if o["check"] == "dns")
    assert "127.0.0.1" in dns["details"]["getent"]  # the raw answer, kept

    # JUnit: schema-valid, and an independent parser counts what we count.
    SCHEMA.validate(evidence / "junit.xml")
    assert junit_counts(evidence / "junit.xml") == (5, 1, 0, 0)
    assert junit_counts(pytester.path / "drill.xml") == (5, 1, 0, 0)
    suite = ET.parse(pytester.path / "drill.xml").getroot().find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props["dr.rto_target_s"] == "3600.0" and props["dr.rto_met"] == "false"
    assert props["dr.verdict"] == "failed" and props["dr.inventory_git_commit"] == commit
    for path in (pytester.path / "drill.xml", evidence / "junit.xml"):
        # A second reader: xunitparser checks the file's totals against the cases it read
        # (and refuses a suite property given twice).
        xsuite, xresult = xunitparser.parse(str(path))
        names = [(case.classname, case.methodname) for case in xsuite]
        assert len(set(names)) == len(names) == 5, path  # unique per file
        assert ("site.yaml.app01", "dns[localhost]") in names, path
        assert ("site.yaml.app02", "dns[localhost]") in names, path
        assert len(xresult.failures) == 1 and xsuite.properties["dr.verdict"] == "failed"
        # The drill facts where CI shows them (suite properties are dropped by some).
        assert xsuite.stdout.splitlines()[:2] == [
            "drcheck drill 'local-drill': FAILED (1 check(s) failed)",
            "checks: 4 passed, 1 failed"], path
        assert f"inventory: site.yaml sha256 {drill['inventory']['sha256']}" in xsuite.stdout
    # pytest's file is finished without rewriting it: as pytest wrote it, plus the facts.
    assert (pytester.path / "drill.xml").read_text().startswith(
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">')
    assert "record_property" not in result.stdout.str()  # no xunit2 warning
    result.stdout.fnmatch_lines([
        "*drcheck*",
        "drill 'local-drill': FAILED (4 passed, 1 failed)",
        "measured RTO: not reached, 1 check(s) never went green (target 60 min)",
        f"evidence: {evidence} (MANIFEST.sha256 sha256 *)",
    ])

    capsys.readouterr()
    assert drcheck(["verify", str(evidence)]) == 0
    assert f"{evidence}: ok: 6 files match MANIFEST.sha256" in capsys.readouterr().out
    results = evidence / "results.jsonl"
    original = results.read_bytes()
    tampered = original.replace(b'"outcome": "failed"', b'"outcome": "passed"', 1)
    assert tampered != original
    edits = [
        ("changed: results.jsonl", lambda: results.write_bytes(tampered),
         lambda: results.write_bytes(original)),
        ("added: observations/app03.jsonl",
         lambda: (evidence / "observations" / "app03.jsonl").write_text("{}\n"),
         lambda: (evidence / "observations" / "app03.jsonl").unlink()),
        ("removed: report.html", lambda: (evidence / "report.html").rename(pytester.path / "r"),
         lambda: (pytester.path / "r").rename(evidence / "report.html")),
    ]
    for expected, edit, undo in edits:
        edit()
        assert drcheck(["verify", str(evidence)]) == 1
        assert f"{evidence}: {expected}" in capsys.readouterr().out
        undo()
        assert drcheck(["verify", str(evidence)]) == 0
    verified = subprocess.run(["sha256sum", "-c", "--quiet", "MANIFEST.sha256"], cwd=evidence)
    assert verified.returncode == 0  # standard tools agree


def test_each_result_becomes_a_record_once(pytester: pytest.Pytester, listener: Listener,
                                          closed_port: int,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The verdict step: the stream, the item and both JUnit files share one record per
    result (it used to be built twice, by the stream and by the item)."""
    from pytest_drcheck.evidence import records

    made: list[str] = []
    original = records.make_record

    def counted(result: Any, *args: Any) -> Any:
        made.append(result.key)
        return original(result, *args)

    monkeypatch.setattr(records, "make_record", counted)
    write_inventory(pytester, listener.port, closed_port)
    result = pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev",
                                "--junitxml=drill.xml")
    result.assert_outcomes(passed=4, failed=1)
    assert sorted(made) == sorted(r["key"] for r in lines_of(pytester.path / "ev" /
                                                             "results.jsonl"))
    assert len(made) == 5
    # pytest's file says what the bundle says, from the same record.
    streamed = {r["key"]: r for r in lines_of(pytester.path / "ev" / "results.jsonl")}
    for case in ET.parse(pytester.path / "drill.xml").getroot().iter("testcase"):
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        record = streamed[f"{properties['dr.host']}::{case.get('name')}"]
        assert properties["dr.started_at"] == record["started_at"]
        assert properties["dr.outcome"] == record["outcome"]


def test_no_secret_value_in_any_file(pytester: pytest.Pytester, echo_check: None,
                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_canary = "CANARY-env-7d1f3b9e0a"
    file_canary = "CANARY-file-52c8e6d4f1"
    monkeypatch.setenv("DRC_CANARY_PW", env_canary)
    secret_file = tmp_path / "ssh-password"
    secret_file.write_text(file_canary + "\n")
    (pytester.path / "site.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        drill: {{name: canary-drill}}
        defaults: {{connection: {{type: local}}}}
        hosts:
          app01:
            connection: {{password: "env:DRC_CANARY_PW"}}
            checks:
              echo:
                - {{name: env, command: 'echo "pw=$DRC_CANARY_PW"'}}
          app02:
            connection: {{password: "file:{secret_file}"}}
            checks:
              echo:
                - {{name: file, command: 'printf "%s" "$(cat {secret_file})"'}}
        """))
    result = pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev",
                                "--junitxml=drill.xml", "-rf")
    result.assert_outcomes(failed=2)
    output = result.stdout.str() + result.stderr.str()
    assert "[redacted env:DRC_CANARY_PW]" in output  # the check really carried it
    everything = [p for p in (pytester.path / "ev").rglob("*") if p.is_file()]
    everything.append(pytester.path / "drill.xml")
    for path in everything:
        data = path.read_bytes()
        assert env_canary.encode() not in data, path
        assert file_canary.encode() not in data, path
    assert env_canary not in output and file_canary not in output
    observation = lines_of(pytester.path / "ev" / "observations" / "app01.jsonl")[0]
    assert observation["details"] == {"stdout": "pw=[redacted env:DRC_CANARY_PW]",
                                      "password": "[redacted]",
                                      "nested": {"lines": ["pw=[redacted env:DRC_CANARY_PW]"]}}


# --- waivers ----------------------------------------------------------------------------------


def test_waivers_live_expired_and_stale(pytester: pytest.Pytester, listener: Listener,
                                        closed_port: int) -> None:
    write_inventory(pytester, listener.port, closed_port, extra=f"""\
        waivers:
          - id: RISK-7
            host: app02
            check: reach
            justification: app02 is retired from DR in Q3 (ticket DR-88)
            approved_by: J. Doe, CISO
            expires: 2099-12-31
          - id: RISK-8
            host: app02
            subject: localhost
            justification: old exception for the resolver
            approved_by: ops
            expires: 2020-01-31
          - id: RISK-9
            host: app2
            justification: typo in the host name
            approved_by: ops
            expires: 2099-12-31
          - id: RISK-10
            host: app01
            subject: "127.0.0.1:{listener.port}"
            justification: nothing fails here
            approved_by: ops
            expires: 2099-12-31
        """)
    path = pytester.path / "site.yaml"
    # app02 resolves localhost to 127.0.0.1, not to the 10.9.9.9 this drill expects: it fails.
    head, _, tail = path.read_text().rpartition("expect: 127.0.0.1")  # app02's, the last
    path.write_text(f"{head}expect: 10.9.9.9{tail}")
    result = pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev",
                                "--junitxml=drill.xml", "-rfx")
    # app02 reach: waived (live); app02 dns: failed, its waiver expired; the rest pass.
    result.assert_outcomes(passed=3, failed=1, xfailed=1)
    result.stdout.fnmatch_lines([
        "app02 dns localhost: expected 10.9.9.9, *; waiver RISK-8 expired on 2020-01-31 and no "
        "longer applies",
        f"XFAIL site.yaml::app02::reach[[]127.0.0.1:{closed_port}[]] - app02 reach "
        f"127.0.0.1:{closed_port}: expected open, observed refused [[]waived by RISK-7 until "
        "2099-12-31 (approved by J. Doe, CISO): app02 is retired from DR in Q3 (ticket DR-88)[]]",
    ])
    result.stdout.fnmatch_lines([
        "expired waiver RISK-8 (expired 2020-01-31) no longer waives 1 failure(s)",
        "stale waiver: site.yaml:*: waivers[[]2[]]: waiver RISK-9 (host=app2) matches no check "
        "of the inventory (did you mean host 'app02'?); stale waivers hide drift: remove it or "
        "fix its selector",
    ])
    drill = json.loads((pytester.path / "ev" / "drill.json").read_text())
    assert drill["counts"]["waived"] == 1 and drill["counts"]["failed"] == 1
    states = {w["id"]: (w["status"], w["stale"], w["applied"], w["expired_hits"])
              for w in drill["waivers"]}
    assert states == {"RISK-7": ("live", False, 1, 0), "RISK-8": ("expired", False, 0, 1),
                      "RISK-9": ("live", True, 0, 0), "RISK-10": ("live", False, 0, 0)}
    # Both JUnit files say "waived" with the justification, never "passed".
    SCHEMA.validate(pytester.path / "ev" / "junit.xml")
    key = f"reach[127.0.0.1:{closed_port}]"
    for path in (pytester.path / "drill.xml", pytester.path / "ev" / "junit.xml"):
        case = next(c for c in ET.parse(path).getroot().iter("testcase")
                    if c.get("name") == key and c.get("classname", "").endswith("app02"))
        skipped = case.find("skipped")
        assert skipped is not None and "ticket DR-88" in (skipped.get("message") or "")
    case = next(c for c in ET.parse(pytester.path / "drill.xml").getroot().iter("testcase")
                if c.get("name") == key and c.get("classname", "").endswith("app02"))
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["dr.outcome"] == "waived" and props["dr.check_outcome"] == "failed"
    assert props["dr.waiver"] == "RISK-7" and props["dr.waiver_expires"] == "2099-12-31"
    assert props["dr.waiver_approved_by"] == "J. Doe, CISO"
    report = (pytester.path / "ev" / "report.html").read_text()
    assert 'data-waiver="RISK-9"' in report and ">stale</span>" in report
    assert ">expired</span>" in report and "app02 is retired from DR in Q3" in report


# --- --dr-wait, time to green, launch time and RTO --------------------------------------------


class OpenLater:
    """Starts accepting on ``port`` ``delay`` seconds after ``when()`` holds (an agent that is
    still starting when the drill begins); ``opened_at`` is when it did."""

    def __init__(self, port: int, delay: float, when: Any) -> None:
        self.port, self.delay, self.when = port, delay, when
        self.opened_at: datetime | None = None
        self.server: Listener | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._open, daemon=True)
        self._thread.start()

    def _open(self) -> None:
        while not self.when():
            if self._stop.wait(0.02):
                return
        if self._stop.wait(self.delay):
            return
        server = Listener.__new__(Listener)
        server.sock = socket.create_server(("127.0.0.1", self.port))
        server.port, server.accepted, server.banner, server.held = self.port, 0, b"", []
        self.opened_at = datetime.now(timezone.utc)
        threading.Thread(target=server._accept, daemon=True).start()
        self.server = server

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        if self.server is not None:
            self.server.close()


def test_wait_turns_a_late_check_green_and_records_time_to_green(
        pytester: pytest.Pytester, closed_port: int) -> None:
    (pytester.path / "site.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        drill: {{name: wait-drill, rto: 1h}}
        defaults: {{timeout: 5s, connection: {{type: local}}}}
        hosts:
          app01:
            checks:
              reach: [{{target: "127.0.0.1:{closed_port}"}}]
        """))
    launched = datetime.now(timezone.utc) - timedelta(seconds=30)
    drill_file = pytester.path / "ev" / "drill.json"

    def checking() -> bool:
        """drill.json lists the planned checks once collection is over: checking starts."""
        try:
            return "checks" in json.loads(drill_file.read_text())["selection"]
        except (OSError, ValueError, KeyError):
            return False

    # Opens after the first attempt was refused (whatever the machine's load, that attempt
    # follows the end of collection within far less than the first back-off step).
    late = OpenLater(closed_port, 1.5, checking)
    try:
        result = pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev",
                                    "--dr-wait=60s", f"--dr-launched-at={launched.isoformat()}",
                                    "--junitxml=drill.xml")
    finally:
        late.close()
    result.assert_outcomes(passed=1)
    (record,) = lines_of(pytester.path / "ev" / "results.jsonl")
    assert record["outcome"] == "passed" and record["attempts"] >= 2
    # Every refused attempt before the green one, in the record and as Surefire's
    # flakyFailure in the bundle's JUnit; the case itself passed for every reader.
    refused = record["earlier_failures"]
    assert len(refused) == record["attempts"] - 1
    assert all(a["outcome"] == "failed" and "refused" in a["observed"] for a in refused)
    junit = pytester.path / "ev" / "junit.xml"
    SCHEMA.validate(junit)
    (case,) = ET.parse(junit).getroot().iter("testcase")
    flaky = case.findall("flakyFailure")
    assert [f.get("message") for f in flaky] == [a["message"] for a in refused]
    assert flaky[0].findtext("stackTrace", "").startswith(
        f"attempt 1 of {record['attempts']} at {refused[0]['at']}: observed ")
    assert case.find("failure") is None and case.find("error") is None
    _, xresult = xunitparser.parse(str(junit))
    assert xresult.wasSuccessful()
    assert junit_counts(pytester.path / "drill.xml") == (1, 0, 0, 0)
    assert late.opened_at is not None
    green = datetime.fromisoformat(record["green_at"])
    # Green no earlier than the listener opened, and at most one back-off step after it (the
    # step in progress when it opened) plus the attempt itself.
    steps = list(itertools.islice(Backoff().delays(), record["attempts"]))
    assert late.opened_at <= green <= late.opened_at + timedelta(seconds=steps[-1] + 5)
    assert record["time_to_green_s"] == pytest.approx((green - launched).total_seconds(),
                                                      abs=0.002)
    drill = json.loads((pytester.path / "ev" / "drill.json").read_text())
    assert drill["launched_at_source"] == "--dr-launched-at"
    assert drill["rto"]["measured_s"] == record["time_to_green_s"]
    assert drill["rto"]["met"] is True and drill["verdict"] == "passed"
    assert drill["wait_s"] == 60.0
    rto = format_duration(drill["rto"]["measured_s"])
    assert (f"measured RTO {rto} from --dr-launched-at to last green (target 60 min) met"
            in result.stdout.lines)


def test_wait_gives_up_at_its_deadline(pytester: pytest.Pytester, closed_port: int) -> None:
    (pytester.path / "site.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        drill: {{name: wait-drill}}
        defaults: {{timeout: 5s, connection: {{type: local}}}}
        hosts:
          app01:
            checks:
              reach: [{{target: "127.0.0.1:{closed_port}"}}]
        """))
    # The same run without waiting, measured now: what the machine's load adds to any run.
    started = time.monotonic()
    pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=once").assert_outcomes(
        failed=1)
    baseline = time.monotonic() - started
    started = time.monotonic()
    result = pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev", "--dr-wait=2s")
    elapsed = time.monotonic() - started
    result.assert_outcomes(failed=1)
    (record,) = lines_of(pytester.path / "ev" / "results.jsonl")
    assert record["attempts"] >= 3 and record["time_to_green_s"] is None
    # Waits out the 2 s, then stops: at most the run itself (twice, for the load's swings)
    # and one back-off step (at most 2 s within a 2 s wait) more.
    assert 2.0 <= elapsed < 2.0 + 2 * baseline + 2.0


def test_rto_target_missed_fails_the_verdict(pytester: pytest.Pytester, listener: Listener
                                             ) -> None:
    (pytester.path / "site.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        drill: {{name: slow-drill, rto: 15m}}
        defaults: {{connection: {{type: local}}}}
        hosts:
          app01: {{checks: {{reach: [{{target: "127.0.0.1:{listener.port}"}}]}}}}
        """))
    launched = (datetime.now(timezone.utc) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev",
                                f"--dr-launched-at={launched}")
    result.assert_outcomes(passed=1)
    drill = json.loads((pytester.path / "ev" / "drill.json").read_text())
    assert 7199 <= drill["rto"]["measured_s"] <= 7230
    assert drill["rto"]["met"] is False and drill["verdict"] == "failed"
    assert drill["verdict_reasons"] == ["measured RTO exceeds the target"]
    result.stdout.fnmatch_lines(["measured RTO 2 h from --dr-launched-at to last green "
                                 "(target 15 min) MISSED"])
    report = (pytester.path / "ev" / "report.html").read_text()
    assert "target missed" in report


def test_a_plugin_can_supply_the_launch_time(pytester: pytest.Pytester, listener: Listener
                                             ) -> None:
    pytester.makeconftest("""
        from datetime import datetime, timezone

        def pytest_dr_launched_at(config):
            return datetime(2024, 5, 1, 9, 30, tzinfo=timezone.utc)
        """)
    (pytester.path / "site.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        drill: {{name: hooked}}
        defaults: {{connection: {{type: local}}}}
        hosts:
          app01: {{checks: {{reach: [{{target: "127.0.0.1:{listener.port}"}}]}}}}
        """))
    pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev").assert_outcomes(passed=1)
    drill = json.loads((pytester.path / "ev" / "drill.json").read_text())
    assert drill["launched_at"] == "2024-05-01T09:30:00.000+00:00"
    assert "pytest_dr_launched_at" in drill["launched_at_source"]


# --- mistakes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "expected"), [
    (["--dr-shard=5/4"], "--dr-shard=5/4: K must be between 1 and 4"),
    (["--dr-shard=half"], "--dr-shard=half: write K/N, e.g. --dr-shard=2/4"),
    (["--dr-wait=soon"], "--dr-wait=soon: 'soon' is not a duration; write e.g. 30s, 15m or 4h"),
    (["--dr-launched-at=2024-05-01 09:30"],
     "--dr-launched-at=2024-05-01 09:30: no timezone; add one, e.g. 2024-05-01 09:30Z for UTC"),
    (["--dr-launched-at=last tuesday"],
     "--dr-launched-at=last tuesday: not an ISO-8601 time; write e.g. 2024-05-01T09:30:00Z"),
    (["--dr-launched-at=2999-01-01T00:00:00Z"], "--dr-launched-at=2999-01-01T00:00:00Z: in the "
                                                "future (now is "),
    (["--dr-evidence=site.yaml"], "site.yaml exists and is not a directory; choose another path"),
])
def test_option_mistakes_are_one_line(pytester: pytest.Pytester, listener: Listener,
                                      closed_port: int, args: list[str], expected: str) -> None:
    write_inventory(pytester, listener.port, closed_port)
    result = pytester.runpytest("--dr-inventory=site.yaml", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and expected in errors[0], errors
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_evidence_options_need_an_inventory(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--dr-evidence=ev")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--dr-evidence needs an inventory: add --dr-inventory=FILE" in result.stderr.str()
    assert not (pytester.path / "ev").exists()


def test_collect_only_writes_no_evidence(pytester: pytest.Pytester, listener: Listener,
                                         closed_port: int) -> None:
    write_inventory(pytester, listener.port, closed_port)
    result = pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev", "--collect-only")
    assert result.ret == pytest.ExitCode.OK
    assert not (pytester.path / "ev").exists() and listener.accepted == 0


def test_evidence_is_never_overwritten(pytester: pytest.Pytester, listener: Listener,
                                       closed_port: int) -> None:
    write_inventory(pytester, listener.port, closed_port)
    pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev")
    before = (pytester.path / "ev" / "results.jsonl").read_bytes()
    again = pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev")
    assert again.ret == pytest.ExitCode.USAGE_ERROR
    assert ("already holds evidence (drill.json); evidence is never overwritten: choose a new "
            "directory or remove this one") in again.stderr.str()
    assert (pytester.path / "ev" / "results.jsonl").read_bytes() == before


# --- shards -------------------------------------------------------------------------------------


def test_shards_merge_into_the_result_set_of_one_unsharded_run(
        pytester: pytest.Pytester, listener: Listener, closed_port: int,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = write_inventory(pytester, listener.port, closed_port)
    with path.open("a") as inventory:
        for n in range(7):
            inventory.write(host_block(f"web{n:02d}", f"127.0.0.1:{listener.port}",
                                       f"127.0.0.1:{closed_port}"))
    whole = pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=whole")
    whole.assert_outcomes(passed=11, failed=8)
    shard_hosts: list[set[str]] = []
    for k in (1, 2, 3):
        run = pytester.runpytest("--dr-inventory=site.yaml", f"--dr-evidence=shard{k}",
                                 f"--dr-shard={k}/3")
        assert run.ret == pytest.ExitCode.TESTS_FAILED
        drill = json.loads((pytester.path / f"shard{k}" / "drill.json").read_text())
        assert drill["shard"] == {"index": k, "count": 3}
        shard_hosts.append(set(drill["selection"]["hosts"]))
    assert set.union(*shard_hosts) == {"app01", "app02", *(f"web{n:02d}" for n in range(7))}
    assert sum(len(s) for s in shard_hosts) == 9  # disjoint
    capsys.readouterr()
    assert drcheck(["merge", "-o", str(pytester.path / "merged"),
                    *(str(pytester.path / f"shard{k}") for k in (1, 2, 3))]) == 0
    merged_dir, whole_dir = pytester.path / "merged", pytester.path / "whole"

    def outcome_set(directory: Path) -> set[tuple[str, str, str]]:
        return {(r["key"], r["outcome"], r["observed"].split(" in ")[0])
                for r in lines_of(directory / "results.jsonl")}

    assert outcome_set(merged_dir) == outcome_set(whole_dir)
    assert junit_counts(merged_dir / "junit.xml") == junit_counts(whole_dir / "junit.xml")
    SCHEMA.validate(merged_dir / "junit.xml")
    merged = json.loads((merged_dir / "drill.json").read_text())
    assert merged["counts"] == json.loads((whole_dir / "drill.json").read_text())["counts"]
    assert [m["shard"]["index"] for m in merged["merged_from"]] == [1, 2, 3]
    assert merged["verdict"] == "failed" and merged["shard"] is None
    assert drcheck(["verify", str(merged_dir)]) == 0
    assert files_of(merged_dir) >= {"report.html", "MANIFEST.sha256",
                                    *(f"observations/web{n:02d}.jsonl" for n in range(7))}

    capsys.readouterr()
    assert drcheck(["merge", "-o", str(pytester.path / "partial"),
                    str(pytester.path / "shard1"), str(pytester.path / "shard3")]) == 0
    out = capsys.readouterr().out
    assert "missing shard(s) 2/3" in out and "INCOMPLETE" in out
    assert drcheck(["merge", "-o", str(pytester.path / "twice"),
                    str(pytester.path / "shard1"), str(pytester.path / "shard1")]) == 1
    err = capsys.readouterr().err
    assert "shards must not overlap (same --dr-shard twice?)" in err and len(
        err.strip().splitlines()) == 1


# --- a run killed with SIGKILL ------------------------------------------------------------------


def test_sigkill_mid_drill_leaves_readable_results(pytester: pytest.Pytester,
                                                   listener: Listener, closed_port: int,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (pytester.path / "site.yaml").write_text(textwrap.dedent("""\
        version: 1
        drill: {name: killed-drill}
        defaults: {timeout: 5s, connection: {type: local}}
        hosts:
        """) + host_block("slow01", f"127.0.0.1:{closed_port}") + "".join(
        host_block(f"fast{n}", f"127.0.0.1:{listener.port}") for n in range(6)))
    evidence = pytester.path / "ev"
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--dr-inventory=site.yaml", f"--dr-evidence={evidence}",
         "--dr-wait=120s", "-p", "no:cacheprovider", "-q"],
        cwd=pytester.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        results = evidence / "results.jsonl"
        # slow01 retries for 120 s: once the six fast results are in, the run is mid-drill.
        wait_for(lambda: results.exists() and results.read_text().count("\n") >= 6, process,
                 "six results")
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    records = lines_of(evidence / "results.jsonl")  # every line is whole JSON
    assert sorted(r["key"] for r in records) == [
        f"fast{n}::reach[127.0.0.1:{listener.port}]" for n in range(6)]
    assert all(r["outcome"] == "passed" for r in records)
    assert len(lines_of(evidence / "observations" / "fast0.jsonl")) == 1
    drill = json.loads((evidence / "drill.json").read_text())
    assert drill["status"] == "running" and drill["selection"]["planned_checks"] == 7
    capsys.readouterr()
    assert drcheck(["verify", str(evidence)]) == 1
    assert "no MANIFEST.sha256; not a finished evidence bundle" in capsys.readouterr().err
    # drcheck report seals what there is, marked as interrupted and incomplete.
    assert drcheck(["report", str(evidence)]) == 0
    finished = json.loads((evidence / "drill.json").read_text())
    assert finished["status"] == "interrupted" and finished["verdict"] == "incomplete"
    assert finished["counts"]["not_run"] == 1 and finished["counts"]["passed"] == 6
    assert finished["rto"]["measured_s"] is None and finished["rto"]["never_green"] == 1
    assert "1 planned check(s) have no result" in finished["verdict_reasons"]
    assert drcheck(["verify", str(evidence)]) == 0
    assert "INCOMPLETE" in (evidence / "report.html").read_text()
    junit = evidence / "junit.xml"
    SCHEMA.validate(junit)
    assert junit_counts(junit) == (7, 0, 1, 0)
    slow = interrupted_cases(junit)[f"site.yaml.slow01::reach[127.0.0.1:{closed_port}]"]
    error = slow.find("error")
    assert error is not None and error.get("message") == "not run: the run was interrupted"
    # No finish time was recorded: the wall time runs to the last result the run wrote.
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    last = max(datetime.fromisoformat(r["finished_at"]) for r in records)
    wall = (last - datetime.fromisoformat(drill["started_at"])).total_seconds()
    assert float(suite.get("time") or -1) == pytest.approx(wall, abs=0.002)


def wait_for(condition: Any, process: subprocess.Popen[Any], what: str,
             bound: float = 300.0) -> float:
    """Poll until ``condition()`` holds while the process runs; returns the seconds it took.
    ``bound`` only guards against a hang: nothing here depends on how fast the machine is."""
    started = time.monotonic()
    while not condition():
        assert process.poll() is None, f"the run ended before {what}"
        assert time.monotonic() - started < bound, f"no {what} within {bound} s"
        time.sleep(0.02)
    return time.monotonic() - started


def interrupted_cases(path: Path) -> dict[str, ET.Element]:
    return {f"{c.get('classname')}::{c.get('name')}": c
            for c in ET.parse(path).getroot().iter("testcase")}


def test_ctrl_c_seals_the_bundle_as_interrupted(pytester: pytest.Pytester, listener: Listener,
                                                closed_port: int) -> None:
    """Ctrl-C while slow01 still retries: app01 reported, slow01 and ten more never ran.

    The run is interrupted once app01's result is in results.jsonl (the file itself exists
    from the start: waiting for it alone raced the first result on a busy machine)."""
    (pytester.path / "site.yaml").write_text(textwrap.dedent("""\
        version: 1
        drill: {name: interrupted-drill}
        defaults: {timeout: 5s, connection: {type: local}}
        hosts:
        """) + host_block("app01", f"127.0.0.1:{listener.port}")
        + host_block("slow01", f"127.0.0.1:{closed_port}")
        + host_block("zzz01", *(f"127.0.0.{n}:{closed_port}" for n in range(2, 12))))
    evidence = pytester.path / "ev"
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--dr-inventory=site.yaml", f"--dr-evidence={evidence}",
         "--dr-wait=120s", "--dr-workers=1", "--junitxml=drill.xml", "-p", "no:cacheprovider",
         "-q"], cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        results = evidence / "results.jsonl"
        wait_for(lambda: results.exists() and "app01::" in results.read_text(), process,
                 "result of app01")
        to_first_result = time.monotonic() - started
        process.send_signal(signal.SIGINT)
        # Sealing is far less work than starting up was: the same bound, measured.
        out, _ = process.communicate(timeout=max(30.0, 10 * to_first_result))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "drill 'interrupted-drill': INCOMPLETE (1 passed, 11 not run)" in out
    assert drcheck(["verify", str(evidence)]) == 0
    drill = json.loads((evidence / "drill.json").read_text())
    assert (drill["status"], drill["verdict"]) == ("interrupted", "incomplete")
    assert drill["counts"]["not_run"] == 11 and drill["rto"]["measured_s"] is None
    assert drill["not_run"] == [f"slow01::reach[127.0.0.1:{closed_port}]", *sorted(
        f"zzz01::reach[127.0.0.{n}:{closed_port}]" for n in range(2, 12))]
    # CI reads red from the bundle's JUnit: every check that never ran is an error.
    junit = evidence / "junit.xml"
    SCHEMA.validate(junit)
    assert junit_counts(junit) == (12, 0, 11, 0)
    cases = interrupted_cases(junit)
    slow = cases[f"site.yaml.slow01::reach[127.0.0.1:{closed_port}]"]
    error = slow.find("error")
    assert error is not None and error.get("message") == "not run: the run was interrupted"
    assert cases[f"site.yaml.app01::reach[127.0.0.1:{listener.port}]"].find("error") is None
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    wall = (datetime.fromisoformat(drill["finished_at"])
            - datetime.fromisoformat(drill["started_at"])).total_seconds()
    assert float(suite.get("time") or -1) == pytest.approx(wall, abs=0.002)
    # pytest's own JUnit file: every unreported check is an error too (app01's report may
    # or may not have been made before the interrupt reached pytest).
    tests, failures, errors, _ = junit_counts(pytester.path / "drill.xml")
    assert (tests, failures) == (12, 0) and errors in (11, 12)
    # That file is rewritten for them (the one case pytest's file is not just spliced), and
    # CI shows the drill as incomplete.
    xsuite, _ = xunitparser.parse(str(pytester.path / "drill.xml"))
    assert xsuite.stdout.startswith("drcheck drill 'interrupted-drill': INCOMPLETE (")


# --- pytest-xdist -----------------------------------------------------------------------------


def test_bundle_under_xdist(pytester: pytest.Pytester, listener: Listener,
                            closed_port: int) -> None:
    write_inventory(pytester, listener.port, closed_port)
    result = pytester.runpytest_subprocess("--dr-inventory=site.yaml", "-n", "2",
                                           "--dr-evidence=ev", "--junitxml=drill.xml",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=1)
    evidence = pytester.path / "ev"
    records = lines_of(evidence / "results.jsonl")
    assert len(records) == len({r["key"] for r in records}) == 5
    drill = json.loads((evidence / "drill.json").read_text())
    assert drill["selection"]["planned_checks"] == 5
    assert drill["counts"]["passed"] == 4 and drill["counts"]["not_run"] == 0
    assert junit_counts(evidence / "junit.xml") == junit_counts(pytester.path / "drill.xml")
    assert drcheck(["verify", str(evidence)]) == 0
    # The controller's pytest file gets the drill's facts and properties like a plain run's.
    xsuite, _ = xunitparser.parse(str(pytester.path / "drill.xml"))
    assert xsuite.stdout.startswith("drcheck drill 'local-drill': FAILED (")
    assert xsuite.properties["dr.verdict"] == "failed"
    assert xsuite.properties["dr.inventory_sha256"] == drill["inventory"]["sha256"]


def test_wait_knocks_again_on_an_unreachable_host(pytester: pytest.Pytester,
                                                  closed_port: int) -> None:
    (pytester.path / "site.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        drill: {{name: booting}}
        hosts:
          app01:
            address: 127.0.0.1
            connection: {{port: {closed_port}, connect_timeout: 1s, known_hosts: /dev/null}}
            checks:
              reach: [{{target: "127.0.0.1:{closed_port}", expect: closed}}]
        """))
    result = pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev", "--dr-wait=2s")
    result.assert_outcomes(errors=1)  # nothing was ever observed on app01
    (record,) = lines_of(pytester.path / "ev" / "results.jsonl")
    assert record["outcome"] == "error"
    assert record["attempts"] >= 3  # connection refused, again and again until the deadline
    assert record["message"].startswith("app01 reach 127.0.0.1:") and "cannot reach app01" in (
        record["message"])


def test_shard_applies_to_hand_written_host_tests(pytester: pytest.Pytester, listener: Listener,
                                                  closed_port: int) -> None:
    write_inventory(pytester, listener.port, closed_port)
    pytester.makepyfile(test_mine="""
        def test_host(dr_target):
            assert dr_target.run("true", 60).ok
        """)
    everything = pytester.runpytest("--dr-inventory=site.yaml", "test_mine.py", "site.yaml",
                                    "--collect-only", "-q")
    first = pytester.runpytest("--dr-inventory=site.yaml", "test_mine.py", "site.yaml",
                               "--collect-only", "-q", "--dr-shard=1/2")
    second = pytester.runpytest("--dr-inventory=site.yaml", "test_mine.py", "site.yaml",
                                "--collect-only", "-q", "--dr-shard=2/2")

    def ids(result: pytest.RunResult) -> set[str]:
        return {line for line in result.stdout.lines if "::" in line}

    assert ids(first) | ids(second) == ids(everything) and not ids(first) & ids(second)
    for result in (first, second):
        hosts = {line.split("::")[1] for line in ids(result) if line.startswith("site.yaml")}
        mine = {line.split("[")[1].rstrip("]") for line in ids(result)
                if line.startswith("test_mine.py")}
        assert len(hosts) == 1 and mine == hosts


@pytest.mark.parametrize(("args", "expected"), [
    (["verify", "nowhere"], "drcheck verify: nowhere: not a directory"),
    (["report", "nowhere"], "drcheck report: nowhere: no drill.json; not an evidence bundle"),
    (["merge", "-o", "out", "nowhere"], "drcheck merge: nowhere: not a directory"),
])
def test_cli_mistakes_are_one_line(args: list[str], expected: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert drcheck(args) == 1
    err = capsys.readouterr().err
    assert err.strip() == expected


def test_merge_refuses_bundles_of_different_inventories(
        pytester: pytest.Pytester, listener: Listener, closed_port: int,
        capsys: pytest.CaptureFixture[str]) -> None:
    write_inventory(pytester, listener.port, closed_port)
    pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=a", "--dr-shard=1/2")
    write_inventory(pytester, listener.port, closed_port, rto="2h")
    pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=b", "--dr-shard=2/2")
    capsys.readouterr()
    assert drcheck(["merge", "-o", str(pytester.path / "m"), str(pytester.path / "a"),
                    str(pytester.path / "b")]) == 1
    err = capsys.readouterr().err.strip()
    assert "differs from" in err and "merge the shards of one drill, run against one " \
        "inventory" in err and len(err.splitlines()) == 1
    assert not (pytester.path / "m").exists()
