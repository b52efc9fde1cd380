"""Logging faults: the collector accepts messages and throws them away."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pytest_drcheck.lab.components.syslog import RsyslogCollector
from pytest_drcheck.lab.faults.base import in_force

if TYPE_CHECKING:
    from pytest_drcheck.lab.api import Lab


@contextlib.contextmanager
def discarding(lab: Lab, host: str | None = None) -> Iterator[None]:
    """The collector keeps accepting on TCP and UDP 514 but throws every message away."""
    if host is None:
        host, collector = lab.find(RsyslogCollector)
    else:
        collector = lab.component(host, RsyslogCollector)
    ctx = lab.context(host)
    with in_force(lab, "discarding", host, "rsyslog accepts and drops every message"):
        collector.set_discarding(ctx, True)
        try:
            lab.restart(host, collector.name)
            yield
        finally:
            collector.set_discarding(ctx, False)
            lab.restart(host, collector.name)
