"""SshTarget against a real sshd on 127.0.0.1."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pytest_drcheck.targets.base import CommandResult, StreamError, TargetError
from pytest_drcheck.targets.ssh import SshSettings, SshTarget, classify_open_failure
from pytest_drcheck.targets.ssh.channels import close_quietly
from tests.targets.conftest import EchoServer, MakeTarget, SilentListener
from tests.targets.sshd import Sshd, keygen


def fingerprint(public_key: Path) -> str:
    """SHA256 fingerprint as OpenSSH computes it (independent of paramiko)."""
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(public_key)], check=True,
                         capture_output=True, text=True).stdout
    return out.split()[1]


def established(port: int) -> int:
    """TCP connections this test process holds to the port (sshd's forwarded ones excluded)."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", f"( dport = :{port} )"],
                         check=True, capture_output=True, text=True).stdout
    return sum(f"pid={os.getpid()}," in line for line in out.splitlines())


def remote_processes(pattern: str) -> list[str]:
    # sshd runs on this machine, so the "remote" processes are visible here.
    out = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


# -- commands -------------------------------------------------------------------------------------


def test_run_returns_stdout_stderr_and_exit_status(make_target: MakeTarget) -> None:
    result = make_target().run("echo out; echo err >&2; exit 3", 5)
    assert result == CommandResult("echo out; echo err >&2; exit 3", 3, "out\n", "err\n")
    assert not result.ok


def test_run_gives_the_command_eof_on_stdin(make_target: MakeTarget) -> None:
    started = time.monotonic()
    result = make_target().run("cat; echo done", 120)
    assert (result.stdout, result.exit_status) == ("done\n", 0)
    assert time.monotonic() - started < 60  # without EOF, cat waits for the 120 s timeout


def test_run_timeout_returns_in_time_and_the_host_stops_the_command(
        make_target: MakeTarget) -> None:
    target = make_target()
    target.connect()
    started = time.monotonic()
    result = target.run("echo before; sleep 37.125", 1)
    elapsed = time.monotonic() - started
    assert result.timed_out and result.exit_status == 124
    assert result.stdout == "before\n"
    assert elapsed < 15  # the command would take 37 s
    # `timeout -k 1` on the host: TERM at 1 s, KILL at 2 s at the latest (later on a busy host).
    deadline = time.monotonic() + 30
    while remote_processes("sleep 37.125") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert remote_processes("sleep 37.125") == []


def test_a_command_exiting_124_by_itself_is_not_a_timeout(make_target: MakeTarget) -> None:
    result = make_target().run("exit 124", 5)
    assert (result.exit_status, result.timed_out) == (124, False)


def test_large_stdout_and_stderr_are_read_together(make_target: MakeTarget) -> None:
    # 4 MB on each stream: more than paramiko's 2 MB window, so an unread stderr would stall.
    result = make_target().run("head -c 4000000 /dev/zero | tr '\\0' a; "
                               "head -c 4000000 /dev/zero | tr '\\0' b >&2", 20)
    assert (len(result.stdout), len(result.stderr)) == (4_000_000, 4_000_000)
    assert set(result.stdout) == {"a"} and set(result.stderr) == {"b"}


def test_run_batch_parses_odd_output_of_twenty_concurrent_commands(
        make_target: MakeTarget) -> None:
    odd = {
        0: ("printf 'a\\000b\\377\\376'", "a\x00b\ufffd\ufffd", "", 0),
        1: ("printf 'one\\n\\ntwo\\n\\n'", "one\n\ntwo\n\n", "", 0),
        2: ("echo 'DRC0123456789abcdef 5 0 aGk= aGk='", "DRC0123456789abcdef 5 0 aGk= aGk=\n",
            "", 0),
        3: ("echo to-stderr >&2; exit 7", "", "to-stderr\n", 7),
        4: ("printf 'no newline'", "no newline", "", 0),
        5: ("printf '%s ' a b c", "a b c ", "", 0),
        6: ("true", "", "", 0),
        7: ("echo \"$((6 * 7))\"", "42\n", "", 0),
    }
    commands = [f"sleep 1; {odd[i][0]}" if i in odd else f"sleep 1; echo {i}" for i in range(20)]
    target = make_target()
    target.connect()
    started = time.monotonic()
    results = target.run_batch(commands, 60)
    elapsed = time.monotonic() - started
    for i, result in enumerate(results):
        stdout, stderr, status = odd[i][1:] if i in odd else (f"{i}\n", "", 0)
        assert (result.command, result.stdout, result.stderr, result.exit_status) == (
            commands[i], stdout, stderr, status), i
    # Twenty one-second commands run side by side on the host: about 1 s, not 20.
    assert elapsed < 10


