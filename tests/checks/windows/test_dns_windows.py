"""dns on Windows: Resolve-DnsName into the family's DnsLookup, judged by the shared judge."""

from __future__ import annotations

import pytest

from pytest_drcheck.checks.dns import DnsCheck, DnsLookup, NotFound
from pytest_drcheck.checks.windows import dns as windows
from pytest_drcheck.model import CouldNotObserve, Outcome
from tests.checks.windows.helpers import evaluate, observe, recorded, windows_item
from tests.targets.fake_windows import Answer

CHECK = DnsCheck()
SITE = {"dns": {"resolvers": {"onprem": "10.77.0.53", "alt": "10.77.0.54:5353"}}}


def system(name: str, record_type: str = "A") -> str:
    return windows.resolve_command(name, record_type)


def dns_only(name: str, record_type: str = "A") -> str:
    return windows.resolve_command(name, record_type, windows.DNS_ONLY)


def test_a_through_a_cname_chain() -> None:
    item = windows_item(CHECK, "app.corp.example", {"name": "app.corp.example",
                                                      "expect": "10.77.0.11"})
    answers = {system("app.corp.example"): Answer(0, recorded("resolve-a-cname-chain.json")),
               dns_only("app.corp.example"): Answer(0, recorded("resolve-a-cname-chain.json"))}
    value = observe(CHECK, item, answers)
    assert (value.how, value.values, value.from_hosts_file) == ("system", ("10.77.0.11",),
                                                                False)
    assert evaluate(CHECK, item, answers).outcome is Outcome.PASSED


def test_an_answer_dns_does_not_give_is_the_hosts_file() -> None:
    item = windows_item(CHECK, "db01.corp.example", {"name": "db01.corp.example",
                                                       "expect": "10.1.2.3"})
    answers = {system("db01.corp.example"): Answer(0, recorded("resolve-a-hosts-file.json")),
               dns_only("db01.corp.example"): Answer(0, recorded("resolve-a-dns-only.json"))}
    value = observe(CHECK, item, answers)
    assert value.from_hosts_file and value.dns_behind == "DNS answers 10.77.0.12"
    verdict = evaluate(CHECK, item, answers)
    assert verdict.outcome is Outcome.FAILED
    assert verdict.reason.endswith("; DNS answers 10.77.0.12")
    allowed = windows_item(CHECK, "db01.corp.example", {
        "name": "db01.corp.example", "expect": "10.1.2.3", "allow_hosts_file": True})
    assert evaluate(CHECK, allowed, answers).outcome is Outcome.PASSED


def test_nxdomain_is_an_answer_a_timeout_is_not() -> None:
    item = windows_item(CHECK, "nothere.corp.example", {"name": "nothere.corp.example",
                                                          "absent": True})
    answers = {system("nothere.corp.example"): Answer(0, recorded("resolve-nxdomain.json"))}
    value = observe(CHECK, item, answers)
    assert value == DnsLookup("system", (), NotFound("NXDOMAIN", windows.SYSTEM_VIA),
                              details=value.details)
    assert evaluate(CHECK, item, answers).outcome is Outcome.PASSED
    slow = {system("nothere.corp.example"): Answer(0, recorded("resolve-timeout.json"))}
    with pytest.raises(CouldNotObserve, match=r"the system resolver \(Resolve-DnsName\) gave "
                                              "no answer for nothere.corp.example on win01: "
                                              ".*timeout period expired \\(ERROR_TIMEOUT\\)"):
        observe(CHECK, item, slow)


def test_srv_and_its_no_data_answer() -> None:
    item = windows_item(CHECK, "_ldap._tcp.corp.example/SRV", {
        "name": "_ldap._tcp.corp.example", "type": "SRV", "expect": "0 100 389 dc01.corp.example"})
    answers = {system("_ldap._tcp.corp.example", "SRV"): Answer(0, recorded("resolve-srv.json"))}
    assert observe(CHECK, item, answers).values == ("0 100 389 dc01.corp.example",)
    assert evaluate(CHECK, item, answers).outcome is Outcome.PASSED
    empty = {system("_ldap._tcp.corp.example", "SRV"): Answer(0, recorded(
        "resolve-srv-nodata.json"))}
    verdict = evaluate(CHECK, item, empty)
    assert verdict.outcome is Outcome.FAILED and verdict.observed.startswith("resolved nothing")


def test_ptr() -> None:
    item = windows_item(CHECK, "10.77.0.11/PTR", {"name": "10.77.0.11", "type": "PTR",
                                                  "expect": "app01.corp.example"})
    answers = {system("10.77.0.11", "PTR"): Answer(0, recorded("resolve-ptr.json"))}
    assert evaluate(CHECK, item, answers).outcome is Outcome.PASSED


def test_a_named_resolver_is_asked_with_server_on_port_53_only() -> None:
    item = windows_item(CHECK, "app01.corp.example@onprem", {
        "name": "app01.corp.example", "resolver": "onprem", "expect": "10.77.0.11"}, SITE)
    (command,) = CHECK.commands(item)
    assert "-Server '10.77.0.53' -DnsOnly -NoHostsFile" in command
    answers = {command: Answer(0, recorded("resolve-a-cname-chain.json"))}
    verdict = evaluate(CHECK, item, answers)
    assert verdict.outcome is Outcome.PASSED
    assert verdict.observed == "resolved 10.77.0.11 via onprem (10.77.0.53:53)"
    other = windows_item(CHECK, "app01.corp.example@alt", {
        "name": "app01.corp.example", "resolver": "alt"}, SITE)
    assert list(CHECK.commands(other)) == []  # over the host's stream (ssh), as on Linux


def test_hostile_names_stay_literal() -> None:
    command = system("x'; Remove-Item C:\\ -Recurse; '")
    assert "-Name 'x''; Remove-Item C:\\ -Recurse; ''' -Type A" in command
