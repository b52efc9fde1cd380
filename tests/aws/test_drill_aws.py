"""Whole drills through pytest against the local AWS endpoints (moto + FakeAws): discovery,
the drill guard, the AWS-side checks, the leftover report. Each failure is asserted as the one
line the user reads."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from tests.aws.conftest import JOB, OLD_JOB, REGION, Drill, action_run, client, write_inventory
from tests.aws.fakeaws import FakeAws


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    """Test id -> PASSED/FAILED/SKIPPED/ERROR from the verbose progress lines (ERROR: the check
    could not observe, or its host was refused or unreachable: raised at setup)."""
    found = {}
    for line in result.stdout.lines:
        match = re.match(r"^(site\.yaml::\S+) (PASSED|FAILED|SKIPPED|ERROR)\b", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def report_sections(result: pytest.RunResult) -> dict[str, list[str]]:
    """Section title -> its lines, for the FAILURES ("app01::check[subject]") and ERRORS
    ("ERROR at setup of app01::check[subject]") sections; xdist's "[gw0] linux ..." lines out."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in result.stdout.lines:
        title = re.match(r"^_{3,} (.+?) _{3,}$", line)
        if title:
            current = sections.setdefault(title.group(1), [])
        elif line.startswith("=") or line.startswith("-" * 10):
            current = None
        elif current is not None and line and not line.startswith("[gw"):
            current.append(line)
    return sections


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--dr-inventory=site.yaml", "-v", *args)


def test_discovery_drill_guard_and_missing_source_server(pytester: pytest.Pytester,
                                                          drill: Drill, fake: FakeAws) -> None:
    ok = drill.add("app01")
    real = drill.add("app02", drill=False, job=OLD_JOB)
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {ok.sid}}}
          checks: {{drs_launch: [{{}}]}}
        app02:
          drs: {{source_server_id: {real.sid}}}
          checks: {{drs_launch: [{{}}]}}
        ghost:
          drs: {{source_server_id: s-00000000000000fff}}
          checks: {{drs_launch: [{{}}]}}
        """)
    result = run(pytester)
    assert outcomes(result) == {
        "site.yaml::app01::drs_launch[launch]": "PASSED",
        "site.yaml::app01::drs_launch[post_launch]": "SKIPPED",
        # Refused (not a drill) and not found: nothing observed, errors, not wrong values.
        "site.yaml::app02::drs_launch[launch]": "ERROR",
        "site.yaml::app02::drs_launch[post_launch]": "SKIPPED",
        "site.yaml::ghost::drs_launch[launch]": "ERROR",
        "site.yaml::ghost::drs_launch[post_launch]": "SKIPPED",
    }
    text = result.stdout.str()
    assert (f"app02 drs_launch launch: could not observe: refusing to check "
            f"{real.instance_id} found by source server {real.sid}: it is not a drill (isDrill "
            "false: launched by a recovery, not a drill); pass --dr-allow-non-drill to check "
            "non-drill instances on purpose") in text
    assert ("ghost drs_launch launch: could not observe: source server s-00000000000000fff "
            "not found in Elastic "
            f"Disaster Recovery ({REGION}); check drs.source_server_id and aws.region") in text
    assert "Traceback" not in text
    # Allowed on purpose: the same instance is then checked, and the header says so.
    allowed = run(pytester, "--dr-allow-non-drill", "-k", "app02")
    assert f"drcheck: AWS {REGION}, NON-DRILL INSTANCES ALLOWED" in allowed.stdout.str()
    assert outcomes(allowed) == {"site.yaml::app02::drs_launch[launch]": "PASSED",
                                 "site.yaml::app02::drs_launch[post_launch]": "SKIPPED"}


def test_job_option_restricts_discovery(pytester: pytest.Pytester, drill: Drill,
                                        fake: FakeAws) -> None:
    host = drill.add("app01")
    # An older drill of the same server is still up: without a job the host is ambiguous.
    older = drill.instance("app01-old")
    fake.recovery_instances[older["InstanceId"]] = {
        **fake.recovery_instances[str(host.instance_id)],
        "recoveryInstanceID": older["InstanceId"], "ec2InstanceID": older["InstanceId"],
        "jobID": OLD_JOB}
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {host.sid}}}
          checks: {{drs_instance_type: [{{of: launched}}]}}
        """)
    ambiguous = run(pytester)
    # Which drill is meant is unknown: nothing observed, an error.
    assert outcomes(ambiguous) == {"site.yaml::app01::drs_instance_type[launched]": "ERROR"}
    assert (f"app01 drs_instance_type launched: could not observe: 2 drill instances for "
            f"source server {host.sid}") in ambiguous.stdout.str()
    assert "pass --dr-drs-job=JOB to pick the drill" in ambiguous.stdout.str()
    chosen = run(pytester, f"--dr-drs-job={JOB}")
    assert outcomes(chosen) == {"site.yaml::app01::drs_instance_type[launched]": "PASSED"}
    other = run(pytester, "--dr-drs-job=drsjob-00000000000000zzz")
    assert ("no instance of drill job drsjob-00000000000000zzz for source server"
            in other.stdout.str())
    bad = run(pytester, "--dr-drs-job=job-1")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["ERROR: --dr-drs-job: 'job-1' is not a DRS job id (drsjob- and "
                              "17 letters or digits)"])


