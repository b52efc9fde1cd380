"""agent, logging and backup: parsing, expansion and the small protocols, without a network."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pytest_drcheck.checks.agents import (
    NO_SYSTEMD,
    PROCESS_TABLE,
    extract_version,
    observe_running,
    parse_constraint,
    parse_process_table,
    parse_systemctl_show,
    running_commands,
    satisfies,
)
from pytest_drcheck.checks.backup import bacula_hello, parse_route_source, read_bacula_message
from pytest_drcheck.checks.logging_delivery import (
    logger_command,
    new_marker,
    syslog_line,
    verify_command,
)
from pytest_drcheck.inventory import InventoryError, load_plan
from pytest_drcheck.targets.base import CommandResult

REPO = Path(__file__).resolve().parents[2]

SITE = """\
version: 1
drill: {name: ops}
site:
  agents:
    clamav:
      service: clamav-daemon
      process: clamd
      version: {constraint: ">=1.0, <2", command: "clamd --version"}
      manager: 10.77.0.40:8080
      health: {tcp: "127.0.0.1:3310", send: "zPING\\0", expect: PONG}
  logging:
    collectors:
      central:
        address: 10.77.0.40
        tcp: 514
        udp: 514
        within: 5s
        verify: {host: logs01, command: "grep -F -- {marker} /run/remote.log"}
  backup:
    systems:
      bacula:
        server: {host: backup01, endpoint: "10.77.0.41:9103"}
        agent:
          process: bacula-fd
          port: 9102
          probe: {protocol: bacula, director: backup01-dir}
hosts:
  logs01: {address: 10.77.0.40}
  backup01: {address: 10.77.0.41}
  app01:
    address: 10.77.0.11
    checks:
