"""dns: judged from recorded getent outputs, and observed against a real DNS server over TCP
(the instance's nameserver, dialled through the target) for every "could not observe" cause:
a failed resolver never reads as "does not resolve", and never passes an absent name."""

from __future__ import annotations

import contextlib
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import pytest

from pytest_drcheck.checks import dns as dns_check
from pytest_drcheck.checks.dns import DnsCheck
from pytest_drcheck.model import CouldNotObserve, Observation, Outcome
from pytest_drcheck.net import dnsshared
from pytest_drcheck.net.resolvconf import parse_resolv_conf
from pytest_drcheck.targets.base import CommandResult
from pytest_drcheck.targets.local import LocalTarget
from tests.checks.instances import NameserverTarget, TcpDnsServer, context, item_of, ran
from tests.sockets import LoopbackServer, recv_exactly

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
    if commands and commands[0].startswith(dns_check.lookup_commands("x", "A")[1][:15]):
        lookups = dns_check.lookup_commands(str(entry["name"]), str(entry.get("type", "A")))
        results = [as_one_command(commands[0], [
            ran(c, *(outputs[i] if i < len(outputs) else (2, "")))
            for i, c in enumerate(lookups)])]
    else:
        results = [ran(c, *(outputs[i] if i < len(outputs) else (2, "")))
                   for i, c in enumerate(commands[:-1])]
    if commands:
        results.append(ran(commands[-1], 0, resolv))
    return CHECK.evaluate(context(item, target, results))


def as_one_command(script: str, lookups: list[CommandResult]) -> CommandResult:
    """What the batch gives back for ``dns.lookup_script`` when its lookups give ``lookups``
    (glibc, hosts file, DNS alone), written as the shell writes it (a real shell runs it in
    test_the_lookups_of_a_name_run_as_one_command_in_a_real_shell)."""
    out = err = ""
    for index in (dns_check.FILES_LOOKUP, dns_check.SYSTEM_LOOKUP, dns_check.DNS_LOOKUP):
        if index == dns_check.DNS_LOOKUP and lookups[dns_check.FILES_LOOKUP].exit_status:
            break
        result = lookups[index]
        out, err = out + result.stdout, err + result.stderr
        if result.timed_out:
            return ran(script, 124, out, err, timed_out=True)
        out += f"#drcheck-getent {index} {result.exit_status}\n"
        err += f"#drcheck-getent {index}\n"
    return ran(script, 0, out, err)


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
    script, resolv = CHECK.commands(item)
    lookups = dns_check.lookup_commands("legacy.corp.example", "A")
    timed_out = [as_one_command(script, [ran(lookups[0], timed_out=True), ran(lookups[1], 2),
                                         ran(lookups[2], 2)]), ran(resolv, 0, RESOLV)]
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
    missing = [as_one_command(script, [ran(c, 127) for c in lookups]), ran(resolv, 0, RESOLV)]
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


# --- one stream per host and resolver (net.dnsshared) --------------------------------------

NAMES = {f"host{i}.corp.example": f"10.77.1.{i}" for i in range(8)}


def named(name: str, port: int, target: NameserverTarget, timeout: float = 5.0,
          **entry: object) -> Observation | str:
    """A named-resolver check's verdict, or its could-not-observe cause."""
    site = {"dns": {"resolvers": {"onprem": f"127.0.0.1:{port}"}}}
    try:
        return evaluate({"name": name, "resolver": "onprem", **entry}, [], target,
                        timeout=timeout, site=site)
    except CouldNotObserve as exc:
        return str(exc)


def side_by_side(names: list[str], port: int, target: NameserverTarget, timeout: float = 5.0
                 ) -> dict[str, Observation | str]:
    """The checks of ``names`` run at once, as the engine runs a host's checks."""
    with ThreadPoolExecutor(len(names)) as pool:
        futures = {n: pool.submit(named, n, port, target, timeout, expect=NAMES.get(n, "x"))
                   for n in names}
        return {n: f.result() for n, f in futures.items()}


