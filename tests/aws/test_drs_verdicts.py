"""Verdicts on real DRS data (issue 16, "Found" 1-8), through whole drills against the local
DRS endpoint (requests and responses validated against botocore's model) and moto. Each test
failed before its fix; the comment on each says what it used to report."""

from __future__ import annotations

import re
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import JOB, OLD_JOB, Drill, action_run, write_inventory
from tests.aws.fakeaws import FakeAws
from tests.aws.test_drill_aws import outcomes, run

EL7_BANNER = ("Linux version 3.10.0-1160.90.1.el7.x86_64 (mockbuild@kbuilder.bsys.centos.org) "
              "(gcc version 4.8.5 20150623 (Red Hat 4.8.5-44) (GCC) ) #1 SMP Fri Mar 17 "
              "09:52:28 UTC 2023")
EL6_BANNER = ("Linux version 2.6.32-754.35.1.el6.x86_64 (mockbuild@x86-01.bsys.centos.org) "
              "(gcc version 4.4.7 20120313 (Red Hat 4.4.7-23) (GCC) ) #1 SMP Sat Nov 7 "
              "12:42:14 UTC 2020")


def case_properties(xml: Path) -> dict[str, dict[str, str]]:
    """'host::check[subject]' -> the JUnit case's properties (dr.observed, dr.attempts...)."""
    cases = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        properties = {str(p.get("name")): str(p.get("value")) for p in case.iter("property")}
        cases[f"{properties['dr.host']}::{case.get('name')}"] = properties
    return cases


def second_drill(fake: FakeAws, drill: Drill, host_sid: str, instance_id: str,
                 name: str) -> str:
    """Another drill instance of the same source server, in OLD_JOB."""
    older = drill.instance(name)
    fake.recovery_instances[older["InstanceId"]] = {
        **fake.recovery_instances[instance_id],
        "recoveryInstanceID": older["InstanceId"], "ec2InstanceID": older["InstanceId"],
        "jobID": OLD_JOB}
    fake.jobs[OLD_JOB] = {"jobID": OLD_JOB, "type": "LAUNCH", "initiatedBy": "START_DRILL",
                          "status": "COMPLETED", "participatingServers": [
                              {"sourceServerID": host_sid, "launchStatus": "LAUNCHED",
                               "recoveryInstanceID": older["InstanceId"]}]}
    return str(older["InstanceId"])


# --- 1. OS from the kernel release, and DRS's supportsNitroInstances ----------------------


