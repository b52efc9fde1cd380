"""nic: the instance's network configuration as observed on it, one result per property.

DR launches one NIC; secondary NICs and retained addresses come from post-launch actions, so
the count, the addresses (retain-IP: equal to the source server's; change-IP: inside the
target subnets), MTU, default route and DNS servers are each checked and reported on their own
(a wrong MTU and a missing NIC are two findings, not one).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pytest_drcheck.checks.base import Check, CheckContext, ExpansionError, Subject
from pytest_drcheck.model import Observation, PlanItem

COMMANDS = ("ip -j addr show", "ip -j route show default", "cat /etc/resolv.conf")
PROPERTIES = ("count", "names", "addresses", "mtu", "default_gateway", "dns_servers")
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


def parse_nameservers(resolv_conf: str) -> list[str]:
    return [parts[1] for parts in (line.split() for line in resolv_conf.splitlines())
            if len(parts) >= 2 and parts[0] == "nameserver"]


def _in_subnets(address: str, subnets: Sequence[str]) -> bool:
    ip = ipaddress.ip_interface(address).ip
    return any(ip in ipaddress.ip_network(subnet, strict=False) for subnet in subnets)


class NicCheck(Check):
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
        if mode == "retain" and "addresses" not in entry:
            raise ExpansionError("mode: retain needs 'addresses' (the source server's "
                                 "addresses, e.g. [10.0.1.5/24])", ".mode")
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
        subjects = []
        for prop in PROPERTIES:
            if prop == "addresses" and ("addresses" in entry or "subnets" in entry):
                subjects.append(Subject("addresses", {
                    "property": "addresses", "mode": mode or (
                        "retain" if "addresses" in entry else "change"),
                    "addresses": entry.get("addresses"), "subnets": entry.get("subnets")}))
            elif prop != "addresses" and prop in entry:
                subjects.append(Subject(prop, {"property": prop, "value": entry[prop]}))
        if not subjects:
            raise ExpansionError("state at least one of count, names, mode with addresses or "
                                 "subnets, mtu, default_gateway, dns_servers")
        return subjects

    def commands(self, item: PlanItem) -> Sequence[str]:
        return COMMANDS

    def evaluate(self, ctx: CheckContext) -> Observation:
        addr, route, resolv = ctx.outputs
        if not addr.ok:
            return Observation.failed("interfaces readable", "unreadable",
                                      f"cannot read interfaces: `ip -j addr` failed "
                                      f"({addr.stderr.strip() or addr.exit_status}); is "
                                      "iproute2 installed?")
        interfaces = parse_interfaces(addr.stdout)
        details = {"interfaces": [vars(i) for i in interfaces]}
        prop = ctx.params["property"]
        if prop == "count":
            return self._compare(str(ctx.params["value"]), str(len(interfaces)), details,
                                 f"{len(interfaces)} ({', '.join(i.name for i in interfaces)})")
        if prop == "names":
            return self._compare(", ".join(sorted(ctx.params["value"])),
                                 ", ".join(i.name for i in interfaces), details)
        if prop == "mtu":
            return self._mtu(ctx.params["value"], interfaces, details)
        if prop == "default_gateway":
            gateways = parse_default_gateways(route.stdout)
            expected = ctx.params["value"] or "no default route"
            return self._compare(expected, ", ".join(gateways) or "no default route", details)
        if prop == "dns_servers":
            return self._compare(", ".join(ctx.params["value"]),
                                 ", ".join(parse_nameservers(resolv.stdout)) or "none", details)
        return self._addresses(ctx.params, interfaces, details)

    @staticmethod
    def _compare(expected: str, observed: str, details: Mapping[str, Any],
                 shown: str | None = None) -> Observation:
        if expected == observed:
            return Observation.passed(expected, shown or observed, **details)
        return Observation.failed(expected, shown or observed,
                                  f"expected {expected}, observed {shown or observed}",
                                  **details)

    def _mtu(self, wanted: Any, interfaces: list[Interface],
             details: Mapping[str, Any]) -> Observation:
        by_name = {i.name: i.mtu for i in interfaces}
        expected = ({i.name: wanted for i in interfaces} if isinstance(wanted, int)
                    else dict(wanted))
        shown_expected = ", ".join(f"{n} {m}" for n, m in sorted(expected.items()))
        shown_observed = ", ".join(f"{n} {by_name.get(n, 'missing')}" for n in sorted(expected))
        return self._compare(shown_expected, shown_observed, details)

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
