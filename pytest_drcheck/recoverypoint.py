"""When a recovery instance's data was taken: the recovery point the measured RPO ends at.

Best first: the point in time a target knows for its own instance (the aws extra's targets
answer with DRS's point-in-time snapshot through ``recovery_point``: a seam, so nothing here
imports the AWS layer), else the drill's launch time (DRS's job creation through the
``pytest_dr_launched_at`` hook, or ``--dr-launched-at``), which the plugin hands to the engine
with the run's settings and the engine to each check's context: one value per run, never
module state (in-process pytest runs in one interpreter may hold two copies of a module).
"When checking started" is no recovery point: the data was taken before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class RecoveryPoint:
    at: datetime
    # Where the time comes from, in words ("DRS point-in-time snapshot", "--dr-launched-at").
    source: str


@runtime_checkable
class KnowsRecoveryPoint(Protocol):
    """A target that knows its instance's recovery point (or None when it does not)."""

    def recovery_point(self, timeout: float) -> RecoveryPoint | None: ...