def dialled(target: NameserverTarget, port: int) -> int:
    return sum(1 for _, p in target.dialled if p == port)


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[int]:
    """A real dnsmasq on 127.0.0.1 answering NAMES (and NXDOMAIN for the rest of the zone)."""
    if shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq is not installed")
    with socket.socket() as probe:  # a free port; dnsmasq binds it right after
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        ["dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
         "--bind-interfaces", "--listen-address=127.0.0.1", f"--port={port}", "--user=root",
         "--group=root", "--pid-file=", f"--log-facility={tmp_path / 'dnsmasq.log'}",
         "--cache-size=0", "--local=/corp.example/",
         *(f"--host-record={n},{a}" for n, a in NAMES.items())],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:  # ready when it accepts
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "dnsmasq did not start"
            time.sleep(0.02)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def test_the_queries_of_one_host_to_dnsmasq_share_one_connection(dnsmasq: int) -> None:
    target = NameserverTarget({})
    verdicts = side_by_side([*NAMES, "legacy.corp.example"], dnsmasq, target)
    via = f"onprem (127.0.0.1:{dnsmasq})"
    for name, address in NAMES.items():
        verdict = verdicts[name]
        assert isinstance(verdict, Observation), verdict
        assert (verdict.outcome, verdict.observed) == (Outcome.PASSED,
                                                       f"resolved {address} via {via}")
    legacy = verdicts["legacy.corp.example"]
    assert isinstance(legacy, Observation) and legacy.observed == f"NXDOMAIN from {via}"
    # The next checks of the host, one after another, take the same stream.
    for name in list(NAMES)[:3]:
        again = named(name, dnsmasq, target, expect=NAMES[name])
        assert isinstance(again, Observation) and again.outcome is Outcome.PASSED
    # Before: one connection per query (12).
    assert dialled(target, dnsmasq) == 1


class ScriptedDnsServer(LoopbackServer):
    """A DNS server over TCP whose ``script(conn, index)`` serves each connection (the
    index counts connections from 0); ``query(conn)`` and ``answer(query, address)``
    help."""

    def __init__(self, script: Callable[[socket.socket, int], None]) -> None:
        self.script = script
        self.conns: list[socket.socket] = []
        super().__init__()

    def serve(self, conn: socket.socket, index: int) -> None:
        self.conns.append(conn)
        super().serve(conn, index)

    def converse(self, conn: socket.socket, index: int) -> None:
        self.script(conn, index)

    @staticmethod
    def query(conn: socket.socket) -> dns.message.Message:
        (length,) = struct.unpack("!H", recv_exactly(conn, 2))
        return dns.message.from_wire(recv_exactly(conn, length))

    @staticmethod
    def answer(query: dns.message.Message) -> bytes:
        response = dns.message.make_response(query)
        name = query.question[0].name
        address = NAMES.get(name.to_text().rstrip("."))
        if address is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            response.answer.append(dns.rrset.from_text_list(name, 60, "IN", "A", [address]))
        wire = response.to_wire()
        return struct.pack("!H", len(wire)) + wire

    def close(self) -> None:
        super().close()
        for conn in self.conns:
            conn.close()


def name_of(query: dns.message.Message) -> str:
    return str(query.question[0].name.to_text().rstrip("."))


@contextlib.contextmanager
def scripted(script: Callable[[socket.socket, int], None]) -> Iterator[ScriptedDnsServer]:
    server = ScriptedDnsServer(script)
    try:
        yield server
    finally:
        server.close()


def serve_in_order(conn: socket.socket) -> None:
    while True:
        conn.sendall(ScriptedDnsServer.answer(ScriptedDnsServer.query(conn)))


