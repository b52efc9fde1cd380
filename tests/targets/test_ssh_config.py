"""ssh_config features a drill cannot honour are refused with one line, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_drcheck.targets.base import TargetError
from pytest_drcheck.targets.ssh.config import SshConfigFiles
from tests.targets.conftest import MakeTarget
from tests.targets.sshd import Sshd


@pytest.mark.parametrize("match", [
    'Match exec "touch {marker}"',
    'Match host 127.0.0.1 exec "touch {marker}"',
    'Match=!exec "touch {marker}"',
    "  match Exec 'touch {marker}'",
])
def test_match_exec_is_refused_without_running_it(make_target: MakeTarget, sshd: Sshd,
                                                  tmp_path: Path, match: str) -> None:
    marker = tmp_path / "ran"
    config = tmp_path / "ssh_config"
    config.write_text(f"Host other\n  User nobody\n\n{match.format(marker=marker)}\n"
                      f"  Port {sshd.port}\n")
    target = make_target(ssh_config=str(config))
    with pytest.raises(TargetError) as caught:
        target.run("true", 5)
    assert str(caught.value) == (
        f"app01: ssh_config {config} line 4 uses `Match exec`, which pytest-drcheck does not "
        "run (it would run a local command for every host); give the inventory an ssh_config "
        "without it, e.g. with Host blocks")
    assert not marker.exists()


def test_other_match_blocks_still_apply(make_target: MakeTarget, sshd: Sshd,
                                        tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(f"Match host recovery-app\n  HostName 127.0.0.1\n  Port {sshd.port}\n"
                      "Match host exec-server\n  User nobody\n")
    target = make_target(address="recovery-app", port=None, ssh_config=str(config))
    assert target.run("echo matched", 60).stdout == "matched\n"


def test_one_file_is_parsed_once_for_every_host_until_it_changes(tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("".join(f"Host h{i}\n  HostName 127.0.0.{i}\n" for i in range(1, 201)))
    files = SshConfigFiles()
    assert [files.parsed(f"h{i}", str(config)).lookup(f"h{i}")["hostname"]
            for i in (1, 100, 200)] == ["127.0.0.1", "127.0.0.100", "127.0.0.200"]
    assert files.reads == 1
    config.write_text("Host h1\n  HostName 127.0.1.1\n")
    assert files.parsed("h1", str(config)).lookup("h1")["hostname"] == "127.0.1.1"
    assert files.reads == 2


def test_a_refused_file_is_refused_for_each_host_with_its_name(tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text('Match exec "true"\n  User nobody\n')
    files = SshConfigFiles()
    for name in ("app01", "app02"):
        with pytest.raises(TargetError) as caught:
            files.parsed(name, str(config))
        assert str(caught.value).startswith(f"{name}: ssh_config {config} line 1 uses `Match")
    assert files.reads == 1
    with pytest.raises(TargetError) as caught:
        files.parsed("app03", str(tmp_path / "absent"))
    assert str(caught.value) == (
        f"app03: cannot read ssh_config {tmp_path / 'absent'}: No such file or directory")
