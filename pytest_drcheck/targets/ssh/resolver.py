"""Name lookups through one long-lived helper session per connection.

A lookup as an exec of its own costs a session setup on the host (~140 ms quiet, seconds on a
loaded host), which a stream's 3 s budget cannot always afford. The helper is one session that
reads ``ID SECONDS NAME`` lines and answers each with ``ID STATUS BASE64(getent output)``: each
lookup runs in a subshell of its own on the host (a slow name holds only its own subshell) under
the host's ``timeout``, and costs a round trip on an open channel. When the helper's own tools
fail to encode an answer it says ``ID E`` instead: the lookup is then the exec path's, never an
empty answer from getent (in the lab, base64 or tr dying before main under libfaketime turned a
name that resolves into "getent printed no address": status 0, nothing to decode).
"""

from __future__ import annotations

import base64
import binascii
import math
import shlex
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import paramiko

from pytest_drcheck.targets.result import TIMEOUT_STATUS, CommandResult

# Extra wait here beyond the host's own `timeout` for the answer to come back.
_ANSWER_GRACE_SECONDS = 1.0


def helper_script(getent: str) -> str:
    # `timeout` probed once, as for every command (see exec.remote_command); stdin stays open:
    # the helper ends when the channel closes.
    return (
        f"G={shlex.quote(getent)}; T=; timeout -k 1 1 true >/dev/null 2>&1 && T=1\n"
        "while IFS=' ' read -r id secs name; do\n"
        "  (\n"
        '    if [ -n "$T" ]; then out=$(timeout -k 1 "$secs" "$G" ahosts "$name" 2>&1); rc=$?\n'
        '    else out=$("$G" ahosts "$name" 2>&1); rc=$?; fi\n'
        "    enc=$(printf '%s' \"$out\" | base64 | tr -d '\\n')\n"
        # Output that encodes to nothing: base64 or tr failed (not getent), said as such.
        '    if [ -n "$out" ] && [ -z "$enc" ]; then printf \'%s E\\n\' "$id"\n'
        "    else printf '%s %s %s\\n' \"$id\" \"$rc\" \"$enc\"; fi\n"
        "  ) &\n"
        "done\n"
    )


def can_ask(name: str) -> bool:
    """Whether ``name`` fits the helper's line protocol (anything else takes the exec path)."""
    return bool(name) and not any(c.isspace() for c in name) and name.isprintable()


class HelperGone(Exception):
    """The helper session ended, never answered, or could not encode an answer; the caller
    falls back to an exec."""


_ENCODING_FAILED = "E"


class ResolverHelper:
    """The client side of the helper session: requests out, answers matched back by id."""

    def __init__(self, chan: paramiko.Channel, getent: str) -> None:
        self._chan = chan
        self._getent = getent
        self._lock = threading.Lock()
        self._next_id = 0
        self._pending: dict[int, Future[tuple[int, str]]] = {}
        self._gone: str | None = None
        threading.Thread(target=self._read_answers, daemon=True,
                         name="drcheck-resolver").start()

    def look_up(self, name: str, timeout: float) -> CommandResult:
        command = f"{self._getent} ahosts {name}"
        seconds = max(1, math.ceil(timeout))
        answer: Future[tuple[int, str]] = Future()
        with self._lock:
            if self._gone is not None:
                raise HelperGone(self._gone)
            request_id = self._next_id
            self._next_id += 1
            self._pending[request_id] = answer
            try:
                self._chan.sendall(f"{request_id} {seconds} {name}\n".encode())
            except (OSError, EOFError, paramiko.SSHException) as exc:
                del self._pending[request_id]
                raise HelperGone(str(exc)) from None
        try:
            status, output = answer.result(timeout=seconds + _ANSWER_GRACE_SECONDS)
        except FutureTimeout:
            with self._lock:
                self._pending.pop(request_id, None)
            return CommandResult(command, TIMEOUT_STATUS, "", "", timed_out=True)
        if status == TIMEOUT_STATUS:
            return CommandResult(command, status, "", output, timed_out=True)
        return CommandResult(command, status, output if status == 0 else "",
                             "" if status == 0 else output)

    def close(self) -> None:
        self._end("the resolver helper was closed")
        self._chan.close()

    def _read_answers(self) -> None:
        buffered = b""
        try:
            while True:
                data = self._chan.recv(65536)
                if not data:
                    break
                buffered += data
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    self._answer(line)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        self._end("the resolver helper ended")

    def _answer(self, line: bytes) -> None:
        parts = line.decode("ascii", "replace").split(" ")
        if len(parts) == 2 and parts[1] == _ENCODING_FAILED and parts[0].isdigit():
            with self._lock:
                failed = self._pending.pop(int(parts[0]), None)
            if failed is not None:
                failed.set_exception(HelperGone(
                    "the resolver helper could not encode getent's answer (base64 or tr "
                    "failed on the host)"))
            return
        try:
            request_id, status = int(parts[0]), int(parts[1])
            output = base64.b64decode(parts[2]).decode("utf-8", "replace") if (
                len(parts) > 2) else ""
        except (ValueError, IndexError, binascii.Error):
            return  # not an answer line (the helper's shell may print noise)
        with self._lock:
            answer = self._pending.pop(request_id, None)
        if answer is not None:
            answer.set_result((status, output))

    def _end(self, why: str) -> None:
        with self._lock:
            if self._gone is None:
                self._gone = why
            pending, self._pending = self._pending, {}
        for answer in pending.values():
            answer.set_exception(HelperGone(why))
