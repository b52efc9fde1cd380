"""Directory and time checks against the lab's real slapd, Samba AD DC and chronyds.

Every test runs a drill over SSH to a lab instance (the observation is the instance's) and
asserts the full one-line outcome. The lab is made wrong with breakers that undo themselves:
a wrong password, accounts the servers refuse, a DC with a rogue-CA certificate, a name that
points at the wrong DC, a stopped or black-holed DC, clear-text binds, a skewed time source,
an instance with no time daemon.
"""

from __future__ import annotations

import re
import signal
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cryptography import x509

from pytest_drcheck.lab import Lab, procs
from pytest_drcheck.lab.faults import skewed_source, untrusted_certificate

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("drlab")]
REPO = Path(__file__).resolve().parents[2]
CANARY = "CANARY-7f3a9c1e-d0e5-4b6a"
SLAPD_DN = "uid=drcheck,ou=people,dc=corp,dc=example"
AD_UPN = "drcheck@ad.corp.example"
NO_DAEMON = "observed no time daemon answers (chrony: 506 Cannot talk to daemon"


def site(lab: Lab, password: str = "file") -> str:
    secret = f"file:{lab.paths.secrets_dir / 'directory-bind-password'}" \
        if password == "file" else password
    ca = lab.paths.pki_dir / "ca.pem"
    return textwrap.dedent(f"""\
        version: 1
        drill: {{name: lab-directory-time}}
        defaults:
          timeout: 10s
          connection:
            type: ssh
            user: root
            identity_file: {lab.client_key}
            known_hosts: {lab.known_hosts}
            connect_timeout: 3s
        site:
          directory:
            corp:
              servers: [dc01.corp.example]
              user: {SLAPD_DN}
              password: {secret}
              ca_bundle: {ca}
              search: {{base: "ou=computers,dc=corp,dc=example", filter: "(cn={{host}})"}}
            ad:
              kind: ad
              domain: ad.corp.example
              servers: [dc02.ad.corp.example]
              user: drcheck
              password: {secret}
              ca_bundle: {ca}
              search: {{base: "DC=ad,DC=corp,DC=example",
                        filter: "(&(objectClass=computer)(cn={{host}}))"}}
        """)


def host(name: str, address: str, checks: str) -> str:
    return (f"  {name}:\n    address: {address}\n    checks:\n"
            + textwrap.indent(textwrap.dedent(checks), " " * 6))


def drill(pytester: pytest.Pytester, text: str, *args: str) -> dict[str, tuple[str, str]]:
    """Run the drill in-process; {test id: (outcome, the one-line message)} from JUnit."""
    (pytester.path / "site.yaml").write_text(text)
    pytester.runpytest("--dr-inventory=site.yaml", "--junitxml=drill.xml",
                       "-p", "no:cacheprovider", *args)
    outcomes = {}
    for case in ET.parse(pytester.path / "drill.xml").getroot().iter("testcase"):
        name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
        props = {p.get("name"): p.get("value") or "" for p in case.iter("property")}
        failure = case.find("failure")
        skipped = case.find("skipped")
        if failure is not None:
            outcomes[name] = ("failed", failure.get("message", ""))
        elif skipped is not None:
            outcomes[name] = ("skipped", skipped.get("message", ""))
        else:
            outcomes[name] = ("passed", props.get("dr.observed", ""))
    return outcomes


def cert_until(path: Path) -> str:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.not_valid_after_utc.date().isoformat()


# -- green ------------------------------------------------------------------------------------

