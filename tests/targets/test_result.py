"""CommandResult.require: a command that observed nothing is never read as data."""

from __future__ import annotations

import pytest

from pytest_drcheck.model import CouldNotObserve
from pytest_drcheck.targets.local import LocalTarget
from pytest_drcheck.targets.result import CommandNotObserved, CommandResult
from tests.targets.conftest import MakeTarget


def cause_and_message(result: CommandResult, allowed: tuple[int, ...] = (0,)) -> tuple[str, str]:
    with pytest.raises(CommandNotObserved) as caught:
        result.require(allowed)
    assert isinstance(caught.value, CouldNotObserve)
    return caught.value.cause, str(caught.value)


def test_a_good_result_is_returned_as_it_is() -> None:
    result = CommandResult("ip -j addr", 0, "[]", "", host="app01", timeout=10)
    assert result.require() is result
    assert CommandResult("grep x f", 1, "", "").require(allowed_statuses=(0, 1)).exit_status == 1


def test_a_timeout_names_the_command_the_time_and_the_host() -> None:
    result = CommandResult("ip -j addr", 124, "", "", timed_out=True, host="app01", timeout=10)
    assert cause_and_message(result) == (
        "timed out", "`ip -j addr` timed out after 10 s on app01")


def test_a_long_script_is_named_by_what_it_runs() -> None:
    script = "if grep -Eq winbind /etc/nsswitch.conf; then via=winbind; fi; " * 5
    result = CommandResult(script, 124, "", "", timed_out=True, host="db01", timeout=10)
    with pytest.raises(CommandNotObserved) as caught:
        result.require(shown="net ads testjoin")
    assert str(caught.value) == "`net ads testjoin` timed out after 10 s on db01"


def test_a_missing_tool_is_not_a_failure_of_the_thing_checked() -> None:
    result = CommandResult("ip -j addr", 127, "", "sh: 1: ip: not found\n", host="app01",
                           timeout=10)
    assert result.missing and not result.ok
    assert cause_and_message(result) == (
        "not found", "`ip -j addr` is not available on app01 "
                     "(command not found)")


def test_an_unexpected_status_is_named_with_its_error_text() -> None:
    result = CommandResult("cat /etc/resolv.conf", 1, "",
                           "cat: /etc/resolv.conf: Permission denied", host="app01")
    assert cause_and_message(result) == (
        "exit status", "`cat /etc/resolv.conf` failed on app01 "
                       "(exit 1): cat: /etc/resolv.conf: Permission denied")


def test_a_batch_that_did_not_complete_says_so_for_each_command() -> None:
    result = CommandResult.not_run("chronyc -n tracking", "no output came back from the batch")
    assert (result.exit_status, result.batch_failed, result.missing) == (125, True, False)
    assert cause_and_message(result.on("app01", 10)) == (
        "batch failure", "`chronyc -n tracking` did not run on app01: no output came back "
                         "from the batch")


def test_a_long_command_is_shown_on_one_short_line() -> None:
    command = "for i in 1 2 3; do\n  echo $i\ndone; " + "x" * 300
    _, message = cause_and_message(CommandResult(command, 2, "", "", host="app01"))
    assert "\n" not in message and len(message) < 200
    assert message.startswith("`for i in 1 2 3; do echo $i done; xxx")


def test_the_new_fields_do_not_change_equality() -> None:
    assert CommandResult("true", 0, "", "", host="a", timeout=1) == CommandResult("true", 0, "", "")


def test_local_results_carry_host_and_timeout() -> None:
    result = LocalTarget("runner").run("no-such-tool-drcheck --version", 5)
    assert result.missing
    assert cause_and_message(result)[1].startswith(
        "`no-such-tool-drcheck --version` is not available on runner (command not found)")
    timed_out = LocalTarget("runner").run("sleep 5", 0.2)
    assert cause_and_message(timed_out) == (
        "timed out", "`sleep 5` timed out after 200 ms on runner")


def test_ssh_results_carry_host_and_timeout(make_target: MakeTarget) -> None:
    target = make_target()
    assert cause_and_message(target.run("sleep 5", 1)) == (
        "timed out", "`sleep 5` timed out after 1 s on app01")
    missing = target.run("no-such-tool-drcheck", 5)
    assert cause_and_message(missing)[0] == "not found"


def test_batched_results_tell_timeouts_missing_tools_and_data_apart(
        make_target: MakeTarget) -> None:
    results = make_target().run_batch(["echo data", "sleep 30", "no-such-tool-drcheck"], 1)
    assert results[0].require().stdout == "data\n"
    assert cause_and_message(results[1]) == (
        "timed out", "`sleep 30` timed out after 1 s on app01")
    assert cause_and_message(results[2])[0] == "not found"


class ScriptTimesOut(LocalTarget):
    """A host on which the whole batch script runs out of time."""

    def run(self, command: str, timeout: float) -> CommandResult:
        return CommandResult(command, 124, "", "", timed_out=True)


def test_a_batch_that_timed_out_as_a_whole_is_a_batch_failure() -> None:
    results = ScriptTimesOut("app01").run_batch(["cat /etc/resolv.conf"], 10)
    assert results[0].timed_out
    assert cause_and_message(results[0]) == (
        "batch failure", "`cat /etc/resolv.conf` did not run on app01: the batch of 1 "
                         "commands timed out after 15 s")
