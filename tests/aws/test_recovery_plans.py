"""DRS recovery plans as the drill's launcher, end to end against the local DRS endpoint
(StartRecoveryPlanExecution, GetRecoveryPlanExecution and ListRecoveryPlanExecutionSteps
validated against botocore's model; each server step one StartRecovery, EC2 in moto)."""

from __future__ import annotations

import re
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from pytest_drcheck.cli import main as drcheck
from tests.aws.conftest import OLD_JOB, Drill, write_inventory
from tests.aws.fakeaws import FakeAws
from tests.aws.test_drill_aws import outcomes
from tests.aws.test_drill_lifecycle import outputs

PLAN = "arn:aws:drs:eu-west-1:123456789012:recovery-plan/rp-0123456789abcdef0"


def two_step_plan(drill: Drill, fake: FakeAws, pytester: pytest.Pytester) -> tuple[str, str,
                                                                                      str]:
    """app01 and db01 never launched, in a plan that starts db01 first; another server's
    drill (not ours) is up. Returns (app01's, db01's, the other's instance) source ids."""
    app = drill.add("app01", launched=False, last_job=None)
    db = drill.add("db01", launched=False, last_job=None)
    other = drill.add("other", job=OLD_JOB)
    fake.recovery_plans[PLAN] = [("databases", [db.sid]), ("apps", [app.sid])]
    write_inventory(pytester.path / "site.yaml", fake, "".join(
        f"{name}:\n  drs: {{source_server_id: {sid}}}\n"
        "  checks: {drs_launch: [{}], drs_instance_type: [{of: launched}]}\n"
        for name, sid in (("app01", app.sid), ("db01", db.sid))))
    return app.sid, db.sid, str(other.instance_id)


def instances_of(fake: FakeAws, execution: str) -> list[str]:
    jobs = [server["jobID"] for step in fake.plan_executions[execution]["steps"]
            for server in step["configuration"]["executionServerStepConfiguration"]["servers"]]
    return sorted(entry["recoveryInstanceID"] for job in jobs
                  for entry in fake.jobs[job]["participatingServers"])


def test_pytest_launches_through_the_plan_checks_and_terminates(
        pytester: pytest.Pytester, drill: Drill, fake: FakeAws) -> None:
    _, _, other = two_step_plan(drill, fake, pytester)
    result = pytester.runpytest("--dr-inventory=site.yaml", "-v", "--dr-launch-drill",
                                f"--dr-recovery-plan={PLAN}", "--dr-terminate-drill",
                                "--dr-wait=60s", "--junitxml=drill.xml")
    assert outcomes(result) == {
        "site.yaml::app01::drs_instance_type[launched]": "PASSED",
        "site.yaml::app01::drs_launch[launch]": "PASSED",
        "site.yaml::app01::drs_launch[post_launch]": "SKIPPED",
        "site.yaml::db01::drs_instance_type[launched]": "PASSED",
        "site.yaml::db01::drs_launch[launch]": "PASSED",
        "site.yaml::db01::drs_launch[post_launch]": "SKIPPED",
    }
    (execution,) = fake.plan_executions
    assert fake.plan_executions[execution]["mode"] == "DRILL"
    assert fake.plan_executions[execution]["status"] == "COMPLETED"
    text = result.stdout.str()
    header = re.search(rf"drcheck: launched drill through recovery plan {PLAN} \(execution "
                       rf"{re.escape(execution)}, jobs (drsjob-\w+), (drsjob-\w+)\) at ", text)
    assert header is not None, text
    # Measured from the execution's start (DRS's clock): both steps' launches inside it.
    rto = re.search(r"measured RTO ([0-9.]+) (ms|s|min) from --dr-launched-at", text)
    assert rto is not None, text
    seconds = float(rto.group(1)) * {"ms": 0.001, "s": 1.0, "min": 60.0}[rto.group(2)]
    assert seconds >= 2 * fake.launch_delay
    # Exactly the instances the execution's two jobs launched; another drill's stays up.
    ours = instances_of(fake, execution)
    assert len(ours) == 2 and sorted(fake.terminated) == ours
    assert fake.recovery_instances[other]["ec2InstanceState"] == "RUNNING"
    properties = {p.get("name"): p.get("value")
                  for p in ET.parse(pytester.path / "drill.xml").getroot().iter("property")}
    assert properties["dr.aws.drill_job"] == execution
    # Job by job, in the plan's step order.
    assert sorted(properties["dr.aws.terminated_instances"].split(", ")) == ours


def test_cli_launch_refuses_a_second_drill_and_terminates_the_execution(
        pytester: pytest.Pytester, drill: Drill, fake: FakeAws,
        capsys: pytest.CaptureFixture[str]) -> None:
    app, db, other = two_step_plan(drill, fake, pytester)
    site = str(pytester.path / "site.yaml")
    fake.launch_gate = threading.Event()
    fake.calls.clear()
    assert drcheck(["drill", "launch", site, "--plan", PLAN]) == 0
    assert fake.calls == [("drs", "DescribeSourceServers"), ("drs", "DescribeRecoveryInstances"),
                          ("drs", "StartRecoveryPlanExecution")]
    launched = outputs(capsys.readouterr().out)
    execution = launched["execution"]
    assert execution in fake.plan_executions and launched["servers"] == f"{app},{db}"
    steps = fake.plan_executions[execution]["steps"]
    deadline = time.monotonic() + 30
    while steps[0]["status"] != "EXECUTING" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert drcheck(["drill", "launch", site, "--plan", PLAN]) == 1
    assert f"a drill of these source servers is being launched: {db} (job drsjob-" in (
        capsys.readouterr().err)
    fake.launch_gate.set()
    assert drcheck(["drill", "status", site, "--execution", execution, "--wait", "60s"]) == 0
    status = capsys.readouterr().out.splitlines()
    assert status[0].startswith(f"execution {execution}: completed, started ")
    assert re.match(r"^jobs: drsjob-\w{17}, drsjob-\w{17}$", status[1])
    assert drcheck(["drill", "terminate", site, "--execution", execution]) == 0
    terminated = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in terminated] == [
        f"terminating 1 drill instance(s) of job {job}" for job in status[1][6:].split(", ")]
    assert sorted(fake.terminated) == instances_of(fake, execution)
    assert fake.recovery_instances[other]["ec2InstanceState"] == "RUNNING"
    assert drcheck(["drill", "terminate", site, "--execution", "arn:aws:drs:x"]) == 2
    assert "is not a DRS recovery plan execution ARN" in capsys.readouterr().err


def test_a_failed_step_says_which_and_why(pytester: pytest.Pytester, drill: Drill,
                                          fake: FakeAws,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    _, db, _ = two_step_plan(drill, fake, pytester)
    fake.launch_fail[db] = "InsufficientInstanceCapacity for m5.large"
    site = str(pytester.path / "site.yaml")
    assert drcheck(["drill", "launch", site, "--plan", PLAN, "--wait", "60s"]) == 1
    out, err = capsys.readouterr()
    assert [line.split("=")[0] for line in out.splitlines()] == ["execution", "launched_at",
                                                                 "servers"]
    lines = err.splitlines()
    assert lines[0].startswith(f"execution {outputs(out)['execution']}: failed, started ")
    assert lines[0].endswith(": STEP_FAILED: step databases failed")
    assert re.match(r"^step 'databases' failed: LAUNCH_FAILED: job drsjob-\w{17} failed$",
                    lines[2])
    # The plan stopped at its first step: app01 was never launched.
    (execution,) = fake.plan_executions.values()
    assert [step["status"] for step in execution["steps"]] == ["FAILED", "NOT_STARTED"]
