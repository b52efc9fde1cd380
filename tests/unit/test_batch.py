"""The batch script runs for real under /bin/sh here; only the transport is skipped."""

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pytest_drcheck.targets.batch import batch_script, parse_batch_output, script_failure
from pytest_drcheck.targets.result import CommandResult

TOKEN = "DRCdeadbeef00000000"


def run_script(commands: list[str], timeout: float) -> tuple[list, float]:
    started = time.monotonic()
    out = subprocess.run(["sh", "-c", batch_script(commands, timeout, TOKEN)],
                         capture_output=True, text=True, timeout=30).stdout
    return parse_batch_output(commands, out, TOKEN), time.monotonic() - started


def test_outputs_statuses_and_odd_bytes_survive_framing() -> None:
    commands = ["echo hello", "echo oops >&2; exit 3", f"printf '{TOKEN} 0 0 x y\\n'",
                "printf 'a\\nb\\n\\n'", "printf '\\377\\000z'", "true"]
    results, _ = run_script(commands, 5)
    assert [r.exit_status for r in results] == [0, 3, 0, 0, 0, 0]
    assert results[0].stdout == "hello\n"
    assert results[1].stderr == "oops\n"
    assert results[2].stdout == f"{TOKEN} 0 0 x y\n"
    assert results[3].stdout == "a\nb\n\n"
    assert results[4].stdout == "\ufffd\x00z"
    assert [r.command for r in results] == commands


def test_commands_run_concurrently_and_time_out_individually() -> None:
    results, elapsed = run_script(["sleep 1; echo a", "sleep 1; echo b", "sleep 30"], 2)
    assert [r.stdout for r in results[:2]] == ["a\n", "b\n"]
    assert results[2].timed_out and results[2].exit_status == 124
    assert elapsed < 20  # ~2 s for the timeout, not 1 + 1 + 30


def test_missing_output_is_reported_per_command() -> None:
    # Statuses for both commands, but the bytes of the second's output only.
    out = f"{TOKEN} R 0 0\n{TOKEN} S\n1 1.o\n{TOKEN} D\neA==\n{TOKEN} E\n"
    results = parse_batch_output(["a", "b"], out, TOKEN)
    assert results[1].stdout == "x"
    out = f"{TOKEN} R 0\n{TOKEN} E\n"
    results = parse_batch_output(["a", "b"], out, TOKEN)
    assert (results[0].exit_status, results[0].stdout) == (0, "")
    assert results[1].exit_status == 125 and "no output came back" in results[1].stderr


def test_a_cut_stream_gives_back_the_commands_before_the_cut_whole() -> None:
    # Run Command keeps only the first 24,000 characters: the end marker and the last
    # commands' bytes are lost, and the first commands must come back whole, not garbled.
    long_line = "x" * 300
    commands = [f"echo {long_line}", "echo second", f"echo {long_line}y"]
    out = subprocess.run(["sh", "-c", batch_script(commands, 5, TOKEN)],
                         capture_output=True, text=True, timeout=30).stdout
    cut = out[:out.index(f"{TOKEN} D") + 600]
    cut = cut[:cut.rfind("\n") + 1]
    results = parse_batch_output(commands, cut, TOKEN)
    assert [r.stdout for r in results[:2]] == [long_line + "\n", "second\n"]
    assert results[2].exit_status == 125 and "no output came back" in results[2].stderr
    whole = parse_batch_output(commands, out, TOKEN)
    assert whole[2].stdout == long_line + "y\n"


def test_sizes_that_disagree_with_the_bytes_are_never_read_as_outputs() -> None:
    out = f"{TOKEN} R 0 0\n{TOKEN} S\n2 0.o\n1 1.o\n{TOKEN} D\neA==\n{TOKEN} E\n"
    results = parse_batch_output(["a", "b"], out, TOKEN)
    assert [r.exit_status for r in results] == [125, 125]
    assert results[0].stderr == ("the batch's outputs came back garbled (their sizes and bytes "
                                 "disagree)")


