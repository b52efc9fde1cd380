"""The types a lab is made of: networks, NICs, hosts and the topology that holds them.

The one sandbox built from them is ``site.LAB``; tests may build other topologies.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

from pytest_drcheck.lab.components.base import Component

PREFIX = "drlab"
# The address space the lab owns: every lab network lies inside it, and the isolation guard
# (isolation.py) keeps all of it from leaving the machine, whatever state the lab is in.
# 10.76/16 belongs to the scale benchmark's sites (benchmarks/scale_site.py): guarded by the
# same guard, so it stays guarded after a benchmark ends or dies.
LAB_PREFIXES = ("10.76.0.0/16", "10.77.0.0/16", "10.78.0.0/16", "10.99.0.0/16")
# Bumped when the way the lab is built changes without the topology changing, so that
# ``up`` rebuilds a lab made by older code instead of calling it healthy.
BUILD_VERSION = 1


@dataclass(frozen=True)
class Network:
    """A layer-2 segment: a bridge in the root namespace. ``gateway`` is the root namespace's
    address on it; None means the root namespace cannot reach the segment at all (the future
    "fake internet" sits behind a proxy host only)."""

    bridge: str
    cidr: str
    gateway: str | None

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.cidr).prefixlen


@dataclass(frozen=True)
class Nic:
    network: Network
    address: str


@dataclass(frozen=True)
class Host:
    name: str
    nics: tuple[Nic, ...]
    components: tuple[Component, ...] = ()
    # What the host's /etc/resolv.conf says (bind-mounted by ``ip netns exec``).
    search: tuple[str, ...] = ("corp.example",)
    nameservers: tuple[str, ...] = ("10.77.0.53",)
    domain: str = "corp.example"

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def address(self) -> str:
        """The primary (eth0) address, the one the drill and known_hosts use first."""
        return self.nics[0].address

    def ifname(self, index: int) -> str:
        return f"eth{index}"

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)

    def resolv_conf(self) -> str:
        search = f"search {' '.join(self.search)}\n" if self.search else ""
        return search + "".join(f"nameserver {ns}\n" for ns in self.nameservers)

    def hosts_file(self) -> str:
        return f"127.0.0.1 localhost\n{self.address} {self.name}.{self.domain} {self.name}\n"


def veth_name(host: str, index: int) -> str:
    """Root-side name of a host's NIC ``index``: ``drlab0-app01``, within IFNAMSIZ (15).
    Long host names get a short hash so that names stay unique and stable."""
    name = f"{PREFIX}{index}-{host}"
    if len(name) <= 15:
        return name
    digest = hashlib.sha1(host.encode()).hexdigest()[:4]
    return f"{PREFIX}{index}-{host[:4]}{digest}"


@dataclass(frozen=True)
class Topology:
    networks: tuple[Network, ...]
    hosts: tuple[Host, ...]
    build_version: int = field(default=BUILD_VERSION)
    reserved: tuple[str, ...] = LAB_PREFIXES

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def fingerprint(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]
