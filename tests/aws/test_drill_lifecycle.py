"""The drill lifecycle end to end against the local DRS endpoint (StartRecovery and
TerminateRecoveryInstances validated against botocore's model, EC2 in moto): launch, refuse a
second drill, wait, verify under pytest with the job and its creation time (measured RTO from
DRS's clock), terminate exactly the job's drill instances."""

from __future__ import annotations

import re
import threading
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest

from pytest_drcheck.cli import main as drcheck
from tests.aws.conftest import OLD_JOB, Drill, write_inventory
from tests.aws.fakeaws import FakeAws
from tests.aws.test_drill_aws import outcomes


def inventory(path: Path, fake: FakeAws, hosts: dict[str, str]) -> Path:
    return write_inventory(path, fake, "".join(
        f"{name}:\n  drs: {{source_server_id: {sid}}}\n"
        "  checks: {drs_launch: [{}], drs_instance_type: [{of: launched}]}\n"
        for name, sid in hosts.items()))


def outputs(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_launch_wait_verify_terminate(pytester: pytest.Pytester, drill: Drill, fake: FakeAws,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    app = drill.add("app01", launched=False, last_job=None)
    db = drill.add("db01", launched=False, last_job=None)
    # Not ours: another server's drill, and a real recovery of app01. Never terminated.
    other = drill.add("other", job=OLD_JOB)
    real = drill.add("app01-real", drill=False, job="drsjob-0000000000000000c")
    fake.recovery_instances[str(real.instance_id)]["sourceServerID"] = app.sid
    site = inventory(pytester.path / "site.yaml", fake, {"app01": app.sid, "db01": db.sid})

    fake.launch_gate = threading.Event()  # the launch ends when the test says so
    fake.calls.clear()
    started = time.monotonic()
    assert drcheck(["drill", "launch", str(site)]) == 0
    launch_s = time.monotonic() - started
    # Per launch, whatever the number of hosts (up to 200 per request): in-progress check,
    # drills up, StartRecovery.
    assert fake.calls == [("drs", "DescribeSourceServers"), ("drs", "DescribeRecoveryInstances"),
                          ("drs", "StartRecovery")]
    launched = outputs(capsys.readouterr().out)
    job = launched["job"]
    assert re.match(r"^drsjob-[0-9a-f]{17}$", job)
    assert launched["servers"] == f"{app.sid},{db.sid}"
    created = datetime.fromisoformat(launched["launched_at"])
    assert fake.jobs[job]["initiatedBy"] == "START_DRILL"

    # A second drill of the same servers is refused, while launching and once up.
    assert drcheck(["drill", "launch", str(site)]) == 1
    assert "a drill of these source servers is being launched" in capsys.readouterr().err
    fake.launch_gate.set()
    fake.wait_for_launches()
    assert drcheck(["drill", "launch", str(site)]) == 1
    refused = capsys.readouterr().err
    assert refused.startswith("drcheck drill launch: a drill of these source servers is "
                              "already up: ")
    assert f"job {job}" in refused and refused.rstrip().endswith("--allow-running")
    # No StartRecovery was sent for the refused launches.
    assert fake.calls.count(("drs", "StartRecovery")) == 1

    assert drcheck(["drill", "status", str(site), "--job", job, "--wait", "30s"]) == 0
    status = capsys.readouterr().out.splitlines()
    assert status[0].startswith(f"job {job}: completed, created ")
    assert re.match(rf"^{app.sid} \(app01\): launched i-[0-9a-f]+$", status[1])
    assert re.match(rf"^{db.sid} \(db01\): launched i-[0-9a-f]+$", status[2])

    result = pytester.runpytest("--dr-inventory=site.yaml", "-v", f"--dr-drs-job={job}",
                                f"--dr-launched-at={launched['launched_at']}", "--dr-wait=30s")
    assert outcomes(result) == {
        "site.yaml::app01::drs_instance_type[launched]": "PASSED",
        "site.yaml::app01::drs_launch[launch]": "PASSED",
        "site.yaml::app01::drs_launch[post_launch]": "SKIPPED",
        "site.yaml::db01::drs_instance_type[launched]": "PASSED",
        "site.yaml::db01::drs_launch[launch]": "PASSED",
        "site.yaml::db01::drs_launch[post_launch]": "SKIPPED",
    }
    # Measured from the job's creation (DRS's clock), not from when checking started.
    rto = re.search(r"measured RTO ([0-9.]+) (ms|s|min) from --dr-launched-at to last green",
                    result.stdout.str())
    assert rto is not None, result.stdout.str()
    seconds = float(rto.group(1)) * {"ms": 0.001, "s": 1.0, "min": 60.0}[rto.group(2)]
    assert seconds >= fake.launch_delay
    assert created <= datetime.now(created.tzinfo)

    ours = sorted(fake.jobs[job]["participatingServers"][i]["recoveryInstanceID"]
                  for i in range(2))
    capsys.readouterr()  # the pytester run's output
    fake.calls.clear()
    started = time.monotonic()
    assert drcheck(["drill", "terminate", str(site), "--job", job]) == 0
    terminate_s = time.monotonic() - started
    assert fake.calls == [("drs", "DescribeJobs"), ("drs", "DescribeRecoveryInstances"),
                          ("drs", "TerminateRecoveryInstances")]
    assert capsys.readouterr().out.startswith(
        f"terminating 2 drill instance(s) of job {job}: {', '.join(ours)} (DRS job drsjob-")
    assert sorted(fake.terminated) == ours
    assert fake.recovery_instances[str(other.instance_id)]["ec2InstanceState"] == "RUNNING"
    assert fake.recovery_instances[str(real.instance_id)]["ec2InstanceState"] == "RUNNING"
    # Again: nothing left, nothing else touched.
    assert drcheck(["drill", "terminate", str(site), "--job", job]) == 0
    again = capsys.readouterr().out
    assert again.startswith(f"job {job}: no drill instance left to terminate")
    assert sorted(fake.terminated) == ours
    # The overhead against the local endpoint (printed for the closing note).
    print(f"launch {launch_s:.2f} s, terminate {terminate_s:.2f} s")


def test_failed_launch_says_why(drill: Drill, fake: FakeAws, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    app = drill.add("app01", launched=False, last_job=None)
    fake.launch_fail[app.sid] = "InsufficientInstanceCapacity for m5.large"
    site = inventory(tmp_path / "site.yaml", fake, {"app01": app.sid})
    assert drcheck(["drill", "launch", str(site), "--wait", "30s"]) == 1
    out, err = capsys.readouterr()
    # stdout stays key=value only (a CI output file); the status is on stderr.
    assert [line.split("=")[0] for line in out.splitlines()] == ["job", "launched_at",
                                                                 "servers"]
    assert (f"{app.sid} (app01): failed: LAUNCH_FAILED: InsufficientInstanceCapacity for "
            "m5.large") in err


def test_terminate_refuses_a_recovery_job(drill: Drill, fake: FakeAws, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    real = drill.add("app01", drill=False, job="drsjob-0000000000000000c")
    site = inventory(tmp_path / "site.yaml", fake, {"app01": real.sid})
    assert drcheck(["drill", "terminate", str(site), "--job", "drsjob-0000000000000000c"]) == 1
    assert capsys.readouterr().err == (
        "drcheck drill terminate: job drsjob-0000000000000000c was initiated by START_RECOVERY, "
        "not by a drill: refusing to terminate its instances\n")
    assert fake.terminated == []


def test_named_snapshot_must_exist(drill: Drill, fake: FakeAws, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    app = drill.add("app01", launched=False, last_job=None)
    fake.snapshots[app.sid] = [{"snapshotID": "pit-0123456789abcdef0", "sourceServerID": app.sid,
                                "expectedTimestamp": "2024-05-01T09:00:00Z"}]
    site = inventory(tmp_path / "site.yaml", fake, {"app01": app.sid})
    assert drcheck(["drill", "launch", str(site), "--snapshot",
                    f"{app.sid}=pit-00000000000000000"]) == 1
    assert "recovery snapshot pit-00000000000000000 is not a snapshot of source server" in (
        capsys.readouterr().err)
    assert drcheck(["drill", "launch", str(site), "--snapshot",
                    f"{app.sid}=pit-0123456789abcdef0"]) == 0
    assert outputs(capsys.readouterr().out)["job"].startswith("drsjob-")
    fake.wait_for_launches()


def test_pytest_launches_checks_and_terminates_the_drill(pytester: pytest.Pytester,
                                                         drill: Drill, fake: FakeAws) -> None:
    app = drill.add("app01", launched=False, last_job=None)
    other = drill.add("other", job=OLD_JOB)  # another drill, up: never terminated
    inventory(pytester.path / "site.yaml", fake, {"app01": app.sid})
    result = pytester.runpytest("--dr-inventory=site.yaml", "-v", "--dr-launch-drill",
                                "--dr-terminate-drill", "--dr-wait=30s", "--junitxml=drill.xml")
    assert outcomes(result) == {
        "site.yaml::app01::drs_instance_type[launched]": "PASSED",
        "site.yaml::app01::drs_launch[launch]": "PASSED",
        "site.yaml::app01::drs_launch[post_launch]": "SKIPPED",
    }
    (job,) = [j for j, v in fake.jobs.items() if v.get("tags", {}).get("drcheck") == "drill"]
    (ours,) = [i for i, r in fake.recovery_instances.items() if r["jobID"] == job]
    text = result.stdout.str()
    assert f"drcheck: launched drill job {job} (1 source servers) at " in text
    assert f"drcheck: AWS eu-west-1, drill job {job}" in text
    assert "measured RTO" in text and "from --dr-launched-at to last green" in text
    result.stdout.fnmatch_lines(["*= drcheck: drill terminated =*",
                                 f"job {job}: terminated {ours}"])
    assert fake.terminated == [ours]
    assert fake.recovery_instances[str(other.instance_id)]["ec2InstanceState"] == "RUNNING"
    # Terminated before the leftover listing: only the other drill is left over.
    assert f"{other.instance_id} (other, job {OLD_JOB}, running)" in text
    assert f"{ours} (app01" not in text
    suite = ET.parse(pytester.path / "drill.xml").getroot().find("testsuite")
    assert suite is not None
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert (properties["dr.aws.drill_job"], properties["dr.aws.terminated_instances"]) == (
        job, ours)
    assert properties["dr.aws.drs_job"] == job
    # With a drill of app01 up again, --dr-launch-drill refuses to start a second one.
    again = drill.instance("app01-again")["InstanceId"]
    fake.recovery_instances[again] = {**fake.recovery_instances[ours], "recoveryInstanceID": again,
                                      "ec2InstanceID": again, "ec2InstanceState": "RUNNING"}
    refused = pytester.runpytest("--dr-inventory=site.yaml", "--dr-launch-drill")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert "--dr-launch-drill: a drill of these source servers is already up: " in (
        refused.stderr.str())


def test_wait_covers_a_launch_still_under_way(pytester: pytest.Pytester, drill: Drill,
                                              fake: FakeAws,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # Before: discovery ran once; a launch still pending at session start was "no recovery
    # instance found ... (last drill: ..., status PENDING)" for the whole --dr-wait.
    app = drill.add("app01", launched=False, last_job=None)
    site = inventory(pytester.path / "site.yaml", fake, {"app01": app.sid})
    # The launch ends only once the run has looked twice and looks again (an operation asked
    # a third time): a fixed delay was over before a loaded machine's first look. Two checks
    # look side by side, so the first two looks may be one from each.
    fake.launch_gate = threading.Event()
    assert drcheck(["drill", "launch", str(site)]) == 0
    launched = outputs(capsys.readouterr().out)
    asked: dict[str, int] = {}

    def end_launch_on_third_look(operation: str, body: object) -> None:
        asked[operation] = asked.get(operation, 0) + 1
        if asked[operation] >= 3:
            assert fake.launch_gate is not None
            fake.launch_gate.set()

    fake.on_drs_call = end_launch_on_third_look
    result = pytester.runpytest("--dr-inventory=site.yaml", "-v",
                                f"--dr-drs-job={launched['job']}",
                                f"--dr-launched-at={launched['launched_at']}", "--dr-wait=60s",
                                "--junitxml=drill.xml")
    assert outcomes(result) == {
        "site.yaml::app01::drs_instance_type[launched]": "PASSED",
        "site.yaml::app01::drs_launch[launch]": "PASSED",
        "site.yaml::app01::drs_launch[post_launch]": "SKIPPED",
    }
    attempts = {c.get("name"): int(p.get("value") or 0)
                for c in ET.parse(pytester.path / "drill.xml").getroot().iter("testcase")
                for p in c.iter("property") if p.get("name") == "dr.attempts"}
    # Pending at first, launched later: whichever check looked first looked again.
    assert max(attempts["drs_launch[launch]"], attempts["drs_instance_type[launched]"]) >= 2
    fake.wait_for_launches()
