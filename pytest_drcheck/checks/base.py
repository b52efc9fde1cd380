"""The contract of a check type, and what the engine hands a check when it runs."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pytest_drcheck.model import Observation, PlanItem
from pytest_drcheck.targets.base import CommandResult, Target


class ExpansionError(Exception):
    """An inventory entry is valid against the schema but cannot be expanded (a name it refers
    to does not exist, say). The message is the 'what is wrong and the fix' part of one line."""

    def __init__(self, message: str, place_suffix: str = "",
                 site_path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        # Appended to the entry's place, e.g. ".resolver", to point at the exact key.
        self.place_suffix = place_suffix
        # The mistake is in the inventory's site: section, at this path under ``site``
        # (e.g. ("egress", "policy", 2, "via")): reported there, not at the entry using it.
        self.site_path = site_path


def site_service(services: Mapping[str, Any], name: str, what: str, where: str, place: str,
                 fix: str = "define it there") -> Any:
    """``services[name]`` from a ``site:`` section, or the entry's mistake naming what exists."""
    if name not in services:
        known = ", ".join(sorted(services)) or "none defined"
        raise ExpansionError(f"{what} '{name}' is not in {where} ({known}); {fix}", place)
    return services[name]


@dataclass(frozen=True)
class Subject:
    """One thing a check entry is about; becomes one test. ``name`` goes in the test id."""

    name: str
    params: Mapping[str, Any]


@dataclass(frozen=True)
class CheckContext:
    item: PlanItem
    target: Target
    # Outputs of ``commands(item)``, in the same order, from the host's batch.
    outputs: Sequence[CommandResult]
    # Seconds left for this check; network waits must not exceed it.
    timeout: float
    # Other inventory hosts' targets (e.g. a backup server probing back to this host).
    target_of: Callable[[str], Target]

    @property
    def params(self) -> Mapping[str, Any]:
        return self.item.params


class Check(abc.ABC):
    """A check type. Subclasses set ``type_name`` and ``entry_schema`` and implement evaluate."""

    type_name: ClassVar[str]
    # JSON Schema of one entry under ``checks.<type_name>`` (validated at inventory load).
    entry_schema: ClassVar[Mapping[str, Any]]
    # JSON Schema of this family's section under ``site:`` (e.g. site.dns), if it has one.
    site_key: ClassVar[str | None] = None
    site_schema: ClassVar[Mapping[str, Any] | None] = None
    # Default per-check timeout in seconds when the inventory sets none.
    default_timeout: ClassVar[float] = 30.0
    # True for checks that only open streams (no command, no CPU on the host): the engine runs
    # many of them at once per host, so a matrix of timing-out cells costs about one timeout.
    light: ClassVar[bool] = False

    @abc.abstractmethod
    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        """Turn one inventory entry into subjects, filling defaults from the site's services."""

    def site_host_references(self, section: Mapping[str, Any]
                             ) -> Sequence[tuple[tuple[str | int, ...], str]]:
        """Inventory host names this family's ``site:`` section refers to (a collector whose
        log is searched through its own connection, say), each with its path inside the
        section. The loader reports every name that is not a host of the inventory."""
        return ()

    def commands(self, item: PlanItem) -> Sequence[str]:
        """Shell commands to run on the host before evaluate (batched per host)."""
        return ()

    def needs_connection(self, item: PlanItem) -> bool:
        """False for checks observed from the runner (cloud APIs): they still run, from the
        runner, when the host cannot be reached, and their vantage is the runner."""
        return True

    @abc.abstractmethod
    def evaluate(self, ctx: CheckContext) -> Observation:
        """Observe and compare. Network waits must respect ``ctx.timeout``."""
