"""ldap: what servers say, classified; password-policy controls decoded; entries expanded.

The result dictionaries are the shapes ldap3 returned from the real slapd 2.5 (with ppolicy)
and Samba 4.17 AD DC while this module was written (see LAB-NOTES); the lab tests observe
them live.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

import pytest_drcheck.net.ldapresult as ldapresult
from pytest_drcheck.checks.directory import upn
from pytest_drcheck.inventory import InventoryError, load_plan
from pytest_drcheck.net.ldapresult import classify_result, decode_ppolicy, escape_filter_value

PPOLICY = ldapresult.PPOLICY_OID


def result(code: int, description: str, message: str = "", ppolicy: bytes | None = None
           ) -> dict[str, Any]:
    value: dict[str, Any] = {"result": code, "description": description, "message": message}
    if ppolicy is not None:
        value["controls"] = {PPOLICY: {"criticality": False, "value": ppolicy}}
    return value


AD = "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data {}, v1db1"


@pytest.mark.parametrize(("answer", "outcome", "reason"), [
    (result(0, "success", ppolicy=b"0\x00"), ldapresult.BOUND, ""),
    (result(49, "invalidCredentials", ppolicy=b"0\x00"), ldapresult.INVALID_CREDENTIALS,
     "the server rejects the name or password (result 49)"),
    (result(49, "invalidCredentials", AD.format("52e")), ldapresult.INVALID_CREDENTIALS,
     "wrong user name or password (AD data 52e)"),
    (result(49, "invalidCredentials", AD.format("533")), ldapresult.ACCOUNT_PROBLEM,
     "account disabled (AD data 533)"),
    (result(49, "invalidCredentials", AD.format("701")), ldapresult.ACCOUNT_PROBLEM,
     "account expired (AD data 701)"),
    (result(49, "invalidCredentials", AD.format("773")), ldapresult.ACCOUNT_PROBLEM,
     "password must be changed (AD data 773)"),
    (result(49, "invalidCredentials", AD.format("775")), ldapresult.ACCOUNT_PROBLEM,
     "account locked out (AD data 775)"),
    # slapd ppolicy: accountLocked, passwordExpired; and changeAfterReset on a good bind.
    (result(49, "invalidCredentials", ppolicy=b"0\x03\x81\x01\x01"), ldapresult.ACCOUNT_PROBLEM,
     "account locked (password policy)"),
    (result(49, "invalidCredentials", ppolicy=b"0\x03\x81\x01\x00"), ldapresult.ACCOUNT_PROBLEM,
     "password expired (password policy)"),
    (result(0, "success", ppolicy=b"0\x03\x81\x01\x02"), ldapresult.ACCOUNT_PROBLEM,
     "password must be changed after reset (password policy)"),
    (result(8, "strongerAuthRequired", "BindSimple: Transport encryption required."),
     ldapresult.STRONG_AUTH_REQUIRED,
     "strongerAuthRequired: BindSimple: Transport encryption required."),
    (result(13, "confidentialityRequired", "confidentiality required"),
     ldapresult.STRONG_AUTH_REQUIRED, "confidentialityRequired: confidentiality required"),
    (result(53, "unwillingToPerform", "unauthenticated bind (DN with no password) disallowed"),
     ldapresult.ERROR, "unwillingToPerform: unauthenticated bind (DN with no password) "
                     "disallowed"),
])
def test_bind_results_are_classified(answer: dict[str, Any], outcome: str, reason: str) -> None:
    assert classify_result(answer) == (outcome, reason)


def test_ppolicy_warning_is_reported_on_success() -> None:
    # warning [0] { timeBeforeExpiration [0] 3600 }
    value = b"0\x06\xa0\x04\x80\x02\x0e\x10"
    assert decode_ppolicy(value) == ("password expires in 60 min", None)
    assert classify_result(result(0, "success", ppolicy=value)) == (
        ldapresult.BOUND, "password expires in 60 min")


def test_malformed_ppolicy_value_is_ignored() -> None:
    assert decode_ppolicy(b"0\x05\x81") == (None, None)
    assert decode_ppolicy(b"\x04\x00") == (None, None)


def test_filter_values_are_escaped_and_secrets_scrubbed() -> None:
    assert escape_filter_value("a*b(c)\\") == "a\\2ab\\28c\\29\\5c"
    assert ldapresult.scrub("bad password hunter2 here", "hunter2") == "bad password *** here"
    assert ldapresult.scrub("short x", "x") == "short x"


def test_ad_users_become_upns() -> None:
    assert upn("drcheck", "ad", "ad.corp.example") == "drcheck@ad.corp.example"
    assert upn("drcheck@ad.corp.example", "ad", "ad.corp.example") == "drcheck@ad.corp.example"
    assert upn("AD\\drcheck", "ad", "ad.corp.example") == "AD\\drcheck"
    assert upn("uid=x,dc=corp", "ldap", None) == "uid=x,dc=corp"


SITE = """\
version: 1
drill: {name: t}
site:
  directory:
    corp:
      servers: [dc01.corp.example]
      user: uid=drcheck,ou=people,dc=corp,dc=example
      password: env:DRCHECK_LDAP_PASSWORD
      ca_bundle: /etc/ssl/corp-ca.pem
      search: {base: "ou=computers,dc=corp,dc=example", filter: "(cn={host})"}
    ad:
      kind: ad
      domain: ad.corp.example
      servers: [dc02.ad.corp.example, dc03.ad.corp.example]
      user: drcheck
      password: file:/run/secrets/ad
      ca_bundle: /etc/ssl/corp-ca.pem
      modes: [ldaps]
