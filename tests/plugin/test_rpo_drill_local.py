"""A whole drill with the rpo check against this machine (local connections): the launch time
given on the command line is the recovery point, the measured RPO lands in drill.json, the
JUnit suite properties and the report; without a launch time it is an error naming why."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest


def write_inventory(pytester: pytest.Pytester, beacon_age_s: float) -> datetime:
    launched = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=5)
    beacon = pytester.path / "beacon"
    beacon.write_text((launched - timedelta(seconds=beacon_age_s)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ") + "\n")
    pytester.path.joinpath("site.yaml").write_text(f"""
version: 1
drill: {{name: local-rpo, rpo: 2m}}
hosts:
  app01:
    connection: {{type: local}}
    source: src01
    checks:
      rpo: [{{beacon: {beacon}}}]
  src01:
    connection: {{type: local}}
""")
    return launched


def test_measured_rpo_in_drill_json_junit_and_report(pytester: pytest.Pytester) -> None:
    launched = write_inventory(pytester, 100.0)
    result = pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev",
                                "--junitxml=drill.xml", f"--dr-launched-at={launched.isoformat()}")
    result.assert_outcomes(passed=1)
    drill = json.loads((pytester.path / "ev" / "drill.json").read_text())
    rpo = drill["rpo"]
    assert (rpo["worst_host"], rpo["met"], rpo["target_s"]) == ("app01", True, 120.0)
    # One local clock: the source's offset is within the sampler's uncertainty of 0.
    assert rpo["measured_s"] == pytest.approx(100.0, abs=0.05)
    suite = ET.parse(pytester.path / "drill.xml").getroot().find("testsuite")
    assert suite is not None
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["dr.rpo_met"] == "true"
    assert float(properties["dr.rpo_measured_s"] or "nan") == pytest.approx(100.0, abs=0.05)
    report = (pytester.path / "ev" / "report.html").read_text()
    assert "RPO measured 1 min 40 s against a target of 2 min" in report


def test_past_the_target_fails_with_the_figure(pytester: pytest.Pytester) -> None:
    launched = write_inventory(pytester, 300.0)
    result = pytester.runpytest("--dr-inventory=site.yaml",
                                f"--dr-launched-at={launched.isoformat()}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*app01 rpo * RPO measured 5 min against a target of 2 min*"])


def test_without_a_launch_time_there_is_no_recovery_point(pytester: pytest.Pytester) -> None:
    write_inventory(pytester, 100.0)
    result = pytester.runpytest("--dr-inventory=site.yaml")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*could not observe: no recovery point for app01: no DRS point "
                                 "in time and no launch time; pass --dr-launched-at*"])
