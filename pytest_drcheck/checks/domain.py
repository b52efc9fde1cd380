"""domain: the instance's own membership of an Active Directory domain, one result per property.

The failure DR teams remember is a restored, domain-joined server whose machine account no
longer matches the domain ("the trust relationship between this workstation and the primary
domain failed"): nobody can log in, while every port is open. So the instance itself is asked:

- ``joined``: it is a member of the expected domain (realm, and NetBIOS name where the
  platform shows it), from its own configuration (no DC asked);
- ``dc``: the domain controller it locates and uses is one of the expected DCs;
- ``secure-channel``: the machine account's secret still matches the domain's (winbind's
  ``net ads testjoin``, ``adcli testjoin``; on Windows ``Test-ComputerSecureChannel``);
- ``kerberos``: the machine account obtains a Kerberos ticket with its own key (``kinit -k``
  with the host keytab, into a private credential cache);
- ``user/NAME``, ``group/NAME``: a domain account resolves through the instance's NSS (or
  SID lookup on Windows).

Dependents are skipped, not stacked: ``dc``, ``secure-channel`` and ``kerberos`` require
``joined``; ``secure-channel`` and ``kerberos`` require ``dc`` (with no DC answering, the one
failure says so); account lookups require ``secure-channel`` (they go through it).

The values below are the family's contract between platforms: a Linux observer
(``domain_linux``) and a Windows observer each produce them, one frozen dataclass per
property, and the one pure ``judge`` here compares them with the inventory's expectation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

from pytest_drcheck.checks.base import Check, CheckContext, Subject, site_service
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import Observation, PlanItem

JOINED = "joined"
DC = "dc"
SECURE_CHANNEL = "secure-channel"
KERBEROS = "kerberos"
USER = "user"
GROUP = "group"
PROPERTIES = (JOINED, DC, SECURE_CHANNEL, KERBEROS, USER, GROUP)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
REALM: dict[str, Any] = {
    "type": "string", "maxLength": 253, "pattern": rf"\A{_LABEL}(?:\.{_LABEL}){{1,126}}\Z",
    "x-expect": "the domain's DNS name / Kerberos realm, e.g. AD.CORP.EXAMPLE",
}
NETBIOS: dict[str, Any] = {
    "type": "string", "pattern": r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,14}\Z",
    "x-expect": "the domain's NetBIOS name (at most 15 characters), e.g. CORP",
}
# sAMAccountName-like names, optionally qualified (DOMAIN\\name or name@domain); no quotes,
# no control characters, bounded (they reach a shell command, quoted).
ACCOUNT: dict[str, Any] = {
    "type": "string", "pattern": r"\A[^\x00-\x1f\"'`$]{1,256}\Z",
    "x-expect": "an account name (drcheck, AD\\drcheck or drcheck@ad.corp.example)",
}
_ACCOUNTS: dict[str, Any] = {"type": "array", "uniqueItems": True, "items": ACCOUNT}
_DCS: dict[str, Any] = {"type": "array", "minItems": 1, "uniqueItems": True,
                        "items": vocabulary.HOST_ADDRESS}
DOMAIN_PROPERTIES: dict[str, Any] = {
    "description": {"type": "string"},
    "realm": REALM,
    "netbios": NETBIOS,
    "dcs": _DCS,
    "users": _ACCOUNTS,
    "groups": _ACCOUNTS,
}


# --- the observed values (the contract every platform's observer fulfils) -----------------


@dataclass(frozen=True)
class Membership:
    """What the instance says it is a member of, from its own state (no DC asked).
    ``realm`` None: not joined to any domain; ``netbios`` None where the platform does not
    show it (a keytab-only join)."""

    realm: str | None
    netbios: str | None
    # How it was read: "winbind", "sssd", "adcli keytab", "Windows".
    via: str
    # Why it is not joined, or what it showed, in a few words.
    answer: str = ""


@dataclass(frozen=True)
class DcInUse:
    """The domain controller the instance locates and uses; ``name`` None: none located."""

    name: str | None
    address: str | None
    # The tool asked: "wbinfo --dsgetdcname", "adcli info", "nltest /dsgetdc".
    via: str
    # Why none was located (the tool's one line), when none was.
    answer: str = ""


@dataclass(frozen=True)
class SecureChannel:
    """Whether the machine account's secret is still the domain's."""

    valid: bool
    # The tool as run: "net ads testjoin", "adcli testjoin", "Test-ComputerSecureChannel".
    via: str
    # Its answer in one line (for a broken channel: the error it gave).
    answer: str


@dataclass(frozen=True)
class MachineTicket:
    """A Kerberos ticket-granting ticket obtained with the machine account's own key.
    ``principal`` None: the keytab holds no machine key (or is missing: ``answer`` says)."""

    principal: str | None
    obtained: bool
    # kinit's error when no ticket came, the keytab's complaint when there is no key.
    answer: str = ""
    keytab: str = ""


@dataclass(frozen=True)
class AccountLookup:
    """A domain user or group looked up through the instance's NSS (or SID lookup)."""

    kind: Literal["user", "group"]
    # The name as looked up (qualified: AD\\drcheck).
    name: str
    # The entry found (a passwd/group line, a SID); None: the lookup found nothing.
    entry: str | None
    # "getent passwd", "getent group", "Get-LocalUser", ...
    via: str


