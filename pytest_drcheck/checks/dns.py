"""dns: names resolve, from the instance, to what the site expects.

Through the instance's system resolver (glibc NSS via getent, so the hosts file and
nsswitch.conf count exactly as they do for the applications) or through a named resolver
queried over TCP through the instance's tunnel. An answer served by /etc/hosts is reported as
such and fails unless allowed: a copied hosts file is not working DNS.

"Does not resolve" is only ever an observed answer. getent exits 2 both for a name that does
not exist and for a resolver that failed, so when it says 2 the nameservers of the instance's
/etc/resolv.conf are asked directly, over TCP from the instance, as glibc asks them (see
net.stubresolver): the name does not resolve only if they answer so; if none answers, the
check could not observe (an error naming each nameserver's cause), never a pass of an
``absent`` name nor a "does not resolve" failure. A named resolver that gives no answer
(refused, timed out, SERVFAIL, REFUSED) could not be observed either.

``absent`` means the name has no record of the asked type: NXDOMAIN, or NOERROR without a
record of that type ("no data"), which is what applications see as "does not resolve" too.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pytest_drcheck.checks.base import Check, CheckContext, ExpansionError, Subject
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import CouldNotObserve, Observation, PlanItem
from pytest_drcheck.net.dnsquery import ANSWER_RCODES, NoAnswer, answers, ask, normalise, rcode_of
from pytest_drcheck.net.resolvconf import ResolvConf, parse_resolv_conf
from pytest_drcheck.net.stubresolver import ResolverFailed, StubAnswer, first_answer, search
from pytest_drcheck.targets.result import TIMEOUT_STATUS, CommandNotObserved, CommandResult

RECORD_TYPES = ["A", "AAAA", "CNAME", "SRV", "PTR"]
SYSTEM = "system"
# getent's "key not found" exit status (also what it says when the resolver failed).
GETENT_NOT_FOUND = 2
RESOLV_CONF = "cat /etc/resolv.conf"
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


# A/AAAA through the system resolver asks getent three things: glibc's answer, the hosts
# file's, and DNS alone's (read only when the hosts file answered). They run as one command of
# the host's batch, one shell instead of three framed commands (which made each more name
# cost about three times its lookups), and each lookup's output and status is then judged
# as the command it is: its stdout and stderr end at a marker line naming it and its status.
# The hosts file is read first (no network); DNS alone is asked only when it answered.
_MARK = "#drcheck-getent"
SYSTEM_LOOKUP, FILES_LOOKUP, DNS_LOOKUP = range(3)
_LOOKUP_ORDER = (FILES_LOOKUP, SYSTEM_LOOKUP, DNS_LOOKUP)


def lookup_commands(name: str, record_type: str) -> tuple[str, str, str]:
    """The three getent commands of an A/AAAA name: glibc, hosts file, DNS alone."""
    quoted = shlex.quote(name)
    database = "ahostsv4" if record_type == "A" else "ahostsv6"
    return (f"getent {database} {quoted}", f"getent -s files hosts {quoted}",
            f"getent -s dns {database} {quoted}")


def lookup_script(lookups: Sequence[str]) -> str:
    """One shell command running ``lookups`` (lookup_commands) in _LOOKUP_ORDER."""

    def marked(index: int) -> str:
        return f"{lookups[index]}; echo '{_MARK} {index}' \"$?\"; echo '{_MARK} {index}' >&2"

    return (f"{lookups[FILES_LOOKUP]}; r=$?; echo '{_MARK} {FILES_LOOKUP}' \"$r\"; "
            f"echo '{_MARK} {FILES_LOOKUP}' >&2; {marked(SYSTEM_LOOKUP)}; "
            f"if [ \"$r\" = 0 ]; then {marked(DNS_LOOKUP)}; fi")


def _sections(text: str) -> tuple[dict[int, tuple[str, str]], str]:
    """{index: (its output, what follows the index on its marker line)} and the output after
    the last marker (the lookup that was running when the command ended)."""
    pieces = text.split(_MARK + " ")
    found: dict[int, tuple[str, str]] = {}
    current = pieces[0]
    for piece in pieces[1:]:
        header, _, rest = piece.partition("\n")
        index, _, status = header.partition(" ")
        if index.isdigit():
            found[int(index)] = (current, status)
        current = rest
    return found, current


def split_lookups(result: CommandResult, lookups: Sequence[str]) -> list[CommandResult]:
    """The results of the three lookups of ``lookup_script`` as if each had been a command of
    the batch: the same output, status, timeout or failure, so the same verdicts and
    messages."""
    if result.batch_failure is not None:
        return [dataclasses.replace(result, command=command) for command in lookups]
    outs, out_tail = _sections(result.stdout)
    errs, err_tail = _sections(result.stderr)
    results: dict[int, CommandResult] = {}
    ended = False  # the lookup that was running when the command ended has been found
    for index in _LOOKUP_ORDER:
        command = lookups[index]
        if index in outs and outs[index][1].strip().lstrip("-").isdigit():
            results[index] = dataclasses.replace(
                result, command=command, exit_status=int(outs[index][1]),
                stdout=outs[index][0], stderr=errs.get(index, ("", ""))[0], timed_out=False)
        elif result.timed_out and not ended:
            ended = True
            results[index] = dataclasses.replace(
                result, command=command, exit_status=TIMEOUT_STATUS, stdout=out_tail,
                stderr=err_tail, timed_out=True)
        elif result.timed_out:
            results[index] = dataclasses.replace(
                result, command=command, exit_status=TIMEOUT_STATUS, stdout="", stderr="",
                timed_out=True)
        elif index == DNS_LOOKUP and outs.get(FILES_LOOKUP, ("", ""))[1].strip() != "0":
            # Not asked: the hosts file did not answer, and only then is it read.
            results[index] = CommandResult.not_run(command, "not needed (no hosts-file "
                                                            "answer)")
        else:  # the shell itself failed: every lookup shares its status and error
            results[index] = dataclasses.replace(result, command=command)
    return [results[index] for index in range(3)]


def _shown(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "nothing"


@dataclass(frozen=True)
class DnsParams:
    name: str
    type: str
    expect: tuple[str, ...] | None
    match: Literal["exact", "subset"]
    absent: bool
    allow_hosts_file: bool
    resolver_label: str
    # (address, port) of a named resolver; None for the system resolver.
    resolver: tuple[str, int] | None

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> DnsParams:
        expect, resolver = params["expect"], params["resolver"]
        return cls(params["name"], params["type"],
                   tuple(expect) if expect is not None else None, params["match"],
                   params["absent"], params["allow_hosts_file"], params["resolver_label"],
                   (resolver[0], resolver[1]) if resolver is not None else None)

    @property
    def expected(self) -> str:
        if self.absent:
            return f"no {self.type} record (does not resolve)"
        if self.expect is None:
            return "any answer"
        qualifier = "at least " if self.match == "subset" else ""
        return qualifier + _shown(self.expect)

    def matches(self, observed: Sequence[str]) -> bool:
        if self.expect is None:
            return bool(observed)
        expected = {normalise(v) for v in self.expect}
        seen = {normalise(v) for v in observed}
        return expected <= seen if self.match == "subset" else expected == seen


@dataclass(frozen=True)
class NotFound:
    """A nameserver's answer that the name has no record of the type."""

    rcode: str  # NXDOMAIN, or NOERROR (no data)
    server: str

    def text(self, record_type: str) -> str:
        if self.rcode == "NXDOMAIN":
            return f"NXDOMAIN from {self.server}"
        return f"no {record_type} record (NOERROR) from {self.server}"