def test_centos7_kernel_banner_boots_on_nitro(pytester: pytest.Pytester, drill: Drill,
                                              fake: FakeAws) -> None:
    # Before: "centos" in the builder's host name and gcc's major (4) read as "CentOS 4":
    # both subjects failed with 'RHEL/CentOS 6 and earlier do not boot on Nitro'.
    el7 = drill.add("app01", instance_type="m5.large", os=EL7_BANNER, supports_nitro=True)
    el6 = drill.add("app02", instance_type="c5.large", os=EL6_BANNER, supports_nitro=True)
    fake.launch_configurations[el7.sid]["targetInstanceTypeRightSizingMethod"] = "BASIC"
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {el7.sid}}}
          checks: {{drs_instance_type: [{{}}]}}
        app02:
          drs: {{source_server_id: {el6.sid}}}
          checks: {{drs_instance_type: [{{of: launched}}]}}
        """)
    result = run(pytester, "--junitxml=drill.xml")
    assert outcomes(result) == {
        "site.yaml::app01::drs_instance_type[configured]": "PASSED",
        "site.yaml::app01::drs_instance_type[launched]": "PASSED",
        "site.yaml::app02::drs_instance_type[launched]": "FAILED",
    }
    text = result.stdout.str()
    cases = case_properties(pytester.path / "drill.xml")
    assert cases["app01::drs_instance_type[launched]"]["dr.observed"] == (
        "m5.large (nitro) for kernel 3.10.0-1160.90.1.el7.x86_64 (decided by DRS "
        "supportsNitroInstances)")
    # The kernel release decides against an el6 source, and the line says so.
    assert (f"app02 drs_instance_type launched: launched {el6.instance_id}: c5.large is a Nitro "
            "type and kernel 2.6.32-754.35.1.el6.x86_64 (el6) falls under 'RHEL/CentOS 6 and "
            "earlier do not boot on Nitro'; use a Xen type (e.g. m4, c4, r4, t2)") in text


# --- 2. Two drills up: drs_launch reports the ambiguity; discover compares datetimes -------


def test_launch_reports_two_drills_like_the_other_checks(pytester: pytest.Pytester,
                                                         drill: Drill, fake: FakeAws) -> None:
    # Before: drs_launch[launch] PASSED with the server's last launch while the host's other
    # checks said "2 drill instances ...".
    host = drill.add("app01")
    second_drill(fake, drill, host.sid, str(host.instance_id), "app01-old")
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {host.sid}}}
          checks: {{drs_launch: [{{}}], drs_instance_type: [{{of: launched}}]}}
        """)
    result = run(pytester)
    # Which drill is meant is unknown: nothing observed, errors; post_launch depends on launch.
    assert outcomes(result) == {
        "site.yaml::app01::drs_instance_type[launched]": "ERROR",
        "site.yaml::app01::drs_launch[launch]": "ERROR",
        "site.yaml::app01::drs_launch[post_launch]": "SKIPPED",
    }
    lines = [line for line in result.stdout.lines if line.startswith("app01 drs_")]
    assert len(lines) == 2
    for line in lines:
        assert f": could not observe: 2 drill instances for source server {host.sid}: " in line
        assert line.endswith("pass --dr-drs-job=JOB to pick the drill")
    chosen = run(pytester, f"--dr-drs-job={OLD_JOB}")
    assert outcomes(chosen)["site.yaml::app01::drs_launch[launch]"] == "PASSED"


# --- 3. A refused host is never green ------------------------------------------------------


def test_refused_host_source_server_checks_are_not_green(pytester: pytest.Pytester,
                                                         drill: Drill, fake: FakeAws) -> None:
    # Before: replication state/lag and the configured type PASSED for a host the guard
    # refused (a real recovery's instance).
    real = drill.add("app02", drill=False, job=OLD_JOB)
    fake.launch_configurations[real.sid]["targetInstanceTypeRightSizingMethod"] = "BASIC"
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app02:
          drs: {{source_server_id: {real.sid}}}
          checks: {{drs_replication: [{{}}], drs_instance_type: [{{of: configured}}]}}
        """)
    result = run(pytester)
    # Refused: nothing observed, errors (neither green nor a wrong value).
    assert outcomes(result) == {
        "site.yaml::app02::drs_instance_type[configured]": "ERROR",
        "site.yaml::app02::drs_replication[lag]": "ERROR",
        "site.yaml::app02::drs_replication[state]": "ERROR",
    }
    lines = [line for line in result.stdout.lines if line.startswith("app02 ")]
    assert len(lines) == 3
    assert all(f"could not observe: refusing to check {real.instance_id} found by source server "
               f"{real.sid}: it is not a drill" in line for line in lines)
    assert "drill 'aws-drill': FAILED (3 error)" in result.stdout.str()
    # Allowed on purpose, the same checks observe and pass.
    allowed = run(pytester, "--dr-allow-non-drill")
    assert set(outcomes(allowed).values()) == {"PASSED"}


# --- 4. Paginators everywhere --------------------------------------------------------------


def test_endpoint_that_pages_before_filtering(pytester: pytest.Pytester, drill: Drill,
                                              fake: FakeAws) -> None:
    # Before: DescribeSourceServers/DescribeJobs were single requests: the server on a later
    # page was "not found", the job "not found in Elastic Disaster Recovery".
    hosts = [drill.add(f"app{i:02d}") for i in range(5)]
    for index in range(4):
        fake.jobs[f"drsjob-00000000000000{index:03d}"] = {
            "jobID": f"drsjob-00000000000000{index:03d}", "type": "LAUNCH",
            "initiatedBy": "START_DRILL", "status": "COMPLETED", "participatingServers": []}
    last = hosts[-1]
    fake.page_before_filter = True
    fake.page_size = 2
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        {last.name}:
          drs: {{source_server_id: {last.sid}}}
          checks: {{drs_replication: [{{}}], drs_launch: [{{}}]}}
        """)
    result = run(pytester)
    assert outcomes(result) == {
        f"site.yaml::{last.name}::drs_launch[launch]": "PASSED",
        f"site.yaml::{last.name}::drs_launch[post_launch]": "SKIPPED",
        f"site.yaml::{last.name}::drs_replication[lag]": "PASSED",
        f"site.yaml::{last.name}::drs_replication[state]": "PASSED",
    }
    assert fake.calls.count(("drs", "DescribeSourceServers")) >= 3  # followed nextToken