def test_lab_drill_is_green_for_directory_and_time(lab: Lab, pytester: pytest.Pytester) -> None:
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        f"--dr-inventory={REPO / 'inventories' / 'lab.yaml'}", "-k", "(ldap or time) and not dns",
        "--junitxml=drill.xml", "-p", "no:cacheprovider")
    elapsed = time.monotonic() - started
    result.assert_outcomes(passed=36)
    cases = {f"{c.get('classname', '').split('.')[-1]}::{c.get('name')}":
             {p.get("name"): p.get("value") or "" for p in c.iter("property")}
             for c in ET.parse(pytester.path / "drill.xml").getroot().iter("testcase")}
    app01 = {k.split("::")[1]: v["dr.observed"] for k, v in cases.items()
             if k.startswith("app01::")}
    assert re.fullmatch(rf"bound as {SLAPD_DN} over LDAPS \(TLSv1\.3\) in \d+ ms",
                        app01["ldap[dc01.corp.example/ldaps@corp]"])
    assert re.fullmatch(rf"bound as {AD_UPN} over StartTLS \(TLSv1\.3\) in \d+ ms",
                        app01["ldap[dc02.ad.corp.example/starttls@ad]"])
    assert app01["ldap[dc01.corp.example/search@corp]"] == \
        "found cn=app01,ou=computers,dc=corp,dc=example"
    assert app01["ldap[dc02.ad.corp.example/search@ad]"] == \
        "found CN=app01,CN=Computers,DC=ad,DC=corp,DC=example"
    assert app01["ldap[ad.corp.example/srv-ldap@ad]"] == \
        "dc02.ad.corp.example:389 via 10.77.0.53"
    assert app01["ldap[ad.corp.example/srv-kerberos@ad]"] == \
        "dc02.ad.corp.example:88 via 10.77.0.53"
    assert app01["ldap[dc02.ad.corp.example/plain@ad]"] == (
        "strong auth required: strongerAuthRequired: BindSimple: Transport encryption required.")
    assert re.fullmatch(r"chrony synchronised to 10\.77\.0\.30 \(stratum 9\), clock [\d.]+ "
                        r"(us|ms) (fast|slow) of it", app01["time[sync]"])
    assert app01["time[source]"] == "10.77.0.30 = ntp01.corp.example (chrony)"
    assert re.fullmatch(r"[+-][\d.]+ (us|ms) \(\u00b1[\d.]+ ms\) against the runner's clock",
                        app01["time[offset]"])
    # Every vantage is the instance, over SSH.
    assert {v["dr.vantage"].split()[0] for v in cases.values()} == {"app01", "app02", "db01"}
    print(f"\n36 directory and time checks on 3 instances in {elapsed:.1f} s (pytest "
          "subprocess, connections included)")
    for name, props in sorted(cases.items()):
        print(f"  {name}: {props['dr.duration_ms']} ms")


# -- directory: each outcome ------------------------------------------------------------------

