"""Names are resolved on the host, once per name, and never by sshd's direct-tcpip."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_drcheck.model import CouldNotObserve
from pytest_drcheck.targets.base import CommandResult, StreamError, TargetError
from pytest_drcheck.targets.local import LocalTarget
from pytest_drcheck.targets.names import NameCache, NameNotResolved, is_address, parse_getent
from pytest_drcheck.targets.ssh import SshTarget
from pytest_drcheck.targets.ssh.channels import TrackingTransport
from tests.targets.conftest import EchoServer, MakeTarget
from tests.targets.test_ssh_sessions import command_round_trip

NO_ANSWER = "getent: no answer; the name does not exist or the resolver failed"


def getent(status: int, stdout: str = "", stderr: str = "", timed_out: bool = False
           ) -> CommandResult:
    return CommandResult("getent ahosts x", status, stdout, stderr, timed_out=timed_out)


# -- parsing getent -------------------------------------------------------------------------------


def test_addresses_come_in_the_resolvers_order_once_each() -> None:
    out = ("10.77.0.10      STREAM dc01.corp.example\n10.77.0.10      DGRAM  \n"
           "10.77.0.10      RAW    \nfd00::10        STREAM \n10.78.0.10      STREAM \n")
    assert parse_getent("dc01", "app01", getent(0, out), 3) == (
        "10.77.0.10", "fd00::10", "10.78.0.10")


@pytest.mark.parametrize(("result", "why"), [
    (getent(2), NO_ANSWER),
    (getent(124, timed_out=True), "the lookup timed out after 3 s"),
    (getent(127, stderr="sh: 1: getent: not found"), "getent is not installed there, exit 127"),
    (getent(1, stderr="Unknown database: ahosts\n"), "getent exit 1: Unknown database: ahosts"),
    (getent(0, "garbage\n"), "getent printed no address"),
])
def test_each_way_a_lookup_fails_is_named(result: CommandResult, why: str) -> None:
    with pytest.raises(NameNotResolved) as caught:
        parse_getent("dc01.corp.example", "app01", result, 3)
    assert str(caught.value) == f"dc01.corp.example does not resolve on app01 ({why})"
    assert isinstance(caught.value, CouldNotObserve)
    assert not isinstance(caught.value, StreamError)  # never read as a closed port


def test_addresses_are_not_looked_up() -> None:
    assert [is_address(h) for h in ("10.0.0.1", "::1", "[fd00::1]", "dc01", "10.0.0.1.nip")] == [
        True, True, True, False, False]


# -- the cache ------------------------------------------------------------------------------------


def test_concurrent_callers_share_one_lookup_and_its_answer() -> None:
    cache = NameCache("app01")
    calls: list[str] = []
    release = threading.Event()

    def lookup(name: str, timeout: float) -> tuple[str, ...]:
        calls.append(name)
        release.wait(10)
        return ("10.0.0.5",)

    answers: list[tuple[str, ...]] = []
    threads = [threading.Thread(target=lambda: answers.append(cache.resolve("db", 10, lookup)))
               for _ in range(10)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    release.set()
    for thread in threads:
        thread.join(10)
    assert answers == [("10.0.0.5",)] * 10
    assert calls == ["db"]
    assert cache.resolve("db", 1, lookup) == ("10.0.0.5",) and calls == ["db"]


def test_a_failure_is_shared_by_those_waiting_but_looked_up_again_later() -> None:
    cache = NameCache("app01")
    calls: list[str] = []
    release = threading.Event()

    def lookup(name: str, timeout: float) -> tuple[str, ...]:
        calls.append(name)
        release.wait(10)
        raise NameNotResolved(name, "app01", "getent: no answer")

    errors: list[str] = []

    def ask() -> None:
        try:
            cache.resolve("db", 10, lookup)
        except NameNotResolved as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=ask) for _ in range(5)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    release.set()
    for thread in threads:
        thread.join(10)
    assert errors == ["db does not resolve on app01 (getent: no answer)"] * 5
    assert calls == ["db"]
    ask()
    assert calls == ["db", "db"]


def test_a_remembered_answer_needs_no_lookup() -> None:
    target = LocalTarget("runner")
    target.remember_addresses("db.corp.example", ("127.0.0.1",))
    assert target.resolve("db.corp.example", 3) == ("127.0.0.1",)


# -- fake resolvers on the host ------------------------------------------------------------------


def program(directory: Path, name: str, body: str) -> str:
    """A stand-in for getent on the host (the test sshd's host is this machine)."""
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def resolvers(tmp_path: Path) -> dict[str, str]:
    return {
        "no answer": program(tmp_path, "noanswer", "exit 2"),
        "hangs": program(tmp_path, "hangs", "exec sleep 30"),
        "missing": str(tmp_path / "no-such-getent"),
        # slow.example resolves like localhost after the pause written in the file "pause".
        "slow": program(tmp_path, "slow", f'case "$2" in slow.*) sleep "$(cat {tmp_path}/pause)"; '
                                          'exec getent ahosts localhost;; esac; exec getent "$@"'),
    }


# -- local target ---------------------------------------------------------------------------------


class LocalWithResolver(LocalTarget):
    """The runner, resolving names with a given getent (a resolver we can make fail)."""

    def __init__(self, getent: str) -> None:
        super().__init__("runner")
        self.getent = getent


def test_local_streams_to_a_name_go_to_its_address(echo_server: EchoServer,
                                                   closed_port: int) -> None:
    target = LocalTarget("runner")
    stream = target.open_stream("localhost", echo_server.port, 3)
    stream.settimeout(3)
    stream.sendall(b"hi")
    assert stream.recv(10) == b"hi"
    stream.close()
    with pytest.raises(StreamError) as caught:
        target.open_stream("localhost", closed_port, 3)
    assert str(caught.value) == (
        f"localhost:{closed_port} (127.0.0.1) from runner: connection refused")


def test_a_name_that_does_not_resolve_on_the_runner_is_could_not_observe(
        resolvers: dict[str, str]) -> None:
    with pytest.raises(NameNotResolved) as caught:
        LocalWithResolver(resolvers["no answer"]).open_stream("dc01.corp.example", 389, 3)
    assert str(caught.value) == f"dc01.corp.example does not resolve on runner ({NO_ANSWER})"


# -- ssh target -----------------------------------------------------------------------------------


@pytest.fixture
def destinations(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every destination this process asks an sshd to connect to (direct-tcpip)."""
    seen: list[Any] = []
    original = TrackingTransport.open_tracked

    def spy(self: TrackingTransport, kind: str, dest: Any, timeout: float) -> Any:
        if kind == "direct-tcpip":
            seen.append(dest)
        return original(self, kind, dest, timeout)

    monkeypatch.setattr(TrackingTransport, "open_tracked", spy)
    return seen


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every command an SshTarget runs as an exec of its own."""
    commands: list[str] = []
    original = SshTarget.run

    def counting(self: SshTarget, command: str, timeout: float) -> CommandResult:
        commands.append(command)
        return original(self, command, timeout)

    monkeypatch.setattr(SshTarget, "run", counting)
    return commands


def test_sshd_is_never_given_a_name(make_target: MakeTarget, echo_server: EchoServer,
                                    destinations: list[Any]) -> None:
    stream = make_target().open_stream("localhost", echo_server.port, 3)
    stream.settimeout(3)
    stream.sendall(b"ping")
    assert stream.recv(10) == b"ping"
    stream.close()
    assert destinations == [("127.0.0.1", echo_server.port)]


def test_a_name_is_looked_up_once_per_host_by_concurrent_streams(
        make_target: MakeTarget, echo_server: EchoServer, monkeypatch: pytest.MonkeyPatch,
        execs: list[str]) -> None:
    target = make_target()
    target.connect()
    lookups: list[str] = []
    original = SshTarget._look_up

    def counting(self: SshTarget, name: str, timeout: float) -> tuple[str, ...]:
        lookups.append(name)
        return original(self, name, timeout)

    monkeypatch.setattr(SshTarget, "_look_up", counting)
    opened: list[bool] = []
    barrier = threading.Barrier(20)

    def stream() -> None:
        barrier.wait()
        target.open_stream("localhost", echo_server.port, 10).close()
        opened.append(True)

    threads = [threading.Thread(target=stream) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert opened == [True] * 20
    assert lookups == ["localhost"]
    # Through the helper session: no exec of its own.
    assert execs == []


def test_with_few_sessions_a_lookup_is_an_exec_of_its_own(make_target: MakeTarget,
                                                          execs: list[str]) -> None:
    target = make_target(max_sessions=2)
    assert target.resolve("localhost", 5) == ("127.0.0.1",)
    assert execs == ["getent ahosts localhost"]


def ssh_with_resolver(make_target: MakeTarget, getent: str, **settings: Any) -> SshTarget:
    target = make_target(**settings)
    target.getent = getent
    return target


def test_a_slow_lookup_stalls_nothing_else_on_the_host(
        make_target: MakeTarget, echo_server: EchoServer, resolvers: dict[str, str],
        tmp_path: Path) -> None:
    probe = make_target()
    probe.connect()
    round_trip = command_round_trip(probe)
    # Much longer than what runs meanwhile, however loaded the machine is.
    slow = max(2.0, 20 * round_trip)
    (tmp_path / "pause").write_text(f"{slow:.2f}")
    target = ssh_with_resolver(make_target, resolvers["slow"])
    target.connect()
    looked_up = threading.Event()
    slow_outcome: list[str] = []

    def slow_stream() -> None:
        target.open_stream("slow.example", echo_server.port, slow + 30).close()
        slow_outcome.append("opened")
        looked_up.set()

    thread = threading.Thread(target=slow_stream)
    thread.start()
    time.sleep(round_trip)  # the lookup is under way
    assert target.resolve("localhost", 10) == ("127.0.0.1",)  # another name, same helper
    other = target.open_stream("127.0.0.1", echo_server.port, 10)
    other.settimeout(10)
    other.sendall(b"x")
    assert other.recv(1) == b"x"
    other.close()
    assert target.run("echo unaffected", 60).stdout == "unaffected\n"
    assert not looked_up.is_set()  # all of that happened while the name was being resolved
    thread.join(slow + 60)
    assert slow_outcome == ["opened"]


@pytest.mark.parametrize("sessions", [8, 2], ids=["helper", "exec"])
@pytest.mark.parametrize(("resolver", "timeout", "why"), [
    # None: a budget the answer surely fits in, from the machine's round trip right now.
    ("no answer", None, NO_ANSWER),
    ("hangs", 1, "the lookup timed out after 1 s"),
    ("missing", None, "getent is not installed there, exit 127"),
])
def test_a_name_that_does_not_resolve_on_the_instance_says_so(
        make_target: MakeTarget, resolvers: dict[str, str], resolver: str,
        timeout: float | None, why: str, sessions: int, destinations: list[Any]) -> None:
    if timeout is None:
        probe = make_target()
        probe.connect()
        # Starting the resolver helper takes a few exec round trips; a fixed 5 s was
        # exceeded at a load average of 68.
        timeout = max(5.0, 30 * command_round_trip(probe))
        probe.close()
    target = ssh_with_resolver(make_target, resolvers[resolver], max_sessions=sessions)
    target.lookup_timeout = timeout  # the host's command budget (see the test below)
    started = time.monotonic()
    with pytest.raises(NameNotResolved) as caught:
        target.open_stream("dc01.corp.example", 636, timeout)
    assert str(caught.value) == f"dc01.corp.example does not resolve on app01 ({why})"
    assert destinations == []  # nothing was dialled
    assert time.monotonic() - started < timeout + 30


def test_a_lookup_has_the_hosts_command_budget_not_the_streams(
        make_target: MakeTarget, echo_server: EchoServer, resolvers: dict[str, str],
        tmp_path: Path) -> None:
    """A resolver slower than a stream's connect budget (an ldap stream's 3 s, on a loaded
    host) still answers: the name resolves, and the connection then has its whole budget."""
    probe = make_target()
    probe.connect()
    connect_budget = max(1.0, 10 * command_round_trip(probe))
    (tmp_path / "pause").write_text(f"{1.5 * connect_budget:.2f}")
    target = ssh_with_resolver(make_target, resolvers["slow"])
    target.lookup_timeout = 1.5 * connect_budget + 30
    stream = target.open_stream("slow.example", echo_server.port, connect_budget)
    stream.settimeout(10)
    stream.sendall(b"ok")
    assert stream.recv(2) == b"ok"
    stream.close()
    # And a lookup that outlasts the host's budget says so with that budget.
    target = ssh_with_resolver(make_target, resolvers["hangs"])
    target.lookup_timeout = 1
    with pytest.raises(NameNotResolved, match=r"the lookup timed out after 1 s\)$"):
        target.open_stream("dc01.corp.example", 636, 0.5)


def test_a_lost_host_is_a_target_error_not_a_name_error(make_target: MakeTarget) -> None:
    target = make_target()
    target.connect()
    target.transport.close()
    with pytest.raises(TargetError, match="was lost"):
        target.resolve("localhost", 3)


def test_closing_ends_the_helper_and_later_lookups_say_closed(make_target: MakeTarget) -> None:
    target = make_target()
    assert target.resolve("localhost", 5) == ("127.0.0.1",)
    target.close()
    with pytest.raises(TargetError, match="closed"):
        target.resolve("other-name.example", 3)


def test_a_helper_that_dies_gives_its_slot_back_and_lookups_go_on(
        make_target: MakeTarget, execs: list[str]) -> None:
    target = make_target(max_sessions=3)
    assert target.resolve("localhost", 5) == ("127.0.0.1",)
    helper = target._helper
    assert helper is not None
    helper._chan.close()  # as when the host kills the helper's shell
    target._names = type(target._names)("app01")  # forget the answer: look up again
    assert target.resolve("localhost", 5) == ("127.0.0.1",)
    assert execs == ["getent ahosts localhost"]
    # The slot came back: all three are free again.
    assert [target._sessions.acquire(0.01) for _ in range(4)] == [True, True, True, False]
