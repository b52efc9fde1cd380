"""time: the three daemons' outputs parsed, the clock sample read, the threshold applied.

chrony samples are what chronyc 4.3 printed in a network namespace against a real chronyd
server and against a responder 120 s ahead (LAB-NOTES' chrony row); the lab tests see them
live. timesyncd and ntpq cannot run here (no systemd, ntpd not installed): their samples are
the documented output formats of systemd 252 and ntpq 4.2.8.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_drcheck.checks.timesync import (
    DAEMONS,
    daemon_views,
    format_offset,
    parse_chrony,
    parse_ntpq,
    parse_sample,
    parse_timesyncd,
)
from pytest_drcheck.inventory import InventoryError, load_plan
from pytest_drcheck.net.sntp import from_ntp, parse_reply, request_packet, to_ntp
from pytest_drcheck.targets.base import CommandResult

SPLIT = "--drcheck--"
CHRONY_SYNCED = (
    "0ACB001E,10.203.0.30,9,1795534057.873824672,-0.000002733,-0.000000366,0.000001498,"
    "-0.344,-0.015,1.663,0.000009372,0.000002643,0.5,Normal\n"
    f"{SPLIT}\n"
    "^,*,10.203.0.30,8,-1,377,0,-0.000000064,-0.000000430,0.000004721\n")
CHRONY_SKEWED = (
    "0ACB001E,10.203.0.30,3,1795534216.546784688,120.000022888,0.000000297,29.160007477,"
    "0.003,0.099,0.035,0.000139436,0.003909920,1.0,Normal\n"
    f"{SPLIT}\n"
    "^,*,10.203.0.30,2,0,177,1,-0.000000316,-0.000000019,0.003976942\n")
CHRONY_STARTING = (
    "00000000,,0,0.000000000,-0.000000023,0.000000000,0.000000000,0.233,0.000,0.000,"
    "1.000000000,1.000000000,0.0,Not synchronised\n"
    f"{SPLIT}\n"
    "^,?,10.203.0.30,0,0,0,4294967295,0.000000000,0.000000000,0.000000000\n")
# chrony keeps its old reference (and "Normal") after its source went away: only the
# sources list tells that nothing is selected any more.
CHRONY_LOST_SOURCE = (
    "0ACB001E,10.203.0.30,3,1795534464.217626411,0.000015259,0.000000578,0.000595179,0.233,"
    "0.008,0.472,0.000092241,0.003916500,1.0,Normal\n"
    f"{SPLIT}\n"
    "^,?,10.203.0.99,0,0,0,4294967295,0.000000000,0.000000000,0.000000000\n")


def test_chrony_synchronised_offset_is_system_minus_source() -> None:
    view = parse_chrony(CHRONY_SYNCED)
    assert (view.synchronised, view.source, view.stratum) == (True, "10.203.0.30", 9)
    assert view.offset == pytest.approx(2.733e-6)  # "2.733 us fast of NTP time"
    skewed = parse_chrony(CHRONY_SKEWED)
    assert skewed.offset == pytest.approx(-120.000022888)  # "120 s slow of NTP time"


@pytest.mark.parametrize(("output", "problem"), [
    (CHRONY_STARTING, "not synchronised (no selectable source among 10.203.0.30 (never "
                      "answered))"),
    (CHRONY_LOST_SOURCE, "not synchronised (no selectable source among 10.203.0.99 (never "
                         "answered))"),
    ("7F7F0101,,10,1795534057.8,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,64.0,Normal\n"
     f"{SPLIT}\n", "not synchronised (chrony serves its own local clock, no network source)"),
    ("506 Cannot talk to daemon\n", "chronyc printed no tracking data"),
])
def test_chrony_not_synchronised(output: str, problem: str) -> None:
    view = parse_chrony(output)
    assert not view.synchronised
    assert view.problem == problem


TIMESYNCD = (
    "Timezone=Etc/UTC\nLocalRTC=no\nCanNTP=yes\nNTP=yes\nNTPSynchronized=yes\n"
    "TimeUSec=Tue 2026-11-24 15:30:00 UTC\nRTCTimeUSec=n/a\n"
    f"{SPLIT}\n"
    "       Server: 169.254.169.123 (169.254.169.123)\n"
    "Poll interval: 34min 8s (min: 32s; max 34min 8s)\n"
    "         Leap: normal\n      Version: 4\n      Stratum: 3\n    Reference: A9FEA97B\n"
    "    Precision: 1us (-25)\nRoot distance: 400us (max: 5s)\n       Offset: -21.5ms\n"
    "        Delay: 345us\n       Jitter: 32us\n Packet count: 3\n    Frequency: +5.123ppm\n")


def test_timesyncd() -> None:
    view = parse_timesyncd(TIMESYNCD)
    assert (view.daemon, view.synchronised, view.source, view.stratum) == (
        "timesyncd", True, "169.254.169.123", 3)
    assert view.offset == pytest.approx(0.0215)
    unsynced = parse_timesyncd(TIMESYNCD.replace("NTPSynchronized=yes", "NTPSynchronized=no"))
    assert unsynced.problem == "not synchronised (server 169.254.169.123)"
    off = parse_timesyncd(TIMESYNCD.replace("NTP=yes", "NTP=no"))
    assert off.problem == "NTP is switched off (timedatectl set-ntp false)"


NTPQ = """\
     remote           refid      st t when poll reach   delay   offset  jitter