"""


def plan_of(tmp_path: Path, checks: str, site: str = SITE):
    path = tmp_path / "site.yaml"
    path.write_text(site + "".join(f"      {line}\n" for line in checks.splitlines()))
    return load_plan(path)


def problems_of(tmp_path: Path, checks: str, site: str = SITE) -> str:
    with pytest.raises(InventoryError) as info:
        plan_of(tmp_path, checks, site)
    return str(info.value)


# --- processes and units ---------------------------------------------------------------------


def test_process_table_of_the_runner_lists_this_process() -> None:
    # A session of its own, as every batch has (one SSH exec, or the local target's).
    out = subprocess.run(["sh", "-c", PROCESS_TABLE], capture_output=True, text=True,
                         start_new_session=True).stdout
    processes = parse_process_table(out)
    assert len(processes) > 1
    assert os.getpid() in {pid for pid, _ in processes}  # this test's own process


def test_running_from_the_process_table_without_systemd() -> None:
    table = CommandResult(PROCESS_TABLE, 0, "1 (sleep) S 0 1 1\n42 (clamd) S 1 42 1\n"
                                            "43 (clamd) S 1 43 1\n7 (sshd) S 1 7 7\n"
                                            "44 (bacula-fd) Z 1 44 1\n", "")
    no_systemd = CommandResult("systemctl", 0, NO_SYSTEMD + "\n", "")
    state = observe_running("clamav-daemon", "clamd", [no_systemd, table])
    assert state.running and state.pids == (42, 43)
    assert state.observed == "clamd running (pid 42, 43; process table, no systemd)"
    gone = observe_running(None, "bacula-fd", [table])
    assert not gone.running
    assert gone.observed == "no bacula-fd process (process table, 4 processes)"  # 44: zombie


def test_names_with_spaces_and_parentheses() -> None:
    assert parse_process_table("5 (tmux: server) S 1 5 5\n6 (a) b)) R 1 6 6\n") == [
        (5, "tmux: server"), (6, "a) b)")]


def test_the_readers_own_batch_is_not_the_agent() -> None:
    """`clamd --version` running in the same batch as the table must not count as clamd."""
    table = ("self 900 (cat) R 899 899 899 0\n"
             "42 (clamd) S 1 42 42 0\n"
             "901 (clamd) R 899 901 899 0\n")
    assert parse_process_table(table) == [(42, "clamd")]
    out = subprocess.run(["sh", "-c", f"sleep 5 & echo $!; {PROCESS_TABLE}; kill $!"],
                         capture_output=True, text=True, timeout=10,
                         start_new_session=True).stdout
    sibling, _, table = out.partition("\n")
    pids = {pid for pid, _ in parse_process_table(table)}
    assert int(sibling) not in pids and os.getpid() in pids


def test_long_process_names_match_the_kernels_15_characters() -> None:
    table = CommandResult(PROCESS_TABLE, 0, "9 (amazon-cloudwat) S 1 9 9\n", "")
    assert observe_running(None, "amazon-cloudwatch-agent", [table]).running


def test_systemd_unit_state_decides_where_systemd_runs() -> None:
    table = CommandResult(PROCESS_TABLE, 0, "42 (clamd) S 1 42 42\n", "")
    show = ("LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=812\n")
    state = observe_running("clamav-daemon", "clamd",
                            [CommandResult("systemctl", 0, show, ""), table])
    assert state.running and state.source == "systemd" and state.pids == (812,)
    assert state.observed == "unit clamav-daemon active (running, pid 812; systemd)"
    failed = "LoadState=loaded\nActiveState=failed\nSubState=failed\nMainPID=0\n"
    state = observe_running("clamav-daemon", "clamd",
                            [CommandResult("systemctl", 0, failed, ""), table])
    assert not state.running
    assert state.observed == "unit clamav-daemon failed (failed; systemd)"
    missing = "LoadState=not-found\nActiveState=inactive\nSubState=dead\nMainPID=0\n"
    state = observe_running("nessus-agent", None,
                            [CommandResult("systemctl", 0, missing, ""), table])
    assert state.observed == "unit nessus-agent not-found"
    assert parse_systemctl_show(NO_SYSTEMD) is None


def test_systemd_command_falls_back_on_this_runner_without_systemd() -> None:
    command = running_commands("clamav-daemon")[0]
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout
    if Path("/run/systemd/system").is_dir():
        pytest.skip("this runner boots with systemd")
    assert NO_SYSTEMD in out


def test_service_without_process_and_without_systemd_says_what_to_add() -> None:
    table = CommandResult(PROCESS_TABLE, 0, "1 (init) S 0 1 1\n", "")
    state = observe_running("falcon-sensor", None,
                            [CommandResult("systemctl", 0, NO_SYSTEMD, ""), table])
    assert not state.running and "add process:" in state.observed


# --- versions ----------------------------------------------------------------------------------


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


# --- expansion ---------------------------------------------------------------------------------


def test_agent_expands_to_one_test_per_property(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "agent:\n  - agent: clamav\n  - {name: node-exporter, process: "
                             "node_exporter, manager: \"10.77.0.50:9100\"}")
    keys = [i.key for i in plan.items]
    assert keys == ["app01::agent[clamav/health]", "app01::agent[clamav/manager]",
                    "app01::agent[clamav/running]", "app01::agent[clamav/version]",
                    "app01::agent[node-exporter/manager]",
                    "app01::agent[node-exporter/running]"]
    health = next(i for i in plan.items if i.subject == "clamav/health").params["health"]
    assert (health["host"], health["port"], health["send"]) == ("127.0.0.1", 3310, "zPING\0")


def test_agent_overrides_on_top_of_the_site(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "agent:\n  - {agent: clamav, manager: \"10.9.9.9:443\"}")
    manager = next(i for i in plan.items if i.subject == "clamav/manager")
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
    ("logging:\n  - collector: centrl",
     "collector 'centrl' is not in site.logging.collectors (central)"),
    ("logging:\n  - {collector: central, via: [tcp, syslog]}", "'syslog' is not one of tcp, "
                                                              "udp, local"),
    ("backup:\n  - system: bacla", "backup system 'bacla' is not in site.backup.systems"),
    ("backup:\n  - {system: bacula, client: \"{hostname}.corp\"}",
     "uses {hostname}; only {host} and {address} are filled in"),
])
def test_mistakes_are_one_line_with_the_place(tmp_path: Path, checks: str, message: str) -> None:
    text = problems_of(tmp_path, checks)
    assert message in text, text
    assert len(text.splitlines()) == 1


def test_verify_command_without_marker_is_refused(tmp_path: Path) -> None:
    site = SITE.replace("grep -F -- {marker} /run/remote.log", "grep drcheck /run/remote.log")
    text = problems_of(tmp_path, "logging:\n  - collector: central", site)
    assert "verify.command must contain {marker}" in text


def test_logging_defaults_to_the_collectors_ports(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "logging:\n  - collector: central\n  - {collector: central, "
                             "via: [local], within: 20s}")
    assert [i.subject for i in plan.items] == ["central/local", "central/tcp", "central/udp"]
    local = plan.items[0]
    assert local.params["within"] == 20.0
    assert plan.items[1].params["within"] == 5.0  # the collector's own


def test_backup_subjects_and_the_reverse_default(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "backup:\n  - system: bacula")
    assert [i.subject for i in plan.items] == ["agent", "hello", "reverse", "server"]
    reverse = next(i for i in plan.items if i.subject == "reverse")
    assert reverse.params["client"] == "{address}"
    assert reverse.params["endpoint"] == ("10.77.0.41", 9103)


def test_backup_address_placeholder_needs_an_endpoint(tmp_path: Path) -> None:
    site = SITE.replace(', endpoint: "10.77.0.41:9103"', "")
    text = problems_of(tmp_path, "backup:\n  - system: bacula", site)
    assert "needs site.backup.systems.bacula.server.endpoint" in text
    plan = plan_of(tmp_path, "backup:\n  - {system: bacula, client: \"{host}.corp.example\"}",
                   site)
    assert [i.subject for i in plan.items] == ["agent", "hello", "reverse"]


# --- markers, syslog lines, logger commands ----------------------------------------------------


def test_markers_are_unique_timestamped_and_shell_safe() -> None:
    now = datetime(2026, 11, 24, 15, 0, 1, 234000, tzinfo=timezone.utc)
    marker = new_marker("app01", "tcp", now)
    assert marker.startswith("drcheck-app01-tcp-20261124T150001.234Z-")
    assert new_marker("app01", "tcp", now) != marker
    assert all(c.isalnum() or c in "-_.:" for c in marker)
    line = syslog_line("app01", marker, now)
    assert line == (f"<13>1 2026-11-24T15:00:01.234Z app01 drcheck - - - drcheck delivery "
                    f"marker {marker}\n").encode()


def test_verify_command_quotes_the_marker() -> None:
    assert verify_command("grep -F -- {marker} /x | awk '{print $1}'", "m-1") == (
        "grep -F -- m-1 /x | awk '{print $1}'")


def test_logger_commands_run_here() -> None:
    """The commands are real shell: sh parses them, logger takes the options (to a closed
    UDP port on loopback, which logger cannot notice: UDP has no handshake)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.settimeout(3)
    command = logger_command("udp", "drcheck-t-udp-1", "127.0.0.1", port)
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    datagram = sock.recv(4096).decode()
    sock.close()
    assert "drcheck delivery marker drcheck-t-udp-1" in datagram
    assert "--socket-errors=on" in logger_command("local", "m")


