"""Replication stalled: the lab's simulator stops copying (stopped by PID), the replica keeps
the last beacon it got and ages; started again afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pytest_drcheck.lab.components.replication import ReplicationSimulator
from pytest_drcheck.lab.faults.daemons import stopped

if TYPE_CHECKING:
    from pytest_drcheck.lab.api import Lab


@contextlib.contextmanager
def stalled_replication(lab: Lab, source: str = "src01") -> Iterator[None]:
    lab.component(source, ReplicationSimulator)  # a LabError naming the host if it has none
    with stopped(lab, source, ReplicationSimulator.name):
        yield
