"""Many shell commands in one remote execution.

An exec over SSH costs ~140 ms of sshd session setup whatever it runs (LAB-NOTES), so the engine
sends every command a host's checks need as one POSIX sh script. The commands run concurrently
on the host, each under its own ``timeout``; their outputs come back base64-framed behind a random
token so no command output can be mistaken for framing.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import shlex
from typing import TYPE_CHECKING

from pytest_drcheck.durations import format_duration
from pytest_drcheck.targets.result import TIMEOUT_STATUS, CommandResult

__all__ = ["SCRIPT_SLACK_SECONDS", "TIMEOUT_STATUS", "batch_script", "parse_batch_output",
           "run_batch"]

if TYPE_CHECKING:
    from pytest_drcheck.targets.base import Target

# Slack on top of the per-command timeout for the script's own start-up and framing.
SCRIPT_SLACK_SECONDS = 5.0


def batch_script(commands: list[str], timeout: float, token: str) -> str:
    seconds = max(1, round(timeout))
    lines = [
        'd=$(mktemp -d 2>/dev/null || mktemp -d -t drcheck) || exit 97',
        "trap 'rm -rf \"$d\"' EXIT",
        # A host without coreutils' timeout still runs the commands; the client-side deadline
        # then bounds the whole script.
        'if command -v timeout >/dev/null 2>&1; then T="timeout -k 1 ' + str(seconds) + '";'
        ' else T=""; fi',
        # One process per stream encoded where base64 can leave out line breaks (coreutils,
        # busybox); a pipe through tr elsewhere.
        "if [ \"$(printf x | base64 -w0 2>/dev/null)\" = eA== ]; then e() { base64 -w0 <\"$1\"; }"
        "; else e() { base64 <\"$1\" | tr -d '\\n'; }; fi",
    ]
    # Empty outputs (most stderr) are not encoded: no process for them.
    # Each command frames its own line as soon as it ends, in parallel with the others (not
    # one after another once all have ended): the marginal cost of one more command is its own
    # processes, and the framing adds no wall time beyond the slowest command.
    for index, command in enumerate(commands):
        f = f'"$d/{index}'
        lines.append(
            f"( $T sh -c {shlex.quote(command)} >{f}.o\" 2>{f}.e\" </dev/null; r=$?;"
            f' {{ printf "{token} {index} %s " "$r"; [ -s {f}.o" ] && e {f}.o"; printf " ";'
            f' [ -s {f}.e" ] && e {f}.e"; printf "\\n"; }} >{f}.f" ) &'
        )
    lines.append("wait")
    lines.append('cat "$d"/*.f 2>/dev/null')
    return "\n".join(lines) + "\n"


def parse_batch_output(commands: list[str], stdout: str, token: str) -> list[CommandResult]:
    found: dict[int, CommandResult] = {}
    for line in stdout.splitlines():
        parts = line.split(" ")
        if len(parts) < 3 or parts[0] != token:
            continue
        try:
            index, status = int(parts[1]), int(parts[2])
            out = base64.b64decode(parts[3]) if len(parts) > 3 else b""
            err = base64.b64decode(parts[4]) if len(parts) > 4 else b""
        except (ValueError, binascii.Error):
            continue
        if 0 <= index < len(commands):
            found[index] = CommandResult(
                commands[index], status, out.decode("utf-8", "replace"),
                err.decode("utf-8", "replace"), timed_out=status == TIMEOUT_STATUS)
    return [
        found.get(i) or CommandResult.not_run(command, "no output came back from the batch")
        for i, command in enumerate(commands)
    ]


def run_batch(target: Target, commands: list[str], timeout: float) -> list[CommandResult]:
    if not commands:
        return []
    token = "DRC" + secrets.token_hex(8)
    script = batch_script(commands, timeout, token)
    whole = target.run(script, timeout + SCRIPT_SLACK_SECONDS)
    if whole.timed_out:
        why = (f"the batch of {len(commands)} commands timed out after "
               f"{format_duration(timeout + SCRIPT_SLACK_SECONDS)}")
        results = [CommandResult.not_run(c, why, timed_out=True) for c in commands]
    elif whole.exit_status == 97:
        results = [CommandResult.not_run(c, "the host could not create a temporary directory")
                   for c in commands]
    else:
        results = parse_batch_output(commands, whole.stdout, token)
    return [result.on(target.name, timeout) for result in results]
