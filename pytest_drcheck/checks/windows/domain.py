"""domain on Windows: the instance's own membership, into the ``domain`` family's values
(``Membership``, ``DcInUse``, ``SecureChannel``, ``MachineTicket``, ``AccountLookup``), judged
by the family's one judge. Same shape as the Linux observer: ``commands(params)`` and
``observe(ctx, params)``.

- joined: ``Win32_ComputerSystem`` (PartOfDomain, Domain), read locally, no DC asked; Windows
  does not show the NetBIOS name there, which the family's judge then does not contradict;
- dc: ``nltest /dsgetdc:REALM`` (DC and Address lines);
- secure-channel: ``Test-ComputerSecureChannel`` (True/False, its error when it cannot ask);
- kerberos: ``klist -li 0x3e7 tgt``, the machine account's (LocalSystem's) ticket-granting
  ticket, its client name and domain;
- user/group: the account translated to its SID (``NTAccount.Translate``), which goes through
  the secure channel as a Linux NSS lookup goes through winbind/sssd.

The family imports this module where it is used (``DomainCheck.commands``/``observe``), so
this module can import the family's values at its top.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from pytest_drcheck.checks import domain as family
from pytest_drcheck.checks.base import CheckContext
from pytest_drcheck.checks.domain import (
    AccountLookup,
    DcInUse,
    DomainParams,
    DomainValue,
    MachineTicket,
    Membership,
    SecureChannel,
)
from pytest_drcheck.model import CouldNotObserve
from pytest_drcheck.targets.powershell_batch import ps_quote

VIA = "Windows"
_FAILED_TO_1 = "; if ($LASTEXITCODE -ne 0) { $global:LASTEXITCODE = 1 }"
MEMBERSHIP_COMMAND = ("Get-CimInstance Win32_ComputerSystem -ErrorAction Stop | Select-Object "
                      "PartOfDomain, Domain, Workgroup | ConvertTo-Json -Compress")
SECURE_CHANNEL_COMMAND = ("try { $ok = Test-ComputerSecureChannel -ErrorAction Stop; "
                          "ConvertTo-Json -Compress @{ valid = [bool]$ok } } catch { "
                          "ConvertTo-Json -Compress @{ valid = $false; "
                          "error = [string]$_.Exception.Message } }")
TICKET_COMMAND = "klist -li 0x3e7 tgt" + _FAILED_TO_1
_LINE = re.compile(r"^\s*([A-Za-z ]+?)\s*:\s*(.*?)\s*$")


def dc_command(realm: str) -> str:
    return f"nltest ('/dsgetdc:' + {ps_quote(realm)})" + _FAILED_TO_1


def account_command(name: str) -> str:
    return (f"try {{ (New-Object System.Security.Principal.NTAccount({ps_quote(name)}))"
            ".Translate([System.Security.Principal.SecurityIdentifier]).Value } catch { "
            "$global:LASTEXITCODE = 2 }")


def commands(params: DomainParams) -> Sequence[str]:
    if params.prop == family.JOINED:
        return (MEMBERSHIP_COMMAND,)
    if params.prop == family.DC:
        return (dc_command(params.realm),)
    if params.prop == family.SECURE_CHANNEL:
        return (SECURE_CHANNEL_COMMAND,)
    if params.prop == family.KERBEROS:
        return (TICKET_COMMAND,)
    return (account_command(family.qualified(params.account or "", params.netbios,
                                             params.realm, "backslash")),)


def _fields(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            found.setdefault(match.group(1).lower(), match.group(2))
    return found


def _first(text: str) -> str:
    return next((" ".join(line.split()) for line in text.splitlines() if line.strip()), "")[:160]


def parse_membership(text: str, host: str) -> Membership:
    try:
        data = json.loads(text)
    except ValueError:
        raise CouldNotObserve(f"Win32_ComputerSystem on {host} printed no JSON: "
                              f"{text.strip()[:80]!r}") from None
    if isinstance(data, dict) and data.get("PartOfDomain") is True and data.get("Domain"):
        return Membership(str(data["Domain"]), None, VIA)
    workgroup = data.get("Workgroup") if isinstance(data, dict) else None
    return Membership(None, None, VIA, f"workgroup {workgroup}" if workgroup
                                else "not part of a domain")


def parse_dc(text: str, status: int) -> DcInUse:
    via = "nltest /dsgetdc"
    fields = _fields(text)
    if status != 0 or "dc" not in fields:
        return DcInUse(None, None, via, _first(text) or f"exit {status}")
    address = fields.get("address", "").lstrip("\\") or None
    return DcInUse(fields["dc"].lstrip("\\"), address, via)


def parse_secure_channel(text: str, host: str) -> SecureChannel:
    via = "Test-ComputerSecureChannel"
    try:
        data = json.loads(text)
    except ValueError:
        raise CouldNotObserve(f"{via} on {host} printed no JSON: {text.strip()[:80]!r}"
                              ) from None
    if not isinstance(data, dict):
        raise CouldNotObserve(f"{via} on {host} printed {text.strip()[:80]!r}")
    if "error" in data:
        # It could not even ask (no DC, no right): the channel was not observed.
        raise CouldNotObserve(f"{via} on {host} could not test the secure channel: "
                              f"{_first(str(data['error']))}")
    if data.get("valid") is True:
        return SecureChannel(True, via, "True")
    return SecureChannel(False, via, "False (the secure channel between the computer "
                                                "and its domain is broken)")


def parse_ticket(text: str, status: int) -> MachineTicket:
    fields = _fields(text)
    client, domain = fields.get("clientname"), fields.get("domainname")
    if status != 0 or not client:
        return MachineTicket(None, False, _first(text) or f"exit {status}",
                                       "LocalSystem (0x3e7)")
    principal = f"{client}@{domain}" if domain and "@" not in client else client
    return MachineTicket(principal, True, keytab="LocalSystem (0x3e7)")


def observe(ctx: CheckContext, params: DomainParams) -> DomainValue:
    host = ctx.item.host
    if params.prop == family.JOINED:
        return parse_membership(ctx.output(0).stdout, host)
    if params.prop == family.DC:
        result = ctx.output(0, accept=(0, 1))
        return parse_dc(result.stdout, result.exit_status)
    if params.prop == family.SECURE_CHANNEL:
        return parse_secure_channel(ctx.output(0).stdout, host)
    if params.prop == family.KERBEROS:
        result = ctx.output(0, accept=(0, 1))
        return parse_ticket(result.stdout, result.exit_status)
    result = ctx.output(0, accept=(0, 2))
    name = family.qualified(params.account or "", params.netbios, params.realm, "backslash")
    sid = result.stdout.strip() if result.exit_status == 0 else ""
    return AccountLookup("user" if params.prop == family.USER else "group", name, sid or None,
                         "SID lookup")
