"""Check types by name: the built-in ones, those of extensions (pytest_drcheck.extensions: the
aws extra's), plus any registered through the ``pytest_drcheck.checks`` entry-point group
(``name = "package.module:CheckClass"``)."""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import Any

from pytest_drcheck import extensions
from pytest_drcheck.checks.base import Check

# Dotted paths, imported on first use so that loading the plugin stays cheap.
BUILTIN_CHECKS: dict[str, str] = {
    "dns": "pytest_drcheck.checks.dns:DnsCheck",
    "reach": "pytest_drcheck.checks.reach:ReachCheck",
    "nic": "pytest_drcheck.checks.nic:NicCheck",
    "egress": "pytest_drcheck.checks.egress:EgressCheck",
    "ldap": "pytest_drcheck.checks.directory:DirectoryCheck",
    "time": "pytest_drcheck.checks.timesync:TimeCheck",
    "agent": "pytest_drcheck.checks.agents:AgentCheck",
    "logging": "pytest_drcheck.checks.logging_delivery:LoggingCheck",
    "backup": "pytest_drcheck.checks.backup:BackupCheck",
    "domain": "pytest_drcheck.checks.domain:DomainCheck",
    "rpo": "pytest_drcheck.checks.rpo:RpoCheck",
    "replication": "pytest_drcheck.checks.replication:ReplicationCheck",
}

ENTRY_POINT_GROUP = "pytest_drcheck.checks"


class UnknownCheckType(KeyError):
    pass


def _import(dotted: str) -> type[Check[Any]]:
    module_name, _, attribute = dotted.partition(":")
    check_class = getattr(importlib.import_module(module_name), attribute)
    if not (isinstance(check_class, type) and issubclass(check_class, Check)):
        raise TypeError(f"{dotted} is not a pytest_drcheck Check class")
    # The contract is what makes a verdict evidence (checks.base): a family observes and
    # judges, and never decides for itself what "could not observe" becomes.
    if check_class.evaluate is not Check.evaluate:
        raise TypeError(f"{dotted} overrides evaluate; implement observe and judge instead "
                        "(raise CouldNotObserve when nothing could be observed)")
    missing = sorted(getattr(check_class, "__abstractmethods__", ()))
    if missing:
        raise TypeError(f"{dotted} does not implement {', '.join(missing)}")
    return check_class


@functools.cache
def available() -> dict[str, str]:
    paths = {**BUILTIN_CHECKS, **extensions.check_types()}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        paths.setdefault(entry_point.name, entry_point.value)
    return paths


@functools.cache
def get(type_name: str) -> Check[Any]:
    try:
        dotted = available()[type_name]
    except KeyError:
        raise UnknownCheckType(type_name) from None
    return _import(dotted)()


def names() -> list[str]:
    return sorted(available())
