"""domain: expansion, the pure judge, and the Linux parsers on outputs recorded from real tools.

Recorded outputs come from Samba 4.17.12 (Debian 12: winbindd, wbinfo, net) and MIT Kerberos
1.20.1 (klist, kinit), on a member joined to a Samba AD DC (realm AD.CORP.EXAMPLE, NetBIOS AD):
healthy, after the machine password was reset on the DC, with the keytab gone, with winbindd
stopped, and with the member's clock 10 minutes ahead (libfaketime).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytest_drcheck.checks import domain_linux
from pytest_drcheck.checks.base import ExpansionError
from pytest_drcheck.checks.domain import (
    AccountLookup,
    DcInUse,
    DomainCheck,
    DomainParams,
    MachineTicket,
    Membership,
    SecureChannel,
    judge,
    qualified,
)
from pytest_drcheck.checks.domain_linux import (
    parse_account,
    parse_dc,
    parse_membership,
    parse_secure_channel,
    parse_ticket,
)
from pytest_drcheck.inventory import InventoryError, load_plan
from pytest_drcheck.model import CouldNotObserve, Outcome
from tests.checks.instances import context, item_of, ran

CHECK = DomainCheck()
SITE = {"domains": {"ad": {"realm": "ad.corp.example", "netbios": "AD",
                           "dcs": ["dc02.ad.corp.example"], "users": ["drcheck"],
                           "groups": ["Domain Users"]}}}
ENTRY = {"domain": "ad"}

# --- recorded outputs (the tool's own text; `report` prefixes each line with "out:") -------

OWN_DOMAIN = "AD"
DOMAIN_INFO = """Name              : AD
Alt_Name          : ad.corp.example
SID               : S-1-5-21-1464171287-4047117956-2402972448
Active Directory  : Yes
Native            : No
Primary           : Yes"""
WINBINDD_DOWN_OWN_DOMAIN = (
    "could not obtain winbind interface details: WBC_ERR_WINBIND_NOT_AVAILABLE\n"
    "could not obtain winbind domain name!\n(null)")
DSGETDCNAME = r"""\\dc02.ad.corp.example
\\10.77.0.21
1
81bacf73-4f18-4c1a-bf66-95280876eecb
ad.corp.example
ad.corp.example
0xe00013fd
Default-First-Site-Name
Default-First-Site-Name"""
NO_DC = "Could not find dc for AD.CORP.EXAMPLE"
PING_DC = ('checking the NETLOGON for domain[AD] dc connection to "dc02.ad.corp.example" '
           "succeeded")
PING_DC_GONE = ('checking the NETLOGON for domain[AD] dc connection to "" failed\n'
                "failed to call wbcPingDc: WBC_ERR_DOMAIN_NOT_FOUND")
TESTJOIN_OK = "Join is OK"
TESTJOIN_RESET = """kerberos_kinit_password DB01$@AD.CORP.EXAMPLE failed: Preauthentication failed
Join to domain is not valid: LDAP_INVALID_CREDENTIALS"""
TESTJOIN_SKEWED = """gse_get_client_auth_token: gss_init_sec_context failed with [ Miscellaneous \
failure (see text): FAST fast response is missing FX-FAST (ldap/dc02.ad.corp.example@AD.CORP.EXA\
MPLE)](2529639059)
ads_sasl_spnego_bind: kinit succeeded but SPNEGO bind with Kerberos failed for ldap/dc02.ad.corp\
.example - user[DB01$], realm[AD.CORP.EXAMPLE]: The attempted logon is invalid.
Join is OK"""
KEYTAB = """Keytab name: FILE:/etc/krb5.keytab
KVNO Principal
---- --------------------------------------------------------------------------
   1 host/db01.ad.corp.example@AD.CORP.EXAMPLE
   1 host/DB01@AD.CORP.EXAMPLE
   1 restrictedkrbhost/DB01@AD.CORP.EXAMPLE
   1 DB01$@AD.CORP.EXAMPLE
   1 DB01$@AD.CORP.EXAMPLE"""
NO_KEYTAB = """klist: Key table file '/etc/krb5.keytab' not found while starting keytab scan
Keytab name: FILE:/etc/krb5.keytab"""
PREAUTH = "kinit: Preauthentication failed while getting initial credentials"
SKEW = "kinit: Clock skew too great while getting initial credentials"
PASSWD_ENTRY = r"AD\drcheck:*:11103:10513::/home/AD/drcheck:/bin/sh"


def out(text: str) -> str:
    return "".join(f"out:{line}\n" for line in text.splitlines()) if text else "out:\n"


def run(status: int, text: str) -> str:
    return f"rc={status}\n{out(text)}"


def winbind(*runs: str, **fields: str) -> str:
    return "via=winbind\n" + "".join(f"{k}={v}\n" for k, v in fields.items()) + "".join(runs)


def ticket(keytab: str = KEYTAB, principal: str | None = "DB01$@AD.CORP.EXAMPLE",
           kinit: str | None = "", status: int = 0, krc: int = 0) -> str:
    text = f"krc={krc}\nkeytab=FILE:/etc/krb5.keytab\n"
    if principal is None:
        return text + out(keytab)
    return text + f"principal={principal}\n" + run(status, kinit or "")


def params(prop: str, account: str | None = None, dcs: tuple[str, ...] = (
        "dc02.ad.corp.example",), netbios: str | None = "AD") -> DomainParams:
    return DomainParams(prop, "ad", "AD.CORP.EXAMPLE", netbios, dcs, account)


def verdict(prop: str, value: Any, **kwargs: Any) -> str:
    seen = judge(params(prop, **kwargs), value)
    shown = seen.observed if seen.outcome is Outcome.PASSED else seen.reason
    return f"{seen.outcome.value}: {shown}"


# --- expansion ----------------------------------------------------------------------------


def test_one_test_per_property_with_dependents_requiring_membership_dc_and_channel() -> None:
    subjects = CHECK.expand(ENTRY, SITE)
    assert [(s.name, s.requires) for s in subjects] == [
        ("ad/joined", ()),
        ("ad/dc", ("domain[ad/joined]",)),
        ("ad/secure-channel", ("domain[ad/joined]", "domain[ad/dc]")),
        ("ad/kerberos", ("domain[ad/joined]", "domain[ad/dc]")),
        ("ad/user/drcheck", ("domain[ad/joined]", "domain[ad/secure-channel]")),
        ("ad/group/Domain Users", ("domain[ad/joined]", "domain[ad/secure-channel]")),
    ]
    joined = subjects[0].params
    assert (joined["realm"], joined["netbios"], list(joined["dcs"])) == (
        "AD.CORP.EXAMPLE", "AD", ["dc02.ad.corp.example"])


def test_entry_overrides_the_site_and_an_unknown_domain_names_what_exists() -> None:
    subjects = CHECK.expand({"domain": "ad", "users": [], "groups": ["AD\\ops"],
                             "dcs": ["dc09.ad.corp.example"]}, SITE)
    assert [s.name for s in subjects][-1] == "ad/group/AD\\ops"
    assert subjects[1].params["dcs"] == ["dc09.ad.corp.example"]
    with pytest.raises(ExpansionError, match=r"domain 'corp' is not in site.domains \(ad\)"):
        CHECK.expand({"domain": "corp"}, SITE)


def test_accounts_are_qualified_as_the_platform_looks_them_up() -> None:
    assert qualified("drcheck", "AD", "AD.CORP.EXAMPLE", "backslash") == "AD\\drcheck"
    assert qualified("drcheck", "AD", "AD.CORP.EXAMPLE", "upn") == "drcheck@ad.corp.example"
    assert qualified("AD\\x", None, "AD.CORP.EXAMPLE", "upn") == "AD\\x"


# --- the judge ----------------------------------------------------------------------------


def test_membership_judged_on_realm_and_netbios_name() -> None:
    assert verdict("joined", Membership("ad.corp.example", "AD", "winbind")) == (
        "passed: member of AD.CORP.EXAMPLE (AD) (winbind)")
    assert verdict("joined", Membership("OTHER.EXAMPLE", "OTHER", "winbind")) == (
        "failed: expected member of AD.CORP.EXAMPLE (AD), observed member of OTHER.EXAMPLE "
        "(OTHER) (winbind)")
    # A keytab-only join shows no NetBIOS name: it cannot contradict the expected one.
    assert verdict("joined", Membership("AD.CORP.EXAMPLE", None, "keytab")) == (
        "passed: member of AD.CORP.EXAMPLE (keytab)")
    assert verdict("joined", Membership(None, None, "keytab", "no machine key")) == (
        "failed: expected member of AD.CORP.EXAMPLE (AD), observed not joined (keytab: no "
        "machine key)")


def test_dc_judged_against_the_expected_set_by_name_short_name_or_address() -> None:
    seen = DcInUse("dc02.ad.corp.example", "10.77.0.21", "wbinfo --dsgetdcname")
    assert verdict("dc", seen) == (
        "passed: uses dc02.ad.corp.example (10.77.0.21) (wbinfo --dsgetdcname)")
    assert verdict("dc", DcInUse("DC02", None, "nltest /dsgetdc")).startswith("passed")
    assert verdict("dc", seen, dcs=("10.77.0.21",)).startswith("passed")
    assert verdict("dc", seen, dcs=("dc01.ad.corp.example",)) == (
        "failed: expected a DC among dc01.ad.corp.example, observed dc02.ad.corp.example "
        "(10.77.0.21) (wbinfo --dsgetdcname)")
    assert verdict("dc", DcInUse(None, None, "wbinfo --dsgetdcname", NO_DC)) == (
        "failed: expected a DC among dc02.ad.corp.example, no DC located (wbinfo "
        "--dsgetdcname: Could not find dc for AD.CORP.EXAMPLE)")
    assert verdict("dc", seen, dcs=()).startswith("passed")


def test_channel_ticket_and_accounts_judged() -> None:
    assert verdict("secure-channel", SecureChannel(True, "net ads testjoin", "Join is OK")) == (
        "passed: net ads testjoin: Join is OK")
    assert verdict("secure-channel", SecureChannel(False, "net ads testjoin", "x")) == (
        "failed: secure channel broken (net ads testjoin: x)")
    good = MachineTicket("DB01$@AD.CORP.EXAMPLE", True, "", "FILE:/etc/krb5.keytab")
    assert verdict("kerberos", good) == "passed: ticket for DB01$@AD.CORP.EXAMPLE"
    assert verdict("kerberos", MachineTicket("DB01$@OTHER.EXAMPLE", True)) == (
        "failed: expected a machine ticket from AD.CORP.EXAMPLE, the machine key is for "
        "OTHER.EXAMPLE (DB01$@OTHER.EXAMPLE)")
    assert verdict("kerberos", MachineTicket(None, False, "gone", "FILE:/etc/krb5.keytab")) == (
        "failed: expected a machine ticket from AD.CORP.EXAMPLE, no machine key in "
        "FILE:/etc/krb5.keytab: gone")
    assert verdict("user", AccountLookup("user", "AD\\drcheck", None, "getent passwd"),
                   account="drcheck") == (
        "failed: expected user drcheck resolves, getent passwd 'AD\\drcheck' found nothing")
    assert verdict("user", AccountLookup("user", "AD\\drcheck", PASSWD_ENTRY, "getent passwd"),
                   account="drcheck") == f"passed: getent passwd 'AD\\drcheck': {PASSWD_ENTRY}"


# --- the Linux parsers on recorded outputs --------------------------------------------------


def test_winbind_membership_from_own_domain_and_domain_info() -> None:
    text = winbind(run(0, OWN_DOMAIN), run(0, DOMAIN_INFO))
    assert parse_membership(text, "db01") == Membership("ad.corp.example", "AD", "winbind")


def test_winbindd_that_does_not_answer_could_not_observe_although_wbinfo_exits_0() -> None:
    with pytest.raises(CouldNotObserve, match=r"winbindd does not answer on db01 \(wbinfo "
                                              r"--own-domain: could not obtain winbind"):
        parse_membership(winbind(run(0, WINBINDD_DOWN_OWN_DOMAIN)), "db01")


def test_keytab_membership_and_a_missing_keytab_is_not_joined() -> None:
    keytab = "via=keytab\n" + run(0, KEYTAB)
    assert parse_membership(keytab, "db01") == Membership(
        "AD.CORP.EXAMPLE", None, "keytab", "DB01$@AD.CORP.EXAMPLE")
    missing = parse_membership("via=keytab\n" + run(1, NO_KEYTAB), "db01")
    assert missing.realm is None and "not found while starting keytab scan" in missing.answer
    with pytest.raises(CouldNotObserve, match="klist -k is not available on db01"):
        parse_membership("via=keytab\n" + run(127, "sh: 1: klist: not found"), "db01")


def test_dc_from_dsgetdcname_and_adcli_info() -> None:
    assert parse_dc(winbind(run(0, PING_DC), run(0, DSGETDCNAME)), "db01") == DcInUse(
        "dc02.ad.corp.example", "10.77.0.21", "wbinfo --ping-dc")
    # The DC gone: --dsgetdcname still answers from its cache; the ping tells.
    assert parse_dc(winbind(run(1, PING_DC_GONE), run(0, DSGETDCNAME)), "db01") == DcInUse(
        None, None, "wbinfo --ping-dc", " ".join(PING_DC_GONE.split()))
    assert parse_dc(winbind(run(124, ""), run(0, DSGETDCNAME)), "db01") == DcInUse(
        None, None, "wbinfo --ping-dc", "no answer within 5 s")
    adcli = ("via=sssd\ntool=adcli\n" + run(0, "[domain]\ndomain-name = ad.corp.example\n"
             "domain-controller = dc02.ad.corp.example\ndomain-controller-site = Default"))
    assert parse_dc(adcli, "db01") == DcInUse("dc02.ad.corp.example", None, "adcli info")
    with pytest.raises(CouldNotObserve, match="adcli info is not available on db01"):
        parse_dc("via=keytab\ntool=adcli\n" + run(127, "sh: 1: adcli: not found"), "db01")


def test_secure_channel_from_testjoin() -> None:
    assert parse_secure_channel(winbind(run(0, TESTJOIN_OK)), "db01") == SecureChannel(
        True, "net ads testjoin", "Join is OK")
    broken = parse_secure_channel(winbind(run(255, TESTJOIN_RESET)), "db01")
    assert broken == SecureChannel(False, "net ads testjoin", (
        "kerberos_kinit_password DB01$@AD.CORP.EXAMPLE failed: Preauthentication failed; "
        "Join to domain is not valid: LDAP_INVALID_CREDENTIALS"))
    # Clock skew: Kerberos fails, the NTLM fallback is accepted; the verdict is the last line.
    skewed = parse_secure_channel(winbind(run(0, TESTJOIN_SKEWED)), "db01")
    assert skewed == SecureChannel(True, "net ads testjoin", "Join is OK")


def test_machine_ticket_obtained_refused_skewed_and_keyless() -> None:
    assert parse_ticket(ticket(), "db01") == MachineTicket(
        "DB01$@AD.CORP.EXAMPLE", True, "exit status 0", "FILE:/etc/krb5.keytab")
    assert parse_ticket(ticket(kinit=PREAUTH, status=1), "db01").answer == PREAUTH
    assert parse_ticket(ticket(kinit=SKEW, status=1), "db01").answer == SKEW
    gone = parse_ticket(ticket(keytab=NO_KEYTAB, principal=None, krc=1), "db01")
    assert (gone.principal, gone.obtained) == (None, False)
    assert gone.answer == ("klist: Key table file '/etc/krb5.keytab' not found while starting "
                           "keytab scan")
    with pytest.raises(CouldNotObserve, match="cannot read the keytab on db01"):
        parse_ticket(ticket(keytab="klist: Permission denied while starting keytab scan",
                            principal=None, krc=1), "db01")
    with pytest.raises(CouldNotObserve, match="klist is not available on db01"):
        parse_ticket(ticket(keytab="sh: 1: klist: not found", principal=None, krc=127),
                     "db01")


def test_account_lookup_found_not_found_and_failed() -> None:
    found = parse_account(winbind(run(0, PASSWD_ENTRY), name="AD\\drcheck"), "db01", "user")
    assert found == AccountLookup("user", "AD\\drcheck", PASSWD_ENTRY, "getent passwd")
    assert parse_account(winbind(run(2, ""), name="AD\\nosuch"), "db01", "group") == (
        AccountLookup("group", "AD\\nosuch", None, "getent group"))
    with pytest.raises(CouldNotObserve, match="getent passwd 'AD\\\\x' failed on db01 "
                                              r"\(exit 3\)"):
        parse_account(winbind(run(3, ""), name="AD\\x"), "db01", "user")


def test_a_command_that_timed_out_is_an_error_not_a_verdict() -> None:
    item = item_of(CHECK, ENTRY, SITE, index=3)
    command = CHECK.commands(item)[0]
    # Named by what the script runs, not by its first characters (a shell preamble).
    with pytest.raises(CouldNotObserve, match=r"^`kinit -k` timed out( after \d+ s)? on app01$"):
        CHECK.evaluate(context(item, None, [ran(command, timed_out=True)]))
    seen = CHECK.evaluate(context(item, None, [ran(command, 0, ticket(kinit=SKEW, status=1))]))
    assert seen.reason == ("expected a machine ticket from AD.CORP.EXAMPLE, kinit -k "
                           f"DB01$@AD.CORP.EXAMPLE failed: {SKEW}")


# --- the shell glue, run for real with stand-in tools ----------------------------------------

_STUBS = {
    "klist": f"#!/bin/sh\ncat <<'E'\n{KEYTAB}\nE\n",
    # Succeeds only into a private memory cache, with the clock correction turned off.
    "kinit": ("#!/bin/sh\ncase \"$KRB5CCNAME\" in MEMORY:*) ;; *) echo \"ccache $KRB5CCNAME\"; "
              "exit 1;; esac\nfirst=${KRB5_CONFIG%%:*}\n"
              "grep -q 'kdc_timesync = 0' \"$first\" || { echo 'timesync on'; exit 1; }\n"
              "[ \"$1 $2\" = '-k DB01$@AD.CORP.EXAMPLE' ] || { echo \"args $*\"; exit 1; }\n"),
    "getent": ("#!/bin/sh\n[ \"$3\" = \"$EXPECT\" ] && "
               "{ printf '%s\\n' \"$3:*:1:1::/:/bin/sh\"; exit 0; }\nexit 2\n"),
}


@pytest.fixture
def stub_path(tmp_path: Path) -> str:
    for name, body in _STUBS.items():
        path = tmp_path / name
        path.write_text(body)
        path.chmod(0o755)
    return f"{tmp_path}:/usr/bin:/bin"


def shell(command: str, path: str, **env: str) -> str:
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30,
                          env={"PATH": path, **env}, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_kinit_runs_into_a_private_cache_without_clock_correction(stub_path: str) -> None:
    command = domain_linux.commands(params("kerberos"))[0]
    seen = parse_ticket(shell(command, stub_path, KRB5CCNAME="FILE:/tmp/user-cache"), "db01")
    assert seen == MachineTicket("DB01$@AD.CORP.EXAMPLE", True, "exit status 0",
                                 "FILE:/etc/krb5.keytab")


def test_hostile_account_names_reach_getent_as_one_argument(stub_path: str) -> None:
    command = domain_linux.commands(params("user", account="AD\\a b;c $(id)"))[0]
    seen = parse_account(shell(command, stub_path, EXPECT="AD\\a b;c $(id)"), "runner", "user")
    assert (seen.name, seen.entry) == ("AD\\a b;c $(id)", "AD\\a b;c $(id):*:1:1::/:/bin/sh")
    plain = domain_linux.commands(params("user", account="drcheck"))[0]
    # The runner's NSS has no winbind: an sssd-style name.
    assert parse_account(shell(plain, stub_path, EXPECT="drcheck@ad.corp.example"), "runner",
                         "user").entry == "drcheck@ad.corp.example:*:1:1::/:/bin/sh"


# --- the inventory ------------------------------------------------------------------------

INVENTORY = """version: 1
drill: {name: d}
site:
  domains:
    ad: {realm: AD.CORP.EXAMPLE, netbios: AD, dcs: [dc02.ad.corp.example], users: [drcheck]}
