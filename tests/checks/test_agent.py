"""agent: running (systemd or /proc), version, manager and health, observed from recorded
command outputs and real sockets on 127.0.0.1, judged without a host."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_drcheck.checks.agents import (
    AgentCheck,
    HealthAnswer,
    VersionSeen,
    extract_version,
    parse_constraint,
    satisfies,
)
from pytest_drcheck.checks.running import (
    BOOTED,
    PROCESS_TABLE,
    SYSTEMD_BOOTED,
    Running,
    parse_process_table,
    running_commands,
    systemctl_command,
)
from pytest_drcheck.checks.tcp_probe import Connection
from pytest_drcheck.model import CouldNotObserve, Outcome, PlanItem
from pytest_drcheck.targets.base import CommandResult
from tests.checks.ops_site import Server, context, done, plan_items, problems_of
from tests.plugin.sockets import closed_port

CHECK = AgentCheck()
NO_SYSTEMD = done(SYSTEMD_BOOTED, 0, "drcheck: no systemd\n")
SYSTEMD = done(SYSTEMD_BOOTED, 0, BOOTED + "\n")
TABLE = done(PROCESS_TABLE, 0, "self 900 (cat) R 899 899 899 0\n1 (init) S 0 1 1 0\n"
                               "42 (clamd) S 1 42 42 0\n43 (clamd) S 1 43 43 0\n"
                               "44 (bacula-fd) Z 1 44 44 0\n")
NO_CLAMD = done(PROCESS_TABLE, 0, "1 (init) S 0 1 1 0\n7 (sshd) S 1 7 7 0\n")
ACTIVE = "LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=812\n"


@pytest.fixture
def items(tmp_path: Path) -> dict[str, PlanItem]:
    return plan_items(tmp_path, "agent:\n  - agent: clamav")


def outcome_of(item: PlanItem, *outputs: CommandResult) -> tuple[Outcome, str]:
    verdict = CHECK.evaluate(context(item, outputs))
    return verdict.outcome, verdict.reason or verdict.observed


def could_not_observe(item: PlanItem, *outputs: CommandResult) -> str:
    with pytest.raises(CouldNotObserve) as info:
        CHECK.evaluate(context(item, outputs))
    return str(info.value)


# --- running -----------------------------------------------------------------------------------


def test_process_table_of_the_runner_lists_this_process() -> None:
    # A session of its own, as every batch has (one SSH exec, or the local target's).
    out = subprocess.run(["sh", "-c", PROCESS_TABLE], capture_output=True, text=True,
                         start_new_session=True).stdout
    processes = parse_process_table(out)
    assert len(processes) > 1
    assert os.getpid() in {pid for pid, _ in processes}


def test_names_with_spaces_and_parentheses() -> None:
    assert parse_process_table("5 (tmux: server) S 1 5 5\n6 (a) b)) R 1 6 6\n") == [
        (5, "tmux: server"), (6, "a) b)")]


def test_the_readers_own_batch_is_not_the_agent() -> None:
    """`clamd --version` running in the same batch as the table must not count as clamd."""
    table = "self 900 (cat) R 899 899 899 0\n42 (clamd) S 1 42 42 0\n901 (clamd) R 899 901 899 0\n"
    assert parse_process_table(table) == [(42, "clamd")]
    out = subprocess.run(["sh", "-c", f"sleep 5 & echo $!; {PROCESS_TABLE}; kill $!"],
                         capture_output=True, text=True, timeout=10,
                         start_new_session=True).stdout
    sibling, _, table = out.partition("\n")
    pids = {pid for pid, _ in parse_process_table(table)}
    assert int(sibling) not in pids and os.getpid() in pids


def test_running_commands_run_here() -> None:
    """Real shell: the systemd probe answers either way, systemctl's command is quoted."""
    out = subprocess.run(["sh", "-c", SYSTEMD_BOOTED], capture_output=True, text=True).stdout
    assert out.strip() in (BOOTED, "drcheck: no systemd")
    assert running_commands("a b") == (SYSTEMD_BOOTED, systemctl_command("a b"), PROCESS_TABLE)
    assert systemctl_command("a b").startswith("systemctl show 'a b' --property=")
    assert systemctl_command("-x").endswith(" -- -x")
    assert running_commands(None) == (PROCESS_TABLE,)