def test_hosts_are_discovered_concurrently(pytester: pytest.Pytester, drill: Drill,
                                           fake: FakeAws) -> None:
    hosts = [drill.add(f"app{i:02d}") for i in range(8)]
    write_inventory(pytester.path / "site.yaml", fake, "".join(
        f"{h.name}:\n  drs: {{source_server_id: {h.sid}}}\n"
        "  checks: {drs_instance_type: [{of: launched}]}\n" for h in hosts))
    fake.latency = 0.15  # every request held: concurrent discoveries overlap in the endpoint
    result = run(pytester)
    assert set(outcomes(result).values()) == {"PASSED"}
    assert len(outcomes(result)) == 8
    # Sequential discovery never has two requests in the endpoint at once (a measure that
    # holds on an overloaded machine, unlike a wall-clock bound).
    assert fake.max_in_flight >= 4, fake.max_in_flight


def test_collect_only_makes_no_aws_call(pytester: pytest.Pytester, drill: Drill,
                                        fake: FakeAws) -> None:
    host = drill.add("app01")
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {host.sid}}}
          checks: {{drs_replication: [{{}}], drs_launch: [{{}}]}}
        """)
    fake.calls.clear()
    result = pytester.runpytest("--dr-inventory=site.yaml", "--collect-only", "-q")
    assert [line for line in result.stdout.lines if line.startswith("site.yaml::")] == [
        "site.yaml::app01::drs_launch[launch]", "site.yaml::app01::drs_launch[post_launch]",
        "site.yaml::app01::drs_replication[lag]", "site.yaml::app01::drs_replication[state]"]
    assert fake.calls == []


def test_replication_state_and_lag_against_rpo(pytester: pytest.Pytester, drill: Drill,
                                               fake: FakeAws) -> None:
    fine = drill.add("app01", lag="PT2M")
    late = drill.add("app02", lag="PT1H2M", state="BACKLOG")
    stalled = drill.add("app03", state="STALLED", lag=None,
                        error={"error": "AGENT_NOT_SEEN", "rawError": "agent silent for 2 h"})
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {fine.sid}}}
          checks: {{drs_replication: [{{}}]}}
        app02:
          drs: {{source_server_id: {late.sid}}}
          checks: {{drs_replication: [{{}}]}}
        app03:
          drs: {{source_server_id: {stalled.sid}}}
          checks: {{drs_replication: [{{max_lag: 5m}}]}}
        """)
    result = run(pytester)
    assert outcomes(result) == {
        "site.yaml::app01::drs_replication[lag]": "PASSED",
        "site.yaml::app01::drs_replication[state]": "PASSED",
        "site.yaml::app02::drs_replication[lag]": "FAILED",
        "site.yaml::app02::drs_replication[state]": "FAILED",
        "site.yaml::app03::drs_replication[lag]": "FAILED",
        "site.yaml::app03::drs_replication[state]": "FAILED",
    }
    text = result.stdout.str()
    assert (f"app02 drs_replication lag: expected lag at most 15 min (RPO), observed lag 62 min "
            f"for source server {late.sid} (app02): 47 min of changes would be lost") in text
    assert (f"app02 drs_replication state: expected replication continuous for source server "
            f"{late.sid} (app02), observed backlog") in text
    assert (f"app03 drs_replication state: expected replication continuous for source server "
            f"{stalled.sid} (app03), observed stalled (error AGENT_NOT_SEEN: agent silent for "
            "2 h)") in text
    assert ("app03 drs_replication lag: expected lag at most 5 min (max_lag), observed no lag "
            f"figure while replication of {stalled.sid} (app03) is stalled") in text


