"""The lab as tests use it: ``Lab.current()``, ``exec`` inside a host, and faults.

Every operation re-reads the state file and saves it after changing it, so that a Lab object
never works from a stale picture (the CLI in another terminal may have rebuilt the lab).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from pytest_drcheck.lab import faults, isolation, lifecycle, procs, realhost
from pytest_drcheck.lab import state as state_file
from pytest_drcheck.lab.components.base import Component, HostContext
from pytest_drcheck.lab.errors import LabError, LabNotUpError
from pytest_drcheck.lab.paths import LabPaths, state_dir_from_env
from pytest_drcheck.lab.site import LAB
from pytest_drcheck.lab.spawner import Spawner
from pytest_drcheck.lab.state import LabState
from pytest_drcheck.lab.topology import Host, Topology

C = TypeVar("C", bound=Component)


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates network namespaces): run it with sudo")


@dataclass(frozen=True)
class DaemonStatus:
    name: str
    pid: int
    alive: bool
    rss_kib: int


@dataclass(frozen=True)
class HostStatus:
    name: str
    netns: str
    addresses: tuple[str, ...]
    init_pid: int
    alive: bool
    daemons: tuple[DaemonStatus, ...]


@dataclass(frozen=True)
class LabStatus:
    state_dir: Path
    created: str
    complete: bool
    hosts: tuple[HostStatus, ...]
    breakers: tuple[str, ...]
    build_seconds: float
    # None when lab traffic cannot leave the machine; else what of the guard is missing.
    isolation_problem: str | None = None

    @property
    def all_alive(self) -> bool:
        return self.complete and all(h.alive and all(d.alive for d in h.daemons)
                                     for h in self.hosts)

    @property
    def rss_kib(self) -> int:
        return sum(d.rss_kib for h in self.hosts for d in h.daemons)


@dataclass(frozen=True)
class UpReport:
    # "built" (nothing was there), "rebuilt" (something was, but broken), "already up".
    action: Literal["built", "rebuilt", "already up"]
    reason: str | None
    seconds: float
    status: LabStatus


@dataclass(frozen=True)
class DownReport:
    was_up: bool
    seconds: float


class Lab:
    def __init__(self, state_dir: str | Path | None = None, topology: Topology = LAB) -> None:
        self.paths = LabPaths(Path(state_dir) if state_dir is not None else state_dir_from_env())
        self.topology = topology
        self._spawner = Spawner()

    @classmethod
    def current(cls, state_dir: str | Path | None = None, topology: Topology = LAB) -> Lab:
        """The lab that is up; LabNotUpError (one line) if there is none."""
        lab = cls(state_dir, topology)
        lab.state()
        return lab

    # -- state --------------------------------------------------------------------------------

    def state(self) -> LabState:
        return state_file.load(self.paths.state_file)

    def save(self, state: LabState) -> None:
        state_file.save(self.paths.state_file, state)

    def is_up(self) -> bool:
        try:
            self.state()
        except LabNotUpError:
            return False
        return True

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(host.name for host in self.topology.hosts)

    def address(self, host: str, nic: int = 0) -> str:
        return self._host(host).nics[nic].address

    @property
    def client_key(self) -> Path:
        return self.paths.client_key

    @property
    def known_hosts(self) -> Path:
        return self.paths.known_hosts

    # -- lifecycle ----------------------------------------------------------------------------

    def up(self) -> UpReport:
        """Make the lab healthy: nothing to do if it is; else tear down what is there and
        build. The caller holds ``lab_lock()`` (the CLI does).

        The isolation guard goes in first, before anything of the lab exists: from then on
        nothing addressed to the lab can leave the machine, however far the build gets."""
        require_root()
        started = time.monotonic()
        self.isolate_from_uplink()
        try:
            current: LabState | None = self.state()
        except LabNotUpError:
            current = None
        reason = None
        if current is not None:
            reason = lifecycle.health(current, self.topology, self.paths)
            if reason is None:
                return UpReport("already up", None, time.monotonic() - started, self.status())
            lifecycle.teardown(current, self.paths, self._spawner)
        try:
            lifecycle.build(self.topology, self.paths, self._spawner)
        except LabError as exc:
            if not self.paths.state_file.exists():
                raise  # failed before making anything
            raise LabError(f"{exc} (the half-built lab stays for inspection: "
                           "drcheck lab down removes it)") from None
        return UpReport("built" if current is None else "rebuilt", reason,
                        time.monotonic() - started, self.status())

    def down(self) -> DownReport:
        """Remove everything ``up`` made (idempotent), except the isolation guard: it is
        (re)installed first and kept, so that a lab address dialled later still goes
        nowhere."""
        require_root()
        started = time.monotonic()
        self.isolate_from_uplink()
        try:
            current: LabState | None = self.state()
        except LabNotUpError:
            current = None
        lifecycle.teardown(current, self.paths, self._spawner)
        return DownReport(current is not None, time.monotonic() - started)

    def isolate_from_uplink(self) -> isolation.Guard:
        """Install (idempotently) the guard that keeps lab traffic on the machine."""
        isolation.check_covered(self.topology)
        guard = isolation.Guard.of(self.topology)
        guard.install()
        return guard

    def isolation_problem(self) -> str | None:
        return isolation.Guard.of(self.topology).problem()

    def status(self) -> LabStatus:
        lab = self.state()
        hosts = []
        order = {name: index for index, name in enumerate(self.hosts)}
        for host in sorted(lab.hosts.values(), key=lambda h: (order.get(h.name, 1 << 30), h.name)):
            daemons = tuple(DaemonStatus(d.name, d.proc.pid, procs.is_running(d.proc),
                                         procs.rss_kib(d.proc)) for d in host.daemons.values())
            alive = host.init is not None and procs.is_running(host.init)
            hosts.append(HostStatus(host.name, host.netns, tuple(host.addresses),
                                    host.init.pid if host.init else 0, alive, daemons))
        return LabStatus(self.paths.root, lab.created, lab.complete, tuple(hosts),
                         tuple(f"{b.kind} on {b.host}: {b.detail} (pid {b.owner.pid})"
                               for b in lab.breakers), lab.build_seconds,
                         self.isolation_problem())

    # -- inside a host ------------------------------------------------------------------------

    def exec(self, host: str, argv: Sequence[str], timeout: float = 30.0,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``host`` (its namespaces, its /etc/hosts and resolv.conf).
        Raises HostCommandTimeout (a LabError) after ``timeout`` seconds, having killed it."""
        self._host(host)
        init = self.state().hosts[host].init
        if init is None:
            raise LabError(f"host {host} has no PID 1: run drcheck lab up")
        return realhost.host_exec(init, host, argv, timeout, input)

    def context(self, host: str) -> HostContext:
        return lifecycle.context(self.topology, self.paths, self._host(host).name)

    def component(self, host: str, kind: type[C]) -> C:
        for component in self._host(host).components:
            if isinstance(component, kind):
                return component
        raise LabError(f"host {host} runs no {kind.name}")

    def find(self, kind: type[C]) -> tuple[str, C]:
        """The (first) host running a component of that kind."""
        for host in self.topology.hosts:
            for component in host.components:
                if isinstance(component, kind):
                    return host.name, component
        raise LabError(f"no host in the lab runs {kind.name}")

    def _host(self, host: str) -> Host:
        try:
            return self.topology.host(host)
        except KeyError:
            raise LabError(f"no host {host!r} in the lab (hosts: {', '.join(self.hosts)})"
                           ) from None

    def _daemon(self, host: str, daemon: str) -> Component:
        component = self._host(host).component(daemon)
        if component is None:
            names = ", ".join(c.name for c in self._host(host).components) or "nothing"
            raise LabError(f"no daemon {daemon!r} on {host} (it runs {names})")
        return component

    # -- daemons ------------------------------------------------------------------------------

    def stop(self, host: str, daemon: str) -> None:
        """Stop a daemon by its recorded PID (the state keeps it, marked dead by status)."""
        self._daemon(host, daemon)
        lab = self.state()
        lifecycle.stop_daemon(lab, host, daemon, self._spawner)

    def start(self, host: str, daemon: str) -> None:
        """Start a daemon again (after ``stop`` or a config change) and wait until it answers."""
        component = self._daemon(host, daemon)
        lab = self.state()
        record = lab.hosts[host].daemons.get(daemon)
        if record is not None and procs.is_running(record.proc):
            raise LabError(f"{daemon} on {host} is already running (pid {record.proc.pid})")
        ctx = self.context(host)
        try:
            lifecycle.start_daemon(lab, ctx, component, self._spawner, self.paths)
        finally:
            self.save(lab)
        lifecycle.wait_ready([(ctx, component)], lab)

    def restart(self, host: str, daemon: str) -> None:
        self.stop(host, daemon)
        self.start(host, daemon)

    # -- faults (context managers that undo themselves; ``down`` cleans them anyway) ---------

    def dns_record(self, name: str, ip: str) -> AbstractContextManager[None]:
        """dnsmasq serves ``name`` A ``ip`` (changed or added) until the block ends."""
        return faults.dns_record(self, name, ip)

    def hosts_entry(self, host: str, name: str, ip: str) -> AbstractContextManager[None]:
        """``ip name`` appended to the host's /etc/hosts (in place) until the block ends."""
        return faults.hosts_entry(self, host, name, ip)

    def firewall(self, host: str, port: int, action: Literal["reject", "drop"] = "reject",
                 direction: Literal["input", "output"] = "input", source: str | None = None,
                 ) -> AbstractContextManager[None]:
        """nftables in the host: TCP/UDP ``port`` rejected (TCP reset) or dropped, for
        traffic to the host (input) or from it (output); only from ``source`` if given."""
        return faults.firewall(self, host, port, action, direction, source)

    def discarding(self, host: str | None = None) -> AbstractContextManager[None]:
        """The syslog collector stays up on its ports but drops every message it receives."""
        return faults.discarding(self, host)

    def isolate(self, host: str) -> AbstractContextManager[None]:
        """Drop everything on the host's interfaces but lo: connections to it time out."""
        return faults.isolate(self, host)

    def stopped(self, host: str, daemon: str) -> AbstractContextManager[None]:
        """The daemon is stopped (by PID) and started again afterwards."""
        self._daemon(host, daemon)
        return faults.stopped(self, host, daemon)

    def rotated_host_key(self, host: str) -> AbstractContextManager[None]:
        """sshd serves a new host key (known_hosts unchanged: clients see a mismatch)."""
        return faults.rotated_host_key(self, host)
