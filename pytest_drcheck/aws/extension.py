"""What the aws extra adds to the inventory language (see pytest_drcheck.extensions): plain
data and names, importable without boto3."""

from __future__ import annotations

from types import MappingProxyType

from pytest_drcheck.aws.schema import AWS_SECTION, DRS_HOST, EC2_HOST
from pytest_drcheck.extensions import Extension, SecretKind

EXTENSION = Extension(
    name="aws",
    install="install pytest-drcheck[aws]",
    sections=MappingProxyType({"aws": AWS_SECTION}),
    # AWS recovery instances: found at session start instead of an address.
    host_keys=MappingProxyType({"drs": DRS_HOST, "ec2": EC2_HOST}),
    host_keys_hint="drs:/ec2: to find an AWS recovery instance",
    secret_kinds=(
        SecretKind("aws-secretsmanager", r"aws-secretsmanager:[^\s]{1,2048}",
                   "aws-secretsmanager:ARN", "pytest_drcheck.aws.secrets:resolve_aws_secret"),
        SecretKind("aws-ssm", r"aws-ssm:/[^\s]{1,2048}", "aws-ssm:/path",
                   "pytest_drcheck.aws.secrets:resolve_aws_secret"),
    ),
    check_types=MappingProxyType({
        "drs_replication": "pytest_drcheck.aws.checks.drs:DrsReplicationCheck",
        "drs_launch": "pytest_drcheck.aws.checks.drs:DrsLaunchCheck",
        "drs_instance_type": "pytest_drcheck.aws.checks.drs:DrsInstanceTypeCheck",
        "route53_resolver": "pytest_drcheck.aws.checks.resolver:ResolverRuleCheck",
        "iam_role": "pytest_drcheck.aws.checks.iam:IamRoleCheck",
        "instance_os": "pytest_drcheck.aws.checks.instance_os:InstanceOsCheck",
    }),
    problems="pytest_drcheck.aws.inventory:aws_problems",
    preload=tuple(f"pytest_drcheck.aws.{module}" for module in ("guard", "jobs", "ostype",
                                                                 "ec2types", "retain",
                                                                 "replication")),
)
