"""dns: judged from recorded getent outputs, and observed against a real DNS server over TCP
(the instance's nameserver, dialled through the target) for every "could not observe" cause:
a failed resolver never reads as "does not resolve", and never passes an absent name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_drcheck.checks.dns import DnsCheck
from pytest_drcheck.model import CouldNotObserve, Observation, Outcome
from pytest_drcheck.net.resolvconf import parse_resolv_conf
from tests.checks.instances import NameserverTarget, TcpDnsServer, context, item_of, ran

CHECK = DnsCheck()
SITE = {"dns": {"resolvers": {"onprem": "10.77.0.53"}}}
RESOLV = "search corp.example\nnameserver 10.77.0.53\n"
ZONE = {("dc01.corp.example", "A"): ["10.77.0.20"],
        ("20.0.77.10.in-addr.arpa", "PTR"): ["dc01.corp.example."],
        ("mail.corp.example", "MX"): ["10 mx.corp.example."],
        ("_ldap._tcp.corp.example", "SRV"): ["0 100 389 dc01.corp.example."]}


@pytest.fixture
def server() -> Iterator[TcpDnsServer]:
    dns_server = TcpDnsServer(ZONE)
    yield dns_server
    dns_server.close()


def evaluate(entry: dict[str, object], outputs: list[tuple[int, str]],
             target: NameserverTarget, resolv: str = RESOLV, timeout: float = 5.0,
             site: dict[str, object] | None = None) -> Observation:
    """The check's verdict for recorded outputs of its getent commands (those not given: not
    found); the resolv.conf command (always last) prints ``resolv``."""
    item = item_of(CHECK, entry, site or SITE, timeout=timeout)
    commands = list(CHECK.commands(item))
    results = [ran(c, *(outputs[i] if i < len(outputs) else (2, "")))
               for i, c in enumerate(commands[:-1])]
    if commands:
        results.append(ran(commands[-1], 0, resolv))
    return CHECK.evaluate(context(item, target, results))


def cause(entry: dict[str, object], outputs: list[tuple[int, str]], target: NameserverTarget,
          **kwargs: object) -> str:
    with pytest.raises(CouldNotObserve) as raised:
        evaluate(entry, outputs, target, **kwargs)  # type: ignore[arg-type]
    return str(raised.value)


# --- the system resolver: answers ----------------------------------------------------------

def test_an_answer_that_matches_passes_and_a_wrong_one_fails(server: TcpDnsServer) -> None:
    target = NameserverTarget({"10.77.0.53": server.port})
    found = [(0, "10.77.0.20      STREAM dc01.corp.example\n10.77.0.20      DGRAM\n"), (2, "")]
    ok = evaluate({"name": "dc01.corp.example", "expect": "10.77.0.20"}, found, target)
    assert (ok.outcome, ok.observed) == (Outcome.PASSED, "resolved 10.77.0.20")
    wrong = evaluate({"name": "dc01.corp.example", "expect": "10.77.0.21"}, found, target)
    assert wrong.outcome is Outcome.FAILED
    assert wrong.reason == "expected 10.77.0.21, resolved 10.77.0.20"
    assert target.dialled == []  # an answer needs no confirmation


def test_a_hosts_file_answer_fails_naming_what_dns_answers(server: TcpDnsServer) -> None:
    target = NameserverTarget({"10.77.0.53": server.port})
    hosts = [(0, "10.9.9.9 STREAM dc01.corp.example\n"), (0, "10.9.9.9 dc01.corp.example\n"),
             (0, "10.77.0.20 STREAM dc01.corp.example\n")]
    verdict = evaluate({"name": "dc01.corp.example", "expect": "10.77.0.20"}, hosts, target)
    assert verdict.reason == ("expected 10.77.0.20, resolved 10.9.9.9 (from /etc/hosts); DNS "
                              "answers 10.77.0.20")
    allowed = evaluate({"name": "dc01.corp.example", "expect": "10.9.9.9",
                        "allow_hosts_file": True}, hosts, target)
    assert (allowed.outcome, allowed.observed) == (
        Outcome.PASSED, "resolved 10.9.9.9 (from /etc/hosts)")


def test_a_hosts_file_answer_with_dns_down_still_fails_without_claiming_why_dns_is_silent(
        ) -> None:
    target = NameserverTarget({})
    hosts = [(0, "10.9.9.9 STREAM dc01.corp.example\n"), (0, "10.9.9.9 dc01.corp.example\n"),
             (2, "")]
    verdict = evaluate({"name": "dc01.corp.example", "expect": "10.77.0.20"}, hosts, target)
    assert verdict.outcome is Outcome.FAILED
    assert verdict.reason == (
        "expected 10.77.0.20, resolved 10.9.9.9 (from /etc/hosts); DNS alone does not resolve "
        "it (no such name, or no nameserver answered)")
    assert target.dialled == []


def test_an_absent_name_passes_only_on_an_observed_nxdomain(server: TcpDnsServer) -> None:
    target = NameserverTarget({"10.77.0.53": server.port})
    verdict = evaluate({"name": "legacy.corp.example", "absent": True}, [(2, ""), (2, "")],
                       target)
    assert verdict.outcome is Outcome.PASSED
    assert verdict.observed == "does not resolve (NXDOMAIN from 10.77.0.53:53)"
    # glibc's order: the name itself (it has a dot), then the search list.
    assert server.asked == [("legacy.corp.example", "A"),
                            ("legacy.corp.example.corp.example", "A")]


def test_no_record_of_the_type_is_absent_too(server: TcpDnsServer) -> None:
    target = NameserverTarget({"10.77.0.53": server.port})
    verdict = evaluate({"name": "mail.corp.example", "absent": True}, [(2, ""), (2, "")],
                       target)
    assert verdict.outcome is Outcome.PASSED
    assert verdict.observed == "does not resolve (no A record (NOERROR) from 10.77.0.53:53)"


def test_a_name_that_does_not_resolve_fails_with_the_nameservers_answer(
        server: TcpDnsServer) -> None:
    target = NameserverTarget({"10.77.0.53": server.port})
    verdict = evaluate({"name": "dc09.corp.example", "expect": "10.77.0.29"},
                       [(2, ""), (2, "")], target)
    assert verdict.outcome is Outcome.FAILED
    assert verdict.reason == ("expected 10.77.0.29, does not resolve (NXDOMAIN from "
                              "10.77.0.53:53)")


def test_the_next_nameserver_is_asked_when_the_first_gives_no_answer(
        server: TcpDnsServer) -> None:
    target = NameserverTarget({"10.77.0.54": server.port})
    verdict = evaluate({"name": "legacy.corp.example", "absent": True}, [(2, ""), (2, "")],
                       target, resolv="nameserver 10.77.0.53\nnameserver 10.77.0.54\n")
    assert verdict.observed == "does not resolve (NXDOMAIN from 10.77.0.54:53)"


# --- the system resolver failed: could not observe (issue 14 items 1 and 4) ----------------

def test_a_failed_resolver_never_passes_an_absent_name() -> None:
    # getent says 2 and the nameserver is down: before, "does not resolve" and a pass.
    target = NameserverTarget({})
    assert cause({"name": "legacy.corp.example", "absent": True}, [(2, ""), (2, "")],
                 target) == ("the system resolver on app01 failed: nameserver 10.77.0.53:53 "
                             "refused the TCP connection")


def test_a_failed_resolver_is_not_does_not_resolve() -> None:
    target = NameserverTarget({})
    assert cause({"name": "dc01.corp.example", "expect": "10.77.0.20"}, [(2, ""), (2, "")],
                 target, resolv="nameserver 10.77.0.53\nnameserver 10.77.0.54\n") == (
        "the system resolver on app01 failed: nameserver 10.77.0.53:53 refused the TCP "
        "connection; nameserver 10.77.0.54:53 refused the TCP connection")


def test_a_silent_nameserver_is_a_resolver_that_timed_out() -> None:
    silent = TcpDnsServer(silent=True)
    try:
        target = NameserverTarget({"10.77.0.53": silent.port})
        message = cause({"name": "legacy.corp.example", "absent": True}, [(2, ""), (2, "")],
                        target, timeout=0.6)
    finally:
        silent.close()
    assert message.startswith("the system resolver on app01 failed: nameserver "
                              "10.77.0.53:53 did not answer within ")


def test_servfail_is_a_failed_resolver_not_an_answer() -> None:
    failing = TcpDnsServer(rcodes={"legacy.corp.example": "SERVFAIL"})
    try:
        target = NameserverTarget({"10.77.0.53": failing.port})
        message = cause({"name": "legacy.corp.example", "absent": True}, [(2, ""), (2, "")],
                        target)
    finally:
        failing.close()
    assert message == ("the system resolver on app01 failed: nameserver 10.77.0.53:53 "
                       "answered SERVFAIL for legacy.corp.example")


def test_a_search_list_name_whose_lookup_failed_is_not_absent() -> None:
    # The name itself is NXDOMAIN, but glibc would also have tried it in the search list,
    # where the resolver failed: the name may exist there.
    failing = TcpDnsServer(rcodes={"legacy.corp.example": "SERVFAIL"})
    try:
        target = NameserverTarget({"10.77.0.53": failing.port})
        message = cause({"name": "legacy", "absent": True}, [(2, ""), (2, "")], target)
    finally:
        failing.close()
    assert message.endswith("answered SERVFAIL for legacy.corp.example")


def test_no_nameserver_listed_means_glibcs_default_which_is_named() -> None:
    target = NameserverTarget({})
    assert cause({"name": "legacy.corp.example", "absent": True}, [(2, ""), (2, "")], target,
                 resolv="search corp.example\n") == (
        "the system resolver on app01 failed: /etc/resolv.conf lists no nameserver, and "
        "nameserver 127.0.0.1:53 refused the TCP connection (127.0.0.1 is glibc's default)")


def test_getent_not_found_while_dns_answers_is_not_observed_as_absent(
        server: TcpDnsServer) -> None:
    target = NameserverTarget({"10.77.0.53": server.port})
    assert cause({"name": "dc01.corp.example", "absent": True}, [(2, ""), (2, "")],
                 target) == (
        "the system resolver on app01 does not resolve dc01.corp.example (getent exit 2) "
        "although nameserver 10.77.0.53:53 answers 10.77.0.20 over TCP; check nsswitch.conf "
        "and UDP to the nameserver")


def test_a_timed_out_or_missing_getent_is_not_data(server: TcpDnsServer) -> None:
    target = NameserverTarget({"10.77.0.53": server.port})
    item = item_of(CHECK, {"name": "legacy.corp.example", "absent": True}, SITE)
    commands = CHECK.commands(item)
    timed_out = [ran(commands[0], timed_out=True), ran(commands[1], 2), ran(commands[2], 2),
                 ran(commands[3], 0, RESOLV)]
    # The nameserver answers over TCP: getent's timeout is the resolver path's (UDP, say).
    with pytest.raises(CouldNotObserve, match=r"^the system resolver on app01 did not answer in "
                                              r"time \(`getent ahostsv4 legacy.corp.example` "
                                              r"timed out after 10 s on app01\) although "
                                              r"nameserver 10.77.0.53:53 answers NXDOMAIN over "
                                              r"TCP; check UDP to the nameserver$"):
        CHECK.evaluate(context(item, target, timed_out))
    # The nameserver is down too (the DNS server killed): that is the cause, not getent.
    with pytest.raises(CouldNotObserve, match=r"^the system resolver on app01 failed: "
                                              r"nameserver 10.77.0.53:53 refused the TCP "
                                              r"connection$"):
        CHECK.evaluate(context(item, NameserverTarget({}), timed_out))
    missing = [ran(commands[0], 127), ran(commands[1], 127), ran(commands[2], 127),
               ran(commands[3], 0, RESOLV)]
    with pytest.raises(CouldNotObserve, match=r"is not available on app01 \(command not "
                                              r"found\)$"):
        CHECK.evaluate(context(item, target, missing))


# --- PTR -----------------------------------------------------------------------------------

def test_ptr_answer_and_its_not_found_and_its_failed_resolver(server: TcpDnsServer) -> None:
    target = NameserverTarget({"10.77.0.53": server.port})
    entry = {"name": "10.77.0.20", "type": "PTR", "expect": "dc01.corp.example"}
    found = evaluate(entry, [(0, "10.77.0.20      dc01.corp.example\n")], target)
    assert (found.outcome, found.observed) == (Outcome.PASSED, "resolved dc01.corp.example")
    missing = evaluate({**entry, "name": "10.77.0.21"}, [(2, "")], target)
    assert missing.reason == ("expected dc01.corp.example, does not resolve (NXDOMAIN from "
                              "10.77.0.53:53)")
    absent = evaluate({"name": "10.77.0.21", "type": "PTR", "absent": True}, [(2, "")], target)
    assert absent.outcome is Outcome.PASSED
    down = NameserverTarget({})
    assert cause({"name": "10.77.0.21", "type": "PTR", "absent": True}, [(2, "")], down) == (
        "the system resolver on app01 failed: nameserver 10.77.0.53:53 refused the TCP "
        "connection")
    assert cause(entry, [(2, "")], down).startswith("the system resolver on app01 failed")


def test_a_timed_out_ptr_lookup_is_not_does_not_resolve(server: TcpDnsServer) -> None:
    target = NameserverTarget({"10.77.0.53": server.port})
    item = item_of(CHECK, {"name": "10.77.0.20", "type": "PTR", "expect": "dc01.corp.example"},
                   SITE)
    outputs = [ran("getent hosts 10.77.0.20", timed_out=True),
               ran("cat /etc/resolv.conf", 0, RESOLV)]
    with pytest.raises(CouldNotObserve, match=r"^the system resolver on app01 did not answer in "
                                              r"time \(`getent hosts 10.77.0.20` timed out "
                                              r"after 10 s on app01\)"):
        CHECK.evaluate(context(item, target, outputs))
    with pytest.raises(CouldNotObserve, match=r"^the system resolver on app01 failed: "
                                              r"nameserver 10.77.0.53:53 refused"):
        CHECK.evaluate(context(item, NameserverTarget({}), outputs))


# --- SRV/CNAME through the system resolver's nameservers -----------------------------------

def test_srv_through_the_instances_nameservers(server: TcpDnsServer) -> None:
    target = NameserverTarget({"10.77.0.53": server.port})
    entry = {"name": "_ldap._tcp.corp.example", "type": "SRV",
             "expect": "0 100 389 dc01.corp.example"}
    verdict = evaluate(entry, [], target)
    assert (verdict.outcome, verdict.observed) == (
        Outcome.PASSED, "resolved 0 100 389 dc01.corp.example via system resolver 10.77.0.53")


def test_an_unreadable_resolv_conf_is_not_no_nameserver() -> None:
    item = item_of(CHECK, {"name": "_ldap._tcp.corp.example", "type": "SRV"}, SITE)
    outputs = [ran("cat /etc/resolv.conf", timed_out=True)]
    with pytest.raises(CouldNotObserve, match=r"^`cat /etc/resolv.conf` timed out after 10 s "
                                              r"on app01$"):
        CHECK.evaluate(context(item, NameserverTarget({}), outputs))


def test_srv_with_no_nameserver_answering_could_not_be_observed() -> None:
    assert cause({"name": "_ldap._tcp.corp.example", "type": "SRV"}, [],
                 NameserverTarget({})) == (
        "the system resolver on app01 failed: nameserver 10.77.0.53:53 refused the TCP "
        "connection")


# --- a named resolver ----------------------------------------------------------------------

def test_a_named_resolver_answer_nxdomain_and_failures(server: TcpDnsServer) -> None:
    site = {"dns": {"resolvers": {"onprem": f"127.0.0.1:{server.port}"}}}
    target = NameserverTarget({})
    via = f"onprem (127.0.0.1:{server.port})"
    ok = evaluate({"name": "dc01.corp.example", "expect": "10.77.0.20", "resolver": "onprem"},
                  [], target, site=site)
    assert ok.observed == f"resolved 10.77.0.20 via {via}"
    gone = evaluate({"name": "dc09.corp.example", "expect": "10.77.0.29",
                     "resolver": "onprem"}, [], target, site=site)
    assert gone.reason == f"expected 10.77.0.29, {via} answered NXDOMAIN"
    absent = evaluate({"name": "legacy.corp.example", "absent": True, "resolver": "onprem"},
                      [], target, site=site)
    assert (absent.outcome, absent.observed) == (Outcome.PASSED, f"NXDOMAIN from {via}")
    present = evaluate({"name": "dc01.corp.example", "absent": True, "resolver": "onprem"},
                       [], target, site=site)
    assert present.reason == ("expected no A record (does not resolve), observed resolved "
                              f"10.77.0.20 via {via}")


def test_a_named_resolver_that_gives_no_answer_could_not_be_observed() -> None:
    port = NameserverTarget({}).closed
    site = {"dns": {"resolvers": {"onprem": f"127.0.0.1:{port}"}}}
    assert cause({"name": "legacy.corp.example", "absent": True, "resolver": "onprem"}, [],
                 NameserverTarget({}), site=site) == (
        f"resolver onprem (127.0.0.1:{port}) refused the TCP connection")
    closing = TcpDnsServer(closing=True)
    try:
        site = {"dns": {"resolvers": {"onprem": f"127.0.0.1:{closing.port}"}}}
        assert cause({"name": "dc02.ad.corp.example", "resolver": "onprem"}, [],
                     NameserverTarget({}), site=site) == (
            f"resolver onprem (127.0.0.1:{closing.port}) closed the TCP connection without "
            "answering")
    finally:
        closing.close()
    failing = TcpDnsServer(rcodes={"dc01.corp.example": "SERVFAIL"})
    try:
        site = {"dns": {"resolvers": {"onprem": f"127.0.0.1:{failing.port}"}}}
        assert cause({"name": "dc01.corp.example", "resolver": "onprem"}, [],
                     NameserverTarget({}), site=site) == (
            f"resolver onprem (127.0.0.1:{failing.port}) answered SERVFAIL for "
            "dc01.corp.example")
    finally:
        failing.close()


# --- resolv.conf as glibc reads it ---------------------------------------------------------

def test_resolv_conf_order_of_names_and_servers() -> None:
    conf = parse_resolv_conf("# lab\ndomain old.example\nsearch corp.example example.net\n"
                             "options ndots:2 timeout:1\nnameserver 10.0.0.1\n"
                             "nameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n")
    assert conf.asked == ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    assert conf.candidates("app01.corp") == ("app01.corp.corp.example.",
                                             "app01.corp.example.net.", "app01.corp.")
    assert conf.candidates("a.b.example") == ("a.b.example.", "a.b.example.corp.example.",
                                              "a.b.example.example.net.")
    assert conf.candidates("x.example.") == ("x.example.",)
    assert parse_resolv_conf("").asked == ("127.0.0.1",)
