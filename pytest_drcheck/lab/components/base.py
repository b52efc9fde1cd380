"""The contract of a lab daemon.

Adding a daemon to the lab is a new module here with one ``Component`` subclass, plus a line
in ``topology.py`` that puts an instance of it on a host. The lifecycle does the rest: it
writes the component's files (``prepare``), starts ``argv`` inside the host in the foreground,
records the PID, and waits until ``probe`` sees the daemon answer on a real socket.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pytest_drcheck.lab.paths import LabPaths

if TYPE_CHECKING:
    from pytest_drcheck.lab.topology import Host, Topology


@dataclass(frozen=True)
class HostContext:
    """What a component may know: its host, the lab's topology and where files go."""

    host: Host
    topology: Topology
    paths: LabPaths

    @property
    def dir(self) -> Path:
        """The host's private directory under the state dir (configs, keys, logs)."""
        return self.paths.host_dir(self.host.name)


class Component(abc.ABC):
    """One foreground daemon on one host. Subclasses are frozen dataclasses (hashable, and
    their repr is part of the topology's fingerprint, so changing one rebuilds the lab)."""

    # Key in the state file, in ``status`` and in ``lab.stopped(host, name)``.
    name: ClassVar[str]
    # Executable looked up on PATH, and the Debian package named when it is missing.
    binary: ClassVar[str]
    package: ClassVar[str]

    def prepare(self, ctx: HostContext) -> None:  # noqa: B027 - optional hook, not abstract
        """Write config files and keys under ``ctx.dir``; called once per ``up``."""

    @abc.abstractmethod
    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        """The foreground command line; ``binary`` is the resolved absolute path."""

    @abc.abstractmethod
    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        """None when the daemon answers like the real service; otherwise why not, in a few
        words. Runs from the root namespace against the host's lab address."""

    def known_hosts(self, ctx: HostContext) -> list[str]:
        """known_hosts lines this component contributes (SSH servers)."""
        return []

    @property
    def comm(self) -> str:
        """The process name after exec, used to find the daemon's PID under nsenter."""
        return self.binary[:15]

    @property
    def runs_as(self) -> str:
        """The name the daemon runs under once started (``ps``); ``comm`` unless a start
        script execs it later."""
        return self.comm
