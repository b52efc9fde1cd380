"""agent, logging and backup checks through pytest, against real rsyslog, bacula-fd and clamd
on 127.0.0.1: every host is the runner (connection type local), so this needs no lab, yet
each check speaks to a real daemon over a real socket."""

from __future__ import annotations

import fnmatch
import re
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.plugin import daemons

DIRECTOR = "backup01-dir"


@dataclass
class Site:
    syslog_port: int
    received: Path
    fd_port: int
    clamd_port: int
    clamd_pid: int


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    started: list[daemons.Daemon] = []
    try:
        syslog_port = daemons.free_port()
        (tmp_path / "syslog").mkdir()
        collector, received = daemons.rsyslog(tmp_path / "syslog", syslog_port)
        started.append(collector)
        fd_port = daemons.free_port()
        (tmp_path / "fd").mkdir()
        started.append(daemons.bacula_fd(tmp_path / "fd", fd_port, DIRECTOR))
        clamd_port = daemons.free_port()
        (tmp_path / "clamd").mkdir()
        scanner = daemons.clamd(tmp_path / "clamd", clamd_port)
        started.append(scanner)
        yield Site(syslog_port, received, fd_port, clamd_port, scanner.process.pid)
    finally:
        for daemon in started:
            daemon.stop()


def write_inventory(pytester: pytest.Pytester, site: Site, *, received: Path | None = None,
                    syslog_port: int | None = None, fd_port: int | None = None,
                    process: str = "clamd", within: str = "5s") -> None:
    received = received or site.received
    syslog_port = syslog_port or site.syslog_port
    fd_port = fd_port or site.fd_port
    (pytester.path / "site.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        drill: {{name: ops-local}}
        defaults:
          timeout: 15s
          connection: {{type: local}}
        site:
          agents:
            clamav:
              process: {process}
              service: clamav-daemon
              version: {{constraint: ">=1.0", command: "clamd --version"}}
              manager: "127.0.0.1:{site.syslog_port}"
              health: {{tcp: "127.0.0.1:{site.clamd_port}", send: "zPING\\0", expect: PONG}}
          logging:
            collectors:
              central:
                address: 127.0.0.1
                tcp: {syslog_port}
                udp: {syslog_port}
                within: {within}
                verify: {{host: logs01, command: "grep -F -- {{marker}} {received}"}}
          backup:
            systems:
              bacula:
                server: {{host: backup01, endpoint: "127.0.0.1:{site.syslog_port}"}}
                agent:
                  process: bacula-fd
                  port: {fd_port}
                  probe: {{protocol: bacula, director: {DIRECTOR}}}
        hosts:
          logs01: {{}}
          backup01: {{}}
          app01:
            checks:
              agent: [{{agent: clamav}}]
              logging: [{{collector: central}}]
              backup: [{{system: bacula}}]
        """))


def observations(junit: Path) -> dict[str, str]:
    """Test name -> dr.observed, from the drill's JUnit evidence."""
    found = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        found[str(case.get("name"))] = str(props["dr.observed"])
    return found


def failures(result: pytest.RunResult) -> dict[str, str]:
    """Test id -> the one-line message, from the FAILURES and ERRORS sections (a check that
    could not observe is a pytest error, reported at setup)."""
    found: dict[str, str] = {}
    lines = result.stdout.lines
    for index, line in enumerate(lines):
        match = re.match(r"^_+ (?:ERROR at setup of )?(\S+) _+$", line)
        if match and index + 1 < len(lines):
            found[match.group(1)] = lines[index + 1]
    return found


def test_green_against_real_daemons(pytester: pytest.Pytester, site: Site) -> None:
    write_inventory(pytester, site)
    result = pytester.runpytest("--dr-inventory=site.yaml", "--junitxml=drill.xml")
    result.assert_outcomes(passed=10)
    assert "Traceback" not in result.stdout.str()
    observed = observations(pytester.path / "drill.xml")
    expected = {
        "agent[clamav/health]": "answered 'PONG'",
        "agent[clamav/manager]": f"manager 127.0.0.1:{site.syslog_port} connected in *",
        "agent[clamav/running]": "clamd running (pid *; process table, no systemd)",
        "agent[clamav/version]": "version 1.* (`clamd --version`)",
        "backup[agent]": "bacula-fd running (pid *; process table)",
        "backup[hello]": f"bacula-fd loopback-fd answered Director {DIRECTOR} with a "
                         "cram-md5 challenge",
        "backup[reverse]": f"backup01 -> 127.0.0.1:{site.fd_port} connected in *",
        "backup[server]": f"app01 -> 127.0.0.1:{site.syslog_port} connected in *",
        "logging[central/tcp]": "delivered within *: drcheck-app01-tcp-* via "
                                f"127.0.0.1:{site.syslog_port}/tcp, found by logs01 (search *)",
        "logging[central/udp]": "delivered within *: drcheck-app01-udp-* via "
                                f"127.0.0.1:{site.syslog_port}/udp, found by logs01 (search *)",
    }
    assert set(observed) == set(expected)
    for name, pattern in expected.items():
        assert fnmatch.fnmatchcase(observed[name], pattern), (name, observed[name])
    out = observed["agent[clamav/running]"]
    assert str(site.clamd_pid) in out  # our clamd is among those found running
    # Both markers really are in the collector's file, with their send timestamps.
    markers = re.findall(r"drcheck-app01-(?:tcp|udp)-\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}",
                         site.received.read_text())
    assert len(set(markers)) == 2


def test_reachable_but_not_delivered(pytester: pytest.Pytester, site: Site,
                                     tmp_path: Path) -> None:
    """The collector accepts, but the verifier searches where nothing arrives (like a
    collector that drops what it gets)."""
    elsewhere = tmp_path / "nothing.log"
    elsewhere.write_text("")
    write_inventory(pytester, site, received=elsewhere, within="1s")
    result = pytester.runpytest("--dr-inventory=site.yaml", "-k", "logging")
    result.assert_outcomes(failed=2, deselected=8)
    messages = failures(result)
    assert re.fullmatch(
        rf"app01 logging central/tcp: expected marker delivered to central within 1 s, "
        rf"observed reachable but not delivered: 127\.0\.0\.1:{site.syslog_port}/tcp accepted "
        rf"drcheck-app01-tcp-\S+, logs01 did not find it in [\d.]+ m?s \(\d+ searches\)",
        messages["app01::logging[central/tcp]"])
    assert "(UDP has no handshake: arrival is the only proof)" in messages[
        "app01::logging[central/udp]"]
    # They were delivered, just not where the verifier looked.
    assert site.received.read_text().count("drcheck-app01-") == 2


def test_collector_down_and_verifier_trouble(pytester: pytest.Pytester, site: Site,
                                             tmp_path: Path) -> None:
    write_inventory(pytester, site, syslog_port=daemons.free_port(),
                    received=tmp_path / "missing" / "file.log", within="1s")
    result = pytester.runpytest("--dr-inventory=site.yaml", "-k", "logging")
    messages = failures(result)
    port = re.search(r"127\.0\.0\.1:(\d+)/tcp", messages["app01::logging[central/tcp]"])
    assert port is not None
    assert messages["app01::logging[central/tcp]"] == (
        f"app01 logging central/tcp: expected marker delivered to central within 1 s, "
        f"observed 127.0.0.1:{port.group(1)}/tcp refused (collector unreachable)")
    # The verifier could not search (its file is missing): delivery was not observed, and
    # the verifier's own complaint is the cause, not "not delivered".
    assert re.fullmatch(
        r"app01 logging central/udp: could not observe: logs01 could not be searched for the "
        r"marker in [\d.]+ m?s: the search failed on logs01 \(exit 2\): grep: "
        + re.escape(f"{tmp_path}/missing/file.log: No such file or directory"),
        messages["app01::logging[central/udp]"])
    result.stdout.fnmatch_lines(["drill 'ops-local': FAILED (1 failed, 1 error)"])


def test_agent_not_running_and_reverse_refused(pytester: pytest.Pytester, site: Site) -> None:
    closed = daemons.free_port()
    write_inventory(pytester, site, process="drcheck-absent", fd_port=closed)
    result = pytester.runpytest("--dr-inventory=site.yaml", "-k", "agent or backup", "-rs")
    result.assert_outcomes(passed=4, failed=2, skipped=2)
    messages = failures(result)
    assert re.fullmatch(r"app01 agent clamav/running: expected clamav running, observed no "
                        r"drcheck-absent process \(process table, no systemd, \d+ processes\)",
                        messages["app01::agent[clamav/running]"])
    assert messages["app01::backup[reverse]"] == (
        f"app01 backup reverse: expected backup01 -> 127.0.0.1:{closed} open, observed refused")
    # Dependents are skipped naming the requirement that did not pass, not failed again.
    result.stdout.fnmatch_lines([
        "SKIPPED*app01 agent clamav/health: skipped: agent[[]clamav/running] did not pass "
        "(expected clamav running, observed no drcheck-absent process*",
        f"SKIPPED*app01 backup hello: skipped: backup[[]reverse] did not pass (expected "
        f"backup01 -> 127.0.0.1:{closed} open, observed refused)",
    ])


@pytest.mark.skipif(Path("/dev/log").exists(), reason="this runner has a syslog daemon")
def test_local_path_without_a_syslog_daemon(pytester: pytest.Pytester, site: Site) -> None:
    """via: local goes through the instance's own /dev/log; with no syslog daemon there, the
    marker cannot even be sent, and the failure says so instead of waiting for it."""
    write_inventory(pytester, site)
    path = pytester.path / "site.yaml"
    path.write_text(path.read_text().replace("logging: [{collector: central}]",
                                             "logging: [{collector: central, via: [local]}]"))
    result = pytester.runpytest("--dr-inventory=site.yaml", "-k", "logging")
    result.assert_outcomes(failed=1, deselected=8)
    assert failures(result)["app01::logging[central/local]"] == (
        "app01 logging central/local: expected marker delivered to central within 5 s, the "
        "instance could not send the marker via the instance's own syslog: logger: socket "
        "/dev/log: No such file or directory")


def test_unreachable_verifier_is_unverified_not_undelivered(pytester: pytest.Pytester,
                                                            site: Site) -> None:
    write_inventory(pytester, site)
    path = pytester.path / "site.yaml"
    closed = daemons.free_port()
    path.write_text(path.read_text().replace(
        "  logs01: {}",
        f"  logs01: {{address: 127.0.0.1, connection: {{type: ssh, port: {closed}, "
        "known_hosts: /dev/null, connect_timeout: 2s}}"))
    result = pytester.runpytest("--dr-inventory=site.yaml", "-k", "logging")
    result.assert_outcomes(errors=2, deselected=8)
    result.stdout.fnmatch_lines(["drill 'ops-local': FAILED (2 error*)"])
    for via in ("tcp", "udp"):
        assert failures(result)[f"app01::logging[central/{via}]"] == (
            f"app01 logging central/{via}: could not observe: cannot search the collector: "
            f"logs01: connection refused by 127.0.0.1:{closed}; is sshd running and listening "
            f"on port {closed}?")
    # No marker was sent: nothing could have confirmed it.
    assert not site.received.exists() or "drcheck-app01-" not in site.received.read_text()
