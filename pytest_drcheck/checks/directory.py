"""ldap: real binds to the site's directory servers, made from the instance's network position.

A port probe (389 open) proves nothing about a domain controller; a simple bind does: the
instance reaches the DC, the DC's certificate is trusted and carries its name, the bind
account works. Each (server, mode) is one test with one of a few distinct outcomes (see
``net/ldapresult.py``); an optional search per server must find an expected entry; for Active
Directory the DCs found through the instance's own resolver (SRV records) must be the
expected set.
"""

from __future__ import annotations

import re
import secrets
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import dns.exception
import dns.rcode

import pytest_drcheck.net.ldapresult as ldapresult
from pytest_drcheck.checks.base import (
    Check,
    CheckContext,
    ExpansionError,
    Subject,
    site_service,
)
from pytest_drcheck.checks.nic import parse_nameservers
from pytest_drcheck.durations import format_duration, parse_duration
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.inventory.secrets import SECRET_PATTERN, SecretError, SecretRef
from pytest_drcheck.model import CouldNotObserve, Observation, PlanItem
from pytest_drcheck.net.dnsquery import answers, normalise, query_over_stream
from pytest_drcheck.net.streams import StreamTimeout
from pytest_drcheck.targets.base import StreamError

DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_MODES = ("ldaps", "starttls")
DEFAULT_PORTS = {"ldaps": 636, "starttls": 389, "plain": 389}
EXPECTS = (ldapresult.BOUND, ldapresult.STRONG_AUTH_REQUIRED)
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOSTNAME = rf"\A{_LABEL}(\.{_LABEL}){{0,126}}\.?\Z"
_DURATION = vocabulary.TIMEOUT
_SERVERS = {"type": "array", "minItems": 1, "uniqueItems": True,
            "items": {"type": "string", "pattern": _HOSTNAME,
                      "x-expect": "a DNS name the server's certificate carries, e.g. "
                                  "dc01.corp.example"}}
_MODES = {"type": "array", "minItems": 1, "uniqueItems": True,
          "items": {"enum": list(ldapresult.MODES)}}
_PORT = vocabulary.PORT
# The host name may appear in a search filter as {host} (escaped as a filter value).
_PLACEHOLDER = re.compile(r"\{host\}")

# SRV names a domain's clients use to find its directory servers.
SRV_RECORDS: Mapping[str, Sequence[tuple[str, str]]] = {
    "ad": (("srv-ldap", "_ldap._tcp.dc._msdcs.{domain}"),
           ("srv-kerberos", "_kerberos._tcp.{domain}")),
    "ldap": (("srv-ldap", "_ldap._tcp.{domain}"),),
}


def _ldapbind() -> ModuleType:
    """The bind machinery (ldap3, cryptography): imported on first use, which ``expand``
    makes happen on the main thread while the inventory loads. Importing it first inside
    several check threads at once trips a CPython 3.11 bug ("AST constructor recursion depth
    mismatch": compile() state shared between threads)."""
    with warnings.catch_warnings():
        # ldap3 2.9 uses names pyasn1 has deprecated: not ours to fix, and noise in every
        # drill's warnings summary.
        warnings.filterwarnings("ignore", r"(tag|type)Map is deprecated", DeprecationWarning)
        import pytest_drcheck.net.ldapbind as ldapbind

    return ldapbind


def upn(user: str, kind: str, domain: str | None) -> str:
    """An AD account name without a domain becomes a UPN (user@domain); DNs, UPNs and
    DOMAIN\\user forms are kept as written."""
    if kind == "ad" and domain and not any(c in user for c in "@=\\"):
        return f"{user}@{domain.rstrip('.')}"
    return user


@dataclass(frozen=True)
class BindValue:
    """A bind (and its search) as the server answered it, and for a certificate that was
    not trusted or did not match, the certificate the server presents."""

    result: ldapresult.BindOutcome
    presented: str | None = None


@dataclass(frozen=True)
class SrvValue:
    """The first resolver's answer to the SRV query (resolver None: the instance lists no
    nameserver)."""

    resolver: str | None
    rcode: str
    records: tuple[str, ...]


LdapValue = BindValue | SrvValue


