"""nic: the instance's network configuration as observed on it, one result per property.

DR launches one NIC; secondary NICs and retained addresses come from post-launch actions, so
the count, the addresses (retain-IP: equal to the source server's; change-IP: inside the
target subnets), MTU, default route and DNS servers are each checked and reported on their own
(a wrong MTU and a missing NIC are two findings, not one).

Every entry also has an ``interfaces`` test: the one observation of the interfaces (``ip -j``)
that count, names, addresses, MTU and the default gateway are judged from. It passes whenever
the interfaces could be read, and those properties require it: when they cannot be read
(iproute2 missing, the command timed out), that is reported once, as ``interfaces``, and the
properties are skipped. It is a test of its own, not one of the properties, because a
property that is observed *wrong* (one NIC instead of two) must not skip the others.
``dns_servers`` comes from /etc/resolv.conf and stands alone.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pytest_drcheck.checks.base import Check, CheckContext, ExpansionError, Subject
from pytest_drcheck.checks.source_addresses import RecordsSourceAddresses, SourceAddresses
from pytest_drcheck.model import CouldNotObserve, Observation, PlanItem

# Re-exported for families that still import it from here (directory).
from pytest_drcheck.net.resolvconf import parse_nameservers as parse_nameservers
from pytest_drcheck.targets.base import TargetError

COMMANDS = ("ip -j addr show", "ip -j route show default", "cat /etc/resolv.conf")
ADDR, ROUTE, RESOLV = range(3)
PROPERTIES = ("count", "names", "addresses", "mtu", "default_gateway", "dns_servers")
# The subject that carries the observation of the interfaces, and the tests that need it.
INTERFACES = "interfaces"
NEEDS_INTERFACES = ("count", "names", "addresses", "mtu", "default_gateway")
# A shell's status for a command it cannot find; cat's for a file it cannot read.
_NOT_FOUND = 127
_CAT_FAILED = 1
T = TypeVar("T")
RECORDED = ("the source server's recorded addresses",)
_CIDR = {"type": "string", "minLength": 3, "x-expect": "an address with prefix, e.g. 10.0.1.5/24"}


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str | None
    mtu: int
    addresses: tuple[str, ...]  # "10.77.0.13/24"


def parse_interfaces(ip_addr_json: str) -> list[Interface]:
    """Interfaces from `ip -j addr show`, loopback excluded."""
    interfaces = []
    for link in json.loads(ip_addr_json or "[]"):
        if link.get("link_type") == "loopback" or link.get("ifname") == "lo":
            continue
        addresses = tuple(f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                          if a.get("family") in ("inet", "inet6")
                          and a.get("scope") != "link")
        interfaces.append(Interface(link["ifname"].split("@")[0], link.get("address"),
                                    int(link.get("mtu", 0)), addresses))
    return sorted(interfaces, key=lambda i: i.name)


def parse_default_gateways(ip_route_json: str) -> list[str]:
    return sorted({r["gateway"] for r in json.loads(ip_route_json or "[]") if "gateway" in r})


def _in_subnets(address: str, subnets: Sequence[str]) -> bool:
    ip = ipaddress.ip_interface(address).ip
    return any(ip in ipaddress.ip_network(subnet, strict=False) for subnet in subnets)


@dataclass(frozen=True)
class NicValue:
    """What one nic test observed: the interfaces, and for default_gateway the gateways, for
    dns_servers the nameservers (None where the test does not look)."""

    interfaces: tuple[Interface, ...] | None = None
    gateways: tuple[str, ...] | None = None
    nameservers: tuple[str, ...] | None = None
    # retain mode without addresses in the inventory: the source server's, as recorded.
    recorded: SourceAddresses | None = None


class NicCheck(Check[NicValue]):
    type_name: ClassVar[str] = "nic"
    default_timeout: ClassVar[float] = 10.0
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "count": {"type": "integer", "minimum": 0, "maximum": 1024},
            "names": {"type": "array", "items": {"type": "string"}},
            "mode": {"enum": ["retain", "change"]},
            "addresses": {"type": "array", "items": _CIDR, "minItems": 1,
                          "x-expect": "a list of addresses with prefix (retain mode)"},
            "subnets": {"type": "array", "items": _CIDR, "minItems": 1,
                        "x-expect": "a list of CIDRs the addresses must lie in (change mode)"},
            "mtu": {"anyOf": [{"type": "integer", "minimum": 68, "maximum": 65536},
                              {"type": "object",
                               "additionalProperties": {"type": "integer", "minimum": 68,
                                                        "maximum": 65536}}],
                    "x-expect": "an MTU for every NIC (e.g. 9001) or a mapping NIC -> MTU"},
            "default_gateway": {"anyOf": [{"type": "string"}, {"type": "null"}],
                                "x-expect": "the gateway address, or null for no default "
                                            "route"},
            "dns_servers": {"type": "array", "items": {"type": "string"}},
        },
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        mode = entry.get("mode")
        # mode: retain without addresses: the source server's, as its target records them.
        if mode == "change" and "subnets" not in entry:
            raise ExpansionError("mode: change needs 'subnets' (the target subnets' CIDRs)",
                                 ".mode")
        if "addresses" in entry and "subnets" in entry:
            raise ExpansionError("give 'addresses' (retain) or 'subnets' (change), not both",
                                 ".subnets")
        for key in ("addresses", "subnets"):
            for value in entry.get(key, []):
                try:
                    ipaddress.ip_interface(value)
                except ValueError:
                    raise ExpansionError(f"'{value}' is not an address with prefix",
                                         f".{key}") from None
        requires = (f"nic[{INTERFACES}]",)
        subjects = []
        for prop in PROPERTIES:
            if prop == "addresses" and (mode or "addresses" in entry or "subnets" in entry):
                subjects.append(Subject("addresses", {
                    "property": "addresses", "mode": mode or (
                        "retain" if "addresses" in entry else "change"),
                    "addresses": entry.get("addresses"), "subnets": entry.get("subnets")},
                    requires))
            elif prop != "addresses" and prop in entry:
                subjects.append(Subject(prop, {"property": prop, "value": entry[prop]},
                                        requires if prop in NEEDS_INTERFACES else ()))
        if not subjects:
            raise ExpansionError("state at least one of count, names, mode with addresses or "
                                 "subnets, mtu, default_gateway, dns_servers")
        if any(s.requires for s in subjects):
            subjects.insert(0, Subject(INTERFACES, {"property": INTERFACES}))
        return subjects

    def commands(self, item: PlanItem) -> Sequence[str]:
        # Every test names all three: the host's batch runs each command once.
        if item.platform == "windows":  # Get-NetIPConfiguration (checks/windows/nic.py)
            from pytest_drcheck.checks.windows.nic import COMMANDS as WINDOWS

            return WINDOWS
        return COMMANDS

    def expected(self, item: PlanItem) -> str:
        prop = item.params["property"]
        if prop == INTERFACES:
            return "the interfaces readable (ip -j addr show)"
        if prop == "addresses":
            if item.params["mode"] == "retain":
                return f"retain {', '.join(sorted(item.params['addresses'] or RECORDED))}"
            return f"every address in {', '.join(item.params['subnets'])}"
        if prop == "mtu":
            wanted = item.params["value"]
            return (f"MTU {wanted}" if isinstance(wanted, int)
                    else ", ".join(f"{n} {m}" for n, m in sorted(wanted.items())))
        if prop == "default_gateway":
            return item.params["value"] or "no default route"
        value = item.params["value"]
        return ", ".join(sorted(value) if prop == "names" else value) if isinstance(
            value, (list, tuple)) else str(value)

    def observe(self, ctx: CheckContext) -> NicValue:
        prop = ctx.params["property"]
        if ctx.item.platform == "windows":
            from pytest_drcheck.checks.windows import nic as windows

            return windows.observe(ctx, prop)
        if prop == "dns_servers":
            return NicValue(nameservers=tuple(parse_nameservers(_resolv_conf(ctx))))
        addr = ctx.output(ADDR, accept=(0, _NOT_FOUND))
        if addr.exit_status == _NOT_FOUND:
            raise CouldNotObserve(f"cannot read interfaces: `ip` is not installed on "
                                  f"{ctx.item.host} (command not found); is iproute2 "
                                  "installed?")
        interfaces = tuple(_parsed(parse_interfaces, addr.stdout, "ip -j addr show"))
        if prop == "addresses" and ctx.params["mode"] == "retain" and not ctx.params["addresses"]:
            return NicValue(interfaces=interfaces, recorded=_recorded(ctx))
        if prop != "default_gateway":
            return NicValue(interfaces=interfaces)
        route = ctx.output(ROUTE)
        gateways = tuple(_parsed(parse_default_gateways, route.stdout,
                                 "ip -j route show default"))
        return NicValue(interfaces=interfaces, gateways=gateways)

    def judge(self, item: PlanItem, value: NicValue) -> Observation:
        prop = item.params["property"]
        interfaces = list(value.interfaces or ())
        details = {"interfaces": [vars(i) for i in interfaces]}
        if prop == INTERFACES:
            shown = ", ".join(i.name for i in interfaces) or "none but lo"
            return Observation.passed(self.expected(item), f"{len(interfaces)} ({shown})",
                                      **details)
        if prop == "count":
            return self._compare(str(item.params["value"]), str(len(interfaces)), details,
                                 f"{len(interfaces)} ({', '.join(i.name for i in interfaces)})")
        if prop == "names":
            return self._compare(", ".join(sorted(item.params["value"])),
                                 ", ".join(i.name for i in interfaces), details)
        if prop == "mtu":
            return self._mtu(item.params["value"], interfaces, details)
        if prop == "default_gateway":
            expected = item.params["value"] or "no default route"
            return self._compare(expected, ", ".join(value.gateways or ()) or "no default route",
                                 details)
        if prop == "dns_servers":
            return self._compare(", ".join(item.params["value"]),
                                 ", ".join(value.nameservers or ()) or "none", {})
        if value.recorded is not None:
            return _recorded_addresses(value.recorded, interfaces, details)
        return self._addresses(item.params, interfaces, details)

    @staticmethod
    def _compare(expected: str, observed: str, details: Mapping[str, Any],
                 shown: str | None = None) -> Observation:
        if expected == observed:
            return Observation.passed(expected, shown or observed, **details)
        return Observation.failed(expected, shown or observed,
                                  f"expected {expected}, observed {shown or observed}",
                                  **details)

    @classmethod
    def _mtu(cls, wanted: Any, interfaces: list[Interface],
             details: Mapping[str, Any]) -> Observation:
        by_name = {i.name: i.mtu for i in interfaces}
        expected = ({i.name: wanted for i in interfaces} if isinstance(wanted, int)
                    else dict(wanted))
        shown_expected = ", ".join(f"{n} {m}" for n, m in sorted(expected.items()))
        shown_observed = ", ".join(f"{n} {by_name.get(n, 'missing')}" for n in sorted(expected))
        return cls._compare(shown_expected, shown_observed, details)

    @staticmethod
    def _addresses(params: Mapping[str, Any], interfaces: list[Interface],
                   details: Mapping[str, Any]) -> Observation:
        observed = sorted({a for i in interfaces for a in i.addresses})
        shown = ", ".join(observed) or "none"
        if params["mode"] == "retain":
            expected = sorted(params["addresses"])
            text = f"retain {', '.join(expected)}"
            missing = [a for a in expected if a not in observed]
            extra = [a for a in observed if a not in expected]
            if not missing and not extra:
                return Observation.passed(text, shown, **details)
            parts = [f"missing {', '.join(missing)}"] if missing else []
            parts += [f"unexpected {', '.join(extra)}"] if extra else []
            return Observation.failed(text, shown, f"expected {text} (source server's "
                                      f"addresses), observed {shown}: {'; '.join(parts)}",
                                      **details)
        subnets = list(params["subnets"])
        text = f"every address in {', '.join(subnets)}"
        outside = [a for a in observed if not _in_subnets(a, subnets)]
        if observed and not outside:
            return Observation.passed(text, shown, **details)
        reason = (f"{', '.join(outside)} outside the target subnets" if outside
                  else "no address at all")
        return Observation.failed(text, shown, f"expected {text}, observed {shown}: {reason}",
                                  **details)


def _resolv_conf(ctx: CheckContext) -> str:
    """/etc/resolv.conf of the host; a missing file is an empty configuration (no server)."""
    result = ctx.output(RESOLV, accept=(0, _CAT_FAILED))
    if result.exit_status == _CAT_FAILED and "No such file" not in result.stderr:
        raise CouldNotObserve(f"cannot read /etc/resolv.conf on {ctx.item.host}: "
                              f"{result.stderr.strip() or 'cat failed'}")
    return result.stdout


def _parsed(parse: Callable[[str], Sequence[T]], text: str, command: str) -> list[T]:
    """``parse(text)``; output that is not what iproute2 prints could not be observed."""
    try:
        return list(parse(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise CouldNotObserve(f"`{command}` printed something that is not iproute2's JSON "
                              f"({type(exc).__name__}: {exc})") from None


def _recorded(ctx: CheckContext) -> SourceAddresses:
    """The source server's addresses as the host's target records them (retain mode without
    addresses): what cannot be read, or was never recorded, could not be observed."""
    target, host = ctx.target, ctx.item.host
    if not isinstance(target, RecordsSourceAddresses):
        raise CouldNotObserve(f"mode: retain without addresses needs the source server's "
                              f"recorded addresses, and nothing records them for {host}: list "
                              "them (addresses: [10.0.1.5/24]) or find the host through DRS "
                              "(drs: {source_server_id: ...})")
    try:
        recorded = target.source_addresses(ctx.timeout)
    except TargetError as exc:
        raise CouldNotObserve(f"cannot read the source server's recorded addresses of {host}: "
                              f"{exc}") from None
    if not recorded.addresses:
        raise CouldNotObserve(f"{recorded.origin} has no IP address recorded, so there is "
                              "nothing to retain: list the addresses in the inventory")
    return recorded


def _recorded_addresses(recorded: SourceAddresses, interfaces: list[Interface],
                        details: Mapping[str, Any]) -> Observation:
    """Retain mode against recorded bare IPs: the instance's addresses without prefix."""
    observed = sorted({str(ipaddress.ip_interface(a).ip) for i in interfaces
                       for a in i.addresses})
    shown = ", ".join(observed) or "none"
    text = f"retain {', '.join(recorded.addresses)}"
    missing = [a for a in recorded.addresses if a not in observed]
    extra = [a for a in observed if a not in recorded.addresses]
    if not missing and not extra:
        return Observation.passed(text, shown, **details)
    parts = [f"missing {', '.join(missing)}"] if missing else []
    parts += [f"unexpected {', '.join(extra)}"] if extra else []
    caveat = f" ({recorded.caveat})" if recorded.caveat else ""
    return Observation.failed(text, shown, f"expected {text} (recorded for {recorded.origin}), "
                              f"observed {shown}: {'; '.join(parts)}{caveat}", **details)
