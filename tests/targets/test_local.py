"""LocalTarget: the runner as its own host."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from pytest_drcheck.targets.base import CommandResult, StreamError
from pytest_drcheck.targets.local import LocalTarget
from tests.targets.conftest import EchoServer


def processes(pattern: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def test_run_returns_stdout_stderr_and_exit_status() -> None:
    result = LocalTarget("runner").run("echo out; echo err >&2; exit 3", 5)
    assert result == CommandResult("echo out; echo err >&2; exit 3", 3, "out\n", "err\n")


def test_run_timeout_kills_the_whole_process_group() -> None:
    started = time.monotonic()
    result = LocalTarget("runner").run("echo before; sleep 41.25 & sleep 41.25", 1)
    assert time.monotonic() - started < 20  # the commands would take 41 s
    assert (result.exit_status, result.timed_out, result.stdout) == (124, True, "before\n")
    assert processes("sleep 41.25") == []


def test_run_batch_runs_commands_concurrently() -> None:
    started = time.monotonic()
    results = LocalTarget("runner").run_batch([f"sleep 1; echo {i}" for i in range(20)], 60)
    assert time.monotonic() - started < 10  # one after another: 20 s
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(20)]


def test_open_stream_round_trips_data(echo_server: EchoServer) -> None:
    stream = LocalTarget("runner").open_stream("127.0.0.1", echo_server.port, 3)
    stream.settimeout(3)
    stream.sendall(b"ping")
    assert stream.recv(10) == b"ping"
    stream.close()


def test_open_stream_to_a_closed_port_is_refused(closed_port: int) -> None:
    with pytest.raises(StreamError) as caught:
        LocalTarget("runner").open_stream("127.0.0.1", closed_port, 3)
    assert caught.value.outcome == "refused"
    assert str(caught.value) == f"127.0.0.1:{closed_port} from runner: connection refused"


def test_open_stream_times_out_when_nothing_answers(blackhole_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(StreamError) as caught:
        LocalTarget("runner").open_stream("127.0.0.1", blackhole_port, 0.5)
    assert time.monotonic() - started < 10  # a blackholed port never answers
    assert caught.value.outcome == "timed out"
    assert str(caught.value) == f"127.0.0.1:{blackhole_port} from runner: timed out after 500 ms"


def test_vantage_connect_and_close() -> None:
    target = LocalTarget("runner")
    assert target.vantage == f"runner (local {socket.gethostname()})"
    target.connect()
    target.close()
    target.close()


def test_open_process_is_a_conversation_that_ends_at_close(tmp_path: Path) -> None:
    ended = tmp_path / "ended"
    target = LocalTarget("runner")
    stream = target.open_process(f"while read -r line; do echo \"got $line\"; done; "
                                 f"echo eof > {ended}", 5)
    stream.settimeout(5)
    stream.sendall(b"one\n")
    assert stream.recv(100) == b"got one\n"
    stream.close()  # end of input: the loop ends by itself (not killed), then is reaped
    assert ended.read_text() == "eof\n"