==============================================================================
*10.77.0.30      .LOCL.           8 u   33   64  377    0.123  -45.250   0.012
+10.77.0.31      10.77.0.30       9 u   12   64  377    0.200   -0.045   0.010
"""


def test_ntpq() -> None:
    view = parse_ntpq(NTPQ)
    assert (view.synchronised, view.source, view.stratum) == (True, "10.77.0.30", 8)
    assert view.offset == pytest.approx(0.04525)
    none = parse_ntpq(NTPQ.replace("*10.77.0.30", " 10.77.0.30"))
    assert none.problem == "not synchronised (no system peer among 10.77.0.30, 10.77.0.31)"


def result(status: int, stdout: str = "", stderr: str = "") -> CommandResult:
    return CommandResult("x", status, stdout, stderr)


def test_first_answering_daemon_wins_and_the_others_say_why() -> None:
    view, reasons = daemon_views(DAEMONS, [
        result(1, "506 Cannot talk to daemon\n"),
        result(1, "", "System has not been booted with systemd as init system (PID 1). Can't "
                      "operate.\nFailed to connect to bus: Host is down\n"),
        result(127, "", "sh: 1: ntpq: not found\n")])
    assert view is None
    assert reasons == [
        "chrony: 506 Cannot talk to daemon",
        "timesyncd: System has not been booted with systemd as init system (PID 1). Can't "
        "operate.", "ntpd: not installed"]
    view, reasons = daemon_views(DAEMONS, [result(0, CHRONY_SYNCED), result(127), result(127)])
    assert view is not None and view.daemon == "chrony" and reasons == []


def test_clock_samples_and_offsets_read_well() -> None:
    assert parse_sample("1795534057.873824672\n") == (1795534057.873824672, 0.0)
    assert parse_sample("1795534057.N\n") == (1795534057.5, 0.5)  # date without %N
    assert parse_sample("Tue Nov 24\n") is None
    assert [format_offset(v) for v in (120.0, -0.0042, 2.4e-6, -1.5)] == [
        "+120 s", "-4.2 ms", "+2.4 us", "-1.5 s"]


def test_sntp_reply_arithmetic() -> None:
    assert from_ntp(to_ntp(1795534057.25)) == pytest.approx(1795534057.25)
    sent = request_packet(1000.0)
    # A server 120 s ahead that takes 1 ms to answer, 2 ms network each way.
    t1, t4 = 1000.0, 1000.005
    t2, t3 = t1 + 0.002 + 120, t1 + 0.003 + 120
    reply = (bytes([0x24, 2, 0, 0]) + bytes(20) + sent[40:48]
             + to_ntp(t2).to_bytes(8, "big") + to_ntp(t3).to_bytes(8, "big"))
    sample = parse_reply(reply, sent, t1, t4)
    assert sample.offset == pytest.approx(120.0, abs=1e-6)
    assert sample.delay == pytest.approx(0.004, abs=1e-6)


SITE = """\
version: 1
drill: {name: t}
site:
  time: {max_offset: 500ms, sources: [ntp01.corp.example, 10.77.0.30]}
hosts:
  app01:
    address: 10.0.0.1
    checks:
      time:
"""


def test_expansion_uses_site_defaults(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE + "        - {reference: 'ntp:10.77.0.30:1123'}\n")
    plan = load_plan(path, display_name="site.yaml")
    by = {i.subject: i.params for i in plan.items}
    assert sorted(by) == ["offset", "source", "sync"]
    assert by["offset"]["max_offset"] == 0.5 and by["offset"]["ntp"] == ("10.77.0.30", 1123)
    assert by["source"]["sources"] == ("ntp01.corp.example", "10.77.0.30")


@pytest.mark.parametrize(("entry", "message"), [
    ("{max_offset: 10m}", "site.yaml:10: hosts.app01.checks.time[0].max_offset: max_offset "
                          "10m is not under Kerberos' 5 minutes; a threshold must be well "
                          "below it"),
    ("{reference: 'ntp://x'}", "site.yaml:10: hosts.app01.checks.time[0].reference: 'ntp://x' "
                               "is not valid here; expected runner, or ntp:HOST[:PORT] (an NTP "
                               "server the runner asks)"),
    ("{daemon: chronyd}", "site.yaml:10: hosts.app01.checks.time[0].daemon: 'chronyd' is not "
                          "one of auto, chrony, timesyncd, ntpd (did you mean 'chrony'?)"),
])
def test_entry_mistakes(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE + f"        - {entry}\n")
    with pytest.raises(InventoryError) as caught:
        load_plan(path, display_name="site.yaml")
    assert str(caught.value) == message
