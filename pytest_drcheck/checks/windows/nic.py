"""nic on Windows: ``Get-NetIPConfiguration`` (addresses, default gateways, DNS servers, MAC)
and ``Get-NetIPInterface`` (IPv4 MTU, NlMtu) into the family's NicValue.

The commands print projections of those objects' documented properties as JSON; link-local
addresses and the loopback pseudo-interface are left out, as ``ip -j addr`` scope link and lo
are on Linux.
"""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any

from pytest_drcheck.model import CouldNotObserve

if TYPE_CHECKING:
    from pytest_drcheck.checks.base import CheckContext
    from pytest_drcheck.checks.nic import Interface, NicValue

CONFIG_COMMAND = (
    "ConvertTo-Json -Compress -Depth 4 @(Get-NetIPConfiguration -ErrorAction Stop | "
    "ForEach-Object { @{ alias = $_.InterfaceAlias; index = $_.InterfaceIndex; "
    "mac = [string]$_.NetAdapter.MacAddress; "
    "addresses = @(@($_.IPv4Address) + @($_.IPv6Address) | Where-Object { $_ } | "
    "ForEach-Object { [string]$_.IPAddress + '/' + [string]$_.PrefixLength }); "
    "gateways = @(@($_.IPv4DefaultGateway) + @($_.IPv6DefaultGateway) | Where-Object { $_ } | "
    "ForEach-Object { [string]$_.NextHop }); "
    "dns = @($_.DNSServer | ForEach-Object { $_.ServerAddresses }) } })")
MTU_COMMAND = ("Get-NetIPInterface -AddressFamily IPv4 -ErrorAction Stop | Select-Object "
               "InterfaceAlias, InterfaceIndex, NlMtu | ConvertTo-Json -Compress")
COMMANDS = (CONFIG_COMMAND, MTU_COMMAND)


def _list(value: Any) -> list[Any]:
    # ConvertTo-Json prints a one-element array as its element on Windows PowerShell 3/4.
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _load(text: str, what: str, host: str) -> list[Any]:
    try:
        return _list(json.loads(text or "[]"))
    except ValueError:
        raise CouldNotObserve(f"{what} on {host} printed no JSON: {text.strip()[:80]!r}"
                              ) from None


def _routable(address: str) -> bool:
    try:
        return not ipaddress.ip_interface(address).ip.is_link_local
    except ValueError:
        return False


def parse(config_json: str, mtu_json: str, host: str
          ) -> tuple[list[Interface], list[str], list[str]]:
    """(interfaces, default gateways, DNS servers)."""
    from pytest_drcheck.checks.nic import Interface

    mtus = {str(e.get("InterfaceAlias")): int(e.get("NlMtu") or 0)
            for e in _load(mtu_json, "Get-NetIPInterface", host) if isinstance(e, dict)}
    interfaces: list[Interface] = []
    gateways: set[str] = set()
    servers: list[str] = []
    for entry in _load(config_json, "Get-NetIPConfiguration", host):
        if not isinstance(entry, dict):
            continue
        alias = str(entry.get("alias", ""))
        if alias.startswith("Loopback Pseudo-Interface"):
            continue
        addresses = tuple(a for a in (str(x) for x in _list(entry.get("addresses")))
                          if _routable(a))
        mac = str(entry.get("mac") or "").replace("-", ":").lower() or None
        interfaces.append(Interface(alias, mac, mtus.get(alias, 0), addresses))
        gateways.update(str(g) for g in _list(entry.get("gateways")) if g)
        servers += [str(s) for s in _list(entry.get("dns")) if str(s) not in servers]
    return sorted(interfaces, key=lambda i: i.name), sorted(gateways), servers


def observe(ctx: CheckContext, prop: str) -> NicValue:
    from pytest_drcheck.checks.nic import NicValue

    interfaces, gateways, servers = parse(ctx.output(0).stdout, ctx.output(1).stdout,
                                          ctx.item.host)
    if prop == "dns_servers":
        return NicValue(nameservers=tuple(servers))
    if prop == "default_gateway":
        return NicValue(interfaces=tuple(interfaces), gateways=tuple(gateways))
    return NicValue(interfaces=tuple(interfaces))
