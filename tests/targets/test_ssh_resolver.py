"""The resolver helper's script and client, run against a local shell over a socket pair."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_drcheck.targets.ssh.resolver import HelperGone, ResolverHelper, helper_script

ANSWER = "127.0.0.1       STREAM localhost\n127.0.0.1       DGRAM  "


def program(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    """A directory put first on the helper's PATH, and a getent that needs no resolver."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "answer").write_text(ANSWER)
    program(tmp_path, "getent", f"cat '{tmp_path / 'answer'}'")
    return tmp_path / "bin"


def start_helper(tmp_path: Path, tools: Path) -> Iterator[ResolverHelper]:
    ours, theirs = socket.socketpair()
    shell = subprocess.Popen(
        ["sh", "-c", helper_script(str(tmp_path / "getent"))], stdin=theirs, stdout=theirs,
        stderr=subprocess.DEVNULL, env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"})
    theirs.close()
    helper = ResolverHelper(ours, "getent")  # type: ignore[arg-type]  # a socket, as a channel
    try:
        yield helper
    finally:
        # EOF for the shell's read: a close alone does not send it while our reader thread
        # is still in recv on the socket.
        ours.shutdown(socket.SHUT_RDWR)
        helper.close()
        shell.wait(30)


@pytest.fixture
def helper(tmp_path: Path, tools: Path) -> Iterator[ResolverHelper]:
    yield from start_helper(tmp_path, tools)


def test_an_answer_comes_back_decoded(helper: ResolverHelper) -> None:
    result = helper.look_up("localhost", 10)
    assert (result.exit_status, result.stdout, result.timed_out) == (0, ANSWER, False)


@pytest.mark.parametrize("broken", ["base64", "tr"])
def test_an_answer_the_helper_could_not_encode_is_not_an_empty_one(
        tmp_path: Path, tools: Path, broken: str) -> None:
    # As libfaketime did in the lab: the helper's own tool dies before main, getent did answer.
    program(tools, broken, "echo 'libfaketime: sem_open failed' >&2; exit 1")
    for helper in start_helper(tmp_path, tools):
        with pytest.raises(HelperGone) as caught:
            helper.look_up("localhost", 10)
        assert str(caught.value) == ("the resolver helper could not encode getent's answer "
                                     "(base64 or tr failed on the host)")