def test_an_orphan_still_writing_after_its_timeout_does_not_garble_the_others() -> None:
    # setsid takes the writer out of timeout's process group, so it outlives the kill and
    # keeps growing its output file while the script measures and sends the outputs.
    writer = ("setsid sh -c 'i=0; while [ $i -lt 3000 ]; do echo line; i=$((i+1)); "
              "sleep 0.001; done' & sleep 30")
    results, _ = run_script([writer, "echo after", "echo err >&2"], 1)
    assert results[0].timed_out
    assert set(results[0].stdout.splitlines()) <= {"line"}
    assert (results[1].stdout, results[2].stderr) == ("after\n", "err\n")


@pytest.mark.parametrize("missing", ["base64", "wc"])
def test_a_host_without_a_tool_that_sends_outputs_back_is_named(
        missing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for tool in ("sh", "mktemp", "rm", "timeout", "cp", "wc", "cat", "mkdir", "base64"):
        path = shutil.which(tool)
        assert path is not None
        if tool != missing:
            (tmp_path / tool).symlink_to(path)
    monkeypatch.setenv("PATH", str(tmp_path))
    completed = subprocess.run([str(tmp_path / "sh"), "-c", batch_script(["echo a"], 5, TOKEN)],
                               capture_output=True, text=True, timeout=30)
    whole = CommandResult("batch", completed.returncode, completed.stdout, completed.stderr)
    assert script_failure(whole, TOKEN) == (
        f"the host has no {missing} command, which the batch needs to send outputs back")
    assert script_failure(CommandResult("batch", 0, "", ""), TOKEN) is None


def test_the_framing_holds_under_busybox_alone(tmp_path: Path) -> None:
    # A minimal image (Alpine, an appliance): busybox's sh, timeout, base64, wc and cp, whose
    # output formats differ from coreutils' (wc's column widths, base64's line breaks).
    busybox = shutil.which("busybox")
    assert busybox is not None, "busybox is in scripts/debian-packages.txt"
    for tool in ("sh", "timeout", "base64", "wc", "cp", "cat", "mkdir", "mktemp", "rm",
                 "printf", "echo", "sleep"):
        (tmp_path / tool).symlink_to(busybox)
    commands = ["echo hello", "echo oops >&2; exit 3", "printf '\\377\\000z'", "nosuch-tool",
                "echo " + "x" * 300, "true"]
    completed = subprocess.run([str(tmp_path / "sh"), "-c", batch_script(commands, 5, TOKEN)],
                               capture_output=True, text=True, timeout=30,
                               env={"PATH": str(tmp_path)})
    results = parse_batch_output(commands, completed.stdout, TOKEN)
    assert [(r.exit_status, r.stdout, r.stderr) for r in results] == [
        (0, "hello\n", ""), (3, "", "oops\n"), (0, "\ufffd\x00z", ""),
        (127, "", "sh: nosuch-tool: not found\n"), (0, "x" * 300 + "\n", ""), (0, "", "")]


def test_many_outputs_cost_one_encoder_not_one_each() -> None:
    # The script names base64 once whatever the number of commands.
    script = batch_script([f"echo {i}" for i in range(20)], 5, TOKEN)
    assert script.count("| base64") == 1


def test_missing_tools_builtins_and_shell_syntax_behave_as_in_sh() -> None:
    commands = ["echo a b", "nosuch-drcheck-tool -x", "cd /nonexistent-drcheck",
                "X=1 env", "echo $((1+2))", "printf '%s' 'x y'"]
    results, _ = run_script(commands, 5)
    assert results[0].stdout == "a b\n"
    assert results[1].exit_status == 127 and results[1].missing
    assert results[2].exit_status == 2 and "nonexistent-drcheck" in results[2].stderr
    assert "X=1" in results[3].stdout.splitlines()
    assert results[4].stdout == "3\n"
    assert results[5].stdout == "x y"
