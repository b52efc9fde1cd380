"""backup: the agent, the server endpoint, the reverse connection through the server's own
target and the Bacula Director hello, against real sockets on 127.0.0.1 and recorded
outputs."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_drcheck.checks.backup import (
    BackupCheck,
    Hello,
    address_command,
    bacula_hello,
    parse_route_source,
    read_bacula_message,
)
from pytest_drcheck.checks.running import PROCESS_TABLE
from pytest_drcheck.model import CouldNotObserve, Observation, Outcome, PlanItem
from pytest_drcheck.targets.base import CommandResult, Target
from pytest_drcheck.targets.local import LocalTarget
from pytest_drcheck.targets.ssh import SshSettings, SshTarget
from tests.checks.ops_site import (
    SITE,
    Server,
    context,
    done,
    plan_items,
    problems_of,
)
from tests.plugin.sockets import closed_port

CHECK = BackupCheck()
ROUTE = "127.0.0.1 dev lo src 127.0.0.1 uid 0 \\    cache"


def evaluate(item: PlanItem, *outputs: CommandResult) -> Observation:
    others: dict[str, Target] = {"backup01": LocalTarget("backup01")}
    return CHECK.evaluate(context(item, outputs, others=others))


def could_not_observe(item: PlanItem, *outputs: CommandResult) -> str:
    with pytest.raises(CouldNotObserve) as info:
        evaluate(item, *outputs)
    return str(info.value)


def local_site(server_port: int) -> str:
    return SITE.replace('endpoint: "10.77.0.41:9103"', f'endpoint: "127.0.0.1:{server_port}"')


def items_for(tmp_path: Path, server_port: int, agent_port: int) -> dict[str, PlanItem]:
    site = local_site(server_port).replace("port: 9102", f"port: {agent_port}")
    return plan_items(tmp_path, "backup:\n  - system: bacula", site)


def cram_md5(data: bytes) -> bytes:
    answer = b"auth cram-md5 <1.2@app01-fd> ssl=0\n"
    return struct.pack(">i", len(answer)) + answer if b"Hello Director" in data else b""


@pytest.fixture
def agent() -> Iterator[Server]:
    server = Server(cram_md5)
    yield server
    server.close()


# --- expansion ---------------------------------------------------------------------------------


def test_subjects_requirements_and_the_reverse_default(tmp_path: Path) -> None:
    items = plan_items(tmp_path, "backup:\n  - system: bacula")
    assert sorted(items) == ["backup[agent]", "backup[hello]", "backup[reverse]",
                             "backup[server]"]
    # The reverse connection needs a listening agent; the hello needs the connection too.
    assert items["backup[reverse]"].requires == ("backup[agent]",)
    assert items["backup[hello]"].requires == ("backup[agent]", "backup[reverse]")
    assert items["backup[server]"].requires == ()
    reverse = items["backup[reverse]"]
    assert reverse.params["client"] == "{address}"
    assert reverse.params["endpoint"] == ("10.77.0.41", 9103)
    assert CHECK.commands(reverse) == (address_command("10.77.0.41"),)
    assert CHECK.commands(items["backup[agent]"]) == (PROCESS_TABLE,)
    assert CHECK.expected(reverse) == "backup01 -> app01:9102 open"


def test_backup_address_placeholder_needs_an_endpoint(tmp_path: Path) -> None:
    site = SITE.replace(', endpoint: "10.77.0.41:9103"', "")
    text = problems_of(tmp_path, "backup:\n  - system: bacula", site)
    assert "needs site.backup.systems.bacula.server.endpoint" in text
    items = plan_items(tmp_path, "backup:\n  - {system: bacula, client: \"{host}.corp.example\"}",
                       site)
    assert sorted(items) == ["backup[agent]", "backup[hello]", "backup[reverse]"]
    assert CHECK.commands(items["backup[reverse]"]) == ()


@pytest.mark.parametrize(("checks", "message"), [
    ("backup:\n  - system: bacla", "backup system 'bacla' is not in site.backup.systems"),
    ("backup:\n  - {system: bacula, client: \"{hostname}.corp\"}",
     "uses {hostname}; only {host} and {address} are filled in"),
])
def test_mistakes_are_one_line_with_the_place(tmp_path: Path, checks: str, message: str) -> None:
    text = problems_of(tmp_path, checks)
    assert message in text, text
    assert len(text.splitlines()) == 1


# --- agent and server --------------------------------------------------------------------------


def test_agent_running(tmp_path: Path) -> None:
    agent_item = plan_items(tmp_path, "backup:\n  - system: bacula")["backup[agent]"]
    table = done(PROCESS_TABLE, 0, "1 (init) S 0 1 1 0\n44 (bacula-fd) S 1 44 44 0\n")
    verdict = evaluate(agent_item, table)
    assert (verdict.outcome, verdict.observed) == (Outcome.PASSED,
                                                   "bacula-fd running (pid 44; process table)")
    verdict = evaluate(agent_item, done(PROCESS_TABLE, 0, "1 (init) S 0 1 1 0\n"))
    assert verdict.reason == ("expected backup agent bacula-fd running, observed no bacula-fd "
                              "process (process table, 1 processes)")
    # Before: a timed-out table read as "reading the process table timed out", a failure.
    assert could_not_observe(agent_item, done(PROCESS_TABLE, 124)).endswith(
        "timed out after 10 s on app01")


def test_server_connection_is_the_property(tmp_path: Path, agent: Server) -> None:
    verdict = evaluate(items_for(tmp_path, agent.port, 9102)["backup[server]"])
    assert verdict.outcome is Outcome.PASSED
    assert verdict.observed.startswith(f"app01 -> 127.0.0.1:{agent.port} connected in ")
    closed = closed_port()
    verdict = evaluate(items_for(tmp_path, closed, 9102)["backup[server]"])
    assert verdict.reason == (f"expected app01 -> backup01 127.0.0.1:{closed} open, observed "
                              "refused")


# --- reverse and hello -------------------------------------------------------------------------


def test_reverse_and_hello_through_the_servers_target(tmp_path: Path, agent: Server) -> None:
    items = items_for(tmp_path, agent.port, agent.port)
    route = done(address_command("127.0.0.1"), 0, ROUTE)
    verdict = evaluate(items["backup[reverse]"], route)
    assert verdict.outcome is Outcome.PASSED
    assert verdict.observed.startswith(f"backup01 -> 127.0.0.1:{agent.port} connected in ")
    assert verdict.details["observed_from"] == "backup01"
    verdict = evaluate(items["backup[hello]"], route)
    assert (verdict.outcome, verdict.observed) == (
        Outcome.PASSED, "bacula-fd app01-fd answered Director backup01-dir with a cram-md5 "
                        "challenge")


def test_reverse_refused_is_observed_hello_refused_is_not(tmp_path: Path) -> None:
    closed = closed_port()
    items = items_for(tmp_path, closed, closed)
    route = done(address_command("127.0.0.1"), 0, ROUTE)
    assert evaluate(items["backup[reverse]"], route).reason == (
        f"expected backup01 -> 127.0.0.1:{closed} open, observed refused")
    # The hello's connection is only its way in: not opened, the hello was not observed.
    assert could_not_observe(items["backup[hello]"], route) == (
        f"cannot open backup01's Director hello's connection: 127.0.0.1:{closed} from "
        "backup01: connection refused")


def test_a_port_that_accepts_and_closes_gives_no_hello(tmp_path: Path) -> None:
    server = Server(None)
    try:
        items = items_for(tmp_path, server.port, server.port)
        route = done(address_command("127.0.0.1"), 0, ROUTE)
        assert evaluate(items["backup[reverse]"], route).outcome is Outcome.PASSED
        # Closed before the hello arrived (EOF) or while it was in flight (a reset).
        assert evaluate(items["backup[hello]"], route).reason in (
            f"expected bacula agent answers backup01's hello on 127.0.0.1:{server.port}, "
            f"observed no hello answer: {how}" for how in (
                "connection closed after 0 of 4 bytes", "the agent reset the connection"))
    finally:
        server.close()


def test_an_unknown_client_address_is_not_observed(tmp_path: Path) -> None:
    """Before: a timed-out or failed `ip route get` was a failed reverse probe."""
    reverse = plan_items(tmp_path, "backup:\n  - system: bacula")["backup[reverse]"]
    command = address_command("10.77.0.41")
    assert could_not_observe(reverse, done(command, 124)).endswith(
        "timed out after 10 s on app01")
    assert could_not_observe(reverse, done(command, 2, "", "cannot resolve backup01 on the "
                                                           "instance")).endswith(
        "failed on app01 (exit 2): cannot resolve backup01 on the instance")
    assert could_not_observe(reverse, done(command, 0, "local 10.77.0.41 dev lo")) == (
        "could not tell app01's address toward 10.77.0.41 from `ip route get` (local "
        "10.77.0.41 dev lo); set client:")


def test_an_unusable_backup_server_is_not_observed(tmp_path: Path) -> None:
    """Before: "cannot use backup01 to probe" was a failed reverse connection."""
    reverse = plan_items(tmp_path, "backup:\n  - {system: bacula, client: 127.0.0.1}")[
        "backup[reverse]"]
    closed = closed_port()
    server = SshTarget(SshSettings("backup01", "127.0.0.1", port=closed,
                                   known_hosts="/dev/null", connect_timeout=2.0))
    with pytest.raises(CouldNotObserve) as info:
        CHECK.evaluate(context(reverse, [], others={"backup01": server}))
    assert str(info.value) == (f"cannot use backup01 to probe: backup01: connection refused by "
                               f"127.0.0.1:{closed}; is sshd running and listening on port "
                               f"{closed}?")
    with pytest.raises(CouldNotObserve, match=r"server\.host 'backup01' is not a host of this "
                                              r"inventory"):
        CHECK.evaluate(context(reverse, [], others={}))


def test_hello_answers_judged(tmp_path: Path) -> None:
    hello = plan_items(tmp_path, "backup:\n  - system: bacula")["backup[hello]"]
    rejected = CHECK.judge(hello, Hello("10.77.0.11", "2900 Hello rejected"))
    assert rejected.reason == ("expected bacula agent answers backup01's hello on "
                               "10.77.0.11:9102, observed '2900 Hello rejected' (the agent does "
                               "not know Director backup01-dir)")
    silent = CHECK.judge(hello, Hello("10.77.0.11", None, "connected but no answer to the "
                                                          "Director hello"))
    assert silent.reason.endswith("observed connected but no answer to the Director hello")


# --- protocol pieces ---------------------------------------------------------------------------


def test_route_source() -> None:
    out = subprocess.run(["ip", "-o", "route", "get", "127.0.0.1"], capture_output=True,
                         text=True).stdout
    assert parse_route_source(out) == "127.0.0.1"
    assert parse_route_source("10.77.0.41 dev eth0 src 10.77.0.11 uid 0 \\    cache") == (
        "10.77.0.11")
    assert parse_route_source("RTNETLINK answers: Network is unreachable") is None


def test_address_command_runs_here() -> None:
    ran = subprocess.run(["sh", "-c", address_command("127.0.0.1")], capture_output=True,
                         text=True, timeout=10)
    assert ran.returncode == 0, ran.stderr
    assert parse_route_source(ran.stdout) == "127.0.0.1"


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