def test_launch_and_post_launch_actions(pytester: pytest.Pytester, drill: Drill,
                                        fake: FakeAws) -> None:
    good = drill.add("app01", runs=[action_run("join-domain", "SUCCEEDED"),
                                    action_run("add-nic", "SUCCEEDED", index=2)])
    bad = drill.add("app02", runs=[
        action_run("join-domain", "SUCCEEDED"),
        action_run("add-nic", "FAILED", "exit status 2: eth1 not found", index=2)])
    failed = drill.add("app03", launched=False, launch_status="FAILED", last_status="FAILED")
    fake.job_logs[JOB] = [
        {"event": "JOB_START", "logDateTime": "2024-05-01T10:00:00Z"},
        {"event": "LAUNCH_FAILED", "logDateTime": "2024-05-01T10:03:00Z",
         "eventData": {"sourceServerID": failed.sid,
                       "rawError": "InsufficientInstanceCapacity for c5.large"}}]
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {good.sid}}}
          checks: {{drs_launch: [{{actions: [join-domain, add-nic]}}]}}
        app02:
          drs: {{source_server_id: {bad.sid}}}
          checks: {{drs_launch: [{{actions: [join-domain, configure-dns]}}]}}
        app03:
          drs: {{source_server_id: {failed.sid}}}
          checks: {{drs_launch: [{{}}]}}
        """)
    result = run(pytester)
    assert outcomes(result) == {
        "site.yaml::app01::drs_launch[launch]": "PASSED",
        "site.yaml::app01::drs_launch[post_launch]": "PASSED",
        "site.yaml::app02::drs_launch[launch]": "PASSED",
        "site.yaml::app02::drs_launch[post_launch]": "FAILED",
        "site.yaml::app03::drs_launch[launch]": "FAILED",
        "site.yaml::app03::drs_launch[post_launch]": "SKIPPED",
    }
    text = result.stdout.str()
    assert ("app02 drs_launch post_launch: post-launch action 'configure-dns' did not run; "
            "'add-nic' (AWS-RunShellScript) failed: exit status 2: eth1 not found") in text
    assert (f"app03 drs_launch launch: the launch of {failed.sid} (app03) in job {JOB} failed: "
            "LAUNCH_FAILED: InsufficientInstanceCapacity for c5.large") in text


def test_instance_type_against_source_os(pytester: pytest.Pytester, drill: Drill,
                                         fake: FakeAws) -> None:
    ec2 = client(fake, "ec2")
    template = ec2.create_launch_template(LaunchTemplateName="dr-app03", LaunchTemplateData={
        "InstanceType": "m5.xlarge"})["LaunchTemplate"]["LaunchTemplateId"]
    modern = drill.add("app01", instance_type="c5.large")
    old_rhel = drill.add("app02", instance_type="c5.large",
                         os="CentOS release 6.10 (Final)", supports_nitro=True)
    old_win = drill.add("app03", instance_type="m4.large",
                        os="Microsoft Windows Server 2008 Enterprise 6.0.6002",
                        supports_nitro=False)
    fake.launch_configurations[old_win.sid]["ec2LaunchTemplateID"] = template
    fake.launch_configurations[modern.sid]["targetInstanceTypeRightSizingMethod"] = "BASIC"
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {modern.sid}}}
          checks: {{drs_instance_type: [{{}}]}}
        app02:
          drs: {{source_server_id: {old_rhel.sid}}}
          checks: {{drs_instance_type: [{{of: launched}}]}}
        app03:
          drs: {{source_server_id: {old_win.sid}}}
          checks: {{drs_instance_type: [{{}}]}}
        """)
    result = run(pytester)
    assert outcomes(result) == {
        "site.yaml::app01::drs_instance_type[configured]": "PASSED",
        "site.yaml::app01::drs_instance_type[launched]": "PASSED",
        "site.yaml::app02::drs_instance_type[launched]": "FAILED",
        "site.yaml::app03::drs_instance_type[configured]": "FAILED",
        "site.yaml::app03::drs_instance_type[launched]": "PASSED",
    }
    text = result.stdout.str()
    assert (f"app02 drs_instance_type launched: launched {old_rhel.instance_id}: c5.large is a "
            "Nitro type and CentOS release 6.10 (Final) falls under 'RHEL/CentOS 6 and earlier "
            "do not boot on Nitro'; use a Xen type (e.g. m4, c4, r4, t2)") in text
    assert (f"app03 drs_instance_type configured: launch template {template} configures "
            "m5.xlarge: m5.xlarge is a Nitro type and DRS reports that the source (Microsoft "
            "Windows Server 2008 Enterprise 6.0.6002) does not support Nitro") in text


