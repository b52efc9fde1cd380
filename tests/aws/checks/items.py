"""Plan items of the AWS check families, made the way the inventory makes them (expand)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_drcheck.aws.checks.base import AwsCheck
from pytest_drcheck.model import Location, PlanItem, freeze


def items(check: AwsCheck[Any], entry: Mapping[str, Any],
          site: Mapping[str, Any] | None = None) -> dict[str, PlanItem]:
    """Subject name -> plan item of ``entry`` on host app01."""
    return {subject.name: PlanItem("app01", check.type_name, subject.name,
                                   freeze(subject.params), Location("site.yaml", 1, "x"), 30.0,
                                   subject.requires)
            for subject in check.expand(entry, site or {})}