def test_answers_out_of_order_go_to_the_query_of_their_id() -> None:
    names = list(NAMES)[:3]

    def reversed_answers(conn: socket.socket, index: int) -> None:
        queries = [ScriptedDnsServer.query(conn) for _ in names]
        # A stray answer (an id nobody asked with) first, then the rest last-asked first.
        stray = dns.message.make_query("host7.corp.example", "A")
        stray.id = next(i for i in range(65536) if i not in {q.id for q in queries})
        conn.sendall(ScriptedDnsServer.answer(stray))
        for query in reversed(queries):
            conn.sendall(ScriptedDnsServer.answer(query))
        serve_in_order(conn)

    with scripted(reversed_answers) as server:
        target = NameserverTarget({})
        verdicts = side_by_side(names, server.port, target)
        assert {n: v.observed for n, v in verdicts.items() if isinstance(v, Observation)} == {
            n: f"resolved {NAMES[n]} via onprem (127.0.0.1:{server.port})" for n in names}
        assert dialled(target, server.port) == 1


def test_a_stream_broken_mid_answer_leaves_each_unanswered_query_not_observed() -> None:
    names = list(NAMES)[:3]

    def breaks_off(conn: socket.socket, index: int) -> None:
        queries = sorted((ScriptedDnsServer.query(conn) for _ in names), key=name_of)
        conn.sendall(ScriptedDnsServer.answer(queries[0]))
        conn.sendall(ScriptedDnsServer.answer(queries[1])[:9])  # half an answer, then gone
        conn.close()

    with scripted(breaks_off) as server:
        target = NameserverTarget({})
        verdicts = side_by_side(names, server.port, target)
        via = f"onprem (127.0.0.1:{server.port})"
        first = verdicts.pop(names[0])
        assert isinstance(first, Observation) and first.outcome is Outcome.PASSED
        assert verdicts == {n: f"resolver {via} closed the TCP connection without answering"
                            for n in names[1:]}
        assert dialled(target, server.port) == 1


def test_a_stream_closed_between_answers_asks_the_rest_alone() -> None:
    names = list(NAMES)[:3]

    def one_per_connection(conn: socket.socket, index: int) -> None:
        if index == 0:  # a server that serves one query per connection and closes
            queries = sorted((ScriptedDnsServer.query(conn) for _ in names), key=name_of)
            conn.sendall(ScriptedDnsServer.answer(queries[0]))
            conn.close()
            return
        serve_in_order(conn)

    with scripted(one_per_connection) as server:
        target = NameserverTarget({})
        verdicts = side_by_side(names, server.port, target)
        assert all(isinstance(v, Observation) and v.outcome is Outcome.PASSED
                   for v in verdicts.values()), verdicts
        assert dialled(target, server.port) == 3
        # The host asks that server alone from now on.
        later = named(names[0], server.port, target, expect=NAMES[names[0]])
        assert isinstance(later, Observation) and later.outcome is Outcome.PASSED
        assert dialled(target, server.port) == 4


def test_a_query_stuck_behind_a_slow_one_is_asked_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dnsshared, "PATIENCE", 0.2)
    slow_read = threading.Event()

    def in_order_and_stuck(conn: socket.socket, index: int) -> None:
        while True:
            query = ScriptedDnsServer.query(conn)
            if name_of(query) == "slow.corp.example":
                slow_read.set()
                ScriptedDnsServer.query(conn)  # the next one waits behind it, unanswered
                conn.recv(1)  # until the client goes away
                return
            conn.sendall(ScriptedDnsServer.answer(query))

    with scripted(in_order_and_stuck) as server, ThreadPoolExecutor(1) as pool:
        target = NameserverTarget({})
        slow = pool.submit(named, "slow.corp.example", server.port, target, 3.0)
        assert slow_read.wait(30)
        fast = named("host1.corp.example", server.port, target, expect=NAMES["host1.corp.example"])
        assert isinstance(fast, Observation) and fast.outcome is Outcome.PASSED
        assert slow.result() == (f"resolver onprem (127.0.0.1:{server.port}) did not answer "
                                 "within 3 s")
        assert dialled(target, server.port) == 2


# --- the lookups of a name as one command of the batch -------------------------------------

FAKE_GETENT = """#!/bin/sh
case "$*" in
  "-s files hosts a.example") echo "10.9.9.9        a.example"; exit 0 ;;
  "ahostsv4 a.example") echo "10.9.9.9        STREAM a.example"
                        echo "10.9.9.9        DGRAM"; exit 0 ;;
  "-s dns ahostsv4 a.example") echo "enumeration not supported" >&2; exit 3 ;;
  "ahostsv4 slow.example") echo partial; sleep 30 ;;
  *) exit 2 ;;
esac
"""