def test_running_from_the_process_table_without_systemd(items: dict[str, PlanItem]) -> None:
    running = items["agent[clamav/running]"]
    assert CHECK.commands(running) == running_commands("clamav-daemon")
    unused = done("systemctl", 127, "", "sh: systemctl: not found")  # never read here
    verdict = CHECK.evaluate(context(running, [NO_SYSTEMD, unused, TABLE]))
    assert verdict.outcome is Outcome.PASSED
    assert verdict.observed == "clamd running (pid 42, 43; process table, no systemd)"
    verdict = CHECK.evaluate(context(running, [NO_SYSTEMD, unused, NO_CLAMD]))
    assert verdict.outcome is Outcome.FAILED
    assert verdict.reason == ("expected clamav running, observed no clamd process (process "
                              "table, no systemd, 2 processes)")


def test_long_process_names_match_the_kernels_15_characters(tmp_path: Path) -> None:
    item = plan_items(tmp_path, "agent:\n  - {name: cw, process: amazon-cloudwatch-agent}")[
        "agent[cw/running]"]
    table = done(PROCESS_TABLE, 0, "9 (amazon-cloudwat) S 1 9 9 0\n")
    assert outcome_of(item, table)[0] is Outcome.PASSED


def test_systemd_unit_state_decides_where_systemd_runs(items: dict[str, PlanItem]) -> None:
    running = items["agent[clamav/running]"]
    # The process table timed out, but systemd answered: it is not even read.
    late = done(PROCESS_TABLE, 124)
    verdict = CHECK.evaluate(context(running, [SYSTEMD, done("systemctl", 0, ACTIVE), late]))
    assert verdict.outcome is Outcome.PASSED
    assert verdict.observed == "unit clamav-daemon active (running, pid 812; systemd)"
    assert verdict.details == {"source": "systemd", "pids": [812]}
    failed = "LoadState=loaded\nActiveState=failed\nSubState=failed\nMainPID=0\n"
    assert outcome_of(running, SYSTEMD, done("systemctl", 0, failed), late) == (
        Outcome.FAILED, "expected clamav running, observed unit clamav-daemon failed (failed; "
                        "systemd)")
    missing = "LoadState=not-found\nActiveState=inactive\nSubState=dead\nMainPID=0\n"
    assert outcome_of(running, SYSTEMD, done("systemctl", 0, missing), late) == (
        Outcome.FAILED, "expected clamav running, observed unit clamav-daemon not-found")


def test_a_timed_out_systemctl_is_not_a_stopped_agent(items: dict[str, PlanItem]) -> None:
    """Before: `unit clamav-daemon ... timed out` read as not running (a failed property)."""
    running = items["agent[clamav/running]"]
    cause = could_not_observe(running, SYSTEMD, done(systemctl_command("clamav-daemon"), 124),
                              TABLE)
    assert cause == ("`systemctl show clamav-daemon --property=LoadState,ActiveState,SubState,"
                     "MainPID --no-pager` timed out after 10 s on app01")
    assert CHECK.expected(running) == "clamav running"


