"""The inventory's AWS parts, read without boto3: settings of the ``aws:`` section, and the
mistakes a schema cannot see (a host that needs AWS without an ``aws:`` section, both ``drs:``
and ``ec2:``, an AWS check on a host that AWS cannot find, boto3 not installed).

Called by the inventory loader, so ``drcheck validate`` reports them like every other mistake.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_drcheck.durations import parse_duration
from pytest_drcheck.inventory.errors import Problem
from pytest_drcheck.inventory.texts import texts_of
from pytest_drcheck.model import PlanItem

if TYPE_CHECKING:
    from pytest_drcheck.inventory.plan import HostSpec, Plan
    from pytest_drcheck.inventory.yamldoc import Document

INSTALL_HINT = "install pytest-drcheck[aws]"
_AWS_SECRET_PREFIXES = ("aws-secretsmanager:", "aws-ssm:")


@dataclass(frozen=True)
class AwsSettings:
    """The ``aws:`` section. Timeouts and attempts bound every socket operation (botocore
    Config); ``call_timeout`` bounds each request as a whole, retries included (default: one
    connect and one read timeout)."""

    region: str
    profile: str | None = None
    endpoint_url: str | None = None
    endpoints: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    max_attempts: int = 4
    call_timeout_setting: float | None = None

    @property
    def call_timeout(self) -> float:
        if self.call_timeout_setting is not None:
            return self.call_timeout_setting
        return self.connect_timeout + self.read_timeout

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> AwsSettings:
        return cls(
            region=str(section["region"]),
            profile=section.get("profile"),
            endpoint_url=section.get("endpoint_url"),
            endpoints=MappingProxyType(dict(section.get("endpoints", {}))),
            connect_timeout=parse_duration(section.get("connect_timeout", 5.0)),
            read_timeout=parse_duration(section.get("read_timeout", 20.0)),
            max_attempts=int(section.get("max_attempts", 4)),
            call_timeout_setting=(parse_duration(section["call_timeout"])
                                  if "call_timeout" in section else None),
        )

    @classmethod
    def from_plan(cls, plan: Plan) -> AwsSettings | None:
        section = plan.document.get("aws")
        return cls.from_section(section) if section is not None else None

    def endpoint(self, service: str) -> str | None:
        return self.endpoints.get(service) or self.endpoint_url


def boto3_missing() -> bool:
    """True when boto3 cannot be imported (without importing it: it is slow to import)."""
    if "boto3" in sys.modules:
        return sys.modules["boto3"] is None
    try:
        return importlib.util.find_spec("boto3") is None
    except (ImportError, ValueError):
        return True


def _has_aws_secret(document: Any) -> bool:
    """Whether any text in the document is an AWS secret reference: each distinct text looked
    at once, without the places' paths, for the usual document that has none."""
    return any(text.startswith(_AWS_SECRET_PREFIXES) for text in texts_of(document))


def _aws_secret_places(value: Any, path: tuple[str | int, ...]
                       ) -> Iterable[tuple[str | int, ...]]:
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield from _aws_secret_places(child, (*path, key))
    elif isinstance(value, (list, tuple)):
        for index, child in enumerate(value):
            yield from _aws_secret_places(child, (*path, index))
    elif isinstance(value, str) and value.startswith(_AWS_SECRET_PREFIXES):
        yield path


def _aws_check_types(items: Iterable[PlanItem]) -> set[str]:
    """The AWS check types among the items' types: each type asked about once, not each of
    a large drill's items."""
    from pytest_drcheck.aws.checks.base import AwsCheck
    from pytest_drcheck.checks import registry

    return {check_type for check_type in {item.check for item in items}
            if isinstance(registry.get(check_type), AwsCheck)}


def uses_aws(plan: Plan) -> bool:
    """Whether this plan needs the AWS layer at run time."""
    return ("aws" in plan.document
            or any(h.aws or h.connection.type == "ssm" for h in plan.hosts.values())
            or bool(_aws_check_types(plan.items)))


def aws_problems(doc: Document, data: Mapping[str, Any], hosts: Mapping[str, HostSpec],
                 items: Iterable[PlanItem]) -> list[Problem]:
    from pytest_drcheck.aws.checks.base import AwsCheck
    from pytest_drcheck.checks import registry

    items = list(items)
    needs: list[tuple[str | int, ...]] = []  # places that need AWS, in document order
    problems: list[Problem] = []
    if "aws" in data:
        needs.append(("aws",))
    for name, host in sorted(hosts.items()):
        where: tuple[str | int, ...] = ("hosts", name)
        if "drs" in host.aws and "ec2" in host.aws:
            problems.append(doc.problem((*where, "ec2"), "give drs: (the source server) or "
                                        "ec2: (the instance), not both; remove one"))
        for key in ("drs", "ec2"):
            if key in host.aws:
                needs.append((*where, key))
        if host.connection.type == "ssm":
            needs.append((*where, "connection"))
            if not host.aws:
                problems.append(doc.problem(where, (
                    "connection type ssm needs the instance; add drs: {source_server_id: ...} "
                    "or ec2: {instance_id: ...} (or tags:)")))
    aws_types = _aws_check_types(items)
    aws_items: list[tuple[PlanItem, AwsCheck[Any]]] = []
    for item in items:
        if item.check in aws_types:  # the registry asked for the AWS items only
            check = registry.get(item.check)
            if isinstance(check, AwsCheck):
                aws_items.append((item, check))
    secret_places = list(_aws_secret_places(data, ())) if _has_aws_secret(data) else []
    needs += secret_places
    if not needs and not aws_items:
        return problems
    if boto3_missing():
        # One line is enough: every other AWS problem is moot until the extra is installed.
        if needs:
            first = min(needs, key=lambda p: doc.line_of(p) or 0)
            return [doc.problem(first, f"this inventory uses AWS but boto3 is not installed; "
                                       f"{INSTALL_HINT}")]
        item = aws_items[0][0]
        return [Problem(item.source.file, item.source.line, item.source.place,
                        f"the {item.check} check uses AWS but boto3 is not installed; "
                        f"{INSTALL_HINT}")]
    if "aws" not in data:
        if needs and not all(p in secret_places for p in needs):
            first = min((p for p in needs if p not in secret_places),
                        key=lambda p: doc.line_of(p) or 0)
            problems.append(doc.problem(first, "this needs the inventory's aws: section; add "
                                               "aws: {region: <the DR region>}"))
        elif aws_items:
            item = aws_items[0][0]
            problems.append(Problem(item.source.file, item.source.line, item.source.place,
                                    f"the {item.check} check needs the inventory's aws: "
                                    "section; add aws: {region: <the DR region>}"))
    drill = data.get("drill", {})
    for item, check in aws_items:
        message = check.plan_problem(item, hosts[item.host], drill)
        if message:
            problems.append(Problem(item.source.file, item.source.line, item.source.place,
                                    message))
    # One entry expands into several subjects: say each mistake once.
    return list(dict.fromkeys(problems))
