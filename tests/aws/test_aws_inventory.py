"""AWS inventory mistakes are one line each (file:line: place: problem and fix), found at load
time without any network I/O; without boto3 an inventory that uses AWS says how to install it;
`drcheck discover` writes a skeleton that `drcheck validate` accepts; secrets resolve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_drcheck.cli import main as drcheck
from pytest_drcheck.inventory import load_plan
from pytest_drcheck.inventory.secrets import SecretError, SecretRef
from tests.aws.conftest import JOB, OLD_JOB, REGION, Drill, client
from tests.aws.fakeaws import FakeAws

HEAD = "version: 1\ndrill: {name: t, rpo: 15m}\naws: {region: eu-west-1}\n"
SID = "s-1234567890abcdef0"
DRS_HOST = f"hosts:\n  app01:\n    drs: {{source_server_id: {SID}}}\n"

CASES: list[tuple[str, str, str]] = [
    ("aws-without-region", "version: 1\ndrill: {name: t}\naws: {profile: dr}\n" + DRS_HOST,
     "site.yaml:3: aws: missing required key 'region'"),
    ("aws-bad-region", "version: 1\ndrill: {name: t}\naws: {region: Ireland}\n" + DRS_HOST,
     "site.yaml:3: aws.region: 'Ireland' is not valid here; expected an AWS region such as "
     "eu-west-1 (the DR region)"),
    ("aws-unknown-key", "version: 1\ndrill: {name: t}\naws: {region: eu-west-1, regoin: x}\n"
     + DRS_HOST, "site.yaml:3: aws.regoin: unknown key 'regoin' (did you mean 'region'?)"),
    ("aws-bad-endpoint", HEAD.replace("eu-west-1}", "eu-west-1, endpoint_url: drs.local}")
     + DRS_HOST,
     "site.yaml:3: aws.endpoint_url: 'drs.local' is not valid here; expected a URL such as "
     "https://drs.eu-west-1.amazonaws.com"),
    ("bad-source-server-id", HEAD + "hosts:\n  app01:\n    drs: {source_server_id: s-123}\n",
     "site.yaml:6: hosts.app01.drs.source_server_id: 's-123' is not valid here; expected a "
     "DRS source server id such as s-1234567890abcdef0"),
    ("drs-and-ec2", HEAD + DRS_HOST + "    ec2: {instance_id: i-0123456789abcdef0}\n",
     "site.yaml:7: hosts.app01.ec2: give drs: (the source server) or ec2: (the instance), not "
     "both"),
    ("empty-ec2", HEAD + "hosts:\n  app01:\n    ec2: {}\n",
     "site.yaml:6: hosts.app01.ec2: must not be empty"),
    ("drs-without-aws-section", "version: 1\ndrill: {name: t}\n" + DRS_HOST,
     "site.yaml:5: hosts.app01.drs: this needs the inventory's aws: section; add aws: {region: "
     "<the DR region>}"),
    ("ssm-without-instance", HEAD + "hosts:\n  app01:\n    address: 10.0.0.1\n"
                                    "    connection: {type: ssm}\n",
     "site.yaml:5: hosts.app01: connection type ssm needs the instance; add drs: "
     "{source_server_id: ...} or ec2: {instance_id: ...} (or tags:)"),
    ("aws-check-on-plain-host", HEAD + "hosts:\n  app01:\n    address: 10.0.0.1\n"
                                       "    checks: {drs_launch: [{}]}\n",
     "site.yaml:7: hosts.app01.checks.drs_launch[0]: the drs_launch check needs host app01 "
     "found in AWS; add drs: {source_server_id: ...} or ec2: {instance_id: ...} to the host"),
    ("lag-without-rpo", "version: 1\ndrill: {name: t}\naws: {region: eu-west-1}\n" + DRS_HOST
     + "    checks: {drs_replication: [{}]}\n",
     "site.yaml:7: hosts.app01.checks.drs_replication[0]: drs_replication needs the RPO target "
     "to compare the lag with; set drill.rpo (e.g. rpo: 15m) or max_lag on the entry"),
    ("bad-replication-state", HEAD + DRS_HOST + "    checks:\n      drs_replication:\n"
                                                "        - states: [HEALTHY]\n",
     "site.yaml:9: hosts.app01.checks.drs_replication[0].states[0]: 'HEALTHY' is not one of "
     "STOPPED, INITIATING"),
    ("bad-instance-type-scope", HEAD + DRS_HOST + "    checks: {drs_instance_type: [{of: all}]}\n",
     "site.yaml:7: hosts.app01.checks.drs_instance_type[0].of: 'all' is not one of launched, "
     "configured, both"),
    ("iam-bad-action", HEAD + DRS_HOST + "    checks: {iam_role: [{allow: [GetObject]}]}\n",
     "site.yaml:7: hosts.app01.checks.iam_role[0].allow[0]: 'GetObject' is not valid here; "
     "expected an IAM action such as s3:GetObject"),
    ("iam-allow-and-deny", HEAD + DRS_HOST + "    checks:\n      iam_role:\n"
                                             "        - {allow: [s3:GetObject], deny: "
                                             "[s3:GetObject]}\n",
     "site.yaml:9: hosts.app01.checks.iam_role[0].deny: s3:GetObject is both in allow and "
     "deny; keep one"),
    ("resolver-unknown-target", HEAD + DRS_HOST + "    checks:\n      route53_resolver:\n"
                                                  "        - {zone: corp.example, targets: "
                                                  "[onprem]}\n",
     "site.yaml:9: hosts.app01.checks.route53_resolver[0].targets: 'onprem' is neither an IP "
     "address nor a name under site.dns.resolvers"),
    ("resolver-without-vpc", HEAD + "hosts:\n  app01:\n    address: 10.0.0.1\n    checks:\n"
                                    "      route53_resolver:\n"
                                    "        - {zone: corp.example, targets: [10.0.0.53]}\n",
     "site.yaml:9: hosts.app01.checks.route53_resolver[0]: route53_resolver on host app01 needs "
     "the DR VPC; add vpc: to the entry or drs:/ec2: to the host"),
    ("resolver-bad-zone", HEAD + DRS_HOST + "    checks:\n      route53_resolver:\n"
                                            "        - {zone: 'corp example', targets: "
                                            "[10.0.0.53]}\n",
     "site.yaml:9: hosts.app01.checks.route53_resolver[0].zone: 'corp example' is not valid "
     "here; expected an on-premises DNS zone such as corp.example"),
]


@pytest.mark.parametrize(("name", "inventory", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_aws_inventory_is_one_clear_line(pytester: pytest.Pytester, name: str,
                                              inventory: str, expected: str) -> None:
    pytester.path.joinpath("site.yaml").write_text(textwrap.dedent(inventory))
    result = pytester.runpytest("--dr-inventory=site.yaml", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = result.stderr.str()
    assert expected in errors
    assert "Traceback" not in errors + result.stdout.str()
    problem_lines = [line for line in errors.splitlines() if line.startswith("site.yaml")]
    assert len(problem_lines) == 1, errors


def test_aws_options_need_an_aws_inventory(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("site.yaml").write_text(
        "version: 1\ndrill: {name: t}\nhosts:\n  app01: {address: 10.0.0.1}\n")
    result = pytester.runpytest("--dr-inventory=site.yaml", "--dr-allow-non-drill")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --dr-drs-job and --dr-allow-non-drill need an inventory "
                                 "that uses AWS (an aws: section, hosts with drs:/ec2:)"])


# --- without the aws extra -----------------------------------------------------------------

BLOCK_BOTO3 = """\
import sys