def test_a_timed_out_process_table_is_not_a_stopped_agent(tmp_path: Path) -> None:
    item = plan_items(tmp_path, "agent:\n  - {name: x, process: xd}")["agent[x/running]"]
    assert could_not_observe(item, done(PROCESS_TABLE, 124)) == (
        "`printf 'self '; cat /proc/self/stat /proc/[0-9]*/stat 2>/dev/null; true` timed out "
        "after 10 s on app01")
    assert could_not_observe(item, done(PROCESS_TABLE, 0, "")) == (
        "the process table of app01 could not be read (/proc)")
    assert could_not_observe(item, done(PROCESS_TABLE, 125, "", "the batch did not complete")
                             ) == ("`printf 'self '; cat /proc/self/stat /proc/[0-9]*/stat "
                                   "2>/dev/null; true` did not run on app01: the batch did "
                                   "not complete")


def test_systemd_tools_missing_or_no_systemd_and_no_process(tmp_path: Path,
                                                            items: dict[str, PlanItem]) -> None:
    running = items["agent[clamav/running]"]
    assert could_not_observe(running, SYSTEMD, done("systemctl", 127), TABLE).endswith(
        "is not available on app01 (command not found)")
    only_unit = plan_items(tmp_path, "agent:\n  - {name: falcon, service: falcon-sensor}")[
        "agent[falcon/running]"]
    assert could_not_observe(only_unit, NO_SYSTEMD, done("systemctl", 1), TABLE) == (
        "app01 does not run systemd to ask about falcon-sensor, and no process name is given "
        "to look for (add process:)")


# --- version -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "constraint", "ok"), [
    ("1.4.6", ">=1.0, <2", True),
    ("0.103.8", ">=1.0", False),
    ("1.4.6", "==1.4.*", True),
    ("1.5.0", "==1.4.*", False),
    ("9.6.7", "9.6.7", True),
    ("9.6", "==9.6.0", True),
    ("10.0", ">9.6.7", True),
    ("1.4.6", "!=1.4.6", False),
])
def test_version_constraints(version: str, constraint: str, ok: bool) -> None:
    assert satisfies(version, constraint) is ok


def test_bad_constraints_name_the_clause() -> None:
    with pytest.raises(ValueError, match="'~1' is not a version comparison"):
        parse_constraint(">=1, ~1")
    with pytest.raises(ValueError, match="wildcard only works with == or !="):
        parse_constraint(">=1.*")


def test_versions_come_out_of_real_outputs() -> None:
    assert extract_version("ClamAV 1.4.6/27470/Mon Nov 24 09:12:01 2026", None) == "1.4.6"
    assert extract_version("1.4.6+dfsg-0+deb12u1", None) == "1.4.6"
    assert extract_version("Version: 9.6.7 (10 December 2020)", None) == "9.6.7"
    assert extract_version("agent build 77 rev 3", r"build (\d+)") == "77"
    assert extract_version("nothing here", None) is None
    out = subprocess.run(["clamd", "--version"], capture_output=True, text=True).stdout
    assert satisfies(extract_version(out, None) or "0", ">=1.0")


def test_version_judged(items: dict[str, PlanItem]) -> None:
    version = items["agent[clamav/version]"]
    assert CHECK.commands(version) == ("clamd --version",)
    said = done("clamd --version", 0, "ClamAV 1.4.6/27470/Mon Nov 24 09:12:01 2026\n")
    verdict = CHECK.evaluate(context(version, [said]))
    assert (verdict.outcome, verdict.observed) == (Outcome.PASSED,
                                                   "version 1.4.6 (`clamd --version`)")
    old = CHECK.judge(version, VersionSeen("0.103.8", "`clamd --version`"))
    assert old.reason == ("expected version >=1.0, <2, observed version 0.103.8 (`clamd "
                          "--version`)")


def test_a_timed_out_or_missing_version_command_is_no_version(
        items: dict[str, PlanItem]) -> None:
    """Before: `timed out` and exit 127 were failed versions ("gave no version")."""
    version = items["agent[clamav/version]"]
    assert could_not_observe(version, done("clamd --version", 124)) == (
        "`clamd --version` timed out after 10 s on app01")
    assert could_not_observe(version, done("clamd --version", 127, "", "clamd: not found")) == (
        "`clamd --version` is not available on app01 (command not found)")
    assert could_not_observe(version, done("clamd --version", 0, "ClamAV (devel)\n")) == (
        "`clamd --version` gave no version on app01: ClamAV (devel)")


