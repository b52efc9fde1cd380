"""ldap: what servers say, classified; password-policy controls decoded; entries expanded;
every outcome judged, and every "could not observe" cause (no connection, no answer, a name
the instance cannot resolve, no resolver) raised from observe.

The result dictionaries are the shapes ldap3 returned from the real slapd 2.5 (with ppolicy)
and Samba 4.17 AD DC while this module was written (see LAB-NOTES); the lab tests observe
them live.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import struct
import textwrap
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rrset
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import pytest_drcheck.net.ldapresult as ldapresult
from pytest_drcheck.checks.base import CheckContext
from pytest_drcheck.checks.directory import BindValue, DirectoryCheck, SrvValue, upn
from pytest_drcheck.inventory import InventoryError, load_plan
from pytest_drcheck.model import CouldNotObserve, Outcome, PlanItem
from pytest_drcheck.net.ldapresult import classify_result, decode_ppolicy, escape_filter_value
from pytest_drcheck.targets.base import CommandResult, Stream, StreamError, Target
from pytest_drcheck.targets.local import LocalTarget
from tests.plugin.sockets import Listener

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
     "to run; add one there or drop search: true"),
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
        "site.yaml:11: site.directory.ad: a directory of kind ad (Active Directory) needs "
        "'domain'; add it, e.g. domain: ad.corp.example")


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


# --- observe then judge ------------------------------------------------------------------------

CHECK = DirectoryCheck()
SLAPD_DN = "uid=drcheck,ou=people,dc=corp,dc=example"


def items(tmp_path: Path, entries: str) -> dict[str, PlanItem]:
    return {i.subject: i for i in plan_for(tmp_path, entries).items}


def test_a_search_requires_its_bind(tmp_path: Path) -> None:
    by = items(tmp_path, "- {directory: corp}\n")
    assert by["dc01.corp.example/search@corp"].requires == (
        "ldap[dc01.corp.example/ldaps@corp]",)
    assert by["dc01.corp.example/ldaps@corp"].requires == ()
    starttls = items(tmp_path, "- {directory: corp, modes: [starttls]}\n")
    assert starttls["dc01.corp.example/search@corp"].requires == (
        "ldap[dc01.corp.example/starttls@corp]",)
    # A bind expected to be refused is no precondition of a search.
    refused = items(tmp_path, "- {directory: corp, modes: [plain], search: true, "
                              "expect: strong-auth-required}\n")
    assert refused["dc01.corp.example/search@corp"].requires == ()


def outcome(kind: str, summary: str = "", **extra: Any) -> ldapresult.BindOutcome:
    return ldapresult.BindOutcome(kind, summary, 0.012, **extra)


@pytest.mark.parametrize(("subject", "value", "verdict", "line"), [
    ("dc01.corp.example/ldaps@corp",
     BindValue(outcome(ldapresult.BOUND, f"as {SLAPD_DN} over LDAPS (TLSv1.3)")),
     Outcome.PASSED, f"bound as {SLAPD_DN} over LDAPS (TLSv1.3) in 12 ms"),
    ("dc01.corp.example/ldaps@corp",
     BindValue(outcome(ldapresult.INVALID_CREDENTIALS, "the server rejects the name or "
                                                       "password (result 49)")),
     Outcome.FAILED, f"expected bound as {SLAPD_DN} over LDAPS, observed invalid credentials: "
                     "the server rejects the name or password (result 49)"),
    ("dc01.corp.example/ldaps@corp",
     BindValue(outcome(ldapresult.ACCOUNT_PROBLEM, "account locked (password policy)")),
     Outcome.FAILED, f"expected bound as {SLAPD_DN} over LDAPS, observed account problem: "
                     "account locked (password policy)"),
    ("dc01.corp.example/starttls@corp",
     BindValue(outcome(ldapresult.TLS_UNTRUSTED, "unable to get local issuer certificate"),
               "CN=dc01.corp.example (names dc01.corp.example) issued by CN=rogue"),
     Outcome.FAILED, f"expected bound as {SLAPD_DN} over StartTLS, observed certificate not "
                     "trusted: unable to get local issuer certificate; the server presents "
                     "CN=dc01.corp.example (names dc01.corp.example) issued by CN=rogue"),
    ("dc01.corp.example/ldaps@corp",
     BindValue(outcome(ldapresult.TLS_NAME_MISMATCH, "not valid for dc01.corp.example")),
     Outcome.FAILED, f"expected bound as {SLAPD_DN} over LDAPS, observed certificate name "
                     "mismatch: not valid for dc01.corp.example"),
    ("dc01.corp.example/plain@corp",
     BindValue(outcome(ldapresult.STRONG_AUTH_REQUIRED, "confidentialityRequired: "
                                                        "confidentiality required")),
     Outcome.FAILED, f"expected bound as {SLAPD_DN} over plain LDAP, observed strong auth "
                     "required: confidentialityRequired: confidentiality required"),
    ("dc01.corp.example/search@corp",
     BindValue(outcome(ldapresult.BOUND, "as x", entries=("cn=app01,ou=computers",))),
     Outcome.PASSED, "found cn=app01,ou=computers"),
    ("dc01.corp.example/search@corp", BindValue(outcome(ldapresult.BOUND, "as x")),
     Outcome.FAILED, "expected an entry matching (cn={host}) under "
                     "ou=computers,dc=corp,dc=example, the search found nothing"),
    ("dc01.corp.example/search@corp",
     BindValue(outcome(ldapresult.INVALID_CREDENTIALS, "the server rejects the name or "
                                                       "password (result 49)")),
     Outcome.SKIPPED, "not searched: the bind over LDAPS failed (invalid credentials: the "
                      "server rejects the name or password (result 49))"),
])
def test_binds_and_searches_are_judged(tmp_path: Path, subject: str, value: BindValue,
                                       verdict: Outcome, line: str) -> None:
    item = items(tmp_path, "- {directory: corp, modes: [ldaps, starttls, plain]}\n")[subject]
    observation = CHECK.judge(item, value)
    assert observation.outcome is verdict
    assert (observation.observed if verdict is Outcome.PASSED else observation.reason) == line


def test_a_refused_clear_text_bind_passes_when_that_is_expected(tmp_path: Path) -> None:
    item = items(tmp_path, "- {directory: ad, modes: [plain], expect: strong-auth-required, "
                           "servers: [dc02.ad.corp.example], discovery: false}\n")[
        "dc02.ad.corp.example/plain@ad"]
    observation = CHECK.judge(item, BindValue(outcome(
        ldapresult.STRONG_AUTH_REQUIRED, "strongerAuthRequired: BindSimple: Transport "
                                         "encryption required.")))
    assert (observation.outcome, observation.observed) == (
        Outcome.PASSED, "strong auth required: strongerAuthRequired: BindSimple: Transport "
                        "encryption required.")


class Streams(LocalTarget):
    """A host whose streams fail as told (or go to a local port instead)."""

    def __init__(self, failure: Exception | None = None, port: int | None = None) -> None:
        super().__init__("app01")
        self.failure, self.port = failure, port
        self.opened: list[tuple[str, int]] = []

    def resolve(self, name: str, timeout: float) -> tuple[str, ...]:
        # Every DC name is this machine: never ask the runner's own resolver about lab names.
        return ("127.0.0.1",)

    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        self.opened.append((host, port))
        if self.failure is not None:
            raise self.failure
        return super().open_stream("127.0.0.1", self.port or port, timeout)


def context(item: PlanItem, target: Target, outputs: list[CommandResult] | None = None,
            timeout: float = 5.0) -> CheckContext:
    return CheckContext(item, target, outputs or [], timeout, lambda name: target, 10.0)


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DRCHECK_LDAP_PASSWORD", "not-the-real-one")
    return "not-the-real-one"


@pytest.mark.parametrize(("failure", "cause"), [
    (StreamError("refused", "dc01.corp.example:636 from app01: connection refused"),
     "the bind over LDAPS to dc01.corp.example:636: connection refused"),
    (StreamError("timed out", "dc01.corp.example:636 from app01: timed out after 3 s"),
     "the bind over LDAPS to dc01.corp.example:636: timed out: no TCP connection within 3 s"),
    (StreamError("unreachable", "dc01.corp.example:636 from app01: no route to host"),
     "the bind over LDAPS to dc01.corp.example:636: unreachable"),
])
def test_a_dc_that_does_not_connect_could_not_be_observed(
        tmp_path: Path, password: str, failure: Exception, cause: str) -> None:
    """Was: failed 'observed connection refused' / 'observed timed out: ...' (a wrong
    value): the bind never happened, the DC's verdict on it is unknown."""
    item = items(tmp_path, "- {directory: corp, modes: [ldaps], search: false}\n")[
        "dc01.corp.example/ldaps@corp"]
    with pytest.raises(CouldNotObserve) as caught:
        CHECK.evaluate(context(item, Streams(failure)))
    assert str(caught.value) == cause