class _NoBoto3:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("boto3", "botocore"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, _NoBoto3())
"""


def _without_boto3(path: Path) -> dict[str, str]:
    blocker = path / "noboto3"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_BOTO3)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(blocker), *filter(None, [os.environ.get("PYTHONPATH")])])}


def test_without_boto3_an_aws_inventory_says_how_to_install(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("site.yaml").write_text(HEAD + DRS_HOST + "    checks: "
                                                   "{drs_launch: [{}]}\n")
    pytester.path.joinpath("plain.yaml").write_text(
        "version: 1\ndrill: {name: t}\nhosts:\n  app01: {address: 10.0.0.1}\n")
    env = _without_boto3(pytester.path)
    probe = subprocess.run([sys.executable, "-c", "import boto3"], env=env, capture_output=True,
                           text=True, check=False)
    assert probe.returncode == 1 and "No module named 'boto3'" in probe.stderr
    run = subprocess.run([sys.executable, "-m", "pytest", "--dr-inventory=site.yaml",
                          "--collect-only", "-p", "no:cacheprovider"], cwd=pytester.path,
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("site.yaml")]
    assert lines == ["site.yaml:3: aws: this inventory uses AWS but boto3 is not installed; "
                     "install pytest-drcheck[aws]"]
    assert "Traceback" not in run.stdout + run.stderr
    validate = subprocess.run([sys.executable, "-m", "pytest_drcheck.cli", "validate",
                               "site.yaml", "plain.yaml"], cwd=pytester.path, env=env,
                              capture_output=True, text=True, timeout=60, check=False)
    assert validate.returncode == 1
    assert validate.stderr.strip() == ("site.yaml:3: aws: this inventory uses AWS but boto3 is "
                                       "not installed; install pytest-drcheck[aws]")
    assert validate.stdout.strip() == "plain.yaml: ok: drill 't', 1 hosts, 0 checks"
    # An inventory without AWS runs as before (the plugin itself never imports boto3).
    plain = subprocess.run([sys.executable, "-m", "pytest", "--dr-inventory=plain.yaml",
                            "--collect-only", "-q", "-p", "no:cacheprovider"],
                           cwd=pytester.path, env=env, capture_output=True, text=True,
                           timeout=120, check=False)
    assert plain.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, plain.stdout + plain.stderr
    discover = subprocess.run([sys.executable, "-m", "pytest_drcheck.cli", "discover",
                               "--region", REGION], env=env, capture_output=True, text=True,
                              timeout=60, check=False)
    assert discover.returncode == 2
    assert discover.stderr.strip() == ("drcheck discover: boto3 is not installed; install "
                                       "pytest-drcheck[aws]")


def test_aws_secret_without_boto3_names_the_extra(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("site.yaml").write_text(
        "version: 1\ndrill: {name: t}\nhosts:\n  app01:\n    address: 10.0.0.1\n"
        "    connection: {password: 'aws-ssm:/dr/ssh-password'}\n")
    run = subprocess.run([sys.executable, "-m", "pytest_drcheck.cli", "validate", "site.yaml"],
                         cwd=pytester.path, env=_without_boto3(pytester.path),
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1
    assert run.stderr.strip() == ("site.yaml:6: hosts.app01.connection.password: this inventory "
                                  "uses AWS but boto3 is not installed; install "
                                  "pytest-drcheck[aws]")


# --- drcheck discover ----------------------------------------------------------------------


def test_discover_prints_a_skeleton_that_validates(tmp_path: Path, drill: Drill, fake: FakeAws,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    app = drill.add("app01", ips=("10.0.1.5", "10.0.2.5"))
    db = drill.add("DB01.corp.example", os="Microsoft Windows Server 2019 Datacenter")
    drill.add("other", job="drsjob-0000000000000000c")  # another job: not in the skeleton
    status = drcheck(["discover", "--region", REGION, "--job", JOB, "--endpoint-url", fake.url])
    out, err = capsys.readouterr()
    assert status == 0, err
    path = tmp_path / "site.yaml"
    path.write_text(out)
    plan = load_plan(path)
    assert sorted(plan.hosts) == ["app01", "db01"]
    assert plan.hosts["app01"].aws == {"drs": {"source_server_id": app.sid}}
    attributes = plan.hosts["app01"].attributes
    assert attributes["source_ips"] == ("10.0.1.5", "10.0.2.5")
    assert attributes["drill_instance"] == app.instance_id
    assert attributes["drill_address"].startswith("10.")
    assert attributes["source_os"] == "Red Hat Enterprise Linux release 8.6"
    # Learned from DRS's source OS: its checks are PowerShell (AWS-RunPowerShellScript).
    assert (plan.hosts["db01"].platform, plan.hosts["app01"].platform) == ("windows", "linux")
    assert plan.hosts["db01"].aws == {"drs": {"source_server_id": db.sid}}
    assert sorted({i.check for i in plan.items}) == ["drs_instance_type", "drs_launch",
                                                     "drs_replication"]
    assert drcheck(["validate", str(path)]) == 0
    assert f"Inventory skeleton from AWS Elastic Disaster Recovery, {REGION}, job {JOB}" in out


@pytest.mark.parametrize(("older", "newer"), [
    ("2024-05-01T09:59:00Z", "2024-05-01T09:59:00.5Z"),
    ("2024-05-01T11:00:00+02:00", "2024-05-01T10:30:00Z"),
])
def test_discover_keeps_the_newest_drill_by_time(tmp_path: Path, drill: Drill, fake: FakeAws,
                                                 capsys: pytest.CaptureFixture[str],
                                                 older: str, newer: str) -> None:
    # Before: timestamps compared as strings ('...00Z' > '...00.5Z', '11:00+02:00' >
    # '10:30Z'): the older drill was kept.
    host = drill.add("app01")
    old = fake.recovery_instances[str(host.instance_id)]
    old["pointInTimeSnapshotDateTime"] = older
    new = drill.instance("app01-new")["InstanceId"]
    fake.recovery_instances[new] = {**old, "recoveryInstanceID": new, "ec2InstanceID": new,
                                    "jobID": OLD_JOB, "pointInTimeSnapshotDateTime": newer}
    status = drcheck(["discover", "--region", REGION, "--endpoint-url", fake.url])
    out, err = capsys.readouterr()
    assert status == 0, err
    path = tmp_path / "site.yaml"
    path.write_text(out)
    plan = load_plan(path)
    assert plan.hosts["app01"].attributes["drill_instance"] == new
    assert plan.hosts["app01"].attributes["drill_job"] == OLD_JOB
    assert (f"2 drills are up: the newest is shown (job {OLD_JOB}); run the drill with "
            "--dr-drs-job") in plan.document["hosts"]["app01"]["description"]


def test_discover_reports_aws_failures_in_one_line(fake: FakeAws,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    status = drcheck(["discover", "--region", REGION, "--job", "drsjob-00000000000000zzz",
                      "--endpoint-url", fake.url])
    assert status == 1
    assert capsys.readouterr().err == ("drcheck discover: drill job drsjob-00000000000000zzz not "
                                       f"found in Elastic Disaster Recovery ({REGION})\n")


# --- secrets -------------------------------------------------------------------------------


def test_aws_secret_references_resolve(pytester: pytest.Pytester, fake: FakeAws) -> None:
    secrets = client(fake, "secretsmanager")
    arn = secrets.create_secret(Name="dr/ssh", SecretString=json.dumps(
        {"user": "ec2-user", "password": "s3cret-canary"}))["ARN"]
    secrets.create_secret(Name="dr/token", SecretString="token-canary")
    client(fake, "ssm").put_parameter(Name="/dr/bind-password", Value="param-canary",
                                      Type="SecureString")
    path = pytester.path / "site.yaml"
    path.write_text(f"version: 1\ndrill: {{name: t}}\naws: {{region: {REGION}, endpoint_url: "
                    f"'{fake.url}'}}\nhosts:\n  app01: {{address: 10.0.0.1}}\n")
    plan = load_plan(path)
    from pytest_drcheck.aws.run import AwsOptions
    from pytest_drcheck.engine import EngineSettings
    from pytest_drcheck.runtime import DrillRun

    run = DrillRun(plan, EngineSettings())
    run.attach_aws(AwsOptions())
    try:
        assert SecretRef.parse(f"aws-secretsmanager:{arn}#password").resolve() == "s3cret-canary"
        assert SecretRef.parse("aws-secretsmanager:dr/token").resolve() == "token-canary"
        assert SecretRef.parse("aws-ssm:/dr/bind-password").resolve() == "param-canary"
        with pytest.raises(SecretError) as missing:
            SecretRef.parse("aws-ssm:/dr/nothing").resolve()
        assert str(missing.value) == ("secret aws-ssm:/dr/nothing cannot be resolved: "
                                      "GetParameter failed: ParameterNotFound: Parameter "
                                      "/dr/nothing not found.")
        with pytest.raises(SecretError) as no_key:
            SecretRef.parse("aws-secretsmanager:dr/ssh#pasword").resolve()
        assert str(no_key.value) == ("secret aws-secretsmanager:dr/ssh#pasword: the secret is "
                                     "not a JSON object with the key 'pasword'; fix the key "
                                     "after '#'")
        assert "canary" not in str(missing.value) + str(no_key.value)
    finally:
        run.close()


def test_aws_secrets_reach_the_redactor(pytester: pytest.Pytester, fake: FakeAws) -> None:
    # Before: nothing handed AWS-resolved values to the evidence redactor.
    from pytest_drcheck.aws.run import AwsOptions
    from pytest_drcheck.engine import EngineSettings
    from pytest_drcheck.evidence.redact import Redactor
    from pytest_drcheck.runtime import DrillRun

    client(fake, "ssm").put_parameter(Name="/dr/early", Value="early-canary",
                                      Type="SecureString")
    client(fake, "ssm").put_parameter(Name="/dr/late", Value="late-canary",
                                      Type="SecureString")
    path = pytester.path / "site.yaml"
    path.write_text(f"version: 1\ndrill: {{name: t}}\naws: {{region: {REGION}, endpoint_url: "
                    f"'{fake.url}'}}\nhosts:\n  app01: {{address: 10.0.0.1}}\n")
    run = DrillRun(load_plan(path), EngineSettings())
    aws = run.attach_aws(AwsOptions())
    redactor = Redactor()
    try:
        assert SecretRef.parse("aws-ssm:/dr/early").resolve() == "early-canary"
        aws.redact_with(redactor.add)  # resolved before: handed over now
        assert SecretRef.parse("aws-ssm:/dr/late").resolve() == "late-canary"
        assert redactor.text("a early-canary b late-canary") == (
            "a [redacted aws-ssm:/dr/early] b [redacted aws-ssm:/dr/late]")
    finally:
        run.close()


# --- retain-IP expectation for the nic check -----------------------------------------------


def test_recorded_addresses_follow_the_launch_configuration(tmp_path: Path, drill: Drill,
                                                            fake: FakeAws) -> None:
    from pytest_drcheck.aws.retain import CHANGES_IPS
    from pytest_drcheck.aws.run import AwsHostTarget, AwsOptions
    from pytest_drcheck.checks.source_addresses import SourceAddresses
    from pytest_drcheck.engine import EngineSettings
    from pytest_drcheck.runtime import DrillRun
    from pytest_drcheck.targets.base import TargetError

    retained = drill.add("app01", ips=("10.0.1.5", "10.0.9.5"))
    changed = drill.add("app02")
    fake.launch_configurations[retained.sid]["copyPrivateIp"] = True
    path = tmp_path / "site.yaml"
    path.write_text(f"version: 1\ndrill: {{name: t}}\naws: {{region: {REGION}, endpoint_url: "
                    f"'{fake.url}'}}\nhosts:\n"
                    f"  app01: {{drs: {{source_server_id: {retained.sid}}}}}\n"
                    f"  app02: {{drs: {{source_server_id: {changed.sid}}}}}\n"
                    "  ghost: {drs: {source_server_id: s-00000000000000fff}}\n")
    run = DrillRun(load_plan(path), EngineSettings())
    run.attach_aws(AwsOptions())
    try:
        def target(name: str) -> AwsHostTarget:
            found = run.engine.target(name)
            assert isinstance(found, AwsHostTarget)
            return found

        assert target("app01").source_addresses(5) == SourceAddresses(
            ("10.0.1.5", "10.0.9.5"), f"DRS source server {retained.sid}")
        assert target("app02").source_addresses(5) == SourceAddresses(
            ("10.0.1.5",), f"DRS source server {changed.sid}", CHANGES_IPS)
        with pytest.raises(TargetError, match="source server s-00000000000000fff not found"):
            target("ghost").source_addresses(5)
    finally:
        run.close()


def test_a_drill_run_redacts_aws_secrets_in_its_evidence(pytester: pytest.Pytester,
                                                         fake: FakeAws) -> None:
    client(fake, "ssm").put_parameter(Name="/dr/pw", Value="run-canary", Type="SecureString")
    (pytester.path / "site.yaml").write_text(
        f"version: 1\ndrill: {{name: t}}\naws: {{region: {REGION}, endpoint_url: "
        f"'{fake.url}'}}\nhosts:\n  app01: {{address: 10.0.0.1}}\n")
    pytester.makeconftest("""
        from pytest_drcheck.inventory.secrets import SecretRef
        from pytest_drcheck.plugin import EVIDENCE_KEY

        def pytest_collection_finish(session):
            value = SecretRef.parse("aws-ssm:/dr/pw").resolve()
            redactor = session.config.stash[EVIDENCE_KEY].redactor
            with open("redacted.txt", "w") as out:
                out.write(redactor.text(f"seen {value}"))
        """)
    pytester.runpytest("--dr-inventory=site.yaml", "--collect-only", "-q")
    assert (pytester.path / "redacted.txt").read_text() == "seen [redacted aws-ssm:/dr/pw]"


def test_a_secret_reference_is_found_at_any_depth_before_its_place_is_sought() -> None:
    from types import MappingProxyType

    from pytest_drcheck.aws.inventory import _aws_secret_places, _has_aws_secret

    nested = {"hosts": {"a": {"connection": {"password": "aws-ssm:/dr/pw"}}},
              "x": [1, ("y", MappingProxyType({"k": "aws-secretsmanager:dr"}))]}
    assert _has_aws_secret(nested) is True
    assert list(_aws_secret_places(nested, ())) == [
        ("hosts", "a", "connection", "password"), ("x", 1, 1, "k")]
    # A key is no value; a text that merely contains the prefix is no reference.
    assert _has_aws_secret({"aws-ssm:/k": ["see aws-ssm:/x", 1.5, None]}) is False