hosts:
  db01:
    address: 10.77.0.13
    checks:
      domain:
"""


def plan_of(tmp_path: Path, entry: str) -> list[str]:
    path = tmp_path / "site.yaml"
    path.write_text(INVENTORY + f"        - {entry}\n")
    return [item.key for item in load_plan(path, display_name="site.yaml").items]


def test_an_inventory_entry_becomes_one_test_per_property(tmp_path: Path) -> None:
    assert plan_of(tmp_path, "{domain: ad}") == [
        "db01::domain[ad/dc]", "db01::domain[ad/joined]", "db01::domain[ad/kerberos]",
        "db01::domain[ad/secure-channel]", "db01::domain[ad/user/drcheck]"]


@pytest.mark.parametrize(("entry", "message"), [
    ("{domain: corp}", "site.yaml:11: hosts.db01.checks.domain[0].domain: domain 'corp' is not "
                       "in site.domains (ad); define it there"),
    ("{domain: ad, users: [\"o'brien\"]}", "site.yaml:11: hosts.db01.checks.domain[0].users[0]: "
     "'o'brien' is not valid here; expected an account name (drcheck, AD\\drcheck or "
     "drcheck@ad.corp.example)"),
])
def test_entry_mistakes_are_one_line(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(InventoryError) as caught:
        plan_of(tmp_path, entry)
    assert str(caught.value) == message
