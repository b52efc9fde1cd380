"""JSON Schema fragments of the inventory's AWS parts (the ``aws:`` section, the host keys
``drs:``/``ec2:``). Plain data: inventory.schema assembles them without importing boto3."""

from __future__ import annotations

from typing import Any

from pytest_drcheck.inventory import vocabulary

# Services whose endpoint can be overridden one by one (VPC endpoints, FIPS, local test doubles).
SERVICES = ["drs", "ec2", "iam", "ssm", "route53resolver", "secretsmanager", "sts"]
SOURCE_SERVER_ID = r"\As-[0-9a-zA-Z]{17}\Z"
INSTANCE_ID = r"\Ai-[0-9a-fA-F]{8,32}\Z"
JOB_ID = r"\Adrsjob-[0-9a-zA-Z]{17}\Z"
REGION = r"\A[a-z]{2,4}(-[a-z]{1,16}){1,3}-[0-9]{1,2}\Z"

_DURATION: dict[str, Any] = vocabulary.duration(example="5s or 1m")
_URL: dict[str, Any] = {**vocabulary.URL,
                        "x-expect": "a URL such as https://drs.eu-west-1.amazonaws.com"}

AWS_SECTION: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["region"],
    "properties": {
        "region": {"type": "string", "pattern": REGION,
                   "x-expect": "an AWS region such as eu-west-1 (the DR region)"},
        "profile": {"type": "string", "minLength": 1},
        "endpoint_url": _URL,
        "endpoints": {
            "type": "object", "x-kind": "service",
            "propertyNames": {"enum": SERVICES},
            "additionalProperties": _URL,
        },
        "connect_timeout": _DURATION,
        "read_timeout": _DURATION,
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 10},
        "call_timeout": _DURATION,
    },
}

DRS_HOST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["source_server_id"],
    "properties": {
        "source_server_id": {"type": "string", "pattern": SOURCE_SERVER_ID,
                             "x-expect": "a DRS source server id such as s-1234567890abcdef0 "
                                         "(s- and 17 letters or digits)"},
    },
}

EC2_HOST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "instance_id": {"type": "string", "pattern": INSTANCE_ID,
                        "x-expect": "an EC2 instance id such as i-0123456789abcdef0"},
        "tags": {"type": "object", "minProperties": 1,
                 "additionalProperties": {"type": "string"},
                 "x-expect": "a mapping of tag names to values, e.g. {Name: app01}"},
    },
}

# DRS recovery plans (the alternative launcher, aws.plans) and their executions.
PLAN_ARN = r"\Aarn:aws(-[a-z0-9]+)*:drs:[a-z0-9-]+:[0-9]{12}:recovery-plan/[a-zA-Z0-9_.-]+\Z"
EXECUTION_ARN = (r"\Aarn:aws(-[a-z0-9]+)*:drs:[a-z0-9-]+:[0-9]{12}:"
                 r"recovery-plan-execution/[a-zA-Z0-9_/.-]+\Z")
