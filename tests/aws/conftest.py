"""AWS test doubles, all on 127.0.0.1: moto in server mode (EC2, IAM, STS, S3, SSM, Route 53
Resolver, Secrets Manager) behind the FakeAws endpoint (DRS, SSM agent, IAM simulation, IMDS).
Fake credentials come from tests/conftest.py; every client below names the local endpoint."""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

import pytest_drcheck.aws.checks.drs
import pytest_drcheck.aws.checks.iam
import pytest_drcheck.aws.checks.resolver

# Imported here, before any in-process pytester run: such a run drops the modules it imported
# when it ends, and the check registry's cached instances would then belong to class objects
# that a later run's isinstance() no longer recognises.
import pytest_drcheck.aws.run
import pytest_drcheck.targets.ssm  # noqa: F401
from tests.aws.fakeaws import FakeAws

REGION = "eu-west-1"
ACCOUNT = "123456789012"
JOB = "drsjob-0000000000000000a"
OLD_JOB = "drsjob-0000000000000000b"
AMI = "ami-12c6146b"


def source_id(n: int) -> str:
    return f"s-{n:017x}"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # moto imports a service's modules on its first request. In-process pytester runs restore
    # sys.modules afterwards, so a module first imported during one would be imported again
    # later as a second copy with its own state (an instance profile IAM knows and EC2 does
    # not). One request per service now loads them all before any pytester run.
    for service, call in (("ec2", "describe_instances"), ("iam", "list_roles"),
                          ("sts", "get_caller_identity"), ("s3", "list_buckets"),
                          ("route53resolver", "list_resolver_endpoints"),
                          ("ssm", "describe_parameters"), ("secretsmanager", "list_secrets")):
        getattr(boto3.client(service, endpoint_url=url, region_name=REGION), call)()
    yield url
    server.stop()


@pytest.fixture(scope="session")
def fake_server(moto_url: str) -> Iterator[FakeAws]:
    fake = FakeAws(moto_url)
    yield fake
    fake.close()


@pytest.fixture
def fake(fake_server: FakeAws, moto_url: str) -> Iterator[FakeAws]:
    requests.post(f"{moto_url}/moto-api/reset", timeout=120)  # seconds under eight CPU hogs
    fake_server.reset()
    yield fake_server
    assert not fake_server.errors, "\n".join(fake_server.errors)


def client(fake: FakeAws, service: str) -> Any:
    return boto3.client(service, endpoint_url=fake.url, region_name=REGION)


# --- DRS objects, shaped as the API returns them (validated by FakeAws) -------------------


def source_server(sid: str, hostname: str, *, os: str = "Red Hat Enterprise Linux release 8.6",
                  ips: Sequence[str] = ("10.0.1.5",), state: str = "CONTINUOUS",
                  lag: str | None = "PT30S", supports_nitro: bool = True,
                  last_job: str | None = JOB, last_status: str = "LAUNCHED",
                  recommended: str = "m5.large", error: dict[str, str] | None = None
                  ) -> dict[str, Any]:
    info: dict[str, Any] = {"dataReplicationState": state}
    if lag is not None:
        info["lagDuration"] = lag
    if error:
        info["dataReplicationError"] = error
    server: dict[str, Any] = {
        "sourceServerID": sid,
        "arn": f"arn:aws:drs:{REGION}:{ACCOUNT}:source-server/{sid}",
        "dataReplicationInfo": info,
        "lastLaunchResult": "SUCCEEDED",
        "replicationDirection": "FAILOVER",
        "sourceProperties": {
            "identificationHints": {"hostname": hostname, "fqdn": f"{hostname}.corp.example"},
            "os": {"fullString": os},
            "supportsNitroInstances": supports_nitro,
            "recommendedInstanceType": recommended,
            "networkInterfaces": [{"ips": list(ips), "isPrimary": True,
                                   "macAddress": "00:11:22:33:44:55"}],
        },
        "lifeCycle": {},
    }
    if last_job:
        server["lifeCycle"]["lastLaunch"] = {
            "initiated": {"jobID": last_job, "type": "DRILL",
                          "apiCallDateTime": "2024-05-01T10:00:00Z"},
            "status": last_status}
    return server


def recovery_instance(instance_id: str, sid: str, *, job: str = JOB, drill: bool = True,
                      state: str = "RUNNING", hostname: str = "app") -> dict[str, Any]:
    return {"recoveryInstanceID": instance_id, "ec2InstanceID": instance_id,
            "ec2InstanceState": state, "jobID": job, "sourceServerID": sid, "isDrill": drill,
            "arn": f"arn:aws:drs:{REGION}:{ACCOUNT}:recovery-instance/{instance_id}",
            "pointInTimeSnapshotDateTime": "2024-05-01T09:59:00Z",
            "recoveryInstanceProperties": {"identificationHints": {"hostname": hostname}}}


