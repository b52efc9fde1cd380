"""ssh_config features a drill cannot honour are refused with one line, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_drcheck.targets.base import TargetError
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
