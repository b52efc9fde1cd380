"""domain on Windows: membership, DC, secure channel, machine ticket and SID lookups into the
domain family's values, judged by its judge."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_drcheck.checks import domain as family
from pytest_drcheck.checks.windows import domain as windows
from pytest_drcheck.model import CouldNotObserve, Outcome
from tests.checks.windows.helpers import recorded

SITE = {"domains": {"corp": {"realm": "corp.example", "netbios": "CORP",
                             "dcs": ["dc01.corp.example"], "users": ["drcheck"]}}}


def params(prop: str) -> Any:
    subjects = family.DomainCheck().expand({"domain": "corp"}, SITE)
    subject = next(s for s in subjects if s.params["property"] == prop)
    return family.DomainParams.of(subject.params)


def verdict(prop: str, value: Any) -> Any:
    return family.judge(params(prop), value)


def test_membership() -> None:
    joined = windows.parse_membership(recorded("win32-computersystem-joined.json"), "win01")
    assert joined == family.Membership("corp.example", None, "Windows")
    assert verdict("joined", joined).outcome is Outcome.PASSED
    alone = windows.parse_membership(recorded("win32-computersystem-workgroup.json"), "win01")
    failed = verdict("joined", alone)
    assert failed.outcome is Outcome.FAILED
    assert failed.reason.endswith("observed not joined (Windows: workgroup WORKGROUP)")


def test_dc_in_use() -> None:
    seen = windows.parse_dc(recorded("nltest-dsgetdc.txt"), 0)
    assert seen == family.DcInUse("DC01.corp.example", "10.77.0.53", "nltest /dsgetdc")
    assert verdict("dc", seen).outcome is Outcome.PASSED
    none = windows.parse_dc(recorded("nltest-dsgetdc-no-domain.txt"), 1)
    assert verdict("dc", none).reason == (
        "expected a DC among dc01.corp.example, no DC located (nltest /dsgetdc: Getting DC "
        "name failed: Status = 1355 0x54b ERROR_NO_SUCH_DOMAIN)")
    assert windows.dc_command("corp.example") == (
        "nltest ('/dsgetdc:' + 'corp.example'); if ($LASTEXITCODE -ne 0) { "
        "$global:LASTEXITCODE = 1 }")


def test_secure_channel() -> None:
    good = windows.parse_secure_channel('{"valid":true}', "win01")
    assert verdict("secure-channel", good).outcome is Outcome.PASSED
    broken = verdict("secure-channel", windows.parse_secure_channel('{"valid":false}', "win01"))
    assert broken.outcome is Outcome.FAILED
    assert broken.reason.startswith("secure channel broken (Test-ComputerSecureChannel: False")
    with pytest.raises(CouldNotObserve, match="could not test the secure channel: Cannot "
                                              "verify the secure channel"):
        windows.parse_secure_channel('{"valid":false,"error":"Cannot verify the secure channel '
                                     'password for the local computer"}', "win01")


def test_machine_ticket() -> None:
    ticket = windows.parse_ticket(recorded("klist-tgt-machine.txt"), 0)
    assert ticket.principal == "WIN01$@CORP.EXAMPLE" and ticket.obtained
    assert verdict("kerberos", ticket).outcome is Outcome.PASSED
    none = verdict("kerberos", windows.parse_ticket(recorded("klist-tgt-none.txt"), 1))
    assert none.outcome is Outcome.FAILED and "no machine key" in none.reason


def test_account_lookup_by_sid() -> None:
    user = params("user")
    (command,) = windows.commands(user)
    assert "NTAccount('CORP\\drcheck')" in command
    found = family.AccountLookup("user", "CORP\\drcheck", "S-1-5-21-1-2-3-1105", "SID lookup")
    assert family.judge(user, found).outcome is Outcome.PASSED


@pytest.mark.parametrize(("prop", "answer", "outcome"), [
    ("joined", "win32-computersystem-joined.json", Outcome.PASSED),
    ("dc", "nltest-dsgetdc.txt", Outcome.PASSED),
    ("kerberos", "klist-tgt-machine.txt", Outcome.PASSED),
])
def test_observed_through_the_powershell_batch(prop: str, answer: str, outcome: Outcome) -> None:
    from pytest_drcheck.checks.base import CheckContext
    from pytest_drcheck.targets import powershell_batch
    from tests.checks.windows.helpers import EmulatedWindows, windows_item
    from tests.targets.fake_windows import Answer

    check = family.DomainCheck()
    item = windows_item(check, f"corp/{prop}", {"domain": "corp"}, SITE)
    commands = list(windows.commands(params(prop)))
    target = EmulatedWindows({commands[0]: Answer(0, recorded(answer))})
    outputs = powershell_batch.run_batch(target.run, "win01", commands, 10)
    ctx = CheckContext(item, target, outputs, 10, lambda name: target, command_timeout=10)
    assert family.judge(params(prop), windows.observe(ctx, params(prop))).outcome is outcome