def test_the_lookups_of_a_name_run_as_one_command_in_a_real_shell(tmp_path: Path) -> None:
    # A stand-in getent (no lookup may leave this machine): the shell and the batch are real.
    (tmp_path / "getent").write_text(FAKE_GETENT)
    (tmp_path / "getent").chmod(0o755)
    target = LocalTarget("app01")

    def lookups_of(name: str, timeout: float) -> list[CommandResult]:
        lookups = dns_check.lookup_commands(name, "A")
        script = f"PATH={tmp_path}:$PATH; {dns_check.lookup_script(lookups)}"
        (result,) = target.run_batch([script], timeout)
        return dns_check.split_lookups(result, lookups)

    system, files, dns_only = lookups_of("a.example", 10)
    assert (system.command, system.exit_status, system.stdout, system.stderr) == (
        "getent ahostsv4 a.example", 0,
        "10.9.9.9        STREAM a.example\n10.9.9.9        DGRAM\n", "")
    assert (files.command, files.exit_status, files.stdout) == (
        "getent -s files hosts a.example", 0, "10.9.9.9        a.example\n")
    assert (dns_only.exit_status, dns_only.stdout, dns_only.stderr) == (
        3, "", "enumeration not supported\n")
    with pytest.raises(CouldNotObserve, match=r"^`getent -s dns ahostsv4 a.example` failed "
                                              r"on app01 \(exit 3\): enumeration not "
                                              r"supported$"):
        dns_only.require((0, 2))
    system, files, dns_only = lookups_of("b.example", 10)
    assert (system.exit_status, files.exit_status, system.stdout) == (2, 2, "")
    with pytest.raises(CouldNotObserve, match="did not run"):  # never read: no hosts answer
        dns_only.require((0, 2))
    system, files, _ = lookups_of("slow.example", 1)
    assert files.exit_status == 2 and system.timed_out and system.stdout == "partial\n"
    with pytest.raises(CouldNotObserve, match=r"^`getent ahostsv4 slow.example` timed out "
                                              r"after 1 s on app01$"):
        system.require((0, 2))


def test_a_batch_that_failed_fails_each_lookup_alike() -> None:
    lookups = dns_check.lookup_commands("a.example", "AAAA")
    failed = CommandResult.not_run("script", "the batch did not complete: gone")
    for result, command in zip(dns_check.split_lookups(failed, lookups), lookups, strict=True):
        assert result.command == command and result.batch_failure == failed.batch_failure


class AnsweringStream:
    """A stream that answers each DNS query sent on it at once (NOERROR, no records), and
    records being closed."""

    def __init__(self) -> None:
        self.pending = b""
        self.closed = threading.Event()

    def sendall(self, data: bytes) -> None:
        answer = dns.message.make_response(dns.message.from_wire(data[2:])).to_wire()
        self.pending += struct.pack("!H", len(answer)) + answer

    def recv(self, size: int) -> bytes:
        chunk, self.pending = self.pending[:size], self.pending[size:]
        return chunk

    def settimeout(self, timeout: float | None) -> None:
        pass

    def close(self) -> None:
        self.closed.set()


def test_an_idle_shared_stream_is_closed_once_it_lingered_and_the_next_opens_anew() -> None:
    pool = dnsshared.StreamPool(linger=0.05)
    first, second = AnsweringStream(), AnsweringStream()
    streams = iter([first, second])
    for stream in (first, second):
        shared = pool.stream(time.monotonic() + 10, lambda timeout: next(streams))
        assert shared is not None and shared.stream is stream
        query = dns.message.make_query("app01.corp.example", "A")
        assert shared.ask(query, time.monotonic() + 10).id == query.id
        # Only the linger timer closes an idle stream that is still usable.
        assert stream.closed.wait(30)
    assert pool.opened == 2