def _resolver_setup(fake: FakeAws) -> dict[str, Any]:
    ec2, resolver = client(fake, "ec2"), client(fake, "route53resolver")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24")["Subnet"]["SubnetId"]
               for i in range(2)]
    group = ec2.create_security_group(GroupName="dns", Description="dns", VpcId=vpc)["GroupId"]
    endpoint = resolver.create_resolver_endpoint(
        CreatorRequestId="out", SecurityGroupIds=[group], Direction="OUTBOUND",
        IpAddresses=[{"SubnetId": s} for s in subnets])["ResolverEndpoint"]["Id"]

    def rule(zone: str, target: str, associate: str | None) -> str:
        rule_id: str = resolver.create_resolver_rule(
            CreatorRequestId=zone, Name=zone.replace(".", "-"), RuleType="FORWARD",
            DomainName=zone,
            TargetIps=[{"Ip": target, "Port": 53}], ResolverEndpointId=endpoint
        )["ResolverRule"]["Id"]
        if associate:
            # Names only because moto sorts rules and associations by name.
            resolver.associate_resolver_rule(ResolverRuleId=rule_id, VPCId=associate,
                                             Name=zone.replace(".", "-"))
        return rule_id

    return {"vpc": vpc, "other_vpc": ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"],
            "rule": rule}