# --- 5. A total deadline per call; a dead endpoint fails later calls at once ---------------


def test_trickling_endpoint_is_cut_at_the_call_deadline(pytester: pytest.Pytester,
                                                        drill: Drill, fake: FakeAws) -> None:
    # Before: read_timeout 3 s and 2 attempts kept one call alive for the whole answer (one
    # byte per 1.5 s: minutes), the check said "no answer within 10 s (the check's timeout)"
    # without naming the endpoint, and the leftover listing waited all over again.
    host = drill.add("app01")
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {host.sid}}}
          checks: {{drs_replication: [{{}}]}}
        """)
    # call_timeout defaults to connect_timeout + read_timeout: 2 s + 3 s.
    site = pytester.path / "site.yaml"
    text = site.read_text().replace("  connect_timeout: 5s\n", "  connect_timeout: 2s\n", 1)
    site.write_text(text.replace("  read_timeout: 30s\n", "  read_timeout: 3s\n", 1))
    fake.trickle = 1.5
    started = time.monotonic()
    try:
        result = run(pytester)
    finally:
        fake.trickle = 0.0
    elapsed = time.monotonic() - started
    assert outcomes(result) == {"site.yaml::app01::drs_replication[lag]": "ERROR",
                                "site.yaml::app01::drs_replication[state]": "ERROR"}
    lines = [line for line in result.stdout.lines if line.startswith("app01 drs_replication")]
    assert len(lines) == 2
    for line in lines:
        assert line.endswith(f"could not observe: DescribeSourceServers: no complete answer "
                             f"from {fake.url} within 5 s (aws.call_timeout)"), line
    # The leftover listing went to the same dead endpoint: not sent, the cause named.
    assert (f"could not list them: DescribeRecoveryInstances not sent: {fake.url} is not "
            "answering (DescribeSourceServers: no complete answer") in result.stdout.str()
    assert fake.calls.count(("drs", "DescribeRecoveryInstances")) == 0
    assert fake.calls.count(("drs", "DescribeSourceServers")) == 1
    # The whole answer takes len(body) x 1.5 s, minutes: the run ends within a few deadlines.
    assert elapsed < 60, elapsed


# --- 6. Wording -----------------------------------------------------------------------------


def test_failed_launch_with_expected_actions_names_the_launch(pytester: pytest.Pytester,
                                                              drill: Drill, fake: FakeAws) -> None:
    # Before: post_launch failed "'join-domain' did not run (the SSM agent was never
    # discovered on the instance ...)" for a launch that failed before any instance existed;
    # the host's other checks said "no recovery instance found".
    failed = drill.add("app03", launched=False, launch_status="FAILED", last_status="FAILED")
    fake.job_logs[JOB] = [
        {"event": "LAUNCH_FAILED", "logDateTime": "2024-05-01T10:03:00Z",
         "eventData": {"sourceServerID": failed.sid,
                       "rawError": "InsufficientInstanceCapacity for c5.large"}}]
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app03:
          drs: {{source_server_id: {failed.sid}}}
          checks:
            drs_launch: [{{actions: [join-domain]}}]
            drs_instance_type: [{{of: launched}}]
            dns: [{{name: localhost, expect: 127.0.0.1, allow_hosts_file: true}}]
        """)
    result = run(pytester, "-rs")
    # The launch is the one wrong value observed; with no instance, the rest observed nothing.
    assert outcomes(result) == {
        "site.yaml::app03::dns[localhost]": "ERROR",
        "site.yaml::app03::drs_instance_type[launched]": "ERROR",
        "site.yaml::app03::drs_launch[launch]": "FAILED",
        "site.yaml::app03::drs_launch[post_launch]": "SKIPPED",
    }
    text = result.stdout.str()
    why = "LAUNCH_FAILED: InsufficientInstanceCapacity for c5.large"
    assert f"app03 drs_launch launch: the launch of {failed.sid} (app03) in job {JOB} " \
           f"failed: {why}" in text
    assert "SSM agent was never discovered" not in text
    assert re.search(r"skipped: drs_launch\[launch\] did not pass \(the launch of ", text)
    failure = (f"the drill launch of source server {failed.sid} in job {JOB} failed: {why}; "
               "no recovery instance to check")
    assert f"app03 drs_instance_type launched: could not observe: {failure}" in text
    # The unreachable host's reason is said once, in the drcheck summary.
    assert "app03 dns localhost: cannot reach app03 (reason in the drcheck summary)\n" in text
    assert f"\n  app03 (1 check): {failure}\n" in text
    assert "no recovery instance found" not in text