def test_wrong_password_is_invalid_credentials(lab: Lab, pytester: pytest.Pytester,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRCHECK_TEST_PASSWORD", CANARY)
    outcomes = drill(pytester, site(lab, "env:DRCHECK_TEST_PASSWORD") + "hosts:\n" + host(
        "app01", "10.77.0.11", """\
        ldap:
          - {directory: corp, modes: [ldaps]}
          - {directory: ad, modes: [starttls], discovery: false}
        """))
    assert outcomes == {
        "app01::ldap[dc01.corp.example/ldaps@corp]": ("failed", (
            f"app01 ldap dc01.corp.example/ldaps@corp: expected bound as {SLAPD_DN} over "
            "LDAPS, observed invalid credentials: the server rejects the name or password "
            "(result 49)")),
        "app01::ldap[dc01.corp.example/search@corp]": ("skipped", (
            "app01 ldap dc01.corp.example/search@corp: not searched: the bind over LDAPS "
            "failed (invalid credentials: the server rejects the name or password (result 49))")),
        "app01::ldap[dc02.ad.corp.example/starttls@ad]": ("failed", (
            f"app01 ldap dc02.ad.corp.example/starttls@ad: expected bound as {AD_UPN} over "
            "StartTLS, observed invalid credentials: wrong user name or password "
            "(AD data 52e)")),
        "app01::ldap[dc02.ad.corp.example/search@ad]": ("skipped", (
            "app01 ldap dc02.ad.corp.example/search@ad: not searched: the bind over StartTLS "
            "failed (invalid credentials: wrong user name or password (AD data 52e))")),
    }


@pytest.mark.parametrize(("directory", "user", "reason"), [
    ("corp", "uid=locked,ou=people,dc=corp,dc=example", "account locked (password policy)"),
    ("corp", "uid=expired,ou=people,dc=corp,dc=example", "password expired (password policy)"),
    ("corp", "uid=reset,ou=people,dc=corp,dc=example",
     "password must be changed after reset (password policy)"),
    ("ad", "disabled", "account disabled (AD data 533)"),
    ("ad", "expired", "account expired (AD data 701)"),
    ("ad", "mustchange", "password must be changed (AD data 773)"),
])
def test_accounts_the_server_refuses_are_account_problems(
        lab: Lab, pytester: pytest.Pytester, directory: str, user: str, reason: str) -> None:
    text = site(lab).replace(f"user: {SLAPD_DN}" if directory == "corp" else "user: drcheck",
                             f"user: {user}")
    server = "dc01.corp.example" if directory == "corp" else "dc02.ad.corp.example"
    shown = user if directory == "corp" else f"{user}@ad.corp.example"
    outcomes = drill(pytester, text + "hosts:\n" + host("app02", "10.77.0.12", f"""\
        ldap: [{{directory: {directory}, modes: [ldaps], search: false, discovery: false}}]
        """))
    assert outcomes == {f"app02::ldap[{server}/ldaps@{directory}]": ("failed", (
        f"app02 ldap {server}/ldaps@{directory}: expected bound as {shown} over LDAPS, "
        f"observed account problem: {reason}"))}


def test_dc_with_a_rogue_ca_certificate_is_not_trusted(lab: Lab,
                                                      pytester: pytest.Pytester) -> None:
    with untrusted_certificate(lab, "dc01"):
        until = cert_until(lab.context("dc01").dir / "slapd" / "server.pem")
        outcomes = drill(pytester, site(lab) + "hosts:\n" + host("db01", "10.77.0.13", """\
            ldap: [{directory: corp, search: false}]
            """))
    presents = ("the server presents CN=dc01.corp.example (names dc01.corp.example) issued "
                f"by CN=drcheck rogue CA, valid until {until}")
    assert outcomes == {
        f"db01::ldap[dc01.corp.example/{mode}@corp]": ("failed", (
            f"db01 ldap dc01.corp.example/{mode}@corp: expected bound as {SLAPD_DN} over "
            f"{label}, observed certificate not trusted: unable to get local issuer certificate; "
            f"{presents}"))
        for mode, label in (("ldaps", "LDAPS"), ("starttls", "StartTLS"))}


def test_name_pointing_at_the_wrong_dc_is_a_name_mismatch(lab: Lab,
                                                          pytester: pytest.Pytester) -> None:
    until = cert_until(lab.context("dc02").dir / "samba" / "tls" / "server.pem")
    with lab.dns_record("dc01.corp.example", "10.77.0.21"):
        outcomes = drill(pytester, site(lab) + "hosts:\n" + host("app01", "10.77.0.11", """\
            ldap: [{directory: corp, modes: [ldaps], search: false}]
            """))
    assert outcomes == {"app01::ldap[dc01.corp.example/ldaps@corp]": ("failed", (
        f"app01 ldap dc01.corp.example/ldaps@corp: expected bound as {SLAPD_DN} over "
        "LDAPS, observed certificate name mismatch: not valid for dc01.corp.example; the server "
        "presents CN=dc02.ad.corp.example (names dc02.ad.corp.example, dc02.corp.example) "
        f"issued by CN=drcheck lab CA, valid until {until}"))}


def test_stopped_dc_is_refused(lab: Lab, pytester: pytest.Pytester) -> None:
    with lab.stopped("dc01", "slapd"):
        outcomes = drill(pytester, site(lab) + "hosts:\n" + host("app02", "10.77.0.12", """\
            ldap: [{directory: corp, search: false}]
            """))
    assert outcomes == {
        f"app02::ldap[dc01.corp.example/{mode}@corp]": ("failed", (
            f"app02 ldap dc01.corp.example/{mode}@corp: expected bound as {SLAPD_DN} over "
            f"{label}, observed connection refused"))
        for mode, label in (("ldaps", "LDAPS"), ("starttls", "StartTLS"))}


def test_black_holed_dc_times_out(lab: Lab, pytester: pytest.Pytester) -> None:
    with lab.firewall("dc02", 636, "drop"):
        started = time.monotonic()
        outcomes = drill(pytester, site(lab) + "hosts:\n" + host("db01", "10.77.0.13", """\
            ldap: [{directory: ad, modes: [ldaps], search: false, discovery: false,
                    connect_timeout: 2s}]
            """))
        elapsed = time.monotonic() - started
    assert outcomes == {"db01::ldap[dc02.ad.corp.example/ldaps@ad]": ("failed", (
        f"db01 ldap dc02.ad.corp.example/ldaps@ad: expected bound as {AD_UPN} over LDAPS, "
        "observed timed out: no TCP connection within 2 s"))}
    assert elapsed < 6


def test_hung_dc_times_out_waiting_for_its_answer(lab: Lab, pytester: pytest.Pytester) -> None:
    """The TCP connection is accepted (the kernel does that) but slapd never answers."""
    record = lab.state().hosts["dc01"].daemons["slapd"]
    assert procs.send(record.proc, signal.SIGSTOP)
    try:
        outcomes = drill(pytester, site(lab).replace("timeout: 10s", "timeout: 4s")
                         + "hosts:\n" + host("app01", "10.77.0.11", """\
            ldap: [{directory: corp, search: false}]
            """))
    finally:
        procs.send(record.proc, signal.SIGCONT)
        # nsenter, slapd's parent, stops itself when its child stops (job control): it must
        # run again too, or the lab keeps a stopped process that down cannot account for.
        procs.send(record.launcher, signal.SIGCONT)
    for proc in (record.proc, record.launcher):
        assert Path(f"/proc/{proc.pid}/stat").read_text().split(") ")[1][0] != "T"
    assert outcomes == {
        "app01::ldap[dc01.corp.example/ldaps@corp]": ("failed", (
            f"app01 ldap dc01.corp.example/ldaps@corp: expected bound as {SLAPD_DN} over "
            "LDAPS, observed timed out: no answer to the TLS handshake within 3 s")),
        "app01::ldap[dc01.corp.example/starttls@corp]": ("failed", (
            f"app01 ldap dc01.corp.example/starttls@corp: expected bound as {SLAPD_DN} over "
            "StartTLS, observed timed out: no LDAP answer within 3 s")),
    }


def test_clear_text_bind_to_ad_is_strong_auth_required(lab: Lab,
                                                       pytester: pytest.Pytester) -> None:
    outcomes = drill(pytester, site(lab) + "hosts:\n" + host("app01", "10.77.0.11", """\
        ldap: [{directory: ad, modes: [plain], search: false, discovery: false}]
        """))
    assert outcomes == {"app01::ldap[dc02.ad.corp.example/plain@ad]": ("failed", (
        f"app01 ldap dc02.ad.corp.example/plain@ad: expected bound as {AD_UPN} over plain "
        "LDAP, observed strong auth required: strongerAuthRequired: BindSimple: Transport "
        "encryption required."))}


def test_search_and_discovery_mismatches(lab: Lab, pytester: pytest.Pytester) -> None:
    text = site(lab).replace("(cn={host})", "(cn=retired-{host})").replace(
        "servers: [dc02.ad.corp.example]",
        "servers: [dc02.ad.corp.example, dc03.ad.corp.example]")
    outcomes = drill(pytester, text + "hosts:\n" + host("app02", "10.77.0.12", """\
        ldap:
          - {directory: corp, modes: [ldaps]}
          - {directory: ad, modes: [ldaps], servers: [dc02.ad.corp.example], search: false}
        """))
    assert outcomes["app02::ldap[dc01.corp.example/search@corp]"] == ("failed", (
        "app02 ldap dc01.corp.example/search@corp: expected an entry matching "
        "(cn=retired-{host}) under ou=computers,dc=corp,dc=example, the search found nothing"))
    assert outcomes["app02::ldap[ad.corp.example/srv-ldap@ad]"] == ("failed", (
        "app02 ldap ad.corp.example/srv-ldap@ad: expected dc02.ad.corp.example, "
        "dc03.ad.corp.example from SRV _ldap._tcp.dc._msdcs.ad.corp.example, found "
        "dc02.ad.corp.example:389 via 10.77.0.53 (missing dc03.ad.corp.example)"))


def test_canary_password_never_leaves_the_bind(lab: Lab, pytester: pytest.Pytester,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The bind password, right and wrong, is nowhere in what a drill prints or writes, even
    with debug logging to a file, every verbosity, and failures that quote the server."""
    real = (lab.paths.secrets_dir / "directory-bind-password").read_text().strip()
    monkeypatch.setenv("DRCHECK_RIGHT", real)
    monkeypatch.setenv("DRCHECK_WRONG", CANARY)
    inventory = site(lab, "env:DRCHECK_RIGHT").rstrip("\n") + "\n" + textwrap.indent(
        textwrap.dedent(f"""\
            wrong:
              servers: [dc01.corp.example, dc02.ad.corp.example]
              user: {SLAPD_DN}
              password: env:DRCHECK_WRONG
              ca_bundle: {lab.paths.pki_dir / 'ca.pem'}
              modes: [ldaps, starttls, plain]
            """), " " * 4) + "hosts:\n" + host("app01", "10.77.0.11", """\
        ldap:
          - {directory: corp, modes: [ldaps, starttls, plain]}
          - {directory: ad}
          - {directory: wrong}
        """)
    (pytester.path / "site.yaml").write_text(inventory)
    result = pytester.runpytest_subprocess(
        "--dr-inventory=site.yaml", "--junitxml=drill.xml", "--dr-evidence=evidence",
        "-p", "no:cacheprovider", "-vv",
        "-rA", "--log-level=DEBUG", "--log-file=drill.log", "--log-file-level=DEBUG",
        "--showlocals", "--tb=long")
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == 9 and outcomes["failed"] == 6  # wrong: 2 servers x 3 modes
    text_out = result.stdout.str() + result.stderr.str()
    assert "invalid credentials" in text_out and "strong auth required" in text_out
    written = [p for p in pytester.path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"site.yaml", "drill.xml", "drill.log"}
    assert any(p.parent.name == "evidence" or "evidence" in p.parts for p in written)
    for secret in (CANARY, real):
        assert secret not in text_out
        for path in written:
            assert secret.encode() not in path.read_bytes(), path
    # Nor did the wrong one reach any log the lab's daemons write.
    for path in lab.paths.hosts_dir.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert CANARY.encode() not in path.read_bytes(), path


# -- time ---------------------------------------------------------------------------------------

TIME_SITE = """\
  time:
    max_offset: 1s
    sources: [ntp01.corp.example]
"""


def time_drill(lab: Lab, pytester: pytest.Pytester, checks: str,
               name: str = "app02", address: str = "10.77.0.12") -> dict[str, tuple[str, str]]:
    return drill(pytester, site(lab) + TIME_SITE + "hosts:\n" + host(name, address, checks))


def test_skewed_time_source_fails_sync(lab: Lab, pytester: pytest.Pytester) -> None:
    with skewed_source(lab, "app02") as skew:
        outcomes = time_drill(lab, pytester, "time: [{}]\n")
    assert skew == 120.0
    assert outcomes["app02::time[sync]"] == ("failed", (
        "app02 time sync: expected synchronised within 1 s of its source, observed chrony "
        "synchronised to 10.77.0.30 (stratum 3), clock 120 s slow of it"))
    # The source is still the expected address: the skew is the finding, not the source.
    assert outcomes["app02::time[source]"] == ("passed",
                                               "10.77.0.30 = ntp01.corp.example (chrony)")


def test_offset_against_a_skewed_reference_is_measured(lab: Lab,
                                                      pytester: pytest.Pytester) -> None:
    outcomes = time_drill(lab, pytester, """\
        time: [{reference: "ntp:10.77.0.30:1123"}]
        """)
    outcome, message = outcomes["app02::time[offset]"]
    assert outcome == "failed"
    assert re.fullmatch(
        r"app02 time offset: expected within 1 s of NTP server 10\.77\.0\.30:1123, observed "
        r"-1(19\.\d+|20(\.\d+)?) s \(\u00b1[\d.]+ ms\) against NTP server 10\.77\.0\.30:1123; "
        r"the runner's clock is 120 s slow of it", message), message
    good = time_drill(lab, pytester, """\
        time: [{reference: "ntp:10.77.0.30"}]
        """)
    assert good["app02::time[offset]"][0] == "passed"


def test_instance_without_time_sync(lab: Lab, pytester: pytest.Pytester) -> None:
    with lab.stopped("app01", "chronyd"):
        outcomes = time_drill(lab, pytester, "time: [{}]\n", "app01", "10.77.0.11")
    outcome, message = outcomes["app01::time[sync]"]
    assert outcome == "failed"
    assert message.startswith("app01 time sync: expected synchronised within 1 s of its "
                              f"source, {NO_DAEMON}"), message
    outcome, message = outcomes["app01::time[source]"]
    assert outcome == "skipped"
    assert message.startswith("app01 time source: no source to compare: no time daemon "
                              "answers (chrony: 506 Cannot talk to daemon"), message
    # The clock itself is still measured.
    assert outcomes["app01::time[offset]"][0] == "passed"


def test_unexpected_time_source(lab: Lab, pytester: pytest.Pytester) -> None:
    outcomes = time_drill(lab, pytester, "time: [{sources: [169.254.169.123]}]\n",
                          "db01", "10.77.0.13")
    assert outcomes["db01::time[source]"] == ("failed", (
        "db01 time source: expected 169.254.169.123, chrony uses 10.77.0.30"))