def test_resolver_rules(pytester: pytest.Pytester, drill: Drill, fake: FakeAws) -> None:
    setup = _resolver_setup(fake)
    vpc, other = setup["vpc"], setup["other_vpc"]
    setup["rule"]("corp.example", "10.77.0.53", vpc)
    unattached = setup["rule"]("branch.example", "10.77.0.53", other)
    wrong = setup["rule"]("lab.example", "10.9.9.9", vpc)
    host = drill.add("app01")
    # Without vpc: the DR VPC is the recovery instance's.
    instance_vpc = client(fake, "ec2").describe_instances(InstanceIds=[str(host.instance_id)])[
        "Reservations"][0]["Instances"][0]["VpcId"]
    setup["rule"]("dr.example", "10.77.0.53", instance_vpc)
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {host.sid}}}
          checks:
            route53_resolver:
              - {{zone: dr.example, targets: [onprem]}}
              - {{zone: corp.example, targets: [onprem], vpc: {vpc}}}
              - {{zone: branch.example., targets: [10.77.0.53], vpc: {vpc}}}
              - {{zone: lab.example, targets: ["10.77.0.53:53"], vpc: {vpc}}}
              - {{zone: missing.example, targets: [onprem], vpc: {vpc}}}
        """, extra="site:\n  dns:\n    resolvers: {onprem: 10.77.0.53}\n")
    result = run(pytester)
    assert outcomes(result) == {
        "site.yaml::app01::route53_resolver[branch.example]": "FAILED",
        "site.yaml::app01::route53_resolver[corp.example]": "PASSED",
        "site.yaml::app01::route53_resolver[dr.example]": "PASSED",
        "site.yaml::app01::route53_resolver[lab.example]": "FAILED",
        "site.yaml::app01::route53_resolver[missing.example]": "FAILED",
    }
    text = result.stdout.str()
    assert (f"app01 route53_resolver branch.example: forwarding rule {unattached} for "
            f"branch.example is not associated with {vpc} (associated with {other}); associate "
            "it with the DR VPC") in text
    assert (f"app01 route53_resolver lab.example: rule {wrong} forwards lab.example to "
            "10.9.9.9:53, expected 10.77.0.53:53 (missing 10.77.0.53:53; unexpected "
            "10.9.9.9:53)") in text
    assert (f"app01 route53_resolver missing.example: no Route 53 Resolver FORWARD rule for "
            f"missing.example in {REGION}; create one forwarding to 10.77.0.53:53") in text


def test_iam_role_policy_simulation_and_imds(pytester: pytest.Pytester, drill: Drill,
                                             fake: FakeAws) -> None:
    role = drill.role("dr-app", [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"}])
    with_role = drill.add("app01", profile=role)
    bare = drill.add("app02")
    fake.ssm_instances[str(with_role.instance_id)] = {"PingStatus": "Online"}
    fake.imds = {"profile_arn": f"arn:aws:iam::123456789012:instance-profile/{role}",
                 "role": role}
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {with_role.sid}}}
          checks:
            iam_role:
              - role: dr-app
                allow: [s3:GetObject, s3:PutObject, s3:DeleteObject]
                deny: [iam:CreateUser]
                imds_endpoint: {fake.url}
        app02:
          drs: {{source_server_id: {bare.sid}}}
          checks:
            iam_role: [{{imds: false}}]
        """)
    result = run(pytester)
    assert outcomes(result) == {
        "site.yaml::app01::iam_role[allow:s3:DeleteObject]": "FAILED",
        "site.yaml::app01::iam_role[allow:s3:GetObject]": "PASSED",
        "site.yaml::app01::iam_role[allow:s3:PutObject]": "FAILED",
        "site.yaml::app01::iam_role[deny:iam:CreateUser]": "PASSED",
        "site.yaml::app01::iam_role[imds]": "PASSED",
        "site.yaml::app01::iam_role[profile]": "PASSED",
        "site.yaml::app02::iam_role[profile]": "FAILED",
    }
    text = result.stdout.str()
    assert ("app01 iam_role allow:s3:PutObject: role dr-app may not s3:PutObject on *: *: "
            "implicitDeny (no policy of the role allows it); grant it to the role") in text
    assert ("app01 iam_role allow:s3:DeleteObject: role dr-app may not s3:DeleteObject on *: "
            "*: explicitly denied by dr-app-policy; grant it to the role") in text
    assert (f"app02 iam_role profile: {bare.instance_id} has no instance profile attached; "
            "attach one with the role post-launch actions and applications need") in text
    # One simulation for all of an entry's actions.
    assert fake.calls.count(("iam", "SimulatePrincipalPolicy")) == 1


def test_imds_naming_another_role_fails(pytester: pytest.Pytester, drill: Drill,
                                        fake: FakeAws) -> None:
    role = drill.role("dr-app", [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}])
    host = drill.add("app01", profile=role)
    fake.ssm_instances[str(host.instance_id)] = {"PingStatus": "Online"}
    fake.imds = {"profile_arn": "arn:aws:iam::123456789012:instance-profile/prod-app",
                 "role": "prod-app"}
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {host.sid}}}
          checks:
            iam_role: [{{imds_endpoint: "{fake.url}"}}]
        """)
    result = run(pytester, "-k", "imds")
    assert outcomes(result) == {"site.yaml::app01::iam_role[imds]": "FAILED"}
    assert ("app01 iam_role imds: IMDSv2 on the instance names role prod-app, but its instance "
            "profile carries role dr-app") in result.stdout.str()


def test_api_checks_report_when_the_instance_is_unreachable(
        pytester: pytest.Pytester, drill: Drill, fake: FakeAws) -> None:
    host = drill.add("app01", runs=[action_run("join-domain", "FAILED", "domain unreachable")])
    # No SSM agent registered: on-instance checks cannot run, the API side still reports.
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {host.sid}}}
          connection: {{type: ssm, connect_timeout: 1s}}
          checks:
            drs_launch: [{{}}]
            iam_role: [{{imds_endpoint: "{fake.url}"}}]
        """)
    result = run(pytester, "-k", "drs_launch or imds")
    assert outcomes(result) == {
        "site.yaml::app01::drs_launch[launch]": "PASSED",
        "site.yaml::app01::drs_launch[post_launch]": "FAILED",  # observed: the action failed
        "site.yaml::app01::iam_role[imds]": "ERROR",  # the host is unreachable
    }
    text = result.stdout.str()
    # The reason is said once, in the drcheck summary; the item's report points there.
    assert "app01 iam_role imds: cannot reach app01 (reason in the drcheck summary)" in text
    assert (f"  app01 (1 check): the SSM agent of {host.instance_id} is not "
            "registered with Systems Manager after 1 s") in text
    assert ("app01 drs_launch post_launch: post-launch action 'join-domain' "
            "(AWS-RunShellScript) failed: domain unreachable") in text