def test_job_option_with_only_a_real_recovery_up_is_the_refusal(
        pytester: pytest.Pytester, drill: Drill, fake: FakeAws) -> None:
    # Before: "no instance of drill job ... (found i-... (not a drill, ...))": the refusal,
    # which is what matters (a real recovery is up), was not said.
    real = drill.add("app02", drill=False, job=OLD_JOB)
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app02:
          drs: {{source_server_id: {real.sid}}}
          checks: {{drs_replication: [{{}}]}}
        """)
    result = run(pytester, f"--dr-drs-job={JOB}")
    assert outcomes(result) == {"site.yaml::app02::drs_replication[lag]": "ERROR",
                                "site.yaml::app02::drs_replication[state]": "ERROR"}
    assert (f"app02 drs_replication state: could not observe: refusing to check "
            f"{real.instance_id} found by source server {real.sid}: it is not a drill (isDrill "
            f"false: launched by a recovery, not a drill), and no instance of drill job {JOB} "
            "is up; check --dr-drs-job") in result.stdout.str()


# --- 8. --dr-wait reads DRS job state again ------------------------------------------------


def test_wait_sees_a_post_launch_action_finish(pytester: pytest.Pytester, drill: Drill,
                                               fake: FakeAws) -> None:
    # Before: the job was read once per run: an action IN_PROGRESS at the first look stayed
    # in progress for every retry, and the check failed at the end of --dr-wait.
    host = drill.add("app01", runs=[action_run("join-domain", "IN_PROGRESS")])
    reads: list[float] = []
    finished = threading.Event()

    def on_call(operation: str, body: dict[str, Any]) -> None:
        if operation != "DescribeJobs":
            return
        reads.append(time.monotonic())
        # Read 1: the launch; read 2: post_launch's first look; the action finishes after.
        if len(reads) == 3:
            entry = fake.jobs[JOB]["participatingServers"][0]
            entry["launchActionsStatus"]["runs"][0]["status"] = "SUCCEEDED"
            finished.set()

    fake.on_drs_call = on_call
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {host.sid}}}
          checks: {{drs_launch: [{{actions: [join-domain]}}]}}
        """)
    result = run(pytester, "--dr-wait=60s", "--junitxml=drill.xml")
    assert outcomes(result) == {"site.yaml::app01::drs_launch[launch]": "PASSED",
                                "site.yaml::app01::drs_launch[post_launch]": "PASSED"}
    assert finished.is_set()
    cases = case_properties(pytester.path / "drill.xml")
    assert cases["app01::drs_launch[post_launch]"]["dr.observed"] == "join-domain succeeded"
    assert int(cases["app01::drs_launch[post_launch]"]["dr.attempts"]) >= 2
    assert len(reads) >= 3  # launch, post_launch's first look, its retries


