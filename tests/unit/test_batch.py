"""The batch script runs for real under /bin/sh here; only the transport is skipped."""

import subprocess
import time

from pytest_drcheck.targets.batch import batch_script, parse_batch_output

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
    results = parse_batch_output(["a", "b"], f"{TOKEN} 1 0 eA== \n", TOKEN)
    assert results[0].exit_status == 125 and "no output came back" in results[0].stderr
    assert results[1].stdout == "x"


def test_framing_works_where_base64_cannot_leave_out_line_breaks(tmp_path, monkeypatch) -> None:
    # A base64 without -w (as on some minimal images): the script falls back to tr.
    real = subprocess.run(["sh", "-c", "command -v base64"], capture_output=True,
                          text=True).stdout.strip()
    fake = tmp_path / "base64"
    fake.write_text(f'#!/bin/sh\nfor a; do [ "$a" = -w0 ] && exit 1; done\nexec {real} "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    long_line = "x" * 200  # more than one base64 line (76 columns) when wrapped
    results, _ = run_script([f"echo {long_line}", "echo err >&2; exit 4"], 5)
    assert results[0].stdout == long_line + "\n"
    assert (results[1].exit_status, results[1].stderr) == (4, "err\n")


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