def test_ec2_tags_find_the_drill_instance(pytester: pytest.Pytester, drill: Drill,
                                          fake: FakeAws) -> None:
    drill.add("app01")
    drill.instance("app01")  # production instance with the same Name tag: not a recovery one
    drill.instance("db01")
    write_inventory(pytester.path / "site.yaml", fake, """\
        app01:
          ec2: {tags: {Name: app01}}
          checks: {drs_replication: [{}], drs_instance_type: [{of: launched}]}
        db01:
          ec2: {tags: {Name: db01}}
          checks: {drs_instance_type: [{of: launched}]}
        """)
    result = run(pytester)
    assert outcomes(result) == {
        "site.yaml::app01::drs_instance_type[launched]": "PASSED",
        "site.yaml::app01::drs_replication[lag]": "PASSED",
        "site.yaml::app01::drs_replication[state]": "PASSED",
        "site.yaml::db01::drs_instance_type[launched]": "ERROR",  # refused: not a recovery one
    }
    assert re.search(r"db01 drs_instance_type launched: could not observe: refusing to "
                     r"check i-[0-9a-f]+ found by tags Name=db01: it is not a DRS recovery "
                     r"instance; pass --dr-allow-non-drill", result.stdout.str())


def test_leftover_drill_instances_are_reported(pytester: pytest.Pytester, drill: Drill,
                                               fake: FakeAws) -> None:
    host = drill.add("app01")
    stray = drill.add("app09", job=OLD_JOB)  # an older drill nobody terminated
    drill.add("app05", drill=False, job="drsjob-0000000000000000c")  # a recovery: not listed
    gone = drill.add("app06")
    fake.recovery_instances[str(gone.instance_id)]["ec2InstanceState"] = "TERMINATED"
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {host.sid}}}
          checks: {{drs_replication: [{{}}]}}
        """)
    pytester.makeconftest("""
        import json
        from pytest_drcheck.aws.plugin import AWS_LEFTOVERS_KEY

        def pytest_sessionfinish(session):
            report = session.config.stash.get(AWS_LEFTOVERS_KEY, None)
            with open("leftovers.json", "w") as out:
                json.dump(report, out)
        """)
    result = run(pytester, "--junitxml=drill.xml")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*= drcheck: drill recovery instances still running =*",
        f"{host.instance_id} (app01, job {JOB}, running)",
        f"{stray.instance_id} (app09, job {OLD_JOB}, running)",
        "terminate them when the drill is over*",
    ])
    assert "DrillLeftoverWarning: 2 drill recovery instance(s) still running" in (
        result.stdout.str())
    suite = ET.parse(pytester.path / "drill.xml").getroot().find("testsuite")
    assert suite is not None
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert (properties["dr.aws.region"], properties["dr.aws.drs_job"],
            properties["dr.aws.allow_non_drill"]) == (REGION, "", "false")
    assert f"drcheck: AWS {REGION}" in result.stdout.str()
    assert properties["dr.aws.leftover_instances"] == (
        f"{host.instance_id} (app01, job {JOB}, running); "
        f"{stray.instance_id} (app09, job {OLD_JOB}, running)")
    report = json.loads((pytester.path / "leftovers.json").read_text())
    assert report["region"] == REGION and report["error"] == ""
    assert [i["instance_id"] for i in report["instances"]] == [host.instance_id,
                                                              stray.instance_id]
    assert report["instances"][0]["host"] == "app01"
    assert report["instances"][1]["source_hostname"] == "app09"


def test_discovered_host_over_another_connection_type(pytester: pytest.Pytester, drill: Drill,
                                                      fake: FakeAws) -> None:
    """A host found in AWS keeps its own connection type: discovery, then the ordinary target
    (here local; ssh gets the discovered private address the same way)."""
    role = drill.role("dr-app", [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}])
    host = drill.add("app01", profile=role)
    fake.imds = {"profile_arn": f"arn:aws:iam::123456789012:instance-profile/{role}",
                 "role": role}
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {host.sid}}}
          connection: {{type: local}}
          checks:
            iam_role: [{{imds_endpoint: "{fake.url}"}}]
        """)
    result = run(pytester, "--junitxml=drill.xml")
    assert outcomes(result) == {"site.yaml::app01::iam_role[imds]": "PASSED",
                                "site.yaml::app01::iam_role[profile]": "PASSED"}
    cases = {c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")}
             for c in ET.parse(pytester.path / "drill.xml").getroot().iter("testcase")}
    assert cases["iam_role[profile]"]["dr.vantage"] == "runner"
    assert cases["iam_role[imds]"]["dr.vantage"].startswith("app01")
    assert ("ssm", "SendCommand") not in fake.calls


