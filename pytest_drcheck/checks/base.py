"""The contract of a check type, and what the engine hands a check when it runs.

A check family *observes*, then *judges* (goss's split between ``system/`` and the validator):

- ``observe(ctx)`` gathers what the host shows and returns it as a value of the family's own
  type, or raises ``CouldNotObserve`` with the real cause (a command that timed out or is
  missing, a resolver that failed, a name that does not resolve, a stream that could not be
  opened where the stream itself is not what is being checked).
- ``judge(item, value)`` compares the expectation with that value and says passed or failed
  (or skipped, when the property does not apply). It never sees "could not observe": the
  engine reports that as an ERROR outcome with the cause, so it is never a pass and never a
  wrong value, whatever a family does.

Command outputs are read through ``CheckContext.output``, which raises ``CouldNotObserve``
for a command that timed out, is missing, did not come back from the batch or exited with a
status the family did not declare meaningful: a timeout can never be read as data.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, final

from pytest_drcheck.model import Observation, Outcome, PlanItem
from pytest_drcheck.recoverypoint import RecoveryPoint
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
    """One thing a check entry is about; becomes one test. ``name`` goes in the test id.

    ``requires`` names other tests of the same host (``check[subject]``, e.g.
    ``agent[clamav/running]``) that must pass first: when one of them does not, this one is
    skipped with that reason instead of stacking a second failure for the same cause.
    """

    name: str
    params: Mapping[str, Any]
    requires: tuple[str, ...] = ()


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
    # The per-command timeout the batch ran under (for messages).
    command_timeout: float = field(default=0.0)
    # The drill's launch time when one was given (--dr-launched-at, DRS's job): a recovery
    # point for checks that measure data loss.
    drill_launch: RecoveryPoint | None = None

    @property
    def params(self) -> Mapping[str, Any]:
        return self.item.params

    def output(self, index: int, accept: Collection[int] = (0,), shown: str | None = None
               ) -> CommandResult:
        """The ``index``-th command's result, if it was observed: exited with a status in
        ``accept``. Otherwise raise ``CouldNotObserve`` naming the command (or ``shown``, what
        a long script runs) and the cause (timed out, not found on the host, lost from the
        batch, failed with its stderr)."""
        return self.outputs[index].on(self.item.host, self.command_timeout).require(
            accept, shown)


ValueT = TypeVar("ValueT")


class Check(abc.ABC, Generic[ValueT]):
    """A check type. Subclasses set ``type_name`` and ``entry_schema`` and implement
    ``expand``, ``observe`` and ``judge``."""

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

    def expected(self, item: PlanItem) -> str:
        """What the check expects, in words (shown when it could not observe)."""
        return "an observation"

    @abc.abstractmethod
    def observe(self, ctx: CheckContext) -> ValueT:
        """What the host shows for this item, or ``CouldNotObserve`` with the cause. Network
        waits must respect ``ctx.timeout``."""

    @abc.abstractmethod
    def judge(self, item: PlanItem, value: ValueT) -> Observation:
        """Passed or failed (or skipped: does not apply) for an observed value."""

    @final
    def evaluate(self, ctx: CheckContext) -> Observation:
        """Observe, then judge. ``CouldNotObserve`` propagates to the engine, which reports
        it as an error with its cause; a judge cannot report one."""
        verdict = self.judge(ctx.item, self.observe(ctx))
        if verdict.outcome is Outcome.ERROR:
            raise TypeError(f"{type(self).__name__}.judge returned an error; raise "
                            "CouldNotObserve from observe instead")
        return verdict