DomainValue: TypeAlias = Membership | DcInUse | SecureChannel | MachineTicket | AccountLookup


# --- typed parameters ----------------------------------------------------------------------


@dataclass(frozen=True)
class DomainParams:
    """One domain test's parameters (``expand`` output), typed."""

    prop: str
    domain: str
    realm: str
    netbios: str | None
    dcs: tuple[str, ...]
    # For user/group: the account as the inventory wrote it.
    account: str | None = None

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> DomainParams:
        return cls(params["property"], params["domain"], params["realm"],
                   params.get("netbios"), tuple(params.get("dcs") or ()),
                   params.get("account"))

    @property
    def shown_domain(self) -> str:
        return f"{self.realm} ({self.netbios})" if self.netbios else self.realm


def qualified(account: str, netbios: str | None, realm: str, style: str) -> str:
    """The account as the platform's lookup wants it: as written when already qualified
    (``AD\\name``, ``name@realm``), else ``NETBIOS\\name`` (winbind, Windows) or
    ``name@realm`` (sssd)."""
    if "\\" in account or "@" in account:
        return account
    if style == "backslash" and netbios:
        return f"{netbios}\\{account}"
    return f"{account}@{realm.lower()}"


def _same_name(a: str, b: str) -> bool:
    return a.rstrip(".").lower() == b.rstrip(".").lower()


def dc_matches(expected: str, seen: DcInUse) -> bool:
    """A located DC is the expected one when its name is that name (case, trailing dot and
    the domain suffix aside: winbind names DCs by their short name) or its address is."""
    if seen.address and _same_name(expected, seen.address):
        return True
    if not seen.name:
        return False
    name = seen.name.lstrip("\\")
    return _same_name(expected, name) or (
        "." not in name and _same_name(expected.split(".")[0], name))


# --- the check -----------------------------------------------------------------------------


