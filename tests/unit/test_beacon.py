"""The replication beacon: its writer really writes a time the rpo check parses, and
``drcheck beacon install`` prints (or installs on request) what runs it."""

from __future__ import annotations

import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pytest_drcheck.beacon import (
    BeaconError,
    cron_line,
    parse_beacon,
    systemd_units,
    writer_command,
)
from pytest_drcheck.cli import main


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-12-01T09:26:48.123456789Z\n", datetime(2026, 12, 1, 9, 26, 48, 123456,
                                                  timezone.utc)),
    ("2026-12-01T09:26:48Z", datetime(2026, 12, 1, 9, 26, 48, tzinfo=timezone.utc)),
    ("2026-12-01 10:26:48+01:00", datetime(2026, 12, 1, 9, 26, 48, tzinfo=timezone.utc)),
    ("2026-12-01T09:26:48", datetime(2026, 12, 1, 9, 26, 48, tzinfo=timezone.utc)),
    ("1796117208.5", datetime(2026, 12, 1, 9, 26, 48, 500000, timezone.utc)),
    ("2026-12-01T09:00:00Z\n2026-12-01T09:26:48Z\n", datetime(2026, 12, 1, 9, 26, 48,
                                                              tzinfo=timezone.utc)),
])
def test_beacon_times(text: str, expected: datetime) -> None:
    assert parse_beacon(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("", "the beacon is empty"), ("  \n", "the beacon is empty"),
    ("hello", "the beacon holds 'hello', not a UTC time"),
    ("2026-02-30T00:00:00Z", "not a valid date"),
])
def test_a_beacon_that_is_not_a_time(text: str, message: str) -> None:
    with pytest.raises(BeaconError, match=message):
        parse_beacon(text)


def test_the_writer_writes_a_time_the_check_reads(tmp_path: Path) -> None:
    path = tmp_path / "lib" / "drcheck" / "beacon"
    before = time.time()
    subprocess.run(["sh", "-c", writer_command(str(path))], check=True, timeout=10)
    written = parse_beacon(path.read_text()).timestamp()
    assert before - 1e-3 <= written <= time.time()
    assert not path.with_name("beacon.tmp").exists()  # renamed over the beacon


def test_unit_files_double_the_percent_signs_systemd_would_expand() -> None:
    units = systemd_units("/var/lib/drcheck/beacon", 30)
    service = units["drcheck-beacon.service"]
    assert "date -u +%%Y-%%m-%%dT%%H:%%M:%%S.%%NZ" in service
    assert "OnUnitActiveSec=30s" in units["drcheck-beacon.timer"]


def test_cron_escapes_percent_and_steps_inside_the_minute(tmp_path: Path) -> None:
    line = cron_line(str(tmp_path / "beacon"), 20)
    assert line.startswith("* * * * * root for s in 0 20 40; do (sleep $s; mkdir -p ")
    assert "+\\%Y-\\%m-\\%dT" in line
    assert cron_line("/b", 300).startswith("*/5 * * * * root mkdir -p / && date")
    with pytest.raises(ValueError, match="1 to 86400"):
        cron_line("/b", 0)


def test_install_prints_by_default_and_writes_nothing(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    assert main(["beacon", "install", "--interval", "15", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "# /etc/systemd/system/drcheck-beacon.timer" in out
    assert "systemctl enable --now drcheck-beacon.timer" in out
    assert not any(tmp_path.iterdir())


def test_install_with_apply_writes_the_cron_file(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["beacon", "install", "--cron", "--apply", "--root", str(tmp_path),
                 "--path", "/srv/beacon"]) == 0
    written = (tmp_path / "etc/cron.d/drcheck-beacon").read_text()
    assert written == cron_line("/srv/beacon", 60)
    assert f"wrote {tmp_path}/etc/cron.d/drcheck-beacon" in capsys.readouterr().out


def test_install_refuses_a_relative_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["beacon", "install", "--path", "beacon"]) == 2
    assert "--path must be an absolute path" in capsys.readouterr().err