def test_run_batch_reports_per_command_timeouts(make_target: MakeTarget) -> None:
    results = make_target().run_batch(["echo fast", "sleep 30"], 1)
    assert (results[0].stdout, results[0].ok) == ("fast\n", True)
    assert (results[1].exit_status, results[1].timed_out) == (124, True)


def test_thirty_threads_share_one_connection(make_target: MakeTarget, sshd: Sshd) -> None:
    target = make_target()
    before = sshd.accepted()
    results: dict[int, CommandResult] = {}
    barrier = threading.Barrier(30)

    def work(i: int) -> None:
        barrier.wait()  # all at once, including the first connect
        results[i] = target.run(f"sleep 0.3; echo {i}", 60)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(30)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    connections_during = established(sshd.port)
    for thread in threads:
        thread.join(120)
    assert {i: (r.stdout, r.exit_status) for i, r in results.items()} == {
        i: (f"{i}\n", 0) for i in range(30)}
    assert sshd.accepted() - before == 1
    assert connections_during == 1
    # More than sshd's MaxSessions (10) at once worked because sessions are queued client-side.


def test_bursts_of_short_commands_never_upset_sshd(make_target: MakeTarget, sshd: Sshd) -> None:
    # Fast commands end while the client is still starting them: any message for a channel
    # sshd has already freed (an EOF crossing its CLOSE) makes sshd drop the whole connection.
    target = make_target()
    failures: list[str] = []

    def work() -> None:
        for _ in range(20):
            result = target.run("true", 60)
            if not result.ok:
                failures.append(repr(result))

    threads = [threading.Thread(target=work) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert failures == []
    assert "nonexistent channel" not in sshd.log.read_text()
    assert target.transport.is_active()


# -- processes kept open ------------------------------------------------------------------------


def test_open_process_answers_line_by_line_over_one_channel(make_target: MakeTarget,
                                                           sshd: Sshd) -> None:
    target = make_target(max_sessions=1)
    stream = target.open_process("while read -r line; do echo \"got $line\"; done", 10)
    try:
        stream.settimeout(10)
        for word in ("one", "two"):
            stream.sendall(f"{word}\n".encode())
            assert stream.recv(100) == f"got {word}\n".encode()
        # It holds the host's only session slot while open.
        assert target.run("true", 0.5).timed_out
    finally:
        stream.close()
        stream.close()  # idempotent: the slot is given back once
    assert target.run("echo free", 60).stdout == "free\n"
    assert "nonexistent channel" not in sshd.log.read_text()


def test_closing_an_open_process_ends_it_on_the_host(make_target: MakeTarget) -> None:
    target = make_target()
    marker = f"drcheck-open-process-{os.getpid()}"
    stream = target.open_process(f"exec -a {marker} sh -c 'while read -r _; do :; done'", 10)
    deadline = time.monotonic() + 10
    while not remote_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert remote_processes(marker)
    stream.close()
    while remote_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert remote_processes(marker) == []


def test_the_clock_sampler_measures_identical_clocks_within_its_uncertainty(
        make_target: MakeTarget) -> None:
    """sshd runs on this machine: the offset is zero, so it must lie within the uncertainty,
    and the channel's round trip, not a session setup, bounds that uncertainty."""
    from pytest_drcheck.net.clockoffset import SAMPLER_COMMAND, best_of, sample_stream

    target = make_target()
    target.connect()
    setup = time.monotonic()
    stream = target.open_process(SAMPLER_COMMAND, 10)
    setup = time.monotonic() - setup
    try:
        samples = sample_stream(stream, time.monotonic() + 10, lambda done: len(done) >= 20)
    finally:
        stream.close()
    best = best_of(samples)
    assert best.samples == 20
    assert all(abs(s.offset) <= s.uncertainty for s in samples)
    # A sample is a channel round trip: shorter than the session setup it no longer pays.
    assert best.round_trip < setup


def test_an_open_process_that_ends_gives_end_of_output(make_target: MakeTarget) -> None:
    stream = make_target().open_process("echo done", 10)
    try:
        stream.settimeout(10)
        received = b""
        while chunk := stream.recv(100):
            received += chunk
    finally:
        stream.close()
    assert received == b"done\n"


def test_a_connection_lost_under_the_clock_sampler_is_named(make_target: MakeTarget) -> None:
    """The network dropping the connection mid-sampling is the cause the check reports, not
    a sampler that "ended without answering" (a drill cut app02 off and read exactly that)."""
    from pytest_drcheck.net.clockoffset import SAMPLER_COMMAND, SamplerError, sample_stream

    target = make_target()
    target.connect()
    stream = target.open_process(SAMPLER_COMMAND, 10)
    try:
        assert len(sample_stream(stream, time.monotonic() + 10, lambda done: True)) == 1
        target.transport.sock.shutdown(socket.SHUT_RDWR)  # as a network that drops it
        with pytest.raises(SamplerError) as raised:
            sample_stream(stream, time.monotonic() + 10, lambda done: len(done) >= 5)
    finally:
        stream.close()
    assert re.fullmatch(r"app01: the SSH connection to 127\.0\.0\.1:\d+ was lost \(host "
                        r"rebooted, sshd restarted, or the network dropped it\)",
                        str(raised.value))


# -- streams --------------------------------------------------------------------------------------


def test_open_stream_round_trips_data(make_target: MakeTarget, echo_server: EchoServer) -> None:
    stream = make_target().open_stream("127.0.0.1", echo_server.port, 3)
    stream.settimeout(3)
    stream.sendall(b"ping\x00\xff")
    assert stream.recv(100) == b"ping\x00\xff"
    stream.close()
    assert echo_server.accepted == 1


def test_open_stream_to_a_closed_port_is_refused(make_target: MakeTarget,
                                                 closed_port: int) -> None:
    with pytest.raises(StreamError) as caught:
        make_target().open_stream("127.0.0.1", closed_port, 3)
    assert caught.value.outcome == "refused"
    assert str(caught.value) == f"127.0.0.1:{closed_port} from app01: connection refused"


def test_open_stream_times_out_when_nothing_answers(make_target: MakeTarget,
                                                    blackhole_port: int) -> None:
    target = make_target()
    target.connect()
    started = time.monotonic()
    with pytest.raises(StreamError) as caught:
        target.open_stream("127.0.0.1", blackhole_port, 0.5)
    assert caught.value.outcome == "timed out"
    assert str(caught.value) == f"127.0.0.1:{blackhole_port} from app01: timed out after 500 ms"
    assert time.monotonic() - started < 10  # a blackholed port never answers
    assert target.run("true", 60).ok
    opened_late = caught.value.opened_late
    assert opened_late is not None and not opened_late()
    assert target.run("echo still fine", 60).stdout == "still fine\n"



def test_a_stream_confirmed_after_its_timeout_is_closed(make_target: MakeTarget) -> None:
    # The accept queue is full, so sshd's connect hangs and open_stream times out; once the
    # queue frees, the SYN retransmitted ~1 s later completes and sshd confirms the channel
    # nobody waits for any more. The target must close it, not leave the connection open.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)
    target = make_target()
    target.connect()
    try:
        with pytest.raises(StreamError, match="timed out") as caught:
            target.open_stream("127.0.0.1", port, 0.3)
        opened_late = caught.value.opened_late
        assert opened_late is not None and not opened_late()
        listener.accept()[0].close()  # frees the queue
        listener.settimeout(5)
        late, _ = listener.accept()
        late.settimeout(5)
        assert late.recv(1) == b""  # closed by the target, not held open
        late.close()
        # The close follows the confirmation, so the late opening is known by now.
        assert opened_late()
    finally:
        filler.close()
        listener.close()

def test_a_late_channel_closed_as_its_connection_ends_raises_nothing(
        make_target: MakeTarget, echo_server: EchoServer) -> None:
    # The close of a late-confirmed channel runs on its own thread; when the drill ends at that
    # moment, the socket is gone under it (CI saw an EOFError traceback from the
    # drcheck-close-late thread). There is nothing left to close.
    target = make_target()
    target.connect()
    transport = target.live_transport()
    late, other = (transport.open_channel("direct-tcpip", ("127.0.0.1", echo_server.port),
                                          ("127.0.0.1", 0), timeout=10) for _ in range(2))
    transport.sock.close()
    close_quietly(late)
    with pytest.raises((EOFError, OSError)):
        other.close()  # what the thread ran before


def test_concurrent_refusals_each_get_their_own_reason(
        make_target: MakeTarget, closed_port: int, echo_server: EchoServer) -> None:
    target = make_target()
    target.connect()
    outcomes: list[str] = []

    def probe(port: int) -> None:
        try:
            target.open_stream("127.0.0.1", port, 3).close()
            outcomes.append("connected")
        except StreamError as exc:
            outcomes.append(exc.outcome)

    threads = [threading.Thread(target=probe, args=(closed_port if i % 2 else echo_server.port,))
               for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(outcomes) == ["connected"] * 20 + ["refused"] * 20


@pytest.mark.parametrize(("text", "outcome"), [
    ("Connection refused", "refused"),
    ("No route to host", "unreachable"),
    ("Network is unreachable", "unreachable"),
    ("Host is unreachable", "unreachable"),
    ("Connection timed out", "timed out"),
    ("open failed", "unreachable"),  # OpenSSH: connect() failed at once on the host
    ("Name or service not known", "error"),
])
def test_classify_open_failure(text: str, outcome: str) -> None:
    assert classify_open_failure(text) == outcome


# -- connecting -----------------------------------------------------------------------------------


def test_vantage_names_user_address_port_and_jump(make_target: MakeTarget, sshd: Sshd) -> None:
    bastion = make_target(name="bastion")
    assert make_target().vantage == f"app01 (ssh root@127.0.0.1:{sshd.port})"
    assert make_target(jump=bastion).vantage == (
        f"app01 (ssh root@127.0.0.1:{sshd.port} via bastion)")


def test_connect_refused(make_target: MakeTarget, closed_port: int) -> None:
    with pytest.raises(TargetError) as caught:
        make_target(port=closed_port).connect()
    assert str(caught.value) == (
        f"app01: connection refused by 127.0.0.1:{closed_port}; is sshd running and listening "
        f"on port {closed_port}?")


def test_connect_to_a_silent_port_times_out(make_target: MakeTarget,
                                            silent_listener: SilentListener) -> None:
    started = time.monotonic()
    with pytest.raises(TargetError) as caught:
        make_target(port=silent_listener.port, connect_timeout=1).connect()
    assert time.monotonic() - started < 10  # a silent port never answers
    assert str(caught.value).startswith(
        f"app01: timed out after 1 s connecting to 127.0.0.1:{silent_listener.port} waiting for "
        "the SSH banner")



def test_a_server_that_stalls_after_its_banner_times_out() -> None:
    stalled = SilentListener(banner=b"SSH-2.0-OpenSSH_9.2p1 stalled\r\n")
    target = SshTarget(SshSettings(name="app01", address="127.0.0.1", port=stalled.port,
                                   user="root", connect_timeout=1))
    started = time.monotonic()
    try:
        with pytest.raises(TargetError) as caught:
            target.connect()
    finally:
        stalled.close()
    assert time.monotonic() - started < 10  # a stalled server never answers
    assert str(caught.value) == (
        f"app01: timed out after 1 s connecting to 127.0.0.1:{stalled.port} during key "
        "exchange or authentication")


def test_close_during_a_connection_attempt_ends_it_at_once(
        make_target: MakeTarget, silent_listener: SilentListener) -> None:
    target = make_target(port=silent_listener.port, connect_timeout=120)
    messages: list[str] = []

    def attempt() -> None:
        try:
            target.connect()
        except TargetError as exc:
            messages.append(str(exc))

    thread = threading.Thread(target=attempt)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    target.close()
    thread.join(120)
    assert time.monotonic() - started < 30  # not the 120 s connect timeout
    assert messages == ["app01: the SSH connection was closed"]

def test_tcp_connect_that_gets_no_answer_times_out(make_target: MakeTarget,
                                                   blackhole_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(TargetError) as caught:
        make_target(port=blackhole_port, connect_timeout=1).connect()
    assert time.monotonic() - started < 10  # a blackholed port never answers
    assert str(caught.value).startswith(
        f"app01: timed out after 1 s connecting to 127.0.0.1:{blackhole_port} (nothing answered")


def test_many_threads_share_one_failed_attempt(make_target: MakeTarget,
                                               silent_listener: SilentListener) -> None:
    target = make_target(port=silent_listener.port, connect_timeout=5)
    messages: list[str] = []

    def attempt() -> None:
        try:
            target.connect()
        except TargetError as exc:
            messages.append(str(exc))

    started = time.monotonic()
    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert time.monotonic() - started < 50  # attempts one after another: 100 s
    assert len(messages) == 20 and len(set(messages)) == 1
    # Remembered: asking again neither waits (5 s) nor connects again.
    started = time.monotonic()
    with pytest.raises(TargetError, match="timed out after 5 s"):
        target.run("true", 5)
    assert time.monotonic() - started < 2.5
    assert silent_listener.accepted == 1


def test_unknown_host_key_is_refused_by_default(make_target: MakeTarget, sshd: Sshd,
                                                tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(TargetError) as caught:
        make_target(known_hosts=str(empty)).connect()
    assert str(caught.value) == (
        f"app01: unknown host key for [127.0.0.1]:{sshd.port} (ssh-ed25519 "
        f"{fingerprint(Path(f'{sshd.host_key}.pub'))}): not in {empty}; add it with "
        f"`ssh-keyscan -p {sshd.port} 127.0.0.1 >> {empty}` (after checking the fingerprint) "
        "or set host_key_policy: accept-new")


def test_a_missing_known_hosts_file_is_named(make_target: MakeTarget, tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"not in .*/absent \(the file does not exist\)"):
        make_target(known_hosts=str(tmp_path / "absent")).connect()


def test_only_the_given_known_hosts_file_is_consulted(make_target: MakeTarget, sshd: Sshd,
                                                      tmp_path: Path) -> None:
    # Even a key in ~/.ssh/known_hosts must not make an unknown host trusted.
    home = Path("~/.ssh/known_hosts").expanduser()
    if home.exists() and f"[127.0.0.1]:{sshd.port}" in home.read_text():
        pytest.skip("~/.ssh/known_hosts already lists the test sshd")
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(TargetError, match="unknown host key"):
        make_target(known_hosts=str(empty)).connect()


def test_accept_new_records_the_key_then_connects(make_target: MakeTarget, sshd: Sshd,
                                                  tmp_path: Path) -> None:
    path = tmp_path / "new" / "known_hosts"
    first = make_target(known_hosts=str(path), host_key_policy="accept-new")
    assert first.run("echo ok", 60).stdout == "ok\n"
    assert path.read_text() == sshd.host_key_line + "\n"
    # What was written is a valid known_hosts entry: strict checking now trusts it.
    assert make_target(known_hosts=str(path)).run("echo again", 60).stdout == "again\n"


def test_changed_host_key_is_a_mismatch_even_with_accept_new(make_target: MakeTarget,
                                                             sshd: Sshd, tmp_path: Path) -> None:
    other = keygen(tmp_path / "other_host_key")
    path = tmp_path / "known_hosts_changed"
    kind, blob = Path(f"{other}.pub").read_text().split()[:2]
    path.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    for policy in ("strict", "accept-new"):
        with pytest.raises(TargetError) as caught:
            make_target(known_hosts=str(path), host_key_policy=policy).connect()
        assert str(caught.value) == (
            f"app01: host key mismatch for [127.0.0.1]:{sshd.port}: presented ssh-ed25519 "
            f"{fingerprint(Path(f'{sshd.host_key}.pub'))}, expected ssh-ed25519 "
            f"{fingerprint(Path(f'{other}.pub'))} from {path}; if the instance was legitimately "
            f"rebuilt, update known_hosts (ssh-keygen -R '[127.0.0.1]:{sshd.port}' -f {path}, "
            "then add the new key), otherwise do not trust this host")
    assert path.read_text() == f"[127.0.0.1]:{sshd.port} {kind} {blob}\n"


def test_a_key_the_server_does_not_know_fails_authentication(
        make_target: MakeTarget, sshd: Sshd, tmp_path: Path) -> None:
    stranger = keygen(tmp_path / "stranger")
    with pytest.raises(TargetError) as caught:
        make_target(identity_file=str(stranger)).connect()
    assert str(caught.value).startswith(
        f"app01: authentication failed for root@127.0.0.1:{sshd.port} with key {stranger}")
    assert str(caught.value).endswith("check user and identity_file/password")


def test_a_wrong_password_fails_without_showing_it(make_target: MakeTarget, sshd: Sshd) -> None:
    secret = "Tr0ub4dor&3-not-the-password"
    calls: list[int] = []

    def password() -> str:
        calls.append(1)
        return secret

    target = make_target(identity_file=None, password=password)
    assert calls == []  # resolved only when a connection needs it
    with pytest.raises(TargetError) as caught:
        target.connect()
    assert calls == [1]
    message = str(caught.value)
    assert message.startswith(
        f"app01: authentication failed for root@127.0.0.1:{sshd.port} with password")
    for text in (message, repr(target), repr(target.settings), str(target.settings)):
        assert secret not in text
    assert "password=" not in repr(target.settings)


@pytest.mark.skip(reason="a successful password login needs a user with a password in "
                         "/etc/shadow (sshd without PAM checks only that); root has none here "
                         "and creating a user would change the machine outside this checkout")
def test_password_login_succeeds() -> None:
    raise AssertionError("unreachable")


def test_a_missing_identity_file_is_named(make_target: MakeTarget, tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"^app01: identity_file .*/nope does not exist$"):
        make_target(identity_file=str(tmp_path / "nope")).connect()


# -- jump hosts -----------------------------------------------------------------------------------


def test_jump_through_the_same_sshd_to_itself(make_target: MakeTarget, sshd: Sshd) -> None:
    before = sshd.accepted()
    bastion = make_target(name="bastion")
    app01 = make_target(name="app01", jump=bastion)
    app02 = make_target(name="app02", jump=bastion)
    assert app01.run("echo one", 60).stdout == "one\n"
    assert app02.run("echo two", 60).stdout == "two\n"
    # bastion once (shared by both), then each host through it.
    assert sshd.accepted() - before == 3
    assert established(sshd.port) == 1  # only the bastion's TCP connection comes from here


def test_a_failing_jump_host_is_named(make_target: MakeTarget, closed_port: int) -> None:
    bastion = make_target(name="bastion", port=closed_port)
    with pytest.raises(TargetError) as caught:
        make_target(jump=bastion).connect()
    assert str(caught.value) == (
        f"app01: jump host bastion failed: bastion: connection refused by 127.0.0.1:"
        f"{closed_port}; is sshd running and listening on port {closed_port}?")


def test_a_jump_host_that_cannot_reach_the_target_says_why(make_target: MakeTarget,
                                                           closed_port: int) -> None:
    bastion = make_target(name="bastion")
    with pytest.raises(TargetError) as caught:
        make_target(port=closed_port, jump=bastion).connect()
    assert str(caught.value) == (
        f"app01: jump host bastion could not connect to 127.0.0.1:{closed_port}: "
        "connection refused")


# -- ssh_config -----------------------------------------------------------------------------------


def test_ssh_config_supplies_hostname_user_port_and_identity(
        make_target: MakeTarget, sshd: Sshd, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(f"Host recovery-app\n  HostName 127.0.0.1\n  User root\n"
                      f"  Port {sshd.port}\n  IdentityFile {sshd.client_key}\n")
    target = make_target(address="recovery-app", port=None, user=None, identity_file=None,
                         ssh_config=str(config))
    assert target.vantage == f"app01 (ssh root@127.0.0.1:{sshd.port})"
    assert target.run("echo via config", 60).stdout == "via config\n"


def test_explicit_settings_win_over_ssh_config(make_target: MakeTarget, sshd: Sshd,
                                               tmp_path: Path, closed_port: int) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(f"Host 127.0.0.1\n  User nobody\n  Port {closed_port}\n")
    target = make_target(ssh_config=str(config))
    assert target.vantage == f"app01 (ssh root@127.0.0.1:{sshd.port})"
    assert target.run("whoami", 60).stdout == "root\n"


def test_ssh_config_proxyjump(make_target: MakeTarget, sshd: Sshd, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(f"Host recovery-app\n  HostName 127.0.0.1\n  Port {sshd.port}\n"
                      f"  ProxyJump root@127.0.0.1:{sshd.port}\n")
    before = sshd.accepted()
    target = make_target(address="recovery-app", port=None, ssh_config=str(config))
    assert target.vantage == (
        f"app01 (ssh root@127.0.0.1:{sshd.port} via root@127.0.0.1:{sshd.port})")
    assert target.run("echo jumped", 60).stdout == "jumped\n"
    assert sshd.accepted() - before == 2


def test_an_unreadable_ssh_config_is_reported_at_connect(make_target: MakeTarget,
                                                         tmp_path: Path) -> None:
    target = make_target(ssh_config=str(tmp_path / "missing_config"))
    assert target.vantage.startswith("app01 (ssh root@127.0.0.1:")
    with pytest.raises(TargetError, match=r"^app01: cannot read ssh_config .*missing_config: "):
        target.connect()


# -- sharing and closing --------------------------------------------------------------------------


def test_client_and_transport_are_the_shared_connection(make_target: MakeTarget,
                                                        sshd: Sshd) -> None:
    target = make_target()
    before = sshd.accepted()
    target.run("true", 5)
    assert target.client.get_transport() is target.transport
    # testinfra's ParamikoBackend uses the client like this.
    _, stdout, _ = target.client.exec_command("echo from-client")
    assert stdout.read() == b"from-client\n"
    assert sshd.accepted() - before == 1


def test_close_is_idempotent_and_final(make_target: MakeTarget) -> None:
    target = make_target()
    target.run("true", 5)
    target.close()
    target.close()
    with pytest.raises(TargetError, match=r"^app01: the SSH connection was closed$"):
        target.run("true", 5)
    make_target().close()  # never connected


def test_close_while_commands_run_ends_them_promptly(make_target: MakeTarget) -> None:
    target = make_target()
    target.connect()
    outcomes: list[str] = []

    def long_command() -> None:
        try:
            outcomes.append(repr(target.run("sleep 120", 180)))
        except TargetError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=long_command) for _ in range(5)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    target.close()
    for thread in threads:
        thread.join(120)
    assert time.monotonic() - started < 60  # the commands would take 120 s
    assert outcomes == ["app01: the SSH connection was closed"] * 5


def test_settings_reject_an_unknown_host_key_policy() -> None:
    with pytest.raises(ValueError, match="host_key_policy 'ask' is not one of strict, accept-new"):
        SshSettings(name="x", address="127.0.0.1", host_key_policy="ask")


def test_a_dead_connection_is_reported(make_target: MakeTarget) -> None:
    target = make_target()
    target.connect()
    target.transport.close()  # as when the instance reboots under us
    lost = r"^app01: the SSH connection to 127\.0\.0\.1:\d+ was lost"
    with pytest.raises(TargetError, match=lost):
        target.run("true", 5)


def test_connection_lost_says_why_only_for_a_lost_connection(make_target: MakeTarget) -> None:
    target = make_target()
    assert target.connection_lost(0.1) is None  # never connected
    target.connect()
    assert target.connection_lost(0.1) is None  # working
    target.transport.sock.shutdown(socket.SHUT_RDWR)  # as a network that drops it
    lost = target.connection_lost(30)
    assert lost is not None and re.fullmatch(
        r"app01: the SSH connection to 127\.0\.0\.1:\d+ was lost \(host rebooted, sshd "
        r"restarted, or the network dropped it\)", lost), lost
    target.close()
    assert target.connection_lost(0.1) is None  # closed by us: not lost


def test_ssh_target_repr_is_its_vantage(make_target: MakeTarget, sshd: Sshd) -> None:
    assert repr(make_target()) == f"SshTarget(app01 (ssh root@127.0.0.1:{sshd.port}))"


def test_sshtarget_is_a_target() -> None:
    from pytest_drcheck.targets.base import Target

    assert issubclass(SshTarget, Target)



def test_a_testinfra_paramiko_backend_can_ride_on_the_client(make_target: MakeTarget,
                                                             sshd: Sshd) -> None:
    from testinfra.backend import get_backend
    from testinfra.host import Host

    target = make_target()
    before = sshd.accepted()
    backend = get_backend(f"paramiko://root@127.0.0.1:{sshd.port}")
    # ParamikoBackend.client is a cached_property: seeding it reuses our verified connection.
    backend.__dict__["client"] = target.client
    host = Host(backend)
    assert host.run("echo from-testinfra").stdout == "from-testinfra\n"
    assert host.file("/etc/hostname").exists
    assert sshd.accepted() - before == 1