class DomainCheck(Check[DomainValue]):
    type_name: ClassVar[str] = "domain"
    site_key: ClassVar[str | None] = "domains"
    default_timeout: ClassVar[float] = 20.0
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "required": ["domain"],
        "properties": {
            "domain": {"type": "string", "minLength": 1,
                       "x-expect": "the name of a domain under site.domains"},
            "dcs": _DCS,
            "users": _ACCOUNTS,
            "groups": _ACCOUNTS,
        },
    }
    site_schema: ClassVar[Mapping[str, Any] | None] = {
        "type": "object", "x-kind": "domain",
        "propertyNames": vocabulary.NAME,
        "additionalProperties": {"type": "object", "additionalProperties": False,
                                 "required": ["realm"], "properties": DOMAIN_PROPERTIES},
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        name = entry["domain"]
        spec: Mapping[str, Any] = site_service(site.get("domains", {}), name, "domain",
                                               "site.domains", ".domain")
        common = {"domain": name, "realm": spec["realm"].rstrip(".").upper(),
                  "netbios": spec["netbios"].upper() if "netbios" in spec else None,
                  "dcs": list(entry.get("dcs", spec.get("dcs", ())))}
        joined, dc, channel = (f"domain[{name}/{p}]" for p in (JOINED, DC, SECURE_CHANNEL))
        subjects = [
            Subject(f"{name}/{JOINED}", {**common, "property": JOINED}),
            Subject(f"{name}/{DC}", {**common, "property": DC}, (joined,)),
            Subject(f"{name}/{SECURE_CHANNEL}", {**common, "property": SECURE_CHANNEL},
                    (joined, dc)),
            Subject(f"{name}/{KERBEROS}", {**common, "property": KERBEROS}, (joined, dc)),
        ]
        for kind, key in ((USER, "users"), (GROUP, "groups")):
            for account in entry.get(key, spec.get(key, ())):
                subjects.append(Subject(f"{name}/{kind}/{account}",
                                        {**common, "property": kind, "account": account},
                                        (joined, channel)))
        return subjects

    # The platform's observer is imported where it is used: it imports this module's values.
    def commands(self, item: PlanItem) -> Sequence[str]:
        if item.platform == "windows":
            from pytest_drcheck.checks.windows import domain as windows

            return windows.commands(DomainParams.of(item.params))
        from pytest_drcheck.checks import domain_linux

        return domain_linux.commands(DomainParams.of(item.params))

    def expected(self, item: PlanItem) -> str:
        return expected_text(DomainParams.of(item.params))

    def observe(self, ctx: CheckContext) -> DomainValue:
        if ctx.item.platform == "windows":
            from pytest_drcheck.checks.windows import domain as windows

            return windows.observe(ctx, DomainParams.of(ctx.params))
        from pytest_drcheck.checks import domain_linux

        return domain_linux.observe(ctx, DomainParams.of(ctx.params))

    def judge(self, item: PlanItem, value: DomainValue) -> Observation:
        return judge(DomainParams.of(item.params), value)


def expected_text(params: DomainParams) -> str:
    if params.prop == JOINED:
        return f"member of {params.shown_domain}"
    if params.prop == DC:
        return (f"a DC among {', '.join(params.dcs)}" if params.dcs
                else f"a DC of {params.realm}")
    if params.prop == SECURE_CHANNEL:
        return "secure channel valid"
    if params.prop == KERBEROS:
        return f"a machine ticket from {params.realm}"
    return f"{params.prop} {params.account} resolves"


def judge(params: DomainParams, value: DomainValue) -> Observation:
    """Pure: the verdict on one observed value against the inventory's expectation."""
    expected = expected_text(params)
    if isinstance(value, Membership):
        return _judge_membership(params, expected, value)
    if isinstance(value, DcInUse):
        return _judge_dc(params, expected, value)
    if isinstance(value, SecureChannel):
        observed = f"{value.via}: {value.answer}"
        if value.valid:
            return Observation.passed(expected, observed, via=value.via)
        return Observation.failed(expected, observed,
                                  f"secure channel broken ({value.via}: {value.answer})",
                                  via=value.via)
    if isinstance(value, MachineTicket):
        return _judge_ticket(params, expected, value)
    return _judge_account(expected, value)


def _judge_membership(params: DomainParams, expected: str, seen: Membership) -> Observation:
    if seen.realm is None:
        why = f": {seen.answer}" if seen.answer else ""
        return Observation.failed(expected, f"not joined ({seen.via})",
                                  f"expected {expected}, observed not joined ({seen.via}{why})",
                                  via=seen.via)
    shown = f"{seen.realm.upper()} ({seen.netbios.upper()})" if seen.netbios else \
        seen.realm.upper()
    observed = f"member of {shown} ({seen.via})"
    realm_ok = _same_name(seen.realm, params.realm)
    # A platform that does not show the NetBIOS name cannot contradict it.
    netbios_ok = (params.netbios is None or seen.netbios is None
                  or _same_name(seen.netbios, params.netbios))
    if realm_ok and netbios_ok:
        return Observation.passed(expected, observed, via=seen.via)
    return Observation.failed(expected, observed, via=seen.via)


def _judge_dc(params: DomainParams, expected: str, seen: DcInUse) -> Observation:
    if seen.name is None and seen.address is None:
        why = f": {seen.answer}" if seen.answer else ""
        return Observation.failed(expected, "no DC located",
                                  f"expected {expected}, no DC located ({seen.via}{why})",
                                  via=seen.via)
    name = (seen.name or "").lstrip("\\")
    shown = " ".join(part for part in (name, f"({seen.address})" if seen.address else "")
                     if part) or "unnamed"
    observed = f"uses {shown} ({seen.via})"
    if not params.dcs or any(dc_matches(dc, seen) for dc in params.dcs):
        return Observation.passed(expected, observed, dc=name or seen.address, via=seen.via)
    return Observation.failed(expected, observed,
                              f"expected {expected}, observed {shown} ({seen.via})",
                              dc=name or seen.address, via=seen.via)


def _judge_ticket(params: DomainParams, expected: str, seen: MachineTicket) -> Observation:
    where = f" in {seen.keytab}" if seen.keytab else ""
    if seen.principal is None:
        why = f": {seen.answer}" if seen.answer else ""
        return Observation.failed(expected, "no machine key",
                                  f"expected {expected}, no machine key{where}{why}")
    if not seen.obtained:
        return Observation.failed(expected, f"kinit -k {seen.principal} failed",
                                  f"expected {expected}, kinit -k {seen.principal} failed: "
                                  f"{seen.answer}", principal=seen.principal)
    realm = seen.principal.rpartition("@")[2]
    observed = f"ticket for {seen.principal}"
    if realm and not _same_name(realm, params.realm):
        return Observation.failed(expected, observed,
                                  f"expected {expected}, the machine key is for {realm} "
                                  f"({seen.principal})", principal=seen.principal)
    return Observation.passed(expected, observed, principal=seen.principal)


def _judge_account(expected: str, seen: AccountLookup) -> Observation:
    if seen.entry is None:
        return Observation.failed(expected, "not found",
                                  f"expected {expected}, {seen.via} '{seen.name}' found nothing")
    return Observation.passed(expected, f"{seen.via} '{seen.name}': {seen.entry}")