@dataclass(frozen=True)
class DnsLookup:
    """What a name resolved to on the instance."""

    # system: glibc (getent) for A/AAAA; ptr: getent hosts ADDRESS; query: a DNS query.
    how: Literal["system", "ptr", "query"]
    values: tuple[str, ...]
    # Why there is no value (a nameserver's answer); None when there are values.
    not_found: NotFound | None = None
    # For queries: the resolver asked, e.g. "onprem (10.77.0.53:53)".
    via: str = ""
    # For a system answer served by /etc/hosts (and not allowed): what DNS says behind it.
    from_hosts_file: bool = False
    dns_behind: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


class DnsCheck(Check[DnsLookup]):
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
        params = DnsParams.of(item.params)
        if item.platform == "windows":  # Resolve-DnsName (checks/windows/dns.py)
            from pytest_drcheck.checks.windows import dns as windows

            found = windows.commands(params)
            if found is not None:
                return found
        if params.resolver is not None:
            return ()
        name = shlex.quote(params.name)
        if params.type in ("A", "AAAA"):
            return (lookup_script(lookup_commands(params.name, params.type)), RESOLV_CONF)
        if params.type == "PTR":
            return (f"getent hosts {name}", RESOLV_CONF)
        # SRV and CNAME have no NSS database: ask the instance's configured nameservers.
        return (RESOLV_CONF,)

    def expected(self, item: PlanItem) -> str:
        return DnsParams.of(item.params).expected

    def observe(self, ctx: CheckContext) -> DnsLookup:
        # The check's timeout, shared by the nameservers it may have to ask.
        budget = ctx.timeout
        params = DnsParams.of(ctx.params)
        if ctx.item.platform == "windows" and self.commands(ctx.item):
            from pytest_drcheck.checks.windows import dns as windows

            return windows.observe(ctx, params)
        if params.resolver is not None:
            host, port = params.resolver
            return self._query(ctx, params, (host, port), budget)
        if params.type in ("A", "AAAA"):
            return self._system(ctx, params, budget)
        if params.type == "PTR":
            return self._ptr(ctx, params, budget)
        conf = _resolv_conf(ctx, 0)
        try:
            answer = first_answer(ctx.target, conf, _absolute(params.name), params.type,
                                  budget)
        except ResolverFailed as exc:
            raise CouldNotObserve(_system_failed(ctx, exc)) from None
        via = f"system resolver {answer.server.rsplit(':', 1)[0]}"
        return _lookup_of(answer, via, {"resolver": via, "rcode": answer.rcode,
                                        "answer": list(answer.records)})

    def _getent(self, ctx: CheckContext, index: int, name: str, record_type: str,
                budget: float, search_list: bool, conf_index: int = 3) -> CommandResult:
        """getent's answer; when it timed out, the cause the instance's nameservers give
        (refused, silent...) instead of only "getent timed out"."""
        try:
            return ctx.output(index, accept=(0, GETENT_NOT_FOUND))
        except CommandNotObserved as exc:
            if exc.cause != "timed out":
                raise
            slow = str(exc)
        # Raises with the nameservers' own failure when they fail too.
        answer = _ask_nameservers(ctx, name, record_type, budget, search_list, conf_index)
        said = _shown(answer.values) if answer.values else answer.rcode
        raise CouldNotObserve(f"the system resolver on {ctx.item.host} did not answer in time "
                              f"({slow}) although nameserver {answer.server} answers {said} "
                              "over TCP; check UDP to the nameserver") from None

    def _system(self, ctx: CheckContext, params: DnsParams, budget: float) -> DnsLookup:
        # The one command of the three lookups, read as the three commands (and resolv.conf).
        lookups = split_lookups(ctx.outputs[0], lookup_commands(params.name, params.type))
        ctx = dataclasses.replace(ctx, outputs=[*lookups, *ctx.outputs[1:]])
        system = self._getent(ctx, 0, params.name, params.type, budget, search_list=True)
        files = ctx.output(1, accept=(0, GETENT_NOT_FOUND))
        addresses = tuple(_first_column(system.stdout))
        from_files = bool(_first_column(files.stdout))
        details: dict[str, Any] = {"getent": system.stdout, "hosts_file": files.stdout}
        if system.exit_status == 0 and addresses:
            behind = ""
            if from_files and not params.allow_hosts_file and not params.absent:
                behind = self._dns_behind(ctx, params)
            return DnsLookup("system", addresses, from_hosts_file=from_files,
                             dns_behind=behind, details=details)
        answer = self._confirm(ctx, params.name, params.type, budget, search_list=True)
        details.update(nameserver=answer.server, rcode=answer.rcode)
        return DnsLookup("system", (), NotFound(answer.rcode, answer.server), details=details)

    def _ptr(self, ctx: CheckContext, params: DnsParams, budget: float) -> DnsLookup:
        result = self._getent(ctx, 0, params.name, "PTR", budget, search_list=False,
                              conf_index=1)
        names: list[str] = []
        for line in result.stdout.splitlines():
            names += line.split()[1:]
        details: dict[str, Any] = {"getent": result.stdout}
        if result.exit_status == 0 and names:
            return DnsLookup("ptr", tuple(names), details=details)
        answer = self._confirm(ctx, params.name, "PTR", budget, search_list=False,
                               conf_index=1)
        details.update(nameserver=answer.server, rcode=answer.rcode)
        return DnsLookup("ptr", (), NotFound(answer.rcode, answer.server), details=details)

    def _confirm(self, ctx: CheckContext, name: str, record_type: str, budget: float,
                 search_list: bool, conf_index: int = 3) -> StubAnswer:
        """The nameservers' own answer when getent found nothing: a not-found answer, or
        CouldNotObserve when the resolver failed or contradicts getent."""
        answer = _ask_nameservers(ctx, name, record_type, budget, search_list, conf_index)
        if answer.values:
            raise CouldNotObserve(
                f"the system resolver on {ctx.item.host} does not resolve {name} (getent "
                f"exit 2) although nameserver {answer.server} answers {_shown(answer.values)} "
                "over TCP; check nsswitch.conf and UDP to the nameserver")
        return answer

    @staticmethod
    def _dns_behind(ctx: CheckContext, params: DnsParams) -> str:
        """What DNS alone answers for a name /etc/hosts answered, in words, for the failure
        (which the hosts-file answer decides; this only explains it)."""
        dns_only = ctx.output(2, accept=(0, GETENT_NOT_FOUND))
        values = _first_column(dns_only.stdout) if dns_only.exit_status == 0 else []
        if values:
            return f"DNS answers {_shown(values)}"
        # Not asked again: getent's 2 is "no such name" or "no nameserver answered", and
        # either way the name is served by the hosts file.
        return "DNS alone does not resolve it (no such name, or no nameserver answered)"

    @staticmethod
    def _query(ctx: CheckContext, params: DnsParams, server: tuple[str, int],
               budget: float) -> DnsLookup:
        via = f"{params.resolver_label} ({server[0]}:{server[1]})"
        try:
            response = ask(ctx.target, server, params.name, params.type, budget)
        except NoAnswer as exc:
            raise CouldNotObserve(f"resolver {via} {exc}") from None
        rcode = rcode_of(response)
        if rcode not in ANSWER_RCODES:
            raise CouldNotObserve(f"resolver {via} answered {rcode} for {params.name}")
        answer = StubAnswer(params.name, rcode, tuple(answers(response, params.type)), via,
                            tuple(str(r) for r in response.answer))
        return _lookup_of(answer, via, {"resolver": via, "rcode": rcode,
                                        "answer": list(answer.records)})

    # --- judgement -------------------------------------------------------------------------

    def judge(self, item: PlanItem, value: DnsLookup) -> Observation:
        params = DnsParams.of(item.params)
        expected = params.expected
        details = dict(value.details)
        if value.how == "query":
            return self._judge_query(params, value, details)
        source = " (from /etc/hosts)" if value.from_hosts_file else ""
        if params.absent:
            if value.not_found is not None:
                return Observation.passed(
                    expected, f"does not resolve ({value.not_found.text(params.type)})",
                    **details)
            return Observation.failed(expected, f"resolved {_shown(value.values)}{source}",
                                      **details)
        if value.not_found is not None:
            why = value.not_found.text(params.type)
            return Observation.failed(expected, "does not resolve",
                                      f"expected {expected}, does not resolve ({why})",
                                      **details)
        observed = f"resolved {_shown(value.values)}{source}"
        if value.from_hosts_file and not params.allow_hosts_file:
            return Observation.failed(expected, observed,
                                      f"expected {expected}, {observed}; {value.dns_behind}",
                                      **details)
        if value.how == "ptr":
            # The canonical name (first) must match; with subset, any of the names.
            matched = params.matches(value.values[:1]) or (
                params.match == "subset" and params.matches(value.values))
        else:
            matched = params.matches(value.values)
        if matched:
            return Observation.passed(expected, observed, **details)
        return Observation.failed(expected, observed, f"expected {expected}, {observed}",
                                  **details)

    @staticmethod
    def _judge_query(params: DnsParams, value: DnsLookup,
                     details: dict[str, Any]) -> Observation:
        expected = params.expected
        if params.absent:
            if value.not_found is not None:
                return Observation.passed(expected, value.not_found.text(params.type),
                                          **details)
            return Observation.failed(expected,
                                      f"resolved {_shown(value.values)} via {value.via}",
                                      **details)
        if value.not_found is not None and value.not_found.rcode == "NXDOMAIN":
            return Observation.failed(expected, f"NXDOMAIN from {value.via}",
                                      f"expected {expected}, {value.via} answered NXDOMAIN",
                                      **details)
        observed = f"resolved {_shown(value.values)} via {value.via}"
        if params.matches(value.values):
            return Observation.passed(expected, observed, **details)
        return Observation.failed(expected, observed, f"expected {expected}, {observed}",
                                  **details)


def _absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _lookup_of(answer: StubAnswer, via: str, details: Mapping[str, Any]) -> DnsLookup:
    not_found = None if answer.values else NotFound(answer.rcode, via)
    return DnsLookup("query", answer.values, not_found, via, details=details)


def _ask_nameservers(ctx: CheckContext, name: str, record_type: str, budget: float,
                     search_list: bool, conf_index: int) -> StubAnswer:
    """The instance's nameservers' own answer over TCP from the instance (glibc's order);
    CouldNotObserve naming their failure when none answers."""
    conf = _resolv_conf(ctx, conf_index)
    try:
        return (search(ctx.target, conf, name, record_type, budget) if search_list
                else first_answer(ctx.target, conf, name, record_type, budget))
    except ResolverFailed as exc:
        raise CouldNotObserve(_system_failed(ctx, exc)) from None


def _resolv_conf(ctx: CheckContext, index: int) -> ResolvConf:
    return parse_resolv_conf(ctx.output(index).stdout)


def _system_failed(ctx: CheckContext, exc: ResolverFailed) -> str:
    return f"the system resolver on {ctx.item.host} failed: {exc}"