def action_run(name: str, status: str, reason: str = "", optional: bool = False,
               index: int = 1) -> dict[str, Any]:
    run: dict[str, Any] = {
        "action": {"actionId": f"00000000-0000-0000-0000-{index:012d}", "name": name,
                   "actionCode": "AWS-RunShellScript", "type": "SSM_COMMAND", "active": True,
                   "order": 100 + index, "optional": optional, "category": "CONFIGURATION"},
        "runId": f"10000000-0000-0000-0000-{index:012d}", "status": status}
    if reason:
        run["failureReason"] = reason
    return run


@dataclass
class Host:
    name: str
    sid: str
    instance_id: str | None


class Drill:
    """A drill on the local endpoints: EC2 instances in moto, DRS state in FakeAws."""

    def __init__(self, fake: FakeAws) -> None:
        self.fake = fake
        self.ec2 = client(fake, "ec2")
        self.iam = client(fake, "iam")
        self.count = 0
        self.fake.jobs[JOB] = {"jobID": JOB, "type": "LAUNCH", "initiatedBy": "START_DRILL",
                               "status": "COMPLETED", "participatingServers": [],
                               "creationDateTime": "2024-05-01T10:00:00Z"}

    def instance(self, name: str, instance_type: str = "m5.large",
                 profile: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "ImageId": AMI, "MinCount": 1, "MaxCount": 1, "InstanceType": instance_type,
            "TagSpecifications": [{"ResourceType": "instance",
                                   "Tags": [{"Key": "Name", "Value": name}]}]}
        if profile:
            params["IamInstanceProfile"] = {"Name": profile}
        instance: dict[str, Any] = self.ec2.run_instances(**params)["Instances"][0]
        return instance

    def add(self, name: str, *, drill: bool = True, job: str = JOB, launched: bool = True,
            instance_type: str = "m5.large", profile: str | None = None,
            runs: Sequence[dict[str, Any]] = (), launch_status: str = "LAUNCHED",
            **server: Any) -> Host:
        self.count += 1
        sid = source_id(self.count)
        last_job = server.pop("last_job", job)  # None: never launched
        self.fake.source_servers[sid] = source_server(sid, name, last_job=last_job, **server)
        self.fake.launch_configurations[sid] = {
            "sourceServerID": sid, "copyPrivateIp": False, "launchDisposition": "STARTED",
            "targetInstanceTypeRightSizingMethod": "NONE", "name": name}
        instance_id = None
        if launched:
            instance = self.instance(name, instance_type, profile)
            instance_id = str(instance["InstanceId"])
            self.fake.recovery_instances[instance_id] = recovery_instance(
                instance_id, sid, job=job, drill=drill, hostname=name)
        entry: dict[str, Any] = {"sourceServerID": sid, "launchStatus": launch_status}
        if instance_id:
            entry["recoveryInstanceID"] = instance_id
        if runs:
            entry["launchActionsStatus"] = {"runs": list(runs),
                                            "ssmAgentDiscoveryDatetime": "2024-05-01T10:05:00Z"}
        self.fake.jobs.setdefault(job, {"jobID": job, "type": "LAUNCH",
                                        "initiatedBy": "START_DRILL" if drill else
                                        "START_RECOVERY", "status": "COMPLETED",
                                        "participatingServers": []})
        self.fake.jobs[job]["participatingServers"].append(entry)
        return Host(name, sid, instance_id)

    def role(self, name: str, statements: list[dict[str, Any]]) -> str:
        """A role with an inline policy and an instance profile of the same name."""
        self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}))
        self.iam.put_role_policy(RoleName=name, PolicyName=f"{name}-policy",
                                 PolicyDocument=json.dumps({"Version": "2012-10-17",
                                                            "Statement": statements}))
        self.iam.create_instance_profile(InstanceProfileName=name)
        self.iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
        return name


@pytest.fixture
def drill(fake: FakeAws) -> Drill:
    return Drill(fake)


def write_inventory(path: Path, fake: FakeAws, hosts: str, extra: str = "",
                    drill_head: str = "drill: {name: aws-drill, rpo: 15m}") -> Path:
    """An inventory whose aws: section points every service at the local endpoint.

    Its timeouts are bounds for an overloaded runner (the local endpoints answered in seconds
    under eight CPU hogs): a test of a timeout sets its own."""
    text = textwrap.dedent(f"""\
        version: 1
        {drill_head}
        aws:
          region: {REGION}
          endpoint_url: {fake.url}
          connect_timeout: 5s
          read_timeout: 30s
          max_attempts: 2
        defaults:
          timeout: 60s
          connection: {{type: ssm, connect_timeout: 10s, command_timeout: 60s}}
        """) + extra + "hosts:\n" + textwrap.indent(textwrap.dedent(hosts), "  ")
    path.write_text(text)
    return path
