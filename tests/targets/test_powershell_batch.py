"""The PowerShell batch: quoting of hostile values, the command line, framing and splitting.

Quoting is checked against PowerShell's lexical rules for single-quoted strings
(about_Quoting_Rules: nothing is interpolated, a quote is doubled, and U+2018..U+201B count as
single quotes), as ``fake_windows.read_literal`` reads them; the script is not run by a real
PowerShell here (none on this machine).
"""

from __future__ import annotations

import json
import random
import string
import time

import pytest

from pytest_drcheck.model import CouldNotObserve
from pytest_drcheck.targets import powershell_batch as ps
from pytest_drcheck.targets.result import CommandResult
from tests.targets import fake_windows
from tests.targets.fake_windows import Answer

HOSTILE = [
    "it's",
    "$(Remove-Item C:\\ -Recurse)",
    "`n`$env:PATH `\"",
    "line one\nline two\r\n'; exit 3; '",
    "\u2018smart\u2019 \u201aquotes\u201b",
    "'''",
    "caf\u00e9 \u65e5\u672c \U0001f600",
    "@'\n'@\n$x",
    "",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_quoted_value_reads_back_exactly(value: str) -> None:
    quoted = ps.ps_quote(value)
    assert fake_windows.read_literal(quoted, 0) == (value, len(quoted))


def test_quoting_doubles_every_single_quote_and_nothing_else() -> None:
    assert ps.ps_quote("it's") == "'it''s'"
    assert ps.ps_quote("a\u2019b") == "'a\u2019\u2019b'"
    assert ps.ps_quote("$(x) `n \"y\"") == "'$(x) `n \"y\"'"
    with pytest.raises(ValueError, match="NUL"):
        ps.ps_quote("a\0b")


def test_the_script_carries_every_command_token_and_timeout() -> None:
    script = ps.batch_script(HOSTILE, 7.5, "DRCabc")
    assert fake_windows.parse_script(script) == ("DRCabc", 7.5, HOSTILE)


def test_command_line_is_an_encoded_bootstrap_of_the_compressed_script() -> None:
    script = ps.batch_script(HOSTILE, 10, "DRCabc")
    line = ps.command_line(script)
    assert line.startswith("powershell -NoProfile -NonInteractive -EncodedCommand ")
    # Nothing cmd.exe reads as syntax: the argument is base64 only.
    assert set(line.split()[-1]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789+/=")
    assert fake_windows.script_of(line) == script


def frames(token: str, *answers: tuple[int, Answer, bool]) -> str:
    return "".join(fake_windows.frame(token, i, a, t) + "\n" for i, a, t in answers)


def test_frames_become_results_with_the_linux_meanings() -> None:
    commands = ["a", "b", "c", "d"]
    out = frames("DRC1", (0, Answer(0, "caf\u00e9\n", ""), False),
                 (1, Answer(127, "", "The term 'Get-Nothing' is not recognized"), False),
                 (2, Answer(), True), (3, Answer(3, "", "boom"), False))
    results = ps.parse_batch_output(commands, "noise\r\n" + out, "DRC1")
    assert [(r.exit_status, r.stdout, r.timed_out) for r in results] == [
        (0, "caf\u00e9\n", False), (127, "", False), (124, "", True), (3, "", False)]
    assert results[1].missing
    with pytest.raises(CouldNotObserve, match=r"`c` timed out after 10 s on win01"):
        results[2].on("win01", 10).require()
    with pytest.raises(CouldNotObserve, match=r"`b` is not available on win01"):
        results[1].on("win01", 10).require()
    assert results[3].on("win01", 10).require(accept := (0, 3)) is not None and 3 in accept


def test_a_cut_or_foreign_line_is_never_a_result() -> None:
    whole = frames("DRC1", (0, Answer(0, "x" * 100, ""), False),
                   (1, Answer(0, "y" * 100, ""), False))
    cut = whole[:-40]  # the second frame cut off by an output limit
    forged = 'DRC2 {"i":0,"rc":0,"out":"","err":"","timedOut":false}\n'
    results = ps.parse_batch_output(["a", "b"], forged + cut, "DRC1")
    assert results[0].stdout == "x" * 100
    assert results[1].batch_failed and results[1].exit_status == 125
    assert ps.parse_batch_output(["a"], 'DRC1 {"i":0}\n', "DRC1")[0].batch_failed


class Runner:
    """A command-line runner over the stand-in PowerShell: counts PowerShell starts."""

    def __init__(self, answers: dict[str, Answer], rc: int = 0, stderr: str = "") -> None:
        self.answers, self.rc, self.stderr = answers, rc, stderr
        self.lines: list[str] = []

    def __call__(self, line: str, timeout: float) -> CommandResult:
        self.lines.append(line)
        if self.rc:
            return CommandResult(line, self.rc, "", self.stderr)
        return CommandResult(line, 0, fake_windows.run_script(fake_windows.script_of(line),
                                                              self.answers.get), "")


def test_one_powershell_start_for_a_whole_batch() -> None:
    answers = {f"Get-Thing {i}": Answer(0, f"{i}\n") for i in range(20)}
    runner = Runner(answers)
    results = ps.run_batch(runner, "win01", list(answers), 10)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(20)]
    assert len(runner.lines) == 1 and all(r.host == "win01" for r in results)


def test_a_batch_too_long_for_one_command_line_is_split_in_order() -> None:
    noise = random.Random(13)
    answers = {f"Get-Thing '{i}' " + "".join(noise.choices(string.ascii_letters, k=600)):
               Answer(0, f"{i}\n") for i in range(12)}
    runner = Runner(answers)
    limit = ps.COMMAND_LINE_LIMIT
    results = ps.run_batch(runner, "win01", list(answers), 10)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(12)]
    assert len(runner.lines) > 1 and all(len(line) <= limit for line in runner.lines)
    alone = ps.run_batch(runner, "win01", ["".join(noise.choices(string.ascii_letters,
                                                                 k=6000))], 10)[0]
    assert alone.batch_failed and "too long for one Windows command line" in alone.stderr