def ca_bundle(tmp_path: Path) -> Path:
    """A self-signed CA certificate in a PEM file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = tmp_path / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


class LookupFailed(CouldNotObserve, StreamError):
    """What the target raises for a name it could not resolve on the instance (a
    CouldNotObserve; a StreamError too, as a target may well make it)."""

    def __init__(self, message: str) -> None:
        StreamError.__init__(self, "error", message)


def test_a_name_the_instance_cannot_resolve_is_the_cause(tmp_path: Path, password: str) -> None:
    """Was: 'no TCP connection within 3 s' (or 'cannot connect: ...') where the instance's
    resolver had answered 'Temporary failure in name resolution'."""
    item = items(tmp_path, "- {directory: corp, modes: [ldaps], search: false}\n")[
        "dc01.corp.example/ldaps@corp"]
    cause = ("dc01.corp.example does not resolve on app01: Temporary failure in name "
             "resolution")
    with pytest.raises(CouldNotObserve) as caught:
        CHECK.evaluate(context(item, Streams(LookupFailed(cause))))
    assert str(caught.value) == cause


def test_a_dc_that_never_answers_the_tls_handshake_could_not_be_observed(
        tmp_path: Path, password: str) -> None:
    listener = Listener()  # accepts, never speaks: a hung slapd
    try:
        item = items(tmp_path, "- {directory: corp, modes: [ldaps], search: false, "
                               "connect_timeout: 1s}\n")["dc01.corp.example/ldaps@corp"]
        # Any readable CA bundle: the handshake never gets as far as the certificate.
        item = dataclasses.replace(item, params={**item.params,
                                                 "ca_bundle": str(ca_bundle(tmp_path))})
        with pytest.raises(CouldNotObserve) as caught:
            CHECK.evaluate(context(item, Streams(port=listener.port), timeout=2.5))
    finally:
        listener.close()
    assert re.fullmatch(r"the bind over LDAPS to dc01\.corp\.example:636: timed out: no answer "
                        r"to the TLS handshake within \d s", str(caught.value)), caught.value


def test_an_unreadable_password_could_not_be_observed(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRCHECK_LDAP_PASSWORD", raising=False)
    item = items(tmp_path, "- {directory: corp, modes: [ldaps], search: false}\n")[
        "dc01.corp.example/ldaps@corp"]
    target = Streams()
    with pytest.raises(CouldNotObserve, match=r"^cannot read the bind password: .*"
                                              r"DRCHECK_LDAP_PASSWORD"):
        CHECK.evaluate(context(item, target))
    assert target.opened == []  # nothing was sent anywhere


def test_an_unreadable_ca_bundle_could_not_be_observed(tmp_path: Path, password: str) -> None:
    listener = Listener(banner=b"\x16")  # whatever the server would say is never read
    try:
        item = items(tmp_path, "- {directory: corp, modes: [ldaps], search: false}\n")[
            "dc01.corp.example/ldaps@corp"]
        with pytest.raises(CouldNotObserve) as caught:
            CHECK.evaluate(context(item, Streams(port=listener.port)))
    finally:
        listener.close()
    assert str(caught.value) == ("the bind over LDAPS to dc01.corp.example:636: cannot read the "
                                 "CA bundle /etc/ssl/corp-ca.pem: No such file or directory")


# --- SRV discovery -----------------------------------------------------------------------------

RESOLV = "nameserver 10.77.0.53\nnameserver 10.77.0.54\n"
SRV = "_ldap._tcp.dc._msdcs.ad.corp.example"


class DnsAnswer:
    """A resolver's TCP stream that answers the query it is sent with ``rcode`` and
    ``records`` (SRV rdata text)."""

    def __init__(self, rcode: int, records: tuple[str, ...] = ()) -> None:
        self.rcode, self.records = rcode, records
        self.reply = b""

    def sendall(self, data: bytes) -> None:
        query = dns.message.from_wire(data[2:])
        response = dns.message.make_response(query)
        response.set_rcode(self.rcode)
        if self.records:
            response.answer.append(dns.rrset.from_text(
                query.question[0].name, 600, "IN", "SRV", *self.records))
        wire = response.to_wire()
        self.reply = struct.pack("!H", len(wire)) + wire

    def recv(self, size: int) -> bytes:
        chunk, self.reply = self.reply[:size], self.reply[size:]
        return chunk

    def settimeout(self, timeout: float | None) -> None:
        pass

    def close(self) -> None:
        pass


class Resolvers(LocalTarget):
    def __init__(self, answers: dict[str, DnsAnswer | StreamError]) -> None:
        super().__init__("app01")
        self.answers = answers

    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        answer = self.answers[host]
        if isinstance(answer, StreamError):
            raise answer
        return answer


def srv_item(tmp_path: Path) -> PlanItem:
    return items(tmp_path, "- {directory: ad}\n")["ad.corp.example/srv-ldap@ad"]


def resolv(stdout: str = RESOLV, status: int = 0, timed_out: bool = False) -> CommandResult:
    return CommandResult("cat /etc/resolv.conf", status, stdout, "", timed_out)


def test_srv_records_are_compared_with_the_expected_servers(tmp_path: Path) -> None:
    item = srv_item(tmp_path)
    good = CHECK.evaluate(context(item, Resolvers({"10.77.0.53": DnsAnswer(
        dns.rcode.NOERROR, ("0 100 389 dc02.ad.corp.example.", "0 100 389 dc03.ad.corp.example."
                            ))}), [resolv()]))
    assert (good.outcome, good.observed) == (
        Outcome.PASSED, "dc02.ad.corp.example:389, dc03.ad.corp.example:389 via 10.77.0.53")
    short = CHECK.evaluate(context(item, Resolvers({"10.77.0.53": DnsAnswer(
        dns.rcode.NOERROR, ("0 100 389 dc02.ad.corp.example.",))}), [resolv()]))
    assert (short.outcome, short.reason) == (
        Outcome.FAILED, f"expected dc02.ad.corp.example, dc03.ad.corp.example from SRV {SRV}, "
                        "found dc02.ad.corp.example:389 via 10.77.0.53 (missing "
                        "dc03.ad.corp.example)")
    nxdomain = CHECK.evaluate(context(item, Resolvers({"10.77.0.53": DnsAnswer(
        dns.rcode.NXDOMAIN)}), [resolv()]))
    assert nxdomain.reason == (f"expected dc02.ad.corp.example, dc03.ad.corp.example from SRV "
                               f"{SRV}, 10.77.0.53 answered NXDOMAIN")
    # A failing first resolver is skipped, as the stub resolver does.
    second = CHECK.evaluate(context(item, Resolvers({
        "10.77.0.53": DnsAnswer(dns.rcode.SERVFAIL),
        "10.77.0.54": DnsAnswer(dns.rcode.NXDOMAIN)}), [resolv()]))
    assert second.reason.endswith("10.77.0.54 answered NXDOMAIN")


def test_srv_with_no_resolver_answering_could_not_be_observed(tmp_path: Path) -> None:
    """Was: failed 'no resolver answered' / '10.77.0.54 answered SERVFAIL'."""
    item = srv_item(tmp_path)
    with pytest.raises(CouldNotObserve) as caught:
        CHECK.evaluate(context(item, Resolvers({
            "10.77.0.53": StreamError("refused", "10.77.0.53:53 from app01: connection refused"),
            "10.77.0.54": DnsAnswer(dns.rcode.SERVFAIL)}), [resolv()]))
    assert str(caught.value) == (f"no resolver answered SRV {SRV} (10.77.0.53 refused; "
                                 "10.77.0.54 SERVFAIL)")


def test_srv_with_unreadable_or_empty_resolv_conf(tmp_path: Path) -> None:
    """Was: '/etc/resolv.conf on the instance lists no nameserver' where the cat timed out."""
    item = srv_item(tmp_path)
    with pytest.raises(CouldNotObserve) as caught:
        CHECK.evaluate(context(item, Resolvers({}), [resolv("", 124, timed_out=True)]))
    assert str(caught.value) == "`cat /etc/resolv.conf` timed out after 10 s on app01"
    empty = CHECK.evaluate(context(item, Resolvers({}), [resolv("search corp.example\n")]))
    assert (empty.outcome, empty.reason) == (
        Outcome.FAILED, f"expected dc02.ad.corp.example, dc03.ad.corp.example from SRV {SRV}, "
                        "but /etc/resolv.conf on the instance lists no nameserver")
    assert CHECK.judge(item, SrvValue(None, "", ())).reason == empty.reason


class CutOffTarget(LocalTarget):
    """The runner as the instance; its connection to the host reads as ``lost``."""

    def __init__(self, lost: str | None) -> None:
        super().__init__("app02")
        self.lost = lost

    def connection_lost(self, grace: float) -> str | None:
        return self.lost


LOST = ("app02: the SSH connection to 10.77.0.12:22 was lost (host rebooted, sshd restarted, "
        "or the network dropped it)")


@pytest.mark.parametrize("lost", [None, LOST])
def test_a_session_cut_with_the_instances_connection_is_not_the_servers_doing(
        lost: str | None) -> None:
    """A drill that lost app02 mid-bind read "LDAP session failed: session terminated by
    server" and failed the bind: the relay's tunnel had ended with the connection."""
    from pytest_drcheck.net.ldapbind import bind
    from tests.plugin.sockets import AcceptAndClose

    server = AcceptAndClose()  # a session ended before any answer
    request = ldapresult.BindRequest("127.0.0.1", server.port, "plain", SLAPD_DN, None, 5.0,
                                     30.0)
    try:
        if lost is None:
            outcome = bind(CutOffTarget(None), request, "secret")
            assert (outcome.outcome, outcome.summary.split(":")[0]) == (
                ldapresult.ERROR, "LDAP session failed")
        else:
            with pytest.raises(CouldNotObserve) as caught:
                bind(CutOffTarget(lost), request, "secret")
            assert str(caught.value) == LOST
    finally:
        server.close()