def test_package_versions(tmp_path: Path) -> None:
    item = plan_items(tmp_path, "agent:\n  - {name: av, process: clamd, version: {constraint: "
                                "'>=1', package: clamav-daemon}}")["agent[av/version]"]
    command = CHECK.commands(item)[0]
    # Real shell: this runner has dpkg or rpm, and the package is not installed here or is.
    ran = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)
    assert ran.returncode in (0, 1)
    assert outcome_of(item, done(command, 0, "1.4.6+dfsg-0+deb12u1")) == (
        Outcome.PASSED, "version 1.4.6 (package clamav-daemon)")
    assert outcome_of(item, done(command, 1, "", "dpkg-query: no packages found")) == (
        Outcome.FAILED, "expected version >=1, package clamav-daemon is not installed")
    assert could_not_observe(item, done(command, 3)) == (
        "app01 has no package database (dpkg or rpm) to ask about clamav-daemon")


# --- manager -----------------------------------------------------------------------------------


@pytest.fixture
def pong() -> Iterator[Server]:
    server = Server(lambda data: b"PONG\0" if data.startswith(b"zPING") else b"UNKNOWN\0")
    yield server
    server.close()


def test_manager_connection_is_the_property(tmp_path: Path, pong: Server) -> None:
    closed = closed_port()
    items = plan_items(tmp_path, f"agent:\n  - {{agent: clamav, manager: \"127.0.0.1:{pong.port}"
                                 f"\"}}\n  - {{name: nx, process: x, manager: \"127.0.0.1:"
                                 f"{closed}\"}}")
    verdict = CHECK.evaluate(context(items["agent[clamav/manager]"]))
    assert verdict.outcome is Outcome.PASSED
    assert verdict.observed.startswith(f"manager 127.0.0.1:{pong.port} connected in ")
    assert outcome_of(items["agent[nx/manager]"]) == (
        Outcome.FAILED, f"expected manager 127.0.0.1:{closed} open, observed refused")
    judged = CHECK.judge(items["agent[nx/manager]"], Connection("timed out", 3.0, 3.0))
    assert judged.reason == f"expected manager 127.0.0.1:{closed} open, observed timed out " \
                           "after 3 s"


# --- health ------------------------------------------------------------------------------------


def health_item(tmp_path: Path, port: int) -> PlanItem:
    return plan_items(tmp_path, f"agent:\n  - {{agent: clamav, health: {{tcp: \"127.0.0.1:"
                                f"{port}\", send: \"zPING\\\\0\", expect: PONG}}}}")[
        "agent[clamav/health]"]


def test_health_requires_running(items: dict[str, PlanItem]) -> None:
    assert items["agent[clamav/health]"].requires == ("agent[clamav/running]",)
    assert CHECK.commands(items["agent[clamav/health]"]) == ()
    assert items["agent[clamav/manager]"].requires == ()
    assert items["agent[clamav/version]"].requires == ()


def test_health_over_tcp_answers(tmp_path: Path, pong: Server) -> None:
    verdict = CHECK.evaluate(context(health_item(tmp_path, pong.port)))
    assert (verdict.outcome, verdict.observed) == (Outcome.PASSED, "answered 'PONG'")


def test_a_port_that_accepts_and_closes_is_unhealthy(tmp_path: Path) -> None:
    server = Server(None)
    try:
        assert outcome_of(health_item(tmp_path, server.port)) == (
            Outcome.FAILED, "expected health probe answers PONG, observed connected, then the "
                            "agent closed the connection without answering")
    finally:
        server.close()


