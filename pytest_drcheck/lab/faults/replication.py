"""Replication faults: the simulator stalled (stopped by PID; the replica keeps the last
beacon it got and ages; started again afterwards), and the replication and failback paths
broken the ways a site breaks them: the staging area's replication server down, the proxy
denying the DRS endpoint, the recovery instance's replication port black-holed for the
source."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pytest_drcheck.lab.components.proxy import Squid
from pytest_drcheck.lab.components.replication import ReplicationSimulator
from pytest_drcheck.lab.components.replication_server import ReplicationServer
from pytest_drcheck.lab.errors import LabError
from pytest_drcheck.lab.faults.base import in_force
from pytest_drcheck.lab.faults.daemons import stopped
from pytest_drcheck.lab.faults.network import firewall

if TYPE_CHECKING:
    from pytest_drcheck.lab.api import Lab


@contextlib.contextmanager
def stalled_replication(lab: Lab, source: str = "src01") -> Iterator[None]:
    lab.component(source, ReplicationSimulator)  # a LabError naming the host if it has none
    with stopped(lab, source, ReplicationSimulator.name):
        yield


@contextlib.contextmanager
def staging_down(lab: Lab, host: str = "staging01") -> Iterator[None]:
    """The staging area's replication server stopped: its port refuses."""
    lab.component(host, ReplicationServer)
    with stopped(lab, host, ReplicationServer.name):
        yield


@contextlib.contextmanager
def proxy_denies(lab: Lab, domain: str) -> Iterator[None]:
    """The proxy's allow-list no longer admits ``domain`` (a DRS endpoint, say): CONNECTs to
    it get 403."""
    host, squid = lab.find(Squid)
    if domain not in squid.allow:
        raise LabError(f"the proxy does not allow {domain} (it allows {', '.join(squid.allow)})")
    ctx = lab.context(host)
    with in_force(lab, "proxy_denies", host, domain):
        squid.write_allow_list(ctx, tuple(entry for entry in squid.allow if entry != domain))
        lab.restart(host, squid.name)
        try:
            yield
        finally:
            squid.write_allow_list(ctx, squid.allow)
            lab.restart(host, squid.name)


@contextlib.contextmanager
def failback_blocked(lab: Lab, instance: str = "app01", source: str = "src01") -> Iterator[None]:
    """The recovery instance drops the source's packets to its replication port (nftables in
    the instance): the source's connection times out."""
    port = lab.component(instance, ReplicationServer).port
    with firewall(lab, instance, port, "drop", source=lab.address(source)):
        yield