# --- backup protocol pieces --------------------------------------------------------------------


def test_route_source() -> None:
    out = subprocess.run(["ip", "-o", "route", "get", "127.0.0.1"], capture_output=True,
                         text=True).stdout
    assert parse_route_source(out) == "127.0.0.1"
    assert parse_route_source("10.77.0.41 dev eth0 src 10.77.0.11 uid 0 \\    cache") == (
        "10.77.0.11")
    assert parse_route_source("RTNETLINK answers: Network is unreachable") is None


def test_bacula_framing_over_a_socket_pair() -> None:
    left, right = socket.socketpair()
    try:
        assert bacula_hello("backup01-dir") == (
            struct.pack(">i", 36) + b"Hello Director backup01-dir calling\n")
        answer = b"auth cram-md5 <1.2@app01-fd> ssl=0\n"
        right.sendall(struct.pack(">i", len(answer)) + answer + struct.pack(">i", -4))
        deadline = time.monotonic() + 2
        assert read_bacula_message(left, deadline) == "auth cram-md5 <1.2@app01-fd> ssl=0"
        assert read_bacula_message(left, deadline) == "signal -4"
        right.sendall(struct.pack(">i", 1 << 20))
        with pytest.raises(ValueError, match="not a Bacula hello answer"):
            read_bacula_message(left, deadline)
    finally:
        left.close()
        right.close()


def test_site_hosts_that_are_not_inventory_hosts_are_reported_at_load(tmp_path: Path) -> None:
    site = SITE.replace("host: logs01", "host: logs1").replace("host: backup01", "host: bkp")
    text = problems_of(tmp_path, "reach: [{target: \"10.77.0.40:514\"}]", site)
    lines = sorted(text.splitlines(), key=lambda line: "logging" in line)
    assert len(lines) == 2
    assert lines[0].endswith("site.backup.systems.bacula.server.host: host 'bkp' is not a host "
                             "of this inventory; add it under hosts: (checks run through its "
                             "connection)")
    assert "site.logging.collectors.central.verify.host: host 'logs1' is not a host of this " \
           "inventory (did you mean 'logs01'?)" in lines[1]
