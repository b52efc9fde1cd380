"""The Linux observer of the ``domain`` family: one batched shell command per property.

Which membership stack the instance uses is detected on the instance, by its own NSS
configuration: ``winbind`` in /etc/nsswitch.conf means Samba's winbindd (asked with ``wbinfo``),
``sss`` means sssd (joined with adcli or realmd: ``adcli testjoin``, ``adcli info``); anything
else is read from the host keytab alone (a keytab-only join). Each command prints ``key=value``
lines and the tool's own output behind ``out:``, and always exits 0, so what a tool answered
(a broken channel, a missing keytab) is data and what kept it from answering (the tool is
missing, winbindd does not answer, the command timed out) is "could not observe".

The secure channel of a winbind member is ``net ads testjoin`` (a fresh authentication with
the machine secret), not ``wbinfo -t``: measured against Samba 4.17, ``wbinfo -t`` and
``wbinfo --ping-dc`` still report success after the machine password was reset on the DC
(winbindd keeps its established NETLOGON session, and the DC accepts the previous password
there), while every new logon already fails.

The machine ticket goes to a private credential cache (``KRB5CCNAME=MEMORY:``): the user's
own tickets are never read or replaced. It is requested with ``kdc_timesync = 0``: MIT's kinit
otherwise corrects its own clock from the KDC's skew error and succeeds, while every service on
the instance still rejects its users' tickets (an acceptor checks authenticators against the
local clock): the ticket request must see the skew the services see.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_drcheck.checks.base import CheckContext
from pytest_drcheck.checks.domain import (
    DC,
    GROUP,
    JOINED,
    KERBEROS,
    SECURE_CHANNEL,
    USER,
    AccountLookup,
    DcInUse,
    DomainParams,
    DomainValue,
    MachineTicket,
    Membership,
    SecureChannel,
)
from pytest_drcheck.model import CouldNotObserve

# Which stack the instance's NSS uses; printed first by every command as "via=...".
DETECT = (
    "if grep -Eq '^(passwd|group):.*[[:space:]]winbind([[:space:]]|$)' /etc/nsswitch.conf "
    "2>/dev/null; then via=winbind; "
    "elif grep -Eq '^(passwd|group):.*[[:space:]]sss([[:space:]]|$)' /etc/nsswitch.conf "
    "2>/dev/null; then via=sssd; else via=keytab; fi; echo \"via=$via\"; "
)
# Run a command, print its status and its output (prefixed, so no line of it can pose as a
# field): `report CMD ARGS...`.
REPORT = ("report() { o=$(\"$@\" 2>&1); echo \"rc=$?\"; "
          "printf '%s\\n' \"$o\" | sed 's/^/out:/'; }; ")
# A shell's status for a command it cannot find.
NOT_FOUND = 127
# getent's status for a key it did not find.
GETENT_NOT_FOUND = 2
# How long a winbind member's DC may take to answer a NETLOGON ping: a DC that answers does
# so in milliseconds (10-400 ms measured, loaded machine); one that is gone takes winbindd
# about 10 s to give up, longer than a drill's whole command timeout.
PING_DC_SECONDS = 5
# coreutils timeout's status when it stopped the command.
TIMED_OUT = 124
_PING_DC = re.compile(r'dc connection to "([^"]*)" succeeded')
# What wbinfo says when winbindd does not answer at all (not a verdict on the domain).
WINBIND_DOWN = ("WBC_ERR_WINBIND_NOT_AVAILABLE", "WBC_ERR_NO_MEMORY")
_MEMBERSHIP = (
    DETECT + REPORT
    + "if [ \"$via\" = winbind ]; then report wbinfo --own-domain; "
    "d=$(wbinfo --own-domain 2>/dev/null) && report wbinfo --domain-info=\"$d\"; "
    "else report klist -k; fi"
)
_KERBEROS = (
    REPORT
    + "k=$(klist -k 2>&1); echo \"krc=$?\"; "
    "printf '%s\\n' \"$k\" | sed -n 's/^Keytab name: /keytab=/p'; "
    "p=$(printf '%s\\n' \"$k\" | awk '$2 ~ /[$]@/ {print $2; exit}'); "
    "if [ -z \"$p\" ]; then printf '%s\\n' \"$k\" | sed 's/^/out:/'; "
    "else echo \"principal=$p\"; t=$(mktemp) || exit 0; "
    "printf '[libdefaults]\\n\\tkdc_timesync = 0\\n' >\"$t\"; "
    "report env KRB5_CONFIG=\"$t:${KRB5_CONFIG:-/etc/krb5.conf}\" KRB5CCNAME=MEMORY:drcheck "
    "kinit -k \"$p\"; rm -f \"$t\"; fi"
)


def commands(params: DomainParams) -> tuple[str, ...]:
    """The one command a domain test reads (identical ones run once per host)."""
    if params.prop == JOINED:
        return (_MEMBERSHIP,)
    if params.prop == KERBEROS:
        return (_KERBEROS,)
    if params.prop == SECURE_CHANNEL:
        return (DETECT + REPORT + "if [ \"$via\" = winbind ]; then report net ads testjoin; "
                "else report adcli testjoin; fi",)
    if params.prop == DC:
        realm = shlex.quote(params.realm)
        lower = shlex.quote(params.realm.lower())
        return (DETECT + REPORT
                + f"if [ \"$via\" = winbind ]; then report timeout {PING_DC_SECONDS} wbinfo "
                f"--ping-dc; report wbinfo --dsgetdcname={realm}; "
                f"elif [ \"$via\" = sssd ] && command -v sssctl >/dev/null 2>&1; then "
                f"echo tool=sssctl; report sssctl domain-status {lower} --active-server; "
                f"else echo tool=adcli; report adcli info {lower}; fi",)
    database = "passwd" if params.prop == USER else "group"
    account = shlex.quote(params.account or "")
    suffix = shlex.quote("@" + params.realm.lower())
    return (DETECT + REPORT + f"a={account}; case \"$a\" in *\\\\*|*@*) q=$a;; "
            "*) if [ \"$via\" = winbind ]; then "
            "q=$(printf '%s\\\\%s' \"$(wbinfo --own-domain 2>/dev/null)\" \"$a\"); "
            f"else q=$a{suffix}; fi;; esac; printf 'name=%s\\n' \"$q\"; "
            f"report getent {database} -- \"$q\"",)


# --- parsing what the commands printed ------------------------------------------------------


@dataclass
class Reported:
    """One command's fields and, per ``report``, the tool's status and output lines."""

    fields: dict[str, str] = field(default_factory=dict)
    # (status, output lines) of each `report`, in order.
    runs: list[tuple[int, list[str]]] = field(default_factory=list)
    loose: list[str] = field(default_factory=list)

    def field_of(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)


def parse_report(text: str) -> Reported:
    reported = Reported()
    for line in text.splitlines():
        if line.startswith("out:"):
            if reported.runs:
                reported.runs[-1][1].append(line[4:])
            else:
                reported.loose.append(line[4:])
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "rc":
            try:
                reported.runs.append((int(value), []))
            except ValueError:
                continue
        else:
            reported.fields.setdefault(key, value)
    return reported


def _one_line(lines: Sequence[str]) -> str:
    text = " ".join(" ".join(lines).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _run(reported: Reported, index: int, what: str, host: str) -> tuple[int, list[str]]:
    """The ``index``-th reported run; a tool that is missing or a stack that does not answer
    could not observe anything."""
    if index >= len(reported.runs):
        raise CouldNotObserve(f"{what} on {host} printed no answer")
    status, lines = reported.runs[index]
    if status == NOT_FOUND:
        raise CouldNotObserve(f"{what} is not available on {host} (command not found)")
    text = _one_line(lines)
    # wbinfo --own-domain says so and still exits 0 when winbindd does not answer.
    if any(code in text for code in WINBIND_DOWN):
        raise CouldNotObserve(f"winbindd does not answer on {host} ({what}: {text})")
    return status, lines


def _via(reported: Reported) -> str:
    return reported.field_of("via", "keytab")


def machine_principals(lines: Sequence[str]) -> list[str]:
    """Machine-account principals (``NAME$@REALM``) in ``klist -k`` output, in order."""
    found: list[str] = []
    for line in lines:
        parts = line.split()
        if (len(parts) >= 2 and parts[0].isdigit() and "$@" in parts[1]
                and parts[1] not in found):
            found.append(parts[1])
    return found


def parse_membership(text: str, host: str) -> Membership:
    reported = parse_report(text)
    if _via(reported) != "winbind":
        status, lines = _run(reported, 0, "klist -k", host)
        principals = machine_principals(lines)
        if status != 0 or not principals:
            return Membership(None, None, "keytab", _one_line(lines) or "no machine key")
        realm = principals[0].rpartition("@")[2]
        stack = "sssd" if _via(reported) == "sssd" else "keytab"
        return Membership(realm, None, stack, principals[0])
    status, lines = _run(reported, 0, "wbinfo --own-domain", host)
    if status != 0:
        raise CouldNotObserve(f"wbinfo --own-domain failed on {host}: {_one_line(lines)}")
    netbios = _one_line(lines)
    status, lines = _run(reported, 1, f"wbinfo --domain-info={netbios}", host)
    info = {key.strip().lower(): value.strip()
            for key, sep, value in (line.partition(":") for line in lines) if sep}
    if status != 0 or not info.get("alt_name"):
        # winbindd knows its own domain but not as an AD domain: not joined to one.
        return Membership(None, netbios, "winbind", _one_line(lines) or "no realm")
    return Membership(info["alt_name"], info.get("name", netbios), "winbind")


def parse_secure_channel(text: str, host: str) -> SecureChannel:
    reported = parse_report(text)
    tool = "net ads testjoin" if _via(reported) == "winbind" else "adcli testjoin"
    status, lines = _run(reported, 0, tool, host)
    said = [line.strip() for line in lines if line.strip()]
    if not said:
        return SecureChannel(status == 0, tool, f"exit status {status}")
    # The verdict is the last line ("Join is OK"); before it come the steps that failed on
    # the way (a Kerberos attempt before an accepted fallback), which name the cause of a
    # broken channel.
    shown = said[-1] if status == 0 or len(said) == 1 else f"{said[0]}; {said[-1]}"
    return SecureChannel(status == 0, tool, _one_line([shown]))


def parse_dc(text: str, host: str) -> DcInUse:
    reported = parse_report(text)
    via = _via(reported)
    if via == "winbind":
        return _winbind_dc(reported, host)
    tool = ("sssctl domain-status" if reported.field_of("tool") == "sssctl"
            else "adcli info")
    status, lines = _run(reported, 0, tool, host)
    name = address = None
    for line in lines:
        key, sep, value = line.replace(" = ", ":", 1).partition(":")
        key = key.strip().lower()
        if not sep:
            continue
        if key in ("domain-controller", "ad domain controller") and name is None:
            name = value.strip() or None
        elif key == "domain-controller-address":
            address = value.strip() or None
    if status != 0 or (name is None and address is None):
        return DcInUse(None, None, tool, _one_line(lines) or f"exit status {status}")
    return DcInUse(name, address, tool)


def _winbind_dc(reported: Reported, host: str) -> DcInUse:
    """The DC winbindd reaches right now (``wbinfo --ping-dc``; ``--dsgetdcname`` alone
    answers from a cache while the DC is gone), with its address from ``--dsgetdcname``."""
    tool = "wbinfo --ping-dc"
    status, lines = _run(reported, 0, tool, host)
    text = _one_line(lines)
    found = _PING_DC.search(text)
    if status == TIMED_OUT:
        return DcInUse(None, None, tool, f"no answer within {PING_DC_SECONDS} s")
    if status != 0 or found is None or not found.group(1):
        return DcInUse(None, None, tool, text or f"exit status {status}")
    name, address = found.group(1), None
    if len(reported.runs) > 1 and reported.runs[1][0] == 0:
        cached = [line.strip().lstrip("\\") for line in reported.runs[1][1] if line.strip()]
        if len(cached) > 1 and cached[0].lower() == name.lower():
            address = cached[1]
    return DcInUse(name, address, tool)


def parse_ticket(text: str, host: str) -> MachineTicket:
    reported = parse_report(text)
    keytab = reported.field_of("keytab")
    principal = reported.field_of("principal") or None
    if principal is None:
        said = _one_line(reported.loose)
        if reported.field_of("krc") == str(NOT_FOUND):
            raise CouldNotObserve(f"klist is not available on {host} (command not found); "
                                  "is krb5-user installed?")
        if "ermission denied" in said:
            raise CouldNotObserve(f"cannot read the keytab on {host}: {said}")
        complaint = _one_line([line for line in reported.loose
                               if not line.startswith(("Keytab name:", "KVNO ", "----"))])
        return MachineTicket(None, False, complaint or "no NAME$@REALM principal", keytab)
    status, lines = _run(reported, 0, "kinit", host)
    answer = _one_line(lines)
    return MachineTicket(principal, status == 0, answer or f"exit status {status}", keytab)


def parse_account(text: str, host: str, kind: str) -> AccountLookup:
    reported = parse_report(text)
    database = "passwd" if kind == USER else "group"
    name = reported.field_of("name")
    tool = f"getent {database}"
    if not reported.runs:
        raise CouldNotObserve(f"{tool} on {host} printed no answer")
    status, lines = _run(reported, 0, tool, host)
    entry = _one_line(lines)
    lookup_kind: str = USER if kind == USER else GROUP
    if status == GETENT_NOT_FOUND:
        return AccountLookup("user" if lookup_kind == USER else "group", name, None, tool)
    if status != 0 or not entry:
        raise CouldNotObserve(f"{tool} '{name}' failed on {host} (exit {status})"
                              + (f": {entry}" if entry else ""))
    return AccountLookup("user" if lookup_kind == USER else "group", name, entry, tool)


# What each property's script runs, for a message about the script itself (it timed out...).
SHOWN = {JOINED: "wbinfo --own-domain (or klist -k)",
         KERBEROS: "kinit -k", SECURE_CHANNEL: "net ads testjoin (or adcli testjoin)",
         DC: "wbinfo --ping-dc (or sssctl, adcli info)", USER: "getent passwd",
         GROUP: "getent group"}


def observe(ctx: CheckContext, params: DomainParams) -> DomainValue:
    text = ctx.output(0, shown=SHOWN[params.prop]).stdout
    host = ctx.item.host
    if params.prop == JOINED:
        return parse_membership(text, host)
    if params.prop == DC:
        return parse_dc(text, host)
    if params.prop == SECURE_CHANNEL:
        return parse_secure_channel(text, host)
    if params.prop == KERBEROS:
        return parse_ticket(text, host)
    return parse_account(text, host, params.prop)
