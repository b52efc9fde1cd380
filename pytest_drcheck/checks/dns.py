"""dns: names resolve, from the instance, to what the site expects.

Through the instance's system resolver (glibc NSS via getent, so the hosts file and
nsswitch.conf count exactly as they do for the applications) or through a named resolver
queried over TCP through the instance's tunnel. An answer served by /etc/hosts is reported as
such and fails unless allowed: a copied hosts file is not working DNS.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import dns.exception
import dns.rcode

from pytest_drcheck.checks.base import Check, CheckContext, ExpansionError, Subject
from pytest_drcheck.durations import format_duration
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import Observation, PlanItem
from pytest_drcheck.net.dnsquery import answers, normalise, query_over_stream
from pytest_drcheck.net.streams import StreamTimeout
from pytest_drcheck.targets.base import CommandResult, StreamError

RECORD_TYPES = ["A", "AAAA", "CNAME", "SRV", "PTR"]
SYSTEM = "system"
# getent's "key not found" exit status.
GETENT_NOT_FOUND = 2
_ANSWER = {"type": "string", "minLength": 1}
_RESOLVER_ADDRESS = re.compile(r"\A(?P<host>[0-9.]{1,15}|\[[0-9a-fA-F:.]{2,45}\])"
                               r"(:(?P<port>\d{1,5}))?\Z")


def _answer_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _parse_resolver(text: str) -> tuple[str, int] | None:
    match = _RESOLVER_ADDRESS.match(text)
    if not match:
        return None
    host = match.group("host").strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    port = int(match.group("port") or 53)
    return (host, port) if 0 < port < 65536 else None


def _first_column(stdout: str) -> list[str]:
    seen: dict[str, None] = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts:
            seen.setdefault(parts[0], None)
    return list(seen)


def _nameserver(resolv_conf: str) -> str | None:
    for line in resolv_conf.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            return parts[1]
    return None


def _shown(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "nothing"


class DnsCheck(Check):
    type_name: ClassVar[str] = "dns"
    site_key: ClassVar[str | None] = "dns"
    default_timeout: ClassVar[float] = 10.0
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "site": {"const": True, "x-expect": "true (check every name in site.dns)"},
            "type": {"enum": RECORD_TYPES},
            "expect": {
                "anyOf": [_ANSWER, {"type": "array", "items": _ANSWER, "minItems": 1}],
                "x-expect": "an answer or a list of answers, e.g. 10.77.0.20",
            },
            "match": {"enum": ["exact", "subset"]},
            "resolver": {"type": "string", "minLength": 1},
            "absent": {"type": "boolean"},
            "allow_hosts_file": {"type": "boolean"},
        },
    }
    site_schema: ClassVar[Mapping[str, Any] | None] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "resolvers": {
                "type": "object",
                "propertyNames": vocabulary.NAME,
                "additionalProperties": vocabulary.RESOLVER,
            },
            "records": {
                "type": "array",
                "items": {
                    "type": "object", "additionalProperties": False,
                    "required": ["name", "values"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "type": {"enum": RECORD_TYPES},
                        "values": {"type": "array", "items": _ANSWER, "minItems": 1},
                    },
                },
            },
            "absent": {"type": "array", "items": {"type": "string", "minLength": 1}},
        },
    }

    # --- expansion -------------------------------------------------------------------------

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        dns_site: Mapping[str, Any] = site.get("dns", {})
        resolver_label, resolver = self._resolver(entry, dns_site)
        common = {"match": entry.get("match", "exact"),
                  "allow_hosts_file": entry.get("allow_hosts_file", False),
                  "resolver_label": resolver_label, "resolver": resolver}
        if entry.get("site"):
            if "name" in entry or "expect" in entry or "absent" in entry:
                raise ExpansionError("'site: true' checks every name in site.dns; do not add "
                                     "name, expect or absent to it (write a separate entry)")
            if not dns_site.get("records") and not dns_site.get("absent"):
                raise ExpansionError("'site: true' needs site.dns.records or site.dns.absent; "
                                     "add them or name one record with 'name:'", ".site")
            subjects = [self._subject(r["name"], r.get("type", "A"), r["values"], False, common)
                        for r in dns_site.get("records", [])]
            subjects += [self._subject(n, "A", None, True, common)
                         for n in dns_site.get("absent", [])]
            return subjects
        if "name" not in entry:
            raise ExpansionError("give 'name' (one name) or 'site: true' (every name in "
                                 "site.dns)")
        record_type = entry.get("type", "A")
        absent = bool(entry.get("absent", False))
        expect = _answer_list(entry.get("expect"))
        if absent and expect:
            raise ExpansionError("'absent: true' and 'expect' contradict each other; keep one",
                                 ".absent")
        if expect is None and not absent:
            expect = self._site_values(dns_site, entry["name"], record_type)
        return [self._subject(entry["name"], record_type, expect, absent, common)]

    @staticmethod
    def _resolver(entry: Mapping[str, Any], dns_site: Mapping[str, Any]
                  ) -> tuple[str, tuple[str, int] | None]:
        label = entry.get("resolver", SYSTEM)
        if label == SYSTEM:
            return SYSTEM, None
        named: Mapping[str, str] = dns_site.get("resolvers", {})
        if label in named:
            address = _parse_resolver(named[label])
            if address is None:
                raise ExpansionError(f"resolver '{named[label]}' is not an IP address with an "
                                     "optional port (1-65535); fix it", ".resolver",
                                     ("dns", "resolvers", label))
            return label, address
        address = _parse_resolver(label)
        if address is None:
            known = ", ".join(sorted(named)) or "none defined"
            raise ExpansionError(
                f"resolver '{label}' is neither 'system', a name in site.dns.resolvers "
                f"({known}) nor an IP address; define it there or write an IP address",
                ".resolver")
        return label, address

    @staticmethod
    def _site_values(dns_site: Mapping[str, Any], name: str, record_type: str
                     ) -> list[str] | None:
        for record in dns_site.get("records", []):
            if normalise(record["name"]) == normalise(name) and record.get(
                    "type", "A") == record_type:
                return [str(v) for v in record["values"]]
        return None

    @staticmethod
    def _subject(name: str, record_type: str, expect: Sequence[str] | None, absent: bool,
                 common: Mapping[str, Any]) -> Subject:
        label = name
        if record_type != "A":
            label += f"/{record_type}"
        if common["resolver_label"] != SYSTEM:
            label += f"@{common['resolver_label']}"
        params = dict(common, name=name, type=record_type, absent=absent,
                      expect=list(expect) if expect is not None else None)
        return Subject(label, params)

    # --- observation -----------------------------------------------------------------------

    def commands(self, item: PlanItem) -> Sequence[str]:
        params = item.params
        if params["resolver"] is not None:
            return ()
        name = shlex.quote(params["name"])
        record_type = params["type"]
        if record_type in ("A", "AAAA"):
            database = "ahostsv4" if record_type == "A" else "ahostsv6"
            return (f"getent {database} {name}", f"getent -s files hosts {name}",
                    f"getent -s dns {database} {name}")
        if record_type == "PTR":
            return (f"getent hosts {name}",)
        # SRV and CNAME have no NSS database: ask the instance's configured nameserver.
        return ("cat /etc/resolv.conf",)

    def evaluate(self, ctx: CheckContext) -> Observation:
        params = ctx.params
        if params["resolver"] is None and params["type"] in ("A", "AAAA"):
            return self._evaluate_system(ctx)
        if params["resolver"] is None and params["type"] == "PTR":
            return self._evaluate_ptr(ctx)
        if params["resolver"] is None:
            server = _nameserver(ctx.outputs[0].stdout)
            if server is None:
                return Observation.failed(self._expected(params), "no nameserver",
                                          "expected an answer, but /etc/resolv.conf on the "
                                          "instance lists no nameserver")
            return self._evaluate_query(ctx, (server, 53), f"system resolver {server}")
        host, port = params["resolver"]
        return self._evaluate_query(ctx, (host, port), f"{params['resolver_label']} "
                                                       f"({host}:{port})")

    @staticmethod
    def _expected(params: Mapping[str, Any]) -> str:
        if params["absent"]:
            return "no such name (NXDOMAIN)"
        if params["expect"] is None:
            return "any answer"
        qualifier = "at least " if params["match"] == "subset" else ""
        return qualifier + _shown(params["expect"])

    @staticmethod
    def _matches(params: Mapping[str, Any], observed: Sequence[str]) -> bool:
        if params["expect"] is None:
            return bool(observed)
        expected = {normalise(v) for v in params["expect"]}
        seen = {normalise(v) for v in observed}
        return expected <= seen if params["match"] == "subset" else expected == seen

    def _evaluate_system(self, ctx: CheckContext) -> Observation:
        params = ctx.params
        system, files, dns_only = ctx.outputs
        expected = self._expected(params)
        if system.timed_out:
            return Observation.failed(expected, "timed out",
                                      f"expected {expected}, the system resolver timed out")
        addresses = _first_column(system.stdout)
        from_files = _first_column(files.stdout)
        details: dict[str, Any] = {"getent": system.stdout, "hosts_file": files.stdout,
                                   "dns_only": dns_only.stdout}
        if params["absent"]:
            if system.exit_status == GETENT_NOT_FOUND:
                return Observation.passed(expected, "does not resolve", **details)
            source = " (from /etc/hosts)" if from_files else ""
            return Observation.failed(expected, f"resolved {_shown(addresses)}{source}",
                                      **details)
        if system.exit_status == GETENT_NOT_FOUND or not addresses:
            return Observation.failed(expected, "does not resolve",
                                      f"expected {expected}, does not resolve "
                                      "(NXDOMAIN or no address)", **details)
        if not system.ok:
            return Observation.failed(expected, f"getent failed: {system.stderr.strip()}",
                                      **details)
        if from_files:
            observed = f"resolved {_shown(addresses)} (from /etc/hosts)"
            if not params["allow_hosts_file"]:
                dns_answer = _first_column(dns_only.stdout)
                behind = (f"; DNS answers {_shown(dns_answer)}" if dns_answer
                          else "; DNS does not resolve it")
                return Observation.failed(expected, observed,
                                          f"expected {expected}, {observed}{behind}",
                                          **details)
        else:
            observed = f"resolved {_shown(addresses)}"
        if self._matches(params, addresses):
            return Observation.passed(expected, observed, **details)
        return Observation.failed(expected, observed, f"expected {expected}, {observed}",
                                  **details)

    def _evaluate_ptr(self, ctx: CheckContext) -> Observation:
        params = ctx.params
        expected = self._expected(params)
        result: CommandResult = ctx.outputs[0]
        names: list[str] = []
        for line in result.stdout.splitlines():
            names += line.split()[1:]
        if params["absent"]:
            if result.exit_status == GETENT_NOT_FOUND:
                return Observation.passed(expected, "does not resolve")
            return Observation.failed(expected, f"resolved {_shown(names)}")
        if not names:
            return Observation.failed(expected, "does not resolve",
                                      f"expected {expected}, does not resolve")
        observed = f"resolved {_shown(names)}"
        if self._matches(params, names[:1]) or (
                params["match"] == "subset" and self._matches(params, names)):
            return Observation.passed(expected, observed)
        return Observation.failed(expected, observed, f"expected {expected}, {observed}")

    def _evaluate_query(self, ctx: CheckContext, server: tuple[str, int],
                        via: str) -> Observation:
        params = ctx.params
        expected = self._expected(params)
        started = time.monotonic()
        try:
            stream = ctx.target.open_stream(server[0], server[1], ctx.timeout)
        except StreamError as exc:
            return Observation.failed(expected, f"resolver {exc.outcome}",
                                      f"expected {expected}, resolver {via} {exc.outcome}")
        try:
            response = query_over_stream(stream, params["name"], params["type"],
                                         max(0.5, ctx.timeout - (time.monotonic() - started)))
        except StreamTimeout:
            return Observation.failed(
                expected, "timed out", f"expected {expected}, no answer from {via} within "
                f"{format_duration(ctx.timeout)}")
        except (EOFError, OSError, ValueError, dns.exception.DNSException) as exc:
            return Observation.failed(expected, f"bad answer: {exc}",
                                      f"expected {expected}, {via} gave no usable answer: {exc}")
        finally:
            stream.close()
        rcode = dns.rcode.to_text(response.rcode())
        values = answers(response, params["type"])
        details: dict[str, Any] = {"resolver": via, "rcode": rcode,
                                   "answer": [str(r) for r in response.answer]}
        if params["absent"]:
            if rcode == "NXDOMAIN":
                return Observation.passed(expected, f"NXDOMAIN from {via}", **details)
            return Observation.failed(expected, f"{rcode} {_shown(values)} from {via}",
                                      **details)
        if rcode != "NOERROR":
            return Observation.failed(expected, f"{rcode} from {via}",
                                      f"expected {expected}, {via} answered {rcode}", **details)
        observed = f"resolved {_shown(values)} via {via}"
        if self._matches(params, values):
            return Observation.passed(expected, observed, **details)
        return Observation.failed(expected, observed, f"expected {expected}, {observed}",
                                  **details)
