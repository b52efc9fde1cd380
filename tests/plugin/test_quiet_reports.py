"""What a drill prints when hosts cannot be reached: the reason once per host (in the drcheck
summary), short item reports, and no library log record (paramiko's banner errors, channel
failures) in any test's report: those go to their host's evidence in the bundle."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.plugin.sockets import Listener


def ssh_host(name: str, port: int, connect_timeout: str) -> str:
    """A host (under hosts:) reached over SSH on 127.0.0.1, with six reach checks."""
    targets = "".join(f'        - {{target: "127.0.0.1:{n}"}}\n' for n in range(1, 7))
    return (f"  {name}:\n    address: 127.0.0.1\n"
            f"    connection: {{port: {port}, connect_timeout: {connect_timeout}, "
            "known_hosts: /dev/null}\n"
            f"    checks:\n      reach:\n{targets}")


def write_inventory(pytester: pytest.Pytester, refused_port: int, silent_port: int,
                    open_port: int) -> Path:
    path = pytester.path / "site.yaml"
    path.write_text(textwrap.dedent(f"""\
        version: 1
        drill: {{name: noisy}}
        defaults: {{timeout: 5s}}
        hosts:
          local01:
            connection: {{type: local}}
            checks:
              reach:
                - {{target: "127.0.0.1:{open_port}"}}
                - {{target: "127.0.0.1:{refused_port}"}}
        """) + ssh_host("dead01", refused_port, "2s") + ssh_host("hung01", silent_port, "1s"))
    return path


def assert_not_green(result: pytest.RunResult) -> None:
    """local01 passes once and fails once; the 12 checks of the two hosts that cannot be
    reached are failures or errors (the engine is moving them to errors: nothing observed)."""
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 1
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 13, outcomes


REFUSED = "connection refused by 127.0.0.1:{port}; is sshd running and listening on port {port}?"


def test_an_unreachable_host_is_one_summary_line(pytester: pytest.Pytester,
                                                 listener: Listener, closed_port: int) -> None:
    silent = Listener()  # accepts TCP, never sends an SSH banner
    try:
        write_inventory(pytester, closed_port, silent.port, listener.port)
        result = pytester.runpytest("--dr-inventory=site.yaml", "-rf")
    finally:
        silent.close()
    assert_not_green(result)
    output = result.stdout.str()
    refused = REFUSED.format(port=closed_port)
    assert output.count(refused) == 1, output
    assert output.count("waiting for the SSH banner") == 1, output
    lines = result.stdout.lines
    summary = lines[lines.index("unreachable hosts (their checks observed nothing):") + 1:]
    assert summary[:2] == [f"  dead01 (6 checks): {refused}",
                           "  hung01 (6 checks): timed out after 1 s connecting to 127.0.0.1:"
                           f"{silent.port} waiting for the SSH banner (the port accepts "
                           "connections but no SSH server answers)"]
    # Each item's report is one short line; the unrelated failure keeps its own reason.
    for n in range(1, 7):
        assert (f"dead01 reach 127.0.0.1:{n}: cannot reach dead01 (reason in the drcheck "
                "summary)") in lines
    assert f"local01 reach 127.0.0.1:{closed_port}: expected open, observed refused" in lines


def test_unreachable_summary_under_xdist(pytester: pytest.Pytester, listener: Listener,
                                         closed_port: int) -> None:
    write_inventory(pytester, closed_port, closed_port, listener.port)
    result = pytester.runpytest_subprocess("--dr-inventory=site.yaml", "-n", "2",
                                           "-p", "no:cacheprovider")
    assert_not_green(result)
    refused = REFUSED.format(port=closed_port)
    result.stdout.fnmatch_lines(["unreachable hosts (their checks observed nothing):",
                                 f"  dead01 (6 checks): {refused}",
                                 f"  hung01 (6 checks): {refused}"])
    assert result.stdout.str().count(refused) == 2


def test_library_log_records_stay_out_of_test_reports(pytester: pytest.Pytester,
                                                      listener: Listener,
                                                      closed_port: int) -> None:
    """paramiko logs errors with tracebacks from its own thread ('Error reading SSH protocol
    banner' when a silent host is given up, 'Indecipherable protocol version' at once for a
    port that answers garbage); pytest would attach them to whichever test is running, or
    print them on stderr at exit. They belong in the bundle's logs."""
    silent = Listener(banner=b"garbage\r\n" * 120)
    try:
        write_inventory(pytester, closed_port, silent.port, listener.port)
        result = pytester.runpytest_subprocess("--dr-inventory=site.yaml", "--dr-evidence=ev",
                                               "-p", "no:cacheprovider", "-rA")
    finally:
        silent.close()
    assert_not_green(result)
    everything = result.stdout.str() + result.stderr.str()
    assert "paramiko" not in everything and "Traceback" not in everything
    assert "Captured log" not in everything
    logs = pytester.path / "ev" / "logs"
    records = [json.loads(line) for path in sorted(logs.glob("*.jsonl"))
               for line in path.read_text().splitlines()]
    banner = [r for r in records if "Indecipherable protocol version" in r["message"]]
    # paramiko logs through each transport's per-host channel (pytest_drcheck.ssh.<host>).
    assert banner and all(r["logger"].startswith("pytest_drcheck.ssh.") for r in banner), (
        records)
    assert "Traceback (most recent call last)" in banner[0]["message"] + "".join(
        r["message"] for r in records)
    assert all(r["level"] and r["at"].endswith("+00:00") for r in records)
    manifest = (pytester.path / "ev" / "MANIFEST.sha256").read_text()
    assert all(f"logs/{path.name}" in manifest for path in logs.glob("*.jsonl"))