def test_a_health_probe_that_cannot_connect_is_not_observed(tmp_path: Path) -> None:
    """Before: "127.0.0.1:N refused" was a failed health probe; the connection is only the
    way to the probe (the running agent is its own test)."""
    closed = closed_port()
    assert could_not_observe(health_item(tmp_path, closed)) == (
        f"cannot open the health probe's connection: 127.0.0.1:{closed} from app01: "
        "connection refused")


def test_health_command(tmp_path: Path) -> None:
    item = plan_items(tmp_path, "agent:\n  - {name: n, process: n, health: {command: "
                                "'n --ping', expect: OK}}")["agent[n/health]"]
    assert CHECK.commands(item) == ("n --ping",)
    assert outcome_of(item, done("n --ping", 0, "OK\n")) == (Outcome.PASSED,
                                                             "`n --ping` said 'OK'")
    assert outcome_of(item, done("n --ping", 2, "", "degraded")) == (
        Outcome.FAILED, "expected health probe answers OK, `n --ping` exited 2: 'degraded'")
    # Before: a timeout was a failed probe ("timed out").
    assert could_not_observe(item, done("n --ping", 124)) == (
        "`n --ping` timed out after 10 s on app01")
    assert could_not_observe(item, done("n --ping", 127)) == (
        "`n --ping` is not available on app01 (command not found)")


def test_judge_is_pure(items: dict[str, PlanItem]) -> None:
    health = items["agent[clamav/health]"]
    assert CHECK.judge(health, HealthAnswer(False, "connected, no answer")).reason == (
        "expected health probe answers PONG, observed connected, no answer")
    running = items["agent[clamav/running]"]
    assert CHECK.judge(running, Running(True, "clamd running (pid 1; process table)",
                                        "process table", (1,))).outcome is Outcome.PASSED


# --- expansion ---------------------------------------------------------------------------------


def test_agent_expands_to_one_test_per_property(tmp_path: Path) -> None:
    items = plan_items(tmp_path, "agent:\n  - agent: clamav\n  - {name: node-exporter, "
                                 "process: node_exporter, manager: \"10.77.0.50:9100\"}")
    assert sorted(items) == ["agent[clamav/health]", "agent[clamav/manager]",
                             "agent[clamav/running]", "agent[clamav/version]",
                             "agent[node-exporter/manager]", "agent[node-exporter/running]"]
    health = items["agent[clamav/health]"].params["health"]
    assert (health["host"], health["port"], health["send"]) == ("127.0.0.1", 3310, "zPING\0")


def test_agent_overrides_on_top_of_the_site(tmp_path: Path) -> None:
    manager = plan_items(tmp_path, "agent:\n  - {agent: clamav, manager: \"10.9.9.9:443\"}")[
        "agent[clamav/manager]"]
    assert (manager.params["host"], manager.params["port"]) == ("10.9.9.9", 443)


@pytest.mark.parametrize(("checks", "message"), [
    ("agent:\n  - agent: clamv",
     "hosts.app01.checks.agent[0].agent: agent 'clamv' is not in site.agents (clamav)"),
    ("agent:\n  - {name: x}", "needs 'process' (its process name) and/or 'service'"),
    ("agent:\n  - {process: x}", "give 'agent' (a name in site.agents) or 'name'"),
    ("agent:\n  - {name: x, process: x, version: {constraint: '~2', command: v}}",
     "agent[0].version: '~2' is not a version comparison"),
    ("agent:\n  - {name: x, process: x, version: {constraint: '>1'}}",
     "version needs exactly one of 'command'"),
    ("agent:\n  - {name: x, process: x, health: {tcp: \"127.0.0.1:1\"}}",
     "a tcp health probe needs 'expect'"),
    ("agent:\n  - {name: x, process: x, manager: \"m:99999\"}", "with a port from 1 to 65535"),
])
def test_mistakes_are_one_line_with_the_place(tmp_path: Path, checks: str, message: str) -> None:
    text = problems_of(tmp_path, checks)
    assert message in text, text
    assert len(text.splitlines()) == 1