def test_under_xdist(pytester: pytest.Pytester, drill: Drill, fake: FakeAws) -> None:
    """Workers discover the hosts they get; the controller reports the leftovers once."""
    good = drill.add("app01")
    refused = drill.add("app02", drill=False)
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {good.sid}}}
          checks: {{drs_replication: [{{}}], drs_launch: [{{}}]}}
        app02:
          drs: {{source_server_id: {refused.sid}}}
          checks: {{drs_launch: [{{}}]}}
        """)
    result = pytester.runpytest("--dr-inventory=site.yaml", "-n", "2", "--dist", "loadscope",
                                "-rE")
    # app02: the refusal on its launch (an error); its post-launch actions skipped for it.
    result.assert_outcomes(passed=3, errors=1, skipped=2)
    assert "DrillLeftoverWarning: 1 drill recovery instance(s) still running" in (
        result.stdout.str())
    # Read in the report sections only: pytest does not truncate the short summary when CI is
    # set, so the whole output holds the message a varying number of times.
    assert report_sections(result) == {"ERROR at setup of app02::drs_launch[launch]": [
        f"app02 drs_launch launch: could not observe: refusing to check {refused.instance_id} "
        f"found by source server {refused.sid}: it is not a drill (isDrill false: launched by a "
        "recovery, not a drill); pass --dr-allow-non-drill to check non-drill instances on "
        "purpose"]}
    result.stdout.fnmatch_lines(["ERROR site.yaml::app02::drs_launch[[]launch[]] - app02 "
                                 "drs_launch launch: *"])
    result.stdout.fnmatch_lines([
        "*= drcheck: drill recovery instances still running =*",
        f"{good.instance_id} (app01, job {JOB}, running)"])


def test_hand_written_tests_get_the_discovered_host(pytester: pytest.Pytester, drill: Drill,
                                                    fake: FakeAws) -> None:
    host = drill.add("app01")
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {host.sid}}}
          connection: {{type: local}}
        """)
    pytester.makepyfile(test_app="""
        def test_on_the_host(dr_host, dr_target):
            assert dr_host.run("echo ok").stdout == "ok\\n"
            assert dr_target.run("echo ok", 5).stdout == "ok\\n"
        """)
    result = pytester.runpytest("--dr-inventory=site.yaml", "test_app.py", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_on_the_host[[]app01[]] PASSED*"])


def test_socket_checks_over_ssm_say_they_need_ssh(pytester: pytest.Pytester, drill: Drill,
                                                  fake: FakeAws) -> None:
    host = drill.add("app01")
    fake.ssm_instances[str(host.instance_id)] = {"PingStatus": "Online"}
    write_inventory(pytester.path / "site.yaml", fake, f"""\
        app01:
          drs: {{source_server_id: {host.sid}}}
          checks:
            reach: [{{target: "10.77.0.20:636"}}]
            dns: [{{name: localhost, expect: 127.0.0.1, allow_hosts_file: true}}]
        """)
    result = run(pytester)
    # SSM cannot open the stream: nothing observed, an error naming why.
    assert outcomes(result) == {"site.yaml::app01::dns[localhost]": "PASSED",
                                "site.yaml::app01::reach[10.77.0.20:636]": "ERROR"}
    assert ("app01 reach 10.77.0.20:636: could not observe: app01 is reached "
            "over SSM Run Command, which cannot open a TCP stream from the instance (to "
            "10.77.0.20:636); this check needs connection type ssh (directly or through an SSM "
            "port-forwarding session)") in result.stdout.str()
    assert fake.calls.count(("ssm", "SendCommand")) == 1  # the dns check's batch