def test_a_command_past_its_timeout_is_stopped_alone() -> None:
    runner = Runner({"slow": Answer(0, "late", "", seconds=30), "fast": Answer(0, "ok\n")})
    started = time.monotonic()
    slow, fast = ps.run_batch(runner, "win01", ["slow", "fast"], 1)
    assert time.monotonic() - started < 30
    assert slow.timed_out and slow.exit_status == 124 and slow.stdout == ""
    assert fast.ok and fast.stdout == "ok\n"


def test_no_powershell_on_the_host_names_the_shell_error() -> None:
    runner = Runner({}, rc=9009, stderr="'powershell' is not recognized as an internal or "
                                        "external command")
    (result,) = ps.run_batch(runner, "win01", ["Get-Date"], 5)
    with pytest.raises(CouldNotObserve, match=r"did not run on win01: the PowerShell batch gave "
                                              r"no result \(exit 9009\): 'powershell' is not "
                                              "recognized"):
        result.require()


def test_the_batch_line_is_json_behind_the_token() -> None:
    line = fake_windows.frame("DRC1", 0, Answer(0, "x", ""), False)
    token, body = line.split(" ", 1)
    assert token == "DRC1" and json.loads(body)["out"] == "eA=="
    script = ps.batch_script(["x"], 1, "t")
    assert """Write-Output ($token + ' {"i":' + [int]$i + ',"rc":' + [int]$rc""" in script
    assert "ConvertTo-Json" not in script  # Windows PowerShell 2.0 has none


def test_a_name_lookup_reads_addresses_and_names_failures() -> None:
    command = ps.lookup_command("db'01")
    assert "GetHostAddresses('db''01')" in command
    ok = CommandResult(command, 0, "10.0.0.5\r\nfe80::1\r\n10.0.0.5\r\n", "")
    assert ps.parse_lookup("db01", "win01", ok, 5) == ("10.0.0.5", "fe80::1")
    failed = CommandResult(command, 1, "", 'Exception calling "GetHostAddresses": No such '
                                            'host is known')
    with pytest.raises(CouldNotObserve, match="db01 does not resolve on win01 "
                                              r"\(Dns.GetHostAddresses: Exception calling"):
        ps.parse_lookup("db01", "win01", failed, 5)
