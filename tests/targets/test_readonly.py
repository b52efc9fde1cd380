"""A source host's target runs only commands on the read-only allowlist."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_drcheck.net.clockoffset import SAMPLE_COMMAND, SAMPLER_COMMAND
from pytest_drcheck.targets.local import LocalTarget
from pytest_drcheck.targets.names import lookup_command
from pytest_drcheck.targets.readonly import (
    DISKSTATS_READ,
    ReadOnlyTarget,
    ReadOnlyViolation,
    diskstats_sampler,
    is_read_only,
)


@pytest.mark.parametrize("command", [
    SAMPLER_COMMAND, SAMPLE_COMMAND, DISKSTATS_READ, diskstats_sampler(5, 1.0),
    diskstats_sampler(600, 0.25), lookup_command("getent", "drs.eu-west-1.amazonaws.com"),
    lookup_command("getent", "10.0.0.1"),
])
def test_reads_are_on_the_allowlist(command: str) -> None:
    assert is_read_only(command)


@pytest.mark.parametrize("command", [
    "touch /tmp/x", "rm -rf /", DISKSTATS_READ + "; rm -rf /",
    diskstats_sampler(5, 1.0).replace("true", "reboot"),
    lookup_command("getent", "x; rm -rf /"), "getent ahosts x; reboot",
    "cat /proc/uptime /proc/diskstats > /etc/passwd",
])
def test_anything_else_is_not(command: str) -> None:
    assert not is_read_only(command)


def test_a_write_is_refused_before_it_reaches_the_host(tmp_path: Path) -> None:
    target = ReadOnlyTarget(LocalTarget("src"))
    marker = tmp_path / "written"
    with pytest.raises(ReadOnlyViolation, match="src is a source server \\(read-only\\): "
                                                "refused to run `touch "):
        target.run(f"touch {marker}", 5)
    with pytest.raises(ReadOnlyViolation):
        target.open_process(f"touch {marker}", 5)
    assert not marker.exists()
    assert "[source, read-only]" in target.vantage


def test_a_batch_runs_the_reads_and_refuses_the_rest_without_a_temporary_directory(
        tmp_path: Path) -> None:
    target = ReadOnlyTarget(LocalTarget("src"))
    marker = tmp_path / "written"
    read, refused = target.run_batch([DISKSTATS_READ, f"touch {marker}"], 5)
    assert read.ok and float(read.stdout.split()[0]) > 0  # /proc/uptime's first figure
    assert refused.batch_failed and "not on the read-only allowlist" in refused.stderr
    assert not marker.exists()


def test_the_sampler_answers_every_reading() -> None:
    result = ReadOnlyTarget(LocalTarget("src")).run(diskstats_sampler(2, 0.1), 10)
    assert result.ok
    assert result.stdout.count("---\n") == 2
