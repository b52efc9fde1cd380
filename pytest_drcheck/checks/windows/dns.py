"""dns on Windows: ``Resolve-DnsName`` into the family's DnsLookup.

The system answer is Resolve-DnsName's default (hosts file, cache, then DNS, as applications
see it); a second query with ``-DnsOnly -NoHostsFile`` is what DNS alone answers, and an answer
DNS does not give is flagged as served from the hosts file (the family's ``from_hosts_file``).
A named resolver is asked with ``-Server`` (port 53 only: Resolve-DnsName has no port; another
port goes through the family's own query over the host's stream, which needs ssh).

Each command prints JSON: ``{"records": [...]}`` (the fields below, Type and Section as text)
or ``{"error": FullyQualifiedErrorId, "message": ...}``. NXDOMAIN (DNS_ERROR_RCODE_NAME_ERROR)
and no record of the type (DNS_INFO_NO_RECORDS) are answers; a timeout, SERVFAIL or a refusal
could not be observed, naming the error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_drcheck.model import CouldNotObserve
from pytest_drcheck.net.dnsquery import normalise
from pytest_drcheck.targets.powershell_batch import ps_quote

if TYPE_CHECKING:
    from pytest_drcheck.checks.base import CheckContext
    from pytest_drcheck.checks.dns import DnsLookup, DnsParams

_FIELDS = ("Name, @{n='Type';e={[string]$_.Type}}, @{n='Section';e={[string]$_.Section}}, "
           "IPAddress, NameHost, NameTarget, Priority, Weight, Port")
DNS_ONLY = "-DnsOnly -NoHostsFile"
SYSTEM_VIA = "the system resolver (Resolve-DnsName)"
_NOT_FOUND = {"DNS_ERROR_RCODE_NAME_ERROR": "NXDOMAIN", "DNS_INFO_NO_RECORDS": "NOERROR"}


def resolve_command(name: str, record_type: str, options: str = "") -> str:
    # record_type is one of the schema's RECORD_TYPES; options are our own constants.
    extra = f" {options}" if options else ""
    return (f"try {{ $r = @(Resolve-DnsName -Name {ps_quote(name)} -Type {record_type}{extra} "
            f"-ErrorAction Stop | Select-Object {_FIELDS}); "
            "ConvertTo-Json -Compress -Depth 3 @{ records = $r } } catch { "
            "ConvertTo-Json -Compress @{ error = [string]$_.FullyQualifiedErrorId; "
            "message = [string]$_.Exception.Message } }")


def server_options(host: str) -> str:
    return f"-Server {ps_quote(host)} {DNS_ONLY}"


def commands(params: DnsParams) -> Sequence[str] | None:
    """The commands for a Windows host; None: the family's own path (a resolver on a port
    other than 53, asked over the host's stream)."""
    if params.resolver is not None:
        host, port = params.resolver
        if port != 53:
            return None
        return (resolve_command(params.name, params.type, server_options(host)),)
    if params.type in ("A", "AAAA"):
        return (resolve_command(params.name, params.type),
                resolve_command(params.name, params.type, DNS_ONLY))
    return (resolve_command(params.name, params.type),)


def record_value(record: Mapping[str, Any]) -> str | None:
    kind = record.get("Type")
    if kind in ("A", "AAAA"):
        return str(record.get("IPAddress") or "") or None
    if kind in ("CNAME", "PTR"):
        return normalise(str(record.get("NameHost") or "")) or None
    if kind == "SRV":
        return normalise(f"{record.get('Priority')} {record.get('Weight')} {record.get('Port')} "
                         f"{record.get('NameTarget')}")
    return None


def parse(text: str, record_type: str, name: str, host: str, via: str
          ) -> tuple[tuple[str, ...], str | None]:
    """(values of the asked type, None) or ((), NXDOMAIN/NOERROR); CouldNotObserve when the
    resolver gave no answer."""
    try:
        data = json.loads(text)
    except ValueError:
        raise CouldNotObserve(f"Resolve-DnsName {name} on {host} printed no JSON: "
                              f"{text.strip()[:80]!r}") from None
    if not isinstance(data, dict):
        raise CouldNotObserve(f"Resolve-DnsName {name} on {host} printed {text.strip()[:80]!r}")
    if "error" in data:
        error = str(data.get("error", "")).split(",")[0]
        if error in _NOT_FOUND:
            return (), _NOT_FOUND[error]
        message = " ".join(str(data.get("message", "")).split())[:160]
        raise CouldNotObserve(f"{via} gave no answer for {name} on {host}: {message} ({error})")
    records = data.get("records") or []
    records = records if isinstance(records, list) else [records]
    values: list[str] = []
    for record in records:
        if not isinstance(record, dict):
            continue
        if record.get("Type") != record_type or record.get("Section", "Answer") != "Answer":
            continue  # the CNAME chain and additional records are not the answer
        value = record_value(record)
        if value is not None and value not in values:
            values.append(value)
    return tuple(values), None if values else "NOERROR"


def observe(ctx: CheckContext, params: DnsParams) -> DnsLookup:
    from pytest_drcheck.checks.dns import DnsLookup, NotFound

    host = ctx.item.host
    first = ctx.output(0).stdout
    details: dict[str, Any] = {"resolve_dnsname": first}
    if params.resolver is not None:
        server, port = params.resolver
        via = f"{params.resolver_label} ({server}:{port})"
        values, rcode = parse(first, params.type, params.name, host, via)
        details.update(resolver=via, rcode=rcode or "NOERROR", answer=list(values))
        return DnsLookup("query", values, NotFound(rcode, via) if rcode else None, via,
                         details=details)
    values, rcode = parse(first, params.type, params.name, host, SYSTEM_VIA)
    not_found = NotFound(rcode, SYSTEM_VIA) if rcode else None
    if params.type == "PTR":
        return DnsLookup("ptr", values, not_found, details=details)
    if params.type not in ("A", "AAAA"):
        return DnsLookup("query", values, not_found, f"system resolver {SYSTEM_VIA}",
                         details=details)
    if not values:
        return DnsLookup("system", (), not_found, details=details)
    dns_text = ctx.output(1).stdout
    details["dns_only"] = dns_text
    try:
        dns_values, _ = parse(dns_text, params.type, params.name, host, "DNS alone")
        behind = f"DNS answers {', '.join(dns_values)}" if dns_values else ""
    except CouldNotObserve as exc:
        dns_values, behind = (), str(exc)
    from_hosts = set(values) != set(dns_values)
    if from_hosts and not behind:
        behind = "DNS alone does not resolve it (no such name, or no nameserver answered)"
    return DnsLookup("system", values, from_hosts_file=from_hosts,
                     dns_behind=behind if from_hosts else "", details=details)