class DirectoryCheck(Check[LdapValue]):
    type_name: ClassVar[str] = "ldap"
    site_key: ClassVar[str | None] = "directory"
    default_timeout: ClassVar[float] = 15.0
    # Streams only: binds to many DCs from one host can all wait at once.
    light: ClassVar[bool] = True
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "required": ["directory"],
        "properties": {
            "directory": {"type": "string", "minLength": 1,
                          "x-expect": "the name of a directory under site.directory"},
            "servers": _SERVERS,
            "modes": _MODES,
            "expect": {"enum": list(EXPECTS)},
            "search": {"type": "boolean"},
            "discovery": {"type": "boolean"},
            "connect_timeout": _DURATION,
        },
    }
    site_schema: ClassVar[Mapping[str, Any] | None] = {
        "type": "object",
        "x-kind": "directory",
        "additionalProperties": {
            "type": "object", "additionalProperties": False,
            "required": ["servers", "user", "password"],
            "properties": {
                "kind": {"enum": ["ldap", "ad"]},
                "domain": {"type": "string", "pattern": _HOSTNAME,
                           "x-expect": "the DNS domain, e.g. ad.corp.example"},
                "servers": _SERVERS,
                "user": {"type": "string", "minLength": 1,
                         "x-expect": "a bind DN, or for AD a user name or UPN"},
                "password": {"type": "string", "pattern": SECRET_PATTERN, "x-secret": True,
                             "x-expect": "a secret reference: env:NAME or file:PATH (never "
                                         "the password itself)"},
                "ca_bundle": {"type": "string", "minLength": 1,
                              "x-expect": "the path of a PEM file with the CA certificates "
                                          "the servers' certificates must chain to"},
                "modes": _MODES,
                "ldaps_port": _PORT,
                "ldap_port": _PORT,
                "connect_timeout": _DURATION,
                "search": {
                    "type": "object", "additionalProperties": False,
                    "required": ["base", "filter"],
                    "properties": {
                        "base": {"type": "string", "minLength": 1},
                        "filter": {"type": "string", "pattern": r"\A\(.{0,4094}\)\Z",
                                   "x-expect": "an LDAP filter in parentheses, e.g. "
                                               "(cn={host})"},
                        "scope": {"enum": ["base", "one", "sub"]},
                    },
                },
            },
        },
    }

    # --- expansion -------------------------------------------------------------------------

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        _ldapbind()
        directories: Mapping[str, Any] = site.get("directory", {})
        name = entry["directory"]
        directory: Mapping[str, Any] = site_service(
            directories, name, "directory", "site.directory", ".directory",
            "define it there or fix the name")
        kind = directory.get("kind", "ldap")
        domain = directory.get("domain")
        if kind == "ad" and not domain:
            raise ExpansionError("a directory of kind ad (Active Directory) needs 'domain'; "
                                 "add it, e.g. domain: ad.corp.example", "",
                                 ("directory", name))
        modes = list(entry.get("modes", directory.get("modes", DEFAULT_MODES)))
        expect = entry.get("expect", ldapresult.BOUND)
        if "ca_bundle" not in directory and any(m != "plain" for m in modes):
            raise ExpansionError("LDAPS and StartTLS need 'ca_bundle' (the CA that signs the "
                                 "servers' certificates); add it", "", ("directory", name))
        try:
            connect_timeout = parse_duration(entry.get(
                "connect_timeout", directory.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)))
        except ValueError as exc:
            raise ExpansionError(str(exc), ".connect_timeout") from None
        ports = {"ldaps": directory.get("ldaps_port", DEFAULT_PORTS["ldaps"]),
                 "starttls": directory.get("ldap_port", DEFAULT_PORTS["starttls"]),
                 "plain": directory.get("ldap_port", DEFAULT_PORTS["plain"])}
        common = {"directory": name, "kind": kind, "domain": domain,
                  "user": upn(directory["user"], kind, domain),
                  "password": directory["password"], "ca_bundle": directory.get("ca_bundle"),
                  "connect_timeout": connect_timeout, "expect": expect}
        servers = [s.rstrip(".") for s in entry.get("servers", directory["servers"])]
        # "@directory" as in dns' "@resolver": one DC may be bound with several accounts.
        subjects = [Subject(f"{server}/{mode}@{name}", dict(common, role="bind", server=server,
                                                        mode=mode, port=ports[mode]))
                    for server in servers for mode in modes]
        checks_bound = expect == ldapresult.BOUND
        search = directory.get("search")
        if entry.get("search", checks_bound) and search is not None:
            mode = next((m for m in modes if m != "plain"), modes[0])
            # The search binds again over the same mode: when that bind test did not pass,
            # the search is skipped with its reason instead of failing a second time.
            subjects += [Subject(f"{server}/search@{name}", dict(
                common, role="search", server=server, mode=mode, port=ports[mode],
                expect=ldapresult.BOUND, base=search["base"], filter=search["filter"],
                scope=search.get("scope", "sub")),
                requires=(f"{self.type_name}[{server}/{mode}@{name}]",) if checks_bound else ())
                for server in servers]
        elif entry.get("search") and search is None:
            raise ExpansionError(f"site.directory.{name} has no 'search' to run; add one there "
                                 "or drop search: true", ".search")
        if entry.get("discovery", checks_bound and kind == "ad"):
            if not domain:
                raise ExpansionError(f"discovery needs site.directory.{name}.domain; add it "
                                     "there", ".discovery")
            expected = sorted({normalise(s) for s in directory["servers"]})
            subjects += [Subject(f"{domain.rstrip('.')}/{label}@{name}", {
                "role": "discovery", "directory": name, "record": record.format(
                    domain=domain.rstrip(".")), "expect": expected})
                for label, record in SRV_RECORDS[kind]]
        return subjects

    # --- observation -----------------------------------------------------------------------

    def commands(self, item: PlanItem) -> Sequence[str]:
        if item.params["role"] == "discovery":
            return ("cat /etc/resolv.conf",)
        return ()

    def expected(self, item: PlanItem) -> str:
        params = item.params
        if params["role"] == "discovery":
            return ", ".join(params["expect"])
        return self._expected(params, params["role"] == "search")

    @staticmethod
    def _expected(params: Mapping[str, Any], search: bool) -> str:
        if search:
            return f"an entry matching {params['filter']} under {params['base']}"
        if params["expect"] == ldapresult.STRONG_AUTH_REQUIRED:
            return f"simple bind over {ldapresult.MODE_LABELS[params['mode']]} refused as " \
                   "strong auth required"
        return f"bound as {params['user']} over {ldapresult.MODE_LABELS[params['mode']]}"

    def observe(self, ctx: CheckContext) -> LdapValue:
        if ctx.params["role"] == "discovery":
            return self._observe_srv(ctx)
        return self._observe_bind(ctx, search=ctx.params["role"] == "search")

    def _observe_bind(self, ctx: CheckContext, search: bool) -> BindValue:
        params = ctx.params
        started = time.monotonic()
        probe_only = params["expect"] == ldapresult.STRONG_AUTH_REQUIRED
        if probe_only:
            # Proving that the server refuses a clear-text simple bind must not send the real
            # password in clear: the refusal comes before the password is looked at.
            password = secrets.token_urlsafe(18)
        else:
            try:
                password = SecretRef.parse(params["password"]).resolve()
            except (SecretError, ValueError) as exc:
                raise CouldNotObserve(f"cannot read the bind password: {exc}") from None
            if not password:
                raise CouldNotObserve(f"the bind password ({params['password']}) is empty")
        spec = None
        if search:
            spec = ldapresult.SearchSpec(params["base"], _PLACEHOLDER.sub(
                ldapresult.escape_filter_value(ctx.item.host), params["filter"]), params["scope"])
        request = ldapresult.BindRequest(
            server=params["server"], port=params["port"], mode=params["mode"],
            user=params["user"], ca_bundle=params["ca_bundle"],
            connect_timeout=min(params["connect_timeout"], ctx.timeout),
            timeout=max(1.0, ctx.timeout - 0.5), search=spec)
        result = _ldapbind().bind(ctx.target, request, password)
        del password
        if not result.observed:
            # No answer from the server (no TCP connection, a handshake or bind never
            # answered) or nothing to verify it with: the bind itself was not observed.
            label = ldapresult.OUTCOME_LABELS[result.outcome]
            what = (result.summary if result.outcome == ldapresult.ERROR
                    else f"{label}: {result.summary}" if result.summary else label)
            raise CouldNotObserve(f"the bind over {ldapresult.MODE_LABELS[request.mode]} to "
                                  f"{request.server}:{request.port}: {what}")
        presented = None
        if result.outcome in (ldapresult.TLS_UNTRUSTED, ldapresult.TLS_NAME_MISMATCH):
            left = ctx.timeout - (time.monotonic() - started)
            if left > 1.0:
                presented = _ldapbind().peer_certificate(ctx.target, ldapresult.BindRequest(
                    request.server, request.port, request.mode, request.user, None,
                    request.connect_timeout, left - 0.5))
        return BindValue(result, presented)

    def _observe_srv(self, ctx: CheckContext) -> SrvValue:
        params = ctx.params
        servers = parse_nameservers(ctx.output(0).stdout)
        if not servers:
            return SrvValue(None, "", ())
        deadline = time.monotonic() + ctx.timeout - 0.5
        problems = []
        for server in servers:
            left = deadline - time.monotonic()
            if left <= 0.2:
                break
            try:
                stream = ctx.target.open_stream(server, 53, min(3.0, left))
            except StreamError as exc:
                problems.append(f"{server} {exc.outcome}")
                continue
            try:
                response = query_over_stream(stream, params["record"], "SRV",
                                             max(0.2, deadline - time.monotonic()))
            except StreamTimeout:
                problems.append(f"{server} did not answer in time")
                continue
            except (EOFError, OSError, ValueError, dns.exception.DNSException) as exc:
                problems.append(f"{server} gave no usable answer ({exc})")
                continue
            finally:
                stream.close()
            rcode = dns.rcode.to_text(response.rcode())
            if rcode == "SERVFAIL":
                # Like the stub resolver: a failing server is skipped; a failure says
                # nothing about the records.
                problems.append(f"{server} SERVFAIL")
                continue
            return SrvValue(server, rcode, tuple(answers(response, "SRV")))
        tried = "; ".join(problems) or "no time left"
        raise CouldNotObserve(f"no resolver answered SRV {params['record']} ({tried})")

    # --- judge -----------------------------------------------------------------------------

    def judge(self, item: PlanItem, value: LdapValue) -> Observation:
        params = item.params
        expected = self.expected(item)
        if isinstance(value, SrvValue):
            return self._judge_srv(params, expected, value)
        result = value.result
        details: dict[str, Any] = {"outcome": result.outcome, "server": params["server"],
                                   "port": params["port"], "mode": params["mode"],
                                   "tls_version": result.tls_version,
                                   "certificate": value.presented or result.certificate,
                                   "result_code": result.result_code,
                                   "diagnostic": result.diagnostic,
                                   "seconds": round(result.seconds, 3)}
        observed = self._observed(result)
        if value.presented:
            observed += f"; the server presents {value.presented}"
        if params["role"] == "search":
            return self._search_result(params, expected, result, observed, details)
        if result.outcome == params["expect"]:
            if result.outcome == ldapresult.BOUND:
                observed += f" in {format_duration(result.seconds)}"
            return Observation.passed(expected, observed, **details)
        return Observation.failed(expected, observed, None, **details)

    @staticmethod
    def _observed(result: ldapresult.BindOutcome) -> str:
        label = ldapresult.OUTCOME_LABELS[result.outcome]
        return f"{label} {result.summary}" if result.outcome == ldapresult.BOUND else (
            f"{label}: {result.summary}" if result.summary else label)

    @staticmethod
    def _search_result(params: Mapping[str, Any], expected: str,
                       result: ldapresult.BindOutcome, observed: str,
                       details: dict[str, Any]) -> Observation:
        if result.outcome != ldapresult.BOUND:
            # The bind test passed a moment ago (requires); this bind did not.
            return Observation.skipped(expected, f"not searched: the bind over "
                                       f"{ldapresult.MODE_LABELS[params['mode']]} failed "
                                       f"({observed})", **details)
        details["entries"] = list(result.entries)
        if result.search_problem:
            return Observation.failed(expected, result.search_problem,
                                      f"expected {expected}, {result.search_problem}",
                                      **details)
        if not result.entries:
            return Observation.failed(expected, "no entry",
                                      f"expected {expected}, the search found nothing",
                                      **details)
        found = ldapresult.entry_summary(result.entries)
        return Observation.passed(expected, f"found {found}", **details)

    @staticmethod
    def _judge_srv(params: Mapping[str, Any], expected: str, value: SrvValue) -> Observation:
        wanted: list[str] = list(params["expect"])
        if value.resolver is None:
            return Observation.failed(expected, "no resolver", "expected "
                                      f"{expected} from SRV {params['record']}, but "
                                      "/etc/resolv.conf on the instance lists no nameserver")
        server, rcode, records = value.resolver, value.rcode, list(value.records)
        details = {"resolver": server, "rcode": rcode, "records": records}
        if rcode != "NOERROR" or not records:
            what = rcode if rcode != "NOERROR" else "no records"
            return Observation.failed(expected, f"{what} from {server}",
                                      f"expected {expected} from SRV {params['record']}, "
                                      f"{server} answered {what}", **details)
        found: dict[str, list[str]] = {}
        for record in records:
            parts = record.split()
            if len(parts) == 4:
                found.setdefault(normalise(parts[3]), []).append(parts[2])
        names = sorted(found)
        observed = ", ".join(f"{name}:{'/'.join(sorted(set(found[name])))}" for name in names)
        observed += f" via {server}"
        if names == wanted:
            return Observation.passed(expected, observed, **details)
        missing = sorted(set(wanted) - set(names))
        extra = sorted(set(names) - set(wanted))
        gaps = []
        if missing:
            gaps.append(f"missing {', '.join(missing)}")
        if extra:
            gaps.append(f"unexpected {', '.join(extra)}")
        return Observation.failed(expected, observed, f"expected {expected} from SRV "
                                  f"{params['record']}, found {observed} "
                                  f"({'; '.join(gaps)})", **details)

