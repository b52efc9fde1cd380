"""What EC2 says about an instance type (DescribeInstanceTypes), when it says anything."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_drcheck.aws.clients import AwsClients, AwsError


def describe_instance_type(clients: AwsClients, instance_type: str) -> Mapping[str, Any] | None:
    """EC2's description of the type, or None when it cannot be had (not allowed to ask, an
    unknown type): ostype's family table decides then, so this is never 'could not observe'."""
    try:
        found = list(clients.pages("ec2", "describe_instance_types", "InstanceTypes",
                                   InstanceTypes=[instance_type]))
    except AwsError:
        return None
    return found[0] if found else None
