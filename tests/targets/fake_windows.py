"""A stand-in for a Windows host's PowerShell, for the transport tests (ssh, ssm, winrm).

There is no PowerShell on this machine. This reads the PowerShell batch the way PowerShell's
tokenizer reads its parts (single-quoted literals: every kind of single quote doubled, nothing
interpolated; -EncodedCommand: base64 of UTF-16LE), answers each command from a table of
recorded answers, and frames the answers as the batch script does (token, compact JSON, base64
of UTF-8). It proves the transports carry the batch and its answers intact, and that the
parser reads them; it does not prove the script itself runs on Windows PowerShell (see the
README's Windows section).

Run as a program (an sshd ForceCommand), it answers SSH_ORIGINAL_COMMAND from the JSON answers
file given as its argument.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

QUOTES = "'\u2018\u2019\u201a\u201b"
PREFIX = "powershell -NoProfile -NonInteractive -EncodedCommand "
NOT_RECOGNIZED = ("The term '{name}' is not recognized as the name of a cmdlet, function, "
                  "script file, or operable program.")


@dataclass(frozen=True)
class Answer:
    rc: int = 0
    out: str = ""
    err: str = ""
    seconds: float = 0.0


def read_literal(text: str, start: int) -> tuple[str, int]:
    """The single-quoted literal at ``text[start]`` and the index after it."""
    if text[start] not in QUOTES:
        raise ValueError(f"no literal at {start}: {text[start:start + 20]!r}")
    value: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char in QUOTES:
            if index + 1 < len(text) and text[index + 1] in QUOTES:
                value.append(char)
                index += 2
                continue
            return "".join(value), index + 1
        value.append(char)
        index += 1
    raise ValueError("unterminated literal")


def encoded_script(command_line: str) -> str:
    """What ``powershell ... -EncodedCommand X`` runs."""
    if not command_line.startswith(PREFIX):
        raise ValueError(f"not a PowerShell command line: {command_line[:60]!r}")
    return base64.b64decode(command_line[len(PREFIX):], validate=True).decode("utf-16-le")


def script_of(command_line: str) -> str:
    """The script a command line of ``powershell_batch.command_line`` runs."""
    bootstrap = encoded_script(command_line)
    packed = re.search(r"FromBase64String\('([A-Za-z0-9+/=]+)'\)", bootstrap)
    if packed is None:
        raise ValueError("no compressed script in the bootstrap")
    return gzip.decompress(base64.b64decode(packed.group(1))).decode("utf-8")


def parse_script(script: str) -> tuple[str, float, list[str]]:
    """(token, per-command timeout in seconds, commands) of a batch script."""
    token, _ = read_literal(script, script.index("$token = ") + len("$token = "))
    timeout_ms = int(re.search(r"\$timeoutMs = (\d+)", script).group(1))  # type: ignore[union-attr]
    index = script.index("$commands = @(") + len("$commands = @(")
    commands: list[str] = []
    while True:
        while script[index] in " \n,":
            index += 1
        if script[index] == ")":
            return token, timeout_ms / 1000, commands
        value, index = read_literal(script, index)
        commands.append(value)


def frame(token: str, index: int, answer: Answer, timed_out: bool) -> str:
    body = {"i": index, "rc": 124 if timed_out else answer.rc, "timedOut": timed_out,
            "out": "" if timed_out else base64.b64encode(answer.out.encode()).decode(),
            "err": "" if timed_out else base64.b64encode(answer.err.encode()).decode()}
    return f"{token} {json.dumps(body, separators=(',', ':'))}"


def run_script(script: str, answer_of: Callable[[str], Answer | None]) -> str:
    """What the batch prints: the commands run at the same time, each stopped at the timeout."""
    token, timeout, commands = parse_script(script)
    answers = []
    for command in commands:
        answer = answer_of(command)
        if answer is None:
            name = command.split()[0] if command.split() else command
            answer = Answer(127, "", NOT_RECOGNIZED.format(name=name))
        answers.append(answer)
    time.sleep(min(timeout, max((a.seconds for a in answers), default=0.0)))
    return "".join(frame(token, i, a, a.seconds > timeout) + "\n"
                   for i, a in enumerate(answers))


def clock_reading() -> str:
    """What the Windows clock sample prints: seconds since the epoch, 7 decimals."""
    return f"{time.time():.7f}\n"


def run_command_line(line: str, answer_of: Callable[[str], Answer | None]) -> tuple[int, str]:
    """(exit status, stdout) of a command line a Windows target runs: a batch, or the clock
    sample (this machine's clock stands in for the host's)."""
    from pytest_drcheck.checks.windows.timesync import SAMPLE_SCRIPT

    script = encoded_script(line)
    if script == SAMPLE_SCRIPT:
        return 0, clock_reading()
    return 0, run_script(script_of(line), answer_of)


def sampler_loop() -> None:
    """The Windows clock sampler: one reading per line of input."""
    for count, _ in enumerate(sys.stdin):
        if count >= 256:
            break
        sys.stdout.write(clock_reading())
        sys.stdout.flush()


def table(answers: Mapping[str, Answer]) -> Callable[[str], Answer | None]:
    return answers.get


def save(path: str, answers: Mapping[str, Answer]) -> None:
    with open(path, "w", encoding="utf-8") as sink:
        json.dump({k: [a.rc, a.out, a.err, a.seconds] for k, a in answers.items()}, sink)


def load(path: str) -> dict[str, Answer]:
    with open(path, encoding="utf-8") as source:
        return {k: Answer(*v) for k, v in json.load(source).items()}


def main() -> int:
    line = os.environ.get("SSH_ORIGINAL_COMMAND", "")
    try:
        from pytest_drcheck.checks.windows.timesync import SAMPLER_SCRIPT

        if encoded_script(line) == SAMPLER_SCRIPT:
            sampler_loop()
            return 0
        status, out = run_command_line(line, table(load(sys.argv[1])))
    except ValueError:
        print(f"'{line.split()[0] if line.split() else line}' is not recognized as an "
              "internal or external command", file=sys.stderr)
        return 9009  # cmd.exe's "not recognized"
    sys.stdout.write(out)
    return status


if __name__ == "__main__":
    sys.exit(main())
