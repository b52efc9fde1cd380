"""DNS: dnsmasq for the on-premises zone, unbound as the upstream forwarder.

Together they reproduce hybrid DNS: instances ask dnsmasq, which answers ``corp.example``
itself and forwards everything else to unbound. unbound serves a few fixed "internet" names
and, being ``local-zone: "." static``, never recurses out of the lab.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import ClassVar

from pytest_drcheck.lab import probes
from pytest_drcheck.lab.components.base import Component, HostContext


@dataclass(frozen=True)
class Srv:
    name: str
    target: str
    port: int
    priority: int = 0
    weight: int = 100


@dataclass(frozen=True)
class Zone:
    """An on-premises zone. Names may be short (``app01``) or fully qualified."""

    domain: str
    addresses: tuple[tuple[str, str], ...]
    cnames: tuple[tuple[str, str], ...] = ()
    srv: tuple[Srv, ...] = ()

    def fqdn(self, name: str) -> str:
        name = name.rstrip(".").lower()
        return name if name == self.domain or name.endswith("." + self.domain) \
            else f"{name}.{self.domain}"


def _reverse_zones(addresses: list[str]) -> list[str]:
    """The /24 reverse zones of the addresses, so that reverse lookups of lab addresses are
    answered (or refused) here instead of being forwarded."""
    zones = set()
    for address in addresses:
        a, b, c, _ = address.split(".")
        zones.add(f"{c}.{b}.{a}.in-addr.arpa")
    return sorted(zones)


@dataclass(frozen=True)
class Dnsmasq(Component):
    name: ClassVar[str] = "dnsmasq"
    binary: ClassVar[str] = "dnsmasq"
    package: ClassVar[str] = "dnsmasq-base"

    zone: Zone
    upstream: str
    # (domain, server): sub-zones answered by another server (e.g. an AD domain's own DNS).
    forward: tuple[tuple[str, str], ...] = ()

    def config(self, ctx: HostContext) -> str:
        return str(ctx.dir / "dnsmasq.conf")

    def _overrides_file(self, ctx: HostContext) -> str:
        return str(ctx.dir / "dnsmasq-overrides.json")

    def overrides(self, ctx: HostContext) -> dict[str, str]:
        try:
            with open(self._overrides_file(ctx)) as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in dict(data).items()}

    def set_record(self, ctx: HostContext, name: str, address: str | None) -> str | None:
        """Serve ``address`` for ``name`` from now on (None: back to the zone's own data);
        return the override that was in place before. Takes effect on the next start."""
        if address is not None:
            ipaddress.IPv4Address(address)  # a typo should fail here, not as a dead dnsmasq
        fqdn = self.zone.fqdn(name)
        overrides = self.overrides(ctx)
        previous = overrides.pop(fqdn, None)
        if address is not None:
            overrides[fqdn] = address
        with open(self._overrides_file(ctx), "w") as handle:
            json.dump(overrides, handle, indent=1, sort_keys=True)
        self.prepare(ctx)
        return previous

    def prepare(self, ctx: HostContext) -> None:
        overrides = self.overrides(ctx)
        records = {self.zone.fqdn(name): address for name, address in self.zone.addresses}
        records.update(overrides)
        lines = [
            "# written by drcheck lab up",
            # Only this file and the upstream below: not the host's resolv.conf or /etc/hosts.
            "no-resolv", "no-hosts", "no-poll",
            *(f"listen-address={nic.address}" for nic in ctx.host.nics),
            "bind-interfaces",
            "port=53",
            # Stay root: the host is a namespace, and a dropped user would need an account.
            "user=root", "group=root",
            "pid-file=",
            "log-facility=-",
            # No cache: a breaker (a changed record, a stopped upstream) shows at once.
            "cache-size=0",
            # The zone (and the reverse zones of its addresses) are answered here, never
            # forwarded: a missing name is NXDOMAIN, like an authoritative server.
            f"local=/{self.zone.domain}/",
            *(f"local=/{zone}/" for zone in _reverse_zones(list(records.values()))),
            *(f"host-record={name},{address}" for name, address in sorted(records.items())),
            # An A override of a CNAME's name replaces the CNAME while it lasts.
            *(f"cname={self.zone.fqdn(alias)},{self.zone.fqdn(target)}"
              for alias, target in self.zone.cnames if self.zone.fqdn(alias) not in overrides),
            *(f"srv-host={s.name},{s.target},{s.port},{s.priority},{s.weight}"
              for s in self.zone.srv),
            # More specific than local=/<zone>/, so these sub-zones are forwarded.
            *(f"server=/{domain}/{server}" for domain, server in self.forward),
            f"server={self.upstream}",
        ]
        with open(self.config(ctx), "w") as handle:
            handle.write("\n".join(lines) + "\n")

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        return [binary, "-k", "-C", self.config(ctx)]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        name = self.zone.fqdn(self.zone.addresses[0][0])
        if probes.dns_answers(ctx.host.address, name, "A", timeout) is None:
            return f"no DNS answer from {ctx.host.address}"
        return None


@dataclass(frozen=True)
class Unbound(Component):
    name: ClassVar[str] = "unbound"
    binary: ClassVar[str] = "unbound"
    package: ClassVar[str] = "unbound"

    # (name, IPv4) pairs: the only "internet" names that exist.
    local_data: tuple[tuple[str, str], ...]
    allow: tuple[str, ...]

    def config(self, ctx: HostContext) -> str:
        return str(ctx.dir / "unbound.conf")

    def prepare(self, ctx: HostContext) -> None:
        lines = [
            "# written by drcheck lab up",
            "server:",
            *(f"    interface: {nic.address}" for nic in ctx.host.nics),
            "    port: 53",
            "    do-ip6: no",
            "    do-daemonize: no",
            '    username: ""',
            '    chroot: ""',
            f'    directory: "{ctx.dir}"',
            '    pidfile: ""',
            "    use-syslog: no",
            '    logfile: ""',
            "    verbosity: 1",
            "    num-threads: 1",
            "    msg-cache-size: 1m",
            "    rrset-cache-size: 2m",
            # No validator: there is no trust anchor to fetch offline.
            '    module-config: "iterator"',
            "    access-control: 0.0.0.0/0 refuse",
            *(f"    access-control: {net} allow" for net in self.allow),
            # Never recurse: anything not listed below is NXDOMAIN, so nothing leaves the lab.
            '    local-zone: "." static',
            *(f'    local-data: "{name.rstrip(".")}. A {address}"'
              for name, address in self.local_data),
            "remote-control:",
            "    control-enable: no",
        ]
        with open(self.config(ctx), "w") as handle:
            handle.write("\n".join(lines) + "\n")

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        return [binary, "-d", "-c", self.config(ctx)]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        name = self.local_data[0][0]
        if not probes.dns_answers(ctx.host.address, name, "A", timeout):
            return f"no answer for {name} from {ctx.host.address}"
        return None