# --- could not observe: an API error, an endpoint that refuses --------------------------


def test_api_errors_are_could_not_observe(pytester: pytest.Pytester, drill: Drill,
                                          fake: FakeAws) -> None:
    # Before the contract: "failed" with the API's message, as if the property were wrong.
    host = drill.add("app01")
    del fake.launch_configurations[host.sid]
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {host.sid}}}
          checks: {{drs_instance_type: [{{of: configured}}]}}
        """)
    result = run(pytester)
    assert outcomes(result) == {"site.yaml::app01::drs_instance_type[configured]": "ERROR"}
    assert ("app01 drs_instance_type configured: could not observe: GetLaunchConfiguration "
            "failed: ResourceNotFoundException: source server not found") in result.stdout.str()
    assert "drill 'aws-drill': FAILED (1 error)" in result.stdout.str()


def test_refusing_endpoint_is_named_once_and_not_dialled_again(
        pytester: pytest.Pytester, drill: Drill, fake: FakeAws) -> None:
    host = drill.add("app01")
    closed = "http://127.0.0.1:9"  # discard port: nothing listens
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {host.sid}}}
          checks: {{drs_replication: [{{}}], drs_launch: [{{}}]}}
        """)
    site = pytester.path / "site.yaml"
    site.write_text(site.read_text().replace(f"endpoint_url: {fake.url}",
                                             f"endpoint_url: {closed}"))
    result = run(pytester)
    text = result.stdout.str()
    assert outcomes(result) == {"site.yaml::app01::drs_launch[launch]": "ERROR",
                                "site.yaml::app01::drs_launch[post_launch]": "SKIPPED",
                                "site.yaml::app01::drs_replication[lag]": "ERROR",
                                "site.yaml::app01::drs_replication[state]": "ERROR"}
    cause = ("DescribeSourceServers: cannot reach the AWS endpoint (Could not connect to the "
             f"endpoint URL: \"{closed}/DescribeSourceServers\"); check aws.region and "
             "aws.endpoint_url")
    for subject in ("drs_launch launch", "drs_replication lag", "drs_replication state"):
        assert f"app01 {subject}: could not observe: {cause}\n" in text
    # The leftover listing is not sent to an endpoint known dead.
    assert (f"could not list them: DescribeRecoveryInstances not sent: {closed} is not "
            f"answering ({cause})") in text


def test_wait_retries_of_api_checks_never_dial_the_instance(
        pytester: pytest.Pytester, drill: Drill, fake: FakeAws) -> None:
    # Before, each --dr-wait retry of an API-observed check reconnected the host's target first:
    # for an ssm host, that is polling for its SSM agent (DescribeInstanceInformation) for
    # connect_timeout, for nothing.
    host = drill.add("app01", state="BACKLOG")
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {host.sid}}}
          connection: {{type: ssm, connect_timeout: 1s}}
          checks: {{drs_replication: [{{states: [CONTINUOUS]}}]}}
        """)
    result = run(pytester, "-k", "state", "--dr-wait=3s", "--junitxml=drill.xml")
    assert outcomes(result) == {"site.yaml::app01::drs_replication[state]": "FAILED"}
    assert int(case_properties(pytester.path / "drill.xml")[
        "app01::drs_replication[state]"]["dr.attempts"]) >= 2
    assert ("ssm", "DescribeInstanceInformation") not in fake.calls
