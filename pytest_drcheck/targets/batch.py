"""Many shell commands in one remote execution.

An exec over SSH costs ~140 ms of sshd session setup whatever it runs (LAB-NOTES), so the engine
sends every command a host's checks need as one POSIX sh script. The commands run concurrently
on the host, each under its own ``timeout``. Their statuses, their outputs' sizes and then all
outputs as one base64 stream come back behind a random token, so no command output can be
mistaken for framing, and a stream cut short (Run Command's inline limit) still gives back the
commands before the cut whole.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import shlex
from typing import TYPE_CHECKING

from pytest_drcheck.durations import format_duration
from pytest_drcheck.targets.result import TIMEOUT_STATUS, CommandResult

__all__ = ["SCRIPT_SLACK_SECONDS", "TIMEOUT_STATUS", "batch_script", "parse_batch_output",
           "run_batch", "script_failure"]

if TYPE_CHECKING:
    from pytest_drcheck.targets.base import Target

# Slack on top of the per-command timeout for the script's own start-up and framing.
SCRIPT_SLACK_SECONDS = 5.0
# The script's own exit statuses when it cannot run the batch or send its outputs back.
NO_TEMPORARY_DIRECTORY = 97
NO_TOOL = 96
NO_COPY = 95
SENDING_TOOLS = ("base64", "cat", "cp", "mkdir", "wc")
_SCRIPT_FAILURES = {
    NO_TEMPORARY_DIRECTORY: "the host could not create a temporary directory",
    NO_COPY: "the host could not copy the commands' outputs to send them back (disk full?)",
}
_OUTPUT_NAME = re.compile(r"[0-9]+\.[oe]")


def batch_script(commands: list[str], timeout: float, token: str) -> str:
    seconds = max(1, round(timeout))
    # Output files in the order their bytes are sent: a cut stream (Run Command's inline
    # limit) then still gives back the first commands whole.
    names = " ".join(f"{index}.{kind}" for index in range(len(commands)) for kind in "oe")
    lines = [
        f'd=$(mktemp -d 2>/dev/null || mktemp -d -t drcheck) || exit {NO_TEMPORARY_DIRECTORY}',
        "trap 'rm -rf \"$d\"' EXIT",
        # The tools that send the outputs back: a host without one is told apart from a
        # failed copy.
        f'for t in {" ".join(SENDING_TOOLS)}; do command -v "$t" >/dev/null 2>&1 ||'
        f' {{ printf "{token} M %s\\n" "$t"; exit {NO_TOOL}; }}; done',
        # A host without coreutils' timeout still runs the commands; the client-side deadline
        # then bounds the whole script.
        'if command -v timeout >/dev/null 2>&1; then T="timeout -k 1 ' + str(seconds) + '";'
        ' else T=""; fi',
        'P=""',
    ]
    # The commands run concurrently, each one process under timeout and nothing more: no
    # subshell and no encoder per command, so one more command costs its own processes only.
    for index, command in enumerate(commands):
        lines.append(f'$T sh -c {shlex.quote(command)} >"$d/{index}.o" 2>"$d/{index}.e"'
                     ' </dev/null & P="$P $!"')
    lines += [
        'R=""',
        'for p in $P; do wait "$p"; R="$R $?"; done',
        f'printf "{token} R%s\\n" "$R"',
        f'cd "$d" || exit {NO_COPY}',
        # Only non-empty outputs are sent (most stderr is empty).
        f'F=""; for f in {names}; do [ -s "$f" ] && F="$F $f"; done',
        # A timed-out command's orphan may still be writing: sizes and bytes come from one
        # copy, so they agree. One wc and one base64 for all outputs, line-wrapped so a cut
        # stream still decodes up to its last whole line.
        'if [ -n "$F" ]; then',
        f'  mkdir s && cp $F s/ && cd s || exit {NO_COPY}',
        f'  printf "{token} S\\n"; wc -c $F',
        f'  printf "{token} D\\n"; cat $F | base64',
        'fi',
        f'printf "{token} E\\n"',
    ]
    return "\n".join(lines) + "\n"


def script_failure(whole: CommandResult, token: str) -> str | None:
    """Why a whole batch gave nothing back, from the script's own exit status and what it
    printed; None when it ran."""
    if whole.exit_status == NO_TOOL:
        marker = f"{token} M "
        tool = next((line[len(marker):].strip() for line in whole.stdout.splitlines()
                     if line.startswith(marker)), None)
        if tool in SENDING_TOOLS:
            return f"the host has no {tool} command, which the batch needs to send outputs back"
    return _SCRIPT_FAILURES.get(whole.exit_status)


def parse_batch_output(commands: list[str], stdout: str, token: str) -> list[CommandResult]:
    statuses: list[int] = []
    sizes: dict[str, int] = {}
    encoded: list[str] = []
    section = ""
    complete = False
    sizes_known = False
    for line in stdout.splitlines():
        if line.startswith(token + " "):
            marker = line[len(token) + 1:]
            section = marker[:1]
            if section == "R":
                statuses = [int(word) for word in marker[1:].split() if word.isdigit()]
            complete = complete or section == "E"
            sizes_known = sizes_known or section in ("D", "E")
        elif section == "S":
            words = line.split()
            if len(words) == 2 and words[0].isdigit() and _OUTPUT_NAME.fullmatch(words[1]):
                sizes[words[1]] = int(words[0])
        elif section == "D":
            encoded.append(line.strip())
    data = _decode(encoded, complete)
    if complete and data is not None and len(data) != sum(sizes.values()):
        data = None
    if data is None:
        why = "the batch's outputs came back garbled (their sizes and bytes disagree)"
        return [CommandResult.not_run(command, why) for command in commands]
    results = []
    offset = 0
    for index, command in enumerate(commands):
        # Its stdout's bytes then its stderr's, in the order they were sent.
        out_size, err_size = sizes.get(f"{index}.o", 0), sizes.get(f"{index}.e", 0)
        end = offset + out_size + err_size
        out, err = data[offset:offset + out_size], data[offset + out_size:end]
        offset = end
        if index >= len(statuses) or not sizes_known or end > len(data):
            results.append(CommandResult.not_run(command, "no output came back from the batch"))
            continue
        status = statuses[index]
        results.append(CommandResult(command, status, out.decode("utf-8", "replace"),
                                     err.decode("utf-8", "replace"),
                                     timed_out=status == TIMEOUT_STATUS))
    return results


def _decode(encoded: list[str], complete: bool) -> bytes | None:
    """The bytes of the base64 lines; a cut stream (no end marker) up to its last whole group."""
    text = "".join(encoded)
    if not complete:
        text = text[:len(text) - len(text) % 4]
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return None


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
    elif (failure := script_failure(whole, token)) is not None:
        results = [CommandResult.not_run(c, failure) for c in commands]
    else:
        results = parse_batch_output(commands, whole.stdout, token)
    return [result.on(target.name, timeout) for result in results]