hosts:
  app01:
    address: 10.0.0.1
    checks:
      ldap:
"""


def plan_for(tmp_path: Path, entries: str) -> Any:
    path = tmp_path / "site.yaml"
    path.write_text(SITE + textwrap.indent(textwrap.dedent(entries), " " * 8))
    return load_plan(path, display_name="site.yaml")


def test_expansion_one_test_per_server_mode_search_and_srv(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, """\
        - {directory: corp}
        - {directory: ad}
        - {directory: ad, modes: [plain], expect: strong-auth-required,
           servers: [dc02.ad.corp.example]}
        """)
    assert [i.subject for i in plan.items] == sorted([
        "ad.corp.example/srv-kerberos@ad", "ad.corp.example/srv-ldap@ad",
        "dc01.corp.example/ldaps@corp", "dc01.corp.example/search@corp",
        "dc01.corp.example/starttls@corp", "dc02.ad.corp.example/ldaps@ad",
        "dc02.ad.corp.example/plain@ad", "dc03.ad.corp.example/ldaps@ad"])
    by = {i.subject.split("@")[0]: i.params for i in plan.items}
    assert by["dc02.ad.corp.example/ldaps"]["user"] == "drcheck@ad.corp.example"
    assert by["dc02.ad.corp.example/ldaps"]["port"] == 636
    assert by["dc01.corp.example/starttls"]["port"] == 389
    assert by["dc01.corp.example/search"]["mode"] == "ldaps"
    assert by["dc02.ad.corp.example/plain"]["expect"] == "strong-auth-required"
    assert by["ad.corp.example/srv-ldap"]["record"] == "_ldap._tcp.dc._msdcs.ad.corp.example"
    assert by["ad.corp.example/srv-kerberos"]["expect"] == (
        "dc02.ad.corp.example", "dc03.ad.corp.example")
    # The plan holds the reference, never a value.
    assert by["dc01.corp.example/ldaps"]["password"] == "env:DRCHECK_LDAP_PASSWORD"


@pytest.mark.parametrize(("entries", "message"), [
    ("- {directory: crop}\n",
     "site.yaml:24: hosts.app01.checks.ldap[0].directory: directory 'crop' is not in "
     "site.directory (ad, corp); define it there or fix the name"),
    ("- {directory: corp, modes: [ldap]}\n",
     "site.yaml:24: hosts.app01.checks.ldap[0].modes[0]: 'ldap' is not one of ldaps, "
     "starttls, plain (did you mean 'ldaps'?)"),
    ("- {directory: corp, expect: bind}\n",
     "site.yaml:24: hosts.app01.checks.ldap[0].expect: 'bind' is not one of bound, "
     "strong-auth-required (did you mean 'bound'?)"),
    ("- {directory: ad, search: true}\n",
     "site.yaml:24: hosts.app01.checks.ldap[0].search: site.directory.ad has no 'search' "
     "to run"),
])
def test_entry_mistakes_are_one_line(tmp_path: Path, entries: str, message: str) -> None:
    with pytest.raises(InventoryError) as caught:
        plan_for(tmp_path, entries)
    assert str(caught.value) == message


def test_password_pasted_in_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE.replace("env:DRCHECK_LDAP_PASSWORD", "Sup3r-S3cret!") +
                    "        - {directory: corp}\n")
    with pytest.raises(InventoryError) as caught:
        load_plan(path, display_name="site.yaml")
    assert "Sup3r-S3cret" not in str(caught.value)
    assert str(caught.value) == (
        "site.yaml:8: site.directory.corp.password: the value (not shown) is not valid here; "
        "expected a secret reference: env:NAME or file:PATH (never the password itself)")


def test_ad_directory_needs_a_domain(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE.replace("      domain: ad.corp.example\n", "") +
                    "        - {directory: ad}\n")
    with pytest.raises(InventoryError) as caught:
        load_plan(path, display_name="site.yaml")
    assert str(caught.value) == (
        "site.yaml:23: hosts.app01.checks.ldap[0]: site.directory.ad is Active Directory "
        "(kind: ad) and needs 'domain', e.g. ad.corp.example")


@pytest.mark.parametrize(("bundle", "reason"), [
    ("missing.pem", "cannot read the CA bundle {}: No such file or directory"),
    ("empty.pem", "the CA bundle {} holds no PEM certificate (NO_CERTIFICATE_OR_CRL_FOUND); "
                  "point ca_bundle at the CA's PEM file"),
])
def test_unusable_ca_bundle_is_one_line(tmp_path: Path, bundle: str, reason: str) -> None:
    """Read by OpenSSL as the bind does, before anything is sent to a server."""
    import ssl

    from pytest_drcheck.net.ldapbind import CheckedTls, _tls_outcome

    (tmp_path / "empty.pem").write_text("")
    path = str(tmp_path / bundle)
    tls = CheckedTls("dc01.corp.example", path, True)

    class Connection:
        socket = None

    with pytest.raises((OSError, ssl.SSLError)):
        tls.wrap_socket(Connection(), do_handshake=True)
    request = ldapresult.BindRequest("dc01.corp.example", 636, "ldaps", "u", path, 3.0, 10.0)
    assert tls.failure is not None and tls.bundle_failed
    assert _tls_outcome(tls.failure, request, 9, tls.bundle_failed) == (
        ldapresult.ERROR, reason.format(path))
